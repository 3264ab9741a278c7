"""The runs table: the contract between the store that records runs and the report that reads them.

One row per run. Its identity columns (:data:`IDENTITY_COLUMNS`) are declared here once; every
other column is a metric. The store builds the table from MLflow (:mod:`mesobench.store.runs`)
and a report writes it as ``results/<report>/runs.csv``; a committed table is read back here, so
a report regenerates with no store at all. Both ingest paths select runs with the one function
:func:`select_runs`, so a filter means the same whichever source the runs come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mesobench.errors import MesobenchError

#: The runner's tags that come back as run columns.
RUN_TAGS = (
    "model",
    "task",
    "fold",
    "seed",
    "sweep_id",
    "suite",
    "config_hash",
    "error",
    "error_type",
    "device",
    "notes",
)
#: Every experiment (suite) the run counts in, as ``,a,b,`` (a run made by one experiment and
#: reused by another, same run key, counts in both).
SUITES_COLUMN = "suites"
#: Run column with the params that identify a configuration (JSON), see
#: :func:`mesobench.report.labels.configuration`.
CONFIG_COLUMN = "configuration"
#: The model's name before configurations were told apart (``model`` may read ``imn[...]``).
MODEL_NAME_COLUMN = "model_name"
#: What identifies a run and where it came from, in the table's column order; metrics follow,
#: then :data:`MODEL_NAME_COLUMN`, added when the configurations are labelled.
IDENTITY_COLUMNS = (
    "run_id",
    "status",
    "start_time",
    "run_key",
    "key_version",
    "git_commit",
    "git_dirty",
    *RUN_TAGS,
    SUITES_COLUMN,
    CONFIG_COLUMN,
)
#: Columns that are bookkeeping, not metrics.
NON_METRICS = frozenset((*IDENTITY_COLUMNS, MODEL_NAME_COLUMN))
#: Identity columns held as text, as MLflow returns tags ("false" stays "false").
TEXT_COLUMNS = tuple(
    c for c in (*IDENTITY_COLUMNS, MODEL_NAME_COLUMN) if c not in ("fold", "seed", "start_time")
)


@dataclass(frozen=True)
class RunFilter:
    """Which runs a report reads (``filters.*`` of ``conf/aggregate.yaml``)."""

    sweep_id: str | None = None
    suite: str | None = None  # an experiment: the runs it made or reused
    models: list[str] | None = None  # model names, before configurations are labelled apart
    tasks: list[str] | None = None
    tags: dict[str, Any] = field(default_factory=dict)  # {column: value or [values]}


def allowed_values(value: Any) -> list[str]:
    """A tag filter's value(s) as the strings a tag or a runs-table column holds."""
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def select_runs(runs: pd.DataFrame, where: RunFilter | None, source: str) -> pd.DataFrame:
    """The rows of ``runs`` that ``where`` selects, with ``fold`` and ``seed`` as numbers.

    ``where.suite`` matches the experiment that made a run or one that reused it (its
    :data:`SUITES_COLUMN`); ``where.tags`` match columns of the same name, which ``source``
    must have.
    """
    where = where or RunFilter()
    keep = pd.Series(True, index=runs.index)
    if where.sweep_id:
        keep &= runs["sweep_id"].astype(str).eq(str(where.sweep_id))
    if where.suite:
        member = runs["suite"].astype(str).eq(str(where.suite))
        member |= runs[SUITES_COLUMN].fillna("").str.contains(f",{where.suite},", regex=False)
        keep &= member
    if where.models:
        names = runs[MODEL_NAME_COLUMN] if MODEL_NAME_COLUMN in runs else runs["model"]
        keep &= names.isin(list(where.models))
    if where.tasks:
        keep &= runs["task"].isin(list(where.tasks))
    for key, value in where.tags.items():
        if key not in runs:
            raise MesobenchError(f"filters.tags: {source} has no column {key!r}")
        keep &= runs[key].astype(str).isin(allowed_values(value))
    selected = runs[keep].copy()
    for column in ("fold", "seed"):
        selected[column] = pd.to_numeric(selected[column], errors="coerce")
    return selected.reset_index(drop=True)


def check_columns(runs: pd.DataFrame, source: str) -> None:
    """Refuse a table that lacks an identity column, naming the columns and the source."""
    missing = [c for c in (*IDENTITY_COLUMNS, MODEL_NAME_COLUMN) if c not in runs]
    if missing:
        raise MesobenchError(
            f"{source} is not a runs table: it lacks the columns {missing} (a report's runs.csv "
            "written by python -m mesobench.aggregate has them)"
        )


def read_runs_table(path: Path, where: RunFilter | None = None) -> pd.DataFrame:
    """The runs of a committed runs table (a report's ``runs.csv`` or ``.parquet``) that
    ``where`` selects; a missing file or column fails with what was expected."""
    if not path.is_file():
        raise MesobenchError(f"runs table {path} does not exist (runs=<a report's runs.csv>)")
    if path.suffix == ".parquet":
        runs = pd.read_parquet(path)
    else:
        runs = pd.read_csv(path, dtype=dict.fromkeys(TEXT_COLUMNS, str), keep_default_na=True)
    check_columns(runs, str(path))
    return select_runs(runs, where, str(path))
