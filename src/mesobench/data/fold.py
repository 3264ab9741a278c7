"""What every data source hands to the runner: a task description and one train/test fold.

A :class:`FoldData` holds raw (unpreprocessed) features as a DataFrame, integer-coded labels
(classification) or float targets (regression), and per-column categorical flags. Preprocessing
is a separate step (:class:`mesobench.data.preprocess.Preprocessor`), fitted on the training fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mesobench.data.truth import SyntheticTruth

TASK_KINDS = ("binary", "multiclass", "regression")
SOURCES = ("openml", "synthetic", "csv")


@dataclass(frozen=True)
class TaskInfo:
    """Description of a prediction task, independent of the fold.

    Attributes:
        name: Task name as used on the command line, e.g. ``"credit-g"``, ``"synthetic/toy"``,
            ``"csv:mydata"``.
        source: ``"openml"``, ``"synthetic"`` or ``"csv"``.
        kind: ``"binary"``, ``"multiclass"`` or ``"regression"``.
        classes: Label names in code order (label code ``k`` is ``classes[k]``); ``None`` for
            regression. For OpenML this is ``task.class_labels``, so the positive class of a
            binary task is ``classes[1]``.
        task_id: OpenML task id, if any.
        dataset_id: OpenML dataset id, if any.
        target: Name of the target column, if any.
    """

    name: str
    source: str
    kind: str
    classes: tuple[str, ...] | None
    task_id: int | None = None
    dataset_id: int | None = None
    target: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"TaskInfo.kind must be one of {TASK_KINDS}, got {self.kind!r}")
        if self.source not in SOURCES:
            raise ValueError(f"TaskInfo.source must be one of {SOURCES}, got {self.source!r}")
        if (self.kind == "regression") != (self.classes is None):
            raise ValueError("TaskInfo.classes must be None exactly for regression tasks")
        if self.kind == "binary" and len(self.classes) != 2:
            raise ValueError(f"a binary task needs 2 classes, got {self.classes}")

    @property
    def is_classification(self) -> bool:
        return self.kind != "regression"

    @property
    def n_classes(self) -> int | None:
        return None if self.classes is None else len(self.classes)


@dataclass
class FoldData:
    """One train/test fold of a task, raw features.

    Attributes:
        task: The task this fold belongs to.
        fold: Fold number (for synthetic tasks: the data replicate).
        X_train, X_test: Raw features (index reset to 0..n-1).
        y_train, y_test: ``int64`` label codes (``classes[code]``) for classification,
            ``float64`` targets for regression.
        categorical: One flag per column of ``X_*``.
        X_val, y_val: A fixed validation set, only where the source defines one (the synthetic
            NIMO tasks); otherwise ``None`` and the runner splits one off the training fold.
        truth: Ground truth of a synthetic task (raw feature units), else ``None``.
        train_index, test_index: Row positions of the fold in the source table (OpenML's row
            order, the CSV file's rows after dropping missing targets); ``None`` for synthetic
            data.
    """

    task: TaskInfo
    fold: int
    X_train: pd.DataFrame
    y_train: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray
    categorical: list[bool]
    X_val: pd.DataFrame | None = None
    y_val: np.ndarray | None = None
    truth: SyntheticTruth | None = None
    train_index: np.ndarray | None = None
    test_index: np.ndarray | None = None

    def __post_init__(self) -> None:
        n_cols = self.X_train.shape[1]
        if len(self.categorical) != n_cols:
            raise ValueError(f"categorical has {len(self.categorical)} flags for {n_cols} columns")
        for part, X, y in (
            ("train", self.X_train, self.y_train),
            ("test", self.X_test, self.y_test),
            ("val", self.X_val, self.y_val),
        ):
            if X is None and y is None:
                continue
            if X is None or y is None or len(X) != len(y):
                raise ValueError(f"X_{part} and y_{part} do not match")
            if list(X.columns) != list(self.X_train.columns):
                raise ValueError(f"X_{part} has other columns than X_train")

    @property
    def n_classes(self) -> int | None:
        """Number of classes, ``None`` for regression."""
        return self.task.n_classes

    @property
    def feature_names(self) -> list[str]:
        return [str(c) for c in self.X_train.columns]

    @property
    def has_validation(self) -> bool:
        """True when the source defines a fixed validation set."""
        return self.X_val is not None
