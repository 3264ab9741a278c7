"""The oracle: a "model" that predicts with a synthetic task's true, noise-free f.

It is the ceiling every model of a synthetic experiment is read against: its test MSE is the
noise floor σ², its accuracy that of the Bayes rule ``1[f(x) > 0]`` on the same test rows, and
its explanation (the tangent plane of f: weights ∇f(x), intercept f(x) − ∇f(x)·x) has zero
ground-truth error. A published figure better than the oracle's cannot be reproduced by any
model. ``fit`` learns nothing but the input shape and the labels.

It reads raw features (``conf/model/oracle.yaml`` uses the ``ordinal`` preprocessing, which
passes numeric columns unchanged) and takes the generator's name as a parameter (the config
interpolates ``${task.generator}``), so the harness never hands a model the task's internals.
On a task without a known f it refuses to fit with a message that says so.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from mesobench.data.truth import SyntheticTruth
from mesobench.models.explanation import Explanation
from mesobench.models.params import store_init_params


class _Oracle(BaseEstimator):
    def __init__(self, generator=None, random_state=None, device="cpu"):
        store_init_params(self, locals())

    def _fit_truth(self, X, y):
        if not self.generator:
            raise ValueError(
                "the oracle needs a synthetic task with a known f (conf/task/synthetic/*.yaml, "
                "whose `generator` the oracle config reads); this task has none"
            )
        X, y = validate_data(self, X, y, dtype=np.float64)
        self.truth_ = SyntheticTruth(str(self.generator))
        if X.shape[1] != self.truth_.n_features:
            raise ValueError(
                f"the oracle of {self.generator} expects {self.truth_.n_features} raw features, "
                f"got {X.shape[1]} (was a column dropped or encoded?)"
            )
        return column_or_1d(y)

    def _raw(self, X) -> np.ndarray:
        check_is_fitted(self, "truth_")
        return validate_data(self, X, reset=False, dtype=np.float64)

    def explain(self, X) -> Explanation:
        """The tangent plane of the true f at each row (raw units): exact by construction."""
        X = self._raw(X)
        return Explanation(self.truth_.gradient(X), self.truth_.local_intercept(X))


class OracleRegressor(RegressorMixin, _Oracle):
    """Predicts the noise-free regression mean f(x) of the task's generator."""

    def fit(self, X, y):
        self._fit_truth(X, y)
        return self

    def predict(self, X) -> np.ndarray:
        return self.truth_.mean(self._raw(X))


class OracleClassifier(ClassifierMixin, _Oracle):
    """Predicts P(y = 1 | x) = σ(f(x)) of the task's generator (binary tasks)."""

    def fit(self, X, y):
        y = self._fit_truth(X, y)
        self.classes_ = np.unique(y)
        if self.truth_.kind != "binary" or not np.array_equal(self.classes_, [0, 1]):
            raise ValueError(
                f"the oracle of {self.generator} predicts binary 0/1 labels; the training labels "
                f"are {self.classes_.tolist()}"
            )
        return self

    def decision_function(self, X) -> np.ndarray:
        """The true logit f(x)."""
        return self.truth_.mean(self._raw(X))

    def predict_proba(self, X) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.decision_function(X) > 0).astype(int)]
