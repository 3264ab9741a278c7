"""From the tidy table of runs to per-task cells, and what is done about the incomplete ones.

Input everywhere: one row per MLflow run with columns ``run_key, run_id, model, task, fold, seed,
status, start_time, error`` (``error_type`` optional) and one column per metric. Nothing here
reads MLflow or files, so every rule is unit-tested on small hand-made tables.

A *cell* is one (task, model) pair. Its *expected* runs are the (fold, seed) pairs that any model
attempted on that task: if xgboost ran folds 0–2 of credit-g, every model is expected to have
folds 0–2 there. A cell is *incomplete* when some expected run did not finish with a value of
the headline metric (it failed, is still running, was killed, or never ran). Cross-task
statistics (ranks, Friedman, win/tie/loss) need one number per cell, so incomplete cells are
treated by one of :data:`TREATMENTS` — and :func:`treat_missing` says, per cell, what it did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mesobench.config.tags import NOTES_SEPARATOR
from mesobench.report.runs_table import NON_METRICS

#: What to do with incomplete cells in the cross-task statistics (``missing:`` in aggregate.yaml).
TREATMENTS = {
    "drop_task": "the task is dropped from the cross-task statistics (ranks, Friedman test, "
    "win/tie/loss, normalised scores) for every model",
    "worst": "each missing run is imputed with the worst result of any model on the same task, "
    "fold and seed (else on the same task), and the cell mean is taken over all expected runs",
    "available": "the cell mean is taken over the runs that finished; a cell with none drops "
    "its task",
}


def key_rules(runs: pd.DataFrame) -> pd.Series:
    """Each run's run-key rule as a string; rule 1 had no version tag (and tables written then
    no ``key_version`` column), so a missing value reads ``"1"``."""
    rules = (
        runs["key_version"] if "key_version" in runs else pd.Series(index=runs.index, dtype=object)
    )
    return rules.astype(object).where(rules.notna(), "1").astype(str)


LATEST_RULE = "latest"
"""``filters.key_version=latest``: the newest run-key rule among the selected runs. A committed
runs table of an older rule then still makes its report, and a store where an experiment was
rerun under the runner's rule reports those runs; rules are never mixed."""


def newest_rule(versions: pd.Series) -> str | None:
    """The highest run-key rule (numerically) among ``versions``; None if there is none."""
    numbers = pd.to_numeric(versions, errors="coerce").dropna()
    return None if numbers.empty else str(int(numbers.max()))


def split_key_versions(runs: pd.DataFrame, current: str | None) -> tuple[pd.DataFrame, int]:
    """``(runs keyed by the run-key rule ``current``, how many others were left out)``.

    Runs keyed by another rule (older stores: no ``key_version``) cannot be matched with current
    runs of the same configuration, so counting both would count a fold twice; the runner redoes
    them under the current rule instead. ``current=None`` keeps every run; so does a table
    without the column (made elsewhere); ``current="latest"`` keeps the newest rule present
    (:data:`LATEST_RULE`).
    """
    if current is None or runs.empty or "key_version" not in runs:
        return runs, 0
    if current == LATEST_RULE:
        current = newest_rule(runs["key_version"])
    current_rule = runs["key_version"].astype("string").eq(str(current)).fillna(False)
    return runs[current_rule], int((~current_rule).sum())


