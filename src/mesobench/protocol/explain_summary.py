"""Summaries of a model's local explanations that the runner logs, in the user's own columns.

Models explain in the units of their (preprocessed) input; a reader thinks in the original
table's columns. Global importance is the mean absolute impact |x_j · w_j(x)| over the test
rows (and over classes, for multiclass models), summed over the model features that come from
one original column (the one-hot columns of a categorical fold back into it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mesobench.models.explanation import Explanation


def global_importance(
    explanation: Explanation, X: np.ndarray, source_columns: list[str]
) -> pd.DataFrame:
    impact = np.abs(explanation.impact(X))
    per_feature = impact.mean(axis=(0, 2)) if impact.ndim == 3 else impact.mean(axis=0)
    frame = pd.DataFrame({"column": source_columns, "importance": per_feature})
    folded = frame.groupby("column", sort=False)["importance"].sum()
    total = folded.sum()
    out = folded.to_frame().assign(share=folded / total if total > 0 else 0.0)
    return out.sort_values("importance", ascending=False).reset_index()


def local_weights_sample(
    explanation: Explanation,
    feature_names: list[str],
    class_names: list[str] | None,
    rows: np.ndarray,
) -> pd.DataFrame:
    """Per-instance weights and intercept of the given test rows, one line per (row, class)."""
    w = np.asarray(explanation.weights)[rows]
    b = np.asarray(explanation.intercept)[rows]
    if w.ndim == 2:
        frame = pd.DataFrame(w, columns=feature_names)
        frame.insert(0, "row", rows)
        frame["intercept"] = b
        return frame
    n, _, c = w.shape
    names = class_names if class_names is not None else [str(k) for k in range(c)]
    frame = pd.DataFrame(w.transpose(0, 2, 1).reshape(n * c, -1), columns=feature_names)
    frame.insert(0, "class", np.tile(names, n))
    frame.insert(0, "row", np.repeat(rows, c))
    frame["intercept"] = b.reshape(n * c)
    return frame


def identity_error(explanation: Explanation, X: np.ndarray, output: np.ndarray) -> float:
    """Largest |(X·w).sum + b − model output|: 0 up to float error for a faithful explain()."""
    recon = explanation.output(X)
    output = np.asarray(output, dtype=np.float64).reshape(recon.shape)
    return float(np.max(np.abs(recon - output))) if recon.size else 0.0
