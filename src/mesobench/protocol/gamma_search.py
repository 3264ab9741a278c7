"""In-run choice of the LFR weight γ by the tuning score S (Hammer et al. 2026), beside the HPO
search; docs/models.md#lfr-imn-and-the-γ-search.

``gamma_search.enabled=true`` turns it on for a model whose estimator has the parameter
``gamma_search.param`` (``gamma`` for LFR-IMN). On the validation split of the training fold
(the same split that :mod:`mesobench.protocol.hpo` uses), every grid value γ_k is fitted on the fitting
part and scored on the validation part:

* D_k — validation AUROC (one-vs-rest macro for multiclass; accuracy where AUROC is undefined),
  or R² for regression: the prediction quality;
* I_k — LFR infidelity of the fitted model's explanations on (a seeded sample of) the
  validation rows, with the same neighbours for every γ (fixed seed): the explanation quality;
* R_F,k = I_0 / (I_0 + I_k), the fidelity ratio against the unregularised γ = 0 grid point
  (which the grid must therefore hold), and S_k = α·max(0, D_k) + (1 − α)·R_F,k.

The γ with the highest S (the first on ties) wins and its fitted estimator becomes the run's
model — as the HPO search keeps its best trial's estimator, trained on the fitting part. The
harness stays model-agnostic: it only calls ``set_params(<param>=γ)``, ``fit``, ``predict*``
and ``explain`` (through :func:`mesobench.metrics.fidelity.lfr_infidelity`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from mesobench.errors import ConfigError
from mesobench.metrics import fidelity
from mesobench.protocol.settings import GammaSearchSettings

log = logging.getLogger(__name__)


@dataclass
class GammaSearchResult:
    estimator: Any  # the chosen grid point's fitted estimator
    chosen_gamma: float
    chosen_index: int
    table: pd.DataFrame  # one row per grid point: index, gamma, D, I, R_F, S, error


def check_estimator(settings: GammaSearchSettings, estimator: Any) -> None:
    """Refuse an enabled search for a model without the varied parameter (ConfigError)."""
    settings.check()
    if settings.param not in estimator.get_params():
        raise ConfigError(
            f"gamma_search.enabled=true, but {type(estimator).__name__} has no parameter "
            f"'{settings.param}': the search is for models with a fidelity weight "
            "(e.g. model=lfr_imn)."
        )


def search(
    estimator: Any,
    *,
    grid: Sequence[float],
    alpha: float,
    fit: Callable[[Any], None],
    performance: Callable[[Any], float],
    infidelity: Callable[[Any], float],
    param: str = "gamma",
) -> GammaSearchResult:
    """Fit a clone of ``estimator`` per grid value and pick the one with the highest S.

    ``fit(candidate)`` fits in place; ``performance(candidate)`` returns D and
    ``infidelity(candidate)`` returns I, both on validation data. A grid point whose fit or
    scoring raises is recorded with NaN scores and its error (it cannot be chosen), except the
    γ = 0 baseline, whose failure ends the search (R_F needs it).
    """
    rows: list[dict[str, Any]] = []
    fitted: list[Any] = []
    for index, gamma in enumerate(grid):
        candidate = clone(estimator).set_params(**{param: gamma})
        row = {"index": index, "gamma": float(gamma), "D": np.nan, "I": np.nan, "error": ""}
        try:
            fit(candidate)
            row["D"] = float(performance(candidate))
            row["I"] = float(infidelity(candidate))
        except Exception as exc:  # one bad γ (e.g. diverging) must not end the search
            if gamma == 0:
                raise
            row["error"] = f"{type(exc).__name__}: {exc}"[:500]
            candidate = None
            log.warning("gamma search: γ=%g failed: %s", gamma, row["error"])
        rows.append(row)
        fitted.append(candidate)
        log.info("gamma search %d/%d: γ=%g D=%.4f I=%.4g", index + 1, len(grid), *_dgi(row))
    table = pd.DataFrame(rows)
    base = float(table.loc[table["gamma"].eq(0.0), "I"].iloc[0])
    ok = table["D"].notna() & table["I"].notna()
    table["R_F"] = [
        fidelity.fidelity_ratio(base, i) if good else np.nan
        for i, good in zip(table["I"], ok, strict=True)
    ]
    table["S"] = [
        fidelity.tuning_score(d, r, alpha) if good else np.nan
        for d, r, good in zip(table["D"], table["R_F"], ok, strict=True)
    ]
    scores = table["S"].to_numpy(dtype=np.float64)
    chosen = int(np.nanargmax(scores))  # the γ = 0 row is always scored
    table = table[["index", "gamma", "D", "I", "R_F", "S", "error"]]
    log.info("gamma search: chose γ=%g (S=%.4f)", grid[chosen], scores[chosen])
    return GammaSearchResult(fitted[chosen], float(grid[chosen]), chosen, table)


def _dgi(row: Mapping[str, Any]) -> tuple[float, float, float]:
    return row["gamma"], row["D"], row["I"]
