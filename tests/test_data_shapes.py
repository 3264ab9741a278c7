"""Shape-alike tasks: a CC18 task's shape (rows, columns, classes, imbalance, missing values,
cardinalities), seeded, with a signal a model can learn; and the suite that sweeps all 72."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from mesobench.data import load_fold
from mesobench.data.shapes import class_counts, class_priors, informative_split
from mesobench.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SHAPES = REPO / "conf" / "task" / "shape"
SMALL = ["diabetes", "kr-vs-kp", "balance-scale", "credit-g", "car", "cmc"]


def _cfg(name: str, **changes):
    return {**OmegaConf.to_container(OmegaConf.load(SHAPES / f"{name}.yaml")), **changes}


@pytest.mark.parametrize("name", SMALL)
def test_a_fold_has_the_shape_of_its_cc18_task(name):
    cfg = _cfg(name)
    fold = load_fold(cfg, 0)
    n_test = cfg["n_rows"] // 10
    assert (len(fold.y_train), len(fold.y_test)) == (cfg["n_rows"] - n_test, n_test)
    assert fold.X_train.shape[1] == cfg["n_features"]
    assert sum(fold.categorical) == cfg["n_categorical"]
    assert fold.task.name == f"shape/{name}" and fold.task.n_classes == cfg["n_classes"]
    for y in (fold.y_train, fold.y_test):  # every class in both parts, at the CSV's imbalance
        counts = np.bincount(y, minlength=cfg["n_classes"])
        assert counts.min() >= 1
    counts = np.bincount(fold.y_train)
    assert counts.max() / counts.min() == pytest.approx(cfg["class_imbalance_ratio"], rel=0.1)
    assert 0 < fold.X_train.isna().to_numpy().mean() < 0.02  # some missing values, not many


def test_categoricals_have_plausible_cardinalities_and_some_exceed_one_hot():
    fold = load_fold(_cfg("kr-vs-kp", n_rows=20_000, n_categorical=200, n_features=200), 0)
    cards = np.array([fold.X_train[c].cat.categories.size for c in fold.X_train.columns])
    assert cards.min() >= 2 and np.median(cards) <= 6
    assert (cards > 10).sum() >= 4  # the high-cardinality path (target encoding) is exercised


def test_folds_are_seeded_replicates():
    a, b, c = (load_fold(_cfg("credit-g"), k) for k in (0, 0, 1))
    assert a.X_train.equals(b.X_train) and np.array_equal(a.y_test, b.y_test)
    assert not a.X_train.equals(c.X_train)


@pytest.mark.parametrize("name", ["diabetes", "credit-g", "kr-vs-kp"])
def test_the_signal_is_learnable_but_not_trivial(name):
    fold = load_fold(_cfg(name), 0)
    X_train, X_test = (
        np.nan_to_num(
            np.column_stack(
                [
                    X[c].cat.codes.to_numpy() if X[c].dtype == "category" else X[c].to_numpy()
                    for c in X.columns
                ]
            )
        )
        for X in (fold.X_train, fold.X_test)
    )
    mean, std = X_train.mean(0), X_train.std(0) + 1e-9
    model = LogisticRegression(max_iter=2000).fit((X_train - mean) / std, fold.y_train)
    auroc = roc_auc_score(fold.y_test, model.predict_proba((X_test - mean) / std)[:, 1])
    assert 0.65 < auroc < 0.995


def test_class_priors_and_counts():
    priors = class_priors(4, 8.0)
    assert priors.sum() == pytest.approx(1.0)
    assert priors[0] / priors[-1] == pytest.approx(8.0)
    counts = class_counts(101, priors)
    assert counts.sum() == 101 and counts.min() >= 1
    assert informative_split(0, 36, 10) == (0, 10)
    assert informative_split(7, 9, 10) == (4, 6)
    assert informative_split(3072, 0, 10) == (10, 0)


def test_bad_shape_configs_say_what_is_wrong():
    with pytest.raises(ConfigError, match="needs n_numeric"):
        load_fold({"source": "synthetic", "generator": "shape", "name": "shape/x", "n_rows": 10}, 0)
    with pytest.raises(ConfigError, match="too few"):
        load_fold(_cfg("car", n_rows=30), 0)
    with pytest.raises(ConfigError, match="out of range"):
        load_fold(_cfg("car"), 10)


def test_there_is_a_shape_for_every_cc18_task_and_a_suite_of_all_72():
    listing = REPO.parent / "shared" / "data" / "cc18_tasks.csv"
    if not listing.is_file():
        pytest.skip(f"task list {listing} not found")
    rows = list(csv.DictReader(listing.open()))
    assert {p.stem for p in SHAPES.glob("*.yaml")} == {r["name"] for r in rows}
    suite = OmegaConf.load(REPO / "conf" / "suite" / "cc18_shapes.yaml")
    parsed = OverridesParser.create().parse_override(f"task={suite.hydra.sweeper.params.task}")
    tasks = list(parsed.sweep_iterator())
    assert len(tasks) == 72 and all((SHAPES.parent / f"{t}.yaml").is_file() for t in tasks)
    for row in rows:
        cfg = OmegaConf.load(SHAPES / f"{row['name']}.yaml")
        assert (cfg.n_rows, cfg.n_features, cfg.n_classes) == (
            int(row["n_rows"]),
            int(row["n_features"]),
            int(row["n_classes"]),
        )
