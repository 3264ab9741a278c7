"""What every torch classifier of the benchmark (TabResNet, IMN, LFR-IMN, NIMO) promises alike:
probabilities in ``classes_`` order for any labels, bitwise-identical fits for a seed, early
stopping on the eval set that keeps the best epoch; and every torch estimator: a bad parameter
refused at ``fit`` before any training, with scikit-learn's error."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.datasets import make_classification
from sklearn.utils._param_validation import InvalidParameterError

from mesobench import models
from mesobench.errors import ConfigError
from mesobench.models import (
    IMNClassifier,
    LFRIMNClassifier,
    NIMOClassifier,
    TabResNetClassifier,
    torch_estimator,
)

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


# ---- parameters: checked at fit, before anything is built ----------------------------------

TORCH_ESTIMATORS = [
    getattr(models, f"{family}{role}")
    for family in ("TabResNet", "IMN", "LFRIMN", "NIMO")
    for role in ("Classifier", "Regressor")
]
# (parameter, bad value, what the message says is expected), for every torch estimator
BAD_COMMON = [
    ("epochs", -1, "an integer >= 1"),
    ("epochs", 0, "an integer >= 1"),
    ("lr", 0.0, "a finite number > 0"),
    ("lr", -0.01, "a finite number > 0"),
    ("batch_size", 0, "an integer >= 1"),
    ("weight_decay", -0.1, "a finite number >= 0"),
    ("optimizer", "sgd", "one of ('adam', 'adamw')"),
    ("warmup_epochs", -1, "a finite number >= 0"),
    ("scheduler", "step", "one of ('cosine_restarts', 'constant')"),
    ("early_stopping_patience", -1, "an integer >= 1 or None"),
    ("precision", "fp16", "one of ('fp32', 'bf16')"),
    ("compile", "yes", "True or False"),
    ("n_jobs", 0, "an integer >= 1 or None"),
    ("hidden_size", 0, "an integer >= 1"),
]
_IMN_FAMILY = [
    ("cycle_timing", "cycles", "one of ('after_warmup', 'reference')"),
    ("n_blocks", -1, "an integer >= 0"),
    ("dropout", 1.5, "a finite number >= 0 and <= 1"),
    ("backbone", "transformer", "one of ('tabresnet', 'mlp')"),
    ("weight_l1", -0.1, "a finite number >= 0"),
    ("weight_l1_units", "log", "one of ('standardised', 'raw')"),
    ("snapshot_average", "median", "one of ('weights', 'predictions')"),
    ("snapshot_ensemble", "no", "True or False"),
]
BAD_OWN = {
    "TabResNet": [("n_blocks", -1, "an integer >= 0"), ("dropout", -0.1, "a finite number >= 0")],
    "IMN": _IMN_FAMILY,
    "LFRIMN": [
        *_IMN_FAMILY,
        ("gamma", -1.0, "a finite number >= 0"),
        ("neighborhood", "knn", "one of ('gaussian', 'smote')"),
        ("sigma", 0.0, "a finite number > 0"),
        ("neighbor_pass", "both", "one of ('joint', 'separate')"),
    ],
    "NIMO": [
        ("ridge_units", "per_epoch", "one of ('per_row', 'per_batch')"),
        ("sine_size", 0, "an integer >= 1"),
        ("delta", 0.0, "a finite number > 0"),
        ("noise_std", -0.2, "a finite number >= 0"),
    ],
}
BAD_PARAMETERS = [
    pytest.param(cls, name, value, expected, id=f"{cls.__name__}-{name}={value!r}")
    for cls in TORCH_ESTIMATORS
    for name, value, expected in [
        *BAD_COMMON,
        *BAD_OWN[cls.__name__.removesuffix("Classifier").removesuffix("Regressor")],
    ]
]


def _never_trains(*args, **kwargs):
    raise AssertionError("a bad parameter reached the trainer")


@pytest.mark.parametrize(("cls", "name", "value", "expected"), BAD_PARAMETERS)
def test_a_bad_parameter_is_refused_at_fit_before_any_training_step(
    cls, name, value, expected, monkeypatch
):
    """scikit-learn's InvalidParameterError naming the parameter, its value and what is
    expected, raised before the data are read (no ``n_features_in_``) or a network is built."""
    monkeypatch.setattr(torch_estimator, "train", _never_trains)
    X, y = _classification(2, n=40)
    model = cls(**{name: value})
    with pytest.raises(InvalidParameterError) as info:
        model.fit(X, y if is_classifier(model) else X[:, 0])
    assert str(info.value).startswith(f"{name}={value!r} is invalid: expected {expected}")
    assert isinstance(info.value, ConfigError)  # the runner records a configuration failure
    assert not hasattr(model, "n_features_in_") and not hasattr(model, "module_")
    assert model.get_params()[name] == value  # stored as given, as scikit-learn requires


@pytest.mark.parametrize("cls", TORCH_ESTIMATORS, ids=lambda c: c.__name__)
def test_parameters_clone_and_set_params_as_scikit_learn_expects(cls):
    model = cls(epochs=3, lr=0.02)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and copy is not model
    copy.set_params(epochs=-1)
    assert copy.get_params()["epochs"] == -1 and model.get_params()["epochs"] == 3
    with pytest.raises(InvalidParameterError, match=r"epochs=-1 is invalid"):
        copy.fit(*_classification(2, n=40))
