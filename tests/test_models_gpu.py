"""CUDA paths: the models train and predict on a GPU, with bf16 and torch.compile too (skipped
without one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score

from conftest import binary_interaction_task
from mesobench.models import (
    CatBoostClassifier,
    IMNClassifier,
    NIMOClassifier,
    TabResNetClassifier,
    XGBoostClassifier,
)
from mesobench.models.training import train
from mesobench.models.training_settings import TrainingSettings

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


# ---- GPU settings (conf/device/*.yaml: precision, compile); CPU versions: test_device_settings.py


@pytest.mark.parametrize("cls", [IMNClassifier, NIMOClassifier, TabResNetClassifier])
def test_bf16_training_on_cuda_predicts_close_to_fp32(cls):
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16 support")
    Xtr, ytr, Xte, yte = binary_interaction_task()
    kwargs = dict(epochs=5, warmup_epochs=1, batch_size=128, random_state=0, device="cuda")
    if cls is NIMOClassifier:
        kwargs["early_stopping_patience"] = None
    p32 = cls(**kwargs).fit(Xtr, ytr).predict_proba(Xte)[:, 1]
    model = cls(**kwargs, precision="bf16").fit(Xtr, ytr)
    p16 = model.predict_proba(Xte)[:, 1]
    assert next(model.module_.parameters()).dtype == torch.float32  # fp32 master weights
    # the CPU bounds of test_device_settings.py (measured there: <= 0.025 / 0.0035)
    assert np.abs(p32 - p16).max() < 0.05
    assert abs(roc_auc_score(yte, p32) - roc_auc_score(yte, p16)) < 0.01
    if cls is NIMOClassifier:
        assert model.module_.beta.dtype == torch.float32


def test_bf16_autocast_is_active_on_cuda():
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16 support")
    seen = []

    def loss_fn(module, xb, yb):
        out = module(xb)
        seen.append((torch.is_autocast_enabled("cuda"), out.dtype))
        return torch.nn.functional.mse_loss(out.squeeze(1).float(), yb)

    module = torch.nn.Linear(4, 1).cuda()
    X = torch.randn(64, 4, device="cuda")
    settings = TrainingSettings(epochs=2, batch_size=16, lr=0.01, precision="bf16")
    train(module, loss_fn, X, X.sum(1), settings)
    assert set(seen) == {(True, torch.bfloat16)}
    assert module.weight.dtype == torch.float32


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_training_on_cuda(precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16 support")
    Xtr, ytr, Xte, yte = binary_interaction_task()
    kwargs = dict(epochs=5, warmup_epochs=1, batch_size=128, dropout=0.0, random_state=0)
    eager = IMNClassifier(**kwargs, device="cuda", precision=precision).fit(Xtr, ytr)
    compiled = IMNClassifier(**kwargs, device="cuda", precision=precision, compile=True)
    compiled.fit(Xtr, ytr)
    p_eager, p_compiled = eager.predict_proba(Xte)[:, 1], compiled.predict_proba(Xte)[:, 1]
    assert np.isfinite(p_compiled).all()
    # no dropout, so only fused-kernel rounding separates them
    assert np.abs(p_eager - p_compiled).max() < 0.05
    assert abs(roc_auc_score(yte, p_eager) - roc_auc_score(yte, p_compiled)) < 0.01


def test_compiled_nimo_on_cuda():
    Xtr, ytr, Xte, _ = binary_interaction_task()
    model = NIMOClassifier(
        epochs=3, warmup_epochs=1, early_stopping_patience=None, device="cuda", compile=True
    ).fit(Xtr, ytr)
    assert np.isfinite(model.predict_proba(Xte)).all()
    assert model.module_.beta.dtype == torch.float32
