"""One run's pictures, logged beside its artifacts (``pictures/*.png``).

The MLflow UI previews PNG artifacts, so a reader of one run sees without a report what the
model explains and how it trained: the local explanation of one test row (the report's
explanation picture, for this run alone) and the per-epoch training curves.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mesobench.report import plots

EXPLANATION_PNG = "pictures/explanation.png"
CURVES_PNG = "pictures/training_curves.png"
_WEIGHTS = "explanations/local_weights_sample.csv"
_DESCRIPTION = "model/description.json"


def draw(outcome: Any, model: str, title: str) -> dict[str, bytes]:
    """``{artifact path: PNG bytes}`` for what the outcome holds: an explanation picture when
    it logged local weights, a curves picture when it logged per-epoch series."""
    pictures: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="mesobench-pictures-") as tmp:
        weights = outcome.artifacts.get(_WEIGHTS)
        if weights is not None and len(weights):
            sample = plots.ExplanationSample(weights, outcome.artifacts.get(_DESCRIPTION))
            picture = plots.explanation_picture(
                {model: sample}, Path(tmp, "explanation.png"), title=title
            )
            if picture.path is not None:
                pictures[EXPLANATION_PNG] = picture.path.read_bytes()
        curves = {
            name.removeprefix("train/"): values for name, values in outcome.epoch_metrics.items()
        }
        if plots.has_training_curves(curves):
            path = plots.training_curves(curves, Path(tmp, "curves.png"), title=title)
            pictures[CURVES_PNG] = path.read_bytes()
    return pictures
