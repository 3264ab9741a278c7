"""The shared trainer: schedule, snapshots, early stopping, divergence, determinism, logging."""

from __future__ import annotations

import copy
import logging
import math

import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn
from torch.nn import functional as F

from mesobench.errors import ConfigError, DivergenceError
from mesobench.models.training import (
    LRSchedule,
    ReferenceSchedule,
    default_t0_epochs,
    flush_denormals,
    make_optimizer,
    predict_in_batches,
    seed_everything,
    to_tensor,
    train,
)
from mesobench.models.training_settings import TrainingSettings
from mesobench.models.trunk import TabResNetTrunk


def _data(n=200, f=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, f, generator=g)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).float()
    return X, y


def _bce(module, xb, yb):
    return F.binary_cross_entropy_with_logits(module(xb).squeeze(1), yb)


def _mlp(f=5):
    return nn.Sequential(nn.Linear(f, 16), nn.BatchNorm1d(16), nn.GELU(), nn.Linear(16, 1))


FAST = {"batch_size": 32, "lr": 1e-2, "log_every_s": 1e9}


def _fast(**settings) -> TrainingSettings:
    """Settings for the small tests: ``FAST`` unless overridden."""
    return TrainingSettings(**{**FAST, **settings})


# ---- learning-rate schedule ---------------------------------------------------------------


def test_warmup_is_linear_and_reaches_the_base_rate():
    schedule = LRSchedule(steps_per_epoch=4, warmup_epochs=2, kind="cosine_restarts", t0_epochs=1)
    assert [schedule.factor(s) for s in range(8)] == [(s + 1) / 8 for s in range(8)]
    assert schedule.factor(8) == 1.0  # first step after warm-up starts the first cosine cycle


def test_cosine_restarts_match_torch_with_t_mult_2():
    steps_per_epoch, t0 = 5, 3
    schedule = LRSchedule(steps_per_epoch, warmup_epochs=0, kind="cosine_restarts", t0_epochs=t0)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=t0 * steps_per_epoch, T_mult=2
    )
    for step in range(21 * steps_per_epoch):
        assert schedule.factor(step) == pytest.approx(optimizer.param_groups[0]["lr"], abs=1e-12)
        optimizer.step()
        reference.step()


def test_constant_schedule_stays_at_the_base_rate_after_warmup():
    schedule = LRSchedule(steps_per_epoch=3, warmup_epochs=1, kind="constant", t0_epochs=1)
    assert [schedule.factor(s) for s in range(6)] == [1 / 3, 2 / 3, 1, 1, 1, 1]


def test_default_t0_fits_three_cycles_into_the_epochs_after_warmup():
    t0 = default_t0_epochs(epochs=40, warmup_epochs=5)
    assert t0 * (1 + 2 + 4) == pytest.approx(35)


def test_cycle_ends_are_the_last_steps_before_each_restart():
    schedule = LRSchedule(steps_per_epoch=4, warmup_epochs=5, kind="cosine_restarts", t0_epochs=1)
    # cycles of 1, 2 and 4 epochs after 5 warm-up epochs end at epochs 6, 8 and 12
    assert schedule.cycle_end_steps(total_steps=12 * 4) == [6 * 4 - 1, 8 * 4 - 1, 12 * 4 - 1]
    for end in schedule.cycle_end_steps(48):
        assert schedule.factor(end) < schedule.factor(end - 1)  # the cycle's lowest rate
        assert schedule.factor(end + 1) == 1.0  # restart


def test_reference_schedule_matches_the_imn_codes_torch_schedulers():
    """LambdaLR(s / W) then CosineAnnealingWarmRestarts(T_0 = total // 7, 2), as the reference."""
    steps_per_epoch, epochs, base = 11, 40, 0.01
    total = steps_per_epoch * epochs
    ours = ReferenceSchedule(steps_per_epoch, warmup_epochs=5, total_steps=total)
    t0 = max((total * (2 - 1)) // (2**3 - 1), 1)
    assert ours.t0_steps == t0
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=base)
    warm = 5 * steps_per_epoch
    sched = torch.optim.lr_scheduler.SequentialLR(
        opt,
        [
            torch.optim.lr_scheduler.LambdaLR(opt, lambda s: s / warm),
            torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, t0, 2),
        ],
        milestones=[warm],
    )
    for step in range(total):
        assert base * ours.factor(step) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12)
        opt.step()
        sched.step()
    # the reference copies a snapshot when its 1-based iteration count is T_0, 3 T_0 or 7 T_0
    assert ours.cycle_end_steps(total) == [t0 - 1, 3 * t0 - 1, 7 * t0 - 1]


