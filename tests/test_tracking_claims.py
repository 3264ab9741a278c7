"""The claim protocol: each configuration runs once, dead owners are detected, nothing doubles."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from mesobench.store import tracking
from mesobench.store.tracking import Tracker, presumed_dead


def _tracker(store):
    return Tracker(store, "mesobench")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_fresh_key_is_claimed_once_then_skipped_while_running(store):
    t = _tracker(store)
    first = t.claim("k", "run", {"model": "m"})
    assert first.run_id is not None
    second = t.claim("k", "run", {"model": "m"})
    assert second.run_id is None and "in progress" in second.reason


def test_a_finished_key_is_skipped_unless_forced(store):
    t = _tracker(store)
    run_id = t.claim("k", "run", {}).run_id
    t.end(run_id, "FINISHED")
    assert "FINISHED" in t.claim("k", "run", {}).reason
    assert t.claim("k", "run", {}, force=True).run_id not in (None, run_id)


def test_a_run_left_running_by_a_dead_process_is_closed_and_redone(store):
    t = _tracker(store)
    orphan = t.claim("k", "run", {}).run_id
    t.set_tags(orphan, {tracking.PID_TAG: _dead_pid()})  # its owner died (kill -9)
    again = t.claim("k", "run", {})
    assert again.run_id not in (None, orphan)
    old = t.client.get_run(orphan)
    assert old.info.status == "FAILED"
    assert old.data.tags["error_type"] == "Stale"
    assert "no longer exists" in old.data.tags["error"]


def test_owners_on_other_hosts_are_judged_by_their_heartbeat():
    now = time.time()
    alive = {tracking.HOST_TAG: "elsewhere", tracking.HEARTBEAT_TAG: str(now - 5)}
    silent = {tracking.HOST_TAG: "elsewhere", tracking.HEARTBEAT_TAG: str(now - 3600)}
    assert presumed_dead(alive, stale_after_s=600, now=now) == ""
    assert "no heartbeat" in presumed_dead(silent, stale_after_s=600, now=now)


def test_an_owner_on_this_host_that_is_alive_is_not_presumed_dead():
    import psutil

    me = psutil.Process()
    tags = {
        tracking.HOST_TAG: socket.gethostname(),
        tracking.PID_TAG: str(me.pid),
        tracking.PID_START_TAG: f"{me.create_time():.3f}",
        tracking.HEARTBEAT_TAG: "0",  # even an old heartbeat: the process is there
    }
    assert presumed_dead(tags, stale_after_s=1) == ""


def test_the_heartbeat_refreshes_while_the_block_runs(store):
    t = _tracker(store)
    run_id = t.claim("k", "run", {}).run_id
    before = float(t.client.get_run(run_id).data.tags[tracking.HEARTBEAT_TAG])
    with t.heartbeat(run_id, every_s=0.2):
        time.sleep(1.0)
    after = float(t.client.get_run(run_id).data.tags[tracking.HEARTBEAT_TAG])
    assert after > before


def test_lock_contention_is_retried_other_errors_are_not():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "ok"

    assert tracking.retrying(flaky) == "ok" and len(calls) == 3

    def broken():
        raise ValueError("bad input")

    try:
        tracking.retrying(broken)
    except ValueError:
        pass
    else:
        raise AssertionError("a non-transient error must propagate at once")


def test_a_dataset_insert_lost_to_a_concurrent_run_is_retried(store):
    """Two runs of a sweep logging the same fold at once: MLflow looks the dataset up, finds it
    absent in both, and the second insert breaks the unique constraint. Retried, it is found."""
    from mlflow.exceptions import MlflowException

    from mesobench.store.inputs import LoggedDataset

    tracker = Tracker(store, "mesobench")
    run_id = tracker.claim("k-inputs", "r", {}).run_id
    dataset = LoggedDataset(
        "synthetic/c1/fold0/train", "46738090", "code", "{}", "{}", "{}", "train"
    )
    real, calls = tracker.client.log_inputs, []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the message MLflow's SQLite store raises (PostgreSQL: duplicate key)
            raise MlflowException(
                "(sqlite3.IntegrityError) UNIQUE constraint failed: "
                "datasets.experiment_id, datasets.name, datasets.digest"
            )
        return real(*args, **kwargs)

    tracker.client.log_inputs = racing
    tracker.log_inputs(run_id, [dataset])
    assert len(calls) == 2
    (logged,) = tracker.client.get_run(run_id).inputs.dataset_inputs
    assert logged.dataset.name == "synthetic/c1/fold0/train"

    def refused(*args, **kwargs):
        calls.append(1)
        raise MlflowException("RESOURCE_DOES_NOT_EXIST: run not found")

    tracker.client.log_inputs = refused
    with pytest.raises(MlflowException, match="not found"):
        tracker.log_inputs(run_id, [dataset])
    assert len(calls) == 3  # any other refusal is not retried


def test_a_new_sqlite_store_is_complete_or_absent(tmp_path):
    db = tmp_path / "deep" / "m.db"
    Tracker(f"sqlite:///{db}", "mesobench")
    assert db.exists()
    assert not list(db.parent.glob(".m.db.init-*"))  # the scratch copy was moved into place


def test_an_experiment_created_concurrently_by_another_worker_is_reused():
    """Server mode has no file lock: losing the creation race must read the winner's id."""
    from types import SimpleNamespace

    from mlflow.exceptions import MlflowException

    from mesobench.store.tracking import _experiment_id

    class RacingClient:
        def __init__(self):
            self.lookups = 0

        def get_experiment_by_name(self, name):
            self.lookups += 1
            winner = SimpleNamespace(experiment_id="7", tags={"mlflow.experimentKind": "x"})
            return None if self.lookups == 1 else winner

        def create_experiment(self, name, artifact_location=None, tags=None):
            raise MlflowException(f"Experiment '{name}' already exists.")

    assert _experiment_id(RacingClient(), "mesobench", None) == "7"
