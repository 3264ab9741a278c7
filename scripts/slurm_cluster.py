"""Start a one-node SLURM cluster on this machine: munged, slurmctld and slurmd, private config.

    python scripts/slurm_cluster.py start --dir .cache/slurm     # prints the SLURM_CONF to export
    export SLURM_CONF=$PWD/.cache/slurm/slurm.conf
    python -m mesobench.run -m model=logreg task=synthetic/c1 fold=0,1 hydra/launcher=slurm \\
        hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=1
    python scripts/slurm_cluster.py stop --dir .cache/slurm

For tests/test_slurm.py and CI, and to try the SLURM launcher without a cluster. Needs Debian's
(or Ubuntu's) ``slurmctld slurmd slurm-client munge`` packages and root: slurmd starts every job
as its submitting user. Nothing of the system's is touched (/etc/slurm, /etc/munge, the system
munged): ``--dir`` holds the config, its own munge key and socket, state, spool and logs, and
the daemons listen on free ports of their own.

Where SLURM reads its config: the daemons are given ``-f <dir>/slurm.conf``; the client commands
(sbatch, squeue, sinfo, scancel, scontrol, and srun inside a job) read ``$SLURM_CONF``. Export it
before a sweep: Hydra's submitit launcher runs sbatch with the sweep's environment, and a job
inherits the submitter's environment, so the jobs' srun find the cluster too.

The cluster is a small real one: cgroup-free (process tracking by /proc, no task binding),
``select/cons_tres`` with ``CR_Core_Memory`` so that CPU *and* memory requests are checked against
the node, no accounting (no slurmdbd; sacct does not work, as on many small clusters), and a
``KillWait`` of 5 s so that a cancelled job is killed quickly. Starting is idempotent: a cluster
already running from ``--dir`` is reused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

PARTITION = "mesobench"
PACKAGES = "slurmctld slurmd slurm-client munge"
DAEMONS = ("slurmd", "slurmctld", "munged")  # stopped in this order
SOCKET_PATH_MAX = 100  # a Unix socket path holds at most 107 bytes


class ClusterError(RuntimeError):
    """The cluster cannot be started here (missing packages, not root, a daemon that fails)."""


def binary(name: str) -> str:
    """The path of a SLURM or munge program (daemons live in /usr/sbin, off a user's PATH)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if not found:
        raise ClusterError(
            f"{name} was not found. Install SLURM and munge (Debian/Ubuntu, as root: "
            f"`apt-get install {PACKAGES}`)."
        )
    return found


@dataclass(frozen=True)
class Layout:
    """Where everything of a cluster lives under its directory."""

    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def run(self) -> Path:  # sockets and pid files: traversable by all, as munged requires
        return self.root / "run"

    @property
    def munge(self) -> Path:  # the key, its seed and munged's log: private
        return self.root / "munge"

    @property
    def socket(self) -> Path:
        return self.run / "munge.socket"

    @property
    def log(self) -> Path:
        return self.root / "log"

    def pid_file(self, daemon: str) -> Path:
        return self.run / f"{daemon}.pid"


@dataclass
class Cluster:
    """A running one-node cluster; ``env`` is what a client command needs to reach it."""

    layout: Layout
    node: str
    partition: str
    cpus: int
    memory_mb: int

    @property
    def conf(self) -> Path:
        return self.layout.conf

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.layout.conf)}

    def stop(self) -> None:
        stop(self.layout.root)


def node_hardware() -> dict[str, str]:
    """``slurmd -C``'s description of this machine (CPUs, RealMemory, sockets, cores...)."""
    try:
        out = subprocess.run(
            [binary("slurmd"), "-C"], capture_output=True, text=True, timeout=30
        ).stdout
    except subprocess.TimeoutExpired as exc:
        raise ClusterError("`slurmd -C` did not answer in 30s") from exc
    line = next((x for x in out.splitlines() if x.startswith("NodeName=")), "")
    fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
    if "CPUs" not in fields or "RealMemory" not in fields:
        raise ClusterError(f"`slurmd -C` did not describe this machine: {out.strip()[:500]!r}")
    return fields


