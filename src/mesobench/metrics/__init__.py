"""Metrics: prediction quality now; explanation fidelity joins here (``metrics.fidelity``)."""

from mesobench.metrics.prediction import classification_metrics, regression_metrics

__all__ = ["classification_metrics", "regression_metrics"]
