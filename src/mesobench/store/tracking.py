"""MLflow bookkeeping: one MLflow run per (model config, task, fold, seed).

The runner talks to MLflow only through :class:`Tracker`, built on ``MlflowClient`` (no global
"active run"), so that many jobs in one worker process never mix their runs up.

A run is identified by its *run key*: a hash of its whole resolved config except the
bookkeeping keys that cannot change its result (:data:`BOOKKEEPING_KEYS`: tracking URI, cache
paths, thread count, sweep/suite labels, guards ...). A key that already FINISHED is skipped,
which makes every sweep resumable.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import psutil
from filelock import FileLock
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mesobench.config.paths import repo_root
from mesobench.config.tags import (
    GIT_COMMIT_TAG,
    GIT_DIRTY_TAG,
    RUN_KEY_TAG,
    SUITES_TAG,
    suites_of,
    suites_value,
)
from mesobench.store import credentials

log = logging.getLogger(__name__)

# MLflow's limits (mlflow.utils.validation): param values up to 6000 characters, 100 params
# and 1000 metrics per batch call.
MAX_PARAM_VALUE = 6000
PARAM_BATCH = 100
METRIC_BATCH = 1000

T = TypeVar("T")


RESULT_PATHS = ("src", "conf", "pyproject.toml")
"""What can change a run's result: a checkout is *dirty* when these differ from its commit
(edits, or new files under them); edits to docs, tests or reports leave runs attributable."""


@lru_cache(maxsize=1)
def code_version() -> dict[str, str]:
    """Tags naming the code a run used: the checkout's commit and whether its
    :data:`RESULT_PATHS` were dirty.

    Outside a git checkout (an installed package) the commit is ``unknown``.
    """
    root = repo_root()

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--", *RESULT_PATHS))
    except (OSError, subprocess.SubprocessError):
        return {GIT_COMMIT_TAG: "unknown", GIT_DIRTY_TAG: "unknown"}
    return {GIT_COMMIT_TAG: sha, GIT_DIRTY_TAG: str(dirty).lower()}


def sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


def _transient(exc: BaseException) -> bool:
    """SQLite contention that goes away when retried ("database is locked", "busy")."""
    text = f"{type(exc).__name__}: {exc}".lower()
    return "database is locked" in text or "database is busy" in text or "sqlite_busy" in text


def _lost_insert_race(exc: BaseException) -> bool:
    """Another process inserted the same row between MLflow's check and its insert.

    MLflow links a run to a dataset by looking the (experiment, name, digest) row up and
    inserting it when absent; two runs of one sweep logging the same fold at once can both
    find it absent, and the second insert breaks the unique constraint (SQLite's "UNIQUE
    constraint failed", PostgreSQL's "duplicate key value"). Retried, the row is found.
    """
    text = str(exc).lower()
    return "unique constraint failed" in text or "duplicate key value" in text


def retrying(
    fn: Callable[..., T],
    *args: Any,
    attempts: int = 12,
    transient: Callable[[BaseException], bool] = _transient,
    **kwargs: Any,
) -> T:
    """Call ``fn``, retrying SQLite lock contention with jittered exponential back-off (~1 min).

    SQLite lets one writer in at a time; with many sweep workers a write can find the file
    locked beyond SQLite's own busy timeout. Retrying is safe: MLflow writes are idempotent
    per call (a failed call wrote nothing). ``transient`` says which errors are retried.
    """
    delay = 0.05
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if attempt == attempts - 1 or not transient(exc):
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 8.0)
    raise AssertionError("unreachable")


# Tags that let any later job tell a live run from one whose process died (kill -9, OOM, node
# failure): the process that owns it, and a heartbeat it refreshes while it works.
HOST_TAG = "mesobench.host"
PID_TAG = "mesobench.pid"
PID_START_TAG = "mesobench.pid_start"
HEARTBEAT_TAG = "mesobench.heartbeat"


def _owner_tags() -> dict[str, str]:
    proc = psutil.Process()
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(proc.pid),
        PID_START_TAG: f"{proc.create_time():.3f}",
        HEARTBEAT_TAG: f"{time.time():.3f}",
    }


def presumed_dead(tags: Mapping[str, str], stale_after_s: float, now: float | None = None) -> str:
    """Why a RUNNING run's owner is presumed dead ("" if it may be alive).

    On the owner's own host the answer is exact: its process (pid and start time) is gone.
    Elsewhere, the heartbeat is older than ``stale_after_s``.
    """
    now = time.time() if now is None else now
    if tags.get(HOST_TAG) == socket.gethostname() and PID_TAG in tags:
        try:
            proc = psutil.Process(int(tags[PID_TAG]))
            same = abs(proc.create_time() - float(tags.get(PID_START_TAG, 0))) < 1e-2
        except (psutil.Error, ValueError):
            same = False
        if not same:
            return f"its process {tags[PID_TAG]} on {tags[HOST_TAG]} no longer exists"
        return ""
    beat = float(tags.get(HEARTBEAT_TAG, 0) or 0)
    if now - beat > stale_after_s:
        return f"no heartbeat for {now - beat:.0f}s (> {stale_after_s:.0f}s)"
    return ""


@dataclass
class Claim:
    run_id: str | None  # None: do not run (see reason)
    reason: str = ""
    finished_run_id: str | None = None  # skipped because this run already FINISHED


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
"""MLflow 3's experiment kind: with it the UI opens an experiment on its runs table instead of
the GenAI overview (traces, evaluations) that an experiment without a kind lands on."""


def _experiment_id(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The experiment's id, creating it (as a model-training experiment) if needed.

    With a tracking server there is no shared file lock, so two workers of a sweep can both
    see no experiment and both try to create it: the loser reads the winner's experiment. An
    experiment made before the kind existed gets it here, on its next run; a kind someone set
    by hand is kept.
    """
    exp = retrying(client.get_experiment_by_name, name)
    if exp is None:
        try:
            return retrying(
                client.create_experiment,
                name,
                artifact_location=artifact_location,
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )
        except MlflowException as exc:
            exp = retrying(client.get_experiment_by_name, name)
            if exp is None:
                raise
            log.debug("experiment %r was created concurrently (%s)", name, exc.error_code)
    if EXPERIMENT_KIND_TAG not in exp.tags:
        retrying(client.set_experiment_tag, exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


def client_for(uri: str) -> MlflowClient:
    """An ``MlflowClient`` of ``uri`` with the tracking server's credentials in place
    (:mod:`mesobench.store.credentials`): the one way mesobench reaches a store."""
    credentials.refuse_secret_in_uri(uri)
    credentials.load()
    return MlflowClient(tracking_uri=uri)


class Tracker:
    """A connection to one MLflow experiment; every write retries SQLite contention."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        artifact_location: str | None = None,
        *,
        sqlite_wal: bool = True,
    ):
        self.uri = uri
        db = sqlite_path(uri)
        self._lock = FileLock(str(db) + ".lock", timeout=300) if db is not None else None
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        # Creating the SQLite schema and the experiment must not race between sweep workers.
        with self._lock or nullcontext():
            if db is not None and not db.exists():
                _create_sqlite_store(db)
            self.client = client_for(uri)
            try:
                self.experiment_id = _experiment_id(self.client, experiment, artifact_location)
            except MlflowException as exc:
                credentials.explain_refusal(uri, exc)
                raise
            if db is not None and sqlite_wal:
                _enable_wal(db)

    @classmethod
    def from_config(cls, tracking: Mapping[str, Any]) -> Tracker:
        """The tracker of a ``tracking`` config section (``conf/tracking/*.yaml``)."""
        return cls(
            tracking["uri"],
            tracking["experiment"],
            tracking.get("artifact_location"),
            sqlite_wal=bool(tracking.get("sqlite_wal", True)),
        )

    def exclusive(self) -> Any:
        """A context in which no other process writes check-and-create steps (SQLite: the store's
        file lock; a tracking server has none, so callers settle races afterwards)."""
        return self._lock or nullcontext()

    # -- lookup --------------------------------------------------------------------------------
    def runs_with_key(self, key: str, statuses: tuple[str, ...] = ("FINISHED", "RUNNING")):
        """Runs of this run key with one of ``statuses`` (MLflow cannot filter status lists)."""
        runs = retrying(
            self.client.search_runs,
            [self.experiment_id],
            filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}'",
            max_results=1000,
        )
        return [r for r in runs if r.info.status in statuses]

    def find_finished(self, key: str) -> str | None:
        """The id of a FINISHED run with this run key, if any."""
        runs = self.runs_with_key(key, ("FINISHED",))
        return runs[0].info.run_id if runs else None

    # -- claiming a run key --------------------------------------------------------------------
    def claim(
        self,
        key: str,
        run_name: str,
        tags: Mapping[str, Any],
        *,
        force: bool = False,
        stale_after_s: float = 600.0,
    ) -> Claim:
        """Start a RUNNING run for ``key`` unless it is done or in progress elsewhere.

        A FINISHED run means skip (unless ``force``); a RUNNING run whose owner is alive means
        another worker is on it; a RUNNING run whose owner is presumed dead is closed as FAILED
        (with the reason) and the key is run again. With SQLite, check-and-create happens under
        a file lock; with a tracking server (no shared lock) the race is settled afterwards: of
        two live claims, the earlier run wins and the later one is deleted.
        """
        with self._lock or nullcontext():
            for run in self.runs_with_key(key):
                if run.info.status == "FINISHED" and not force:
                    return Claim(
                        None, f"already FINISHED as run {run.info.run_id}", run.info.run_id
                    )
                if run.info.status != "RUNNING":
                    continue
                why = presumed_dead(run.data.tags, stale_after_s)
                if not why:
                    return Claim(None, f"in progress as run {run.info.run_id}")
                self.set_tags(
                    run.info.run_id,
                    {"error": f"abandoned: {why}; presumed dead and rerun", "error_type": "Stale"},
                )
                self.end(run.info.run_id, "FAILED")
                log.warning("run %s was left RUNNING (%s): marked FAILED", run.info.run_id, why)
            run = retrying(
                self.client.create_run,
                self.experiment_id,
                run_name=run_name,
                tags={**{k: str(v) for k, v in tags.items()}, RUN_KEY_TAG: key, **_owner_tags()},
            )
            mine = run.info
        if self._lock is None:  # no shared lock: settle a concurrent claim deterministically
            rivals = [
                r.info
                for r in self.runs_with_key(key, ("RUNNING",))
                if r.info.run_id != mine.run_id and not presumed_dead(r.data.tags, stale_after_s)
            ]
            if any((r.start_time, r.run_id) < (mine.start_time, mine.run_id) for r in rivals):
                retrying(self.client.delete_run, mine.run_id)
                return Claim(None, "claimed concurrently by an earlier run")
        return Claim(mine.run_id)

    def join_suite(self, run_id: str, suite: str) -> None:
        """Add ``suite`` to the run's :data:`SUITES_TAG`: a FINISHED run that another experiment
        reuses (same run key) then counts in that experiment's report too."""
        if not suite:
            return
        tags = retrying(self.client.get_run, run_id).data.tags
        members = suites_of(tags)
        if suite not in members:
            self.set_tags(run_id, {SUITES_TAG: suites_value([*members, suite])})

    @contextmanager
    def heartbeat(self, run_id: str, every_s: float = 30.0) -> Iterator[None]:
        """Refresh the run's heartbeat tag every ``every_s`` seconds while the block runs."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every_s):
                with suppress(Exception):  # a missed beat must never break the run
                    self.set_tags(run_id, {HEARTBEAT_TAG: f"{time.time():.3f}"})

        thread = threading.Thread(target=beat, daemon=True, name="mesobench-heartbeat")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    # -- writing -------------------------------------------------------------------------------
    @contextmanager
    def system_metrics(self, run_id: str, interval_s: float) -> Iterator[None]:
        """MLflow's system metrics (``system/*``: CPU, memory, disk, network, GPU), sampled every
        ``interval_s`` seconds and logged to the run while the block runs."""
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(
            run_id, sampling_interval=interval_s, samples_before_logging=1, tracking_uri=self.uri
        )
        monitor.start()
        try:
            yield
        finally:
            monitor.finish()

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [
            Param(key[:250], "None" if value is None else str(value)[:MAX_PARAM_VALUE])
            for key, value in params.items()
        ]
        for i in range(0, len(items), PARAM_BATCH):
            retrying(self.client.log_batch, run_id, params=items[i : i + PARAM_BATCH])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        items = [
            Metric(key, float(value), now, step)
            for key, value in metrics.items()
            if value is not None
        ]
        for i in range(0, len(items), METRIC_BATCH):
            retrying(self.client.log_batch, run_id, metrics=items[i : i + METRIC_BATCH])

    def log_series(
        self, run_id: str, series: Mapping[str, Sequence[float]], first_step: int = 0
    ) -> None:
        """Log each ``name → values`` series as one step metric (``values[k]`` at step
        ``first_step + k``), batched: a 500-epoch curve costs one call, not 500."""
        now = int(time.time() * 1000)
        items = [
            Metric(name, float(value), now, first_step + k)
            for name, values in series.items()
            for k, value in enumerate(values)
            if value is not None
        ]
        for i in range(0, len(items), METRIC_BATCH):
            retrying(self.client.log_batch, run_id, metrics=items[i : i + METRIC_BATCH])

    def log_inputs(self, run_id: str, datasets: Sequence[Any]) -> None:
        """Log :class:`mesobench.store.inputs.LoggedDataset` values as the run's dataset inputs."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        from mesobench.store.inputs import CONTEXT_TAG

        inputs = [
            DatasetInput(
                Dataset(d.name, d.digest, d.source_type, d.source, d.schema, d.profile),
                tags=[InputTag(CONTEXT_TAG, d.context)],
            )
            for d in datasets
        ]
        if inputs:
            retrying(
                self.client.log_inputs,
                run_id,
                datasets=inputs,
                transient=lambda e: _transient(e) or _lost_insert_race(e),
            )

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        retrying(self.client.log_batch, run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        retrying(self.client.log_text, run_id, text, artifact_file)

    def log_dict(self, run_id: str, obj: Any, artifact_file: str) -> None:
        retrying(self.client.log_dict, run_id, obj, artifact_file)

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None:
        """Log raw bytes as the artifact ``artifact_file`` (e.g. ``model/weights.pt``)."""
        path = Path(artifact_file)
        with tempfile.TemporaryDirectory(prefix="mesobench-artifact-") as tmp:
            local = Path(tmp) / path.name
            local.write_bytes(data)
            artifact_path = None if str(path.parent) == "." else path.parent.as_posix()
            retrying(self.client.log_artifact, run_id, str(local), artifact_path)

    def end(self, run_id: str, status: str) -> None:
        retrying(self.client.set_terminated, run_id, status=status)


def _create_sqlite_store(db: Path) -> None:
    """Create MLflow's schema in a scratch file, then move it into place atomically.

    MLflow builds a new SQLite store through a series of migrations; a process killed among them
    leaves a store that no later process can open. Building it aside and renaming it means the
    store at ``db`` is either absent or complete.
    """
    scratch = db.with_name(f".{db.name}.init-{os.getpid()}")
    scratch.unlink(missing_ok=True)
    MlflowClient(tracking_uri=f"sqlite:///{scratch}").search_experiments(max_results=1)
    _dispose_engines(scratch)
    os.replace(scratch, db)


def _dispose_engines(db: Path) -> None:
    """Close MLflow's cached connections to ``db`` (it keeps one engine per store URI)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    for uri, engine in list(getattr(SqlAlchemyStore, "_engine_map", {}).items()):
        if str(db) in uri:
            engine.dispose()


def _enable_wal(db: Path) -> None:
    """Write-ahead logging: readers (the UI, the aggregator) never block the sweep's writers.

    A persistent property of the database file, set once; harmless if already set. Not for
    network file systems (use a tracking server there, see README).
    """
    import sqlite3

    with closing(sqlite3.connect(db, timeout=60)) as con:
        if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            con.execute("PRAGMA journal_mode=WAL")