def write_config(layout: Layout, node: str, hardware: dict[str, str], ports: tuple[int, int]):
    """The cluster's slurm.conf: one node (this host, on loopback), one default partition."""
    ctld_port, slurmd_port = ports
    topology = " ".join(
        f"{k}={hardware[k]}"
        for k in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
        if k in hardware
    )
    user = "root"
    text = f"""\
# A one-node SLURM cluster for mesobench's tests, written by scripts/slurm_cluster.py.
ClusterName=mesobench
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={layout.socket}
StateSaveLocation={layout.root / "state"}
SlurmdSpoolDir={layout.root / "spool"}
SlurmctldPidFile={layout.pid_file("slurmctld")}
SlurmdPidFile={layout.pid_file("slurmd")}
SlurmctldLogFile={layout.log / "slurmctld.log"}
SlurmdLogFile={layout.log / "slurmd.log"}
# cgroup-free: processes tracked through /proc, no CPU binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# CPUs and memory are consumable: a request larger than the node can never start
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# no accounting (no slurmdbd): sacct does not work here
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=5
NodeName={node} NodeAddr=127.0.0.1 {topology} RealMemory={hardware["RealMemory"]} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""
    layout.conf.write_text(text)


def read_config(layout: Layout) -> dict[str, str]:
    """The node line's and the ports' settings of an existing slurm.conf."""
    values: dict[str, str] = {}
    for line in layout.conf.read_text().splitlines():
        if line.startswith("#"):
            continue
        for item in line.split():
            if "=" in item:
                key, value = item.split("=", 1)
                values.setdefault(key, value)
    return values


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(layout: Layout, daemon: str) -> int | None:
    """The pid of ``daemon`` from its pid file, if that process exists and is no zombie (a
    daemon's parent is init, which in some containers never reaps it)."""
    try:
        pid = int(layout.pid_file(daemon).read_text().split()[0])
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat")
        state = stat.read_text().rpartition(")")[2].split()[0] if stat.exists() else "?"
    except (OSError, ValueError, IndexError):
        return None
    return None if state == "Z" else pid


def _client(layout: Layout, *cmd: str, timeout: float = 15) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLURM_CONF": str(layout.conf)}
    return subprocess.run(
        [binary(cmd[0]), *cmd[1:]], capture_output=True, text=True, env=env, timeout=timeout
    )


def node_state(layout: Layout, node: str) -> str:
    """The node's state as sinfo reports it ("idle", "mixed", "down*"...; "" when unreachable)."""
    try:
        proc = _client(layout, "sinfo", "--noheader", "--Node", f"--nodes={node}", "--format=%T")
    except subprocess.TimeoutExpired:
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _log_tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _start_daemon(layout: Layout, daemon: str, cmd: list[str]) -> None:
    """Start a daemon that forks into the background, and check that it stayed up."""
    if _alive(layout, daemon):
        return
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise ClusterError(
            f"{daemon} did not start (exit code {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-800:]}\n"
            f"Its log:\n{_log_tail(layout.log / f'{daemon}.log')}"
        )


def _start_munged(layout: Layout) -> None:
    key = layout.munge / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
    _start_daemon(
        layout,
        "munged",
        [
            binary("munged"),
            f"--key-file={key}",
            f"--socket={layout.socket}",
            f"--pid-file={layout.pid_file('munged')}",
            f"--log-file={layout.log / 'munged.log'}",
            f"--seed-file={layout.munge / 'munged.seed'}",
        ],
    )
    socket_arg = f"--socket={layout.socket}"
    credential = subprocess.run(
        [binary("munge"), "--no-input", socket_arg], capture_output=True, text=True, timeout=30
    )
    check = subprocess.run(
        [binary("unmunge"), socket_arg],
        input=credential.stdout,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if credential.returncode != 0 or check.returncode != 0:
        why = (credential.stderr + check.stderr).strip()
        raise ClusterError(f"munge does not answer on {layout.socket}: {why}")


def _prepare(root: Path) -> Layout:
    layout = Layout(root.resolve())
    if len(str(layout.socket)) > SOCKET_PATH_MAX:
        raise ClusterError(
            f"--dir {layout.root} is too deep: munge's socket path would exceed "
            f"{SOCKET_PATH_MAX} characters; choose a shorter directory"
        )
    for path in (layout.root, layout.run):
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)  # munged: its socket's directory must be traversable by all
    for path in (layout.munge, layout.log, layout.root / "state", layout.root / "spool"):
        path.mkdir(exist_ok=True)
    layout.munge.chmod(0o700)
    parent = layout.root.parent
    while parent != parent.parent:
        if not os.stat(parent).st_mode & 0o001:
            raise ClusterError(
                f"{parent} is not traversable by other users, which munged requires of its "
                "socket's path; put --dir elsewhere (e.g. under /tmp)"
            )
        parent = parent.parent
    return layout


def start(root: Path, timeout_s: float = 60.0) -> Cluster:
    """Start (or find running) the cluster of ``root``; returns once its node is idle."""
    for name in ("munged", "munge", "unmunge", "slurmctld", "slurmd", "sinfo", "sbatch"):
        binary(name)
    if os.geteuid() != 0:
        raise ClusterError(
            "a SLURM cluster needs root here: slurmd starts each job as its user "
            f"(running as uid {os.geteuid()})"
        )
    layout = _prepare(root)
    node = socket.gethostname().split(".")[0]
    if not layout.conf.exists() or not all(_alive(layout, d) for d in DAEMONS):
        for daemon in DAEMONS:  # a partial leftover (one daemon died): start afresh
            _stop_daemon(layout, daemon)
        write_config(layout, node, node_hardware(), (_free_port(), _free_port()))
        _start_munged(layout)
        conf = ["-f", str(layout.conf)]
        _start_daemon(layout, "slurmctld", [binary("slurmctld"), *conf])
        _start_daemon(layout, "slurmd", [binary("slurmd"), *conf])
    try:
        return _wait_until_idle(layout, node, timeout_s)
    except ClusterError:
        stop(root)  # a failed start leaves no daemon running behind it
        raise


def _exited(layout: Layout, daemon: str) -> bool:
    """Whether ``daemon`` wrote its pid file and is gone since. No pid file yet, or an empty one,
    means it is still starting: a daemon forks before it writes the file, later on a busy machine.
    """
    try:
        written = bool(layout.pid_file(daemon).read_text().strip())
    except OSError:
        return False
    return written and _alive(layout, daemon) is None


def _wait_until_idle(layout: Layout, node: str, timeout_s: float) -> Cluster:
    deadline = time.monotonic() + timeout_s
    state = ""
    while time.monotonic() < deadline:
        state = node_state(layout, node)
        if state in ("idle", "mixed", "allocated"):
            values = read_config(layout)
            return Cluster(layout, node, PARTITION, int(values["CPUs"]), int(values["RealMemory"]))
        for daemon in DAEMONS:
            if _exited(layout, daemon):
                raise ClusterError(
                    f"{daemon} exited after starting. Its log:\n"
                    f"{_log_tail(layout.log / f'{daemon}.log')}"
                )
        time.sleep(0.5)
    raise ClusterError(
        f"node {node} is not idle after {timeout_s:.0f}s (sinfo says {state or 'nothing'!r}).\n"
        f"slurmctld's log:\n{_log_tail(layout.log / 'slurmctld.log')}\n"
        f"slurmd's log:\n{_log_tail(layout.log / 'slurmd.log')}"
    )


def _stop_daemon(layout: Layout, daemon: str, timeout_s: float = 15.0) -> None:
    pid = _alive(layout, daemon)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _alive(layout, daemon) is None:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def stop(root: Path) -> None:
    """Stop the cluster's daemons (jobs still running are killed with slurmd's steps)."""
    layout = Layout(root.resolve())
    if layout.conf.exists() and _alive(layout, "slurmctld"):
        with suppress(subprocess.SubprocessError):  # an unresponsive controller is stopped anyway
            _client(layout, "scancel", f"--partition={PARTITION}")
            deadline = time.monotonic() + 15  # their processes end within KillWait
            while time.monotonic() < deadline and _client(layout, "squeue", "--noheader").stdout:
                time.sleep(0.5)
    for daemon in DAEMONS:
        _stop_daemon(layout, daemon)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--dir", type=Path, default=Path(".cache/slurm"))
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the node")
    args = parser.parse_args(argv)
    try:
        if args.action == "stop":
            stop(args.dir)
            print(f"stopped the cluster of {args.dir}")
            return 0
        cluster = start(args.dir, args.timeout)
    except ClusterError as exc:
        raise SystemExit(f"slurm_cluster: {exc}") from exc
    print(
        f"SLURM cluster up: node {cluster.node} ({cluster.cpus} CPUs, {cluster.memory_mb} MB), "
        f"partition {cluster.partition} (default). Use:\n  export SLURM_CONF={cluster.conf}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
