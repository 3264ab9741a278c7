"""Sweeps that survive: wall-clock limits, process-per-run launchers, kill -9 and resume."""

from __future__ import annotations

import time

import pytest

from conftest import composed, load_script, runs_after


def test_a_run_over_its_time_limit_is_stopped_and_recorded_failed(tmp_path, store):
    start = time.perf_counter()
    slow = ("model=debug_slow", "model.params.seconds=120")
    (run,) = runs_after(
        *slow, "task=synthetic/c1", "guards.time_limit_s=3", store=store, tmp_path=tmp_path
    )
    assert time.perf_counter() - start < 90
    assert run.info.status == "FAILED"
    assert run.data.tags["error_type"] == "TimeLimitExceeded"
    assert "3s" in run.data.tags["error"]


def test_a_run_whose_outcome_the_store_refuses_ends_failed_not_running(
    tmp_path, store, monkeypatch
):
    """Logging the outcome can fail after the fit (a store error): the run must end FAILED with
    the reason, and the job return, not leave the run RUNNING and raise into the sweep."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from mesobench.runner.execute import execute
    from mesobench.store.tracking import Tracker

    def refuse(self, run_id, datasets):
        raise MlflowException("the store refused the dataset inputs")

    monkeypatch.setattr(Tracker, "log_inputs", refuse)
    overrides = ["model=logreg", "task=synthetic/c1", "fidelity.enabled=false", "threads=1"]
    overrides += [f"tracking.uri={store}", f"tracking.artifact_location={tmp_path / 'a'}"]
    result = execute(composed(*overrides))
    assert result["status"] == "FAILED" and "refused the dataset inputs" in result["error"]
    run = MlflowClient(tracking_uri=store).get_run(result["run_id"])
    assert run.info.status == "FAILED"
    assert "refused the dataset inputs" in run.data.tags["error"]


def test_time_limits_work_inside_joblib_workers(tmp_path, store):
    # a loky worker's default start method is "loky", which a spawned child could not set up:
    # every time-limited run of a joblib sweep died at start
    sweep = ("model=logreg", "task=synthetic/c1", "fold=0,1", "guards.time_limit_s=120")
    joblib = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    runs = runs_after(*sweep, *joblib, store=store, tmp_path=tmp_path, multirun=True)
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]


def test_the_submitit_local_launcher_runs_each_job_in_its_own_process(tmp_path, store):
    sweep = ("model=logreg", "task=synthetic/c1", "fold=0,1")
    runs = runs_after(*sweep, "hydra/launcher=local", store=store, tmp_path=tmp_path, multirun=True)
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
    assert len({r.data.tags["mesobench.pid"] for r in runs}) == 2


@pytest.mark.slow
def test_a_sweep_killed_midway_resumes_to_exactly_one_finished_run_each(tmp_path):
    stress = load_script("stress_sweep")
    argv = ["--runs", "20", "--workers", "4", "--kill", "--kill-after", "4", "--seed", "0"]
    assert stress.main([*argv, "--dir", str(tmp_path)]) == 0
    from mesobench.store.integrity import audit

    result = audit(f"sqlite:///{tmp_path / 'mlflow.db'}", sweep_id="stress")
    assert (result.finished, result.failed, result.duplicated, result.running) == (20, 0, 0, 0)
