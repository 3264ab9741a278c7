"""Where the checkout, its configs and its default stores live.

mesobench is run from a checkout (``pip install -e .``): configs in ``conf/``, the default MLflow
store ``mlflow.db`` and ``results/`` sit at the repository root, wherever the command is started
from. ``MESOBENCH_ROOT`` moves all of them (e.g. to a scratch disk on a cluster).
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def repo_root() -> Path:
    """The directory holding ``conf/`` (``MESOBENCH_ROOT`` overrides the checkout)."""
    return Path(os.environ.get("MESOBENCH_ROOT", _PACKAGE_ROOT)).resolve()


def conf_dir() -> Path:
    return repo_root() / "conf"


def register_resolvers() -> None:
    """Resolvers used by conf/: ``${mesobench_root:}`` is the repository root."""
    if not OmegaConf.has_resolver("mesobench_root"):
        OmegaConf.register_new_resolver("mesobench_root", lambda: str(repo_root()))
