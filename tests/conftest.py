"""Shared fixtures: the offline OpenML cache, a throw-away MLflow store, and the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def openml_cache() -> Path:
    """A writable openml-python cache holding the cached CC18 tasks (CI sets OPENML_CACHE_DIR)."""
    path = os.environ.get("OPENML_CACHE_DIR")
    if not path or not Path(path, "org", "openml").is_dir():
        pytest.skip("OPENML_CACHE_DIR is not set to an openml cache (see README, 'Offline data')")
    return Path(path)


@pytest.fixture
def store(tmp_path: Path) -> str:
    """Tracking URI of an empty SQLite MLflow store."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def run_cli(module: str, *overrides: str, tmp_path: Path, timeout: int = 600):
    """Run ``python -m <module> <overrides>`` like a user would; returns the CompletedProcess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def runner(*overrides: str, store: str, tmp_path: Path, multirun: bool = False):
    """The runner with a temporary store and output directories."""
    args = ["-m"] if multirun else []
    args += [
        *overrides,
        f"tracking.uri={store}",
        f"tracking.artifact_location={tmp_path / 'artifacts'}",
        f"hydra.run.dir={tmp_path / 'outputs' / 'run'}",
        f"hydra.sweep.dir={tmp_path / 'outputs' / 'sweep'}",
    ]
    return run_cli("mesobench.run", *args, tmp_path=tmp_path)


def stored_runs(store: str, experiment: str = "mesobench", *, parents: bool = False) -> list:
    """The benchmark runs of ``experiment`` in the store (with ``parents``: also the sweeps'
    parent runs); empty when the experiment does not exist yet."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return [r for r in runs if parents or "mesobench.sweep_parent" not in r.data.tags]


def runs_after(*overrides: str, store: str, tmp_path: Path, multirun: bool = False) -> list:
    """The runner, which must exit 0, then the store's runs.

    A failing *run* is recorded FAILED and the process still exits 0, so a non-zero exit is a
    harness bug: the assertion shows the end of stderr.
    """
    proc = runner(*overrides, store=store, tmp_path=tmp_path, multirun=multirun)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return stored_runs(store)


@pytest.fixture(scope="module")
def server():
    """A PostgreSQL-backed MLflow tracking server on loopback (scripts/mlflow_server.py), one
    per test module; skips, saying why, where PostgreSQL is not installed."""
    launcher = load_script("mlflow_server")
    try:
        launcher.pg_bin("initdb")
    except SystemExit as exc:
        pytest.skip(f"PostgreSQL is not installed here: {exc}")
    if shutil.which("runuser") is None:
        pytest.skip("runuser is missing (needed to run PostgreSQL as a non-root user)")
    # not under pytest's private tmp dir: PostgreSQL runs as the `postgres` user when we are root
    root = Path(tempfile.mkdtemp(prefix="mesobench-server-"))
    root.chmod(0o755)
    servers = launcher.start(root, pg_port=free_port(), port=free_port())
    yield servers
    servers.stop()
    shutil.rmtree(root, ignore_errors=True)


def load_script(name: str):
    """Import ``scripts/<name>.py`` as a module (scripts are not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_key_of(cfg) -> str:
    """The run key the runner computes for a composed config (``identity.run_key``)."""
    from omegaconf import OmegaConf

    from mesobench.config import identity

    return identity.run_key(OmegaConf.to_container(cfg, resolve=True))


def binary_interaction_task():
    """A seeded logistic problem with an interaction: 400 training and 200 test rows, 5 features."""
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5)).astype(np.float32)
    logit = X @ np.array([1.5, -1.0, 0.5, 0.0, 0.0]) + 0.5 * X[:, 0] * X[:, 1]
    y = (rng.random(600) < 1 / (1 + np.exp(-logit))).astype(int)
    return X[:400], y[:400], X[400:], y[400:]


def composed(*overrides: str, primary: str = "config", hydra: bool = False):
    """``conf/<primary>.yaml`` composed with ``overrides`` as Hydra composes it for the runner
    (``"config"``) or the aggregator (``"aggregate"``): an unresolved DictConfig, with the
    ``hydra`` node when ``hydra`` is true (launcher and sweeper settings)."""
    from hydra import compose, initialize_config_dir

    from mesobench.config.paths import conf_dir, register_resolvers

    register_resolvers()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return compose(primary, overrides=list(overrides), return_hydra_config=hydra)


def protocol(*overrides: str, **fields):
    """The runner's :class:`~mesobench.protocol.settings.Protocol` for a config composed with
    ``overrides`` (e.g. ``"fidelity.enabled=false"``), with ``fields`` replaced."""
    from dataclasses import replace

    from mesobench.config.paths import compose_config
    from mesobench.protocol.settings import Protocol

    return replace(Protocol.from_config(compose_config(*overrides)), **fields)


CLI_HELPERS = ("runner(", "run_cli(")
"""A test that calls these starts the real command line (a fresh Python, Hydra, MLflow)."""
CLI_FIXTURES = {"swept"}  # fixtures that run a sweep through the command line


def pytest_collection_modifyitems(config, items):
    """Mark every test that goes through the command line ``slow``, so ``make test-fast``
    (``-m "not slow"``) is the in-process unit loop; ``make test`` runs everything."""
    import inspect

    for item in items:
        function = getattr(item, "function", None)
        try:
            source = inspect.getsource(function) if function else ""
        except (OSError, TypeError):
            source = ""
        spawns = any(helper in source for helper in CLI_HELPERS)
        if spawns or CLI_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
