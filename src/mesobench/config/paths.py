"""Where the checkout, its configs and its default stores live.

mesobench is run from a checkout (``pip install -e .``): configs in ``conf/``, the default MLflow
store ``mlflow.db`` and ``results/`` sit at the repository root, wherever the command is started
from. ``MESOBENCH_ROOT`` moves all of them (e.g. to a scratch disk on a cluster).
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

_PACKAGE_ROOT = Path(__file__).resolve().parents[3]


def repo_root() -> Path:
    """The directory holding ``conf/`` (``MESOBENCH_ROOT`` overrides the checkout)."""
    return Path(os.environ.get("MESOBENCH_ROOT", _PACKAGE_ROOT)).resolve()


def conf_dir() -> Path:
    return repo_root() / "conf"


def register_resolvers() -> None:
    """Resolvers used by conf/: ``${mesobench_root:}`` is the repository root."""
    if not OmegaConf.has_resolver("mesobench_root"):
        OmegaConf.register_new_resolver("mesobench_root", lambda: str(repo_root()))


def compose_config(*overrides: str) -> dict:
    """The runner's config for ``overrides`` (e.g. ``"model=imn_fast"``), composed as the runner
    composes it (defaults lists, so inherited settings included) and resolved.

    For code that needs a config group option's effective values outside a run: the report
    names a model's variants by what differs from its config, the speed bench builds models from
    their configs. Works inside a running Hydra app (the aggregator) and outside one.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    if GlobalHydra.instance().is_initialized():
        cfg = compose("config", overrides=list(overrides))
    else:
        with initialize_config_dir(str(conf_dir()), version_base="1.3"):
            cfg = compose("config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)
