"""Measured costs → the estimated seconds and memory of a planned run (``mesobench.planning.plan``).

Why: before a sweep is paid for on a cluster, its CPU-hours must be known from measurements on
the same shapes, not guessed. The shape sweep (``mesobench.planning.shape_table``) fits every model on a
shape-alike of every CC18 task at a reduced budget (``conf/plan.yaml`` ``budgets``) and records,
per (task, model), the fit's fixed seconds and seconds per budget unit (epoch, tree, iteration),
the seconds of prediction, explanations and fidelity metrics, and the peak memory. A run's cost
is linear in its budget, so a planned run costs

    fixed + seconds per unit × the run's budget + predict/explain/fidelity seconds

with the figures of its own task's shape when the table has them, else of a power law in rows,
features and classes fitted to the model's measured shapes (flagged when it extrapolates).

Seconds are core-seconds: the measured wall seconds times the threads the measurement used, so
tables measured with one thread (small shapes) and all cores (large ones) combine; a run with
``t`` threads is assumed to take core-seconds / t (perfect scaling: CPU-hours are an upper
bound, a run's wall-clock a lower one). GPU figures scale the fit's per-unit part by the
cuda/cpu per-epoch ratio that ``python -m mesobench.planning.speed`` measured at the nearest shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mesobench.protocol.limits import Shape, training_rows

MIN_SECONDS = 1e-3
"""Floor of a measured fixed cost (a tree model's is zero by construction: fit / trees)."""
MIN_ROWS_FOR_FIT = 5
"""Below this many measured shapes a power law keeps the prior exponents (cost ∝ cells)."""
EXTRAPOLATION_FACTOR = 2.0
"""A shape with more cells than this times the largest measured one is flagged extrapolated."""
SHAPE_PREFIX = "shape/"


@dataclass(frozen=True)
class Budget:
    """The model-config key a fit's cost is linear in (under ``model.``), from conf/plan.yaml."""

    param: str
    reduced: float
    maximum: bool = False  # the value is a cap: the fit may stop earlier (tolerance)
    evaluation_scales: bool = False  # predict/explain/fidelity cost grows with the budget (trees)
    extra: tuple[str, ...] = ()  # further reductions of the shape sweep, not scaled

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> Budget:
        return cls(
            str(entry["param"]),
            float(entry["reduced"]),
            bool(entry.get("maximum", False)),
            bool(entry.get("evaluation_scales", False)),
            tuple(entry.get("extra") or ()),
        )

    def units(self, model: Mapping[str, Any]) -> float | None:
        """The run's value of :attr:`param` (a number), or None when it has none."""
        node: Any = model
        for part in self.param.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        try:
            return float(node)
        except (TypeError, ValueError):
            return None


def estimator_class(model: Mapping[str, Any]) -> str:
    """``IMNClassifier`` for ``classifier: mesobench.models.IMNClassifier``."""
    return str(model.get("classifier") or "").rsplit(".", 1)[-1]


def early_stopping(model: Mapping[str, Any]) -> bool:
    """Whether the model stops before its budget on a validation score (budget = maximum)."""
    params = model.get("params") or {}
    return any(
        params.get(key) is not None for key in ("early_stopping_rounds", "early_stopping_patience")
    )


@dataclass(frozen=True)
class PowerLaw:
    """``log y = a + b log rows + c log features + d log classes``, fitted by bounded least
    squares (exponents in [0, 2.5]: a bigger shape never costs less)."""

    coef: tuple[float, float, float, float]

    @staticmethod
    def design(rows, features, classes) -> np.ndarray:
        rows, features, classes = (
            np.atleast_1d(np.asarray(v, float)) for v in (rows, features, classes)
        )
        return np.column_stack(
            [np.ones_like(rows), np.log(rows), np.log(features), np.log(np.maximum(classes, 2))]
        )

    @classmethod
    def fit(cls, rows, features, classes, values, prior=(1.0, 1.0, 0.0)) -> PowerLaw:
        from scipy.optimize import lsq_linear

        X = cls.design(rows, features, classes)
        y = np.log(np.maximum(np.asarray(values, float), MIN_SECONDS * 1e-3))
        if len(y) < MIN_ROWS_FOR_FIT:  # too few shapes for exponents: keep the prior ones
            slopes = np.asarray(prior)
            return cls((float(np.mean(y - X[:, 1:] @ slopes)), *map(float, slopes)))
        lower, upper = [-np.inf, 0, 0, 0], [np.inf, 2.5, 2.5, 2.5]
        return cls(tuple(float(v) for v in lsq_linear(X, y, bounds=(lower, upper)).x))

    def __call__(self, rows: float, features: float, classes: float) -> float:
        return float(np.exp(self.design(rows, features, classes) @ np.asarray(self.coef))[0])


@dataclass(frozen=True)
class LinearMemory:
    """Peak resident memory ≈ a + b · cells (rows × features): the process's imports plus the
    data and its copies (non-negative least squares; a power law would flatten on the ~0.5 GB
    of imports and miss the large shapes)."""

    base_mb: float
    mb_per_cell: float

    @classmethod
    def fit(cls, cells, peak_mb) -> LinearMemory:
        from scipy.optimize import nnls

        cells, peak = np.asarray(cells, float), np.asarray(peak_mb, float)
        if len(peak) < 2 or np.ptp(cells) == 0:
            return cls(float(np.max(peak)), 0.0)
        coef, _ = nnls(np.column_stack([np.ones_like(cells), cells]), peak)
        return cls(float(coef[0]), float(coef[1]))

    def __call__(self, cells: float) -> float:
        return self.base_mb + self.mb_per_cell * cells


@dataclass(frozen=True)
class Estimate:
    """One run's estimated cost; seconds are core-seconds (see the module docstring)."""

    fixed: float
    per_unit: float
    units: float
    evaluation: float  # predict + explanations + fidelity metrics
    memory_mb: float
    source: str  # "measured": its own shape's row; "fitted": the power law
    extrapolated: bool = False

    @property
    def fit(self) -> float:
        return self.fixed + self.per_unit * self.units

    @property
    def seconds(self) -> float:
        return self.fit + self.evaluation


@dataclass
class ModelCosts:
    """The cost model of one model, from the shape table's FINISHED rows of ``basis``."""

    basis: str  # the model whose rows were measured (the same model, or one of its class)
    rows: pd.DataFrame  # indexed by task, core-second columns fixed/per_unit/evaluation
    fit_share: float  # rows fitted / training rows (validation split of early-stopping models)
    per_unit_law: PowerLaw
    fixed_law: PowerLaw
    evaluation_law: PowerLaw
    memory: LinearMemory
    max_cells: float
    evaluation_scales: bool = False  # evaluation grows with the ensemble as the fit does
    measured_units: float = 1.0  # the budget of the measurements (median over the rows)
    by_task: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:  # a dict lookup per planned run, not a pandas one
        columns = ["fixed", "per_unit", "evaluation", "peak_rss_mb", "units"]
        self.by_task = self.rows[columns].astype(float).to_dict("index")

    @classmethod
    def from_rows(
        cls, basis: str, table: pd.DataFrame, evaluation_scales: bool = False
    ) -> ModelCosts:
        rows = table.copy()
        threads = pd.to_numeric(rows["threads"], errors="coerce").fillna(1.0).clip(lower=1)
        units = pd.to_numeric(rows["budget_units"], errors="coerce")
        per_unit = rows["seconds_per_unit"].astype(float)
        # Without an epoch timing (trees, iterations), seconds per unit is fit / units: the fit's
        # one-off part (data conversion, setup) is scaled with the budget too (an upper bound).
        fit = rows["fit_seconds"].astype(float)
        fixed = (fit - units * per_unit).clip(lower=MIN_SECONDS)
        evaluation = (
            rows[["predict_seconds", "explain_seconds", "fidelity_seconds"]]
            .astype(float)
            .fillna(0.0)
            .sum(axis=1)
            .clip(lower=MIN_SECONDS)
        )
        train = training_rows(rows["n_rows"].astype(float))
        rows = rows.assign(
            units=units,
            per_unit=per_unit * threads,
            fixed=fixed * threads,
            evaluation=evaluation * threads,
            train_rows=train,
            cells=train * rows["n_features"].astype(float),
        ).set_index("task")
        fit_share = float(np.median(rows["n_fit"].astype(float) / rows["train_rows"]))
        fitted = rows["train_rows"] * fit_share
        shape = (fitted, rows["n_features"].astype(float), rows["n_classes"].astype(float))
        return cls(
            basis=basis,
            rows=rows,
            fit_share=fit_share if math.isfinite(fit_share) else 1.0,
            per_unit_law=PowerLaw.fit(*shape, rows["per_unit"]),
            fixed_law=PowerLaw.fit(*shape, rows["fixed"]),
            evaluation_law=PowerLaw.fit(*shape, rows["evaluation"]),
            memory=LinearMemory.fit(rows["cells"], rows["peak_rss_mb"].astype(float)),
            max_cells=float(rows["cells"].max()),
            evaluation_scales=evaluation_scales,
            measured_units=float(units.median()) if units.notna().any() else 1.0,
        )

    def measured_row(self, task: str) -> dict[str, float] | None:
        """The row of ``task`` itself, or of its shape-alike (``shape/<task>``)."""
        for name in (task, SHAPE_PREFIX + task):
            if name in self.by_task:
                return self.by_task[name]
        return None

    def evaluation_scale(self, fixed: float, per_unit: float, units: float, measured: float):
        """How much more a run's predict/explain/fidelity costs than the measured run's: 1, or
        for a tree ensemble (``evaluation_scales``) the ratio of the two fits. Prediction and
        TreeSHAP walk every tree as the fit builds them, and both have a one-off part, so they
        grow like the fit (fixed + per tree × trees), not ∝ trees: on shape/phoneme XGBoost's
        fidelity seconds grew 8.3× from 20 to 300 trees, its fit 6.7×, the tree count 15×."""
        if not self.evaluation_scales:
            return 1.0
        return (fixed + per_unit * units) / max(fixed + per_unit * measured, MIN_SECONDS)

    def estimate(self, task: str, shape: Shape, units: float) -> Estimate:
        row = self.measured_row(task)
        if row is not None:
            fixed, per_unit = float(row["fixed"]), float(row["per_unit"])
            scale = self.evaluation_scale(fixed, per_unit, units, float(row["units"]))
            return Estimate(
                fixed,
                per_unit,
                units,
                float(row["evaluation"]) * scale,
                float(row["peak_rss_mb"]),
                "measured",
            )
        fitted = shape.rows * self.fit_share
        args = (fitted, shape.features, shape.classes)
        cells = float(shape.rows) * shape.features
        fixed, per_unit = self.fixed_law(*args), self.per_unit_law(*args)
        return Estimate(
            fixed,
            per_unit,
            units,
            self.evaluation_law(*args)
            * self.evaluation_scale(fixed, per_unit, units, self.measured_units),
            self.memory(cells),
            "fitted",
            cells > EXTRAPOLATION_FACTOR * self.max_cells,
        )


class CostTable:
    """The shape table (``results/cc18_shapes/shape_costs.csv``): per model its cost model, or
    the reason it has none."""

    def __init__(self, path: Path, table: pd.DataFrame | None, problem: str | None = None):
        self.path = path
        self.table = table
        self.problem = problem
        self._models: dict[str, ModelCosts | None] = {}

    @classmethod
    def load(cls, path: Path) -> CostTable:
        if not path.is_file():
            return cls(
                path, None, f"{path} does not exist (mesobench.planning.shape_table writes it)"
            )
        table = pd.read_csv(path)
        finished = table[table["status"] == "FINISHED"]
        finished = finished[
            pd.to_numeric(finished["seconds_per_unit"], errors="coerce").gt(0)
            & pd.to_numeric(finished["fit_seconds"], errors="coerce").gt(0)
        ]
        return cls(path, finished)

    @property
    def n_rows(self) -> int:
        return 0 if self.table is None else len(self.table)

    def costs(
        self, model: str, cls_name: str, same_class: list[str], budget: Budget
    ) -> ModelCosts | str:
        """The cost model of ``model``: its own rows, else those of another model of the same
        estimator class (``same_class``, in order); or why there is none."""
        if self.table is None:
            return f"no cost data: {self.problem}"
        for basis in [model, *same_class]:
            if basis not in self._models:
                rows = self.table[self.table["model"] == basis]
                self._models[basis] = (
                    ModelCosts.from_rows(basis, rows, budget.evaluation_scales)
                    if len(rows)
                    else None
                )
            if self._models[basis] is not None:
                return self._models[basis]
        return (
            f"no cost data: no FINISHED row of {model} ({cls_name}) in {self.path} "
            "(mesobench.planning.shape_table measures it)"
        )


GPU_HINT = "GPU: not measured; run `python -m mesobench.planning.speed --devices cuda` on a GPU node to add cuda rows"


class SpeedTable:
    """bench_speed's per-epoch seconds (``results/speed.csv``) for the cuda/cpu ratio."""

    def __init__(self, table: pd.DataFrame | None):
        self.table = table
        self._both: dict[str, pd.DataFrame | None] = {}  # per model: one pivot, not one per run

    @classmethod
    def load(cls, path: Path) -> SpeedTable:
        if not path.is_file():
            return cls(None)
        table = pd.read_csv(path)
        return cls(table[(table["status"] == "ok") & table["epoch_s"].gt(0)])

    @property
    def has_cuda(self) -> bool:
        return self.table is not None and bool((self.table["device"] == "cuda").any())

    def cuda_ratio(self, model: str, rows: float, features: float, classes: float) -> float | None:
        """cuda / cpu seconds per epoch of ``model`` at the measured shape nearest (in log rows,
        features, classes) to the given one; None when not measured on both."""
        if model not in self._both:
            self._both[model] = self._cpu_and_cuda(model)
        both = self._both[model]
        if both is None:
            return None
        shape = np.log(np.array(both.index.tolist(), float))
        target = np.log([rows, features, max(classes, 2)])
        nearest = int(np.argmin(((shape - target) ** 2).sum(axis=1)))
        return float(both["cuda"].iloc[nearest] / both["cpu"].iloc[nearest])

    def _cpu_and_cuda(self, model: str) -> pd.DataFrame | None:
        """Per measured shape (n, F, C) of ``model``: its cpu and cuda seconds per epoch."""
        if self.table is None:
            return None
        mine = self.table[self.table["model"] == model]
        both = mine.pivot_table(index=["n", "F", "C"], columns="device", values="epoch_s")
        if not {"cpu", "cuda"} <= set(both.columns):
            return None
        both = both.dropna(subset=["cpu", "cuda"])
        return None if both.empty else both
