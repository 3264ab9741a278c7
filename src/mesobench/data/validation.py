"""Validation split of a training fold (for early stopping, HPO and the choice of γ)."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

from mesobench.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def validation_split(
    y: np.ndarray, fraction: float, seed: int, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..len(y)-1`` into (train, validation), seeded.

    Stratified by ``y`` when ``stratify`` is true and ``y`` is not floating point (regression
    targets are never stratified). Falls back to a plain shuffle split, with a logged warning,
    when some class has fewer than 2 members or the validation part is too small to hold every
    class.

    Args:
        y: Labels (int codes or any discrete values) or regression targets, shape (n,).
        fraction: Share of rows for validation, in (0, 1); the count is rounded up.
        seed: Random seed.
        stratify: Stratify by class (ignored for float targets).

    Returns:
        ``(train_idx, val_idx)``: sorted, disjoint int64 index arrays covering all rows.
    """
    if isinstance(fraction, bool) or not 0.0 < float(fraction) < 1.0:
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction!r}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"validation_split expects 1-d labels, got shape {y.shape}")
    n = len(y)
    n_val = int(np.ceil(float(fraction) * n))
    if n < 2 or n_val >= n:
        raise DataError(
            f"cannot split {n} rows into train and validation with fraction {fraction}: "
            "need at least one row in each part"
        )
    X_dummy = np.zeros((n, 1))
    splitter: ShuffleSplit | StratifiedShuffleSplit = ShuffleSplit(
        n_splits=1, test_size=n_val, random_state=seed
    )
    if stratify and not np.issubdtype(y.dtype, np.floating):
        classes, counts = np.unique(y, return_counts=True)
        if counts.min() < 2:
            log.warning(
                "validation split not stratified: class(es) %s have fewer than 2 members",
                classes[counts < 2].tolist(),
            )
        elif n_val < len(classes) or n - n_val < len(classes):
            log.warning(
                "validation split not stratified: %d validation / %d training rows cannot "
                "hold all %d classes",
                n_val,
                n - n_val,
                len(classes),
            )
        else:
            splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
    train_idx, val_idx = next(splitter.split(X_dummy, y))
    return np.sort(train_idx).astype(np.int64), np.sort(val_idx).astype(np.int64)
