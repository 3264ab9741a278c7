"""Runs read back from the store: the runs table, explanation samples, finished run keys.

The one place that pages through an experiment's runs (:func:`experiment_runs`); every reader of
runs (the aggregator, the plan, the store audit, the shape table, the speed report) goes through
it. Runs become rows of the runs table (:mod:`mesobench.report.runs_table`, its columns declared
there) and are selected by the same function as a committed table's rows.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException

from mesobench.config.identity import RUN_KEY_VERSION
from mesobench.config.tags import (
    GIT_COMMIT_TAG,
    GIT_DIRTY_TAG,
    RUN_KEY_TAG,
    RUN_KEY_VERSION_TAG,
    SUMMARY_TAG,
    SWEEP_PARENT_TAG,
    SWEEP_TAG,
    suites_of,
    suites_value,
)
from mesobench.errors import MesobenchError
from mesobench.report import document, plots
from mesobench.report.labels import configuration, label_models
from mesobench.report.runs_table import (
    IDENTITY_COLUMNS,
    MODEL_NAME_COLUMN,
    RUN_TAGS,
    SUITES_COLUMN,
    RunFilter,
    select_runs,
)
from mesobench.store import credentials
from mesobench.store.tracking import Tracker, client_for, retrying, sqlite_path

log = logging.getLogger(__name__)

WEIGHTS_ARTIFACT = "explanations/local_weights_sample.csv"
DESCRIPTION_ARTIFACT = "model/description.json"
PAGE_SIZE = 5000


def experiment_runs(uri: str, experiment: str, filter_string: str = "") -> Iterator[Any]:
    """Every run of ``experiment`` in the store at ``uri`` matching ``filter_string`` (MLflow's
    search syntax), page after page; none when the experiment does not exist. A SQLite store
    that does not exist is not created by reading it."""
    exp = _experiment(uri, experiment)
    if exp is None:
        return
    client = client_for(uri)
    token = None
    while True:
        page = retrying(
            client.search_runs,
            [exp.experiment_id],
            filter_string=filter_string,
            max_results=PAGE_SIZE,
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def _experiment(uri: str, experiment: str) -> Any | None:
    """The experiment, or None (also for a SQLite store that does not exist: not created)."""
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        return None
    try:
        return client_for(uri).get_experiment_by_name(experiment)
    except MlflowException as exc:  # a server that refuses us: say which credentials it wants
        credentials.explain_refusal(uri, exc)
        raise


def _quote(value: str) -> str:
    return "'" + str(value).replace("'", "\\'") + "'"


def load_runs(uri: str, experiment: str, where: RunFilter | None = None) -> pd.DataFrame:
    """The benchmark runs of ``experiment`` that ``where`` selects, as a labelled runs table.

    Summary runs (tag ``mesobench.summary``), sweep parents and runs not made by mesobench (no
    ``model`` tag) are left out. The store filters what it can (sweep id, single-valued tags);
    :func:`~mesobench.report.runs_table.select_runs` then selects as it does in a committed table.
    """
    if _experiment(uri, experiment) is None:
        raise MesobenchError(
            f"no experiment '{experiment}' in the MLflow store {uri}: nothing has been run there "
            "yet. Run a sweep first (make benchmark) or point tracking.uri at the right store."
        )
    where = where or RunFilter()
    clauses = [f"tags.sweep_id = {_quote(where.sweep_id)}"] if where.sweep_id else []
    for key, value in where.tags.items():
        if isinstance(value, str | int | float):
            clauses.append(f"tags.`{key}` = {_quote(str(value))}")
    rows = [
        {**_run_row(run), **{k: run.data.tags.get(k) for k in where.tags if k not in RUN_TAGS}}
        for run in experiment_runs(uri, experiment, " and ".join(clauses))
        if not run.data.tags.get(SUMMARY_TAG) and run.data.tags.get("model")
    ]
    runs = pd.DataFrame(rows) if rows else pd.DataFrame(columns=[*IDENTITY_COLUMNS])
    selected = select_runs(runs, where, f"the MLflow store {uri}")
    extra = [k for k in where.tags if k not in IDENTITY_COLUMNS and k != MODEL_NAME_COLUMN]
    return label_models(selected.drop(columns=extra))


def _run_row(run: Any) -> dict[str, Any]:
    """One row of the runs table: identity, provenance, tags, configuration and metrics."""
    run_tags = run.data.tags
    return {
        "run_id": run.info.run_id,
        "status": run.info.status,
        "start_time": run.info.start_time,
        "run_key": run_tags.get(RUN_KEY_TAG, run.info.run_id),
        "key_version": run_tags.get(RUN_KEY_VERSION_TAG),
        "git_commit": run_tags.get(GIT_COMMIT_TAG, run_tags.get("git_commit")),  # older stores
        "git_dirty": run_tags.get(GIT_DIRTY_TAG),
        **{t: run_tags.get(t) for t in RUN_TAGS},
        SUITES_COLUMN: suites_value(suites_of(run_tags)),
        "configuration": configuration(run.data.params),
        **run.data.metrics,
    }


def finished_keys(uri: str, experiment: str) -> set[str]:
    """Run keys of the runner's current rule with a FINISHED run in the store."""
    query = f"attributes.status = 'FINISHED' and tags.`{RUN_KEY_VERSION_TAG}` = '{RUN_KEY_VERSION}'"
    return {
        run.data.tags[RUN_KEY_TAG]
        for run in experiment_runs(uri, experiment, query)
        if RUN_KEY_TAG in run.data.tags
    }


