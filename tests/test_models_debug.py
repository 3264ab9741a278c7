"""The deliberately failing estimators fail the way the runner's tests rely on."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from mesobench.errors import DivergenceError
from mesobench.models.debug import AlwaysFailsClassifier, DivergingClassifier


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 4))
    return X, np.where(X[:, 0] > 0, "a", "b")


def test_always_fails_raises_its_message():
    with pytest.raises(RuntimeError, match="boom"):
        AlwaysFailsClassifier(message="boom").fit(*_data())


def test_always_fails_is_never_fitted():
    with pytest.raises(NotFittedError):
        AlwaysFailsClassifier().predict_proba(np.zeros((1, 4)))


def test_diverging_classifier_raises_divergence_error_through_the_trainer():
    with pytest.raises(DivergenceError, match=r"diverged.*epoch \d+/5"):
        DivergingClassifier(random_state=0).fit(*_data())


def test_diverging_classifier_with_a_sane_rate_trains():
    model = DivergingClassifier(lr=1e-2, random_state=0).fit(*_data())
    np.testing.assert_allclose(model.predict_proba(np.zeros((3, 4))).sum(1), 1.0)


@pytest.mark.parametrize("cls", [AlwaysFailsClassifier, DivergingClassifier])
def test_debug_models_clone_with_the_runner_knobs(cls):
    model = cls(random_state=3, device="cpu")
    assert clone(model).get_params() == model.get_params()
