"""CUDA paths: TabResNet and XGBoost train and predict on a GPU (skipped without one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification

from mesobench.models import CatBoostClassifier, TabResNetClassifier, XGBoostClassifier

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _data():
    X, y = make_classification(400, 8, n_informative=5, n_classes=3, random_state=0)
    return X.astype(np.float32), y


def test_tabresnet_trains_and_predicts_on_cuda():
    X, y = _data()
    model = TabResNetClassifier(epochs=5, warmup_epochs=1, device="cuda", random_state=0)
    model.fit(X[:300], y[:300], eval_set=(X[300:], y[300:]))
    assert next(model.module_.parameters()).is_cuda
    proba = model.predict_proba(X)
    assert isinstance(proba, np.ndarray)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)


def test_tabresnet_auto_picks_cuda():
    X, y = _data()
    model = TabResNetClassifier(epochs=2, warmup_epochs=0, device="auto", random_state=0).fit(X, y)
    assert model.device_ == "cuda"


def test_xgboost_trains_on_cuda():
    X, y = _data()
    model = XGBoostClassifier(n_estimators=20, device="cuda", random_state=0).fit(X, y)
    assert model.model_.get_params()["device"] == "cuda"
    np.testing.assert_allclose(model.predict_proba(X).sum(1), 1.0)


def test_catboost_trains_on_gpu():
    X, y = _data()
    model = CatBoostClassifier(iterations=20, device="cuda", random_state=0).fit(X, y)
    assert model.model_.get_all_params()["task_type"] == "GPU"
    np.testing.assert_allclose(model.predict_proba(X).sum(1), 1.0)
