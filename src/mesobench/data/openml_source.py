"""OpenML tasks with their official train/test splits, offline-safe.

Cache directory: explicit argument > environment variable ``OPENML_CACHE_DIR`` > openml's own
default. openml-python writes pickle files next to the data, so the directory must be writable;
parallel workers take a file lock per task while loading.

Before openml is asked for a task, the cache is checked for the task's files. A task that is not
cached fails fast with :class:`TaskNotAvailableError` when offline (``offline="true"``), or when
``offline="auto"`` and the OpenML server cannot be reached within a few seconds. openml's retry
policy is set to a single try, so nothing waits in retry loops.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from mesobench.data.fold import FoldData, TaskInfo
from mesobench.data.preprocess import is_categorical_dtype
from mesobench.errors import ConfigError, DataError, TaskNotAvailableError

log = logging.getLogger(__name__)

OFFLINE_MODES = ("auto", "true", "false")
REACHABILITY_TIMEOUT_S = 3.0
LOCK_DIR_NAME = ".mesobench-locks"


def normalize_offline(offline: str | bool | None) -> str:
    """``"auto"``, ``"true"`` or ``"false"`` from a bool or a (case-insensitive) string."""
    if offline is None:
        return "auto"
    if isinstance(offline, bool):
        return "true" if offline else "false"
    value = str(offline).strip().lower()
    aliases = {
        "1": "true",
        "yes": "true",
        "on": "true",
        "0": "false",
        "no": "false",
        "off": "false",
    }
    value = aliases.get(value, value)
    if value not in OFFLINE_MODES:
        raise ConfigError(f"offline must be one of auto, true, false (or a bool); got {offline!r}")
    return value


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Root cache directory: ``cache_dir`` > ``$OPENML_CACHE_DIR`` > openml's default."""
    if cache_dir:
        return Path(os.path.expanduser(str(cache_dir))).resolve()
    env = os.environ.get("OPENML_CACHE_DIR")
    if env:
        return Path(os.path.expanduser(env)).resolve()
    import openml

    return Path(openml.config.get_config_as_dict()["cachedir"]).expanduser().resolve()


def _configure_openml(root: Path) -> Path:
    """Point openml at ``root``, single-try retries; return its server-specific cache dir."""
    import openml

    openml.config.set_root_cache_directory(root)
    openml.config.set_retry_policy("human", n_retries=1)
    return Path(openml.config.get_cache_directory())


def _server_host() -> tuple[str, int]:
    import openml

    url = urlparse(openml.config.server)
    return url.hostname or "www.openml.org", url.port or 443


_reachability: dict[tuple[str, int], tuple[float, bool]] = {}


def server_reachable(
    host: str = "www.openml.org", port: int = 443, timeout: float = REACHABILITY_TIMEOUT_S
) -> bool:
    """Whether ``https://host:port/`` answers an HTTP request within ``timeout`` seconds.

    A real HTTPS request (with certificate verification and the environment's proxy settings,
    as openml's own requests) rather than a bare TCP connect, because intercepting proxies
    accept any TCP connection. DNS lookups are not covered by request timeouts, so the attempt
    runs in a daemon thread that is abandoned after ``timeout``. The answer is remembered for
    60 s.
    """
    key = (host, port)
    cached = _reachability.get(key)
    if cached and time.monotonic() - cached[0] < 60.0:
        return cached[1]
    result: list[bool] = []

    def attempt() -> None:
        import requests

        try:
            requests.head(f"https://{host}:{port}/", timeout=timeout, allow_redirects=False)
            result.append(True)
        except (requests.exceptions.RequestException, OSError):
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True, name="openml-reachability")
    thread.start()
    thread.join(timeout)
    ok = bool(result and result[0])
    _reachability[key] = (time.monotonic(), ok)
    return ok


def _dataset_id_from_task_xml(task_xml: Path) -> int | None:
    match = re.search(r"<oml:data_set_id>\s*(\d+)\s*</oml:data_set_id>", task_xml.read_text())
    return int(match.group(1)) if match else None


def missing_cache_files(server_cache: Path, task_id: int) -> list[Path]:
    """Files a task needs for offline loading that are absent from the cache (empty = cached).

    Checks the task description and splits and the dataset's description, feature list and
    data file (any of the formats openml writes).
    """
    task_dir = server_cache / "tasks" / str(task_id)
    task_xml = task_dir / "task.xml"
    if not task_xml.is_file():
        return [task_xml]
    missing = []
    if not any((task_dir / f).is_file() for f in ("datasplits.arff", "datasplits.pkl.py3")):
        missing.append(task_dir / "datasplits.arff")
    dataset_id = _dataset_id_from_task_xml(task_xml)
    if dataset_id is None:
        return [*missing, task_xml]
    ds_dir = server_cache / "datasets" / str(dataset_id)
    for options in (
        ("description.xml",),
        ("features.xml", "features.xml.pkl"),
        ("dataset.arff", "dataset.pq", "dataset.pkl.py3"),
    ):
        if not any((ds_dir / f).is_file() for f in options):
            missing.append(ds_dir / options[0])
    return missing


def _not_available(task_label: str, root: Path, why: str) -> TaskNotAvailableError:
    return TaskNotAvailableError(
        f"OpenML task {task_label} is not available: {why}. Cache searched: {root}. "
        "To fix: connect to the internet so openml can download it, or set OPENML_CACHE_DIR "
        "(or data.openml_cache_dir=...) to a writable openml cache directory that holds "
        "this task."
    )


@dataclass(frozen=True)
class OpenMLTaskData:
    """A loaded OpenML task: full table, label codes and official splits."""

    info: TaskInfo
    X: pd.DataFrame
    y: np.ndarray
    categorical: tuple[bool, ...]
    splits: tuple[tuple[np.ndarray, np.ndarray], ...]  # (train, test) per fold, repeat 0

    @property
    def n_folds(self) -> int:
        return len(self.splits)


