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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mesobench.estimators import DeviceSettings
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


@dataclass(frozen=True)
class RunRequest:
    """One job as the runner records it: the resolved config, its run key and identity tags."""

    plain: dict[str, Any]
    key: str
    tags: dict[str, Any]
    fold: int
    seed: int
    threads: int

    @property
    def label(self) -> str:
        model, task = self.plain["model"]["name"], self.plain["task"]["name"]
        return f"{model} on {task} fold {self.fold} seed {self.seed}"

    @property
    def run_name(self) -> str:
        model, task = self.plain["model"]["name"], self.plain["task"]["name"]
        return f"{model}/{task}/fold{self.fold}/seed{self.seed}"


def build_request(cfg: DictConfig) -> RunRequest:
    """The run key and the tags that identify the run (model, task, fold, experiment, code)."""
    from mesobench import identity, tags, tracking

    plain = OmegaConf.to_container(cfg, resolve=True)
    DeviceSettings.from_config(plain["device"])  # a bad value fails before any run
    task_cfg = plain["task"]
    fold, seed = int(cfg.fold), int(cfg.seed)
    run_tags = {
        "model": plain["model"]["name"],
        "task": task_cfg["name"],
        "task_id": task_cfg.get("task_id", ""),
        "dataset": task_cfg["name"],
        "fold": fold,
        "seed": seed,
        "suite": cfg.suite_name or "",
        tags.SUITES_TAG: tags.suites_value([cfg.suite_name or ""]),
        "sweep_id": resolve_sweep_id(cfg),
        "config_hash": identity.config_hash(identity.without_task(cfg)),
        tags.RUN_KEY_VERSION_TAG: identity.RUN_KEY_VERSION,
        **tracking.code_version(),
        "device": cfg.device.name,
    }
    key = identity.run_key(plain)
    return RunRequest(plain, key, run_tags, fold, seed, resolve_threads(cfg.threads))


def execute(cfg: DictConfig) -> dict[str, Any]:
    """Run the job described by a composed config; returns a small status dict.

    Stages: identify (run key, tags) → claim the key in the store (skip what FINISHED) → run the
    job (:mod:`mesobench.job`, in a guarded child where configured) → record the outcome or the
    failure. Nothing raised inside the job escapes: it becomes a FAILED run.
    """
    from mesobench import job as jobs
    from mesobench import tracking

    request = build_request(cfg)
    tracker = tracking.Tracker(
        cfg.tracking.uri,
        cfg.tracking.experiment,
        cfg.tracking.get("artifact_location"),
        sqlite_wal=bool(cfg.tracking.get("sqlite_wal", True)),
    )
    guards = request.plain["guards"]
    claim = tracker.claim(
        request.key,
        request.run_name,
        request.tags,
        force=bool(cfg.force),
        stale_after_s=float(guards["stale_after_s"]),
    )
    if claim.run_id is None:
        if claim.finished_run_id and cfg.suite_name:  # reused: it counts in this experiment too
            tracker.join_suite(claim.finished_run_id, str(cfg.suite_name))
        log.info(
            "skip %s: %s%s",
            request.label,
            claim.reason,
            "" if cfg.force else " (force=true reruns)",
        )
        return {"status": "SKIPPED", "reason": claim.reason}
    run_id = claim.run_id
    log.info("start %s (run %s, %d threads)", request.label, run_id, request.threads)
    tracker.log_params(run_id, {**tracking.flatten(request.plain), "threads": request.threads})
    tracker.log_text(run_id, OmegaConf.to_yaml(request.plain), "config.yaml")
    job = jobs.Job(
        plain=request.plain, fold=request.fold, seed=request.seed, threads=request.threads
    )
    try:
        with tracker.heartbeat(run_id, float(guards["heartbeat_s"])):
            outcome, device = jobs.run(job, guards.get("time_limit_s"))
    except KeyboardInterrupt:
        tracker.set_tags(run_id, {"error": "interrupted by the user"})
        tracker.end(run_id, "KILLED")
        raise
    except Exception as exc:  # every failure is recorded, and the sweep goes on
        return record_failure(tracker, run_id, request.label, exc)
    record_outcome(tracker, run_id, request.label, outcome, device)
    return {"status": "FINISHED", "run_id": run_id, "metrics": outcome.metrics}


def record_failure(tracker: Any, run_id: str, label: str, exc: Exception) -> dict[str, Any]:
    """End the run FAILED with its reason (tag ``error``) and traceback (artifact error.txt)."""
    from mesobench import job as jobs
    from mesobench.errors import MesobenchError

    if isinstance(exc, jobs.JobFailed):
        type_name, trace, expected = exc.type_name, exc.trace, exc.expected
        reason = f"{type_name}: {exc}"
    else:
        type_name, trace = type(exc).__name__, traceback.format_exc()
        expected, reason = isinstance(exc, MesobenchError), jobs.explain_failure(exc)
    tracker.set_tags(run_id, {"error": reason[:5000], "error_type": type_name})
    tracker.log_text(run_id, trace or reason, "error.txt")
    tracker.end(run_id, "FAILED")
    if expected:
        log.error("FAILED %s: %s", label, reason)
    else:
        log.error("FAILED %s (unexpected; traceback in the run's error.txt): %s", label, reason)
    return {"status": "FAILED", "run_id": run_id, "error": reason}


def record_outcome(tracker: Any, run_id: str, label: str, outcome: Any, device: str) -> None:
    """Log a finished job's params, notes, metrics (with per-step series) and artifacts."""
    from mesobench import tags

    tracker.log_params(run_id, {"resolved_device": device, **outcome.params})
    if outcome.notes:
        tracker.set_tags(run_id, {"notes": tags.NOTES_SEPARATOR.join(outcome.notes)[:5000]})
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
    for path, data in outcome.files.items():  # artifacts.save_model: the model, pickle-free
        tracker.log_bytes(run_id, data, path)
    tracker.end(run_id, "FINISHED")
    headline = outcome.metrics.get("auroc", outcome.metrics.get("mse"))
    log.info(
        "done %s: %s=%s fit %.1fs",
        label,
        "auroc" if "auroc" in outcome.metrics else "mse",
        "n/a" if headline is None else f"{headline:.4f}",
        outcome.metrics["fit_seconds"],
    )


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def main(cfg: DictConfig) -> dict[str, Any]:
    return execute(cfg)


if __name__ == "__main__":
    main()