def _cycle_ends(**schedule):
    """Train the small MLP on 64 rows; the cycle indices ``on_cycle_end`` saw, and the result."""
    X, y = _data(n=64)
    seen = []
    result = train(_mlp(), _bce, X, y, _fast(**schedule), on_cycle_end=lambda k, m: seen.append(k))
    return seen, result


def test_reference_timing_takes_three_snapshots_before_the_end():
    ends, result = _cycle_ends(epochs=21, cycle_timing="reference")
    assert ends == [0, 1, 2]
    assert result.cycle_end_epochs[-1] <= 21


# ---- optimiser -----------------------------------------------------------------------------


def _one_step(name, weight_decay, grad_extra=0.0):
    torch.manual_seed(0)
    module = nn.Module()
    module.p = nn.Parameter(torch.randn(6))
    grad = torch.linspace(-1, 1, 6)
    opt = make_optimizer(module, name, lr=0.1, weight_decay=weight_decay)
    for _ in range(3):
        opt.zero_grad()
        module.p.grad = grad + grad_extra * module.p.detach()
        opt.step()
    return module.p.detach().clone()


def test_adam_weight_decay_is_an_l2_term_added_to_the_gradient():
    """Adam(wd) equals Adam(0) fed the gradient g + wd·θ: the reference's coupled L2."""
    assert torch.allclose(_one_step("adam", 0.5), _one_step("adam", 0.0, grad_extra=0.5))
    assert not torch.allclose(_one_step("adamw", 0.5), _one_step("adam", 0.5), atol=1e-4)


def test_adam_and_adamw_are_the_same_update_without_weight_decay():
    assert torch.allclose(_one_step("adam", 0.0), _one_step("adamw", 0.0))


def test_flush_denormals_flushes_subnormals_inside_and_restores_ieee_after():
    tiny = torch.tensor([1e-39])  # subnormal in float32
    assert (tiny * 1.0).item() != 0.0
    with flush_denormals(torch.device("cpu")):
        flushed = (tiny * 1.0).item()
    assert (tiny * 1.0).item() != 0.0
    if torch.backends.cpu.get_cpu_capability() != "DEFAULT":  # x86 with SSE3: FTZ/DAZ exist
        assert flushed == 0.0


# ---- the training loop --------------------------------------------------------------------


def test_training_lowers_the_loss():
    X, y = _data()
    torch.manual_seed(0)
    result = train(_mlp(), _bce, X, y, _fast(epochs=15, warmup_epochs=2))
    assert result.epochs_run == 15 and len(result.losses) == 15
    assert result.losses[-1] < 0.5 * result.losses[0]
    # one wall time per epoch, each a part of the whole
    assert len(result.epoch_seconds) == 15 and min(result.epoch_seconds) > 0
    assert sum(result.epoch_seconds) <= result.seconds


def test_same_seed_gives_bitwise_identical_weights():
    X, y = _data()

    def fit(seed):
        seed_everything(seed)
        module = TabResNetTrunk(5, 8, n_blocks=1)
        train(
            module,
            lambda m, xb, yb: m(xb).sum(1).sub(yb).pow(2).mean(),
            X,
            y,
            _fast(epochs=3, seed=seed, warmup_epochs=1),
        )
        return module.state_dict()

    first, second, other = fit(1), fit(1), fit(2)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def _batch_sizes(n: int, batch_size: int, epochs: int = 1) -> list[int]:
    """The sizes of the batches the trainer feeds the loss, over ``epochs`` epochs of n rows."""
    sizes = []

    def loss_fn(module, xb, yb):
        sizes.append(len(xb))
        return _bce(module, xb, yb)

    X, y = _data(n=n)
    settings = TrainingSettings(epochs=epochs, warmup_epochs=0, batch_size=batch_size, lr=1e-3)
    train(_mlp(), loss_fn, X, y, settings)
    return sizes


def test_a_last_batch_of_one_row_is_dropped_but_larger_remainders_are_kept():
    assert _batch_sizes(9, batch_size=4) == [4, 4]
    assert _batch_sizes(10, batch_size=4) == [4, 4, 2]


def test_batch_size_above_n_means_full_batch():
    assert _batch_sizes(30, batch_size=1000, epochs=2) == [30, 30]


