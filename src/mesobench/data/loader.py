"""``load_fold``: one entry point from a task config to a :class:`FoldData`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesobench.data.csv_source import load_csv_fold
from mesobench.data.fold import SOURCES, FoldData
from mesobench.data.openml_source import load_openml_fold, normalize_offline
from mesobench.data.synthetic import load_synthetic_fold
from mesobench.errors import ConfigError


def _plain(task_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict of the config; OmegaConf's mandatory ``???`` values stay the string ``???``."""
    try:
        from omegaconf import DictConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        DictConfig = ()  # noqa: N806
    if isinstance(task_cfg, DictConfig):
        return OmegaConf.to_container(task_cfg, resolve=True, throw_on_missing=False)
    if not isinstance(task_cfg, Mapping):
        raise ConfigError(f"task config must be a mapping, got {type(task_cfg).__name__}")
    return dict(task_cfg)


def load_fold(
    task_cfg: Mapping[str, Any],
    fold: int,
    *,
    openml_cache_dir: str | None = None,
    offline: str | bool = "auto",
) -> FoldData:
    """Load fold ``fold`` of the task described by ``task_cfg`` (the runner's ``cfg.task``).

    Dispatches on ``task_cfg["source"]``:

    - ``openml``: needs ``task_id``; the official split ``fold`` (repeat 0). ``openml_cache_dir``
      (else ``$OPENML_CACHE_DIR``, else openml's default) and ``offline`` (``"auto"``,
      ``"true"``, ``"false"`` or a bool) control where and whether it may download.
    - ``synthetic``: needs ``generator``; fold k is the data replicate drawn with seed
      ``base_seed + k``; includes a fixed validation set when ``n_val`` > 0, and the truth.
    - ``csv``: needs ``path`` and ``target``; seeded (stratified) K-fold.

    Raises:
        ConfigError: Unknown source, missing keys, fold out of range.
        TaskNotAvailableError: An OpenML task is neither cached nor downloadable.
        DataError: The data cannot be used as given.
    """
    cfg = _plain(task_cfg)
    if isinstance(fold, bool) or int(fold) != fold:
        raise ConfigError(f"fold must be an integer, got {fold!r}")
    fold = int(fold)
    offline = normalize_offline(offline)
    source = cfg.get("source")
    if source == "openml":
        if cfg.get("task_id") in (None, "???"):
            raise ConfigError(f"OpenML task config {cfg.get('name')!r} needs task_id")
        return load_openml_fold(
            cfg["task_id"],
            fold,
            name=cfg.get("name"),
            cache_dir=openml_cache_dir,
            offline=offline,
        )
    if source == "synthetic":
        return load_synthetic_fold(cfg, fold)
    if source == "csv":
        return load_csv_fold(cfg, fold)
    raise ConfigError(
        f"unknown task source {source!r} in task config {cfg.get('name')!r}; "
        f"expected one of {', '.join(SOURCES)}"
    )
