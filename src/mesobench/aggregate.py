"""Read runs back (from MLflow, or from a committed runs table) and write the report to
``results/<report>/``.

    python -m mesobench.aggregate                                   # every run of the experiment
    python -m mesobench.aggregate filters.suite=quick report=quick  # → results/quick/
    python -m mesobench.aggregate filters.sweep_id=A compare.sweep_id=B report=A_vs_B
    python -m mesobench.aggregate +experiment=quick runs=results/quick/runs.csv  # no store

The entry point only: the settings are read by :mod:`mesobench.report.settings`, runs come from
:mod:`mesobench.store.runs` or :mod:`mesobench.report.runs_table` (one selection function for
both), and :func:`mesobench.report.document.write_report` writes the markdown, CSV and LaTeX
tables and the PNG plots. A report made from the store is then logged as the artifacts of a
*summary run* (tag ``mesobench.summary=true``) in the same experiment, and in the parent run of
each sweep it shows, so the MLflow UI holds every report next to the runs it summarises.
"""

from __future__ import annotations

import logging
import os
import shlex
from dataclasses import replace
from pathlib import Path

import hydra
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from mesobench.config.paths import conf_dir, register_resolvers
from mesobench.errors import MesobenchError
from mesobench.report import document, latest_per_key
from mesobench.report import settings as report_settings
from mesobench.report.runs_table import RunFilter, read_runs_table
from mesobench.store import runs as stored
from mesobench.store.tracking import Tracker

log = logging.getLogger("mesobench.aggregate")

register_resolvers()
# MLflow draws a progress bar per downloaded artifact; a report fetches a handful: no bars.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def aggregate(cfg: DictConfig) -> str:
    """Read the runs the config selects, write the report, log it as a summary run."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    cfg = report_settings.with_experiment(cfg, overrides)
    settings = report_settings.settings_from(cfg)
    parity = report_settings.parity_from(cfg)  # a bad path fails before anything is read
    published = report_settings.published_from(cfg)
    where = report_settings.run_filter(cfg, settings.models)
    table_path = Path(to_absolute_path(str(cfg.runs))) if cfg.runs else None
    runs = _read(cfg, table_path, where)
    comparison = None
    if cfg.compare.sweep_id:
        other = _read(
            cfg,
            table_path,
            replace(where, sweep_id=cfg.compare.sweep_id, suite=cfg.compare.suite or where.suite),
        )
        labels = (
            str(where.sweep_id or "selection"),
            str(cfg.compare.label or cfg.compare.sweep_id),
        )
        comparison = document.Comparison(other, labels)
    command = " ".join(["python -m mesobench.aggregate", *map(shlex.quote, overrides)])
    selection = report_settings.selection_text(cfg)
    out_dir = Path(cfg.out_dir)
    page = document.write_report(
        runs,
        out_dir,
        f"mesobench report: {cfg.report}",
        command,
        settings,
        source="its runs table" if table_path is not None else "the MLflow store",
        explanations=_explanations(cfg, runs, table_path),
        comparison=comparison,
        selection=selection,
        parity=parity,
        published=published,
    )
    log.info("wrote %s", out_dir)
    if cfg.summary_run and table_path is None:
        _log_to_store(cfg, runs, out_dir, command, selection)
    return page


def _log_to_store(
    cfg: DictConfig, runs: pd.DataFrame, out_dir: Path, command: str, selection: str
) -> None:
    """The report as a summary run's artifacts, and in the parent run of each of its sweeps."""
    run_id = stored.log_summary_run(
        cfg.tracking.uri,
        cfg.tracking.experiment,
        cfg.tracking.get("artifact_location"),
        out_dir,
        report=str(cfg.report),
        command=command,
        selection=selection,
    )
    log.info("logged the report as summary run %s", run_id)
    parents = stored.attach_to_sweep_parents(Tracker.from_config(cfg.tracking), runs, out_dir)
    if parents:
        log.info("attached the report to the parent runs of its sweeps: %s", parents)


def _read(cfg: DictConfig, table_path: Path | None, where: RunFilter) -> pd.DataFrame:
    """The selected runs, from the runs table when one is given, else from the store."""
    if table_path is not None:
        return read_runs_table(table_path, where)
    return stored.load_runs(cfg.tracking.uri, cfg.tracking.experiment, where)


def _explanations(
    cfg: DictConfig, runs: pd.DataFrame, table_path: Path | None
) -> document.ExplanationInput | document.KeptExplanation | None:
    """The runs' logged explanation samples for the picture (``explain.*``); a runs table has
    none (they are artifacts in the store): regenerating a report from its runs table keeps
    the picture it has."""
    explain = cfg.explain
    if table_path is not None:
        kept = document.kept_explanation(Path(cfg.out_dir)) if explain.enabled else None
        log.info(
            "runs from %s: no MLflow store is read (%s)",
            table_path,
            "the explanation picture is kept" if kept else "no explanation picture",
        )
        return kept
    if not explain.enabled or runs.empty:
        return None
    return stored.load_explanations(
        cfg.tracking.uri,
        latest_per_key(runs),
        report_settings.as_list(explain.families) or list(document.EXPLAIN_FAMILIES),
        task=explain.task,
        row=explain.row,
        klass=None if explain["class"] is None else str(explain["class"]),
    )


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="aggregate")
def main(cfg: DictConfig) -> None:
    try:
        print(aggregate(cfg))
    except MesobenchError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
