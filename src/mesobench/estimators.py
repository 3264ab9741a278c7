"""Build an estimator from a model config (``conf/model/<name>.yaml``).

A model config names a classifier and (optionally) a regressor class plus constructor
``params``; the harness adds what it owns: ``random_state``, ``device`` and, where the class takes
it, ``n_jobs``. Nothing here knows any model's internals.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from hydra.utils import get_class

from mesobench.errors import ConfigError


def accepts(func: Any, name: str) -> bool:
    """Whether ``func`` has a parameter called ``name``."""
    return name in inspect.signature(func).parameters


def build_estimator(
    model_cfg: Mapping[str, Any], kind: str, *, seed: int, device: str, threads: int | None
) -> Any:
    """Instantiate the model config's classifier (or regressor, for ``kind == "regression"``)."""
    role = "regressor" if kind == "regression" else "classifier"
    target = model_cfg.get(role)
    name = model_cfg.get("name", "?")
    if not target:
        raise ConfigError(
            f"model '{name}' has no {role}, but the task is a {kind} task. "
            f"Pick a model whose conf/model/*.yaml sets '{role}:'."
        )
    try:
        cls = get_class(target)
    except Exception as exc:  # hydra wraps import errors in its own exception type
        raise ConfigError(f"model '{name}': cannot import {role} '{target}': {exc}") from exc
    params = dict(model_cfg.get("params") or {})
    owned = {"random_state": seed, "device": device}
    if threads is not None and accepts(cls, "n_jobs"):
        owned["n_jobs"] = threads
    clash = sorted(set(params) & set(owned))
    if clash:
        raise ConfigError(
            f"model '{name}': {clash} are set by the runner (seed=, device=, threads=); "
            "remove them from the model's params."
        )
    unknown = sorted(p for p in params if not accepts(cls, p))
    if unknown:
        raise ConfigError(
            f"model '{name}': {target} has no parameter(s) {unknown}. "
            f"Known: {sorted(inspect.signature(cls).parameters)}"
        )
    return cls(**params, **{k: v for k, v in owned.items() if accepts(cls, k)})
