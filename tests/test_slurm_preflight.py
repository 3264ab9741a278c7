"""The SLURM preflight without a cluster: sinfo and squeue output fed in, the callback's choices.

The one-node lines are what tests/test_slurm.py's cluster prints (Debian's SLURM 22.05); the
larger cluster is written in the same formats (:data:`mesobench.runner.slurm.SINFO`, squeue ``%i|%T|%N``).
"""

from __future__ import annotations

import stat

import pytest
from submitit.slurm import slurm as submitit_slurm

from conftest import composed
from mesobench.config.paths import register_resolvers
from mesobench.runner import slurm, slurm_states
from mesobench.runner.slurm import Request, SlurmRequestError, check, parse_sinfo

register_resolvers()

ONE_NODE = "mesobench*|vm|2|24105|(null)|infinite\n"
CLUSTER = """\
cpu*|c01|64|257000|(null)|2-00:00:00
cpu*|c02|64|257000|(null)|2-00:00:00
gpu|g01|32|128000|gpu:a100:4(S:0-1)|1-00:00:00
gpu|g02|64|512000|gpu:v100:1|1-00:00:00
debug|c01|64|257000|(null)|30:00
"""


def _request(**launcher):
    return Request.from_launcher({"timeout_min": 120, **launcher})


def _refusal(request, text=ONE_NODE) -> str:
    with pytest.raises(SlurmRequestError) as info:
        check(request, parse_sinfo(text))
    return str(info.value)


def test_sinfo_lines_become_partitions_with_their_nodes_and_limits():
    parts = parse_sinfo(CLUSTER)
    assert list(parts) == ["cpu", "gpu", "debug"]
    assert parts["cpu"].default and not parts["gpu"].default
    assert parts["cpu"].time_limit_min == 2 * 24 * 60
    assert parts["debug"].time_limit_min == 30
    assert [(n.name, n.cpus, n.memory_mb, n.gpus) for n in parts["gpu"].nodes] == [
        ("g01", 32, 128000, 4),
        ("g02", 64, 512000, 1),
    ]
    (node,) = parse_sinfo(ONE_NODE)["mesobench"].nodes
    assert (node.cpus, node.memory_mb, node.gpus) == (2, 24105, 0)
    assert parse_sinfo(ONE_NODE)["mesobench"].time_limit_min is None


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("infinite", None),
        ("UNLIMITED", None),
        ("45", 45),
        ("30:00", 30),
        ("2:00:00", 120),
        ("1-00:00:00", 1440),
        ("1-12", 2160),
        ("1-00:30", 1470),
    ],
)
def test_slurm_durations_read_in_minutes(text, minutes):
    assert slurm.parse_duration_min(text) == minutes


def test_gpus_are_counted_in_gres_strings():
    assert slurm.gpu_count("(null)") == 0
    assert slurm.gpu_count("gpu:2") == 2
    assert slurm.gpu_count("gpu:a100:4(S:0-1)") == 4
    assert slurm.gpu_count("gpu:a100:2,gpu:v100:1,shard:8") == 3


def test_a_request_that_fits_the_default_partition_passes():
    check(_request(cpus_per_task=1, mem_gb=1), parse_sinfo(ONE_NODE))
    check(_request(cpus_per_task=64, mem_gb=200), parse_sinfo(CLUSTER))


def test_the_reported_case_is_refused_with_the_numbers():
    """The user report: the slurm launcher's defaults (4 CPUs, 16 GB) on a 2-CPU node."""
    message = _refusal(_request(cpus_per_task=4, mem_gb=16))
    assert "partition 'mesobench'" in message.lower()
    assert "cpus_per_task=4 requested, its largest node has 2 (vm)" in message
    assert "mem_gb" not in message  # 16 GB fits the node's 24105 MB
    assert "hydra.launcher.cpus_per_task=2" in message
    assert "PENDING" in message and "Nothing was submitted" in message


def test_memory_gpus_and_time_beyond_the_partition_are_each_named():
    message = _refusal(_request(cpus_per_task=1, mem_gb=64, gpus_per_node=1, timeout_min=9999))
    assert "mem_gb=64 = 65536 MB requested, its largest node has 24105 MB" in message
    assert "GPUs: 1 requested per node, its largest node has 0" in message
    assert "hydra.launcher.mem_gb=23" in message
    assert "CPUs:" not in message
    message = _refusal(_request(partition="debug", timeout_min=60), CLUSTER)
    assert "timeout_min=60 requested, its time limit is 30 min" in message
    assert "hydra.launcher.timeout_min=30" in message


