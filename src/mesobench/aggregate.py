"""Read runs back from MLflow and write comparison tables to ``results/<report>/``.

    python -m mesobench.aggregate                        # every run of the experiment
    python -m mesobench.aggregate filters.suite=quick report=quick

Writes markdown and CSV: per-task mean ± std of the headline metric per model, the average rank
over tasks, finished / failed counts per model and the list of failed runs with their errors.
Failed runs are never dropped silently: the report says which tasks left the ranking and why.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from mesobench import report
from mesobench.errors import MesobenchError
from mesobench.paths import conf_dir, register_resolvers
from mesobench.tracking import RUN_KEY_TAG

log = logging.getLogger("mesobench.aggregate")

register_resolvers()

_TAGS = ["model", "task", "fold", "seed", "sweep_id", "suite", "config_hash", "error", "device"]


def load_runs(
    uri: str,
    experiment: str,
    *,
    sweep_id: str | None = None,
    suite: str | None = None,
    models: list[str] | None = None,
    tasks: list[str] | None = None,
) -> pd.DataFrame:
    """All runs of ``experiment`` matching the filters, one row each, metrics as columns."""
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise MesobenchError(
            f"no experiment '{experiment}' in the MLflow store {uri}: nothing has been run there "
            "yet. Run a sweep first (make benchmark) or point tracking.uri at the right store."
        )
    clauses = []
    if sweep_id:
        clauses.append(f"tags.sweep_id = '{sweep_id}'")
    if suite:
        clauses.append(f"tags.suite = '{suite}'")
    rows: list[dict[str, Any]] = []
    token = None
    while True:
        page = client.search_runs(
            [exp.experiment_id],
            filter_string=" and ".join(clauses),
            max_results=5000,
            page_token=token,
        )
        for run in page:
            tags = run.data.tags
            row = {
                "run_id": run.info.run_id,
                "status": run.info.status,
                "start_time": run.info.start_time,
                "run_key": tags.get(RUN_KEY_TAG, run.info.run_id),
                **{t: tags.get(t) for t in _TAGS},
                **run.data.metrics,
            }
            rows.append(row)
        token = page.token
        if not token:
            break
    runs = pd.DataFrame(rows, columns=["run_id", "status", "start_time", "run_key", *_TAGS])
    if rows:
        runs = pd.DataFrame(rows)
    if models:
        runs = runs[runs["model"].isin(list(models))]
    if tasks:
        runs = runs[runs["task"].isin(list(tasks))]
    runs = runs[runs["model"].notna()]  # runs not made by mesobench
    for column in ("fold", "seed"):
        runs[column] = pd.to_numeric(runs[column], errors="coerce")
    return label_models(runs)


def label_models(runs: pd.DataFrame) -> pd.DataFrame:
    """Tell apart configurations of one model: ``xgboost@1a2b3c`` when several were run."""
    if runs.empty:
        return runs
    n_configs = runs.groupby("model")["config_hash"].transform("nunique")
    suffix = "@" + runs["config_hash"].fillna("").str[:6]
    runs = runs.copy()
    runs["model"] = runs["model"].where(n_configs <= 1, runs["model"] + suffix)
    return runs


def write_report(
    runs: pd.DataFrame,
    out_dir: Path,
    metric: str,
    title: str,
    command: str = "python -m mesobench.aggregate",
) -> str:
    """Write the tables; return the markdown summary page (also saved as README.md)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    keyed = report.latest_per_key(runs)
    if metric not in keyed:
        keyed = keyed.assign(**{metric: float("nan")})
    summary = report.fold_summary(keyed, metric)
    wide = report.wide_mean_std(summary) if not summary.empty else pd.DataFrame()
    ranks, dropped = (
        report.average_ranks(summary) if not summary.empty else (pd.Series(dtype=float), [])
    )
    status = report.status_counts(keyed) if not keyed.empty else pd.DataFrame()
    failed = report.failures(keyed) if not keyed.empty else pd.DataFrame()

    keyed.to_csv(out_dir / "runs.csv", index=False)
    summary.to_csv(out_dir / f"{metric}_by_task.csv", index=False)
    ranks.rename_axis("model").to_csv(out_dir / "average_rank.csv")
    status.to_csv(out_dir / "status.csv")
    failed.to_csv(out_dir / "failures.csv", index=False)

    n_tasks = summary["task"].nunique() if not summary.empty else 0
    lines = [
        f"# {title}",
        "",
        f"{len(keyed)} runs ({int(keyed['status'].eq('FINISHED').sum())} finished) over "
        f"{n_tasks} tasks. Regenerate from the MLflow store: `{command}`. Each configuration "
        "(run key) counts once: its latest FINISHED run, else its latest run.",
        "",
        f"## {metric}: mean ± std over folds",
        "",
        report.markdown_table(wide) if not wide.empty else "_(no finished runs)_\n",
        "## Average rank (1 = best)",
        "",
        report.markdown_table(ranks.to_frame()) if not ranks.empty else "_(no complete task)_\n",
    ]
    if dropped:
        lines += [
            f"Left out of the ranking ({len(dropped)} task(s) where some model has no finished "
            f"run): {', '.join(dropped)}.",
            "",
        ]
    lines += ["## Runs per model", "", report.markdown_table(status)]
    if not failed.empty:
        lines += [
            "## Failed or unfinished runs",
            "",
            "They are excluded from the means above; a task where a model has none left is "
            "excluded from the ranking.",
            "",
            report.markdown_table(failed, index=False),
        ]
    page = "\n".join(lines)
    (out_dir / "README.md").write_text(page)
    (out_dir / f"{metric}_by_task.md").write_text(
        report.markdown_table(wide) if not wide.empty else ""
    )
    (out_dir / "average_rank.md").write_text(
        report.markdown_table(ranks.to_frame()) if not ranks.empty else ""
    )
    (out_dir / "status.md").write_text(report.markdown_table(status))
    return page


def aggregate(cfg: DictConfig) -> str:
    filters = cfg.filters

    def as_list(value: Any) -> list[str] | None:
        if value is None:
            return None
        return [value] if isinstance(value, str) else list(OmegaConf.to_container(value))

    runs = load_runs(
        cfg.tracking.uri,
        cfg.tracking.experiment,
        sweep_id=filters.sweep_id,
        suite=filters.suite,
        models=as_list(filters.models),
        tasks=as_list(filters.get("tasks")),
    )
    title = f"mesobench report: {cfg.report}"
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    command = " ".join(["python -m mesobench.aggregate", *overrides])
    page = write_report(runs, Path(cfg.out_dir), cfg.metric, title, command)
    log.info("wrote %s", cfg.out_dir)
    return page


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="aggregate")
def main(cfg: DictConfig) -> None:
    try:
        print(aggregate(cfg))
    except MesobenchError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
