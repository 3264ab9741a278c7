"""What a sweep would run and cost, printed before anything is trained.

    python -m mesobench.planning.plan suite=cc18 model=imn,lfr_imn,nimo,xgboost,catboost
    python -m mesobench.planning.plan +experiment=quick folds=10 hydra/launcher=joblib hydra.launcher.n_jobs=2
    python -m mesobench.planning.plan suite=cc18 model=imn device=cuda --json     # for scripts

Why: a cluster sweep of 72 tasks × 10 folds × several models costs thousands of CPU-hours, and
some (task, model) pairs cannot run at all; both must be known before the request is made. The
plan takes the same overrides as ``python -m mesobench.run -m`` and expands them exactly as the
sweep would (Hydra's own override parser and BasicSweeper, the config's
``hydra.sweeper.params`` first, the command line winning), builds each run's resolved config and
run key as the runner does, and reports: the runs; those already FINISHED in the tracking store
(the runner skips them); those a model refuses up front (``model.limits``); and, for the rest,
CPU-hours (and GPU-hours where measured) per model and task, the memory of a run and the
wall-clock on the sweep's cores, estimated from measured costs (:mod:`mesobench.planning.costs`).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from mesobench.config import identity
from mesobench.config.paths import conf_dir, register_resolvers, repo_root
from mesobench.planning import costs as cost_model
from mesobench.protocol.limits import Shape, refusal
from mesobench.store.runs import finished_keys

PER_JOB = ("task", "fold", "seed")
"""Overrides that vary between a sweep's jobs and are set into one composed config per job
instead of composing each job (3,600 compositions would take minutes)."""


# -- the sweep's jobs, as Hydra's BasicSweeper makes them ------------------------------------------
@dataclass(frozen=True)
class Launcher:
    """How the sweep runs its jobs: parallel jobs and threads per job (``threads=auto``)."""

    name: str
    parallel: int  # jobs at once
    cores: int  # CPU cores per job's node (threads=auto divides them among parallel jobs)
    auto_threads: int

    @classmethod
    def from_config(cls, launcher: Mapping[str, Any], cores: int) -> Launcher:
        target = str(launcher.get("_target_") or "")
        if "joblib" in target.lower():
            n_jobs = int(launcher.get("n_jobs") or 1)
            parallel = cores if n_jobs < 0 else n_jobs
            return cls("joblib", parallel, cores, 1 if n_jobs < 0 else max(1, cores // n_jobs))
        if "submitit" in target.lower():
            per_task = int(launcher.get("cpus_per_task") or 1)
            parallel = int(launcher.get("array_parallelism") or 1)
            return cls(target.rsplit(".", 1)[-1], parallel, per_task, per_task)
        return cls("basic (one run at a time)", 1, cores, cores)

    def threads(self, value: Any) -> int:
        """``mesobench.runner.execute.resolve_threads`` for a job of this launcher."""
        return self.auto_threads if value in (None, "auto") else max(1, int(value))


@dataclass
class Sweep:
    jobs: list[list[str]]  # each job's overrides
    launcher: Launcher
    parsed: dict[str, Any] = field(default_factory=dict)  # override string → Hydra Override


def expand(overrides: list[str], cores: int) -> Sweep:
    """The sweep's jobs: the config's ``hydra.sweeper.params`` then the command line, through
    Hydra's OverridesParser and ``BasicSweeper.split_arguments`` (as ``BasicSweeper.sweep``).
    Must run inside an initialised Hydra (:func:`hydra_context`)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    gh = GlobalHydra.instance().hydra
    master = gh.compose_config(
        "config", overrides, run_mode=RunMode.MULTIRUN, from_shell=True,
        with_log_configuration=False,
    )  # fmt: skip
    sweeper = master.hydra.sweeper
    if "BasicSweeper" not in str(sweeper.get("_target_")):
        raise SystemExit(
            f"mesobench.planning.plan expands Hydra's basic sweeper only; this sweep uses "
            f"{sweeper.get('_target_')}"
        )
    params = OmegaConf.to_container(sweeper.params, resolve=True) if sweeper.params else {}
    arguments = [f"{k}={v}" for k, v in params.items()] + list(overrides)
    parser = OverridesParser.create(config_loader=gh.config_loader)
    batches = BasicSweeper.split_arguments(parser.parse_overrides(arguments), None)
    jobs = [list(job) for batch in batches for job in batch]
    launcher = OmegaConf.to_container(master.hydra.launcher, resolve=False)
    launcher = {k: v for k, v in launcher.items() if not (isinstance(v, str) and "${" in v)}
    return Sweep(jobs, Launcher.from_config(launcher, cores))


