"""The NIMO paper's simple baselines as ordinary models: an L1-sparse linear model and an MLP.

Both wrap scikit-learn (they are reference points, not contributions) in the common interface of
:mod:`mesobench.models.baselines` (``random_state``, ``device`` ignored, ``n_jobs`` = BLAS
threads), so they run on any task through the runner and are searched by the generic ``hpo.*``:

* ``lasso`` (NIMO paper: "Lasso" / "LogReg"): ``LassoCV`` for regression, L1 logistic regression
  with its C chosen by 5-fold CV (``LogisticRegressionCV``, saga) for classification; the
  penalty is tuned by its own cross-validation on the training rows, no validation split.
* ``mlp`` (NIMO paper: "NN"): scikit-learn's ``MLPRegressor`` / ``MLPClassifier`` (Adam,
  ReLU); its L2 strength ``alpha`` is the knob a grid search turns (``conf/hpo/mlp.yaml``).

Classifiers expose ``decision_function`` (the logit of the positive class for binary tasks; the
log-probabilities for multiclass), the output that ground-truth and fidelity metrics explain.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import linear_model, neural_network
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from mesobench.models.baselines import _WrappedClassifier, _WrappedRegressor
from mesobench.models.params import store_init_params


def _fit_limited(model, X, y, n_jobs):
    """Fit a scikit-learn model with at most ``n_jobs`` BLAS / OpenMP threads."""
    with threadpool_limits(limits=n_jobs):
        return model.fit(X, y)


class _LogitMixin:
    """``decision_function`` from ``predict_proba``: logit (binary) or log-probabilities."""

    def decision_function(self, X) -> np.ndarray:
        proba = np.clip(self.predict_proba(X), 1e-12, 1.0)
        if proba.shape[1] == 2:
            return np.log(proba[:, 1]) - np.log(proba[:, 0])
        return np.log(proba)


class LassoClassifier(_LogitMixin, _WrappedClassifier):
    """L1 logistic regression, C chosen by k-fold CV on the training rows (accuracy, saga).

    Parameters: ``cv`` folds (5), ``Cs`` grid size (10, log-spaced as scikit-learn's),
    ``max_iter`` (5000); ``random_state`` seeds the CV split and saga; ``device`` ignored;
    ``n_jobs`` BLAS threads. Input: a finite float matrix.
    """

    def __init__(self, cv=5, Cs=10, max_iter=5000, random_state=None, device="cpu", n_jobs=None):
        store_init_params(self, locals())

    def _fit_model(self, X, y, eval_set):
        model = linear_model.LogisticRegressionCV(
            Cs=self.Cs,
            cv=self.cv,
            l1_ratios=(1.0,),  # pure L1 (scikit-learn ≥ 1.8 spells penalty="l1" this way)
            solver="saga",
            scoring="accuracy",
            max_iter=self.max_iter,
            random_state=self.random_state,
        )
        with warnings.catch_warnings():  # scikit-learn 1.9's notice on its fitted attributes
            warnings.filterwarnings("ignore", "The fitted attributes", FutureWarning)
            return _fit_limited(model, X, y, self.n_jobs)

    @property
    def coef_(self) -> np.ndarray:
        """The fitted coefficients (model units), shape (1, F) binary or (C, F)."""
        check_is_fitted(self, "model_")
        return self.model_.coef_


class LassoRegressor(_WrappedRegressor):
    """``LassoCV``: the L1 strength chosen by k-fold CV on the training rows.

    Parameters: ``cv`` folds (5), ``n_alphas`` path length (100), ``max_iter`` (1000, as
    scikit-learn);
    ``random_state`` seeds the coordinate order; ``device`` ignored; ``n_jobs`` BLAS threads.
    """

    def __init__(
        self, cv=5, n_alphas=100, max_iter=1000, random_state=None, device="cpu", n_jobs=None
    ):
        store_init_params(self, locals())

    def _fit_model(self, X, y, eval_set):
        model = linear_model.LassoCV(
            alphas=self.n_alphas, cv=self.cv, max_iter=self.max_iter, random_state=self.random_state
        )
        return _fit_limited(model, X, y, self.n_jobs)

    @property
    def coef_(self) -> np.ndarray:
        """The fitted coefficients (model units), shape (F,)."""
        check_is_fitted(self, "model_")
        return self.model_.coef_


_MLP_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : sequence of int, default (64, 64)
    alpha : float, default 1e-4
        L2 strength (scikit-learn's default); the NIMO synthetic experiment picks it on the
        validation rows from {1e-4, 1e-2, 1} (``conf/hpo/mlp.yaml``).
    learning_rate_init : float, default 1e-3
    max_iter : int, default 3000
        Adam epochs at most (scikit-learn stops earlier when the loss plateaus).
    random_state, device (ignored), n_jobs (BLAS threads).

    Input: a finite float matrix (standardised or raw).
"""


class _MLPParams:
    def __init__(
        self,
        hidden_layer_sizes=(64, 64),
        alpha=1e-4,
        learning_rate_init=1e-3,
        max_iter=3000,
        random_state=None,
        device="cpu",
        n_jobs=None,
    ):
        store_init_params(self, locals())

    def _mlp_kwargs(self) -> dict:
        return dict(
            hidden_layer_sizes=tuple(int(h) for h in self.hidden_layer_sizes),
            alpha=self.alpha,
            learning_rate_init=self.learning_rate_init,
            max_iter=self.max_iter,
            random_state=self.random_state,
        )


class MLPClassifier(_LogitMixin, _MLPParams, _WrappedClassifier):
    __doc__ = "scikit-learn's MLP classifier (ReLU, Adam, log-loss + alpha·L2).\n" + _MLP_DOC

    def _fit_model(self, X, y, eval_set):
        return _fit_limited(neural_network.MLPClassifier(**self._mlp_kwargs()), X, y, self.n_jobs)


class MLPRegressor(_MLPParams, _WrappedRegressor):
    __doc__ = "scikit-learn's MLP regressor (ReLU, Adam, squared loss + alpha·L2).\n" + _MLP_DOC

    def _fit_model(self, X, y, eval_set):
        return _fit_limited(neural_network.MLPRegressor(**self._mlp_kwargs()), X, y, self.n_jobs)
