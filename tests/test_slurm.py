"""SLURM for real: a one-node cluster (scripts/slurm_cluster.py), sweeps into the tracking server.

A sweep with ``hydra/launcher=slurm`` runs as an array; one task is cancelled (``scancel``) while
its run is in progress, and rerunning the same command completes the sweep with every
configuration FINISHED once. A request larger than the node is refused before submission.
Skips, saying why, where SLURM or PostgreSQL cannot start (packages missing, not root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import load_script, run_cli
from mesobench.runner import slurm
from mesobench.store.integrity import audit

# One xdist worker takes this module's tests: they share a module-scoped fixture, built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]

RUNS = 3  # debug_slow on three folds
SECONDS = 10  # each run's fit: long enough to cancel a task while its run is in progress


@pytest.fixture(scope="module")
def cluster():
    """A one-node SLURM cluster, its SLURM_CONF exported for the sweeps this module starts."""
    script = load_script("slurm_cluster")
    root = Path(tempfile.mkdtemp(prefix="mesobench-slurm-"))  # munged: a path all can traverse
    try:
        started = script.start(root)
    except script.ClusterError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"no SLURM cluster here: {exc}")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SLURM_CONF", str(started.conf))
        yield started
    started.stop()
    shutil.rmtree(root, ignore_errors=True)


def _queue(*args: str) -> list[str]:
    out = subprocess.run(
        ["squeue", "--noheader", *args], capture_output=True, text=True, check=True
    ).stdout
    return out.split()


def _sweep_command(server, tmp_path: Path) -> tuple[str, ...]:
    return (
        "-m",
        "model=debug_slow",
        f"model.params.seconds={SECONDS}",
        "task=synthetic/c1",
        f"fold=range(0,{RUNS})",
        "hydra/launcher=slurm",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        "tracking=server",
        f"tracking.uri={server.uri}",
        "sweep_id=slurm",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )


def _cancel_a_task_whose_run_is_in_progress(server, sweep: subprocess.Popen) -> str:
    """``scancel`` one RUNNING array task once every running task has claimed its run."""
    client = MlflowClient(tracking_uri=server.uri)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and sweep.poll() is None:
        tasks = _queue("--states=RUNNING", "--format=%i")
        exp = client.get_experiment_by_name("mesobench")
        claimed = (
            client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'") if exp else []
        )
        in_progress = [r for r in claimed if r.data.tags.get("model") == "debug_slow"]
        if tasks and len(in_progress) >= len(tasks):
            subprocess.run(["scancel", tasks[0]], check=True)
            return tasks[0]
        time.sleep(0.3)
    pytest.fail(f"no task was running its run within 90s; sweep exit code {sweep.poll()}")


def _wait_for_an_empty_queue(timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while _queue("--format=%i"):
        if time.monotonic() > deadline:
            pytest.fail(f"jobs still queued after {timeout_s:.0f}s: {_queue('--format=%i|%T')}")
        time.sleep(0.5)


def _diagnosis(cluster, returncode: int, output: str) -> str:
    """What a failed assertion on a sweep shows: how it ended, its output, the daemons' logs."""
    how = f"killed by signal {-returncode}" if returncode < 0 else f"exit code {returncode}"
    logs = "\n".join(
        f"--- {path.name}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:])
        for path in sorted((cluster.layout.root / "log").glob("*.log"))
    )
    return f"sweep {how}; its output:\n{output[-3000:]}\n{logs}"


def test_the_cluster_reports_this_node_to_the_preflight(cluster):
    (partition,) = slurm.read_partitions().values()
    assert (partition.name, partition.default) == (cluster.partition, True)
    (node,) = partition.nodes
    assert (node.name, node.cpus, node.memory_mb) == (cluster.node, cluster.cpus, cluster.memory_mb)


def test_a_cancelled_array_task_is_redone_by_rerunning_the_sweep(cluster, server, tmp_path):
    command = _sweep_command(server, tmp_path)
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        first = subprocess.Popen(
            [sys.executable, "-m", "mesobench.run", *command],
            cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    cancelled = _cancel_a_task_whose_run_is_in_progress(server, first)
    first.wait(timeout=180)
    out_first = log.read_text()
    # submitit sees the task CANCELLED (through squeue: this cluster keeps no accounting) and
    # the launcher stops with its error; the other tasks run to their end
    why = _diagnosis(cluster, first.returncode, out_first)
    assert first.returncode > 0, why
    assert f"Job {cancelled}" in out_first and "CANCELLED" in out_first, why
    _wait_for_an_empty_queue()
    mid = audit(server.uri, sweep_id="slurm")
    # the cancelled task was killed (SIGTERM, then SIGKILL after KillWait): its run is left RUNNING
    assert (mid.finished, mid.running) == (RUNS - 1, 1), mid.line(RUNS)

    again = run_cli("mesobench.run", *command, tmp_path=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    result = audit(server.uri, sweep_id="slurm")
    print(result.line(RUNS))
    assert (result.keys, result.finished, result.failed, result.duplicated) == (RUNS, RUNS, 0, 0)
    assert (result.abandoned, result.running) == (1, 0)  # closed as abandoned, then redone
    # no sacct noise: with accounting off, states come from squeue
    for output in (out_first, again.stdout + again.stderr):
        assert "Bypassing sacct error" not in output
        assert "Slurm accounting storage is disabled" not in output
    assert "job states are read from squeue" in again.stdout + again.stderr


def test_a_request_larger_than_the_node_is_refused_before_submission(cluster, store, tmp_path):
    cpus, memory_gb = cluster.cpus + 1, cluster.memory_mb // 1024 + 1
    known = set(_queue("--states=all", "--format=%i"))
    refused = run_cli(
        "mesobench.run",
        "-m",
        "model=logreg",
        "task=synthetic/c1",
        "fold=0,1",
        "hydra/launcher=slurm",
        f"hydra.launcher.cpus_per_task={cpus}",
        f"hydra.launcher.mem_gb={memory_gb}",
        f"tracking.uri={store}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        tmp_path=tmp_path,
    )
    print(refused.stderr)
    assert refused.returncode == 2
    message = refused.stderr
    assert f"cpus_per_task={cpus} requested, its largest node has {cluster.cpus}" in message
    assert f"mem_gb={memory_gb} = {memory_gb * 1024} MB requested" in message
    assert f"its largest node has {cluster.memory_mb} MB ({cluster.node})" in message
    assert "Traceback" not in message
    assert set(_queue("--states=all", "--format=%i")) <= known  # nothing submitted
    assert not (tmp_path / "sweep").exists()  # nothing made: no sweep directory, no store
    assert not Path(store.removeprefix("sqlite:///")).exists()


def test_a_daemon_is_judged_exited_only_once_its_pid_file_names_a_gone_process(tmp_path):
    """slurmd forks before it writes its pid file, later on a busy machine: a missing or empty
    pid file means still starting (judged exited, a healthy start was skipped and its daemons
    left running)."""
    script = load_script("slurm_cluster")
    layout = script.Layout(tmp_path)
    layout.run.mkdir()
    assert not script._exited(layout, "slurmd")  # no pid file yet
    layout.pid_file("slurmd").write_text("")
    assert not script._exited(layout, "slurmd")  # created, not yet written
    layout.pid_file("slurmd").write_text(f"{os.getpid()}\n")
    assert not script._exited(layout, "slurmd")  # a live process
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    layout.pid_file("slurmd").write_text(f"{gone.pid}\n")
    assert script._exited(layout, "slurmd")
