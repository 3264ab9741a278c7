"""Shapes a model refuses up front (``model.limits``), before any data is loaded or trained on.

Why: some models cannot sensibly run some CC18 shapes on the machines this harness targets —
NIMO's per-feature networks cost rows × features × (hidden + sine units) per epoch, so on
CIFAR_10's 3,072 features one epoch is hours of CPU. Such a run should say so in a second, with
the numbers and the knob that lifts the limit, not crash on memory or run for days. A model's
config may declare ``limits`` (any of ``max_features``, ``max_rows``, ``max_cells`` = training
rows × features, ``max_outputs`` = features × classes); the runner checks them against the
task's declared shape (``task.n_rows``/``n_features``/``n_classes``, known for OpenML and shape
tasks without loading anything) and again against the loaded fold, and ``mesobench.planning.plan``
lists the same refusals before a sweep. Limits are bookkeeping, not part of the run key: lifting
one does not change what a run that was allowed computes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mesobench.data.shapes import TEST_SHARE
from mesobench.errors import MesobenchError


def training_rows(n_rows: int | float) -> int | float:
    """A task's declared ``n_rows`` covers train and test; a fold trains on all but
    ``n_rows // TEST_SHARE`` of them (one fold of a 10-fold CV, as a shape task's fold)."""
    return n_rows - n_rows // TEST_SHARE


class ShapeRefused(MesobenchError):
    """The model's ``limits`` rule out this task's shape; the run is not attempted."""


@dataclass(frozen=True)
class Shape:
    """What the limits are checked against: training rows, raw feature columns, classes."""

    rows: int
    features: int
    classes: int = 1

    @classmethod
    def declared(cls, task: Mapping[str, Any]) -> Shape | None:
        """The shape a task config declares (``n_rows`` = the whole table), or None."""
        try:
            n_rows, n_features = int(task["n_rows"]), int(task["n_features"])
        except (KeyError, TypeError, ValueError):
            return None
        return cls(training_rows(n_rows), n_features, int(task.get("n_classes") or 1))

    def measures(self) -> dict[str, int]:
        return {
            "max_features": self.features,
            "max_rows": self.rows,
            "max_cells": self.rows * self.features,
            "max_outputs": self.features * max(self.classes, 1),
        }


_WHAT = {
    "max_features": "features",
    "max_rows": "training rows",
    "max_cells": "training cells (rows × features)",
    "max_outputs": "outputs (features × classes)",
}


def refusal(model: Mapping[str, Any], shape: Shape) -> str | None:
    """Why ``model`` (a model config) refuses ``shape``, or None when it accepts it."""
    limits = model.get("limits") or {}
    unknown = set(limits) - set(_WHAT)
    if unknown:
        raise MesobenchError(
            f"model {model.get('name')!r}: unknown limits {sorted(unknown)}; "
            f"known: {', '.join(_WHAT)}"
        )
    for key, value in shape.measures().items():
        limit = limits.get(key)
        if limit is not None and value > int(limit):
            reason = model.get("limits_reason") or ""
            return (
                f"{model.get('name')} refuses {value:,} {_WHAT[key]} > model.limits.{key} = "
                f"{int(limit):,}" + (f" ({reason})" if reason else "") + f"; to run it anyway: "
                f"model.limits.{key}=null"
            )
    return None


def check(model: Mapping[str, Any], shape: Shape | None, task_name: str) -> None:
    """Raise :class:`ShapeRefused` when ``model`` refuses ``shape`` (no-op for None)."""
    if shape is None:
        return
    why = refusal(model, shape)
    if why:
        raise ShapeRefused(f"{why} [task {task_name}]")
