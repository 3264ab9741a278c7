"""The report's settings, read once from the aggregator's config (``conf/aggregate.yaml``, an
experiment's ``aggregate:`` block and the command line), checked before any run is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from mesobench.config.identity import RUN_KEY_VERSION
from mesobench.config.paths import compose_config
from mesobench.errors import ConfigError
from mesobench.metrics import registry
from mesobench.report import document
from mesobench.report.comparisons import Claim, ComparisonSettings
from mesobench.report.parity import ParityReference, read_reference
from mesobench.report.published import Target, read_published
from mesobench.report.runs_table import RunFilter
from mesobench.report.stats import Bootstrap


def as_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in OmegaConf.to_container(value)]


def as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return dict(OmegaConf.to_container(value)) if not isinstance(value, dict) else dict(value)


def _key_version(value: Any) -> str | None:
    """``filters.key_version``: ``latest`` (the newest rule among the runs), ``current`` (the
    runner's rule), ``any`` (None) or a version."""
    if value in (None, "any"):
        return None
    return RUN_KEY_VERSION if value == "current" else str(value)


def settings_from(cfg: DictConfig) -> document.ReportSettings:
    """The report settings of ``cfg``; an unknown metric fails here, before any run is read."""
    models = as_list(cfg.filters.models)
    settings = document.ReportSettings(
        metric=cfg.metric,
        higher_is_better=cfg.higher_is_better,
        missing=cfg.missing,
        reference=cfg.reference,
        tie_tolerance=None if cfg.tie_tolerance is None else float(cfg.tie_tolerance),
        alpha=float(cfg.alpha),
        infidelity=cfg.infidelity,
        models=models,
        explain_top_k=int(cfg.explain.top_k),
        key_version=_key_version(cfg.filters.key_version),
        bootstrap=Bootstrap(
            n_resamples=int(cfg.bootstrap.n_resamples),
            confidence=float(cfg.bootstrap.confidence),
            seed=int(cfg.bootstrap.seed),
        ),
        comparisons=comparison_settings(cfg),
        claims=tuple(Claim.from_config(c) for c in _as_plain(cfg.claims) or []),
        cv_folds=int(cfg.cv_folds),
        protocol=tuning_protocol(cfg),
    )
    settings.direction()  # refuses a metric the registry does not know (without an override)
    for metric in set(settings.comparisons.metrics) - {settings.metric}:
        registry.higher_is_better(metric)  # an unknown compared metric fails before any run is read
    for claim in settings.claims:
        registry.higher_is_better(claim.metric)
        settings.comparisons.require_rope(claim.metric, f"a claim ({claim.a} vs {claim.b}) tests")
    return settings


def comparison_settings(cfg: DictConfig) -> ComparisonSettings:
    """``comparisons.*``: the paired comparisons' pairs, metrics (the headline metric when the
    list is empty), ROPEs and decision rule."""
    block = cfg.comparisons
    pairs = []
    for pair in _as_plain(block.pairs) or []:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ConfigError(f"comparisons.pairs: each pair is [model_a, model_b], got {pair!r}")
        pairs.append((str(pair[0]), str(pair[1])))
    metrics = tuple(as_list(block.metrics) or [cfg.metric])
    if not isinstance(block.within_tasks, bool):
        raise ConfigError(
            f"comparisons.within_tasks={block.within_tasks!r}: expected true or false"
        )
    return ComparisonSettings(
        pairs=tuple(pairs),
        scope=str(block.scope),
        metrics=metrics,
        rope={str(k): float(v) for k, v in as_dict(block.rope).items()},
        posterior=float(block.posterior),
        confidence=float(block.confidence),
        nsamples=int(block.nsamples),
        seed=int(block.seed),
        within_tasks=block.within_tasks,
    )


def tuning_protocol(cfg: DictConfig) -> document.TuningProtocol | None:
    """The experiment's ``protocol`` (runner config, composed by ``+experiment=``) for the
    report's header, with the hpo budget every tuned model got; None for an ad-hoc selection."""
    block = cfg.get("protocol")
    if block is None or block.get("name") is None:
        return None
    hpo = {**compose_config()["hpo"], **as_dict(cfg.get("hpo"))}  # the runner's defaults under it
    budget = f"hpo.sampler={hpo['sampler']}, hpo.n_trials={hpo['n_trials']}"
    return document.TuningProtocol(
        name=str(block.name),
        budget=budget,
        exempt={str(k): str(v) for k, v in as_dict(block.get("exempt")).items()},
    )


def parity_from(cfg: DictConfig) -> ParityReference | None:
    """The ``parity:`` block as reference figures to compare with, or None when unset.

    A relative ``parity.reference`` is taken from the directory the command was started in.
    """
    block = cfg.parity
    if not block.reference:
        return None
    path = Path(to_absolute_path(str(block.reference)))
    return ParityReference(
        figures=read_reference(path, cfg.metric),
        source=str(block.reference),
        label=str(block.label),
        models=as_list(block.models),
        mean_tolerance=float(block.mean_tolerance),
        fold_tolerance=float(block.fold_tolerance),
    )


def published_from(cfg: DictConfig) -> document.Published | None:
    """``published`` (papers' figures, each ``{file, models}``), ``targets`` and ``ceiling`` as
    the report's published section, or None when none is set. Relative files are taken from the
    directory the command was started in; a bad file or target fails before runs are read."""
    entries = _as_plain(cfg.published) or []
    targets = _as_plain(cfg.targets) or []
    if not entries and not targets:
        return None
    tables = []
    for entry in entries:
        if not isinstance(entry, dict) or "file" not in entry:
            raise ConfigError(f"published: each entry needs a file (and models), got {entry!r}")
        path = Path(to_absolute_path(str(entry["file"])))
        tables.extend(read_published(path, entry.get("models")))
    return document.Published(
        tables=tables,
        targets=[Target.from_config(dict(t)) for t in targets],
        ceiling=cfg.ceiling,
    )


def _as_plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def with_experiment(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """``cfg`` with the report settings of an experiment (``+experiment=X``) applied.

    An experiment file (``conf/experiment/X.yaml``) configures the runner at its top level and
    its report in an ``aggregate:`` block. Here that block goes over ``aggregate.yaml``'s
    defaults, and then the command line's own overrides go over it again, so that
    ``+experiment=quick metric=accuracy`` means what it says.
    """
    block = cfg.get("aggregate")
    if block is None:
        return cfg
    cfg = cfg.copy()
    OmegaConf.set_struct(cfg.comparisons.rope, False)  # an experiment adds its metrics' ROPEs
    merged = OmegaConf.merge(cfg, block)
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if override.is_delete() or key.split(".")[0] in ("experiment", "aggregate", "hydra"):
            continue
        value = override.value()
        if isinstance(OmegaConf.select(cfg, key), DictConfig) and isinstance(value, str):
            continue  # a config group choice (tracking=server): Hydra applied it
        OmegaConf.update(merged, key, value, merge=False, force_add=True)
    return merged


def selection_text(cfg: DictConfig) -> str:
    """The filters in force, for the report's first line."""
    parts = []
    for key in ("sweep_id", "suite", "models", "tasks"):
        value = cfg.filters.get(key)
        if value is not None:
            shown = ",".join(as_list(value) or [])
            parts.append(f"{key}={shown}")
    for key, value in as_dict(cfg.filters.get("tags")).items():
        parts.append(f"tag {key}={value}")
    return "; ".join(parts)


def run_filter(cfg: DictConfig, models: list[str] | None) -> RunFilter:
    """``filters.*`` as the selection of runs, alike for a store and a runs table."""
    filters = cfg.filters
    return RunFilter(
        sweep_id=filters.sweep_id,
        suite=filters.suite,
        models=models,
        tasks=as_list(filters.tasks),
        tags=as_dict(filters.tags),
    )