def test_memory_per_cpu_and_tasks_per_node_multiply():
    message = _refusal(_request(cpus_per_task=1, tasks_per_node=3, mem_per_cpu="10G"))
    assert "cpus_per_task=1 × tasks_per_node=3 = 3 requested" in message
    assert "mem_per_cpu=10G × 3 CPUs = 30720 MB requested" in message


def test_gpus_come_from_gpus_per_task_or_gres():
    check(_request(partition="gpu", gpus_per_task=4), parse_sinfo(CLUSTER))
    message = _refusal(_request(partition="gpu", gres="gpu:a100:8"), CLUSTER)
    assert "GPUs: 8 requested per node, its largest node has 4 (g01)" in message


def test_every_number_fitting_some_node_is_not_enough():
    """48 CPUs fit g02 and 2 GPUs fit g01, but no node has both."""
    message = _refusal(_request(partition="gpu", cpus_per_task=48, gpus_per_node=2), CLUSTER)
    assert "no single node has 48 CPUs, 0 MB memory and 2 GPUs at once" in message
    check(
        _request(partition="gpu", cpus_per_task=20, gpus_per_node=1, nodes=2), parse_sinfo(CLUSTER)
    )
    message = _refusal(
        _request(partition="gpu", cpus_per_task=20, gpus_per_node=2, nodes=2), CLUSTER
    )
    assert "nodes: 2 requested, only 1 of its nodes fit a task" in message


def test_several_partitions_pass_when_any_can_run_the_job():
    check(_request(partition="debug,cpu", timeout_min=120), parse_sinfo(CLUSTER))
    message = _refusal(_request(partition="debug,gpu", cpus_per_task=80, timeout_min=60), CLUSTER)
    assert "Partition 'debug' can never" in message and "Partition 'gpu' can never" in message
    assert "timeout_min=60 requested, its time limit is 30 min" in message


def test_an_unknown_partition_lists_the_partitions():
    message = _refusal(_request(partition="gpu"))
    assert "SLURM has no partition 'gpu'" in message
    assert "Partitions here: mesobench (default)" in message


def test_no_partition_and_no_default_is_refused():
    text = CLUSTER.replace("cpu*", "cpu")
    assert "no default partition" in _refusal(_request(), text)


def test_a_bad_memory_size_says_what_it_expected():
    with pytest.raises(slurm.ConfigError, match="4 gigs"):
        _request(mem_per_cpu="4 gigs")


# -- job states without accounting -----------------------------------------------------------

SQUEUE = """\
10_0|CANCELLED|vm
10_1|RUNNING|vm
10_[2-3]|PENDING|
"""


def _watcher(*job_ids: str) -> slurm_states.SqueueWatcher:
    watcher = slurm_states.SqueueWatcher(delay_s=600)
    for job_id in job_ids:
        watcher.register_job(job_id)
    return watcher


def test_accounting_is_read_from_scontrol_show_config():
    off = "AccountingStorageHost   = (null)\nAccountingStorageType   = accounting_storage/none\n"
    on = "AccountingStorageType   = accounting_storage/slurmdbd\n"
    assert slurm_states.accounting_enabled(off) is False
    assert slurm_states.accounting_enabled(on) is True
    assert slurm_states.accounting_enabled("ClusterName = x\n") is None


def test_squeue_states_and_jobs_it_no_longer_lists_have_ended():
    watcher = _watcher("10", "10_0", "10_1", "10_2", "10_3", "9_0", "8")
    info = watcher.states(SQUEUE, {"10", "10_0", "10_1", "10_2", "10_3", "9_0", "8"})
    assert {k: v["State"] for k, v in info.items() if k in watcher._registered} == {
        "10_0": "CANCELLED",
        "10_1": "RUNNING",
        "10_2": "PENDING",
        "10_3": "PENDING",
        "9_0": slurm_states.ENDED,
        "8": slurm_states.ENDED,
    }  # "10" (the array itself) is listed through its tasks: not ended


def _fake(tmp_path, name: str, script: str) -> None:
    path = tmp_path / "bin" / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_path(tmp_path, monkeypatch):
    """PATH holding only the fake SLURM commands written to ``tmp_path/bin``."""
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # the fakes use shell built-ins only
    return tmp_path


