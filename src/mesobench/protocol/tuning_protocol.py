"""One tuning protocol per comparison: an experiment's models are all run at their defaults or
all tuned on one budget, and a run or sweep that breaks this is refused before anything runs.

An experiment declares ``protocol.name`` (``default`` | ``tuned``) and may exempt models with a
reason (``protocol.exempt``: the oracle, a model with its own internal cross-validation); the
report prints both (docs/statistics.md). :func:`check_tuning_protocol` checks one run's config
(the runner calls it for every run); :class:`ProtocolCheck` checks every model of a sweep in the
launching process, before the first job, so an unequal sweep is refused whole (exit code 2).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mesobench.errors import ConfigError

PROTOCOLS = ("default", "tuned")


def check_tuning_protocol(plain: Mapping[str, Any]) -> None:
    """Refuse a run that breaks its experiment's tuning protocol (``protocol.*``), before any fit.

    Models in one comparison get one tuning protocol: ``default`` (no model searched) or
    ``tuned`` (every model searched with the same ``hpo`` budget: sampler and trials; a grid
    must have at least ``hpo.n_trials`` points for every task kind, so that each model runs
    exactly that many trials). A model listed in ``protocol.exempt`` with a reason (e.g. the
    oracle, which has nothing to fit) is outside it, and the report prints why. ``protocol.name``
    null (an ad-hoc run, not an experiment) checks nothing.
    """
    from mesobench.config.identity import hpo_settings

    section = plain.get("protocol") or {}
    name = section.get("name")
    if name is None:
        return
    if name not in PROTOCOLS:
        raise ConfigError(f"protocol.name={name!r}; use one of {PROTOCOLS} (or null)")
    exempt = dict(section.get("exempt") or {})
    blank = sorted(m for m, why in exempt.items() if not str(why or "").strip())
    if blank:
        raise ConfigError(f"protocol.exempt: say why each model is exempt; no reason for {blank}")
    model = str(plain["model"]["name"])
    if model in exempt:
        return
    hpo_section = hpo_settings(plain)
    n_trials = int(hpo_section.get("n_trials") or 0)
    how = f"or state why in protocol.exempt.{model}='<reason>' (the report prints it)"
    if name == "default" and n_trials > 0:
        raise ConfigError(
            f"protocol: default, but {model} is tuned (hpo.n_trials={n_trials}): models in one "
            f"comparison get one tuning protocol. Tune none of them, use protocol.name=tuned "
            f"for all, {how}"
        )
    if name == "tuned":
        if n_trials <= 0:
            listed = hpo_section.get("models", plain.get("hpo", {}).get("models"))
            raise ConfigError(
                f"protocol: tuned, but {model} is not tuned (hpo.n_trials="
                f"{plain.get('hpo', {}).get('n_trials')}, hpo.models={listed}): every model of "
                f"the comparison is searched on the same budget. Add it to hpo.models, {how}"
            )
        _check_grid_budget(model, hpo_section, n_trials)


def _check_grid_budget(model: str, section: Mapping[str, Any], n_trials: int) -> None:
    """Under a grid, a model with fewer points than ``n_trials`` would get a smaller budget."""
    if section.get("sampler") != "grid":
        return
    from mesobench.protocol.estimators import kind_params
    from mesobench.protocol.hpo import grid_points, grid_size

    space = section.get("space") or {}
    for kind in ("binary", "regression"):
        params = kind_params(space, kind)
        size = grid_size(grid_points(params))
        if params and size < n_trials:
            raise ConfigError(
                f"protocol: tuned with hpo.sampler=grid and hpo.n_trials={n_trials}, but "
                f"{model}'s {kind} grid has {size} point(s): it would get fewer trials than the "
                "other models. Give its conf/hpo/ space at least that many points."
            )


def command_line_overrides(config: DictConfig) -> list[str]:
    """The multirun's command-line overrides (``hydra.overrides.task``), as strings."""
    return [str(o) for o in OmegaConf.select(config, "hydra.overrides.task", default=[]) or []]


def swept_models(config: DictConfig) -> list[str | None]:
    """The model configs a multirun launches: the command line's ``model=a,b``, else the
    experiment's ``hydra.sweeper.params.model``; ``[None]`` when the model is not swept."""
    task = command_line_overrides(config)
    texts = [o for o in task if o.split("=", 1)[0].lstrip("+~") == "model"]
    swept = OmegaConf.select(config, "hydra.sweeper.params.model", default=None)
    if not texts and swept:
        texts = [f"model={swept}"]
    if not texts:
        return [None]
    override = OverridesParser.create().parse_overrides(texts[-1:])[0]
    if override.is_sweep_override():
        return list(override.sweep_string_iterator())
    return [override.get_value_element_as_str()]


def sweep_configs(config: DictConfig) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """``(model, config)`` for every model a multirun launches, composed as its jobs will be
    (the command line's fixed overrides, that model)."""
    from mesobench.config.paths import compose_config

    task = command_line_overrides(config)
    parser = OverridesParser.create()
    fixed = [
        text
        for text, parsed in zip(task, parser.parse_overrides(task), strict=True)
        if not parsed.is_sweep_override() and parsed.key_or_group != "model"
    ]
    for model in swept_models(config):
        yield model, compose_config(*fixed, *([f"model={model}"] if model is not None else []))


def check_sweep(config: DictConfig) -> None:
    """Check every model of a multirun against the experiment's protocol."""
    if OmegaConf.select(config, "protocol.name", default=None) is None:
        return
    for _, composed in sweep_configs(config):
        check_tuning_protocol(composed)


class ProtocolCheck(Callback):
    """Hydra callback: refuse a sweep whose models break the experiment's tuning protocol."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_sweep(config)
        except ConfigError as exc:  # Hydra turns a callback's exception into a mere warning
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from exc
