"""Metrics: prediction quality (:mod:`.prediction`) and explanation fidelity: the metric
functions on arrays (:mod:`.fidelity`), the raw feature space every model is perturbed in
(:mod:`.raw_space`) and the scoring of one fitted model there (:mod:`.scoring`)."""

from mesobench.metrics import fidelity, raw_space, scoring
from mesobench.metrics.prediction import classification_metrics, regression_metrics

__all__ = ["classification_metrics", "fidelity", "raw_space", "regression_metrics", "scoring"]
