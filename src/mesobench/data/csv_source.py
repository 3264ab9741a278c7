"""User tables (CSV or Parquet) as tasks, with seeded K-fold cross-validation.

Task config keys (``conf/task/csv.yaml``): ``path`` and ``target`` (required), ``type``
(``auto`` | ``binary`` | ``multiclass`` | ``regression``), ``n_folds`` (5), ``cv_seed`` (0),
``categorical`` (optional list of column names forced categorical), ``name`` (optional).
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from mesobench.data.fold import FoldData, TaskInfo
from mesobench.data.preprocess import is_categorical_dtype
from mesobench.errors import ConfigError, DataError

log = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".tsv", ".tsv.gz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
TASK_TYPES = ("auto", "binary", "multiclass", "regression")
MAX_AUTO_CLASSES = 20  # an integer target with at most this many values is a class label


def _resolve_path(path: str) -> Path:
    p = Path(os.path.expanduser(str(path)))
    if not p.is_absolute():
        try:  # under Hydra, relative paths are relative to where the user started the run
            from hydra.core.hydra_config import HydraConfig
            from hydra.utils import to_absolute_path

            if HydraConfig.initialized():
                p = Path(to_absolute_path(str(p)))
        except ImportError:  # pragma: no cover - hydra is a dependency
            pass
    return p.resolve()


@functools.lru_cache(maxsize=4)
def _read_cached(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    name = path.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return pd.read_parquet(path)
    sep = "\t" if name.endswith((".tsv", ".tsv.gz")) else ","
    return pd.read_csv(path, sep=sep)


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV/TSV or Parquet file, chosen by its extension (cached per file version)."""
    p = _resolve_path(str(path))
    if not p.is_file():
        raise DataError(
            f"data file not found: {p} (from task.path={path!s}); "
            "give an existing CSV or Parquet file"
        )
    name = p.name.lower()
    if not name.endswith(CSV_SUFFIXES + PARQUET_SUFFIXES):
        raise DataError(
            f"cannot tell the format of {p}: use a file ending in one of "
            f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
        )
    stat = p.stat()
    try:
        df = _read_cached(str(p), stat.st_mtime_ns, stat.st_size)
    except (ValueError, OSError, pd.errors.ParserError, ImportError) as e:
        raise DataError(f"could not read {p}: {e}") from e
    return df.copy()


def _missing_column_error(what: str, column: str, columns: Sequence[str]) -> DataError:
    columns = [str(c) for c in columns]
    close = difflib.get_close_matches(str(column), columns, n=5, cutoff=0.5)
    ordered = close + [c for c in columns if c not in close]
    shown = ", ".join(repr(c) for c in ordered[:50])
    more = f", ... ({len(ordered) - 50} more)" if len(ordered) > 50 else ""
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return DataError(
        f"{what} {column!r} is not a column of the table.{hint} Available columns: {shown}{more}"
    )


def _infer_kind(y: pd.Series, requested: str, target: str) -> str:
    if requested not in TASK_TYPES:
        raise ConfigError(f"task.type must be one of {TASK_TYPES}, got {requested!r}")
    numeric = pd.api.types.is_numeric_dtype(y.dtype) and not pd.api.types.is_bool_dtype(y.dtype)
    if requested == "regression":
        if not numeric:
            raise DataError(
                f"target {target!r} has non-numeric values (dtype {y.dtype}) but task.type is "
                "regression; set task.type=auto or a classification type"
            )
        return "regression"
    n_unique = y.nunique()
    if requested == "auto":
        integral = numeric and bool(np.all(np.mod(y.to_numpy(dtype=np.float64), 1) == 0))
        if numeric and not (integral and n_unique <= MAX_AUTO_CLASSES):
            return "regression"
    if n_unique < 2:
        raise DataError(f"target {target!r} has a single value; nothing to predict")
    if requested == "binary" and n_unique != 2:
        raise DataError(f"task.type is binary but target {target!r} has {n_unique} distinct values")
    if requested == "multiclass" and n_unique == 2:
        log.warning("target %r has 2 classes; treating task.type=multiclass as binary", target)
    return "binary" if n_unique == 2 else "multiclass"


