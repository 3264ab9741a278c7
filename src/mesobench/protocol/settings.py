"""The protocol settings of one run, typed, built once from the resolved config.

The runner hands the pipeline these values instead of raw config dicts, so the pipeline never
re-applies a YAML default: every default lives in ``conf/config.yaml`` (a missing key is a
KeyError at the edge, where the config is read, not a silently different run). Tests and
library users build the same objects from a composed config (``Protocol.from_config``) and
change what they need with :func:`dataclasses.replace`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mesobench.errors import ConfigError
from mesobench.metrics.scoring import FidelityConfig


@dataclass(frozen=True)
class HPOSettings:
    """``hpo.*`` as it applies to this run's model (``hpo.models`` may leave it out)."""

    n_trials: int = 0
    sampler: str = "tpe"
    timeout_s: float | None = None
    space: Mapping[str, Any] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.n_trials > 0

    @classmethod
    def from_config(cls, plain: Mapping[str, Any]) -> HPOSettings:
        from mesobench.config.identity import hpo_settings

        section = hpo_settings(plain)
        if int(section["n_trials"] or 0) <= 0:
            return cls()  # off: nothing else is read
        timeout = section["timeout_s"]
        return cls(
            n_trials=int(section["n_trials"]),
            sampler=str(section["sampler"]),
            timeout_s=None if timeout is None else float(timeout),
            space=dict(section.get("space") or {}),
        )


@dataclass(frozen=True)
class GammaSearchSettings:
    """``gamma_search.*``: the in-run choice of LFR's γ (:mod:`mesobench.protocol.gamma_search`)."""

    enabled: bool
    grid: tuple[float, ...]
    alpha: float
    param: str

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> GammaSearchSettings:
        settings = cls(
            enabled=bool(section["enabled"]),
            grid=tuple(float(g) for g in section["grid"] or ()),
            alpha=float(section["alpha"]),
            param=str(section["param"]),
        )
        if settings.enabled:
            settings.check()
        return settings

    def check(self) -> None:
        """Refuse a grid without its γ = 0 baseline, or α outside [0, 1], before any fit."""
        grid = list(self.grid)
        if 0.0 not in grid or any(g < 0 for g in grid) or len(set(grid)) != len(grid):
            raise ConfigError(
                f"gamma_search.grid={grid}: needs distinct values >= 0 including 0, the "
                "unregularised baseline that the fidelity ratio R_F is measured against."
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"gamma_search.alpha={self.alpha}: expected a value in [0, 1].")


@dataclass(frozen=True)
class ExplanationSettings:
    """``explanations.*``: what a model with ``explain`` logs besides the fidelity metrics."""

    enabled: bool
    sample_size: int  # test rows whose local weights are saved as an artifact

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> ExplanationSettings:
        return cls(enabled=bool(section["enabled"]), sample_size=int(section["sample_size"]))


@dataclass(frozen=True)
class FidelitySettings:
    """``fidelity.*``: the switch and the metrics' settings."""

    enabled: bool
    metrics: FidelityConfig

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> FidelitySettings:
        values = {k: v for k, v in section.items() if k != "enabled"}
        return cls(enabled=bool(section["enabled"]), metrics=FidelityConfig(**values))


@dataclass(frozen=True)
class Protocol:
    """How one fold is run: everything :func:`mesobench.protocol.pipeline.evaluate_fold` reads."""

    preprocessing: Mapping[str, Any]  # Preprocessor arguments (``preprocessing.*``)
    validation_fraction: float  # share of the training fold held out when a split is needed
    use_validation: bool  # give the model ``eval_set`` (early stopping) when its fit takes one
    hpo: HPOSettings
    gamma_search: GammaSearchSettings
    explanations: ExplanationSettings
    fidelity: FidelitySettings
    save_model: bool  # return the fitted model's files (pickle-free)

    @classmethod
    def from_config(cls, plain: Mapping[str, Any]) -> Protocol:
        """From a resolved runner config (``OmegaConf.to_container(cfg, resolve=True)``)."""
        return cls(
            preprocessing=dict(plain["preprocessing"]),
            validation_fraction=float(plain["validation"]["fraction"]),
            use_validation=bool(plain["model"].get("use_validation", True)),
            hpo=HPOSettings.from_config(plain),
            gamma_search=GammaSearchSettings.from_config(plain["gamma_search"]),
            explanations=ExplanationSettings.from_config(plain["explanations"]),
            fidelity=FidelitySettings.from_config(plain["fidelity"]),
            save_model=bool(plain["artifacts"]["save_model"]),
        )
