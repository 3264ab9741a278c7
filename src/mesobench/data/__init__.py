"""Data layer: tasks and folds (OpenML, synthetic, CSV), preprocessing, validation splits.

Typical use by the runner::

    fold = load_fold(cfg.task, cfg.fold, openml_cache_dir=..., offline="auto")
    tr, va = validation_split(fold.y_train, 0.2, seed, stratify=fold.task.kind != "regression")
    pre = Preprocessor(mode="neural")
    X_tr = pre.fit_transform(fold.X_train.iloc[tr], fold.y_train[tr], categorical=fold.categorical)
    X_te = pre.transform(fold.X_test)
"""

from mesobench.data.csv_source import load_csv_fold, read_table
from mesobench.data.fold import FoldData, TaskInfo
from mesobench.data.loader import load_fold
from mesobench.data.openml_source import load_openml_fold, load_openml_task
from mesobench.data.preprocess import Preprocessor
from mesobench.data.synthetic import SyntheticSample, generate, load_synthetic_fold
from mesobench.data.truth import GENERATORS, SyntheticTruth
from mesobench.data.validation import validation_split

__all__ = [
    "GENERATORS",
    "FoldData",
    "Preprocessor",
    "SyntheticSample",
    "SyntheticTruth",
    "TaskInfo",
    "generate",
    "load_csv_fold",
    "load_fold",
    "load_openml_fold",
    "load_openml_task",
    "load_synthetic_fold",
    "read_table",
    "validation_split",
]
