"""Published figures beside reproduced ones, and acceptance targets checked on the runs.

Both are data, not code: a paper's tables are a YAML file (``results/published/<paper>.yaml``:
the paper, the version the figures come from, where they are printed, and
``figures: {metric: {task: {paper's model name: value}}}``), and an experiment's targets are a list in its
``aggregate.targets`` (``conf/experiment/*.yaml``). An experiment maps the paper's model names
onto its model configs (``models: {NIMO: nimo_synthetic, ...}``), because a paper's "NN" is
whatever that experiment runs as its MLP. Versions of one paper whose figures differ (NIMO's
ICLR camera-ready and its earlier submission) are separate files, each saying which it is.

Reproduced values are means over the folds (data replicates) of the FINISHED runs of a (task,
model) cell. The *ceiling* model (e.g. ``oracle``, the true f) gives, per task, the best value
any model can reach on the same test rows; a target beyond it is reported as unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from mesobench.config.paths import repo_root
from mesobench.errors import ConfigError
from mesobench.metrics import registry


@dataclass(frozen=True)
class PublishedTable:
    """One paper's figures for one metric, and which of our models stands for each of theirs."""

    paper: str
    version: str
    source: str
    metric: str
    figures: dict[str, dict[str, float]]  # task -> paper model -> value
    models: dict[str, str] = field(default_factory=dict)  # paper model -> our model
    path: str = ""


def read_published(path: Path, models: dict[str, str] | None = None) -> list[PublishedTable]:
    """The tables of a published-figures file, one per metric; a missing file or field, or a
    metric the registry does not know, fails naming it.

    The file: ``paper``, ``version``, ``source`` and
    ``figures: {metric: {task: {paper's model name: value}}}``.
    """
    if not path.is_file():
        raise ConfigError(f"published figures: {path} does not exist")
    data = OmegaConf.to_container(OmegaConf.load(path)) or {}
    missing = [k for k in ("paper", "version", "source", "figures") if k not in data]
    if missing:
        raise ConfigError(f"published figures {path}: missing field(s) {missing}")
    out = []
    for metric, by_task in data["figures"].items():
        registry.info(str(metric))  # an unknown metric is refused here
        out.append(
            PublishedTable(
                paper=str(data["paper"]),
                version=str(data["version"]),
                source=str(data["source"]),
                metric=str(metric),
                figures={
                    str(task): {str(m): float(v) for m, v in row.items() if v is not None}
                    for task, row in by_task.items()
                },
                models={str(k): str(v) for k, v in (models or {}).items()},
                path=_shown(path),
            )
        )
    return out


def _shown(path: Path) -> str:
    """The file as a report names it: relative to the project when it lies inside it."""
    try:
        return str(path.resolve().relative_to(repo_root()))
    except ValueError:
        return str(path)


