"""Build an estimator from a model config (``conf/model/<name>.yaml``).

A model config names a classifier and (optionally) a regressor class plus constructor
``params``; the harness adds what it owns: ``random_state``, ``device`` and, where the class takes
them, ``n_jobs`` and the GPU settings of ``conf/device/*.yaml`` (:class:`DeviceSettings`:
``precision``, ``compile``; ``batch_size_scale`` multiplies the batch size). Nothing here
knows any model's internals.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from hydra.utils import get_class

from mesobench.errors import ConfigError

PRECISIONS = ("fp32", "bf16")  # as mesobench.models.training.PRECISIONS (no torch import here)


@dataclass(frozen=True)
class DeviceSettings:
    """The training settings of ``conf/device/*.yaml`` besides ``name`` (all default = off).

    ``precision`` and ``compile`` are passed as estimator parameters to the classes that take
    them (the torch models; see :func:`mesobench.models.training.train`); ``batch_size_scale``
    multiplies the model config's batch size for the task kind (the learning rate is not changed).
    """

    precision: str = "fp32"
    compile: bool = False
    batch_size_scale: int = 1

    @classmethod
    def from_config(cls, device_cfg: Mapping[str, Any] | None) -> DeviceSettings:
        """Read and check the ``device`` config group; absent keys take their defaults."""
        cfg = device_cfg or {}
        precision = cfg.get("precision", "fp32")
        compile_ = cfg.get("compile", False)
        scale = cfg.get("batch_size_scale", 1)
        if precision not in PRECISIONS:
            raise ConfigError(
                f"device.precision={precision!r} is invalid: expected one of {list(PRECISIONS)} "
                "(see conf/device/*.yaml)."
            )
        if not isinstance(compile_, bool):
            raise ConfigError(f"device.compile={compile_!r} is invalid: expected true or false.")
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ConfigError(
                f"device.batch_size_scale={scale!r} is invalid: expected an integer >= 1 "
                "(the factor applied to model.params.batch_size)."
            )
        return cls(precision=precision, compile=compile_, batch_size_scale=scale)

    def non_default(self) -> dict[str, Any]:
        """The settings that differ from their defaults (the part that enters the run key)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != f.default
        }

    def estimator_params(self) -> dict[str, Any]:
        """The settings that are estimator parameters (passed where the class takes them)."""
        return {k: v for k, v in asdict(self).items() if k != "batch_size_scale"}


def accepts(func: Any, name: str) -> bool:
    """Whether ``func`` has a parameter called ``name``."""
    return name in inspect.signature(func).parameters


def scaled_batch_size(
    model_cfg: Mapping[str, Any], settings: DeviceSettings, kind: str
) -> int | None:
    """The batch size for a ``kind`` task × ``batch_size_scale``, or None when none is set.

    The batch size is read after ``regressor_params`` / ``classifier_params`` are merged over
    ``params`` (:func:`kind_params`), so a recipe may set it per task kind.
    """
    batch_size = kind_params(model_cfg, kind).get("batch_size")
    if batch_size is None:
        return None
    return int(batch_size) * settings.batch_size_scale


def settings_notes(
    model_cfg: Mapping[str, Any], estimator: Any, settings: DeviceSettings, kind: str
) -> list[str]:
    """Notes for device settings that a model ignores (it does not take them); never an error."""
    name = model_cfg.get("name", "?")
    notes = [
        f"device.{key}={value} ignored: model '{name}' ({type(estimator).__name__}) "
        f"has no '{key}' parameter"
        for key, value in settings.estimator_params().items()
        if key in settings.non_default() and not accepts(type(estimator), key)
    ]
    if settings.batch_size_scale != 1 and scaled_batch_size(model_cfg, settings, kind) is None:
        notes.append(
            f"device.batch_size_scale={settings.batch_size_scale} ignored: model '{name}' "
            f"sets no batch_size for a {kind} task"
        )
    return notes


def role_of(kind: str) -> str:
    """``regressor`` for a regression task, else ``classifier``: the config key that applies."""
    return "regressor" if kind == "regression" else "classifier"


def kind_params(section: Mapping[str, Any] | None, kind: str) -> dict[str, Any]:
    """``params`` with ``<role>_params`` merged over them for a task ``kind``: a model config's
    constructor arguments, or a search space (``conf/hpo/*.yaml``), whose recipe differs
    by task kind."""
    section = section or {}
    role = role_of(kind)
    return {**(section.get("params") or {}), **(section.get(f"{role}_params") or {})}


def build_estimator(
    model_cfg: Mapping[str, Any],
    kind: str,
    *,
    seed: int,
    device: str,
    threads: int | None,
    settings: DeviceSettings | None = None,
) -> Any:
    """Instantiate the model config's classifier (or regressor, for ``kind == "regression"``).

    Its parameters: ``params``, with ``classifier_params`` / ``regressor_params`` (optional)
    merged over them for that role, for a recipe that differs by task kind.

    ``settings`` (the device config's GPU settings): ``params.batch_size`` is multiplied by
    ``batch_size_scale``, and ``precision`` / ``compile`` are passed to a class that takes them
    (:func:`settings_notes` lists what a model ignores).
    """
    settings = settings or DeviceSettings()
    role = role_of(kind)
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
    params = kind_params(model_cfg, kind)
    batch_size = scaled_batch_size(model_cfg, settings, kind)
    if batch_size is not None:
        params["batch_size"] = batch_size
    owned = {"random_state": seed, "device": device}
    if threads is not None and accepts(cls, "n_jobs"):
        owned["n_jobs"] = threads
    owned.update({k: v for k, v in settings.estimator_params().items() if accepts(cls, k)})
    clash = sorted(set(params) & set(owned))
    if clash:
        raise ConfigError(
            f"model '{name}': {clash} are set by the runner (seed=, device=, threads=, "
            "device.precision=, device.compile=); remove them from the model's params."
        )
    unknown = sorted(p for p in params if not accepts(cls, p))
    if unknown:
        raise ConfigError(
            f"model '{name}': {target} has no parameter(s) {unknown}. "
            f"Known: {sorted(inspect.signature(cls).parameters)}"
        )
    return cls(**params, **{k: v for k, v in owned.items() if accepts(cls, k)})