# -- each job's resolved config and run key ---------------------------------------------------------
@dataclass(frozen=True)
class Job:
    model: str
    model_cfg: dict[str, Any]
    task: dict[str, Any]
    fold: int
    seed: int
    key: str
    device: str
    threads: Any
    tracking: tuple[str, str]  # (uri, experiment)

    @property
    def task_name(self) -> str:
        return str(self.task.get("name"))


def _interpolated(tree: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _interpolated(v, (*path, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _interpolated(v, (*path, i))
    elif isinstance(tree, str) and "${" in tree:
        yield path, tree


_NODE_REF = re.compile(r"\$\{([A-Za-z_][\w.]*)\}")


def per_job_leaves(raw: dict[str, Any]) -> list[tuple]:
    """Interpolated values that may change with the task, fold or seed (they mention one, or
    refer to a value that does): re-resolved per job; every other value is resolved once."""
    texts = dict(_interpolated(raw))
    by_dotted = {".".join(map(str, p)): t for p, t in texts.items()}

    def depends(text: str, seen: frozenset) -> bool:
        if any(word in text for word in PER_JOB):
            return True
        refs = [r for r in _NODE_REF.findall(text) if r in by_dotted and r not in seen]
        return any(depends(by_dotted[r], seen | {r}) for r in refs)

    return [p for p, t in texts.items() if p[0] not in PER_JOB and depends(t, frozenset())]


def _set_path(tree: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    """``tree`` with ``path`` set to ``value``, copying only the dicts along the path."""
    head, rest = path[0], path[1:]
    out = dict(tree) if isinstance(tree, dict) else list(tree)
    out[head] = value if not rest else _set_path(tree[head], rest, value)
    return out


class Composer:
    """Resolved run configs of a sweep's jobs: one Hydra composition per group of jobs that
    differ only in task, fold and seed; per job those are set into the composed config and the
    values that depend on them re-resolved. A group is checked against a full composition of
    its last job, and composed job by job when the two differ (a setting nobody foresaw)."""

    def __init__(self, parsed: dict[str, Any]):
        self.parsed = parsed
        self.composed_each: list[str] = []  # groups composed job by job
        self._parser = None

    def override(self, text: str):
        if text not in self.parsed:
            if self._parser is None:
                from hydra.core.override_parser.overrides_parser import OverridesParser

                self._parser = OverridesParser.create()
            self.parsed[text] = self._parser.parse_override(text)
        return self.parsed[text]

    def split(self, job: list[str]) -> tuple[tuple[str, ...], dict[str, Any]]:
        common, varying = [], {}
        for text in job:
            override = self.override(text)
            key = override.get_key_element()
            if key in PER_JOB and override.is_add() is False and not override.is_delete():
                varying[key] = override.value()
            else:
                common.append(text)
        return tuple(common), varying

    @staticmethod
    def compose(overrides: list[str]) -> DictConfig:
        from hydra import compose

        return compose("config", overrides=overrides)

    def task_node(self, name: str, common: tuple[str, ...]) -> DictConfig:
        path = conf_dir() / "task" / f"{name}.yaml"
        if path.is_file():
            node = OmegaConf.load(path)
            if "defaults" not in node:
                return node
        return self.compose([*common, f"task={name}"]).task  # Hydra's error for unknown names

    def configs(self, jobs: list[list[str]]) -> list[dict[str, Any]]:
        """The resolved config of each job, in the sweep's order."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for index, job in enumerate(jobs):
            common, varying = self.split(job)
            groups[common].append({**varying, "_job": job, "_index": index})
        out: list[dict[str, Any]] = [{}] * len(jobs)
        for common, members in groups.items():
            for member, plain in zip(members, self._group(common, members), strict=True):
                out[member["_index"]] = plain
        return out

    def _group(self, common: tuple[str, ...], members: list[dict]) -> Iterator[dict[str, Any]]:
        base = self.compose(members[0]["_job"])
        fast = self._fast(base, common)
        last = members[-1]
        if len(members) > 1 and fast(last) != self._plain(self.compose(last["_job"])):
            self.composed_each.append(" ".join(common))
            for member in members:
                yield self._plain(self.compose(member["_job"]))
            return
        for member in members:
            yield fast(member)

    @staticmethod
    def _plain(cfg: DictConfig) -> dict[str, Any]:
        return OmegaConf.to_container(cfg, resolve=True)

    def _fast(self, base: DictConfig, common: tuple[str, ...]):
        leaves = per_job_leaves(OmegaConf.to_container(base, resolve=False))
        plain_base = self._plain(base)
        tasks: dict[str, DictConfig] = {}
        current = {"task": None}

        def plain(member: dict[str, Any]) -> dict[str, Any]:
            name = member.get("task")
            if name is not None and current["task"] != name:
                if name not in tasks:
                    tasks[name] = self.task_node(str(name), common)
                base.task = tasks[name]
                current["task"] = name
            for key in ("fold", "seed"):
                if key in member:
                    base[key] = member[key]
            out = dict(plain_base)
            for key in PER_JOB:
                value = OmegaConf.select(base, key)
                out[key] = (
                    OmegaConf.to_container(value, resolve=True)
                    if isinstance(value, DictConfig)
                    else value
                )
            for path in leaves:
                value = OmegaConf.select(base, ".".join(map(str, path)))
                if isinstance(value, DictConfig | ListConfig):
                    value = OmegaConf.to_container(value, resolve=True)
                out = _set_path(out, path, value)
            return out

        return plain


def hydra_context():
    from hydra import initialize_config_dir

    register_resolvers()
    return initialize_config_dir(str(conf_dir()), version_base="1.3")


def build_jobs(overrides: list[str], cores: int) -> tuple[Sweep, list[Job], list[str]]:
    """The sweep, each job's identity (run key as :func:`mesobench.runner.execute.build_request` computes
    it) and the groups that had to be composed job by job."""
    with hydra_context():
        sweep = expand(overrides, cores)
        composer = Composer(sweep.parsed)
        jobs = [
            Job(
                model=str(plain["model"]["name"]),
                model_cfg=plain["model"],
                task=plain["task"],
                fold=int(plain["fold"]),
                seed=int(plain["seed"]),
                key=identity.run_key(plain),
                device=str(plain["device"]["name"]),
                threads=plain.get("threads"),
                tracking=(str(plain["tracking"]["uri"]), str(plain["tracking"]["experiment"])),
            )
            for plain in composer.configs(sweep.jobs)
        ]
    return sweep, jobs, composer.composed_each


# -- estimates ---------------------------------------------------------------------------------------
@dataclass
class Planned:
    job: Job
    status: str  # finished | refused | duplicate | to_run
    reason: str = ""
    estimate: cost_model.Estimate | None = None
    threads: int = 1
    gpu_seconds: float | None = None  # device=cuda runs with a measured ratio

    @property
    def core_seconds(self) -> float | None:
        return None if self.estimate is None else self.estimate.seconds

    @property
    def wall_seconds(self) -> float | None:
        return None if self.estimate is None else self.estimate.seconds / self.threads


@dataclass
class ModelNote:
    model: str
    cls_name: str
    budget: str = ""
    basis: str = ""
    no_cost: str = ""  # why the model has no estimate
    upper_bound: str = ""  # why its hours are a maximum
    gpu: str = ""


@dataclass
class Plan:
    overrides: list[str]
    sweep: Sweep
    planned: list[Planned]
    models: dict[str, ModelNote]
    stores: dict[tuple[str, str], int]  # (uri, experiment) → FINISHED keys found
    costs: cost_model.CostTable
    speed: cost_model.SpeedTable
    composed_each: list[str]
    seconds: float = 0.0
    from_scratch: bool = False  # the store was not read: every run counts as to run

    def count(self, status: str) -> int:
        return sum(p.status == status for p in self.planned)

    @property
    def to_run(self) -> list[Planned]:
        return [p for p in self.planned if p.status == "to_run"]

    @property
    def wants_gpu(self) -> bool:
        return any(p.job.device == "cuda" for p in self.planned)


def load_plan_config() -> dict[str, Any]:
    return yaml.safe_load((conf_dir() / "plan.yaml").read_text())


def _resolve(path: str | Path | None, default: str) -> Path:
    path = Path(path or default)
    return path if path.is_absolute() else repo_root() / path


def make_plan(
    overrides: list[str],
    *,
    costs: Path | None = None,
    speed: Path | None = None,
    cores: int | None = None,
    from_scratch: bool = False,
) -> Plan:
    """The sweep of ``overrides`` planned: its jobs, their status and estimates. With
    ``from_scratch`` the store is not read, so the plan is the cost of the whole sweep (what a
    new store pays; results/cc18_shapes/plan_cc18.md is made so, from committed tables only)."""
    started = time.perf_counter()
    cfg = load_plan_config()
    cores = cores or len(os.sched_getaffinity(0))
    budgets = {k: cost_model.Budget.from_config(v) for k, v in (cfg.get("budgets") or {}).items()}
    table = cost_model.CostTable.load(_resolve(costs, cfg["costs"]))
    speed_table = cost_model.SpeedTable.load(_resolve(speed, cfg["speed"]))
    sweep, jobs, composed_each = build_jobs(overrides, cores)

    stores = {
        pair: set() if from_scratch else finished_keys(*pair)
        for pair in dict.fromkeys(j.tracking for j in jobs)
    }
    shape_models = tuple(cfg.get("shape_models") or ())
    notes: dict[str, ModelNote] = {}
    seen: set[str] = set()
    planned = []
    for job in jobs:
        note = notes.get(job.model) or _model_note(job, budgets, shape_models, table)
        notes[job.model] = note
        shape = Shape.declared(job.task)
        item = Planned(job, "to_run", threads=sweep.launcher.threads(job.threads))
        if job.key in stores[job.tracking]:
            item.status = "finished"
        elif job.key in seen:
            item.status, item.reason = "duplicate", "same run key as another job of this sweep"
        elif shape is not None and (why := refusal(job.model_cfg, shape)):
            item.status, item.reason = "refused", why
        seen.add(job.key)
        if item.status != "refused":  # FINISHED runs too: the JSON compares them with the store
            _estimate(item, shape, note, budgets, shape_models, table, speed_table)
        planned.append(item)
    plan = Plan(
        overrides, sweep, planned, notes, {k: len(v) for k, v in stores.items()}, table,
        speed_table, composed_each, from_scratch=from_scratch,
    )  # fmt: skip
    plan.seconds = time.perf_counter() - started
    return plan


@functools.cache
def _same_class(model: str, cls_name: str, shape_models: tuple[str, ...]) -> list[str]:
    """The shape sweep's models of the same estimator class (their costs stand in)."""
    out = []
    for other in shape_models:
        path = conf_dir() / "model" / f"{other}.yaml"
        if other != model and path.is_file():
            classifier = str(yaml.safe_load(path.read_text()).get("classifier") or "")
            if classifier.rsplit(".", 1)[-1] == cls_name:
                out.append(other)
    return out


def _model_note(job, budgets, shape_models, table) -> ModelNote:
    cls_name = cost_model.estimator_class(job.model_cfg)
    note = ModelNote(job.model, cls_name)
    budget = budgets.get(cls_name)
    if budget is None:
        note.no_cost = f"no cost data: conf/plan.yaml has no budget for {cls_name}"
        return note
    units = budget.units(job.model_cfg)
    note.budget = f"{budget.param}={units:g}" if units is not None else budget.param
    if cost_model.early_stopping(job.model_cfg):
        note.upper_bound = "early stopping: the budget is a maximum"
    elif budget.maximum:
        note.upper_bound = "the budget is a maximum (it stops on convergence)"
    if budget.extra:
        note.upper_bound += (
            "; " if note.upper_bound else ""
        ) + f"the shape sweep also reduced {', '.join(budget.extra)} (not scaled: lower bound)"
    found = table.costs(job.model, cls_name, _same_class(job.model, cls_name, shape_models), budget)
    if isinstance(found, str):
        note.no_cost = found
    else:
        note.basis = found.basis
    return note


def _estimate(item, shape, note, budgets, shape_models, table, speed) -> None:
    job = item.job
    if note.no_cost:
        item.reason = note.no_cost
        return
    if shape is None:
        item.reason = f"task {job.task_name} declares no shape (n_rows, n_features)"
        return
    budget = budgets[note.cls_name]
    units = budget.units(job.model_cfg)
    if units is None:
        item.reason = f"model.{budget.param} is not a number"
        return
    same_class = _same_class(job.model, note.cls_name, shape_models)
    found = table.costs(job.model, note.cls_name, same_class, budget)
    item.estimate = found.estimate(job.task_name, shape, units)
    if job.device == "cuda":
        est = item.estimate
        ratio = speed.cuda_ratio(
            note.basis, shape.rows * found.fit_share, shape.features, shape.classes
        )
        if ratio is not None:
            item.gpu_seconds = (est.fixed + est.evaluation) / item.threads + (
                est.per_unit * est.units * ratio
            )
        else:
            note.gpu = "not measured for this model" if speed.has_cuda else cost_model.GPU_HINT


# -- output -------------------------------------------------------------------------------------------
def _shown(path: Path) -> str:
    """A path inside the checkout relative to it (the same text on every machine)."""
    try:
        return str(Path(path).resolve().relative_to(repo_root()))
    except ValueError:
        return str(path)


def hours(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    h = seconds / 3600
    if h >= 100:
        return f"{h:,.0f}"
    if h >= 0.01:
        return f"{h:.3g}"
    return f"{h:.2g}" if h > 0 else "0"


def memory(mb: float | None) -> str:
    if mb is None or not math.isfinite(mb):
        return "—"
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def _shortened(reason: str) -> str:
    return reason.split("; to run it anyway")[0]


def text(plan: Plan, top: int = 10) -> str:
    """The plan as printed: counts and refusals, per model, then totals and how."""
    models = list(dict.fromkeys(p.job.model for p in plan.planned))
    lines = [*_count_lines(plan), *_model_lines(plan, models), *_total_lines(plan, top)]
    lines.append(f"(planned in {plan.seconds:.1f} s)")
    return "\n".join(lines) + "\n"


def _count_lines(plan: Plan) -> list[str]:
    planned, to_run = plan.planned, plan.to_run
    tasks = list(dict.fromkeys(p.job.task_name for p in planned))
    models = list(dict.fromkeys(p.job.model for p in planned))
    folds = sorted({p.job.fold for p in planned})
    seeds = sorted({p.job.seed for p in planned})
    lines = [
        f"Plan for: python -m mesobench.run -m {' '.join(plan.overrides)}",
        f"  {len(planned):>7,} runs ({len(tasks)} tasks × {len(folds)} folds × {len(models)} "
        f"models × {len(seeds)} seed{'s' if len(seeds) > 1 else ''}{', other settings swept' if _other_swept(plan) else ''})",
    ]
    if plan.from_scratch:
        lines.append("          (the store was not read: --from-scratch plans every run)")
    for uri, experiment in {} if plan.from_scratch else plan.stores:
        done = sum(p.status == "finished" and p.job.tracking == (uri, experiment) for p in planned)
        lines.append(
            f"  {done:>7,} already FINISHED in {uri} (experiment {experiment}; "
            f"the runner skips them)"
        )
    if plan.count("duplicate"):
        lines.append(f"  {plan.count('duplicate'):>7,} duplicates (a run key twice in the sweep)")
    lines.append(f"  {plan.count('refused'):>7,} refused up front (model.limits; no hours counted)")
    lines.append(f"  {len(to_run):>7,} to run")
    refused = Counter(
        (p.job.model, p.job.task_name, _shortened(p.reason))
        for p in planned
        if p.status == "refused"
    )
    if refused:
        lines += ["", "Refused:"]
        for (model, task, reason), n in refused.items():
            lines.append(f"  {model} × {task} ({n} runs): {reason}")
    return lines


def _model_lines(plan: Plan, models: list[str]) -> list[str]:
    planned = plan.planned
    lines: list[str] = []
    gpu = plan.wants_gpu
    lines += ["", "Per model (runs to run; CPU-hours = core-hours; memory = peak RSS of one run):"]
    header = (
        f"  {'model':<14} {'runs':>6} {'to run':>7}  {'budget':<26} {'CPU-h':>9} {'max mem':>9}"
    )
    lines.append(header + (f"  {'GPU-h':>9}" if gpu else ""))
    for model in models:
        mine = [p for p in planned if p.job.model == model]
        run = [p for p in mine if p.status == "to_run"]
        note = plan.models[model]
        estimated = [p for p in run if p.estimate is not None]
        cpu = sum(p.core_seconds for p in estimated) if estimated else None
        mem = max((p.estimate.memory_mb for p in estimated), default=None)
        bound = "≤" if note.upper_bound and estimated else " "
        row = (
            f"  {model:<14} {len(mine):>6,} {len(run):>7,}  {note.budget:<26} "
            f"{bound}{hours(cpu):>8} {memory(mem):>9}"
        )
        if gpu:
            cuda = [p for p in run if p.job.device == "cuda"]
            if not cuda:
                row += f"  {'— (cpu)':>9}"
            elif note.gpu or any(p.gpu_seconds is None for p in cuda if p.estimate):
                row += f"  {'not measured':>9}"
            else:
                row += f"  {hours(sum(p.gpu_seconds or 0 for p in cuda)):>9}"
        lines.append(row)
        missing = [p for p in run if p.estimate is None]
        for reason, n in Counter(p.reason for p in missing).items():
            lines.append(f"      {n:,} runs without an estimate: {reason}")
        if note.basis and note.basis != model and estimated:
            lines.append(f"      costs measured on {note.basis} (same estimator class)")
        if note.upper_bound and estimated:
            lines.append(f"      ≤: {note.upper_bound}")
        beyond = sum(p.estimate.extrapolated for p in estimated)
        if beyond:
            lines.append(
                f"      {beyond:,} runs on shapes beyond 2× its largest measured one (extrapolated)"
            )
    return lines


def wall_clock(plan: Plan) -> tuple[float, float]:
    """(wall seconds of the sweep, of its longest run): the runs to run, spread over the
    launcher's parallel slots, never shorter than the longest run."""
    walls = [p.wall_seconds for p in plan.to_run if p.estimate is not None]
    if not walls:
        return 0.0, 0.0
    return max(sum(walls) / plan.sweep.launcher.parallel, max(walls)), max(walls)


def _total_lines(plan: Plan, top: int) -> list[str]:
    to_run = plan.to_run
    gpu = plan.wants_gpu
    lines: list[str] = []
    estimated = [p for p in to_run if p.estimate is not None]
    by_task: dict[str, float] = defaultdict(float)
    for p in estimated:
        by_task[p.job.task_name] += p.core_seconds
    if by_task:
        lines += ["", "Most expensive tasks (CPU-hours over models, folds and seeds):"]
        for task, seconds in sorted(by_task.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"  {task:<44} {hours(seconds):>9}")
    total = sum(p.core_seconds for p in estimated)
    launcher = plan.sweep.launcher
    lines += ["", f"Total: {hours(total)} CPU-hours for {len(estimated):,} runs"]
    if len(estimated) < len(to_run):
        lines[-1] += f" (+{len(to_run) - len(estimated):,} runs without an estimate)"
    if estimated:
        wall, longest = wall_clock(plan)
        threads = sorted({p.threads for p in estimated})
        lines.append(
            f"Wall-clock: ≈ {hours(wall)} h with {launcher.name}: {launcher.parallel} parallel "
            f"run(s) × {'/'.join(map(str, threads))} thread(s) on {launcher.cores} cores per node; "
            f"the longest run ≈ {hours(longest)} h"
        )
    if gpu and not plan.speed.has_cuda:
        lines.append(cost_model.GPU_HINT)
    lines += ["", *method(plan, estimated)]
    return lines


def _other_swept(plan: Plan) -> bool:
    groups = {(p.job.model, json.dumps(p.job.model_cfg, sort_keys=True)) for p in plan.planned}
    return len(groups) > len({p.job.model for p in plan.planned})


def method(plan: Plan, estimated: list[Planned]) -> list[str]:
    measured = sum(p.estimate.source == "measured" for p in estimated)
    fitted = len(estimated) - measured
    extrapolated = sum(p.estimate.extrapolated for p in estimated)
    lines = [
        f"How: measured costs of {_shown(plan.costs.path)} ({plan.costs.n_rows} FINISHED (shape, model) "
        f"rows at the reduced budgets of conf/plan.yaml) scaled to each run's budget: fixed "
        f"seconds + seconds per unit (epoch, tree, iteration) × the run's value of the budget "
        f"param + predict/explanation/fidelity seconds. {measured:,} runs from their own task's "
        f"shape, {fitted:,} from a power law in rows, features and classes fitted to the model's "
        f"measured shapes ({extrapolated:,} beyond 2× the largest measured: extrapolated). "
        f"Early-stopping models train at most their budget: their hours are an upper bound. "
        f"Core-hours assume perfect thread scaling (measured wall × threads). Data loading and "
        f"logging are not counted.",
    ]
    if plan.composed_each:
        lines.append(f"Composed job by job (a setting depends on the task): {plan.composed_each}")
    return lines


def as_json(plan: Plan) -> dict[str, Any]:
    def run(p: Planned) -> dict[str, Any]:
        est = p.estimate
        return {
            "model": p.job.model,
            "task": p.job.task_name,
            "fold": p.job.fold,
            "seed": p.job.seed,
            "run_key": p.job.key,
            "device": p.job.device,
            "status": p.status,
            "reason": p.reason,
            "threads": p.threads,
            "core_seconds": None if est is None else est.seconds,
            "fit_seconds": None if est is None else est.fit,
            "evaluation_seconds": None if est is None else est.evaluation,
            "wall_seconds": p.wall_seconds,
            "gpu_seconds": p.gpu_seconds,
            "memory_mb": None if est is None else est.memory_mb,
            "source": None if est is None else est.source,
            "extrapolated": None if est is None else est.extrapolated,
        }

    estimated = [p for p in plan.to_run if p.estimate is not None]
    return {
        "overrides": plan.overrides,
        "runs": len(plan.planned),
        "finished": plan.count("finished"),
        "refused": plan.count("refused"),
        "duplicates": plan.count("duplicate"),
        "to_run": len(plan.to_run),
        "cpu_hours": sum(p.core_seconds for p in estimated) / 3600,
        "gpu_measured": plan.speed.has_cuda,
        "launcher": vars(plan.sweep.launcher),
        "costs": str(plan.costs.path),
        "cost_rows": plan.costs.n_rows,
        "models": {k: vars(v) for k, v in plan.models.items()},
        "seconds": plan.seconds,
        "jobs": [run(p) for p in plan.planned],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mesobench.planning.plan",
        description="The runs, FINISHED runs, refusals, CPU-/GPU-hours and memory of a sweep, "
        "without training. Takes the overrides of `python -m mesobench.run -m`.",
    )
    parser.add_argument("overrides", nargs="*", help="sweep overrides, e.g. suite=cc18 model=imn")
    parser.add_argument("--json", action="store_true", help="print JSON (every job) for scripts")
    parser.add_argument("--costs", type=Path, help="shape table (default: conf/plan.yaml costs)")
    parser.add_argument("--speed", type=Path, help="bench_speed table (default: plan.yaml speed)")
    parser.add_argument("--cores", type=int, help="cores per node (default: this machine's)")
    parser.add_argument("--top", type=int, default=10, help="most expensive tasks shown")
    parser.add_argument(
        "--from-scratch", action="store_true", help="do not read the store: plan every run"
    )
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_intermixed_args([a for a in raw if a not in ("-m", "--multirun")])
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        plan = make_plan(
            args.overrides,
            costs=args.costs,
            speed=args.speed,
            cores=args.cores,
            from_scratch=args.from_scratch,
        )
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"mesobench.planning.plan: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(as_json(plan), default=str))
    else:
        print(text(plan, args.top), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
