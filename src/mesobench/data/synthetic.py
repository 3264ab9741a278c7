"""Synthetic tasks with known ground truth (the LFR and NIMO papers): drawing their folds.

The generators (their functions, inputs and kinds: the table in :mod:`mesobench.data.truth`)
and :class:`~mesobench.data.truth.SyntheticTruth` live in :mod:`mesobench.data.truth`; this
module draws data from them. Regression: y = f(x) + ε. Classification: y ~ Bernoulli(σ(f(x) + ε)),
labels 0/1. ε ~ N(0, noise²), noise = 0.1 in the papers.

Train, validation and test parts are drawn from three independent child streams of
``numpy.random.SeedSequence(seed)``, so changing ``n_test`` does not change the training data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from mesobench.data.fold import FoldData, TaskInfo
from mesobench.data.shapes import load_shape_fold
from mesobench.data.truth import GeneratorSpec, SyntheticTruth, get_generator
from mesobench.errors import ConfigError

SHAPE_GENERATOR = "shape"
"""``generator: shape``: a CC18 task's shape, no known f (:mod:`mesobench.data.shapes`)."""


@dataclass
class SyntheticSample:
    """Features, targets and truth of one draw of a synthetic task."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_val: pd.DataFrame | None
    y_val: np.ndarray | None
    X_test: pd.DataFrame
    y_test: np.ndarray
    truth: SyntheticTruth


def _draw(
    spec: GeneratorSpec, n: int, noise: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    d = spec.n_features
    if spec.distribution == "normal":
        X = rng.standard_normal((n, d))
    else:
        X = rng.uniform(-2.0, 2.0, size=(n, d))
    eps = rng.normal(0.0, noise, size=n) if noise > 0 else np.zeros(n)
    with torch.no_grad():
        f = spec.fn(torch.from_numpy(X)).numpy()
    if spec.kind == "regression":
        y = (f + eps).astype(np.float64)
    else:
        p = 1.0 / (1.0 + np.exp(-(f + eps)))
        y = (rng.uniform(size=n) < p).astype(np.int64)
    columns = [f"x{j + 1}" for j in range(d)]
    return pd.DataFrame(X, columns=columns), y


def generate(
    generator: str,
    n_train: int,
    n_test: int,
    n_val: int = 0,
    noise: float = 0.1,
    seed: int = 0,
) -> SyntheticSample:
    """Draw one replicate of a synthetic task.

    Args:
        generator: Generator name (see module docstring).
        n_train, n_test: Sizes of the training and test parts (> 0).
        n_val: Size of the fixed validation part; 0 for none.
        noise: Standard deviation of ε (added to y, or to the logit for classification).
        seed: Seed; train, validation and test come from independent child streams.
    """
    spec = get_generator(generator)
    sizes = {"n_train": n_train, "n_test": n_test, "n_val": n_val}
    for key, value in sizes.items():
        if int(value) != value or value < (0 if key == "n_val" else 1):
            raise ConfigError(f"synthetic task {spec.name}: {key} must be a count, got {value!r}")
    if noise < 0:
        raise ConfigError(f"synthetic task {spec.name}: noise must be >= 0, got {noise}")
    rng_train, rng_val, rng_test = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(3)
    )
    X_train, y_train = _draw(spec, int(n_train), noise, rng_train)
    X_test, y_test = _draw(spec, int(n_test), noise, rng_test)
    X_val, y_val = _draw(spec, int(n_val), noise, rng_val) if n_val else (None, None)
    return SyntheticSample(
        X_train, y_train, X_val, y_val, X_test, y_test, SyntheticTruth(spec.name, noise)
    )


def load_synthetic_fold(task_cfg: Mapping[str, Any], fold: int) -> FoldData:
    """Fold ``k`` of a synthetic task config: the replicate drawn with ``base_seed + k``.

    ``generator: shape`` is a shape-alike task (:func:`~mesobench.data.shapes.load_shape_fold`).
    Keys: ``generator`` (required), ``name``, ``n_train`` (200), ``n_val`` (0), ``n_test`` (100),
    ``noise`` (0.1), ``n_folds`` (5), ``base_seed`` (0).
    """
    if "generator" not in task_cfg or task_cfg["generator"] is None:
        raise ConfigError("synthetic task config needs 'generator' (e.g. generator: toy)")
    if task_cfg["generator"] == SHAPE_GENERATOR:
        return load_shape_fold(task_cfg, fold)
    spec = get_generator(task_cfg["generator"])
    n_folds = int(task_cfg.get("n_folds", 5) or 5)
    if not 0 <= fold < n_folds:
        raise ConfigError(
            f"fold {fold} is out of range for synthetic task {spec.name}: valid folds are "
            f"0..{n_folds - 1} (task.n_folds={n_folds})"
        )
    sample = generate(
        spec.name,
        n_train=int(task_cfg.get("n_train", 200)),
        n_val=int(task_cfg.get("n_val", 0) or 0),
        n_test=int(task_cfg.get("n_test", 100)),
        noise=float(task_cfg.get("noise", 0.1)),
        seed=int(task_cfg.get("base_seed", 0) or 0) + fold,
    )
    classes = None if spec.kind == "regression" else ("0", "1")
    info = TaskInfo(
        name=str(task_cfg.get("name") or f"synthetic/{spec.name}"),
        source="synthetic",
        kind=spec.kind,
        classes=classes,
        target="y",
    )
    return FoldData(
        task=info,
        fold=fold,
        X_train=sample.X_train,
        y_train=sample.y_train,
        X_test=sample.X_test,
        y_test=sample.y_test,
        categorical=[False] * spec.n_features,
        X_val=sample.X_val,
        y_val=sample.y_val,
        truth=sample.truth,
    )