def test_cycle_end_callback_sees_each_completed_cosine_cycle():
    ends, result = _cycle_ends(epochs=12, warmup_epochs=5, t0_epochs=1)
    assert ends == [0, 1, 2]
    assert result.cycle_end_epochs == [6, 8, 12]


def test_epoch_end_callback_gets_loss_lr_and_the_module():
    X, y = _data(n=64)
    seen = []
    module = _mlp()
    train(module, _bce, X, y, _fast(epochs=3, warmup_epochs=0), on_epoch_end=seen.append)
    assert [e.epoch for e in seen] == [1, 2, 3]
    assert all(e.module is module and math.isfinite(e.loss) and e.val_score is None for e in seen)


# ---- early stopping -----------------------------------------------------------------------


def test_early_stopping_restores_the_weights_of_the_best_epoch():
    X, y = _data()
    module = _mlp()
    epoch_counter = iter(range(1, 1000))
    weights_after = {}

    def val_score(m):  # peaks at epoch 4, whatever the model does
        return -((next(epoch_counter) - 4) ** 2)

    def remember(info):
        weights_after[info.epoch] = copy.deepcopy(info.module.state_dict())

    result = train(
        module,
        _bce,
        X,
        y,
        _fast(epochs=50, warmup_epochs=0, early_stopping_patience=3),
        val_score=val_score,
        on_epoch_end=remember,
    )
    assert result.best_epoch == 4 and result.best_score == 0
    assert result.epochs_run == 7 and result.stopped_early
    state = module.state_dict()
    assert all(torch.equal(state[k], weights_after[4][k]) for k in state)
    assert not all(torch.equal(state[k], weights_after[7][k]) for k in state)


def test_without_patience_all_epochs_run_and_the_best_is_still_restored():
    X, y = _data()
    scores = iter([0.1, 0.9, 0.2, 0.3, 0.4])
    result = train(
        _mlp(), _bce, X, y, _fast(epochs=5, warmup_epochs=0), val_score=lambda m: next(scores)
    )
    assert result.epochs_run == 5 and not result.stopped_early
    assert result.best_epoch == 2 and result.val_scores == [0.1, 0.9, 0.2, 0.3, 0.4]


def test_a_nan_validation_score_never_counts_as_the_best():
    X, y = _data()
    scores = iter([float("nan"), 0.5, float("nan"), 0.4])
    result = train(
        _mlp(), _bce, X, y, _fast(epochs=4, warmup_epochs=0), val_score=lambda m: next(scores)
    )
    assert result.best_epoch == 2 and result.best_score == 0.5


def test_patience_without_a_validation_score_is_a_config_error():
    X, y = _data()
    with pytest.raises(ConfigError, match="val_score"):
        train(_mlp(), _bce, X, y, _fast(epochs=2, early_stopping_patience=3))


# ---- failures -----------------------------------------------------------------------------


def test_a_nan_loss_raises_divergence_error_naming_epoch_and_lr():
    X, y = _data()
    X[5, 2] = float("nan")
    with pytest.raises(DivergenceError, match=r"epoch 1/4.*lr.*lower learning rate"):
        train(_mlp(), _bce, X, y, _fast(epochs=4, warmup_epochs=0))


def test_an_exploding_learning_rate_raises_divergence_error():
    X, y = _data()
    with pytest.raises(DivergenceError):
        train(
            nn.Linear(5, 1),
            _bce,
            X,
            y,
            _fast(epochs=3, warmup_epochs=0, lr=1e30, weight_decay=1e-2),
        )


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"epochs": 0}, "an integer >= 1"),
        ({"epochs": -3}, "an integer >= 1"),
        ({"epochs": 2.5}, "an integer >= 1"),
        ({"epochs": True}, "an integer >= 1"),
        ({"lr": 0.0}, "a finite number > 0"),
        ({"lr": float("nan")}, "a finite number > 0"),
        ({"lr": "0.01"}, "a finite number > 0"),
        ({"batch_size": 0}, "an integer >= 1"),
        ({"weight_decay": -1e-3}, "a finite number >= 0"),
        ({"warmup_epochs": -1}, "a finite number >= 0"),
        ({"scheduler": "step"}, "one of ('cosine_restarts', 'constant')"),
        ({"optimizer": "sgd"}, "one of ('adam', 'adamw')"),
        ({"cycle_timing": "cycles"}, "one of ('after_warmup', 'reference')"),
        ({"t0_epochs": 0}, "a finite number > 0 or None"),
        ({"n_cycles": 0}, "an integer >= 1"),
        ({"early_stopping_patience": 0}, "an integer >= 1 or None"),
        ({"early_stopping_patience": -2}, "an integer >= 1 or None"),
        ({"seed": 1.5}, "an integer"),
        ({"log_every_s": -1}, "a finite number >= 0"),
        ({"precision": "fp16"}, "one of ('fp32', 'bf16')"),
        ({"compile": "yes"}, "True or False"),
    ],
)
def test_invalid_settings_are_refused_when_created_naming_value_and_expectation(bad, expected):
    """scikit-learn's InvalidParameterError, also a ConfigError (the runner records it)."""
    ((name, value),) = bad.items()
    with pytest.raises(InvalidParameterError) as info:
        _fast(**{"epochs": 1, **bad})
    assert str(info.value) == f"{name}={value!r} is invalid: expected {expected}" + (
        " (fp32: full precision; bf16: bfloat16 autocast of the training forward pass)."
        if name == "precision"
        else "."
    )
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)


