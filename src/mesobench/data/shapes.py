"""Shape-alike tasks: synthetic data with the shape of a CC18 task (``task=shape/<cc18 name>``).

Why: the 12 cached CC18 tasks are all small, so nobody could tell whether a model, its
explanations and the fidelity metrics fit in memory and finish on CIFAR_10 (60,000 × 3,072),
Devnagari-Script (92,000 × 1,024, 46 classes) or connect-4 (67,557 rows, 42 categoricals)
before paying for the real suite. A shape task reproduces what decides cost and what breaks
code, from ``cc18_tasks.csv``: the number of rows, of numeric and categorical columns, the
classes and their imbalance, plus categorical cardinalities and missing values, with a known
signal so that AUROC means something (a model that learns scores well above 0.5).

How one fold is drawn (fold k = an independent replicate drawn with seed ``base_seed + k``;
``n_rows // 10`` test rows and the rest for training, the size of a 10-fold CV fold):

* **labels** first, with exact per-part class counts from geometric priors
  ``p_c ∝ ratio^(−c / (C − 1))``, so the largest class is ``class_imbalance_ratio`` times the
  smallest (as the CSV's column) and every class is present in both parts;
* **numeric columns**: N(0, 1), shifted by a class mean ``μ_{y,j} ~ N(0, separation²)`` on the
  informative columns, then scaled by 10^U(−1, 2) and offset (raw units differ as in real
  tables; the neural preprocessing standardises them);
* **categorical columns**: cardinalities mostly 2–5, some 6–12 and a few 13–60 (which one-hot
  encoding does not take: the high-cardinality path); the levels of informative columns have
  class-dependent logits (N(0, (1.5 · separation)²) added per class and level), the others one
  shared distribution;
* **missing values** in a share of the columns (``missing_columns``), a share of their cells
  each (``missing_cells``).

The informative columns are the first ``n_informative`` of the numeric and categorical ones in
proportion (``num0…``, ``cat0…``); they are the task's known signal. The data is float32 (the
width of CIFAR_10 costs 0.7 GB per copy in float32, twice that in float64).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mesobench.data.fold import FoldData, TaskInfo
from mesobench.errors import ConfigError

TEST_SHARE = 10
"""One fold's test part is ``n_rows // TEST_SHARE`` rows, as one fold of OpenML's 10-fold CV."""

DEFAULTS: dict[str, Any] = {
    "n_informative": 10,
    "separation": 0.4,
    "missing_columns": 0.1,
    "missing_cells": 0.05,
    "class_imbalance_ratio": 1.0,
    "n_folds": 10,
    "base_seed": 0,
}
"""Keys a shape task config may omit (everything else comes from the CC18 row)."""

_CARDINALITY_BANDS = ((0.70, 2, 5), (0.25, 6, 12), (0.05, 13, 60))
"""(share of categorical columns, lowest, highest cardinality)."""


def class_priors(n_classes: int, imbalance_ratio: float) -> np.ndarray:
    """Geometric class priors whose largest / smallest is ``imbalance_ratio``."""
    if n_classes < 2:
        raise ConfigError(f"a shape task needs at least 2 classes, got {n_classes}")
    ratio = max(float(imbalance_ratio), 1.0)
    weights = ratio ** (-np.arange(n_classes) / (n_classes - 1))
    return weights / weights.sum()


def class_counts(n: int, priors: np.ndarray) -> np.ndarray:
    """Per-class counts summing to ``n``, each at least 1 (largest remainders)."""
    if n < len(priors):
        raise ConfigError(f"{n} rows cannot hold {len(priors)} classes")
    raw = priors * (n - len(priors))
    counts = np.floor(raw).astype(np.int64) + 1
    short = n - counts.sum()
    counts[np.argsort(raw - np.floor(raw))[::-1][:short]] += 1
    return counts


def cardinalities(n_categorical: int, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """Plausible category counts: mostly small, a few beyond one-hot's limit."""
    shares, lows, highs = (np.array(v) for v in zip(*_CARDINALITY_BANDS, strict=True))
    band = rng.choice(len(shares), size=n_categorical, p=shares)
    card = rng.integers(lows[band], highs[band] + 1)
    return np.clip(card, 2, max(2, n_rows // 20))


def informative_split(n_numeric: int, n_categorical: int, n_informative: int) -> tuple[int, int]:
    """How many of the informative columns are numeric and categorical (in proportion)."""
    total = n_numeric + n_categorical
    k = min(int(n_informative), total)
    k_num = min(n_numeric, round(k * n_numeric / total)) if total else 0
    if n_numeric and k_num == 0 and k > n_categorical:
        k_num = 1
    k_cat = min(n_categorical, k - k_num)
    return k_num, k_cat


class _Signal:
    """The parameters shared by the train and test parts of one replicate."""

    def __init__(self, cfg: Mapping[str, Any], rng: np.random.Generator):
        self.n_numeric = int(cfg["n_numeric"])
        self.n_categorical = int(cfg["n_categorical"])
        self.n_classes = int(cfg["n_classes"])
        sep = float(cfg["separation"])
        self.k_num, self.k_cat = informative_split(
            self.n_numeric, self.n_categorical, int(cfg["n_informative"])
        )
        self.means = rng.normal(0.0, sep, size=(self.n_classes, self.k_num)).astype(np.float32)
        self.scale = (10.0 ** rng.uniform(-1, 2, size=self.n_numeric)).astype(np.float32)
        self.offset = rng.normal(0.0, 5.0, size=self.n_numeric).astype(np.float32)
        self.card = cardinalities(self.n_categorical, int(cfg["n_rows"]), rng)
        width = int(self.card.max()) if self.n_categorical else 1
        # level logits per column: informative columns per class, the others shared
        logits = rng.normal(0.0, 1.0, size=(self.n_categorical, 1, width))
        logits = np.repeat(logits, self.n_classes, axis=1)
        logits[: self.k_cat] += rng.normal(0.0, 1.5 * sep, size=(self.k_cat, self.n_classes, width))
        absent = np.arange(width)[None, :] >= self.card[:, None]  # (columns, levels)
        logits = np.where(absent[:, None, :], -np.inf, logits)
        probs = np.exp(logits - logits.max(axis=2, keepdims=True))
        self.level_cdf = np.cumsum(probs / probs.sum(axis=2, keepdims=True), axis=2)

    def draw(
        self, y: np.ndarray, rng: np.random.Generator, holes: np.ndarray, share: float
    ) -> pd.DataFrame:
        """Rows for labels ``y``; cells of the columns ``holes`` are missing with prob. ``share``."""
        n = len(y)
        # drawn column-major: pandas keeps a frame's columns contiguous, so this avoids a copy
        numeric = rng.standard_normal((self.n_numeric, n), dtype=np.float32).T
        numeric[:, : self.k_num] += self.means[y]
        numeric *= self.scale
        numeric += self.offset
        missing = np.zeros((n, self.n_numeric + self.n_categorical), dtype=bool)
        missing[:, holes] = rng.random((n, len(holes))) < share
        numeric[missing[:, : self.n_numeric]] = np.nan
        columns = [f"num{j}" for j in range(self.n_numeric)]
        frame = pd.DataFrame(numeric, columns=columns, copy=False)
        if self.n_categorical:
            u = rng.random((n, self.n_categorical, 1))
            cdf = self.level_cdf[:, y, :].transpose(1, 0, 2)  # (n, columns, levels)
            codes = np.minimum((u > cdf).sum(axis=2), self.card - 1)
            codes[missing[:, self.n_numeric :]] = -1  # pandas' code for a missing category
            categoricals = {
                f"cat{j}": pd.Categorical.from_codes(
                    codes[:, j], categories=[f"c{j}_{v}" for v in range(self.card[j])]
                )
                for j in range(self.n_categorical)
            }
            frame = pd.concat([frame, pd.DataFrame(categoricals)], axis=1)
        return frame


def check_shape_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The config with defaults filled in, or a ConfigError naming what is missing or wrong."""
    merged = {**DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
    needed = ("n_rows", "n_numeric", "n_categorical", "n_classes")
    missing = [k for k in needed if k not in merged]
    if missing:
        raise ConfigError(
            f"shape task {cfg.get('name')!r} needs {', '.join(missing)} "
            "(conf/task/shape/*.yaml are generated by scripts/make_task_configs.py)"
        )
    if int(merged["n_numeric"]) + int(merged["n_categorical"]) < 1:
        raise ConfigError(f"shape task {cfg.get('name')!r} has no columns")
    if int(merged["n_rows"]) < TEST_SHARE * int(merged["n_classes"]):
        raise ConfigError(
            f"shape task {cfg.get('name')!r}: {merged['n_rows']} rows are too few for "
            f"{merged['n_classes']} classes in a test part of 1/{TEST_SHARE}"
        )
    for key in ("missing_columns", "missing_cells"):
        if not 0 <= float(merged[key]) < 1:
            raise ConfigError(f"shape task {cfg.get('name')!r}: {key} must be in [0, 1)")
    return merged


def load_shape_fold(task_cfg: Mapping[str, Any], fold: int) -> FoldData:
    """Fold ``fold`` of a shape task: the replicate drawn with seed ``base_seed + fold``."""
    cfg = check_shape_config(task_cfg)
    n_folds = int(cfg["n_folds"])
    if not 0 <= fold < n_folds:
        raise ConfigError(
            f"fold {fold} is out of range for shape task {cfg.get('name')!r}: valid folds are "
            f"0..{n_folds - 1} (task.n_folds={n_folds})"
        )
    seeds = np.random.SeedSequence(int(cfg["base_seed"]) + fold).spawn(4)
    rng_signal, rng_train, rng_test, rng_missing = (np.random.default_rng(s) for s in seeds)
    signal = _Signal(cfg, rng_signal)
    n_rows, n_classes = int(cfg["n_rows"]), int(cfg["n_classes"])
    priors = class_priors(n_classes, float(cfg["class_imbalance_ratio"]))
    n_test = n_rows // TEST_SHARE
    d = signal.n_numeric + signal.n_categorical
    n_holes = int(np.ceil(float(cfg["missing_columns"]) * d))
    holes = np.sort(rng_missing.choice(d, size=n_holes, replace=False))
    parts = []
    for n, rng in ((n_rows - n_test, rng_train), (n_test, rng_test)):
        y = rng.permutation(np.repeat(np.arange(n_classes), class_counts(n, priors)))
        X = signal.draw(y, rng, holes, float(cfg["missing_cells"]))
        parts.append((X, y.astype(np.int64)))
    (X_train, y_train), (X_test, y_test) = parts
    kind = "binary" if n_classes == 2 else "multiclass"
    info = TaskInfo(
        name=str(cfg.get("name") or f"shape/{cfg.get('shape_of')}"),
        source="synthetic",
        kind=kind,
        classes=tuple(str(c) for c in range(n_classes)),
        target="y",
    )
    return FoldData(
        task=info,
        fold=fold,
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        categorical=[False] * signal.n_numeric + [True] * signal.n_categorical,
    )
