"""Many machines, one store: a real PostgreSQL + MLflow server on loopback, and a sweep into it."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from conftest import run_cli, stored_runs

# One xdist worker takes this module's tests: they share a module-scoped fixture, built once.
pytestmark = pytest.mark.xdist_group("tracking_server")


def _sweep(server, tmp_path):
    return run_cli(
        "mesobench.run",
        "-m",
        "model=logreg,debug_fail",
        "task=synthetic/c1",
        "fold=0,1",
        "tracking=server",
        f"tracking.uri={server.uri}",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        tmp_path=tmp_path,
    )


@pytest.mark.slow
def test_a_sweep_through_the_tracking_server_lands_and_resumes(server, tmp_path):
    first = _sweep(server, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    client = MlflowClient(tracking_uri=server.uri)
    runs = stored_runs(server.uri)
    status = sorted((r.data.tags["model"], r.info.status) for r in runs)
    assert status == [("debug_fail", "FAILED")] * 2 + [("logreg", "FINISHED")] * 2
    (parent,) = [
        r for r in stored_runs(server.uri, parents=True) if "mesobench.sweep_parent" in r.data.tags
    ]
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    # artifacts travel through the server
    logreg = next(r for r in runs if r.data.tags["model"] == "logreg")
    names = {a.path for a in client.list_artifacts(logreg.info.run_id)}
    assert "config.yaml" in names

    again = _sweep(server, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    finished = [r for r in stored_runs(server.uri) if r.info.status == "FINISHED"]
    assert len(finished) == 2  # skipped, not duplicated
    assert "2 skipped" in again.stdout + again.stderr
