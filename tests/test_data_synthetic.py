"""Synthetic tasks: sizes, seeding, and ground truth that matches the papers' formulas."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from mesobench.data import GENERATORS, SyntheticTruth, generate, load_fold
from mesobench.errors import ConfigError

DIMS = {
    "lfr_example": 2,
    "lfr_smooth3": 3,
    "lfr_sine3": 3,
    "lfr_tanh4": 4,
    "lfr_quad3": 3,
    "toy": 3,
    "r1": 5,
    "r2": 10,
    "r3": 50,
    "linear": 10,
    "c1": 3,
    "c2": 10,
    "c3": 50,
}


def _cfg(generator, **kw):
    return {"source": "synthetic", "name": f"synthetic/{generator}", "generator": generator, **kw}


def test_every_generator_is_listed_with_its_dimension():
    assert set(GENERATORS) == set(DIMS)


@pytest.mark.parametrize("name", sorted(DIMS))
def test_shapes_and_column_names(name):
    fold = load_fold(_cfg(name, n_train=40, n_val=20, n_test=30), 0)
    d = DIMS[name]
    assert fold.X_train.shape == (40, d) and fold.X_val.shape == (20, d)
    assert fold.X_test.shape == (30, d)
    assert list(fold.X_train.columns) == [f"x{j}" for j in range(1, d + 1)]
    assert fold.categorical == [False] * d


def test_nimo_config_sizes_give_a_fixed_validation_set():
    fold = load_fold(_cfg("toy", n_train=200, n_val=100, n_test=100), 0)
    assert (len(fold.y_train), len(fold.y_val), len(fold.y_test)) == (200, 100, 100)
    assert fold.has_validation


def test_no_validation_set_when_n_val_is_zero():
    fold = load_fold(_cfg("lfr_example", n_train=2000, n_val=0, n_test=500), 0)
    assert fold.X_val is None and fold.y_val is None


def test_same_fold_same_data():
    a = load_fold(_cfg("r1"), 2)
    b = load_fold(_cfg("r1"), 2)
    np.testing.assert_array_equal(a.X_train.to_numpy(), b.X_train.to_numpy())
    np.testing.assert_array_equal(a.y_test, b.y_test)


def test_fold_k_is_the_replicate_with_seed_base_seed_plus_k():
    fold = load_fold(_cfg("r1", base_seed=10), 3)
    sample = generate("r1", n_train=200, n_test=100, seed=13)
    np.testing.assert_array_equal(fold.y_train, sample.y_train)


def test_different_folds_differ():
    a, b = load_fold(_cfg("toy"), 0), load_fold(_cfg("toy"), 1)
    assert not np.allclose(a.X_train.to_numpy(), b.X_train.to_numpy())


def test_test_size_does_not_change_the_training_data():
    a = generate("toy", n_train=50, n_test=10, seed=0)
    b = generate("toy", n_train=50, n_test=99, n_val=7, seed=0)
    np.testing.assert_array_equal(a.y_train, b.y_train)


def test_uniform_inputs_in_minus_two_two():
    X = generate("r3", n_train=500, n_test=1, seed=0).X_train.to_numpy()
    assert X.min() >= -2 and X.max() <= 2 and X.min() < -1.9 and X.max() > 1.9


def test_lfr_example_gradient_is_one_plus_the_other_feature():
    s = generate("lfr_example", n_train=2000, n_test=500, seed=0)
    X = s.X_test.to_numpy()
    expected = np.column_stack([1 + X[:, 1], 1 + X[:, 0]])
    np.testing.assert_allclose(s.truth.gradient(X), expected, rtol=0, atol=1e-12)


def test_lfr_example_local_intercept_is_one_minus_product():
    s = generate("lfr_example", n_train=2000, n_test=500, seed=0)
    X = s.X_test.to_numpy()
    np.testing.assert_allclose(s.truth.local_intercept(X), 1 - X[:, 0] * X[:, 1], atol=1e-12)


def test_lfr_example_inputs_are_standard_normal_and_noise_is_0_1():
    s = generate("lfr_example", n_train=2000, n_test=500, seed=0)
    X = s.X_train.to_numpy()
    assert np.abs(X.mean(0)).max() < 0.1 and np.abs(X.std(0) - 1).max() < 0.1
    residual = s.y_train - s.truth.mean(X)
    assert 0.09 < residual.std() < 0.11
    assert (s.truth.coefficients.tolist(), s.truth.intercept) == ([1.0, 1.0], 1.0)


def test_toy_coefficients_are_the_mem_at_zero():
    truth = SyntheticTruth("toy")
    np.testing.assert_array_equal(truth.coefficients, [3.0, -3.0, 0.0])
    assert truth.intercept == 0.0


def test_r3_coefficients():
    truth = SyntheticTruth("r3")
    expected = np.zeros(50)
    expected[[0, 1, 3, 4]] = [-2, 2, 3, -1]
    np.testing.assert_allclose(truth.coefficients, expected, atol=1e-12)


def test_linear_task_has_its_beta_everywhere():
    s = generate("linear", n_train=100, n_test=10, seed=0)
    beta = np.arange(-5.0, 5.0)
    np.testing.assert_array_equal(s.truth.coefficients, beta)
    np.testing.assert_allclose(s.truth.gradient(s.X_test), np.tile(beta, (10, 1)))
    np.testing.assert_allclose(s.truth.mean(s.X_test), s.X_test.to_numpy() @ beta)


def test_c3_is_r3_with_ten_times_the_coefficients():
    X = generate("r3", n_train=64, n_test=1, seed=0).X_train
    np.testing.assert_allclose(SyntheticTruth("c3").mean(X), 10 * SyntheticTruth("r3").mean(X))


def test_c1_and_c2_intercepts():
    assert SyntheticTruth("c1").intercept == 1.0
    assert SyntheticTruth("c2").intercept == -10.0


@pytest.mark.parametrize("name", sorted(DIMS))
def test_gradient_matches_finite_differences(name):
    truth = SyntheticTruth(name)
    X = np.random.default_rng(1).uniform(-2, 2, size=(5, DIMS[name]))
    h = 1e-6
    numeric = np.column_stack(
        [(truth.mean(X + h * e) - truth.mean(X - h * e)) / (2 * h) for e in np.eye(DIMS[name])]
    )
    np.testing.assert_allclose(truth.gradient(X), numeric, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["c1", "c2", "c3"])
def test_classification_labels_are_binary_with_both_classes(name):
    fold = load_fold(_cfg(name), 0)
    assert fold.task.kind == "binary" and fold.task.classes == ("0", "1")
    assert fold.y_train.dtype == np.int64
    assert set(np.unique(fold.y_train)) == {0, 1}


def test_classification_labels_follow_the_logit():
    s = generate("c1", n_train=2000, n_test=1, seed=0)
    agree = ((s.truth.mean(s.X_train) > 0) == (s.y_train == 1)).mean()
    assert agree > 0.8


@pytest.mark.parametrize("name", ["toy", "r1", "r2", "r3", "linear", "lfr_example"])
def test_regression_targets_are_float(name):
    fold = load_fold(_cfg(name), 0)
    assert fold.task.kind == "regression" and fold.task.classes is None
    assert fold.y_train.dtype == np.float64


def test_truth_survives_pickling():
    fold = load_fold(_cfg("toy"), 0)
    clone = pickle.loads(pickle.dumps(fold))
    X = fold.X_test.to_numpy()
    np.testing.assert_array_equal(clone.truth.gradient(X), fold.truth.gradient(X))


def test_fold_outside_n_folds_is_a_config_error():
    with pytest.raises(ConfigError, match=r"0\.\.4"):
        load_fold(_cfg("toy", n_folds=5), 5)


def test_more_replicates_leave_the_first_folds_data_as_they_were():
    """The NIMO tasks have 10 replicates; folds 0-4 are those they had with 5."""
    for k in (0, 4):
        five = load_fold(_cfg("r3", n_folds=5, n_val=100), k)
        ten = load_fold(_cfg("r3", n_folds=10, n_val=100), k)
        for part in ("X_train", "X_val", "X_test"):
            np.testing.assert_array_equal(getattr(five, part), getattr(ten, part))
        np.testing.assert_array_equal(five.y_test, ten.y_test)


def test_unknown_generator_lists_the_known_ones():
    with pytest.raises(ConfigError, match="lfr_example"):
        load_fold(_cfg("r9"), 0)
