"""Run one configuration and record it in MLflow.

    python -m mesobench.run model=xgboost task=credit-g fold=0 seed=0 device=cpu
    python -m mesobench.run -m suite=quick model=logreg,xgboost hydra/launcher=joblib

One job = one MLflow run. A run key that already FINISHED is skipped (``force=true`` reruns),
so an interrupted sweep resumes where it stopped. Anything that goes wrong inside a job (bad data,
a diverging model, a missing GPU, a bug in a model) becomes a FAILED run carrying the error, and
the sweep goes on.
"""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mesobench.paths import conf_dir, register_resolvers

log = logging.getLogger("mesobench.run")

register_resolvers()


def _hydra() -> Any | None:
    return HydraConfig.get() if HydraConfig.initialized() else None


def resolve_sweep_id(cfg: DictConfig) -> str:
    if cfg.get("sweep_id"):
        return str(cfg.sweep_id)
    hc = _hydra()
    if hc is None:
        return "adhoc"
    directory = hc.sweep.dir if hc.mode == RunMode.MULTIRUN else hc.run.dir
    return Path(directory).name


def resolve_threads(value: Any) -> int:
    """``auto``: the cores divided among the sweep's parallel jobs, so workers never oversubscribe."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if value not in (None, "auto"):
        return max(1, int(value))
    hc = _hydra()
    n_jobs = None
    if hc is not None and hc.mode == RunMode.MULTIRUN:
        n_jobs = OmegaConf.select(hc, "launcher.n_jobs", default=None)
    if n_jobs is None:
        return cores
    if n_jobs < 0:  # joblib: -1 = all cores in parallel
        return 1
    return max(1, cores // n_jobs)


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def execute(cfg: DictConfig) -> dict[str, Any]:
    """Run the job described by a composed config; returns a small status dict."""
    from mesobench import tracking
    from mesobench.data import load_fold
    from mesobench.errors import MesobenchError
    from mesobench.estimators import build_estimator
    from mesobench.models import resolve_device
    from mesobench.pipeline import evaluate_fold

    plain = OmegaConf.to_container(cfg, resolve=True)
    model_cfg, task_cfg = plain["model"], plain["task"]
    model_name, task_name = model_cfg["name"], task_cfg["name"]
    fold, seed = int(cfg.fold), int(cfg.seed)
    label = f"{model_name} on {task_name} fold {fold} seed {seed}"

    tracker = tracking.Tracker(
        cfg.tracking.uri, cfg.tracking.experiment, cfg.tracking.get("artifact_location")
    )
    key = tracking.run_key(
        model_cfg=model_cfg,
        preprocessing_cfg=plain["preprocessing"],
        validation_cfg=plain["validation"],
        task_cfg=task_cfg,
        fold=fold,
        seed=seed,
        device=cfg.device.name,
        hpo_cfg=plain["hpo"],
    )
    if not cfg.force:
        existing = tracker.find_finished(key)
        if existing:
            log.info("skip %s: already FINISHED as run %s (force=true reruns)", label, existing)
            return {"status": "SKIPPED", "run_id": existing}

    threads = resolve_threads(cfg.threads)
    tags = {
        tracking.RUN_KEY_TAG: key,
        "model": model_name,
        "task": task_name,
        "task_id": task_cfg.get("task_id", ""),
        "dataset": task_name,
        "fold": fold,
        "seed": seed,
        "suite": cfg.suite_name or "",
        "sweep_id": resolve_sweep_id(cfg),
        "config_hash": tracking.config_hash(model_cfg, plain["preprocessing"]),
        "git_commit": tracking.git_commit(),
        "device": cfg.device.name,
    }
    run_id = tracker.start(f"{model_name}/{task_name}/fold{fold}/seed{seed}", tags)
    log.info("start %s (run %s, %d threads)", label, run_id, threads)
    tracker.log_params(run_id, {**tracking.flatten(plain), "threads": threads})
    tracker.log_text(run_id, OmegaConf.to_yaml(plain), "config.yaml")
    try:
        _set_threads(threads)
        device = resolve_device(cfg.device.name)
        tracker.log_params(run_id, {"resolved_device": device})
        data = load_fold(
            task_cfg,
            fold,
            openml_cache_dir=cfg.data.openml_cache_dir,
            offline=str(cfg.data.offline).lower(),
        )
        estimator = build_estimator(
            model_cfg, data.task.kind, seed=seed, device=device, threads=threads
        )
        outcome = evaluate_fold(
            data,
            estimator,
            preprocessing=plain["preprocessing"],
            validation=plain["validation"],
            seed=seed,
            use_validation=bool(model_cfg.get("use_validation", True)),
            hpo_cfg=plain["hpo"],
            explanations=plain["explanations"],
            cuda=device.startswith("cuda"),
        )
    except KeyboardInterrupt:
        tracker.set_tags(run_id, {"error": "interrupted by the user"})
        tracker.end(run_id, "KILLED")
        raise
    except Exception as exc:  # every failure is recorded, and the sweep goes on
        reason = f"{type(exc).__name__}: {exc}"
        expected = isinstance(exc, MesobenchError)
        tracker.set_tags(run_id, {"error": reason[:5000], "error_type": type(exc).__name__})
        tracker.log_text(run_id, traceback.format_exc(), "error.txt")
        tracker.end(run_id, "FAILED")
        if expected:
            log.error("FAILED %s: %s", label, reason)
        else:
            log.exception("FAILED %s (unexpected error; traceback in the run's error.txt)", label)
        return {"status": "FAILED", "run_id": run_id, "error": reason}

    tracker.log_params(run_id, outcome.params)
    if outcome.notes:
        tracker.set_tags(run_id, {"notes": " | ".join(outcome.notes)[:5000]})
        for note in outcome.notes:
            log.warning("%s: %s", label, note)
    tracker.log_metrics(run_id, outcome.metrics)
    for name, values in outcome.step_metrics.items():
        for step, value in enumerate(values):
            tracker.log_metrics(run_id, {name: value}, step=step)
    for path, obj in outcome.artifacts.items():
        if hasattr(obj, "to_csv"):
            tracker.log_text(run_id, obj.to_csv(index=False), path)
        else:
            tracker.log_dict(run_id, obj, path)
    tracker.end(run_id, "FINISHED")
    headline = outcome.metrics.get("auroc", outcome.metrics.get("mse"))
    log.info(
        "done %s: %s=%s fit %.1fs",
        label,
        "auroc" if "auroc" in outcome.metrics else "mse",
        "n/a" if headline is None else f"{headline:.4f}",
        outcome.metrics["fit_seconds"],
    )
    return {"status": "FINISHED", "run_id": run_id, "metrics": outcome.metrics}


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def main(cfg: DictConfig) -> dict[str, Any]:
    return execute(cfg)


if __name__ == "__main__":
    main()
