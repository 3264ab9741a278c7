"""One job's work (load → build → evaluate), in this process or in a time-limited child.

The runner records a job in MLflow; this module does the job itself from plain values, so the
same function can run in a ``spawn``-ed child process that is killed when it exceeds the run's
wall-clock limit (``guards.time_limit_s``). A limit enforced from inside the process (signals)
cannot interrupt a long C++ call such as a CatBoost fit; a separate process can always be ended.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from dataclasses import dataclass
from typing import Any

from mesobench.errors import MesobenchError
from mesobench.protocol import limits


class TimeLimitExceeded(MesobenchError):
    """The run took longer than ``guards.time_limit_s`` and was stopped."""


class JobFailed(Exception):
    """A failure inside a child process, carried back with its original type and traceback."""

    def __init__(self, type_name: str, message: str, trace: str, expected: bool):
        super().__init__(message)
        self.type_name, self.trace, self.expected = type_name, trace, expected


@dataclass(frozen=True)
class Job:
    """Everything a job needs, as plain (picklable) values."""

    plain: dict[str, Any]  # the resolved config
    fold: int
    seed: int
    threads: int


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def explain_failure(exc: BaseException) -> str:
    """The reason recorded for a failed run, with a hint where one helps."""
    reason = f"{type(exc).__name__}: {exc}"
    if "OutOfMemoryError" in type(exc).__name__ or "CUDA out of memory" in str(exc):
        reason += " | hint: lower model.params.batch_size, or run with device=cpu"
    return reason


def evaluate(job: Job) -> tuple[Any, str]:
    """Run the protocol for ``job``; returns (FoldOutcome, resolved device)."""
    from mesobench.data import load_fold
    from mesobench.models import resolve_device
    from mesobench.protocol.estimators import (
        DeviceSettings,
        build_estimator,
        scaled_batch_size,
        settings_notes,
    )
    from mesobench.protocol.pipeline import evaluate_fold
    from mesobench.protocol.settings import Protocol
    from mesobench.store.inputs import fold_inputs

    plain = job.plain
    protocol = Protocol.from_config(plain)  # a bad setting fails before the data is loaded
    task_name = str(plain["task"].get("name"))
    limits.check(plain["model"], limits.Shape.declared(plain["task"]), task_name)
    set_threads(job.threads)
    device = resolve_device(plain["device"]["name"])
    data = load_fold(
        plain["task"],
        job.fold,
        openml_cache_dir=plain["data"]["openml_cache_dir"],
        offline=str(plain["data"]["offline"]).lower(),
    )
    loaded = limits.Shape(len(data.y_train), data.X_train.shape[1], data.n_classes or 1)
    limits.check(plain["model"], loaded, task_name)
    settings = DeviceSettings.from_config(plain.get("device"))
    estimator = build_estimator(
        plain["model"],
        data.task.kind,
        seed=job.seed,
        device=device,
        threads=job.threads,
        settings=settings,
    )
    outcome = evaluate_fold(
        data,
        estimator,
        protocol,
        seed=job.seed,
        cuda=device.startswith("cuda"),
    )
    outcome.notes[:0] = settings_notes(plain["model"], estimator, settings, data.task.kind)
    if plain["tracking"]["log_datasets"]:  # describing the data costs a pass over it
        outcome.datasets = fold_inputs(data, plain["task"])
    batch_size = scaled_batch_size(plain["model"], settings, data.task.kind)
    if settings.batch_size_scale != 1 and batch_size is not None:
        outcome.params["batch_size_effective"] = batch_size
    return outcome, device


def _child(conn: Any, job: Job) -> None:
    try:
        conn.send(("ok", evaluate(job)))
    except BaseException as exc:  # report everything, including KeyboardInterrupt
        conn.send(
            (
                "error",
                (
                    type(exc).__name__,
                    str(exc),
                    traceback.format_exc(),
                    isinstance(exc, MesobenchError),
                ),
            )
        )
    finally:
        conn.close()


def run(job: Job, time_limit_s: float | None = None) -> tuple[Any, str]:
    """Evaluate ``job`` here, or in a child process killed after ``time_limit_s`` seconds."""
    if not time_limit_s:
        return evaluate(job)
    if mp.get_start_method(allow_none=True) not in (None, *mp.get_all_start_methods()):
        # inside a joblib (loky) worker the default is "loky", which a spawned child's
        # bootstrap cannot set up: it dies before running anything
        mp.set_start_method("spawn", force=True)
    ctx = mp.get_context("spawn")  # fork is unsafe once torch/OpenMP threads exist
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, job), daemon=True, name="mesobench-job")
    start = time.monotonic()
    proc.start()
    child.close()
    try:
        if not parent.poll(time_limit_s):
            raise TimeLimitExceeded(
                f"the run exceeded its wall-clock limit of {time_limit_s:g}s "
                f"(guards.time_limit_s) and was stopped after {time.monotonic() - start:.0f}s"
            )
        try:
            status, payload = parent.recv()
        except EOFError:
            proc.join(5)
            why = (
                "killed by a signal, e.g. the OS out-of-memory killer"
                if proc.exitcode is None or proc.exitcode < 0
                else "its error output is in the job's log"
            )
            raise JobFailed(
                "ChildDied",
                f"the job's process died without a result (exit code {proc.exitcode}; {why})",
                "",
                False,
            ) from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        parent.close()
    if status == "error":
        raise JobFailed(*payload)
    return payload
