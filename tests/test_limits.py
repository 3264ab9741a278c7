"""Shapes a model refuses up front: the rule, its message, the runner, and the run key."""

from __future__ import annotations

import time

import pytest

from conftest import runs_after
from mesobench.config import identity
from mesobench.config.paths import compose_config
from mesobench.errors import MesobenchError
from mesobench.protocol.limits import Shape, ShapeRefused, check, refusal

NIMO = {"name": "nimo", "limits": {"max_cells": 1000}, "limits_reason": "too slow"}


def test_a_shape_within_the_limits_is_accepted():
    assert refusal(NIMO, Shape(rows=10, features=100, classes=2)) is None
    assert refusal({"name": "logreg"}, Shape(10**6, 10**4, 100)) is None


def test_a_refusal_names_the_numbers_the_reason_and_the_knob():
    why = refusal(NIMO, Shape(rows=100, features=20, classes=2))
    assert "2,000 training cells" in why and "model.limits.max_cells = 1,000" in why
    assert "too slow" in why and "model.limits.max_cells=null" in why
    with pytest.raises(ShapeRefused, match=r"\[task t\]"):
        check(NIMO, Shape(100, 20), "t")


def test_every_kind_of_limit_applies():
    shape = Shape(rows=100, features=20, classes=5)
    for key, over in [("max_rows", 99), ("max_features", 19), ("max_outputs", 99)]:
        assert refusal({"name": "m", "limits": {key: over}}, shape)
        assert refusal({"name": "m", "limits": {key: over + 1000}}, shape) is None
    with pytest.raises(MesobenchError, match="unknown limits"):
        refusal({"name": "m", "limits": {"max_widgets": 1}}, shape)


def test_the_declared_shape_is_the_training_part_of_the_task():
    assert Shape.declared({"n_rows": 1000, "n_features": 8, "n_classes": 2}) == Shape(900, 8, 2)
    assert Shape.declared({"source": "csv", "path": "x.csv"}) is None


def test_limits_do_not_change_the_run_key():
    lifted = compose_config("model=nimo", "model.limits.max_cells=null")
    assert identity.run_key(compose_config("model=nimo")) == identity.run_key(lifted)


def test_the_runner_refuses_before_loading_the_data(tmp_path, store):
    start = time.perf_counter()
    (run,) = runs_after("model=nimo", "task=shape/CIFAR_10", store=store, tmp_path=tmp_path)
    assert time.perf_counter() - start < 60  # drawing CIFAR_10's shape alone takes seconds
    assert run.info.status == "FAILED"
    assert run.data.tags["error_type"] == "ShapeRefused"
    assert "165,888,000 training cells" in run.data.tags["error"]
