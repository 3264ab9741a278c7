"""Prediction metrics as the benchmark protocol defines them (docs/running.md#prediction-metrics).

Multiclass AUROC is computed per class (one-vs-rest) and per pair of classes (one-vs-one,
Hand & Till 2001) over the classes *present in the test fold*: scikit-learn refuses a test fold
where a class is absent, which happens on small CC18 folds. The macro OvR mean is the headline
``auroc``; ``auroc_ovo_macro`` matches the IMN paper and ``auroc_ovr_weighted`` the AutoML
benchmark. With every class present the numbers equal scikit-learn's (tested).

:func:`ovr_macro_auroc` is the same OvR mean in one vectorised pass; the torch models use it to
early-stop on a validation split every epoch.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

_EPS = 1e-15


def ovr_aurocs(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """One-vs-rest AUROC of every class of integer labels ``y`` against ``scores`` (n, C).

    Rank-based (Mann–Whitney U, ties averaged: equal to ``roc_auc_score``), all classes in one
    pass. A class absent from ``y`` (or the only one present) gets NaN. For C = 1 the single
    column scores the positive class of a binary problem.
    """
    y = np.asarray(y)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[1] == 1:
        positives = (y == 1)[:, None]
    else:
        positives = y[:, None] == np.arange(scores.shape[1])[None, :]
    n_pos = positives.sum(axis=0)
    n_neg = len(y) - n_pos
    out = np.full(scores.shape[1], np.nan)
    defined = (n_pos > 0) & (n_neg > 0)
    if defined.any():
        ranks = rankdata(scores[:, defined], axis=0)
        pos, neg = n_pos[defined], n_neg[defined]
        u = (ranks * positives[:, defined]).sum(axis=0) - pos * (pos + 1) / 2
        out[defined] = u / (pos * neg)
    return out


def ovr_macro_auroc(y: np.ndarray, scores: np.ndarray) -> float:
    """Mean of :func:`ovr_aurocs` over the classes present in ``y``; NaN with fewer than two.

    A small validation split that misses a rare class still gets a score.
    """
    per_class = ovr_aurocs(y, scores)
    defined = per_class[~np.isnan(per_class)]
    return float(defined.mean()) if len(defined) else float("nan")


def _ovo_macro(y: np.ndarray, proba: np.ndarray, present: np.ndarray) -> float:
    scores = []
    for a, b in combinations(present, 2):
        mask = (y == a) | (y == b)
        a_vs_b = roc_auc_score(y[mask] == a, proba[mask, a])
        b_vs_a = roc_auc_score(y[mask] == b, proba[mask, b])
        scores.append((a_vs_b + b_vs_a) / 2)
    return float(np.mean(scores))


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Metrics for integer labels ``0..C-1`` and a probability matrix of shape ``(n, C)``.

    Binary tasks score class 1 (the task's second class label, as OpenML does). Metrics that are
    undefined on this fold (AUROC with one class present) are left out rather than faked.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    n_classes = proba.shape[1]
    pred = proba.argmax(axis=1)
    clipped = np.clip(proba, _EPS, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    out = {
        "accuracy": float(accuracy_score(y_true, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, pred)),
        "log_loss": float(log_loss(y_true, clipped, labels=np.arange(n_classes))),
    }
    present = np.unique(y_true)
    if len(present) < 2:
        return out
    if n_classes == 2:
        auc = float(roc_auc_score(y_true == 1, proba[:, 1]))
        out.update(auroc=auc, auroc_ovo_macro=auc, auroc_ovr_weighted=auc)
        return out
    per_class = ovr_aurocs(y_true, proba)[present]
    prevalence = np.array([(y_true == c).mean() for c in present])
    out["auroc"] = float(per_class.mean())
    out["auroc_ovr_weighted"] = float((per_class * prevalence).sum() / prevalence.sum())
    out["auroc_ovo_macro"] = _ovo_macro(y_true, proba, present)
    return out


def regression_metrics(y_true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    mse = float(mean_squared_error(y_true, pred))
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(mean_absolute_error(y_true, pred)),
        "r2": float(r2_score(y_true, pred)),
    }
