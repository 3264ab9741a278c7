"""Shared mini-batch trainer for the torch models (TabResNet, IMN, LFR-IMN, NIMO).

The trainer knows nothing about the model: it takes an ``nn.Module`` and a loss function
``loss_fn(module, xb, yb) -> scalar Tensor``, so a plain classifier (logits → cross-entropy) and
the IMN hypernetwork (generated weights → task loss + λ·mean|w|) train through the same code.

Design (after the IMN reference code of Kadra et al., NeurIPS 2024 (IMN)):

* the whole training set lives on the device as two tensors; batches are index slices of a
  ``torch.randperm`` drawn from a seeded ``torch.Generator``, so there is no DataLoader and no
  host↔device traffic per step. The loss is summed on the device and read back once per epoch,
  which is also when a non-finite loss is detected (:class:`~mesobench.errors.DivergenceError`);
* Adam with L2 weight decay added to the gradient (``torch.optim.Adam``, the IMN reference's
  optimiser) or AdamW (decoupled decay), see :func:`make_optimizer`; a linear warm-up over
  ``warmup_epochs`` then cosine annealing with warm restarts (T_mult = 2), updated every batch
  (:class:`LRSchedule`, or the reference's iteration-based timing, :class:`ReferenceSchedule`);
  or a constant rate after warm-up;
* hooks: ``on_cycle_end`` is called at the exact step where a cosine cycle ends (for snapshot
  ensembles, as the IMN reference), ``on_epoch_end`` after every epoch;
* optional early stopping on ``val_score(module)`` (higher is better), restoring the best weights;
* progress through :mod:`logging`, at most one INFO line every ``log_every_s`` seconds plus one
  summary line per fit;
* optional bfloat16 autocast of the loss forward pass (``precision="bf16"``, float32 master
  weights and optimiser) and ``torch.compile`` of the per-step loss (``compile=True``); the
  models predict and explain in float32, uncompiled, whatever these settings;
* the settings arrive as one checked :class:`~mesobench.models.training_settings.TrainingSettings`
  value, so a bad one fails before anything is built.

Determinism: :func:`train` seeds the batch order with its own generator and reseeds torch's global
RNG (used by dropout) with ``settings.seed``; on the CPU, with the same thread count, the same
seed gives bitwise-identical weights (in fp32 without ``compile``; bf16 runs are reproducible
too, but differ from fp32 by rounding). Seed the module's initialisation yourself
(:func:`seed_everything`) before building it.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from torch import Tensor, nn

from mesobench.config.expect import one_of
from mesobench.errors import ConfigError, DataError, DivergenceError
from mesobench.models.training_settings import (
    OPTIMIZERS,
    PRECISIONS,  # noqa: F401 -- mesobench.protocol.estimators.PRECISIONS mirrors it from here
    TrainingSettings,
    check_parameters,
)

logger = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
"""``loss_fn(module, xb, yb)`` returns the scalar loss of one batch (module in training mode)."""


# ---- helpers shared by the estimators -----------------------------------------------------


def seed_from(random_state) -> int:
    """An int seed for a library that wants one: the int itself, or one drawn from the RNG."""
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def encode_class_labels(y) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, codes)`` of training labels, with a clear error when only one class is present.

    Shared by every classifier so that a fold where a class is absent fails the same way.
    """
    check_classification_targets(y)
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DataError(
            f"The training labels contain one class only ({classes[0]!r}); "
            "a classifier needs at least two."
        )
    return classes, codes


def encode_eval_labels(classes: np.ndarray, y_val) -> tuple[np.ndarray, np.ndarray]:
    """``(keep, codes)`` for validation labels: rows whose label is in ``classes`` and their codes.

    A stratified validation split can hold a rare class that the training part lacks; those rows
    are dropped with a warning rather than failing the run (they only guide early stopping).
    """
    y_val = np.asarray(y_val)
    keep = np.isin(y_val, classes)
    if not keep.all():
        unseen = np.unique(y_val[~keep])[:5].tolist()
        warnings.warn(
            f"eval_set: dropped {int((~keep).sum())} row(s) whose labels {unseen} are absent "
            "from the training labels.",
            stacklevel=3,
        )
    return keep, np.searchsorted(classes, y_val[keep])


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs (all devices) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 -- seeding the legacy global RNG is the point
    torch.manual_seed(seed)


