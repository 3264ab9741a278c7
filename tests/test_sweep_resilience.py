"""Sweeps that survive: wall-clock limits, process-per-run launchers, kill -9 and resume."""

from __future__ import annotations

import time

import pytest
from mlflow.tracking import MlflowClient

from conftest import load_script, runner


def _runs(store):
    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name("mesobench")
    return client.search_runs([exp.experiment_id]) if exp else []


def test_a_run_over_its_time_limit_is_stopped_and_recorded_failed(tmp_path, store):
    start = time.perf_counter()
    proc = runner(
        "model=debug_slow",
        "model.params.seconds=120",
        "task=synthetic/c1",
        "guards.time_limit_s=3",
        store=store,
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.perf_counter() - start < 90
    (run,) = _runs(store)
    assert run.info.status == "FAILED"
    assert run.data.tags["error_type"] == "TimeLimitExceeded"
    assert "3s" in run.data.tags["error"]


def test_the_submitit_local_launcher_runs_each_job_in_its_own_process(tmp_path, store):
    proc = runner(
        "model=logreg",
        "task=synthetic/c1",
        "fold=0,1",
        "hydra/launcher=local",
        store=store,
        tmp_path=tmp_path,
        multirun=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = _runs(store)
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
    assert len({r.data.tags["mesobench.pid"] for r in runs}) == 2


@pytest.mark.slow
def test_a_sweep_killed_midway_resumes_to_exactly_one_finished_run_each(tmp_path):
    stress = load_script("stress_sweep")
    argv = ["--runs", "20", "--workers", "4", "--kill", "--kill-after", "4", "--seed", "0"]
    assert stress.main([*argv, "--dir", str(tmp_path)]) == 0
    from mesobench.integrity import audit

    result = audit(f"sqlite:///{tmp_path / 'mlflow.db'}", sweep_id="stress")
    assert (result.finished, result.failed, result.duplicated, result.running) == (20, 0, 0, 0)