def _encode_labels(y: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer codes of y in sorted order of its values; class names as strings."""
    values = pd.unique(y.to_numpy(dtype=object))
    try:
        uniques = sorted(values.tolist())
    except TypeError:
        uniques = sorted(values.tolist(), key=str)
    codes = pd.Index(uniques).get_indexer(y.to_numpy(dtype=object)).astype(np.int64)
    names = tuple(str(u) for u in uniques)
    if len(set(names)) != len(names):
        raise DataError(f"target labels are not distinct as strings: {uniques}")
    return codes, names


def _required(task_cfg: Mapping[str, Any], key: str) -> Any:
    value = task_cfg.get(key)
    if value is None or value == "???" or value == "":
        raise ConfigError(
            f"the csv task needs task.{key}: run with task=csv task.path=<file> "
            "task.target=<column>"
        )
    return value


def load_table_task(
    task_cfg: Mapping[str, Any],
) -> tuple[TaskInfo, pd.DataFrame, np.ndarray, list[bool]]:
    """Read and type a CSV/Parquet task: (info, X, y, categorical flags). No folds yet."""
    path = str(_required(task_cfg, "path"))
    target = str(_required(task_cfg, "target"))
    df = read_table(path)
    if target not in df.columns:
        raise _missing_column_error("target column", target, list(df.columns))
    forced = task_cfg.get("categorical") or []
    if isinstance(forced, str):
        forced = [forced]
    for col in forced:
        if col not in df.columns or col == target:
            raise _missing_column_error(
                "categorical column", col, [c for c in df.columns if c != target]
            )

    missing_target = df[target].isna().to_numpy()
    if missing_target.any():
        log.warning(
            "dropping %d of %d rows with a missing target %r", missing_target.sum(), len(df), target
        )
        df = df.loc[~missing_target].reset_index(drop=True)
    if len(df) == 0:
        raise DataError(f"no rows left in {path}: the target {target!r} is missing everywhere")

    y_raw = df[target]
    X = df.drop(columns=[target])
    if X.shape[1] == 0:
        raise DataError(f"{path} has no feature columns besides the target {target!r}")
    kind = _infer_kind(y_raw, str(task_cfg.get("type") or "auto"), target)
    if kind == "regression":
        y = y_raw.to_numpy(dtype=np.float64)
        classes = None
        if not np.isfinite(y).all():
            raise DataError(f"target {target!r} has infinite values")
    else:
        y, classes = _encode_labels(y_raw)

    forced_set = {str(c) for c in forced}
    categorical = [
        str(col) in forced_set or is_categorical_dtype(X[col].dtype) for col in X.columns
    ]
    for col, is_cat in zip(list(X.columns), categorical, strict=True):
        if is_cat and not isinstance(X[col].dtype, pd.CategoricalDtype):
            X[col] = X[col].astype("category")

    name = task_cfg.get("name")
    if not name or name == "csv":
        name = f"csv:{Path(path).stem.split('.')[0]}"
    info = TaskInfo(name=str(name), source="csv", kind=kind, classes=classes, target=target)
    return info, X, y, categorical


def csv_fold_indices(
    y: np.ndarray, kind: str, n_folds: int, cv_seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) positions of each fold: stratified K-fold for classification (plain K-fold,
    with a logged warning, when a class has fewer than ``n_folds`` members), K-fold otherwise."""
    n = len(y)
    if n_folds < 2:
        raise ConfigError(f"task.n_folds must be at least 2, got {n_folds}")
    if n < n_folds:
        raise DataError(f"cannot make {n_folds} folds from {n} rows")
    dummy = np.zeros((n, 1))
    if kind != "regression":
        counts = np.bincount(y)
        if counts.min() >= n_folds:
            skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=cv_seed)
            return list(skf.split(dummy, y))
        log.warning(
            "a class has only %d member(s), fewer than n_folds=%d: folds are not stratified",
            counts.min(),
            n_folds,
        )
    return list(KFold(n_splits=n_folds, shuffle=True, random_state=cv_seed).split(dummy))


def load_csv_fold(task_cfg: Mapping[str, Any], fold: int) -> FoldData:
    """Fold ``fold`` of a CSV/Parquet task config (see the module docstring)."""
    info, X, y, categorical = load_table_task(task_cfg)
    n_folds = int(task_cfg.get("n_folds", 5) or 5)
    cv_seed = int(task_cfg.get("cv_seed", 0) or 0)
    if not 0 <= fold < n_folds:
        raise ConfigError(
            f"fold {fold} is out of range for {info.name}: valid folds are 0..{n_folds - 1} "
            f"(task.n_folds={n_folds})"
        )
    train_idx, test_idx = csv_fold_indices(y, info.kind, n_folds, cv_seed)[fold]
    return FoldData(
        task=info,
        fold=fold,
        X_train=X.iloc[train_idx].reset_index(drop=True),
        y_train=y[train_idx],
        X_test=X.iloc[test_idx].reset_index(drop=True),
        y_test=y[test_idx],
        categorical=categorical,
        train_index=np.asarray(train_idx, dtype=np.int64),
        test_index=np.asarray(test_idx, dtype=np.int64),
    )