def code_versions(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs per code version: ``git_commit, dirty, runs`` (most runs first)."""
    if runs.empty or "git_commit" not in runs:
        return pd.DataFrame(columns=["git_commit", "dirty", "runs"])
    dirty = runs["git_dirty"] if "git_dirty" in runs else pd.Series("unknown", index=runs.index)
    table = pd.DataFrame(
        {"git_commit": runs["git_commit"].fillna("unknown"), "dirty": dirty.fillna("unknown")}
    )
    counts = table.value_counts().rename("runs").reset_index()
    return counts.sort_values(["runs", "git_commit"], ascending=[False, True], ignore_index=True)


def latest_per_key(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run key: its latest FINISHED run, else its latest run of any status.

    A key that failed once and finished on a rerun counts as finished; a key that only ever
    failed stays visible as failed.
    """
    if runs.empty:
        return runs
    ordered = runs.assign(_done=runs["status"].eq("FINISHED")).sort_values(
        ["_done", "start_time"], kind="stable"
    )
    latest = ordered.groupby("run_key", sort=False).tail(1).drop(columns="_done")
    # one canonical row order, whatever the source (MLflow's search order, a runs table), so
    # that sums over folds add in the same order and reports regenerate to the last digit
    order = [c for c in ("task", "model", "fold", "seed", "run_key") if c in latest]
    return latest.sort_values(order, kind="stable").reset_index(drop=True)


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The numeric metric columns of a run table, headline-first order is left to the caller."""
    return sorted(
        c
        for c in runs.columns
        if c not in NON_METRICS and not c.startswith("_") and pd.api.types.is_numeric_dtype(runs[c])
    )


def fold_summary(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean, std and number of folds of ``metric`` per (task, model) over FINISHED runs."""
    if metric not in runs:
        return pd.DataFrame(columns=["task", "model", "mean", "std", "n_folds"])
    done = runs[runs["status"].eq("FINISHED") & runs[metric].notna()]
    grouped = done.groupby(["task", "model"])[metric]
    out = grouped.agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"count": "n_folds"})


def metric_summary(runs: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """Long table ``task, model, metric, mean, std, n_folds`` for every metric (observed runs)."""
    metrics = metric_columns(runs) if metrics is None else [m for m in metrics if m in runs]
    parts = [fold_summary(runs, m).assign(metric=m) for m in metrics]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=["task", "model", "metric", "mean", "std", "n_folds"])
    out = pd.concat(parts, ignore_index=True)
    return out[["task", "model", "metric", "mean", "std", "n_folds"]]


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
    """Every run that did not finish, with its error (the runner's ``error`` tag)."""
    failed = runs[~runs["status"].eq("FINISHED")]
    columns = ["model", "task", "fold", "seed", "status", "error_type", "error", "run_id"]
    return failed.reindex(columns=columns).sort_values(["model", "task", "fold", "seed"])


def _pair(fold: object, seed: object) -> tuple[float, float]:
    return (float(fold) if pd.notna(fold) else -1.0, float(seed) if pd.notna(seed) else -1.0)


def _describe_pair(pair: tuple[float, float], several_seeds: bool) -> str:
    fold, seed = pair
    text = f"fold {int(fold)}" if fold >= 0 else "fold ?"
    return text + (f" seed {int(seed)}" if several_seeds and seed >= 0 else "")


