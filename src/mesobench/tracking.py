"""MLflow bookkeeping: one MLflow run per (model config, task, fold, seed).

The runner talks to MLflow only through :class:`Tracker`, built on ``MlflowClient`` (no global
"active run"), so that many jobs in one worker process never mix their runs up.

A run is identified by its *run key*: a hash of everything that changes its result (model
config, preprocessing, validation protocol, task, fold, seed, device) and of nothing that does
not (tracking URI, cache paths, thread count, sweep/suite labels). A key that already FINISHED
is skipped, which makes every sweep resumable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from collections.abc import Mapping
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path
from typing import Any

from filelock import FileLock
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from mesobench.paths import repo_root

log = logging.getLogger(__name__)

# MLflow's limits (mlflow.utils.validation): param values up to 6000 characters, 100 params
# and 1000 metrics per batch call.
MAX_PARAM_VALUE = 6000
PARAM_BATCH = 100
METRIC_BATCH = 1000

RUN_KEY_TAG = "mesobench.run_key"


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))


def stable_hash(obj: Any, length: int = 16) -> str:
    return hashlib.sha256(_canonical(obj).encode()).hexdigest()[:length]


def config_hash(model_cfg: Mapping, preprocessing_cfg: Mapping) -> str:
    """Identifies a model configuration (its hyperparameters and input pipeline)."""
    return stable_hash({"model": model_cfg, "preprocessing": preprocessing_cfg})


def run_key(
    *,
    model_cfg: Mapping,
    preprocessing_cfg: Mapping,
    validation_cfg: Mapping,
    task_cfg: Mapping,
    fold: int,
    seed: int,
    device: str,
    hpo_cfg: Mapping | None = None,
) -> str:
    identity = {
        "config": config_hash(model_cfg, preprocessing_cfg),
        "validation": validation_cfg,
        "task": task_cfg,
        "fold": fold,
        "seed": seed,
        "device": device,
    }
    if hpo_cfg and hpo_cfg.get("n_trials"):  # a search changes the result; no search, no key
        identity["hpo"] = hpo_cfg
    return stable_hash(identity, length=32)


def flatten(cfg: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"model": {"params": {"lr": 0.1}}}`` → ``{"model.params.lr": 0.1}``."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The checkout's commit, with ``-dirty`` when it has uncommitted changes; ``unknown`` else."""
    root = repo_root()
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :])


class Tracker:
    """A connection to one MLflow experiment."""

    def __init__(self, uri: str, experiment: str, artifact_location: str | None = None):
        self.uri = uri
        db = _sqlite_path(uri)
        # Creating the SQLite schema and the experiment must not race between sweep workers.
        lock = FileLock(str(db) + ".lock", timeout=120) if db is not None else nullcontext()
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        with lock:
            self.client = MlflowClient(tracking_uri=uri)
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                self.experiment_id = self.client.create_experiment(
                    experiment, artifact_location=artifact_location
                )
            else:
                self.experiment_id = exp.experiment_id

    # -- lookup --------------------------------------------------------------------------------
    def find_finished(self, key: str) -> str | None:
        """The id of a FINISHED run with this run key, if any."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'",
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    # -- writing -------------------------------------------------------------------------------
    def start(self, run_name: str, tags: Mapping[str, Any]) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=run_name,
            tags={k: str(v) for k, v in tags.items()},
        )
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [
            Param(key[:250], "None" if value is None else str(value)[:MAX_PARAM_VALUE])
            for key, value in params.items()
        ]
        for i in range(0, len(items), PARAM_BATCH):
            self.client.log_batch(run_id, params=items[i : i + PARAM_BATCH])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        import time

        now = int(time.time() * 1000)
        items = [
            Metric(key, float(value), now, step)
            for key, value in metrics.items()
            if value is not None
        ]
        for i in range(0, len(items), METRIC_BATCH):
            self.client.log_batch(run_id, metrics=items[i : i + METRIC_BATCH])

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_dict(self, run_id: str, obj: Any, artifact_file: str) -> None:
        self.client.log_dict(run_id, obj, artifact_file)

    def end(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status=status)
