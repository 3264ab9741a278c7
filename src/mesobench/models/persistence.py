"""Save fitted models and load them back, without pickle.

A saved model is a directory:

* ``model.json`` — the manifest: format version, the estimator's class (``module.Class``), its
  constructor parameters (``get_params()``), its fitted plain attributes (``classes_``,
  ``n_features_in_``, ``y_mean_``, ``coef_``, ...; arrays as lists with their dtype), the names of
  the weight files and the library versions it was saved with;
* the weights in a format that cannot run code when read: ``weights.pt`` for the torch models
  (a plain dict of ``state_dict``\\ s and tensors, read with ``torch.load(weights_only=True)``),
  the libraries' own formats for XGBoost (``model.ubj``) and CatBoost (``model.cbm``), skops'
  format for the scikit-learn random forests (``model.skops``, loaded with an explicit list of
  trusted types). A linear model needs no weight file (its coefficients are attributes).

:func:`load_model` imports only classes defined inside the ``mesobench.models`` package and
never unpickles anything. Models with no pickle-free format (the debug models of
:mod:`mesobench.models.debug`) are not saved: :func:`save_model` raises :class:`UnsupportedModelError`.

This module only handles files, the manifest and dispatch. What to save is each estimator's
business: a supported estimator derives from :class:`Persistable` and implements
``_persist_state() -> ModelState`` and ``_restore_state(state, device)``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import platform
import tempfile
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from mesobench.errors import MesobenchError

FORMAT = "mesobench-model"
FORMAT_VERSION = 1
MANIFEST = "model.json"
WEIGHTS = "weights.pt"
PACKAGE = "mesobench.models"
_LIBRARIES = ("mesobench", "numpy", "scikit-learn", "skops", "torch", "xgboost", "catboost")
_ARRAY = "__ndarray__"


class UnsupportedModelError(MesobenchError, NotImplementedError):
    """The estimator has no pickle-free format, so it is not saved."""


class ModelLoadError(MesobenchError):
    """A saved model was refused: wrong format, a class outside ``mesobench.models``, unsafe weights."""


@dataclass
class ModelState:
    """What an estimator hands to :func:`save_model` and gets back from :func:`load_model`.

    ``attributes``: fitted plain values (numbers, strings, lists, dicts, NumPy arrays), stored in
    the manifest. ``tensors``: for torch models, a (nested) dict / list of tensors and
    ``state_dict``\\ s, stored as ``weights.pt``. ``files``: files in a library's own format,
    name → bytes (e.g. ``{"model.ubj": ...}``).
    """

    attributes: dict[str, Any]
    tensors: dict[str, Any] | None = None
    files: dict[str, bytes] = field(default_factory=dict)


class Persistable:
    """Mixin of the estimators that :func:`save_model` supports.

    Subclasses implement :meth:`_persist_state` and :meth:`_restore_state` (the torch
    models inherit both from :class:`TorchPersistable`);
    :meth:`_fitted_attributes` / :meth:`_restore_attributes` copy the plain fitted attributes named in
    ``_persisted_attributes`` (those the estimator has; e.g. ``feature_names_in_`` exists only
    when it was fitted on a DataFrame).
    """

    _persisted_attributes: tuple[str, ...] = ("classes_", "n_features_in_", "feature_names_in_")

    def _persist_state(self) -> ModelState:
        raise NotImplementedError

    def _restore_state(self, state: ModelState, device: str) -> None:
        raise NotImplementedError

    def _fitted_attributes(self) -> dict[str, Any]:
        return {
            name: getattr(self, name) for name in self._persisted_attributes if hasattr(self, name)
        }

    def _restore_attributes(self, attributes: dict[str, Any]) -> None:
        for name in self._persisted_attributes:
            if name in attributes:
                setattr(self, name, attributes[name])


class TorchPersistable(Persistable):
    """:class:`Persistable` for the torch estimators: ``module_``, ``train_result_``, ``device_``.

    The estimator builds its untrained network with ``_build_module(n_features)`` (the same
    method ``fit`` uses, so a loaded model cannot differ in architecture); its weights are saved
    as the ``state_dict`` ``"module"``. Estimators with more networks (IMN's snapshot ensemble)
    add them with :meth:`_extra_tensors` / :meth:`_restore_extra_tensors`. Every torch
    estimator has an output count and, as a regressor, the target's standardisation.
    """

    _persisted_attributes = (
        *Persistable._persisted_attributes,
        "n_outputs_",
        "y_mean_",
        "y_scale_",
    )

    def _build_module(self, n_features: int) -> Any:
        raise NotImplementedError

    def _extra_tensors(self) -> dict[str, Any]:
        return {}

    def _restore_extra_tensors(self, tensors: dict[str, Any]) -> None:
        """Called after ``module_`` is restored."""

    def _persist_state(self) -> ModelState:
        attributes = {**self._fitted_attributes(), "train_result_": self.train_result_.to_dict()}
        tensors = {"module": self.module_.state_dict(), **self._extra_tensors()}
        return ModelState(attributes=attributes, tensors=tensors)

    def _restore_state(self, state: ModelState, device: str) -> None:
        from mesobench.models.device import resolve_device
        from mesobench.models.training import TrainResult

        self._restore_attributes(state.attributes)
        self.train_result_ = TrainResult.from_dict(state.attributes["train_result_"])
        self.device_ = resolve_device(device)
        self.module_ = self._load_module(state.tensors["module"])
        self._restore_extra_tensors(state.tensors)

    def _load_module(self, state_dict: dict[str, Any]) -> Any:
        """A network of these settings on ``device_`` holding ``state_dict``, in eval mode."""
        module = self._build_module(self.n_features_in_)
        module.load_state_dict(state_dict)
        return module.eval()


def is_supported(estimator: Any) -> bool:
    """Whether :func:`save_model` can save ``estimator`` (without pickle)."""
    return isinstance(estimator, Persistable)


def native_bytes(write: Callable[[Path], Any], name: str) -> bytes:
    """The bytes a library writes with ``write(path)`` (for APIs that only save to a file)."""
    with tempfile.TemporaryDirectory(prefix="mesobench-model-") as tmp:
        path = Path(tmp) / name
        write(path)
        return path.read_bytes()


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def save_model(estimator: Any, directory: str | Path) -> list[str]:
    """Save a fitted estimator into ``directory``; returns the names of the files written.

    Raises :class:`UnsupportedModelError` (nothing written) for an estimator with no
    pickle-free format, and ``sklearn.exceptions.NotFittedError`` for an unfitted one.
    """
    name = type(estimator).__name__
    if not is_supported(estimator):
        raise UnsupportedModelError(f"{name} has no pickle-free format")
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    cls_path = class_path(type(estimator))
    if not _inside_package(cls_path):
        raise UnsupportedModelError(f"{cls_path} is not a class of {PACKAGE}")
    state = estimator._persist_state()
    try:
        params = _to_json(estimator.get_params(deep=False))
        attributes = _to_json(state.attributes)
    except TypeError as exc:
        raise UnsupportedModelError(f"{name}: cannot save as JSON: {exc}") from exc
    for file_name in state.files:
        if file_name in (MANIFEST, WEIGHTS) or Path(file_name).name != file_name:
            raise ValueError(f"{name}: invalid weight file name {file_name!r}")

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if state.tensors is not None:
        import torch

        torch.save(state.tensors, directory / WEIGHTS)
        written.append(WEIGHTS)
    for file_name, data in state.files.items():
        (directory / file_name).write_bytes(data)
        written.append(file_name)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": cls_path,
        "params": params,
        "attributes": attributes,
        "weights": written.copy(),
        "libraries": _library_versions(),
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return [MANIFEST, *written]


def load_model(directory: str | Path, device: str = "cpu") -> Any:
    """Load a model saved by :func:`save_model`, with its weights on ``device``.

    The estimator's ``device`` parameter (where it has one) is set to ``device``. Refuses
    (:class:`ModelLoadError`) a manifest of another format or a newer version, a class outside
    ``mesobench.models`` (checked before anything else is read), and a ``weights.pt`` holding
    anything but tensors and plain containers (``torch.load(weights_only=True)``).
    """
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read the model manifest {manifest_path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelLoadError(f"{manifest_path} is not a {FORMAT} manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelLoadError(
            f"{manifest_path}: format version {version!r} is not supported (this mesobench "
            f"reads versions up to {FORMAT_VERSION}); update mesobench"
        )
    cls = _model_class(manifest.get("class"))
    params = dict(_from_json(manifest.get("params") or {}))
    accepted = inspect.signature(cls).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ModelLoadError(
            f"{cls.__name__} has no parameter(s) {unknown} (saved by another version?)"
        )
    if "device" in accepted:
        params["device"] = device
    weights = list(manifest.get("weights") or [])
    for file_name in weights:
        if not isinstance(file_name, str) or Path(file_name).name != file_name:
            raise ModelLoadError(f"{manifest_path}: invalid weight file name {file_name!r}")
    tensors = None
    if WEIGHTS in weights:
        tensors = _load_tensors(directory / WEIGHTS, device)
    files = {name: (directory / name).read_bytes() for name in weights if name != WEIGHTS}
    estimator = cls(**params)
    state = ModelState(_from_json(manifest.get("attributes") or {}), tensors, files)
    estimator._restore_state(state, device)
    return estimator


# ---- helpers ----------------------------------------------------------------------------------


def _inside_package(path: str) -> bool:
    return path.startswith(PACKAGE + ".")


def _model_class(path: Any) -> type:
    """The class named by the manifest, only if it is a :class:`Persistable` of mesobench.models."""
    if not isinstance(path, str) or not _inside_package(path):
        raise ModelLoadError(
            f"refusing to load class {path!r}: only classes of the {PACKAGE} package are loaded"
        )
    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(f"refusing to load class {path!r}: {exc}") from exc
    cls = getattr(module, name, None)
    if not (
        inspect.isclass(cls)
        and cls.__module__ == module_name
        and cls.__qualname__ == name
        and issubclass(cls, Persistable)
        and cls._restore_state is not Persistable._restore_state
    ):
        raise ModelLoadError(
            f"refusing to load class {path!r}: not a savable model class defined in {module_name}"
        )
    return cls


def _load_tensors(path: Path, device: str) -> Any:
    import pickle

    import torch

    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"refusing {path}: it holds more than tensors and plain containers "
            f"(read with torch.load(weights_only=True)): {exc}"
        ) from exc


def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        with suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def _to_json(obj: Any) -> Any:
    """Plain JSON values; NumPy arrays become ``{"__ndarray__": list, "dtype": str}``."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biufUO":
            raise TypeError(f"arrays of dtype {obj.dtype} are not supported")
        return {_ARRAY: _to_json(obj.tolist()), "dtype": str(obj.dtype), "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return _to_json(obj.item())
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"dict key {key!r} is not a string")
            out[key] = _to_json(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"{type(obj).__name__} value {obj!r} is not JSON")


def _from_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        if _ARRAY in obj:
            dtype = np.dtype(obj["dtype"])
            if dtype.kind not in "biufUO":
                raise ModelLoadError(f"array dtype {dtype} is not supported")
            return np.asarray(obj[_ARRAY], dtype=dtype).reshape(obj["shape"])
        return {key: _from_json(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_from_json(v) for v in obj]
    return obj