def test_settings_are_frozen_and_read_from_estimator_parameters_by_name():
    params = {"epochs": 3, "batch_size": 8, "lr": 0.1, "hidden_size": 16, "compile": False}
    settings = TrainingSettings.from_params(params, log_every_s=0.0)
    assert (settings.epochs, settings.batch_size, settings.lr) == (3, 8, 0.1)
    assert settings.log_every_s == 0.0 and settings.optimizer == "adam"
    with pytest.raises(AttributeError):
        settings.epochs = 4


# ---- logging ------------------------------------------------------------------------------


def test_progress_lines_are_throttled(caplog):
    X, y = _data()
    with caplog.at_level(logging.INFO, logger="mesobench.models.training"):
        train(_mlp(), _bce, X, y, _fast(epochs=5))
    assert len(caplog.records) == 1  # only the summary
    assert "trained 5/5 epochs" in caplog.records[0].getMessage()


def test_log_every_zero_gives_one_line_per_epoch_and_none_per_batch(caplog):
    X, y = _data()
    with caplog.at_level(logging.INFO, logger="mesobench.models.training"):
        train(_mlp(), _bce, X, y, _fast(epochs=3, batch_size=16, log_every_s=0))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 + 1
    assert messages[0].startswith("epoch 1/3")


# ---- a custom model and loss (the IMN shape) ----------------------------------------------


def test_a_hypernetwork_with_a_custom_loss_trains_unchanged():
    """IMN: trunk + Linear(H → (F+1)·C) emits per-instance linear weights; loss adds λ·mean|w|."""
    X, y = _data(n=256)
    F_, C = X.shape[1], 1

    class HyperNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = TabResNetTrunk(F_, 16, n_blocks=1)
            self.head = nn.Linear(16, (F_ + 1) * C)

        def forward(self, x):
            w = self.head(self.trunk(x)).view(-1, F_ + 1, C)
            x1 = torch.cat([x, torch.ones(len(x), 1)], dim=1)
            return torch.einsum("nf,nfc->nc", x1, w), w

    def imn_loss(module, xb, yb):
        logits, w = module(xb)
        return F.binary_cross_entropy_with_logits(logits.squeeze(1), yb) + 0.01 * w.abs().mean()

    torch.manual_seed(0)
    module = HyperNet()
    result = train(module, imn_loss, X, y, _fast(epochs=20, warmup_epochs=2))
    assert result.losses[-1] < 0.6 * result.losses[0]
    logits, weights = predict_in_batches(module, X, batch_size=100)
    assert logits.shape == (256, 1) and weights.shape == (256, F_ + 1, 1)
    assert not module.training


# ---- helpers ------------------------------------------------------------------------------


def test_to_tensor_accepts_numpy_pandas_and_tensors():
    import numpy as np
    import pandas as pd

    array = np.arange(6, dtype=np.float64).reshape(3, 2)
    for value in (array, pd.DataFrame(array), torch.as_tensor(array)):
        t = to_tensor(value, "cpu")
        assert t.dtype == torch.float32 and t.shape == (3, 2)
    assert to_tensor([0, 1], "cpu", dtype=torch.long).dtype == torch.long


def test_predict_in_batches_equals_one_full_pass_in_eval_mode():
    torch.manual_seed(0)
    module = _mlp()
    X, _ = _data(n=50)
    batched = predict_in_batches(module, X, batch_size=7)
    with torch.no_grad():
        assert torch.allclose(batched, module.eval()(X))
