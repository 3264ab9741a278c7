"""The common currency of local explanations: a local linear model per instance.

Every model with local attributions returns an :class:`Explanation` from ``explain(X)`` such that

    output(X) = sum_j X[:, j] * weights[:, j] + intercept

holds exactly (to float precision), where ``output`` is the model's own output at ``X``: the
prediction for regression, the logit (``decision_function``) for classification. Binary
classifiers have one logit (weights ``(n, F)``), multiclass ones a logit per class
(weights ``(n, F, C)``, intercept ``(n, C)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Explanation:
    weights: np.ndarray  # (n, F) or (n, F, C)
    intercept: np.ndarray  # (n,) or (n, C)

    def __post_init__(self) -> None:
        w, b = np.asarray(self.weights), np.asarray(self.intercept)
        if w.ndim not in (2, 3) or b.shape != (w.shape[0], *w.shape[2:]):
            raise ValueError(
                f"weights must be (n, F) or (n, F, C) with intercept (n,) or (n, C); "
                f"got {w.shape} and {b.shape}"
            )

    @property
    def multiclass(self) -> bool:
        return np.ndim(self.weights) == 3

    def impact(self, X: np.ndarray) -> np.ndarray:
        """Feature impact ``x_j · w_j(x)``, the same shape as ``weights``."""
        X = np.asarray(X, dtype=np.float64)
        return X[:, :, None] * self.weights if self.multiclass else X * self.weights

    def output(self, X: np.ndarray) -> np.ndarray:
        """The local linear models evaluated at ``X``: equals the model's output there."""
        return self.impact(X).sum(axis=1) + self.intercept
