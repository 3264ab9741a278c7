"""What every torch classifier of the benchmark (TabResNet, IMN, LFR-IMN, NIMO) promises alike:
probabilities in ``classes_`` order for any labels, bitwise-identical fits for a seed, early
stopping on the eval set that keeps the best epoch."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification

from mesobench.models import IMNClassifier, LFRIMNClassifier, NIMOClassifier, TabResNetClassifier

SMALL = {"epochs": 8, "warmup_epochs": 2, "batch_size": 64, "hidden_size": 32}
CLASSIFIERS = [TabResNetClassifier, IMNClassifier, LFRIMNClassifier, NIMOClassifier]


def _classification(n_classes: int, n: int = 300):
    return make_classification(
        n, 8, n_informative=5, n_classes=n_classes, n_clusters_per_class=1, random_state=0
    )


@pytest.mark.parametrize("cls", CLASSIFIERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("n_classes", [2, 4])
def test_predict_proba_rows_sum_to_one_in_classes_order_with_string_labels(cls, n_classes):
    X, y = _classification(n_classes)
    names = np.array(["delta", "alpha", "charlie", "bravo"])[:n_classes]
    model = cls(random_state=0, **SMALL).fit(X, names[y])
    proba = model.predict_proba(X)
    assert list(model.classes_) == sorted(names)
    assert proba.shape == (len(X), n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert set(model.predict(X)) <= set(names)
    # the columns follow classes_: the predicted label's column is the largest
    assert np.all(model.classes_[proba.argmax(1)] == model.predict(X))


@pytest.mark.parametrize("cls", CLASSIFIERS, ids=lambda c: c.__name__)
def test_same_seed_gives_identical_predictions_on_cpu(cls):
    X, y = _classification(3)
    first = cls(random_state=7, **SMALL).fit(X, y).predict_proba(X)
    second = cls(random_state=7, **SMALL).fit(X, y).predict_proba(X)
    other = cls(random_state=8, **SMALL).fit(X, y).predict_proba(X)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("cls", CLASSIFIERS, ids=lambda c: c.__name__)
def test_early_stopping_uses_the_eval_set_and_keeps_the_best_epoch(cls):
    X, y = _classification(2, n=400)
    model = cls(random_state=0, early_stopping_patience=3, **{**SMALL, "epochs": 60})
    model.fit(X[:300], y[:300], eval_set=(X[300:], y[300:]))
    result = model.train_result_
    assert len(result.val_scores) == result.epochs_run
    assert result.best_score == max(result.val_scores)
    assert result.best_epoch == 1 + int(np.argmax(result.val_scores))
    if result.stopped_early:
        assert result.epochs_run == result.best_epoch + 3