def _connection_errors() -> tuple[type[BaseException], ...]:
    import openml.exceptions
    import requests

    return (
        requests.exceptions.RequestException,
        openml.exceptions.OpenMLServerError,
        ConnectionError,
        TimeoutError,
        socket.gaierror,
    )


@functools.lru_cache(maxsize=4)
def _load_task_cached(root: str, task_id: int, name: str | None) -> OpenMLTaskData:
    import openml
    from filelock import FileLock

    label = f"{name} (task id {task_id})" if name else f"task id {task_id}"
    lock_dir = Path(root) / LOCK_DIR_NAME
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_dir / f"task-{task_id}.lock"))
        lock.acquire()
    except OSError as e:
        raise ConfigError(
            f"the OpenML cache directory {root} is not writable ({e}); openml writes files "
            "beside the data, so point OPENML_CACHE_DIR (or data.openml_cache_dir=...) at a "
            "writable copy"
        ) from e
    try:
        task = openml.tasks.get_task(task_id, download_splits=True)
        dataset = task.get_dataset()
        X, y, cat_indicator, _ = dataset.get_data(
            target=task.target_name, dataset_format="dataframe"
        )
        n_repeats, n_folds, _ = task.get_split_dimensions()
        splits = tuple(
            tuple(
                np.asarray(a, dtype=np.int64)
                for a in task.get_train_test_split_indices(fold=k, repeat=0, sample=0)
            )
            for k in range(n_folds)
        )
    except _connection_errors() as e:
        raise _not_available(label, Path(root), f"openml could not fetch it ({e})") from e
    finally:
        lock.release()

    if not isinstance(X, pd.DataFrame) or y is None:
        raise DataError(f"OpenML {label}: expected a DataFrame and a target, got {type(X)}")
    X = X.reset_index(drop=True)
    y = pd.Series(y).reset_index(drop=True)
    categorical = tuple(
        bool(c) or is_categorical_dtype(dt)
        for c, dt in zip(cat_indicator or [False] * X.shape[1], X.dtypes, strict=True)
    )
    task_type = getattr(task.task_type_id, "name", str(task.task_type_id))
    if "CLASSIFICATION" in task_type:
        classes = tuple(str(c) for c in task.class_labels)
        y_str = np.asarray(y, dtype=object).astype(str)  # missing labels become "nan"
        codes = pd.Index(classes).get_indexer(y_str).astype(np.int64)
        if (codes < 0).any():
            bad = sorted(set(y_str[codes < 0].tolist()))
            raise DataError(f"OpenML {label}: labels {bad[:10]} are not among {classes}")
        kind = "binary" if len(classes) == 2 else "multiclass"
        y_arr = codes
    elif "REGRESSION" in task_type:
        classes, kind = None, "regression"
        y_arr = y.to_numpy(dtype=np.float64)
    else:
        raise ConfigError(
            f"OpenML {label} is a {task_type} task; only supervised ones are supported"
        )
    info = TaskInfo(
        name=name or dataset.name,
        source="openml",
        kind=kind,
        classes=classes,
        task_id=task_id,
        dataset_id=int(task.dataset_id),
        target=str(task.target_name),
    )
    log.info("loaded OpenML %s: %d rows, %d features, %d folds", label, *X.shape, n_folds)
    return OpenMLTaskData(info, X, y_arr, categorical, splits)


def load_openml_task(
    task_id: int,
    *,
    name: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: str | bool = "auto",
) -> OpenMLTaskData:
    """Load an OpenML task (cached in-process per cache dir and task id).

    Raises:
        TaskNotAvailableError: The task is not cached and cannot be downloaded.
        ConfigError: The cache directory is not writable, or ``offline`` is invalid.
    """
    offline = normalize_offline(offline)
    try:
        task_id = int(task_id)
    except (TypeError, ValueError):
        raise ConfigError(
            f"task.task_id must be an integer OpenML task id, got {task_id!r}"
        ) from None
    root = resolve_cache_dir(cache_dir)
    server_cache = _configure_openml(root)
    label = f"{name} (task id {task_id})" if name else f"task id {task_id}"
    missing = missing_cache_files(server_cache, task_id)
    if missing:
        what = f"not in the local cache (missing {missing[0]})"
        if offline == "true":
            raise _not_available(label, root, f"{what} and offline mode is on")
        if offline == "auto":
            host, port = _server_host()
            if not server_reachable(host, port):
                raise _not_available(label, root, f"{what} and {host}:{port} is unreachable")
        log.info("OpenML %s is %s; downloading it", label, what)
    return _load_task_cached(str(root), task_id, name)


def load_openml_fold(
    task_id: int,
    fold: int,
    *,
    name: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: str | bool = "auto",
) -> FoldData:
    """Fold ``fold`` (repeat 0) of an OpenML task's official estimation procedure."""
    data = load_openml_task(task_id, name=name, cache_dir=cache_dir, offline=offline)
    if not 0 <= fold < data.n_folds:
        raise ConfigError(
            f"fold {fold} is out of range for OpenML {data.info.name} (task id {task_id}): "
            f"valid folds are 0..{data.n_folds - 1}"
        )
    train_idx, test_idx = data.splits[fold]
    return FoldData(
        task=data.info,
        fold=fold,
        X_train=data.X.iloc[train_idx].reset_index(drop=True),
        y_train=data.y[train_idx],
        X_test=data.X.iloc[test_idx].reset_index(drop=True),
        y_test=data.y[test_idx],
        categorical=list(data.categorical),
        train_index=train_idx.copy(),
        test_index=test_idx.copy(),
    )
