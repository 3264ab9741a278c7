"""The one perturbation space every model's explanations are scored in: the raw features.

Fidelity metrics perturb inputs and compare the model's output change with its attribution.
For a comparison across models they must perturb the *same* rows in the *same* space: a
one-hot model perturbed in its standardised one-hot columns and a gradient-boosted tree in its
raw numeric columns are scored on different features against different baselines. So the
scored rows are encoded once, per task and fold, as a float matrix with **one column per
original feature** (before any model's preprocessing): numeric values as they are (NaN =
missing), a categorical feature as the code of its category (NaN = missing). Every model
receives these rows decoded back into a raw DataFrame and applies its own preprocessing.

Baselines and scales come from the **training fold** (the same rows for every model, whatever
validation split a model cuts from it):

* numeric features: baseline = the mean (or the median, ``fidelity.numeric_baseline``), noise
  scale = the standard deviation, NaN ignored;
* categorical features: baseline = the most frequent category (``most_frequent``), or the
  missing value (``missing``: removing a feature = not knowing it), ``fidelity
  .categorical_baseline``; "removing" a categorical feature sets it to its baseline category.

A feature is perturbable when perturbing it can move it: a numeric feature with a finite
baseline and a positive spread, a categorical one with at least two training categories.
Constant columns stay columns (the encoding is lossless) but are never perturbed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mesobench.errors import ConfigError

NUMERIC_BASELINES = ("mean", "median")
CATEGORICAL_BASELINES = ("most_frequent", "missing")


def _observed_categories(column: pd.Series) -> list[Any]:
    """The categories of a training column: its dtype's order if categorical, else sorted
    (mixed types by type name, then text), as the preprocessor orders them."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return list(column.cat.remove_unused_categories().cat.categories)
    values = pd.unique(column.dropna().to_numpy(dtype=object))
    try:
        return sorted(values.tolist())
    except TypeError:
        return sorted(values.tolist(), key=lambda v: (type(v).__name__, str(v)))


def _numeric(column: pd.Series) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isinf(values), np.nan, values)


