"""Pure functions from a table of runs to comparison tables (no MLflow, no files).

Input: one row per MLflow run with columns ``run_key, model, task, fold, seed, status,
start_time, error`` and one column per metric. Everything here is a deterministic function of
that frame, so it is unit-tested on small hand-made tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata


def latest_per_key(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run key: its latest FINISHED run, else its latest run of any status.

    A key that failed once and finished on a rerun counts as finished; a key that only ever
    failed stays visible as failed.
    """
    if runs.empty:
        return runs
    ordered = runs.assign(_done=runs["status"].eq("FINISHED")).sort_values(["_done", "start_time"])
    return ordered.groupby("run_key", sort=False).tail(1).drop(columns="_done")


def fold_summary(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, std and number of folds of ``metric`` per (task, model) over FINISHED runs."""
    done = runs[runs["status"].eq("FINISHED") & runs[metric].notna()]
    grouped = done.groupby(["task", "model"])[metric]
    out = grouped.agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"count": "n_folds"})


def wide_mean_std(summary: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """Tasks × models table of "mean ± std (n)" strings."""
    cells = summary.apply(
        lambda r: (
            f"{r['mean']:.{digits}f} ± {0.0 if np.isnan(r['std']) else r['std']:.{digits}f}"
            + ("" if r["n_folds"] > 1 else " (1 fold)")
        ),
        axis=1,
    )
    table = summary.assign(cell=cells).pivot(index="task", columns="model", values="cell")
    return table.fillna("—").sort_index()


def average_ranks(
    summary: pd.DataFrame, higher_is_better: bool = True
) -> tuple[pd.Series, list[str]]:
    """Average rank of each model over the tasks on which *every* model has a result.

    Ties get the average of the ranks they span. Returns the ranks (best first) and the tasks
    left out because some model has no result there (the report lists them).
    """
    means = summary.pivot(index="task", columns="model", values="mean")
    complete = means.dropna()
    dropped = sorted(set(means.index) - set(complete.index))
    if complete.empty:
        return pd.Series(dtype=float), dropped
    values = complete.to_numpy()
    ranks = np.vstack([rankdata(-row if higher_is_better else row) for row in values])
    result = pd.Series(ranks.mean(axis=0), index=complete.columns, name="average_rank")
    return result.sort_values(), dropped


def status_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """Per model: how many run keys finished, failed, or are still running / were killed."""
    counts = runs.groupby(["model", "status"]).size().unstack(fill_value=0)
    for column in ("FINISHED", "FAILED", "RUNNING", "KILLED"):
        if column not in counts:
            counts[column] = 0
    counts = counts[["FINISHED", "FAILED", "RUNNING", "KILLED"]]
    counts.columns = ["finished", "failed", "running", "killed"]
    return counts.sort_index()


def failures(runs: pd.DataFrame) -> pd.DataFrame:
    failed = runs[~runs["status"].eq("FINISHED")]
    columns = ["model", "task", "fold", "seed", "status", "error", "run_id"]
    return failed.reindex(columns=columns).sort_values(["model", "task", "fold", "seed"])


def markdown_table(frame: pd.DataFrame, index: bool = True, floatfmt: str = ".4f") -> str:
    """GitHub-flavoured markdown without extra dependencies."""
    if index:
        frame = frame.reset_index()
    if frame.empty:
        return "_(none)_\n"

    def fmt(value: object) -> str:
        if isinstance(value, float | np.floating):
            return "—" if np.isnan(value) else format(value, floatfmt)
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"