def find_sweep_parent(tracker: Tracker, sweep_id: str) -> str | None:
    """The id of the sweep's parent run (the earliest, if a race made two), or None."""
    runs = retrying(
        tracker.client.search_runs,
        [tracker.experiment_id],
        filter_string=f"tags.`{SWEEP_PARENT_TAG}` = 'true' and tags.`{SWEEP_TAG}` = '{sweep_id}'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def suite_runs(uri: str, suite: str) -> pd.DataFrame:
    """The runs tagged ``suite`` in every experiment of the store: ``sweep_id, model, status,
    start_time, end_time`` (timestamps, UTC); none for a SQLite store that does not exist."""
    db = sqlite_path(uri)
    exists = db is None or db.exists()
    names = [e.name for e in client_for(uri).search_experiments()] if exists else []
    rows = [
        {
            "sweep_id": run.data.tags.get("sweep_id"),
            "model": run.data.tags.get("model"),
            "status": run.info.status,
            "start_time": run.info.start_time,
            "end_time": run.info.end_time,
        }
        for name in names
        for run in experiment_runs(uri, name, f"tags.suite = {_quote(suite)}")
    ]
    runs = pd.DataFrame(rows, columns=["sweep_id", "model", "status", "start_time", "end_time"])
    for column in ("start_time", "end_time"):
        runs[column] = pd.to_datetime(runs[column], unit="ms", utc=True)
    return runs


def metric_median(uri: str, run_id: str, key: str) -> float | None:
    """The median of a metric's logged history (e.g. per-epoch seconds), None if never logged."""
    import numpy as np

    history = client_for(uri).get_metric_history(run_id, key)
    return float(np.median([m.value for m in history])) if history else None


def load_explanations(
    uri: str,
    runs: pd.DataFrame,
    families: list[str],
    *,
    task: str | None = None,
    row: int | None = None,
    klass: str | None = None,
) -> document.ExplanationInput:
    """Download the local-weights samples (and descriptions) of one run per model family."""
    run_ids, source, absent = document.choose_explanation_runs(runs, families, task=task)
    client = client_for(uri)
    samples: dict[str, plots.ExplanationSample] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model, run_id in run_ids.items():
            try:
                weights = pd.read_csv(
                    client.download_artifacts(run_id, WEIGHTS_ARTIFACT, f"{tmp}/{run_id}")
                )
            except Exception as exc:  # artifact store unreachable or the run predates it
                log.warning("no %s for %s (run %s): %s", WEIGHTS_ARTIFACT, model, run_id, exc)
                absent.append(model)
                continue
            description = None
            try:
                path = client.download_artifacts(run_id, DESCRIPTION_ARTIFACT, f"{tmp}/{run_id}")
                description = json.loads(Path(path).read_text())
            except Exception:  # a model without describe(): no description, nothing to draw
                pass
            samples[model] = plots.ExplanationSample(weights, description)
    return document.ExplanationInput(samples, source, absent, row=row, klass=klass)


def log_summary_run(
    uri: str,
    experiment: str,
    artifact_location: str | None,
    out_dir: Path,
    *,
    report: str,
    command: str,
    selection: str,
) -> str:
    """Log the report folder as the artifacts of a new summary run; return its id.

    Tagged ``mesobench.summary=true`` (and the report name and command) so that
    :func:`load_runs` never mistakes it for a benchmark run. Average ranks are logged as
    ``rank/<model>`` metrics for a quick look in the MLflow UI.
    """
    tracker = Tracker(uri, experiment, artifact_location)
    client = tracker.client
    tags = {
        SUMMARY_TAG: "true",
        "mesobench.report": report,
        "mesobench.report_command": command[:5000],
        "mesobench.report_selection": selection[:5000],
    }
    run = retrying(
        client.create_run,
        tracker.experiment_id,
        run_name=f"report {report}",
        tags={k: str(v) for k, v in tags.items()},
    )
    run_id = run.info.run_id
    ranks_file = out_dir / "average_rank.csv"
    if ranks_file.exists():
        ranks = pd.read_csv(ranks_file)
        tracker.log_metrics(
            run_id,
            {
                f"rank/{_metric_name(m)}": float(r)
                for m, r in zip(ranks["model"], ranks["average_rank"], strict=True)
            },
        )
    retrying(client.log_artifacts, run_id, str(out_dir))
    tracker.end(run_id, "FINISHED")
    return run_id


def _metric_name(model: str) -> str:
    """A model label as MLflow allows in a metric name (``imn[lr=0.1]`` → ``imn_lr_0.1_``)."""
    return re.sub(r"[^\w\-. :/]", "_", str(model))


MAX_PARENTS = 20
"""A report over more sweeps than this is attached to none of their parents (it would copy the
report that often); its summary run still holds it."""


def attach_to_sweep_parents(tracker: Tracker, runs: pd.DataFrame, out_dir: Path) -> list[str]:
    """Log the report's files under ``report/`` in the parent run of every sweep whose runs it
    shows (made by :mod:`mesobench.runner.sweep_parent`), so a sweep's parent holds its report."""
    sweeps = sorted({str(s) for s in runs.get("sweep_id", pd.Series(dtype=str)).dropna()})
    if not sweeps or len(sweeps) > MAX_PARENTS:
        return []
    parents = [p for p in (find_sweep_parent(tracker, s) for s in sweeps) if p is not None]
    for parent in parents:
        retrying(tracker.client.log_artifacts, parent, str(out_dir), "report")
    return parents
