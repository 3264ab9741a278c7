"""Estimators that fail on purpose, to test that the harness records failed runs (the configs
``conf/model/debug_*.yaml``). Kept out of :mod:`mesobench.models`, which holds the benchmark's
models only.

* :class:`AlwaysFailsClassifier` raises ``RuntimeError`` in ``fit`` (a crashing model);
* :class:`DivergingClassifier` trains a linear model through the shared trainer with an absurd
  learning rate, so the loss overflows and the trainer raises
  :class:`~mesobench.errors.DivergenceError` (the NaN-loss path, end to end).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn
from torch.nn import functional as F

from mesobench.models.device import resolve_device
from mesobench.models.params import store_init_params
from mesobench.models.training import (
    predict_in_batches,
    seed_everything,
    seed_from,
    to_tensor,
    train,
)
from mesobench.models.training_settings import TrainingSettings


class AlwaysFailsClassifier(ClassifierMixin, BaseEstimator):
    """A classifier whose ``fit`` always raises ``RuntimeError(message)``.

    Parameters
    ----------
    message : str, default "deliberate failure"
        The error message.
    random_state, device
        Accepted for the common interface; unused.
    """

    def __init__(self, message="deliberate failure", random_state=None, device="cpu"):
        store_init_params(self, locals())

    def fit(self, X, y, eval_set=None):
        raise RuntimeError(self.message)

    def predict_proba(self, X):
        check_is_fitted(self, "classes_")  # never fitted: raises NotFittedError

    def predict(self, X):
        check_is_fitted(self, "classes_")


class DivergingClassifier(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression trained by the shared trainer with ``lr=1e30``.

    AdamW's first steps move every weight by about ``lr`` and its decoupled weight decay then
    multiplies the weights by ``1 − lr·weight_decay``; the weights overflow to ±inf, the loss
    becomes NaN and :func:`mesobench.models.training.train` raises ``DivergenceError`` in the
    first epochs.

    Parameters
    ----------
    lr : float, default 1e30
        Learning rate (absurd on purpose).
    weight_decay : float, default 1e-2
        AdamW weight decay.
    epochs : int, default 5
        Epochs (divergence happens in the first).
    batch_size : int, default 64
    random_state : int, RandomState or None, default None
    device : str, default "cpu"
    """

    def __init__(
        self,
        lr=1e30,
        weight_decay=1e-2,
        epochs=5,
        batch_size=64,
        random_state=None,
        device="cpu",
    ):
        store_init_params(self, locals())

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, y_codes = np.unique(y, return_inverse=True)
        self.device_ = resolve_device(self.device)
        seed = seed_from(self.random_state)
        seed_everything(seed)
        self.module_ = nn.Linear(X.shape[1], len(self.classes_)).to(self.device_)

        def loss_fn(module, xb, yb):
            return F.cross_entropy(module(xb), yb)

        settings = TrainingSettings(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            optimizer="adamw",
            warmup_epochs=0,
            scheduler="constant",
            seed=seed,
        )
        X_t, y_t = to_tensor(X, self.device_), to_tensor(y_codes, self.device_, dtype=torch.long)
        train(self.module_, loss_fn, X_t, y_t, settings)
        return self

    def predict_proba(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        logits = predict_in_batches(self.module_, to_tensor(X, self.device_))
        return torch.softmax(logits.double(), dim=1).cpu().numpy()

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class SlowClassifier(ClassifierMixin, BaseEstimator):
    """Sleeps ``seconds`` in ``fit``, then predicts the training class frequencies.

    For testing what happens to long runs: wall-clock limits, killed sweeps, resumption.

    Parameters
    ----------
    seconds : float, default 1.0
        How long ``fit`` takes.
    random_state, device
        Accepted for the common interface; unused.
    """

    def __init__(self, seconds=1.0, random_state=None, device="cpu"):
        store_init_params(self, locals())

    def fit(self, X, y):
        import time

        from sklearn.dummy import DummyClassifier

        time.sleep(self.seconds)
        self.model_ = DummyClassifier(strategy="prior").fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(X)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