@contextmanager
def flush_denormals(device: torch.device) -> Iterator[None]:
    """Treat subnormal floats as zero on the CPU for the block, then restore IEEE behaviour.

    Why: Adam's L2 decay drives unused weights, and Adam's second-moment estimates of weights
    whose gradients vanish, towards 0 through the subnormal range (|x| < 1.2e-38), where x86
    arithmetic is about 100x slower. Measured on IMN at the paper settings (diabetes, 500
    epochs, batch 64, one thread): epochs slowed from 35 ms to 330 ms after epoch ~150 and a
    fit took 97 s instead of 20 s. Flushing changes only values below 1.2e-38. torch has no
    getter for the flag, so the block restores the default (off). No effect off the CPU or
    where the CPU has no such mode.
    """
    if device.type != "cpu" or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` torch CPU threads, then restore the count (None: no change)."""
    if n_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def to_tensor(X: Any, device: str | torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    """Copy ``X`` (NumPy array, pandas object, list or Tensor) to a contiguous tensor on ``device``."""
    if isinstance(X, Tensor):
        return X.to(device=device, dtype=dtype).contiguous()
    return torch.tensor(np.asarray(X), dtype=dtype, device=device)


def predict_in_batches(
    module: nn.Module,
    X: Tensor,
    batch_size: int = 4096,
    fn: Callable[[nn.Module, Tensor], Any] | None = None,
) -> Any:
    """Run ``module`` (or ``fn(module, xb)``) over ``X`` in batches, in eval and inference mode.

    Returns the concatenated output on ``X``'s device: a Tensor, or a tuple of Tensors when the
    module returns a tuple (e.g. IMN's ``(logits, weights)``). The module is left in eval mode.
    """
    module.eval()
    forward = fn if fn is not None else (lambda m, xb: m(xb))
    outputs = []
    with torch.inference_mode():
        for start in range(0, X.shape[0], batch_size):
            outputs.append(forward(module, X[start : start + batch_size]))
    if outputs and isinstance(outputs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outputs, strict=True))
    return torch.cat(outputs)


# ---- the trainer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LRSchedule:
    """Learning-rate multiplier per optimiser step.

    Step ``s`` (0-based) is at training time ``t = s / steps_per_epoch`` epochs.

    * warm-up, ``s < W = round(warmup_epochs · steps_per_epoch)``: factor ``(s + 1) / W``, a
      linear ramp that reaches the base rate at the last warm-up step;
    * ``"constant"``: factor 1 afterwards;
    * ``"cosine_restarts"``: with ``τ = t − warmup_epochs`` the time since warm-up, cycle ``k``
      (k = 0, 1, ...) covers ``τ ∈ [T0·(2^k − 1), T0·(2^{k+1} − 1))`` and has length ``T0·2^k``;
      inside it the factor is ``½(1 + cos(π · (τ − start_k) / length_k))``, from 1 down towards 0.
      This is ``CosineAnnealingWarmRestarts(T_0=T0, T_mult=2, eta_min=0)`` stepped with
      fractional epochs, except that ``T0`` may be fractional too.
    """

    steps_per_epoch: int
    warmup_epochs: float
    kind: str
    t0_epochs: float

    @property
    def warmup_steps(self) -> int:
        return round(self.warmup_epochs * self.steps_per_epoch)

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        tau = (step - self.warmup_steps) / self.steps_per_epoch
        start, length = 0.0, self.t0_epochs
        while tau >= start + length:
            start, length = start + length, 2 * length
        return 0.5 * (1.0 + math.cos(math.pi * (tau - start) / length))

    def cycle_end_steps(self, total_steps: int) -> list[int]:
        """0-based steps that end a cosine cycle (the last step before a restart), up to total_steps."""
        if self.kind != "cosine_restarts":
            return []
        ends, k = [], 0
        while True:
            boundary = self.t0_epochs * (2 ** (k + 1) - 1) * self.steps_per_epoch
            last = self.warmup_steps + math.ceil(round(boundary, 6)) - 1
            if last >= total_steps:
                return ends
            ends.append(last)
            k += 1


def default_t0_epochs(epochs: int, warmup_epochs: float, n_cycles: int = 3) -> float:
    """T0 such that ``n_cycles`` cosine cycles (T_mult = 2) exactly fill the epochs after warm-up.

    The cycles last T0, 2·T0, 4·T0, ..., so ``T0 = (epochs − warmup) / (2^n_cycles − 1)``, as in
    the IMN reference (which takes 3 snapshots at the ends of 3 cycles).
    """
    return max(epochs - warmup_epochs, 1e-9) / (2**n_cycles - 1)


@dataclass(frozen=True)
class ReferenceSchedule:
    """The IMN reference code's learning-rate timing, counted in optimiser steps.

    The reference builds ``SequentialLR([LambdaLR(s / W), CosineAnnealingWarmRestarts(T_0,
    T_mult=2)], milestones=[W])`` with ``W = 5 · steps_per_epoch`` and
    ``T_0 = ⌊total_steps / (2^n − 1)⌋`` iterations, computed from *all* steps, warm-up
    included, and copies the snapshots after the optimiser steps numbered ``T_0``, ``3 T_0``,
    ``7 T_0`` (1-based), i.e. by the global step count rather than at the ends of the cycles
    (which start W steps later). So step ``s`` (0-based) trains with

    * ``s < W``: factor ``s / W`` (the very first step at rate 0);
    * else, with ``τ = s − W`` steps: cosine over cycles of ``T_0, 2 T_0, 4 T_0`` steps;

    and the snapshots fall ``W`` steps before the cycle ends, where the rate is already near 0.
    The last cycle is cut off by the end of training. ``warmup_epochs`` is the reference's 5.
    """

    steps_per_epoch: int
    warmup_epochs: float
    total_steps: int
    n_cycles: int = 3

    @property
    def warmup_steps(self) -> int:
        return round(self.warmup_epochs * self.steps_per_epoch)

    @property
    def t0_steps(self) -> int:
        return max(self.total_steps // (2**self.n_cycles - 1), 1)

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return step / self.warmup_steps
        tau, start, length = step - self.warmup_steps, 0, self.t0_steps
        while tau >= start + length:
            start, length = start + length, 2 * length
        return 0.5 * (1.0 + math.cos(math.pi * (tau - start) / length))

    def cycle_end_steps(self, total_steps: int) -> list[int]:
        """0-based steps after which the reference copies its snapshots: T_0·(2^(k+1) − 1) − 1."""
        ends = [self.t0_steps * (2 ** (k + 1) - 1) - 1 for k in range(self.n_cycles)]
        return [s for s in ends if s < total_steps]


@dataclass(frozen=True)
class EpochEnd:
    """What ``on_epoch_end`` receives after every epoch."""

    epoch: int  # 1-based
    epochs: int
    loss: float  # mean training loss over the epoch's batches
    val_score: float | None
    lr: float  # learning rate of the epoch's last step
    module: nn.Module


@dataclass
class TrainResult:
    """Summary of one :func:`train` call.

    ``best_epoch`` is the epoch whose weights the module holds on return: the epoch with the
    highest validation score when ``val_score`` was given, else the last epoch run.
    ``epoch_seconds[k]`` is the wall time of epoch k + 1's optimisation steps, up to the
    epoch's one host sync (so on a GPU it includes the queued kernels), without the validation
    score. It measures training cost per epoch directly; the first epoch also pays one-off
    costs (allocations, lazy initialisation, compilation). ``lrs[k]`` is the learning rate of
    epoch k + 1's last step.
    """

    epochs_run: int
    best_epoch: int
    best_score: float | None
    stopped_early: bool
    losses: list[float] = field(default_factory=list)
    val_scores: list[float] = field(default_factory=list)
    cycle_end_epochs: list[float] = field(default_factory=list)
    seconds: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (saved with a model by :mod:`mesobench.models.persistence`)."""
        return asdict(self)

    def record_epoch(self, epoch: int, loss: float, lr: float) -> None:
        self.losses.append(loss)
        self.lrs.append(lr)
        self.epochs_run = epoch

    def curves(self) -> dict[str, list[float]]:
        """The per-epoch series, one value per epoch run (entry k: epoch k + 1): ``loss``
        (mean training loss), ``lr``, ``epoch_seconds`` and, when a validation score was
        monitored, ``val_score``. Series a fit did not record (a model saved before the series
        existed) are left out."""
        series = {
            "loss": self.losses,
            "val_score": self.val_scores,
            "lr": self.lrs,
            "epoch_seconds": self.epoch_seconds,
        }
        return {name: list(values) for name, values in series.items() if values}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def make_optimizer(
    module: nn.Module, name: str, *, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """Adam (L2 decay added to the gradient) or AdamW (decoupled decay), fused where it applies.

    ``"adam"`` is ``torch.optim.Adam(lr, weight_decay)``, the optimiser of the IMN reference
    code: the decay term ``wd · θ`` joins the gradient *before* Adam's per-parameter scaling, so
    it acts as an L2 penalty. ``"adamw"`` subtracts ``lr · wd · θ`` after the scaling. With
    ``weight_decay = 0`` the two are the same update. At the IMN paper's settings (lr 0.01,
    wd 0.01) Adam's L2 is a much stronger regulariser: on the 10 diabetes folds AdamW gave a
    mean AUROC of 0.753 against 0.840 with Adam, the figure of Kadra et al., NeurIPS 2024
    (IMN) (results/imn_parity/).

    PyTorch's fused kernel updates every parameter in one pass instead of a few small ops per
    tensor; for these small networks the optimiser step is a large share of a step (IMN at
    batch 64: about 10 % faster per epoch on CPU). It computes the same update up to
    floating-point rounding order. Other devices or dtypes keep the default implementation.
    """
    check_parameters({"optimizer": name}, {"optimizer": one_of(OPTIMIZERS)})
    params = [p for p in module.parameters() if p.requires_grad]
    fused = bool(params) and all(
        p.dtype in (torch.float32, torch.float64) and p.device.type in ("cpu", "cuda")
        for p in params
    )
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return cls(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


def train(
    module: nn.Module,
    loss_fn: LossFn,
    X: Tensor,
    y: Tensor,
    settings: TrainingSettings,
    *,
    val_score: Callable[[nn.Module], float] | None = None,
    on_epoch_end: Callable[[EpochEnd], None] | None = None,
    on_cycle_end: Callable[[int, nn.Module], None] | None = None,
) -> TrainResult:
    """Train ``module`` in place on ``(X, y)`` (tensors on the device to train on).

    ``loss_fn(module, xb, yb)``: a batch's scalar loss, so any custom loss trains. ``settings``
    (already checked when it was created): at most ``epochs`` passes of ``batch_size`` rows per
    step (cut to n; reshuffled every epoch; a last batch of one row is dropped: BatchNorm cannot
    normalise it); optimiser :func:`make_optimizer`; learning-rate schedule :func:`plan_steps`;
    ``seed`` seeds the batch order and torch's global RNG (dropout); ``precision`` and
    ``compile``: :func:`_step_loss`; at most one INFO line per ``log_every_s`` seconds.
    ``val_score(module)`` (higher is better) after every epoch: the best epoch's weights are
    restored at the end (NaN never counts), and ``early_stopping_patience`` epochs without
    improvement stop the fit. Hooks: ``on_epoch_end(EpochEnd)``; ``on_cycle_end(k, module)``
    right after the step that ends cosine cycle k (snapshot ensembles).

    Raises :class:`DivergenceError` when an epoch's mean loss is not finite,
    :class:`ConfigError` for patience without a ``val_score``, :class:`DataError` when X and y
    do not match or hold fewer than 2 rows.
    """
    step_loss = _step_loss(
        loss_fn, X.device, precision=settings.precision, compile=settings.compile
    )
    _check_data(X, y)
    patience, epochs, lr = settings.early_stopping_patience, settings.epochs, settings.lr
    if patience is not None and val_score is None:
        raise ConfigError("patience (early stopping) needs a val_score callable to monitor.")
    plan = plan_steps(X.shape[0], settings)
    optim = make_optimizer(module, settings.optimizer, lr=lr, weight_decay=settings.weight_decay)
    generator = torch.Generator(device=X.device).manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    result = TrainResult(epochs_run=0, best_epoch=0, best_score=None, stopped_early=False)
    best = _BestWeights()
    with flush_denormals(X.device):
        clock = _Clock(settings.log_every_s)
        step = 0
        for epoch in range(1, epochs + 1):
            epoch_started = time.perf_counter()
            loss_sum, step, current_lr = _run_epoch(
                module, optim, step_loss, X, y, plan, lr, step, generator, on_cycle_end
            )
            epoch_loss = float(loss_sum) / plan.steps_per_epoch  # the one host sync of the epoch
            result.epoch_seconds.append(time.perf_counter() - epoch_started)
            _check_finite(epoch_loss, epoch, epochs, lr, current_lr)
            result.record_epoch(epoch, epoch_loss, current_lr)
            score = best.update(module, val_score, result, epoch)
            if on_epoch_end is not None:
                on_epoch_end(EpochEnd(epoch, epochs, epoch_loss, score, current_lr, module))
            clock.progress(epoch, epochs, epoch_loss, score, current_lr)
            if patience is not None and epoch - result.best_epoch >= patience:
                result.stopped_early = True
                break
    best.restore(module, result)
    _finish(result, plan, step, clock, epochs)
    return result


@dataclass(frozen=True)
class StepPlan:
    """Steps of a fit: batch size (cut to n), steps per epoch, the schedule, cycle-end steps."""

    n: int
    batch_size: int
    steps_per_epoch: int
    schedule: LRSchedule | ReferenceSchedule
    cycle_ends: dict[int, int]  # 0-based step → index of the cosine cycle it ends


def plan_steps(n: int, settings: TrainingSettings) -> StepPlan:
    """The learning-rate schedule over a fit of ``n`` rows: a linear warm-up of
    ``warmup_epochs``, then ``scheduler`` (``cosine_restarts``, T_mult 2, or ``constant``).
    ``cycle_timing``: ``after_warmup`` lays cycles of ``t0_epochs`` (default
    :func:`default_t0_epochs`: ``n_cycles`` cycles fill the fit) over the epochs after warm-up
    (:class:`LRSchedule`); ``reference`` counts T_0 in iterations over all steps, with the IMN
    reference's snapshot steps (:class:`ReferenceSchedule`; ``t0_epochs`` ignored)."""
    epochs, warmup_epochs, n_cycles = settings.epochs, settings.warmup_epochs, settings.n_cycles
    batch_size = min(settings.batch_size, n)
    steps_per_epoch = n // batch_size + (1 if n % batch_size > 1 else 0)
    total_steps = epochs * steps_per_epoch
    t0_epochs = settings.t0_epochs
    if t0_epochs is None:
        t0_epochs = default_t0_epochs(epochs, warmup_epochs, n_cycles)
    if settings.scheduler == "cosine_restarts" and settings.cycle_timing == "reference":
        schedule = ReferenceSchedule(steps_per_epoch, warmup_epochs, total_steps, n_cycles)
    else:
        schedule = LRSchedule(steps_per_epoch, warmup_epochs, settings.scheduler, t0_epochs)
    cycle_ends = {step: k for k, step in enumerate(schedule.cycle_end_steps(total_steps))}
    return StepPlan(n, batch_size, steps_per_epoch, schedule, cycle_ends)


def _run_epoch(
    module: nn.Module,
    optim: torch.optim.Optimizer,
    step_loss: LossFn,
    X: Tensor,
    y: Tensor,
    plan: StepPlan,
    lr: float,
    step: int,
    generator: torch.Generator,
    on_cycle_end: Callable[[int, nn.Module], None] | None,
) -> tuple[Tensor, int, float]:
    """One pass over the shuffled rows: ``(loss summed on the device, next step, last lr)``."""
    module.train()
    order = torch.randperm(plan.n, generator=generator, device=X.device)
    loss_sum = torch.zeros((), device=X.device)
    current_lr = lr
    for b in range(plan.steps_per_epoch):
        idx = order[b * plan.batch_size : (b + 1) * plan.batch_size]
        current_lr = lr * plan.schedule.factor(step)
        for group in optim.param_groups:
            group["lr"] = current_lr
        optim.zero_grad(set_to_none=True)
        loss = step_loss(module, X[idx], y[idx])
        loss.backward()
        optim.step()
        loss_sum += loss.detach()
        if on_cycle_end is not None and step in plan.cycle_ends:
            on_cycle_end(plan.cycle_ends[step], module)
        step += 1
    return loss_sum, step, current_lr


def _check_finite(epoch_loss: float, epoch: int, epochs: int, lr: float, current_lr: float) -> None:
    if not math.isfinite(epoch_loss):
        raise DivergenceError(
            f"Training diverged: the mean training loss of epoch {epoch}/{epochs} is "
            f"{epoch_loss} (base lr {lr:g}, lr at the end of the epoch {current_lr:.3g}). "
            f"Try a lower learning rate (e.g. lr={lr / 10:g}) and check the inputs for "
            "NaN/inf values or unscaled features."
        )


class _BestWeights:
    """Early stopping's memory: the weights of the epoch with the best validation score."""

    def __init__(self) -> None:
        self.state: dict[str, Tensor] | None = None

    def update(
        self,
        module: nn.Module,
        val_score: Callable[[nn.Module], float] | None,
        result: TrainResult,
        epoch: int,
    ) -> float | None:
        """Score the epoch (if there is a ``val_score``); keep its weights when it is the best."""
        if val_score is None:
            result.best_epoch = epoch
            return None
        score = float(val_score(module))
        result.val_scores.append(score)
        if math.isfinite(score) and (result.best_score is None or score > result.best_score):
            result.best_score, result.best_epoch = score, epoch
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        return score

    def restore(self, module: nn.Module, result: TrainResult) -> None:
        if self.state is not None:
            module.load_state_dict(self.state)
        else:  # no validation score, or none of them finite: keep the last weights
            result.best_epoch = result.epochs_run


class _Clock:
    """Wall time since the start of training, and at most one progress line per interval."""

    def __init__(self, log_every_s: float) -> None:
        self.log_every_s = log_every_s
        self.started = self.last_log = time.perf_counter()

    def progress(
        self, epoch: int, epochs: int, loss: float, score: float | None, lr: float
    ) -> None:
        now = time.perf_counter()
        if now - self.last_log < self.log_every_s:
            return
        self.last_log = now
        logger.info(
            "epoch %d/%d  loss %.4f  val %s  lr %.2e  %.1fs",
            epoch,
            epochs,
            loss,
            "-" if score is None else f"{score:.4f}",
            lr,
            now - self.started,
        )


def _finish(result: TrainResult, plan: StepPlan, steps: int, clock: _Clock, epochs: int) -> None:
    """The completed cycles' ends (in epochs), the wall time, and one summary line."""
    result.cycle_end_epochs = [
        (s + 1) / plan.steps_per_epoch for s in sorted(plan.cycle_ends) if s < steps
    ]
    result.seconds = time.perf_counter() - clock.started
    logger.info(
        "trained %d/%d epochs in %.1fs (%s); using epoch %d%s",
        result.epochs_run,
        epochs,
        result.seconds,
        "stopped early" if result.stopped_early else "ran all epochs",
        result.best_epoch,
        "" if result.best_score is None else f", val score {result.best_score:.4f}",
    )


def _check_data(X: Tensor, y: Tensor) -> None:
    if X.shape[0] != y.shape[0]:
        raise DataError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
    if X.shape[0] < 2:
        raise DataError(f"Need at least 2 training rows to train with BatchNorm, got {X.shape[0]}.")
    if X.device != y.device:
        raise DataError(f"X is on {X.device} but y is on {y.device}; move both to one device.")


# ---- precision and compilation (see ``train``'s ``precision`` and ``compile``) -----------------


def full_precision(device_type: str) -> Any:
    """Context that turns autocast off, so a numerically sensitive block runs in its inputs' dtype.

    Cast low-precision inputs up (``.float()``) inside it. Used by NIMO's closed-form β solve;
    a no-op outside autocast, so float32 training is unchanged.
    """
    return torch.autocast(device_type=device_type, enabled=False)


def _step_loss(loss_fn: LossFn, device: torch.device, *, precision: str, compile: bool) -> LossFn:
    """``loss_fn`` as one training step calls it: under bf16 autocast and/or ``torch.compile``.

    ``precision="bf16"``: every call runs under ``torch.autocast(device.type, bfloat16)`` (CPU
    or CUDA), so matrix products and linear layers compute in bfloat16, and the loss is returned
    as float32; backward, gradients, optimiser state and weights stay float32 (the master copy).
    A numerically sensitive part of a loss stays float32 with :func:`full_precision` (NIMO's β
    solve); ``val_score`` and the hooks run outside autocast. A CUDA GPU must support bfloat16.
    ``compile=True``: the step (inside the autocast region) is wrapped in ``torch.compile``
    with the module as an argument, so any custom ``loss_fn`` compiles as written; unsupported
    Python is a graph break, not an error. The first step pays the compilation; a failure there
    raises :class:`ConfigError` (no silent fallback to eager). Compiled steps are not bitwise
    identical to eager ones.
    """
    step = loss_fn
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(
                f"precision='bf16' needs a GPU with bfloat16 support (Ampere or newer); "
                f"{torch.cuda.get_device_name(device)} has none. Use precision='fp32'."
            )

        def step(module: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                loss = loss_fn(module, xb, yb)
            return loss.float()

    return _compiled(step) if compile else step


def _compiled(step: LossFn) -> LossFn:
    """``torch.compile(step)``; a failure of the compilation (at the first call) raises."""
    hint = "Set compile=False (runner: device.compile=false) to train without compiling."
    if not hasattr(torch, "compile"):
        raise ConfigError(f"compile=True needs torch.compile (PyTorch >= 2.0). {hint}")
    try:
        compiled = torch.compile(step)
    except Exception as exc:  # e.g. an unsupported Python version
        raise ConfigError(
            f"compile=True: torch.compile is unavailable here: {exc}. {hint}"
        ) from exc
    compiled_once = False

    def first_call_checked(module: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
        nonlocal compiled_once
        if compiled_once:
            return compiled(module, xb, yb)
        try:
            loss = compiled(module, xb, yb)
        except Exception as exc:
            raise ConfigError(
                "compile=True: torch.compile failed on the first training step "
                f"({type(exc).__name__}: {str(exc).strip()[:2000]}). The CPU backend needs a C++ "
                f"compiler, the CUDA backend Triton. {hint}"
            ) from exc
        compiled_once = True
        return loss

    return first_call_checked
