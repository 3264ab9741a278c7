"""Fit one estimator on one task fold and score it: the runner's work, without MLflow.

Data flows one way: raw fold → validation split (training fold only) → preprocessing fitted on
the fitting part only → fit → predict on the test fold → metrics. Timings and peak memory are
measured around fit and predict separately.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mesobench.data import FoldData, Preprocessor, validation_split
from mesobench.errors import DataError
from mesobench.estimators import accepts
from mesobench.metrics import classification_metrics, regression_metrics
from mesobench.resources import measure

log = logging.getLogger(__name__)


@dataclass
class FoldOutcome:
    metrics: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)  # facts about the run (sizes, dropped...)
    notes: list[str] = field(default_factory=list)  # things a reader of the run should know


def align_proba(proba: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities in the task's full class order; classes unseen in training get 0."""
    proba = np.asarray(proba, dtype=np.float64)
    classes = np.asarray(classes).astype(np.int64)
    if proba.shape[1] == n_classes and np.array_equal(classes, np.arange(n_classes)):
        return proba
    full = np.zeros((proba.shape[0], n_classes))
    full[:, classes] = proba
    return full


def _take(X, idx):
    return X.iloc[idx] if hasattr(X, "iloc") else X[idx]


def evaluate_fold(
    data: FoldData,
    estimator: Any,
    *,
    preprocessing: dict[str, Any],
    validation: dict[str, Any],
    seed: int,
    cuda: bool = False,
) -> FoldOutcome:
    kind = data.task.kind
    notes: list[str] = []
    X_fit, y_fit = data.X_train, data.y_train
    uses_validation = accepts(estimator.fit, "eval_set")
    X_val = y_val = None
    if uses_validation:
        if data.X_val is not None:
            X_val, y_val = data.X_val, data.y_val
        else:
            fit_idx, val_idx = validation_split(
                y_fit, validation["fraction"], seed, stratify=kind != "regression"
            )
            X_val, y_val = _take(X_fit, val_idx), y_fit[val_idx]
            X_fit, y_fit = _take(X_fit, fit_idx), y_fit[fit_idx]
    if len(y_fit) == 0:
        raise DataError(f"task {data.task.name} fold {data.fold}: the training fold is empty")

    prep = Preprocessor(**preprocessing, random_state=seed)
    # fit_transform, not fit + transform: target encoding gives the fitting rows cross-fitted
    # codes, so their own labels do not leak into their features.
    Xf = prep.fit_transform(X_fit, y_fit, categorical=data.categorical)
    Xt = prep.transform(data.X_test)
    fit_kwargs = {"eval_set": (prep.transform(X_val), y_val)} if uses_validation else {}
    if prep.dropped_columns_:
        notes.append(
            "dropped columns: "
            + "; ".join(f"{c} ({why})" for c, why in prep.dropped_columns_.items())
        )

    if kind != "regression":
        absent = sorted(set(range(data.n_classes)) - set(np.unique(y_fit).tolist()))
        if absent:
            names = [data.task.classes[c] for c in absent]
            notes.append(f"classes absent from the training data: {names} (scored as p=0)")
        if len(set(np.unique(data.y_test).tolist())) < 2:
            notes.append("test fold holds a single class: AUROC is undefined and not logged")

    with measure(cuda=cuda) as fit_usage:
        estimator.fit(Xf, y_fit, **fit_kwargs)
    with measure(cuda=cuda) as predict_usage:
        if kind == "regression":
            pred = np.asarray(estimator.predict(Xt), dtype=np.float64)
        else:
            proba = estimator.predict_proba(Xt)
    if kind == "regression":
        metrics = regression_metrics(data.y_test, pred)
    else:
        full = align_proba(proba, estimator.classes_, data.n_classes)
        if not np.all(np.isfinite(full)):
            raise DataError(
                f"{type(estimator).__name__} predicted non-finite probabilities on the test fold"
            )
        metrics = classification_metrics(data.y_test, full)

    metrics.update(
        fit_seconds=fit_usage.seconds,
        predict_seconds=predict_usage.seconds,
        peak_rss_mb=max(fit_usage.peak_rss_mb, predict_usage.peak_rss_mb),
    )
    if fit_usage.peak_cuda_mb is not None:
        metrics["peak_cuda_mb"] = max(fit_usage.peak_cuda_mb, predict_usage.peak_cuda_mb or 0.0)
    params = {
        "n_fit": len(y_fit),
        "n_val": 0 if y_val is None else len(y_val),
        "n_test": len(data.y_test),
        "n_features_in": data.X_train.shape[1],
        "n_features_model": prep.n_features_out_,
    }
    return FoldOutcome(metrics=metrics, params=params, notes=notes)