def cell_means(keyed: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, sd and count over folds of ``metric`` per (task, model), FINISHED runs only."""
    if keyed.empty or metric not in keyed:
        return pd.DataFrame(columns=["task", "model", "mean", "sd", "n"])
    done = keyed[keyed["status"].eq("FINISHED")].dropna(subset=[metric])
    grouped = done.groupby(["task", "model"])[metric]
    return pd.DataFrame(
        {"mean": grouped.mean(), "sd": grouped.std(ddof=1), "n": grouped.size()}
    ).reset_index()


def _lookup(cells: pd.DataFrame, task: str, model: str | None) -> pd.Series | None:
    if model is None:
        return None
    row = cells[(cells["task"] == task) & (cells["model"] == model)]
    return None if row.empty else row.iloc[0]


def published_vs_reproduced(
    keyed: pd.DataFrame, table: PublishedTable, ceiling: str | None = None
) -> pd.DataFrame:
    """One row per (task, paper model): published, reproduced mean ± sd (n folds), ceiling."""
    cells = cell_means(keyed, table.metric)
    rows = []
    for task, by_model in table.figures.items():
        top = _lookup(cells, task, ceiling)
        for paper_model, value in by_model.items():
            ours = table.models.get(paper_model)
            cell = _lookup(cells, task, ours)
            rows.append(
                {
                    "task": task,
                    "metric": table.metric,
                    "paper_model": paper_model,
                    "model": ours or "",
                    "published": value,
                    "reproduced": np.nan if cell is None else cell["mean"],
                    "sd": np.nan if cell is None else cell["sd"],
                    "n": 0 if cell is None else int(cell["n"]),
                    "difference": np.nan if cell is None else cell["mean"] - value,
                    "ceiling": np.nan if top is None else top["mean"],
                }
            )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Target:
    """An acceptance check on the runs.

    ``model``'s ``metric`` on ``task`` (None: averaged over the tasks where it ran), or, with
    ``relative_to``, its ``relation`` to that model's: ``ratio`` (model / other; over tasks the
    geometric mean of the per-task ratios) or ``difference`` (model − other; over tasks the
    mean). Met when the value is ≥ ``at_least`` and ≤ ``at_most`` (either may be None).
    """

    model: str
    metric: str
    task: str | None = None
    relative_to: str | None = None
    relation: str = "difference"
    at_least: float | None = None
    at_most: float | None = None
    source: str = ""

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> Target:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(entry) - known)
        if unknown or "model" not in entry or "metric" not in entry:
            raise ConfigError(
                f"target {entry}: needs model and metric; allowed fields are {sorted(known)}"
                + (f" (unknown: {unknown})" if unknown else "")
            )
        target = cls(**entry)
        registry.info(target.metric)
        if target.relation not in ("ratio", "difference"):
            raise ConfigError(f"target {entry}: relation must be ratio or difference")
        if target.at_least is None and target.at_most is None:
            raise ConfigError(f"target {entry}: give at_least and/or at_most")
        return target

    def describe(self) -> str:
        what = f"{self.model} {self.metric}"
        if self.relative_to:
            what = (
                f"{self.model} / {self.relative_to} {self.metric}"
                if self.relation == "ratio"
                else f"{self.model} − {self.relative_to} {self.metric}"
            )
        where = f"on {self.task}" if self.task else "over tasks"
        bounds = [f"≥ {self.at_least:g}" if self.at_least is not None else ""]
        bounds.append(f"≤ {self.at_most:g}" if self.at_most is not None else "")
        return f"{what} {where} {' and '.join(b for b in bounds if b)}"


def _target_value(cells: pd.DataFrame, t: Target) -> tuple[float, int]:
    """The target's value and the number of tasks it rests on (0: undecided)."""
    mine = cells[cells["model"] == t.model].set_index("task")["mean"]
    if t.relative_to:
        other = cells[cells["model"] == t.relative_to].set_index("task")["mean"]
        both = mine.index.intersection(other.index)
        values = mine[both] / other[both] if t.relation == "ratio" else mine[both] - other[both]
    else:
        values = mine
    if t.task is not None:
        values = values[values.index == t.task]
    values = values.replace([np.inf, -np.inf], np.nan).dropna()
    if values.empty:
        return float("nan"), 0
    if t.relative_to and t.relation == "ratio" and t.task is None:
        if (values <= 0).any():
            return float("nan"), 0
        return float(np.exp(np.log(values).mean())), len(values)
    return float(values.mean()), len(values)


def check_targets(
    keyed: pd.DataFrame, targets: list[Target], ceiling: str | None = None
) -> pd.DataFrame:
    """One row per target: value, met (True / False / None = no runs to decide), ceiling."""
    rows = []
    for t in targets:
        cells = cell_means(keyed, t.metric)
        value, n_tasks = _target_value(cells, t)
        met: bool | None = None
        if n_tasks:
            met = (t.at_least is None or value >= t.at_least) and (
                t.at_most is None or value <= t.at_most
            )
        top = _lookup(cells, t.task, ceiling) if t.task and not t.relative_to else None
        ceiling_value = np.nan if top is None else float(top["mean"])
        prediction = registry.info(t.metric).scale != "output units" and not t.metric.startswith(
            "fidelity/"
        )
        unreachable = (
            prediction
            and not np.isnan(ceiling_value)
            and (
                (t.at_least is not None and t.at_least > ceiling_value)
                or (t.at_most is not None and t.at_most < ceiling_value)
            )
        )
        rows.append(
            {
                "check": t.describe(),
                "value": value,
                "tasks": n_tasks,
                "met": "undecided" if met is None else ("yes" if met else "no"),
                "ceiling": ceiling_value,
                "note": "; ".join(
                    n
                    for n in ("unreachable: beyond the ceiling" if unreachable else "", t.source)
                    if n
                ),
            }
        )
    return pd.DataFrame(rows)
