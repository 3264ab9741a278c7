"""Training settings as one typed value, checked once, and the estimators' parameter checks.

Why: the torch estimators (TabResNet, IMN, LFR-IMN, NIMO) pass the same dozen settings to
:func:`mesobench.models.training.train`. As one frozen :class:`TrainingSettings` they travel
together, and its construction is the single place where they are checked, so a bad value fails
at ``fit`` before any data is touched or any step is taken, always with the same error type and
a message naming the parameter, its value and what is expected.

The error, :class:`InvalidParameterError`, is scikit-learn's ``InvalidParameterError`` (what
scikit-learn's own estimators raise for a bad constructor parameter; a ``ValueError``) and also
:class:`mesobench.errors.InvalidParameterError`, a :class:`~mesobench.errors.ConfigError`, so
the runner records the run as a configuration failure with the message.

A parameter's requirement is an :class:`Expect` (a test and the words for it): the training
settings carry theirs in the dataclass fields, and an estimator lists those of its other
parameters (``_parameter_expectations``), checked by :func:`check_parameters`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from mesobench.config.expect import BOOLEAN, Expect, integer, number, one_of
from mesobench.errors import InvalidParameterError

SCHEDULERS = ("cosine_restarts", "constant")
OPTIMIZERS = ("adam", "adamw")
"""``adam``: ``torch.optim.Adam``, weight decay as an L2 term added to the gradient (the IMN
reference); ``adamw``: decoupled weight decay (Loshchilov & Hutter)."""
CYCLE_TIMINGS = ("after_warmup", "reference")
"""How the cosine cycles are laid out, see :class:`~mesobench.models.training.LRSchedule` and
:class:`~mesobench.models.training.ReferenceSchedule`."""
PRECISIONS = ("fp32", "bf16")
"""Training arithmetic (``precision``): float32, or bfloat16 autocast."""


def check_parameters(values: Mapping[str, Any], expectations: Mapping[str, Expect]) -> None:
    """Raise :class:`InvalidParameterError` for the first value that fails its expectation."""
    for name, expect in expectations.items():
        value = values[name]
        if not expect.test(value):
            raise InvalidParameterError(f"{name}={value!r} is invalid: expected {expect.text}.")


def _setting(expect: Expect, default: Any = None, *, required: bool = False) -> Any:
    """A :class:`TrainingSettings` field that carries its expectation (checked at creation)."""
    if required:
        return field(metadata={"expect": expect})
    return field(default=default, metadata={"expect": expect})


@dataclass(frozen=True)
class TrainingSettings:
    """Everything :func:`~mesobench.models.training.train` needs besides the module, the loss,
    the data and the callbacks; checked when created (:class:`InvalidParameterError`).

    The fields the estimators expose are named as their constructor parameters (so a message
    names the parameter the user set, and :meth:`from_params` reads them by name): ``epochs``
    passes of ``batch_size`` rows per step (cut to n), Adam or AdamW (``optimizer``) at base
    rate ``lr`` with ``weight_decay``, a linear warm-up of ``warmup_epochs`` then ``scheduler``
    with cosine cycles laid out by ``cycle_timing``, early stopping after
    ``early_stopping_patience`` epochs without a better validation score (None: never; needs a
    ``val_score``), bfloat16 autocast (``precision``) and ``torch.compile`` (``compile``).
    Trainer-only: ``t0_epochs`` (first cycle length; None fills the fit with ``n_cycles``
    cycles), ``seed`` (batch order and torch's global RNG) and ``log_every_s`` (at most one
    progress line per that many seconds).
    """

    epochs: int = _setting(integer(1), required=True)
    batch_size: int = _setting(integer(1), required=True)
    lr: float = _setting(number(0, strict=True), required=True)
    weight_decay: float = _setting(number(0), 0.0)
    optimizer: str = _setting(one_of(OPTIMIZERS), "adam")
    warmup_epochs: float = _setting(number(0), 5)
    scheduler: str = _setting(one_of(SCHEDULERS), "cosine_restarts")
    cycle_timing: str = _setting(one_of(CYCLE_TIMINGS), "after_warmup")
    t0_epochs: float | None = _setting(number(0, strict=True, optional=True), None)
    n_cycles: int = _setting(integer(1), 3)
    early_stopping_patience: int | None = _setting(integer(1, optional=True), None)
    seed: int = _setting(integer(None), 0)
    log_every_s: float = _setting(number(0), 10.0)
    precision: str = _setting(
        one_of(
            PRECISIONS,
            " (fp32: full precision; bf16: bfloat16 autocast of the training forward pass)",
        ),
        "fp32",
    )
    compile: bool = _setting(BOOLEAN, False)

    def __post_init__(self) -> None:
        check_parameters(
            {f.name: getattr(self, f.name) for f in fields(self)},
            {f.name: f.metadata["expect"] for f in fields(self)},
        )

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **trainer_only: Any) -> TrainingSettings:
        """The settings among an estimator's ``get_params()`` (matched by name), plus
        ``trainer_only`` ones; the others keep their defaults."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names}, **trainer_only)
