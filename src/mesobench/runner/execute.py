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
import sys
import traceback
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mesobench.config.paths import register_resolvers
from mesobench.protocol.estimators import DeviceSettings

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
    command: str = ""  # the command line that reruns exactly this job

    @property
    def label(self) -> str:
        model, task = self.plain["model"]["name"], self.plain["task"]["name"]
        return f"{model} on {task} fold {self.fold} seed {self.seed}"

    @property
    def run_name(self) -> str:
        model, task = self.plain["model"]["name"], self.plain["task"]["name"]
        return f"{model}/{task}/fold{self.fold}/seed{self.seed}"


def model_choice() -> str | None:
    """The model config file this job composed (``model=<choice>``), when Hydra runs it."""
    hc = _hydra()
    return None if hc is None else hc.runtime.choices.get("model")


def job_command() -> str:
    """``python -m mesobench.run <this job's overrides>`` (in a sweep: its own values)."""
    from mesobench.store import run_note

    hc = _hydra()
    return run_note.command_line(list(hc.overrides.task) if hc is not None else [])


def build_request(cfg: DictConfig) -> RunRequest:
    """The run key and the tags that identify the run (model, task, fold, experiment, code),
    with MLflow's standard source tags and a first description (``mlflow.note.content``)."""
    from mesobench.config import identity, tags
    from mesobench.protocol.boundary import check_run_config
    from mesobench.protocol.tuning_protocol import check_tuning_protocol
    from mesobench.store import run_note, tracking

    plain = OmegaConf.to_container(cfg, resolve=True)
    check_run_config(plain, model_choice())  # fold=abc, seed=-5 ... fail before any run
    DeviceSettings.from_config(plain["device"])
    check_tuning_protocol(plain)  # an experiment's models are tuned alike, or say why not
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
        **run_note.source_tags(),
    }
    command = job_command()
    run_tags.update(run_note.note_tags(run_tags, command))
    key = identity.run_key(plain)
    return RunRequest(plain, key, run_tags, fold, seed, resolve_threads(cfg.threads), command)


def sweep_parent_tags(tracker: Any, sweep_id: str) -> dict[str, str]:
    """``mlflow.parentRunId`` of the sweep's parent run, when this job is part of a multirun
    whose parent exists (:mod:`mesobench.runner.sweep_parent`); else nothing."""
    from mesobench.config import tags

    hc = _hydra()
    if hc is None or hc.mode != RunMode.MULTIRUN:
        return {}
    from mesobench.store.runs import find_sweep_parent

    parent = find_sweep_parent(tracker, sweep_id)
    return {tags.PARENT_RUN_TAG: parent} if parent else {}


