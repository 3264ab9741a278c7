"""The protocol on one fold, in-process: validation use, hyperparameter search, explanations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from conftest import protocol
from mesobench.data import FoldData, TaskInfo
from mesobench.models import Explanation
from mesobench.protocol.pipeline import evaluate_fold
from mesobench.protocol.settings import HPOSettings


class LinearExplained(ClassifierMixin, BaseEstimator):
    """Logistic regression whose explanation is its own coefficients (exact identity)."""

    def __init__(self, C=1.0, random_state=None, device="cpu"):
        self.C, self.random_state, self.device = C, random_state, device

    def fit(self, X, y, eval_set=None):
        self.saw_eval_set_ = eval_set is not None
        self.model_ = LogisticRegression(C=self.C).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def decision_function(self, X):
        return self.model_.decision_function(X)

    def explain(self, X):
        n = len(X)
        return Explanation(
            np.tile(self.model_.coef_[0], (n, 1)), np.full(n, self.model_.intercept_[0])
        )


def _fold(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "signal": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "colour": rng.choice(["red", "green", "blue"], n),
        }
    )
    logit = 3 * X["signal"] + (X["colour"] == "red") * 2.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    info = TaskInfo(name="toy", source="synthetic", kind="binary", classes=("no", "yes"))
    cut = int(0.75 * n)
    return FoldData(
        task=info,
        fold=0,
        X_train=X.iloc[:cut],
        y_train=y[:cut],
        X_test=X.iloc[cut:],
        y_test=y[cut:],
        categorical=[False, False, True],
    )


def _run(estimator, *overrides, **fields):
    """The runner's protocol (``conf/config.yaml`` + ``overrides``) on the toy fold."""
    return evaluate_fold(_fold(), estimator, protocol("model=logreg", *overrides, **fields), seed=0)


def test_an_estimator_that_takes_eval_set_gets_a_validation_split():
    est = LinearExplained()
    outcome = _run(est)
    assert est.saw_eval_set_
    assert outcome.params["n_fit"] == 240 and outcome.params["n_val"] == 60


def test_use_validation_false_trains_on_the_whole_training_fold():
    est = LinearExplained()
    outcome = _run(est, use_validation=False)
    assert not est.saw_eval_set_
    assert outcome.params["n_fit"] == 300 and outcome.params["n_val"] == 0


def test_explanations_fold_one_hot_columns_back_to_their_source():
    outcome = _run(LinearExplained())
    assert outcome.metrics["explain_identity_error"] < 1e-5  # float32 inputs
    importance = outcome.artifacts["explanations/global_importance.csv"]
    assert list(importance["column"]) == ["signal", "colour", "noise"]  # by importance
    assert importance["share"].sum() == pytest.approx(1.0)
    sample = outcome.artifacts["explanations/local_weights_sample.csv"]
    assert len(sample) == 100 and "intercept" in sample
    assert {"colour=red", "signal"} <= set(sample.columns)


def test_a_hyperparameter_search_keeps_the_best_trial():
    space = {"params": {"C": {"type": "float", "low": 1e-4, "high": 1e2, "log": True}}}
    outcome = _run(LinearExplained(), hpo=HPOSettings(n_trials=6, space=space))
    scores = outcome.step_metrics["hpo/validation_score"]
    assert len(scores) == 6
    assert outcome.params["hpo.trials_run"] == 6
    trials = outcome.artifacts["hpo/trials.csv"]
    best = trials.loc[trials["value"].idxmax(), "params_C"]
    assert outcome.params["hpo.best.C"] == pytest.approx(best)
    assert outcome.metrics["auroc"] > 0.85


def test_a_search_space_naming_an_unknown_parameter_is_an_error():
    from mesobench.errors import ConfigError

    space = {"params": {"gamma": {"type": "float", "low": 0.1, "high": 1.0}}}
    with pytest.raises(ConfigError, match="gamma"):
        _run(LinearExplained(), hpo=HPOSettings(n_trials=2, space=space))
