import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mesobench.metrics import classification_metrics, regression_metrics
from mesobench.metrics.prediction import ovr_macro_auroc


def _proba(rng, n, c):
    raw = rng.random((n, c))
    return raw / raw.sum(1, keepdims=True)


def test_multiclass_auroc_matches_sklearn_when_every_class_is_present():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    proba = _proba(rng, 300, 4)
    m = classification_metrics(y, proba)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr"))
    assert m["auroc_ovo_macro"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovo"))
    assert m["auroc_ovr_weighted"] == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr", average="weighted")
    )


def test_binary_auroc_scores_the_second_class():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    m = classification_metrics(y, proba)
    assert m["auroc"] == 1.0
    assert m["accuracy"] == 1.0


def test_a_class_absent_from_the_test_fold_is_left_out_not_an_error():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)  # class 3 of 4 never occurs
    proba = _proba(rng, 200, 4)
    m = classification_metrics(y, proba)
    present = [roc_auc_score(y == c, proba[:, c]) for c in range(3)]
    assert m["auroc"] == pytest.approx(np.mean(present))
    assert np.isfinite(m["log_loss"])


def test_auroc_is_omitted_when_the_test_fold_has_one_class():
    m = classification_metrics(np.zeros(5, int), np.tile([0.7, 0.3], (5, 1)))
    assert "auroc" not in m
    assert m["accuracy"] == 1.0


def test_perfect_regression():
    y = np.array([1.0, 2.0, 3.0])
    m = regression_metrics(y, y)
    assert m["mse"] == 0.0 and m["r2"] == 1.0


def test_ovr_macro_auroc_matches_sklearn_and_skips_absent_classes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    scores = rng.random((200, 3)) + np.eye(3)[y] * 0.3
    assert ovr_macro_auroc(y, scores) == pytest.approx(
        np.mean([roc_auc_score(y == k, scores[:, k]) for k in range(3)])
    )
    binary = y[y < 2]
    assert ovr_macro_auroc(binary, scores[y < 2, :1]) == pytest.approx(
        roc_auc_score(binary, scores[y < 2, 0])
    )
    without_class_2 = y != 2
    assert ovr_macro_auroc(y[without_class_2], scores[without_class_2]) == pytest.approx(
        np.mean(
            [roc_auc_score(y[without_class_2] == k, scores[without_class_2, k]) for k in (0, 1)]
        )
    )
