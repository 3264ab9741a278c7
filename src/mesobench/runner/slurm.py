"""Refuse, before anything is submitted, a SLURM sweep that its partition can never run.

SLURM keeps a job larger than every node of its partition PENDING for ever (reason
``PartitionConfig``), or refuses it at ``sbatch`` with a terse error; the same for a time limit
above the partition's (``PartitionTimeLimit``). With ``hydra/launcher=slurm``'s defaults (4 CPUs, 16 GB per run) on a 2-CPU node a sweep waited
silently for ever. :class:`SlurmPreflight`, a Hydra callback, runs in the launching process when a
multirun starts: for the submitit SLURM launcher it reads the partition's nodes with ``sinfo`` and
stops the sweep (exit code 2) with the requested and the available numbers when no node of the
partition can hold one run. It also makes submitit poll ``squeue`` when the cluster keeps no
accounting (:mod:`mesobench.runner.slurm_states`). For any other launcher, or where ``sinfo`` is not
installed, it does nothing.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mesobench.errors import ConfigError, MesobenchError

log = logging.getLogger(__name__)

SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
SINFO = ["sinfo", "--noheader", "--Node", "--exact", "--format=%P|%N|%c|%m|%G|%l"]
"""One line per (partition, node): partition (``*``: the default), node, CPUs, memory in MB,
generic resources, the partition's time limit."""


class SlurmRequestError(ConfigError):
    """The sweep asks SLURM for something its partition can never give."""


class SlurmQueryError(MesobenchError):
    """``sinfo`` did not answer (no controller reachable, unreadable output)."""


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    memory_mb: int
    gpus: int

    def describe(self) -> str:
        gpus = f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}"
        return f"{self.cpus} CPUs, {self.memory_mb} MB memory, {gpus}"


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    time_limit_min: float | None  # None: no limit
    nodes: tuple[Node, ...]


def parse_duration_min(text: str) -> float | None:
    """A SLURM duration (``infinite``, ``30``, ``30:00``, ``2:00:00``, ``1-12:00:00``) in minutes;
    None when unlimited."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "n/a", "none", ""):
        return None
    days, _, clock = text.rpartition("-")
    parts = [float(p) for p in clock.split(":")]
    if len(parts) == 1:
        minutes = parts[0] if not days else parts[0] * 60  # "1-12" = 1 day 12 hours
    elif len(parts) == 2:
        minutes = parts[0] + parts[1] / 60 if not days else parts[0] * 60 + parts[1]
    else:
        minutes = parts[0] * 60 + parts[1] + parts[2] / 60
    return minutes + (float(days) * 24 * 60 if days else 0.0)


def parse_memory_mb(value: Any) -> float:
    """A SLURM memory size (``4000``, ``4G``, ``4GB``, ``512M``; bare numbers are MB) in MB."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", str(value), re.IGNORECASE)
    if not match:
        raise ConfigError(f"cannot read {value!r} as a SLURM memory size (e.g. 4000, 4G, 512M)")
    scale = {"K": 1 / 1024, "M": 1, "": 1, "G": 1024, "T": 1024**2}[match.group(2).upper()]
    return float(match.group(1)) * scale


def gpu_count(gres: str) -> int:
    """GPUs in a GRES string (``gpu:4``, ``gpu:a100:2(S:0-1),shard:8``; ``(null)``: none)."""
    return sum(int(n) for n in re.findall(r"(?<![\w-])gpu(?::[\w.-]+)?:(\d+)", gres or ""))


def parse_sinfo(text: str) -> dict[str, Partition]:
    """The partitions of ``sinfo`` output in :data:`SINFO`'s format, by name."""
    nodes: dict[str, list[Node]] = {}
    defaults: set[str] = set()
    limits: dict[str, float | None] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 6:
            raise SlurmQueryError(f"unexpected sinfo line {line!r} (expected {SINFO[-1]})")
        partition, node, cpus, memory, gres, limit = (f.strip() for f in fields)
        name = partition.rstrip("*")
        if partition.endswith("*"):
            defaults.add(name)
        try:
            entry = Node(node, int(cpus.rstrip("+")), int(memory.rstrip("+")), gpu_count(gres))
            limits[name] = parse_duration_min(limit)
        except ValueError as exc:
            raise SlurmQueryError(f"unreadable sinfo line {line!r}: {exc}") from exc
        nodes.setdefault(name, []).append(entry)
    return {
        name: Partition(name, name in defaults, limits[name], tuple(members))
        for name, members in nodes.items()
    }


