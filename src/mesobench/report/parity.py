"""Parity with a reference implementation: our runs against its figures, fold by fold.

A model is *faithful* to its paper's code when it matches figures obtained by running that code
on the same official folds (``make parity`` passes such figures for IMN from the Makefile's
``REFERENCE_DIR``; docs/faithfulness.md). This module compares the run table with such a figures
table and says, per model and task, how far apart they are and whether the gap passes the
tolerances; it reads no files and no MLflow, so every rule is unit-tested on hand-made tables
(the aggregator loads the CSV, :func:`read_reference`).

Figures table: one row per (task, fold) with the column ``reference_<metric>`` (e.g.
``reference_auroc``); other columns (``task_id``) are ignored. Our value of a fold is the mean
over the seeds of the model's FINISHED runs there.

Per (model, task) the summary gives the mean of ours and of the reference over the folds both
have, the mean difference (ours − reference), the largest absolute fold difference, and two
paired tests over folds: the two-sided paired t-test and the Wilcoxon signed-rank test
(``scipy.stats``). Parity holds when ``|mean difference| ≤ mean_tolerance`` and every fold's
``|difference| ≤ fold_tolerance``. A small p-value says the difference is systematic; a large
one with a small mean difference is what parity looks like.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from mesobench.errors import ConfigError


@dataclass
class ParityReference:
    """Reference figures and the tolerances of the comparison (``parity:`` in aggregate.yaml)."""

    figures: pd.DataFrame  # task, fold, reference_<metric>
    source: str  # where the figures come from (shown in the report)
    label: str = "reference code"
    models: list[str] | None = None  # models compared; None: every model of the report
    mean_tolerance: float = 0.01
    fold_tolerance: float = 0.05


def read_reference(path: str | Path, metric: str) -> pd.DataFrame:
    """The figures CSV at ``path``, checked: columns task, fold and ``reference_<metric>``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"parity.reference={str(path)!r}: no such file. Point it at a CSV of reference "
            "figures (columns task, fold, reference_<metric>), e.g. "
            "$(REFERENCE_DIR)/imn_reference_diabetes.csv as `make parity` passes it, or set "
            "parity.reference=null."
        )
    figures = pd.read_csv(path)
    wanted = ["task", "fold", f"reference_{metric}"]
    absent = [c for c in wanted if c not in figures.columns]
    if absent:
        raise ConfigError(
            f"{path} lacks the column(s) {absent} needed to compare {metric}: it has "
            f"{list(figures.columns)}."
        )
    figures = figures[wanted].copy()
    figures["fold"] = figures["fold"].astype(int)
    return figures


def parity_by_fold(runs: pd.DataFrame, figures: pd.DataFrame, model: str, metric: str):
    """Per (task, fold) of the figures: ours (mean over seeds), the reference, the difference.

    Folds of the figures with no finished run of ``model`` keep NaN in ``ours``, so they stay
    visible as missing rather than silently shrinking the comparison.
    """
    reference = f"reference_{metric}"
    done = runs[(runs["model"] == model) & runs["status"].eq("FINISHED")]
    if metric in done:
        done = done[done[metric].notna()]
        ours = done.groupby(["task", "fold"])[metric].agg(["mean", "count"]).reset_index()
    else:
        ours = pd.DataFrame(columns=["task", "fold", "mean", "count"])
    ours = ours.rename(columns={"mean": "ours", "count": "n_runs"})
    ours["fold"] = ours["fold"].astype(int)
    table = figures.merge(ours, on=["task", "fold"], how="left")
    table["n_runs"] = table["n_runs"].fillna(0).astype(int)
    table = table.rename(columns={reference: "reference"})
    table["difference"] = table["ours"] - table["reference"]
    return table[["task", "fold", "n_runs", "ours", "reference", "difference"]]


def parity_summary(by_fold: pd.DataFrame, mean_tolerance: float, fold_tolerance: float):
    """Per task: means, mean difference, largest fold gap, paired tests and the verdict."""
    rows = []
    for task, group in by_fold.groupby("task", sort=True):
        both = group.dropna(subset=["ours", "reference"])
        diff = both["difference"].to_numpy(dtype=float)
        n = len(diff)
        t_p = w_p = float("nan")
        if n >= 2 and np.ptp(diff) > 0:
            t_p = float(sps.ttest_rel(both["ours"], both["reference"]).pvalue)
        if n >= 2 and np.any(diff != 0):
            w_p = float(sps.wilcoxon(diff).pvalue)
        mean_diff = float(diff.mean()) if n else float("nan")
        max_gap = float(np.abs(diff).max()) if n else float("nan")
        complete = n == len(group)
        passed = (
            complete and n > 0 and abs(mean_diff) <= mean_tolerance and max_gap <= fold_tolerance
        )
        rows.append(
            {
                "task": task,
                "folds": f"{n}/{len(group)}",
                "ours_mean": float(both["ours"].mean()) if n else float("nan"),
                "ours_std": float(both["ours"].std()) if n > 1 else float("nan"),
                "reference_mean": float(both["reference"].mean()) if n else float("nan"),
                "reference_std": float(both["reference"].std()) if n > 1 else float("nan"),
                "mean_difference": mean_diff,
                "max_abs_fold_difference": max_gap,
                "paired_t_p": t_p,
                "wilcoxon_p": w_p,
                "parity": "yes" if passed else "no",
            }
        )
    return pd.DataFrame(rows)


def compared_models(runs: pd.DataFrame, reference: ParityReference) -> list[str]:
    """The models of the comparison: the configured ones, else every model with a run."""
    if reference.models:
        return list(reference.models)
    return sorted(runs["model"].dropna().unique()) if "model" in runs else []