def cells(runs: pd.DataFrame, metric: str, models: list[str] | None = None) -> pd.DataFrame:
    """Completeness of every (task, model) cell: expected, finished and what went wrong.

    Columns: ``task, model, expected, finished, complete, problems`` where ``problems`` names
    each expected run without a value, e.g. ``fold 2: FAILED (DivergenceError: loss is NaN)``
    or ``fold 1: no run``. ``models`` adds models that have no run at all (all missing).
    """
    columns = ["task", "model", "expected", "finished", "complete", "problems"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    models = sorted(set(runs["model"]) | set(models or []))
    has_value = runs["status"].eq("FINISHED")
    if metric in runs:
        has_value &= runs[metric].notna()
    else:
        has_value &= False
    several_seeds = runs["seed"].nunique(dropna=True) > 1
    rows = []
    for task, on_task in runs.groupby("task", sort=True):
        expected = sorted(
            {_pair(f, s) for f, s in zip(on_task["fold"], on_task["seed"], strict=True)}
        )
        for model in models:
            mine = on_task[on_task["model"].eq(model)]
            done = {
                _pair(f, s)
                for f, s, ok in zip(mine["fold"], mine["seed"], has_value[mine.index], strict=True)
                if ok
            }
            problems: dict[str, list[str]] = {}  # what happened → where (grouped)
            for pair in expected:
                if pair in done:
                    continue
                attempts = mine[
                    [_pair(f, s) == pair for f, s in zip(mine["fold"], mine["seed"], strict=True)]
                ]
                problems.setdefault(_what_happened(attempts, metric), []).append(
                    _describe_pair(pair, several_seeds)
                )
            rows.append(
                {
                    "task": task,
                    "model": model,
                    "expected": len(expected),
                    "finished": len(done & set(expected)),
                    "complete": not problems,
                    "problems": "; ".join(
                        f"{_join_places(where)}: {what}" for what, where in problems.items()
                    ),
                }
            )
    return pd.DataFrame(rows, columns=columns)


def _what_happened(attempts: pd.DataFrame, metric: str) -> str:
    """Why an expected run has no value: its latest attempt's status and error, or no run."""
    if attempts.empty:
        return "no run"
    last = attempts.sort_values("start_time").iloc[-1]
    status, error = last["status"], last.get("error")
    if status == "FINISHED":
        return f"finished without {metric}"
    if isinstance(error, str) and error:
        return f"{status} ({_shorten(error)})"
    if status == "RUNNING":
        return "RUNNING (in progress, or its process died: rerunning the sweep closes it)"
    return f"{status} (no error recorded)"


def _join_places(places: list[str]) -> str:
    """``fold 0, fold 1, fold 2`` → ``folds 0, 1, 2`` (seeds kept when there are several)."""
    if len(places) > 1 and all(p.startswith("fold ") and " seed " not in p for p in places):
        return "folds " + ", ".join(p.removeprefix("fold ") for p in places)
    return ", ".join(places)


def _shorten(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Treated:
    """The one-number-per-cell matrix the cross-task statistics use, and how it was made.

    ``scores``: tasks × models (only tasks kept). ``dropped``: tasks left out, with why.
    ``incomplete``: one row per incomplete cell — ``task, model, finished, expected, problems,
    treatment`` — the report's "Missing and failed runs" table.
    """

    scores: pd.DataFrame
    dropped: dict[str, str] = field(default_factory=dict)
    incomplete: pd.DataFrame = field(default_factory=pd.DataFrame)
    treatment: str = "drop_task"


def treat_missing(
    runs: pd.DataFrame,
    metric: str,
    treatment: str = "drop_task",
    *,
    models: list[str] | None = None,
    higher_is_better: bool = True,
) -> Treated:
    """Per-task cell means of ``metric`` for cross-task statistics, incomplete cells treated.

    ``treatment`` is one of :data:`TREATMENTS`. A task where no model has a single finished run
    is always dropped (there is nothing to rank). Every incomplete cell, and every dropped task,
    is returned with the treatment it received so the report can state it.
    """
    if treatment not in TREATMENTS:
        raise ValueError(f"missing treatment {treatment!r}: expected one of {sorted(TREATMENTS)}")
    table = cells(runs, metric, models)
    model_list = sorted(set(table["model"])) if not table.empty else []
    empty_incomplete = pd.DataFrame(
        columns=["task", "model", "finished", "expected", "problems", "treatment"]
    )
    if table.empty:
        return Treated(pd.DataFrame(), {}, empty_incomplete, treatment)
    done = runs[runs["status"].eq("FINISHED")]
    done = done[done[metric].notna()] if metric in done else done.iloc[0:0]
    values = done.assign(
        _pair=[_pair(f, s) for f, s in zip(done["fold"], done["seed"], strict=True)]
    )
    worst = np.nanmin if higher_is_better else np.nanmax

    scores: dict[str, dict[str, float]] = {}
    dropped: dict[str, str] = {}
    notes: dict[tuple[str, str], str] = {}
    for task, on_task in table.groupby("task", sort=True):
        task_values = values[values["task"].eq(task)]
        status = runs.loc[runs["task"].eq(task), "status"]
        reason = _why_dropped(task, on_task, task_values, treatment, notes, status)
        if reason:
            dropped[task] = reason
            continue
        task_runs = runs[runs["task"].eq(task)]
        expected = sorted(
            {_pair(f, s) for f, s in zip(task_runs["fold"], task_runs["seed"], strict=True)}
        )
        row: dict[str, float] = {}
        for model in model_list:
            mine = task_values[task_values["model"].eq(model)]
            if treatment == "worst":
                row[model], note = _worst_filled(mine, task_values, expected, metric, worst)
            else:
                row[model] = float(mine[metric].mean())
                cell = on_task[on_task["model"].eq(model)].iloc[0]
                note = (
                    ""
                    if cell["complete"]
                    else f"mean over the {int(cell['finished'])} finished run(s) only"
                )
            if note:
                notes[(task, model)] = note
        scores[task] = row
    matrix = pd.DataFrame.from_dict(scores, orient="index", columns=model_list).sort_index()
    matrix.index.name = "task"
    bad_cells = table[~table["complete"]].copy()
    bad_cells["treatment"] = [
        notes.get((t, m), "kept")
        for t, m in zip(bad_cells["task"], bad_cells["model"], strict=True)
    ]
    incomplete = bad_cells[["task", "model", "finished", "expected", "problems", "treatment"]]
    return Treated(matrix, dropped, incomplete.reset_index(drop=True), treatment)


def _why_dropped(
    task: str,
    on_task: pd.DataFrame,
    task_values: pd.DataFrame,
    treatment: str,
    notes: dict[tuple[str, str], str],
    runs_status: pd.Series,
) -> str:
    """Why ``task`` leaves the cross-task statistics under ``treatment`` ("" if it stays);
    notes the affected cells."""
    if task_values.empty:
        # finished runs without the metric: a classification task under an MSE report
        finished = runs_status.eq("FINISHED").any()
        why = "has the metric" if finished else "has a finished run"
        for model in on_task["model"]:
            notes[(task, model)] = f"task dropped: no model {why} on it"
        return f"no model {why}"
    bad = on_task[~on_task["complete"]]
    if treatment == "drop_task" and not bad.empty:
        for model in bad["model"]:
            notes[(task, model)] = "task dropped from the cross-task statistics"
        return f"incomplete: {', '.join(bad['model'])}"
    if treatment == "available" and (bad["finished"] == 0).any():
        for model in bad["model"]:
            notes[(task, model)] = "task dropped: some model has no finished run on it"
        return f"no finished run: {', '.join(bad.loc[bad['finished'] == 0, 'model'])}"
    return ""


def _worst_filled(
    mine: pd.DataFrame,
    task_values: pd.DataFrame,
    expected: list[Any],
    metric: str,
    worst: Any,
) -> tuple[float, str]:
    """A model's mean over the expected (fold, seed) pairs, a missing run counted as the worst
    result of that pair on the task (or of the task); and a note on what was imputed."""
    filled, imputed = [], []
    for pair in expected:
        got = mine.loc[mine["_pair"] == pair, metric]
        if len(got):
            filled.append(float(got.mean()))
            continue
        same = task_values.loc[task_values["_pair"] == pair, metric]
        value = float(worst(same)) if len(same) else float(worst(task_values[metric]))
        filled.append(value)
        imputed.append(value)
    note = (
        f"{len(imputed)} run(s) imputed with the worst result "
        f"({', '.join(f'{v:.4f}' for v in imputed)})"
        if imputed
        else ""
    )
    return float(np.mean(filled)), note


def fidelity_gaps(runs: pd.DataFrame, metrics: set[tuple[str, str]]) -> pd.DataFrame:
    """(task, model) cells where a model that logs fidelity metrics elsewhere logged none.

    ``runs``: one row per run key (finished runs count); ``metrics``: the (task, model) pairs
    that have some ``fidelity/*`` value. ``reason`` is what the runs' notes say about fidelity
    (the runner notes why it skipped a metric, e.g. a task with no numeric feature to perturb).
    """
    done = runs[runs["status"].eq("FINISHED")]
    scoring = {model for _, model in metrics}
    rows = []
    for (task, model), group in done.groupby(["task", "model"]):
        if model not in scoring or (task, model) in metrics:
            continue
        reasons: list[str] = []
        for text in group["notes"].dropna():
            for part in str(text).split(NOTES_SEPARATOR):
                if part.startswith("fidelity:") and part not in reasons:
                    reasons.append(part)
        reason = "; ".join(reasons) or "no fidelity metric logged and no note saying why"
        rows.append({"task": task, "model": model, "reason": reason})
    return pd.DataFrame(rows, columns=["task", "model", "reason"])
