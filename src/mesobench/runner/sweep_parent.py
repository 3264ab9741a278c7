"""One parent run per sweep, with the sweep's runs nested under it in the MLflow UI.

A Hydra callback opens the parent when a multirun starts (in the launching process, before any
job) and closes it when the multirun ends; each job nests its run under it (MLflow's
``mlflow.parentRunId`` tag, set when the run is claimed). The parent carries the sweep id
(tag :data:`~mesobench.config.tags.SWEEP_TAG`), the command, the progress counts (metrics
``sweep/planned``, ``sweep/finished``, ``sweep/failed``, ``sweep/skipped``, refreshed as jobs end)
and, after ``make report``, the report's files (artifacts under ``report/``).

**Reruns.** A parent belongs to a sweep id. Rerunning with the same ``sweep_id`` (an interrupted
sweep resumed with ``sweep_id=X``, the stress test) reopens that sweep's parent: the new runs nest
under it beside the earlier ones, and its counts describe the latest launch. A launch with a new
sweep id (the default: the Hydra sweep directory's timestamp) gets a parent of its own, holding
only the runs that launch made; runs it skipped because they FINISHED earlier stay under the
parent that made them. Claims and run keys are untouched: the parent is no benchmark run (no run
key, no ``sweep_id`` tag), so resuming, audits and reports work exactly as without it.

The parent is a convenience: any failure to open, update or close it is logged as a warning and
never stops a sweep.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mesobench.config.tags import NOTE_TAG, SWEEP_PARENT_TAG, SWEEP_TAG
from mesobench.errors import ConfigError
from mesobench.runner import progress
from mesobench.store import run_note
from mesobench.store.runs import find_sweep_parent
from mesobench.store.tracking import Tracker, code_version, retrying

log = logging.getLogger("mesobench.sweep")


def open_parent(tracker: Tracker, sweep_id: str, command: str) -> str:
    """Create the sweep's parent run, or reopen the one an earlier launch of it made."""
    with tracker.exclusive():
        run_id = find_sweep_parent(tracker, sweep_id)
        if run_id is not None:
            retrying(tracker.client.update_run, run_id, status="RUNNING")
            tracker.set_tags(run_id, {"mesobench.command": command[:5000]})
            return run_id
        tags = {
            SWEEP_PARENT_TAG: "true",
            SWEEP_TAG: sweep_id,
            "mesobench.command": command[:5000],
            NOTE_TAG: f"Sweep `{sweep_id}`: its runs are nested below.\n\n`{command}`",
            **run_note.source_tags(),
            **code_version(),
        }
        run = retrying(
            tracker.client.create_run,
            tracker.experiment_id,
            run_name=f"sweep {sweep_id}",
            tags={k: str(v) for k, v in tags.items()},
        )
    return run.info.run_id


def log_progress(tracker: Tracker, run_id: str, sweep_dir: Path) -> dict[str, Any]:
    """Copy the launch's progress counts (:func:`mesobench.runner.progress.counts`) onto the parent."""
    now = progress.counts(sweep_dir)
    tracker.log_metrics(
        run_id, {f"sweep/{k}": v for k, v in now.items() if k != "done" and v is not None}
    )
    return now


def close_parent(tracker: Tracker, run_id: str, sweep_id: str, command: str, sweep_dir: Path):
    """Final counts and a description with them; the parent ends FINISHED (its runs keep their
    own status: a sweep whose runs failed still ended)."""
    now = log_progress(tracker, run_id, sweep_dir)
    counts = ", ".join(f"{v} {k}" for k, v in now.items() if k != "done" and v is not None)
    note = (
        f"Sweep `{sweep_id}`: its runs are nested below.\n\n`{command}`\n\nLast launch: {counts}."
    )
    tracker.set_tags(run_id, {NOTE_TAG: note})
    tracker.end(run_id, "FINISHED")


def sweep_id_of(config: DictConfig) -> str:
    """The sweep id the jobs will tag their runs with (``sweep_id``, else the sweep directory)."""
    return str(config.get("sweep_id") or Path(config.hydra.sweep.dir).name)


def _command(config: DictConfig) -> str:
    overrides = list(OmegaConf.select(config, "hydra.overrides.task", default=[]) or [])
    return run_note.command_line(["-m", *overrides])


class SweepParentRun(Callback):
    """Hydra callback: the parent run of a multirun (see the module docstring)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            tracker = Tracker.from_config(config.tracking)
            run_id = open_parent(tracker, sweep_id_of(config), _command(config))
            log.info("[sweep] parent run %s (the sweep's runs are nested under it)", run_id)
        except ConfigError as exc:  # the store refuses us (credentials): every job would fail
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from exc
        except Exception as exc:  # a convenience: never break a sweep over it
            log.warning("[sweep] could not open the sweep's parent run: %s", exc)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if not progress.in_multirun(config):
            return
        try:
            tracker = Tracker.from_config(config.tracking)
            run_id = find_sweep_parent(tracker, sweep_id_of(config))
            if run_id is not None:
                log_progress(tracker, run_id, Path(config.hydra.sweep.dir))
        except Exception as exc:
            log.debug("[sweep] could not update the parent's progress: %s", exc)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            tracker = Tracker.from_config(config.tracking)
            sweep_id = sweep_id_of(config)
            run_id = find_sweep_parent(tracker, sweep_id)
            if run_id is not None:
                close_parent(
                    tracker, run_id, sweep_id, _command(config), Path(config.hydra.sweep.dir)
                )
        except Exception as exc:
            log.warning("[sweep] could not close the sweep's parent run: %s", exc)
