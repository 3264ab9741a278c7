"""Validation split of a training fold: seeded, stratified where possible."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from mesobench.data import validation_split
from mesobench.errors import ConfigError

Y = np.array([0] * 80 + [1] * 20)


def test_parts_are_disjoint_and_cover_all_rows():
    train, val = validation_split(Y, 0.2, seed=0)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(Y)))


def test_stratified_class_shares():
    _, val = validation_split(Y, 0.25, seed=0)
    assert np.bincount(Y[val]).tolist() == [20, 5]


def test_same_seed_same_split_other_seed_other_split():
    a = validation_split(Y, 0.2, seed=3)[1]
    assert np.array_equal(a, validation_split(Y, 0.2, seed=3)[1])
    assert not np.array_equal(a, validation_split(Y, 0.2, seed=4)[1])


def test_singleton_class_falls_back_to_unstratified_split(caplog):
    y = np.array([0] * 30 + [1] * 30 + [2])
    with caplog.at_level(logging.WARNING):
        train, val = validation_split(y, 0.2, seed=0)
    assert len(val) == 13 and len(train) == 48
    assert "not stratified" in caplog.text


def test_regression_targets_are_split_without_stratification():
    y = np.random.default_rng(0).normal(size=50)
    train, val = validation_split(y, 0.2, seed=0, stratify=False)
    assert (len(train), len(val)) == (40, 10)


def test_float_targets_are_never_stratified_even_if_asked():
    y = np.random.default_rng(0).normal(size=50)
    assert len(validation_split(y, 0.3, seed=0)[1]) == 15


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_fraction_outside_open_unit_interval_is_a_config_error(fraction):
    with pytest.raises(ConfigError, match="fraction"):
        validation_split(Y, fraction, seed=0)
