"""Every model on every CC18 shape, at reduced budgets, one fold → results/cc18_shapes/.

    python -m mesobench.planning.shape_table                      # sweep (skips FINISHED runs) + table
    python -m mesobench.planning.shape_table --models nimo --tasks shape/CIFAR_10,shape/dna
    python -m mesobench.planning.shape_table --table-only         # the table again, from the store
    python -m mesobench.planning.shape_table --force --models xgboost   # remeasure (the newest run counts)
    python -m mesobench.planning.shape_table --from-runs results/cc18_shapes/shape_runs.csv   # … from the runs table

Why: before anyone pays for the real suite on a cluster, each model, its explanations and the
fidelity metrics must be known to fit in memory and finish on every CC18 shape (CIFAR_10's
60,000 × 3,072, Devnagari-Script's 46 classes, connect-4's categoricals …), and the cost plan
(``python -m mesobench.planning.plan``) needs measured costs to scale. Each model runs through the
ordinary runner (``mesobench.run -m``, so explanations, fidelity, timings and peak memory are
measured and logged as for any run) on ``suite=cc18_shapes`` fold 0, with its cost parameter cut
to the reduced value of ``conf/plan.yaml``'s ``budgets``. Small shapes run two at a time with one
thread each, large ones one at a time with all cores (``--large-cells``), so no two big runs
compete for memory. A run a model refuses up front (``model.limits``, see mesobench/protocol/limits.py)
is recorded FAILED with error type ShapeRefused and appears in the table as REFUSED with its
reason.

Writes ``shape_runs.csv`` (one row per run: what the table needs, from the store) and, from it,
``shape_costs.csv`` / ``README.md`` (per task and model: status, reason, seconds per fit,
per budget unit (epoch, tree …), for explanations and fidelity, peak memory, AUROC). Seconds
per unit are the median of the run's per-epoch (per boosting round) wall times where the model
reports them (``training_curves``), else fit seconds / units.

Measure on a quiet machine: a run that shares its cores with other work (another sweep, a test
suite) records seconds that the plan then scales by up to 500× (an LFR-IMN fit on shape/har took
61 s beside other work and 5.5 s alone).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from mesobench.config.paths import compose_config, repo_root
from mesobench.config.tags import RUN_KEY_TAG
from mesobench.planning.costs import estimator_class
from mesobench.planning.plan import load_plan_config
from mesobench.store.runs import experiment_runs, metric_median

REPO = repo_root()
SWEEP_ID = "cc18_shapes"
OUT = REPO / "results" / "cc18_shapes"
RUN_COLUMNS = (
    "fit_seconds",
    "predict_seconds",
    "explain_seconds",
    "fidelity_seconds",
    "peak_rss_mb",
    "auroc",
)
RUN_PARAMS = ("n_fit", "n_test", "n_features_in", "n_features_model", "threads")


plan_config = load_plan_config


@functools.cache
def model_budget(model: str) -> tuple[str, dict]:
    """(budget parameter, {override key: value}) of ``model`` at the shape sweep's budget
    (the model config as composed, so a variant finds its base's estimator class)."""
    plan = plan_config()
    cls = estimator_class(compose_config(f"model={model}")["model"])
    if cls not in plan["budgets"]:
        raise SystemExit(f"conf/plan.yaml has no budget for {cls} (model {model})")
    budget = plan["budgets"][cls]
    overrides = {
        budget["param"]: budget["reduced"],
        **(budget.get("extra") or {}),
        **(budget.get("settings") or {}),
    }
    return budget["param"], {f"model.{k}": v for k, v in overrides.items()}


def shapes() -> pd.DataFrame:
    rows = []
    for path in sorted((REPO / "conf" / "task" / "shape").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        rows.append({k: cfg[k] for k in ("name", "n_rows", "n_features", "n_classes")})
    table = pd.DataFrame(rows)
    table["cells"] = table["n_rows"] * table["n_features"]
    return table.sort_values("cells").reset_index(drop=True)


def sweep(models, tasks, store, jobs, large_cells, time_limit_s, cores, force=False) -> None:
    table = shapes()
    if tasks:
        table = table[table["name"].isin(tasks)]
    waves = [  # (shapes, parallel runs, threads per run, wall-clock limit per run)
        (table[table["cells"] <= large_cells], jobs, max(1, cores // jobs), None),
        (table[table["cells"] > large_cells], 1, cores, time_limit_s),
    ]
    for wave, n_jobs, threads, limit in waves:  # every model on the small shapes first
        for model in models:
            _, overrides = model_budget(model)
            if wave.empty:
                continue
            command = [
                sys.executable,
                "-m",
                "mesobench.run",
                "-m",
                f"model={model}",
                "task=" + ",".join(wave["name"]),
                "fold=0",
                "suite_name=cc18_shapes",
                f"sweep_id={SWEEP_ID}",
                f"threads={threads}",
                f"tracking.uri={store}",
                "hydra/launcher=joblib",
                f"hydra.launcher.n_jobs={n_jobs}",
                *(f"{k}={v}" for k, v in overrides.items()),
            ]
            if force:  # remeasure: the runner otherwise skips a FINISHED run key
                command.append("force=true")
            if limit:  # a time-limited run starts a fresh process: only worth it for large shapes
                command.append(f"guards.time_limit_s={limit}")
            print(f"[{dt.datetime.now():%H:%M:%S}] {model}: {len(wave)} shapes", flush=True)
            subprocess.run(command, cwd=REPO, check=False)


def runs_from_store(store: str) -> pd.DataFrame:
    found = list(experiment_runs(store, "mesobench", f"tags.sweep_id = '{SWEEP_ID}'"))
    if not found:
        raise SystemExit(f"no {SWEEP_ID} runs in the mesobench experiment of {store}")
    rows = []
    for run in found:
        tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
        if RUN_KEY_TAG not in tags:
            continue  # the sweep's parent run
        model = tags.get("model")
        param, _ = model_budget(model)
        rows.append(
            {
                "run_id": run.info.run_id,
                "status": run.info.status,
                "start_time": run.info.start_time,
                "end_time": run.info.end_time,
                "task": tags.get("task"),
                "model": model,
                "error_type": tags.get("error_type"),
                "error": tags.get("error"),
                "budget_param": param,
                "budget_units": params.get(f"model.{param}"),
                **{k: params.get(k) for k in RUN_PARAMS},
                **{k: metrics.get(k) for k in RUN_COLUMNS},
                "train/epoch_seconds": median_epoch_seconds(store, run),
                "git_commit": tags.get("mlflow.source.git.commit"),
            }
        )
    runs = pd.DataFrame(rows)
    # the newest attempt of each (task, model)
    return runs.sort_values("start_time").drop_duplicates(["task", "model"], keep="last")


def median_epoch_seconds(store: str, run) -> float | None:
    """The median of the run's per-epoch (per boosting round) wall times: a run's metrics hold
    only the last epoch's, and a tree model's rounds vary (the first builds more) so one
    round is a noisy estimate of them all."""
    if "train/epoch_seconds" not in run.data.metrics:
        return None
    return metric_median(store, run.info.run_id, "train/epoch_seconds")


def cost_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (task, model): status (FINISHED / REFUSED / FAILED / …), its reason, and the costs."""
    shape = shapes().assign(task=lambda t: t["name"]).drop(columns=["name", "cells"])
    models = list(dict.fromkeys([*plan_config()["shape_models"], *runs["model"].dropna()]))
    table = shape.merge(pd.DataFrame({"model": models}), how="cross")
    table = table.merge(runs, on=["task", "model"], how="left")
    table["status"] = table["status"].fillna("NOT RUN")
    stopped = table["status"].eq("RUNNING")  # read after the sweep: its process was stopped
    table.loc[stopped, "status"] = "INTERRUPTED"
    table.loc[stopped, "error"] = "the sweep was stopped before this run finished; rerun the script"
    refused = table["error_type"].eq("ShapeRefused")
    table["status"] = table["status"].where(~refused, "REFUSED")
    for column in ("n_fit", "n_features_model", "threads", "budget_units"):  # params: text
        table[column] = pd.to_numeric(table[column], errors="coerce").round().astype("Int64")
    units = table["budget_units"].astype(float)
    per_unit = pd.to_numeric(table["train/epoch_seconds"], errors="coerce")
    table["seconds_per_unit"] = per_unit.fillna(table["fit_seconds"] / units)
    table["reason"] = table["error"].fillna("")
    columns = [
        "task",
        "model",
        "status",
        "reason",
        "n_rows",
        "n_features",
        "n_classes",
        "n_fit",
        "n_features_model",
        "threads",
        "budget_param",
        "budget_units",
        "fit_seconds",
        "seconds_per_unit",
        "predict_seconds",
        "explain_seconds",
        "fidelity_seconds",
        "peak_rss_mb",
        "auroc",
        "run_id",
    ]
    return table[columns].sort_values(["n_rows", "task", "model"]).reset_index(drop=True)


def markdown(table: pd.DataFrame) -> str:
    counts = table["status"].value_counts().to_dict()
    lines = [
        "# Every model on every CC18 shape (reduced budgets, fold 0)",
        "",
        "Generated by mesobench.planning.shape_table from `shape_runs.csv` (regenerate: `python "
        "mesobench.planning.shape_table --from-runs results/cc18_shapes/shape_runs.csv`) "
        f"({len(table)} (task, model) pairs: "
        + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        + "). Shapes: `task=shape/<name>` (mesobench/data/shapes.py); budgets: conf/plan.yaml. "
        "Seconds per unit = the median epoch (torch models) or boosting round (XGBoost) time "
        "where the run logged them, else fit seconds per tree / iteration. Peak memory: "
        "resident set size of the run's process (imports included) during fit and predict. "
        "Measured on one 2-core machine: small shapes ran two at a time with one thread each, "
        "large ones (rows × features above 5e6) one at a time with two threads. Runs started "
        "before 2026-12-02 22:30 UTC (start_time in shape_runs.csv) at times shared the cores "
        "with other work, which made some large-shape figures several times too high (LFR-IMN "
        "on shape/har: a 61 s fit then, 5.5 s alone; mnist_784 and Fashion-MNIST have one "
        "shape, so differences between them are such load); NIMO, LFR-IMN, IMN and XGBoost "
        "(at 50 rounds since 2026-12-03) were remeasured after that, almost always alone. "
        "Read costs as orders of magnitude.",
        "",
    ]
    not_done = table[table["status"] != "FINISHED"]
    if len(not_done):
        lines += ["## Not finished", "", "| task | model | status | reason |", "|---|---|---|---|"]
        for row in not_done.itertuples():
            reason = str(row.reason).replace("|", "/")[:300]
            lines.append(f"| {row.task} | {row.model} | {row.status} | {reason} |")
        lines.append("")
    lines += [
        "## Costs",
        "",
        "| task | rows | features | classes | model | status | fit s | s/unit | fidelity s | "
        "explain s | peak MB | AUROC |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def num(value, digits=3):
        return "" if pd.isna(value) else f"{float(value):.{digits}g}"

    for row in table.itertuples():
        lines.append(
            f"| {row.task} | {row.n_rows:,} | {row.n_features:,} | {row.n_classes} | {row.model} "
            f"| {row.status} | {num(row.fit_seconds)} | {num(row.seconds_per_unit)} | "
            f"{num(row.fidelity_seconds)} | {num(row.explain_seconds)} | "
            f"{num(row.peak_rss_mb, 4)} | {num(row.auroc)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=f"sqlite:///{REPO / 'mlflow.db'}")
    parser.add_argument("--models", default=None, help="comma list (default: conf/plan.yaml)")
    parser.add_argument("--tasks", default=None, help="comma list of shape/<name>")
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs for small shapes")
    parser.add_argument("--large-cells", type=float, default=5e6, help="rows × features above")
    parser.add_argument("--time-limit-s", type=float, default=1800, help="per large-shape run")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument(
        "--force", action="store_true", help="rerun FINISHED pairs (remeasure; the newest counts)"
    )
    parser.add_argument("--from-runs", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    if args.from_runs:
        runs = pd.read_csv(args.from_runs)
    else:
        if not args.table_only:
            models = args.models.split(",") if args.models else plan_config()["shape_models"]
            tasks = args.tasks.split(",") if args.tasks else None
            cores = len(os.sched_getaffinity(0))
            sweep(
                models, tasks, args.store, args.jobs, args.large_cells, args.time_limit_s, cores,
                force=args.force,
            )  # fmt: skip
        runs = runs_from_store(args.store)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.from_runs:
        runs.to_csv(args.out / "shape_runs.csv", index=False)
    table = cost_table(runs)
    table.to_csv(args.out / "shape_costs.csv", index=False)
    (args.out / "README.md").write_text(markdown(table))
    print(table["status"].value_counts(dropna=False).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
