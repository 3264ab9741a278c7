"""Metrics: prediction quality (:mod:`.prediction`) and explanation fidelity (:mod:`.fidelity`)."""

from mesobench.metrics import fidelity
from mesobench.metrics.prediction import classification_metrics, regression_metrics

__all__ = ["classification_metrics", "fidelity", "regression_metrics"]
