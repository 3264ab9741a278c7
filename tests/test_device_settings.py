"""GPU settings of conf/device/*.yaml: precision (bf16 autocast), compile, batch_size_scale.

Everything here runs on the CPU (bf16 autocast works there too); the CUDA versions of the
training tests are in test_models_gpu.py and skip without a GPU.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn import functional as F

from conftest import binary_interaction_task, composed, run_key_of, runner, runs_after
from mesobench import models
from mesobench.config import identity
from mesobench.config.paths import register_resolvers
from mesobench.errors import ConfigError, InvalidParameterError
from mesobench.models import (
    IMNClassifier,
    LFRIMNClassifier,
    NIMOClassifier,
    NIMORegressor,
    TabResNetClassifier,
    nimo,
    training,
)
from mesobench.protocol import estimators
from mesobench.protocol.estimators import DeviceSettings, build_estimator, settings_notes

register_resolvers()
TORCH_MODELS = [
    getattr(models, f"{family}{role}")
    for family in ("IMN", "LFRIMN", "NIMO", "TabResNet")
    for role in ("Classifier", "Regressor")
]


def _settings(*overrides: str) -> DeviceSettings:
    return DeviceSettings.from_config(OmegaConf.to_container(composed(*overrides).device))


# ---- config composition ------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "cuda", "auto"])
def test_every_device_config_defaults_to_fp32_uncompiled_unscaled(device):
    cfg = composed(f"device={device}")
    assert cfg.device.name == device
    assert {"precision", "compile", "batch_size_scale"} <= set(cfg.device)
    settings = DeviceSettings.from_config(OmegaConf.to_container(cfg.device))
    assert settings == DeviceSettings()
    assert settings.non_default() == {}


def test_gpu_settings_compose_from_the_command_line():
    settings = _settings(
        "device=cuda", "device.precision=bf16", "device.compile=true", "device.batch_size_scale=4"
    )
    assert settings == DeviceSettings(precision="bf16", compile=True, batch_size_scale=4)
    assert settings.non_default() == {"precision": "bf16", "compile": True, "batch_size_scale": 4}
    assert settings.estimator_params() == {"precision": "bf16", "compile": True}


def test_a_device_config_without_the_keys_takes_the_defaults():
    assert DeviceSettings.from_config({"name": "cuda"}) == DeviceSettings()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("device.precision=fp16", "device.precision"),
        ("device.precision=BF16", "device.precision"),
        ("device.compile=maybe", "device.compile"),
        ("device.compile=1", "device.compile"),
        ("device.batch_size_scale=0", "device.batch_size_scale"),
        ("device.batch_size_scale=1.5", "device.batch_size_scale"),
        ("device.batch_size_scale=true", "device.batch_size_scale"),
    ],
)
def test_bad_device_settings_are_refused_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _settings("device=cuda", override)


def test_the_runner_and_the_trainer_agree_on_the_precisions():
    assert estimators.PRECISIONS == training.PRECISIONS


def test_the_runner_refuses_a_bad_setting_before_any_run(tmp_path, store):
    proc = runner("device.precision=fp16", store=store, tmp_path=tmp_path)
    assert proc.returncode != 0
    assert "device.precision='fp16' is invalid" in proc.stderr


# ---- run key -------------------------------------------------------------------------------------


def _key(cfg):
    return run_key_of(cfg)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_run_key_is_the_same_with_the_default_settings_spelled_out(device):
    cfg = composed("model=imn_fast", f"device={device}")
    spelled_out = composed(
        "model=imn_fast",
        f"device={device}",
        "device.precision=fp32",
        "device.compile=false",
        "device.batch_size_scale=1",
    )
    assert _key(spelled_out) == _key(cfg)


def test_run_key_changes_with_each_non_default_setting():
    base = _key(composed("model=imn_fast", "device=cuda"))
    keys = {
        override: _key(composed("model=imn_fast", "device=cuda", override))
        for override in (
            "device.precision=bf16",
            "device.compile=true",
            "device.batch_size_scale=2",
            "device.batch_size_scale=4",
        )
    }
    assert base not in keys.values()
    assert len(set(keys.values())) == len(keys)


def test_config_hash_tells_non_default_settings_apart():
    """The aggregator labels configurations by config_hash: bf16 runs must not average with fp32."""
    default = composed("model=imn_fast", "device=cuda")
    bf16 = composed("model=imn_fast", "device=cuda", "device.precision=bf16")
    other_fold = composed("model=imn_fast", "device=cuda", "fold=3")

    def config_hash(cfg):
        return identity.config_hash(OmegaConf.to_container(cfg, resolve=True))

    assert config_hash(bf16) != config_hash(default)
    assert config_hash(other_fold) == config_hash(default)  # same configuration, other fold


# ---- the runner builds the estimator -----------------------------------------------------------


def _model(name: str) -> dict:
    return OmegaConf.to_container(composed(f"model={name}").model, resolve=True)


def test_batch_size_is_scaled_and_the_settings_passed_to_a_torch_model():
    model = _model("imn_fast")
    settings = DeviceSettings(precision="bf16", compile=True, batch_size_scale=4)
    est = build_estimator(model, "binary", seed=0, device="cpu", threads=1, settings=settings)
    assert est.batch_size == 4 * model["params"]["batch_size"] == 1024
    assert est.lr == model["params"]["lr"]  # the learning rate is not rescaled
    assert (est.precision, est.compile) == ("bf16", True)
    assert settings_notes(model, est, settings, "binary") == []
    assert model["params"]["batch_size"] == 256  # the config itself is left alone


def test_default_settings_build_the_estimator_as_before():
    model = _model("nimo")
    est = build_estimator(model, "binary", seed=0, device="cpu", threads=1)
    assert est.batch_size == model["params"]["batch_size"]
    assert (est.precision, est.compile) == ("fp32", False)


@pytest.mark.parametrize("scale", [1, 2])
def test_a_batch_size_set_for_one_task_kind_is_the_one_that_kind_trains_with(scale):
    # regressor_params / classifier_params are merged over params for their kind, batch_size
    # included: the device's scale multiplies the kind's own batch size, not params'
    model = _model("nimo_synthetic")
    model["regressor_params"]["batch_size"] = 128
    settings = DeviceSettings(batch_size_scale=scale)
    reg = build_estimator(model, "regression", seed=0, device="cpu", threads=1, settings=settings)
    clf = build_estimator(model, "binary", seed=0, device="cpu", threads=1, settings=settings)
    assert reg.batch_size == 128 * scale
    assert clf.batch_size == model["params"]["batch_size"] * scale != reg.batch_size


def test_a_model_without_the_settings_gets_notes_not_an_error():
    model = _model("xgboost")
    settings = DeviceSettings(precision="bf16", compile=True, batch_size_scale=2)
    est = build_estimator(model, "binary", seed=0, device="cpu", threads=1, settings=settings)
    assert "precision" not in est.get_params()
    notes = settings_notes(model, est, settings, "binary")
    assert len(notes) == 3
    assert any("device.precision=bf16 ignored" in note for note in notes)
    assert any("device.compile=True ignored" in note for note in notes)
    assert any("device.batch_size_scale=2 ignored" in note for note in notes)
    assert settings_notes(model, est, DeviceSettings(), "binary") == []


def test_precision_in_the_model_params_clashes_with_the_device_setting():
    model = _model("tabresnet")
    model["params"]["precision"] = "bf16"
    with pytest.raises(ConfigError, match="device.precision"):
        build_estimator(model, "binary", seed=0, device="cpu", threads=1)


def test_the_runner_logs_the_settings_and_notes_what_a_model_ignores(tmp_path, store):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    rows = [f"{a:.4f},{b:.4f},{c:.4f},{'yes' if a + b > 0 else 'no'}" for a, b, c in X]
    data = tmp_path / "t.csv"
    data.write_text("a,b,c,label\n" + "\n".join(rows) + "\n")
    task = ("task=csv", f"task.path={data}", "task.target=label", "fidelity.enabled=false")
    device = ("device.precision=bf16", "device.batch_size_scale=2")
    swept = runs_after(
        "model=logreg,tabresnet", *task, *device, store=store, tmp_path=tmp_path, multirun=True
    )
    runs = {r.data.tags["model"]: r for r in swept}
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    for run in runs.values():
        assert run.data.params["device.precision"] == "bf16"
        assert run.data.params["device.compile"] == "False"
        assert run.data.params["device.batch_size_scale"] == "2"
    notes = runs["logreg"].data.tags["notes"]
    assert "device.precision=bf16 ignored" in notes
    assert "device.batch_size_scale=2 ignored" in notes
    assert "ignored" not in runs["tabresnet"].data.tags.get("notes", "")
    assert runs["tabresnet"].data.params["batch_size_effective"] == "512"


# ---- estimator parameters ----------------------------------------------------------------------


def _tiny(cls):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    y = X[:, 0] if "Regressor" in cls.__name__ else (X[:, 0] > 0).astype(int)
    return X, y


@pytest.mark.parametrize("cls", TORCH_MODELS)
def test_precision_and_compile_are_documented_stored_and_checked_at_fit(cls):
    assert "precision : " in cls.__doc__ and "compile : " in cls.__doc__
    assert cls().get_params()["precision"] == "fp32"
    assert cls().get_params()["compile"] is False
    est = cls(precision="fp16", epochs=1)  # sklearn style: stored as given, checked at fit
    assert est.get_params()["precision"] == "fp16"
    X, y = _tiny(cls)
    with pytest.raises(ValueError, match=r"precision='fp16' is invalid") as info:
        est.fit(X, y)
    assert isinstance(info.value, ConfigError)  # and the runner records it as a config error
    with pytest.raises(InvalidParameterError, match=r"compile='yes' is invalid"):
        cls(compile="yes", epochs=1).fit(X, y)


def test_the_trainer_checks_the_settings_too():
    X, y = torch.randn(8, 2), torch.randn(8)
    with pytest.raises(ValueError, match="precision"):
        settings = training.TrainingSettings(epochs=1, batch_size=4, lr=0.1, precision="x")
        training.train(nn.Linear(2, 1), _mse, X, y, settings)


# ---- bf16 autocast -----------------------------------------------------------------------------


def _mse(module, xb, yb):
    return F.mse_loss(module(xb).squeeze(1), yb)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_bf16_autocasts_the_forward_pass_and_keeps_fp32_master_weights(precision):
    seen = []

    def loss_fn(module, xb, yb):
        out = module(xb)
        seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
        return F.mse_loss(out.squeeze(1), yb)  # autocast's fp32 list, but not in every version

    torch.manual_seed(0)
    module = nn.Linear(4, 1)
    X = torch.randn(64, 4)
    y = X.sum(1)
    result = training.train(
        module,
        loss_fn,
        X,
        y,
        training.TrainingSettings(
            epochs=3, batch_size=16, lr=0.01, warmup_epochs=0, precision=precision
        ),
    )
    expected = (True, torch.bfloat16) if precision == "bf16" else (False, torch.float32)
    assert set(seen) == {expected}
    assert all(p.dtype == torch.float32 for p in module.parameters())
    assert all(np.isfinite(result.losses))
    assert not torch.is_autocast_enabled("cpu")  # nothing leaks out of the trainer


# Measured on this task (5 epochs, CPU, 1 thread), max |p_bf16 − p_fp32| over the test rows for
# seeds 0–3: IMN 0.006–0.010, LFR-IMN 0.009–0.014, NIMO 0.004–0.025, TabResNet 0.0008 (seed 0);
# AUROC differences ≤ 0.0035. Changing only the seed (fp32 both) moves the probabilities by
# 0.21–0.49, so the bounds below (0.05; 0.01 AUROC) sit 2–5x above bf16 rounding and well
# under seed-to-seed noise. (NIMO's training amplifies small perturbations: after 20+ epochs
# bf16 and fp32, or fp32 with inputs perturbed by 2^-9, differ about as much as two seeds,
# while the AUROC stays within seed noise; hence the short training here.)
BF16_PROBA_TOL = 0.05
BF16_AUROC_TOL = 0.01


@pytest.mark.parametrize(
    "cls", [IMNClassifier, LFRIMNClassifier, NIMOClassifier, TabResNetClassifier]
)
def test_bf16_training_predicts_close_to_fp32(cls):
    Xtr, ytr, Xte, yte = binary_interaction_task()
    kwargs = dict(epochs=5, warmup_epochs=1, batch_size=128, random_state=0, n_jobs=1)
    if cls is NIMOClassifier:
        kwargs["early_stopping_patience"] = None
    p32 = cls(**kwargs).fit(Xtr, ytr).predict_proba(Xte)[:, 1]
    p16 = cls(**kwargs, precision="bf16").fit(Xtr, ytr).predict_proba(Xte)[:, 1]
    assert p16.dtype == np.float64  # inference is full precision whatever the training
    assert not np.array_equal(p32, p16)  # bf16 really ran
    assert np.abs(p32 - p16).max() < BF16_PROBA_TOL
    assert abs(roc_auc_score(yte, p32) - roc_auc_score(yte, p16)) < BF16_AUROC_TOL


def test_bf16_training_is_reproducible():
    Xtr, ytr, Xte, _ = binary_interaction_task()
    kwargs = dict(epochs=2, warmup_epochs=1, precision="bf16", random_state=0, n_jobs=1)
    a = IMNClassifier(**kwargs).fit(Xtr, ytr).predict_proba(Xte)
    b = IMNClassifier(**kwargs).fit(Xtr, ytr).predict_proba(Xte)
    np.testing.assert_array_equal(a, b)


def test_nimo_regressor_bf16_is_close_to_fp32():
    Xtr, _, Xte, _ = binary_interaction_task()
    ytr = Xtr @ np.array([1.5, -1.0, 0.5, 0.0, 0.0]) + 0.5 * Xtr[:, 0] * Xtr[:, 1]
    kwargs = dict(epochs=5, warmup_epochs=1, batch_size=128, early_stopping_patience=None)
    fits = [
        NIMORegressor(**kwargs, precision=p, random_state=0, n_jobs=1).fit(Xtr, ytr)
        for p in ("fp32", "bf16")
    ]
    y32, y16 = (m.predict(Xte) for m in fits)
    # measured 0.005 of y's std (seed-to-seed: 0.22)
    assert np.abs(y32 - y16).max() < 0.05 * ytr.std()
    assert fits[1].module_.beta.dtype == torch.float32


def test_nimo_solves_beta_in_full_precision_under_bf16(monkeypatch):
    """The network runs under autocast; the β solve gets float32 inputs with autocast off."""
    solves, designs = [], []
    ridge_solve = nimo.ridge_solve
    design = nimo.NIMONetwork.design

    def spy_solve(Z, w, rhs, ridge):
        solves.append((Z.dtype, w.dtype, rhs.dtype, torch.is_autocast_enabled("cpu")))
        return ridge_solve(Z, w, rhs, ridge)

    def spy_design(self, x):
        designs.append(torch.is_autocast_enabled("cpu"))
        return design(self, x)

    monkeypatch.setattr(nimo, "ridge_solve", spy_solve)
    monkeypatch.setattr(nimo.NIMONetwork, "design", spy_design)
    Xtr, ytr, _, _ = binary_interaction_task()
    model = NIMOClassifier(
        epochs=2, warmup_epochs=1, batch_size=128, early_stopping_patience=None, precision="bf16"
    ).fit(Xtr, ytr)
    assert True in designs  # training steps: autocast on in the network
    assert designs[-1] is False  # the final β refit runs outside autocast
    assert solves and set(solves) == {(torch.float32,) * 3 + (False,)}
    assert model.module_.beta.dtype == torch.float32
    assert np.asarray(model.coef_).dtype == np.float64


def test_ridge_solve_casts_low_precision_inputs_up():
    gen = torch.Generator().manual_seed(0)
    Z = torch.randn(1, 50, 4, generator=gen)
    w = torch.rand(1, 50, generator=gen)
    rhs = torch.randn(1, 4, generator=gen)
    exact = nimo.ridge_solve(Z, w, rhs, 0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = nimo.ridge_solve(Z, w, rhs, 0.1)
    bf16_inputs = nimo.ridge_solve(Z.bfloat16(), w.bfloat16(), rhs.bfloat16(), 0.1)
    assert under_autocast.dtype == bf16_inputs.dtype == torch.float32
    torch.testing.assert_close(under_autocast, exact)  # autocast had no effect inside
    torch.testing.assert_close(bf16_inputs, exact, rtol=0.05, atol=0.02)  # input rounding only


# ---- torch.compile -----------------------------------------------------------------------------


def test_a_failing_compilation_raises_a_clear_error(monkeypatch):
    def broken_compile(fn, *args, **kwargs):
        def compiled(*a, **k):
            raise RuntimeError("backend exploded")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    X, y = torch.randn(16, 2), torch.randn(16)
    with pytest.raises(ConfigError, match="torch.compile failed on the first training step") as e:
        settings = training.TrainingSettings(epochs=1, batch_size=8, lr=0.1, compile=True)
        training.train(nn.Linear(2, 1), _mse, X, y, settings)
    assert "backend exploded" in str(e.value) and "compile=False" in str(e.value)


def _cxx_compiler() -> str | None:
    return shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


@pytest.mark.skipif(
    _cxx_compiler() is None, reason="torch.compile's CPU backend needs a C++ compiler"
)
@pytest.mark.slow  # compiles with torch.compile
def test_compile_on_cpu_matches_eager_training():
    """A tiny model (compiles in ~5 s on 2 cores; a whole IMN fit takes ~45 s, so not here)."""
    X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    y = X.sum(1)
    losses = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        module = nn.Linear(4, 1)
        result = training.train(
            module,
            _mse,
            X,
            y,
            training.TrainingSettings(
                epochs=3, batch_size=32, lr=0.01, warmup_epochs=0, compile=compile_
            ),
        )
        losses.append(result.losses)
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
