"""scikit-learn's estimator contract (``check_estimator``) for every estimator of the benchmark,
at tiny settings. Each check an estimator is expected to fail is listed with the reason."""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from mesobench.models import (
    CatBoostClassifier,
    CatBoostRegressor,
    IMNClassifier,
    IMNRegressor,
    LassoClassifier,
    LassoRegressor,
    LFRIMNClassifier,
    LFRIMNRegressor,
    LogisticRegressionClassifier,
    MLPClassifier,
    MLPRegressor,
    NIMOClassifier,
    NIMORegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    TabResNetClassifier,
    TabResNetRegressor,
    XGBoostClassifier,
    XGBoostRegressor,
)

NET = {"epochs": 3, "warmup_epochs": 1, "batch_size": 32, "hidden_size": 8, "random_state": 0}
ESTIMATORS = [
    LogisticRegressionClassifier(),
    RandomForestClassifier(n_estimators=5, random_state=0),
    RandomForestRegressor(n_estimators=5, random_state=0),
    XGBoostClassifier(n_estimators=5, random_state=0, n_jobs=1),
    XGBoostRegressor(n_estimators=5, random_state=0, n_jobs=1),
    CatBoostClassifier(iterations=5, random_state=0, n_jobs=1),
    CatBoostRegressor(iterations=5, random_state=0, n_jobs=1),
    LassoClassifier(),
    LassoRegressor(),
    MLPClassifier(max_iter=50, random_state=0),
    MLPRegressor(max_iter=50, random_state=0),
    TabResNetClassifier(**NET),
    TabResNetRegressor(**NET),
    IMNClassifier(**NET, n_jobs=1),
    IMNRegressor(**NET, n_jobs=1),
    LFRIMNClassifier(**NET, n_jobs=1),
    LFRIMNRegressor(**NET, n_jobs=1),
    NIMOClassifier(**NET, n_jobs=1),
    NIMORegressor(**NET, n_jobs=1),
]

EXPECTED_FAILURES: dict[str, dict[str, str]] = {}


def _expected(estimator) -> dict[str, str]:
    return EXPECTED_FAILURES.get(type(estimator).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected)
def test_the_scikit_learn_contract(estimator, check):
    check(estimator)


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
def test_every_expected_failure_names_a_reason(name):
    assert all(reason.strip() for reason in EXPECTED_FAILURES[name].values())