def read_partitions() -> dict[str, Partition]:
    """The cluster's partitions, from sinfo (SLURM_CONF and the usual config apply)."""
    try:
        proc = subprocess.run(SINFO, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SlurmQueryError(f"sinfo did not run: {exc}") from exc
    if proc.returncode != 0:
        raise SlurmQueryError(f"sinfo failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
    return parse_sinfo(proc.stdout)


@dataclass(frozen=True)
class Request:
    """What one run of the sweep asks SLURM for (submitit's ``hydra.launcher`` keys)."""

    partition: str | None
    cpus_per_task: int
    tasks_per_node: int
    nodes: int
    memory_mb: float | None  # per node
    memory_from: str  # the key(s) that set it, for the message
    gpus: int  # per node
    timeout_min: float

    @property
    def cpus(self) -> int:
        return self.cpus_per_task * self.tasks_per_node

    @classmethod
    def from_launcher(cls, launcher: Mapping[str, Any]) -> Request:
        def get(key: str, default: Any = None) -> Any:
            value = launcher.get(key)
            return default if value is None else value

        cpus_per_task, tasks = int(get("cpus_per_task", 1)), int(get("tasks_per_node", 1))
        gres_gpus = gpu_count(str(get("gres", "")))
        gpus = max(int(get("gpus_per_node", 0)), int(get("gpus_per_task", 0)) * tasks, gres_gpus)
        memory, memory_from = None, ""
        if get("mem_gb") is not None:
            memory, memory_from = float(get("mem_gb")) * 1024, f"mem_gb={get('mem_gb')}"
        elif get("mem_per_cpu") is not None:
            per_cpu = parse_memory_mb(get("mem_per_cpu"))
            memory = per_cpu * cpus_per_task * tasks
            memory_from = f"mem_per_cpu={get('mem_per_cpu')} × {cpus_per_task * tasks} CPUs"
        elif get("mem_per_gpu") is not None and gpus:
            memory = parse_memory_mb(get("mem_per_gpu")) * gpus
            memory_from = f"mem_per_gpu={get('mem_per_gpu')} × {gpus} GPUs"
        partition = get("partition")
        return cls(
            partition=str(partition) if partition else None,
            cpus_per_task=cpus_per_task,
            tasks_per_node=tasks,
            nodes=int(get("nodes", 1)),
            memory_mb=memory,
            memory_from=memory_from,
            gpus=gpus,
            timeout_min=float(get("timeout_min", 60)),
        )

    def fits(self, node: Node) -> bool:
        return (
            self.cpus <= node.cpus
            and (self.memory_mb is None or self.memory_mb <= node.memory_mb)
            and self.gpus <= node.gpus
        )


def _largest(nodes: tuple[Node, ...], attribute: str) -> Node:
    return max(nodes, key=lambda n: getattr(n, attribute))


def problems(request: Request, partition: Partition) -> list[str]:
    """Why ``partition`` can never run ``request``, one line per resource (empty: it can)."""
    found = []
    nodes = partition.nodes
    cpus = _largest(nodes, "cpus")
    if request.cpus > cpus.cpus:
        how = f"cpus_per_task={request.cpus_per_task}"
        if request.tasks_per_node != 1:
            how += f" × tasks_per_node={request.tasks_per_node} = {request.cpus}"
        found.append(f"CPUs: {how} requested, its largest node has {cpus.cpus} ({cpus.name})")
    memory = _largest(nodes, "memory_mb")
    if request.memory_mb is not None and request.memory_mb > memory.memory_mb:
        found.append(
            f"memory: {request.memory_from} = {request.memory_mb:.0f} MB requested, its largest "
            f"node has {memory.memory_mb} MB ({memory.name})"
        )
    gpus = _largest(nodes, "gpus")
    if request.gpus > gpus.gpus:
        found.append(
            f"GPUs: {request.gpus} requested per node, its largest node has {gpus.gpus} "
            f"({gpus.name})"
        )
    fitting = sum(request.fits(n) for n in nodes)
    if not found and fitting == 0:
        found.append(
            f"no single node has {request.cpus} CPUs, {request.memory_mb or 0:.0f} MB memory and "
            f"{request.gpus} GPUs at once"
        )
    elif not found and fitting < request.nodes:
        found.append(f"nodes: {request.nodes} requested, only {fitting} of its nodes fit a task")
    limit = partition.time_limit_min
    if limit is not None and request.timeout_min > limit:
        found.append(
            f"time: timeout_min={request.timeout_min:g} requested, its time limit is {limit:g} min"
        )
    return found


def _nodes_line(partition: Partition, shown: int = 4) -> str:
    kinds: dict[str, list[str]] = {}
    for node in partition.nodes:
        kinds.setdefault(node.describe(), []).append(node.name)
    parts = []
    for description, names in kinds.items():
        listed = ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
        parts.append(f"{len(names)} node{'s' if len(names) > 1 else ''} {listed} ({description})")
    limit = partition.time_limit_min
    parts.append("no time limit" if limit is None else f"time limit {limit:g} min")
    return "; ".join(parts)


def _suggestion(request: Request, partition: Partition) -> str:
    """The largest values of the refused keys that the partition's nodes can hold."""
    cpus = max(n.cpus for n in partition.nodes) // request.tasks_per_node
    memory_gb = max(n.memory_mb for n in partition.nodes) // 1024
    hints = []
    if request.cpus > cpus * request.tasks_per_node:
        hints.append(f"hydra.launcher.cpus_per_task={max(cpus, 1)}")
    if request.memory_mb is not None and request.memory_mb > memory_gb * 1024:
        hints.append(f"hydra.launcher.mem_gb={memory_gb}")
    limit = partition.time_limit_min
    if limit is not None and request.timeout_min > limit:
        hints.append(f"hydra.launcher.timeout_min={math.floor(limit)}")
    return " ".join(hints)


def _listing(partitions: Mapping[str, Partition]) -> str:
    return ", ".join(f"{p.name}{' (default)' if p.default else ''}" for p in partitions.values())


def check(request: Request, partitions: Mapping[str, Partition]) -> None:
    """Raise :class:`SlurmRequestError` unless a requested partition can run ``request``.

    ``request.partition`` may list several (``a,b``: SLURM uses whichever can start the job);
    unset, it is the cluster's default partition."""
    if request.partition:
        names = [n.strip() for n in request.partition.split(",") if n.strip()]
        unknown = [n for n in names if n not in partitions]
        if unknown:
            raise SlurmRequestError(
                f"SLURM has no partition {', '.join(map(repr, unknown))} "
                f"(hydra.launcher.partition={request.partition}); nothing was submitted. "
                f"Partitions here: {_listing(partitions)}. Set hydra.launcher.partition to one "
                "of them, or to null for the default partition."
            )
    else:
        names = [p.name for p in partitions.values() if p.default]
        if not names:
            raise SlurmRequestError(
                "hydra.launcher.partition is not set and this SLURM cluster has no default "
                f"partition; nothing was submitted. Set hydra.launcher.partition to one of: "
                f"{_listing(partitions)}."
            )
    refusals = {name: problems(request, partitions[name]) for name in names}
    if any(not found for found in refusals.values()):
        return
    lines = [
        "Nothing was submitted: SLURM could never start this sweep's runs (they would wait "
        "PENDING for ever)."
    ]
    for name, found in refusals.items():
        partition = partitions[name]
        lines.append(f"Partition {name!r} can never give one run what it asks for:")
        lines += [f"  - {reason}" for reason in found]
        lines.append(f"  Partition {name!r}: {_nodes_line(partition)}.")
        hint = _suggestion(request, partition)
        if hint:
            lines.append(f"  What fits it: {hint}")
    lines.append(
        "Ask for less (hydra.launcher.*) or choose another partition with "
        f"hydra.launcher.partition=... (partitions here: {_listing(partitions)})."
    )
    raise SlurmRequestError("\n".join(lines))


def is_slurm_launcher(config: DictConfig) -> bool:
    return OmegaConf.select(config, "hydra.launcher._target_", default="") == SLURM_LAUNCHER


class SlurmPreflight(Callback):
    """Hydra callback: check a SLURM sweep against its partition before it is submitted."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_slurm_launcher(config) or shutil.which("sinfo") is None:
            return
        launcher = {
            key: OmegaConf.select(config, f"hydra.launcher.{key}", default=None)
            for key in (
                "partition",
                "cpus_per_task",
                "tasks_per_node",
                "nodes",
                "mem_gb",
                "mem_per_cpu",
                "mem_per_gpu",
                "gpus_per_node",
                "gpus_per_task",
                "gres",
                "timeout_min",
            )
        }
        try:
            check(Request.from_launcher(launcher), read_partitions())
        except SlurmQueryError as exc:  # sbatch will say what is wrong with the cluster
            log.warning("could not check the SLURM request against its partition: %s", exc)
        except ConfigError as exc:  # Hydra turns a callback's exception into a mere warning
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from exc
        from mesobench.runner import slurm_states

        if slurm_states.cluster_accounting() is False:
            slurm_states.use_squeue()
            log.info("SLURM keeps no accounting: job states are read from squeue, not sacct")