@dataclass(frozen=True)
class RawSpace:
    """The raw features of one task fold as a float matrix, with baselines and scales.

    Attributes:
        columns: the task's feature columns, in order.
        categorical: (F,) bool, categorical features.
        categories: per column, the categories its codes index (None for numeric columns):
            the training fold's, then any seen only in the encoded rows.
        baseline: (F,) the baseline row (numeric value or category code; NaN = missing).
        scale: (F,) noise scale: the training standard deviation (1 for categorical).
        perturbable: (F,) bool, features a perturbation can move.
        cdf: (F_c, K) cumulative training frequencies of the categorical features' codes
            (padded with 1), for the stability neighbourhood.
    """

    columns: list[Any]
    categorical: np.ndarray
    categories: list[pd.Index | None]
    baseline: np.ndarray
    scale: np.ndarray
    perturbable: np.ndarray
    cdf: np.ndarray

    @classmethod
    def fit(
        cls,
        X_train: pd.DataFrame,
        categorical: Sequence[bool],
        *,
        X_scored: pd.DataFrame | None = None,
        numeric_baseline: str = "mean",
        categorical_baseline: str = "most_frequent",
    ) -> RawSpace:
        """Baselines, scales and categories from the training fold ``X_train``; categories
        that only ``X_scored`` (the rows to encode) has are appended, so encoding is lossless."""
        if numeric_baseline not in NUMERIC_BASELINES:
            raise ConfigError(
                f"fidelity.numeric_baseline={numeric_baseline!r}: expected one of "
                f"{list(NUMERIC_BASELINES)}"
            )
        if categorical_baseline not in CATEGORICAL_BASELINES:
            raise ConfigError(
                f"fidelity.categorical_baseline={categorical_baseline!r}: expected one of "
                f"{list(CATEGORICAL_BASELINES)}"
            )
        flags = np.asarray([bool(c) for c in categorical])
        n_features = X_train.shape[1]
        if flags.shape != (n_features,):
            raise ValueError(f"categorical has {flags.size} flags for {n_features} columns")
        baseline, scale = np.full(n_features, np.nan), np.ones(n_features)
        perturbable = np.zeros(n_features, dtype=bool)
        categories: list[pd.Index | None] = []
        frequencies: list[np.ndarray] = []
        for j, col in enumerate(X_train.columns):
            if not flags[j]:
                values = _numeric(X_train[col])
                with np.errstate(all="ignore"):
                    centre = np.nanmedian(values) if numeric_baseline == "median" else None
                    mean, std = np.nanmean(values), np.nanstd(values)
                baseline[j] = mean if centre is None else centre
                perturbable[j] = bool(np.isfinite(baseline[j]) and np.isfinite(std) and std > 0)
                scale[j] = std if perturbable[j] else 1.0
                categories.append(None)
                continue
            seen = _observed_categories(X_train[col])
            extra = []
            if X_scored is not None:
                known = pd.Index(seen, dtype=object)
                more = _observed_categories(X_scored[col])
                extra = [c for c in more if known.get_indexer([c])[0] < 0]
            index = pd.Index(seen + extra, dtype=object)
            counts = np.bincount(_codes(X_train[col], index), minlength=len(index) + 1)[1:]
            categories.append(index)
            frequencies.append(counts / max(1, counts.sum()))
            perturbable[j] = len(seen) >= 2
            if categorical_baseline == "most_frequent" and counts.sum() > 0:
                baseline[j] = float(np.argmax(counts))
        return cls(
            columns=list(X_train.columns),
            categorical=flags,
            categories=categories,
            baseline=baseline,
            scale=scale,
            perturbable=perturbable,
            cdf=_padded_cdf(frequencies),
        )

    @property
    def n_features(self) -> int:
        return len(self.columns)

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        """The rows of a raw DataFrame as the float matrix (categories → codes, missing → NaN)."""
        Z = np.empty((len(X), self.n_features))
        for j, (col, cats) in enumerate(zip(self.columns, self.categories, strict=True)):
            if cats is None:
                Z[:, j] = _numeric(X[col])
            else:
                codes = _codes(X[col], cats).astype(np.float64) - 1.0
                Z[:, j] = np.where(codes < 0, np.nan, codes)
        return Z

    def decode(self, Z: np.ndarray) -> pd.DataFrame:
        """The float matrix back as a raw DataFrame: numeric columns float64, categorical
        columns pandas categoricals over :attr:`categories` (NaN or out of range → missing)."""
        Z = np.asarray(Z, dtype=np.float64)
        # every output call decodes: the columns go in as one float block (a frame of one
        # column per feature costs 4x more on wide tasks), then the categorical ones, each
        # with its own categories, replace their float codes
        frame = pd.DataFrame(Z, columns=self.columns)
        for j in np.flatnonzero(self.categorical):
            cats = self.categories[j]
            codes = np.nan_to_num(Z[:, j], nan=-1.0).astype(np.int64)
            codes[(codes < -1) | (codes >= len(cats))] = -1
            frame[self.columns[j]] = pd.Categorical.from_codes(codes, categories=cats)
        return frame

    def feature_index(self, names: Sequence[Any]) -> np.ndarray:
        """Position of each named raw column (e.g. a preprocessor's source column per output
        feature); names are matched as strings, as preprocessors name their sources."""
        lookup = {str(c): j for j, c in enumerate(self.columns)}
        missing = [str(n) for n in names if str(n) not in lookup]
        if missing:
            raise ValueError(f"model input columns name unknown raw features: {missing[:5]}")
        return np.asarray([lookup[str(n)] for n in names], dtype=np.int64)


def _codes(column: pd.Series, categories: pd.Index) -> np.ndarray:
    """1 + the index of each value in ``categories`` (0 = missing or unknown), vectorised over
    the column's distinct values."""
    local, uniques = pd.factorize(column, use_na_sentinel=True)
    mapping = categories.get_indexer(np.asarray(uniques, dtype=object)) + 1
    return np.where(local >= 0, mapping[np.maximum(local, 0)], 0).astype(np.int64)


def _padded_cdf(frequencies: list[np.ndarray]) -> np.ndarray:
    width = max((len(f) for f in frequencies), default=1)
    cdf = np.ones((len(frequencies), width))
    for i, freq in enumerate(frequencies):
        cdf[i, : len(freq)] = np.cumsum(freq)
        cdf[i, max(0, len(freq) - 1) :] = 1.0  # no rounding gap above the last category
    return cdf
