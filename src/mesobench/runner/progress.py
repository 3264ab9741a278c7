"""Sweep progress: done / failed / skipped / left and elapsed time, one line per finished job.

Hydra runs the callbacks' ``on_job_end`` inside the worker that ran the job (a joblib process,
a SLURM task), so the count lives in a small append-only file in the sweep directory, guarded by
a file lock; any worker that finishes a job reads it back and prints the sweep's state.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from filelock import FileLock
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("mesobench.sweep")

_STATE = ".progress.json"
_EVENTS = ".progress.log"


def planned_jobs(config: DictConfig) -> int | None:
    """How many jobs the basic sweeper will launch for this config (None if unknown)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeper_target = OmegaConf.select(config, "hydra.sweeper._target_", default="")
    if not sweeper_target.endswith("BasicSweeper"):
        return None
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    arguments = [f"{k}={v}" for k, v in params.items()]
    arguments += list(OmegaConf.select(config, "hydra.overrides.task", default=[]) or [])
    overrides = OverridesParser.create().parse_overrides(arguments)
    batches = BasicSweeper.split_arguments(overrides, None)
    return sum(len(batch) for batch in batches)


def in_multirun(config: DictConfig) -> bool:
    """Whether a job's config belongs to a multirun (``-m``), not a single run."""
    mode = OmegaConf.select(config, "hydra.mode", default=None)
    return getattr(mode, "name", str(mode)) == "MULTIRUN"


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def counts(sweep_dir: Path) -> dict[str, int | None]:
    """``planned`` (None if unknown), ``done`` and the jobs ended FINISHED, FAILED (a crashed
    job counts as failed) and SKIPPED so far in the sweep directory's launch."""
    state = json.loads((sweep_dir / _STATE).read_text())
    events = (sweep_dir / _EVENTS).read_text().split()
    return {
        "planned": state.get("total"),
        "done": len(events),
        "finished": events.count("FINISHED"),
        "failed": events.count("FAILED") + events.count("CRASHED"),
        "skipped": events.count("SKIPPED"),
    }


def summarise(sweep_dir: Path) -> str:
    state = json.loads((sweep_dir / _STATE).read_text())
    now = counts(sweep_dir)
    done, total = now["done"], now["planned"]
    elapsed = time.time() - state["start"]
    parts = [
        f"{done}/{total if total is not None else '?'} done",
        f"{now['finished']} finished",
        f"{now['failed']} failed",
        f"{now['skipped']} skipped",
    ]
    if total is not None:
        parts.append(f"{total - done} left")
    parts.append(f"elapsed {_fmt(elapsed)}")
    ran = done - now["skipped"]
    if total is not None and ran > 0 and total > done:
        parts.append(f"eta ~{_fmt(elapsed / ran * (total - done))}")
    return "[sweep] " + ", ".join(parts)


class SweepProgress(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        try:
            total = planned_jobs(config)
        except Exception:  # progress is a convenience; never break a sweep over it
            total = None
        (sweep_dir / _STATE).write_text(json.dumps({"total": total, "start": time.time()}))
        (sweep_dir / _EVENTS).write_text("")
        log.info("[sweep] %s runs planned in %s", "?" if total is None else total, sweep_dir)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not in_multirun(config):
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        if not (sweep_dir / _STATE).exists():
            return
        if job_return.status == JobStatus.COMPLETED and isinstance(job_return._return_value, dict):
            status = job_return._return_value.get("status", "FINISHED")
        else:
            status = "CRASHED"
        with FileLock(str(sweep_dir / ".progress.lock"), timeout=60):
            with open(sweep_dir / _EVENTS, "a") as fh:
                fh.write(status + "\n")
            line = summarise(sweep_dir)
        log.info(line)