def execute(cfg: DictConfig) -> dict[str, Any]:
    """Run the job described by a composed config; returns a small status dict.

    Stages: identify (run key, tags) → claim the key in the store (skip what FINISHED) → run the
    job (:mod:`mesobench.runner.job`, in a guarded child where configured) → record the outcome or the
    failure. Nothing raised inside the job escapes: it becomes a FAILED run.
    """
    from mesobench.config import identity
    from mesobench.runner import job as jobs
    from mesobench.store import tracking

    request = build_request(cfg)
    tracker = tracking.Tracker.from_config(cfg.tracking)
    guards = request.plain["guards"]
    claim = tracker.claim(
        request.key,
        request.run_name,
        {**request.tags, **sweep_parent_tags(tracker, request.tags["sweep_id"])},
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
    tracker.log_params(run_id, {**identity.flatten(request.plain), "threads": request.threads})
    tracker.log_text(run_id, OmegaConf.to_yaml(request.plain), "config.yaml")
    job = jobs.Job(
        plain=request.plain, fold=request.fold, seed=request.seed, threads=request.threads
    )
    logging_ = LoggingSettings.from_config(request.plain["tracking"])
    try:
        with (
            tracker.heartbeat(run_id, float(guards["heartbeat_s"])),
            system_metrics(tracker, run_id, logging_),
        ):
            outcome, device = jobs.run(job, guards.get("time_limit_s"))
    except KeyboardInterrupt:
        tracker.set_tags(run_id, {"error": "interrupted by the user"})
        tracker.end(run_id, "KILLED")
        raise
    except Exception as exc:  # every failure is recorded, and the sweep goes on
        return record_failure(tracker, run_id, request, exc)
    try:
        record_outcome(tracker, run_id, request, outcome, device, logging_)
    except Exception as exc:  # the store refused part of the outcome: FAILED, not left RUNNING
        return record_failure(tracker, run_id, request, exc)
    return {"status": "FINISHED", "run_id": run_id, "metrics": outcome.metrics}


@dataclass(frozen=True)
class LoggingSettings:
    """What a run logs beside params and metrics (``tracking.*`` in conf/tracking/common.yaml)."""

    datasets: bool
    curves: bool
    pictures: bool
    system_metrics: bool
    system_metrics_interval_s: float

    @classmethod
    def from_config(cls, tracking: dict[str, Any]) -> LoggingSettings:
        return cls(
            datasets=bool(tracking["log_datasets"]),
            curves=bool(tracking["log_curves"]),
            pictures=bool(tracking["log_pictures"]),
            system_metrics=bool(tracking["system_metrics"]),
            system_metrics_interval_s=float(tracking["system_metrics_interval_s"]),
        )


def system_metrics(tracker: Any, run_id: str, settings: LoggingSettings) -> Any:
    """MLflow's system metrics (``system/*``) while the job runs, when
    ``tracking.system_metrics`` is on."""
    if not settings.system_metrics:
        return nullcontext()
    return tracker.system_metrics(run_id, settings.system_metrics_interval_s)


def record_failure(
    tracker: Any, run_id: str, request: RunRequest, exc: Exception
) -> dict[str, Any]:
    """End the run FAILED with its reason (tag ``error``, and the description) and traceback
    (artifact error.txt)."""
    from mesobench.errors import MesobenchError
    from mesobench.runner import job as jobs
    from mesobench.store import run_note

    if isinstance(exc, jobs.JobFailed):
        type_name, trace, expected = exc.type_name, exc.trace, exc.expected
        reason = f"{type_name}: {exc}"
    else:
        type_name, trace = type(exc).__name__, traceback.format_exc()
        expected, reason = isinstance(exc, MesobenchError), jobs.explain_failure(exc)
    label = request.label
    note = run_note.note_tags(request.tags, request.command, run_note.failure(reason))
    tracker.set_tags(run_id, {"error": reason[:5000], "error_type": type_name, **note})
    tracker.log_text(run_id, trace or reason, "error.txt")
    tracker.end(run_id, "FAILED")
    if expected:
        log.error("FAILED %s: %s", label, reason)
    else:
        log.error("FAILED %s (unexpected; traceback in the run's error.txt): %s", label, reason)
    return {"status": "FAILED", "run_id": run_id, "error": reason}


def record_outcome(
    tracker: Any,
    run_id: str,
    request: RunRequest,
    outcome: Any,
    device: str,
    settings: LoggingSettings,
) -> None:
    """Log a finished job: params, notes, metrics (with per-step and per-epoch series), dataset
    inputs, artifacts and pictures; then the description with the headline metrics."""
    from mesobench.config import tags
    from mesobench.store import run_note

    label = request.label
    tracker.log_params(run_id, {"resolved_device": device, **outcome.params})
    if outcome.notes:
        tracker.set_tags(run_id, {"notes": tags.NOTES_SEPARATOR.join(outcome.notes)[:5000]})
        for note in outcome.notes:
            log.warning("%s: %s", label, note)
    tracker.log_metrics(run_id, outcome.metrics)
    tracker.log_series(run_id, outcome.step_metrics)
    if settings.curves:
        tracker.log_series(run_id, outcome.epoch_metrics, first_step=1)  # step = epoch
    if settings.datasets:
        tracker.log_inputs(run_id, outcome.datasets)
    for path, obj in outcome.artifacts.items():
        if hasattr(obj, "to_csv"):
            tracker.log_text(run_id, obj.to_csv(index=False), path)
        else:
            tracker.log_dict(run_id, obj, path)
    files = dict(outcome.files)  # artifacts.save_model: the model, pickle-free
    if settings.pictures:
        files.update(run_pictures(outcome, request))
    for path, data in files.items():
        tracker.log_bytes(run_id, data, path)
    results = run_note.results(outcome.metrics)
    tracker.set_tags(run_id, run_note.note_tags(request.tags, request.command, results))
    tracker.end(run_id, "FINISHED")
    headline = outcome.metrics.get("auroc", outcome.metrics.get("mse"))
    log.info(
        "done %s: %s=%s fit %.1fs",
        label,
        "auroc" if "auroc" in outcome.metrics else "mse",
        "n/a" if headline is None else f"{headline:.4f}",
        outcome.metrics["fit_seconds"],
    )


def run_pictures(outcome: Any, request: RunRequest) -> dict[str, bytes]:
    """The run's PNGs (:mod:`mesobench.store.run_pictures`); a picture that cannot be drawn is a
    warning, never a failed run."""
    from mesobench.store import run_pictures as pictures

    try:
        return pictures.draw(outcome, request.plain["model"]["name"], request.label)
    except Exception as exc:
        log.warning("%s: could not draw the run's pictures: %s", request.label, exc)
        return {}


def main(cfg: DictConfig) -> dict[str, Any]:
    """The work of ``python -m mesobench.run`` (:mod:`mesobench.run` holds the Hydra entry)."""
    from mesobench.errors import MesobenchError

    try:
        return execute(cfg)
    except MesobenchError as exc:  # bad input found before any run exists: nothing to record
        hc = _hydra()
        if hc is not None and hc.mode == RunMode.MULTIRUN:
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