def test_the_watcher_polls_squeue_and_ends_what_it_no_longer_knows(fake_path):
    _fake(fake_path, "squeue", f"echo \"$@\" > {fake_path}/args\nprintf '{SQUEUE}'")
    watcher = _watcher("10_0", "10_1", "9_0")
    assert watcher.get_state("10_0", mode="force") == "CANCELLED"
    assert watcher.is_done("10_0", mode="cache") and not watcher.is_done("10_1", mode="cache")
    assert watcher.get_state("9_0", mode="cache") == slurm_states.ENDED
    args = (fake_path / "args").read_text()
    assert "--states=all" in args and "--jobs=10,9" in args
    # every id unknown: squeue exits 1, and they have all ended
    _fake(fake_path, "squeue", "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1")
    watcher = _watcher("7_0")
    assert watcher.get_state("7_0", mode="force") == slurm_states.ENDED


def test_a_failing_squeue_leaves_the_states_alone_with_a_warning(fake_path, caplog):
    _fake(fake_path, "squeue", "echo 'Unable to contact slurm controller' >&2; exit 1")
    watcher = _watcher("10_1")
    assert watcher.get_state("10_1", mode="force") == "UNKNOWN"  # not done: keep waiting
    assert "Unable to contact slurm controller" in caplog.text


# -- the callback ----------------------------------------------------------------------------


@pytest.fixture
def watcher_restored(monkeypatch):
    monkeypatch.setattr(submitit_slurm.SlurmJob, "watcher", submitit_slurm.SlurmJob.watcher)


def test_the_callback_refuses_a_slurm_sweep_before_anything_is_made(fake_path, capsys):
    _fake(fake_path, "sinfo", f"printf '{ONE_NODE}'")
    with pytest.raises(SystemExit) as info:
        slurm.SlurmPreflight().on_multirun_start(composed("hydra/launcher=slurm", hydra=True))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Nothing was submitted")
    assert "cpus_per_task=4 requested, its largest node has 2 (vm)" in err
    assert "Traceback" not in err


def test_the_callback_lets_a_fitting_sweep_go_and_polls_squeue_without_accounting(
    fake_path, watcher_restored
):
    _fake(fake_path, "sinfo", f"printf '{ONE_NODE}'")
    _fake(fake_path, "scontrol", "echo 'AccountingStorageType   = accounting_storage/none'")
    config = composed(
        "hydra/launcher=slurm",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        hydra=True,
    )
    slurm.SlurmPreflight().on_multirun_start(config)
    assert isinstance(submitit_slurm.SlurmJob.watcher, slurm_states.SqueueWatcher)


def test_with_accounting_submitit_keeps_sacct(fake_path, watcher_restored):
    _fake(fake_path, "sinfo", f"printf '{ONE_NODE}'")
    _fake(fake_path, "scontrol", "echo 'AccountingStorageType   = accounting_storage/slurmdbd'")
    config = composed("hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", hydra=True)
    slurm.SlurmPreflight().on_multirun_start(config)
    assert not isinstance(submitit_slurm.SlurmJob.watcher, slurm_states.SqueueWatcher)


@pytest.mark.parametrize("launcher", ["joblib", "local"])
def test_other_launchers_never_ask_sinfo(fake_path, launcher):
    _fake(fake_path, "sinfo", f": > {fake_path}/asked; printf '{ONE_NODE}'")
    slurm.SlurmPreflight().on_multirun_start(composed(f"hydra/launcher={launcher}", hydra=True))
    assert not (fake_path / "asked").exists()


def test_without_sinfo_the_callback_does_nothing(fake_path, caplog):
    slurm.SlurmPreflight().on_multirun_start(
        composed("hydra/launcher=slurm", "hydra.launcher.cpus_per_task=999", hydra=True)
    )
    assert caplog.records == []  # not even a warning: no SLURM here


def test_an_unreachable_controller_is_a_warning_not_a_refusal(fake_path, caplog):
    _fake(fake_path, "sinfo", "echo 'Unable to contact slurm controller' >&2; exit 1")
    slurm.SlurmPreflight().on_multirun_start(composed("hydra/launcher=slurm", hydra=True))
    assert "could not check the SLURM request" in caplog.text
