"""The baseline wrappers share one scikit-learn contract; each library's input kind works."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import NotFittedError

from mesobench.errors import DataError
from mesobench.models import (
    CatBoostClassifier,
    CatBoostRegressor,
    LogisticRegressionClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
    TabResNetClassifier,
    XGBoostClassifier,
    XGBoostRegressor,
)

# small settings so every test takes well under a second
CLASSIFIERS = {
    "logreg": lambda: LogisticRegressionClassifier(random_state=0),
    "random_forest": lambda: RandomForestClassifier(n_estimators=20, random_state=0),
    "xgboost": lambda: XGBoostClassifier(n_estimators=30, random_state=0),
    "catboost": lambda: CatBoostClassifier(iterations=30, random_state=0),
    "tabresnet": lambda: TabResNetClassifier(
        epochs=10, warmup_epochs=1, batch_size=64, random_state=0
    ),
}
REGRESSORS = {
    "random_forest": lambda: RandomForestRegressor(n_estimators=20, random_state=0),
    "xgboost": lambda: XGBoostRegressor(n_estimators=30, random_state=0),
    "catboost": lambda: CatBoostRegressor(iterations=30, random_state=0),
}
WITH_EARLY_STOPPING = {"xgboost", "catboost", "tabresnet"}


def _data(n_classes, n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    codes = np.digitize(
        X[:, 0] + 0.5 * X[:, 1], np.quantile(X[:, 0], np.linspace(0, 1, n_classes + 1)[1:-1])
    )
    labels = np.array(["zulu", "alpha", "mike", "echo"])[:n_classes]
    return X, labels[codes]


def _mixed_frame(n=200, seed=0):
    """Numeric column with NaN and a pandas category column with a missing value."""
    rng = np.random.default_rng(seed)
    colour = pd.Categorical(
        rng.choice(["red", "green", "blue"], n), categories=["red", "green", "blue"]
    )
    size = rng.normal(size=n)
    size[::10] = np.nan
    X = pd.DataFrame({"size": size, "colour": colour, "weight": rng.normal(size=n)})
    X.loc[3, "colour"] = np.nan
    y = np.where((X["colour"] == "red") | (X["weight"] > 0.8), "yes", "no")
    return X, y


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_predict_proba_rows_sum_to_one_with_columns_in_classes_order(name, n_classes):
    X, y = _data(n_classes)
    model = CLASSIFIERS[name]().fit(X, y)
    proba = model.predict_proba(X)
    assert list(model.classes_) == sorted(set(y))
    assert proba.shape == (len(X), n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert np.array_equal(model.predict(X), model.classes_[proba.argmax(axis=1)])
    assert (model.predict(X) == y).mean() > 0.6  # learnt something, labels not shuffled
    assert model.n_features_in_ == 5


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_is_not_fitted_before_fit(name):
    with pytest.raises(NotFittedError):
        CLASSIFIERS[name]().predict_proba(np.zeros((2, 5)))


@pytest.mark.parametrize("name", REGRESSORS)
def test_regressor_is_not_fitted_before_fit(name):
    with pytest.raises(NotFittedError):
        REGRESSORS[name]().predict(np.zeros((2, 5)))


@pytest.mark.parametrize("factory", [*CLASSIFIERS.values(), *REGRESSORS.values()])
def test_clone_get_params_set_params_round_trip(factory):
    model = factory()
    params = model.get_params()
    assert {"random_state", "device"} <= set(params)
    copy = clone(model)
    assert copy is not model and copy.get_params() == params
    copy.set_params(random_state=123)
    assert copy.random_state == 123 and model.random_state == 0


@pytest.mark.parametrize("factory", [*CLASSIFIERS.values(), *REGRESSORS.values()])
def test_runner_knobs_exist_on_every_constructor(factory):
    model = factory()
    parameters = inspect.signature(type(model)).parameters
    assert "random_state" in parameters and "device" in parameters
    assert is_classifier(model) or is_regressor(model)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_only_models_that_early_stop_take_an_eval_set(name):
    """The harness gives validation data only to a fit() that accepts it (the rest keep it all)."""
    takes_eval_set = "eval_set" in inspect.signature(CLASSIFIERS[name]().fit).parameters
    assert takes_eval_set == (name in WITH_EARLY_STOPPING)


@pytest.mark.parametrize("name", ["xgboost", "catboost"])
def test_boosting_stops_early_on_the_eval_set(name):
    X, y = _data(2, n=400)
    model = CLASSIFIERS[name]().set_params(**{"early_stopping_rounds": 5})
    model.set_params(**({"n_estimators": 500} if name == "xgboost" else {"iterations": 500}))
    model.fit(X[:300], y[:300], eval_set=(X[300:], y[300:]))
    rounds = model.model_.best_iteration if name == "xgboost" else model.model_.tree_count_
    assert rounds < 400


@pytest.mark.parametrize("name", ["xgboost", "catboost"])
def test_boosting_reads_category_columns_and_nan_natively(name):
    X, y = _mixed_frame()
    model = CLASSIFIERS[name]().fit(X[:150], y[:150], eval_set=(X[150:], y[150:]))
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(model.feature_names_in_) == ["size", "colour", "weight"]
    assert (model.predict(X) == y).mean() > 0.8  # "colour == red" was usable


@pytest.mark.parametrize("name", ["xgboost", "catboost"])
def test_eval_rows_with_labels_unseen_in_training_are_dropped_with_a_warning(name):
    X, y = _data(2)
    y_val = np.r_[y[:20], ["unseen"]]
    with pytest.warns(UserWarning, match="absent from the training labels"):
        model = CLASSIFIERS[name]().fit(X, y, eval_set=(np.vstack([X[:20], X[:1]]), y_val))
    assert list(model.classes_) == sorted(set(y))


def test_catboost_receives_the_category_column_as_a_cat_feature():
    X, y = _mixed_frame()
    model = CLASSIFIERS["catboost"]().fit(X, y)
    assert model.model_.get_cat_feature_indices() == [1]


def test_random_forest_accepts_nan():
    X, y = _data(2)
    X[::7, 2] = np.nan
    model = CLASSIFIERS["random_forest"]().fit(X, y)
    assert np.isfinite(model.predict_proba(X)).all()


def test_logistic_regression_refuses_nan_with_a_clear_message():
    X, y = _data(2)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        CLASSIFIERS["logreg"]().fit(X, y)


@pytest.mark.parametrize("name", REGRESSORS)
def test_regressors_predict_one_value_per_row(name):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = 3 * X[:, 0] + rng.normal(scale=0.1, size=200)
    model = REGRESSORS[name]().fit(X, y)
    pred = model.predict(X)
    assert pred.shape == (200,) and np.corrcoef(pred, y)[0, 1] > 0.8


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_a_single_class_is_a_data_error(name):
    X, _ = _data(2)
    with pytest.raises(DataError, match="one class only"):
        CLASSIFIERS[name]().fit(X, np.full(len(X), "only"))


def test_same_seed_same_xgboost_and_catboost_predictions():
    X, y = _data(3)
    for factory in (CLASSIFIERS["xgboost"], CLASSIFIERS["catboost"]):
        first = factory().set_params(random_state=4).fit(X, y).predict_proba(X)
        second = factory().set_params(random_state=4).fit(X, y).predict_proba(X)
        assert np.array_equal(first, second)


def test_xgboost_reports_each_boosting_rounds_seconds_for_the_cost_plan():
    """The plan scales a 20-tree measurement to 1000 trees from the per-round seconds, so that
    the fit's one-off part (quantile sketch) is not counted once per tree."""
    X, y = _data(2, n=400)
    model = XGBoostClassifier(n_estimators=25, n_jobs=1, random_state=0).fit(X, y)
    seconds = model.training_curves()["epoch_seconds"]
    assert len(seconds) == 25 and all(s > 0 for s in seconds)
    stopped = XGBoostClassifier(n_estimators=500, early_stopping_rounds=3, n_jobs=1, random_state=0)
    stopped.fit(X[:300], y[:300], eval_set=(X[300:], y[300:]))
    assert len(stopped.training_curves()["epoch_seconds"]) < 500  # the rounds actually built
    assert stopped.model_.get_params()["callbacks"] is None  # the fitted booster keeps no timer
