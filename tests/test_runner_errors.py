"""Bad input gets a clear, actionable message."""

from __future__ import annotations

import time

import pytest

from conftest import runner, runs_after, stored_runs


def test_unknown_model_names_the_available_ones(tmp_path, store):
    proc = runner("model=xgbost", store=store, tmp_path=tmp_path)
    assert proc.returncode != 0
    assert "Could not find 'model/xgbost'" in proc.stderr
    assert "xgboost" in proc.stderr and "catboost" in proc.stderr


def test_unknown_task_names_the_available_ones(tmp_path, store):
    proc = runner("task=credit-h", store=store, tmp_path=tmp_path)
    assert proc.returncode != 0
    assert "Could not find 'task/credit-h'" in proc.stderr
    assert "credit-g" in proc.stderr


def test_missing_csv_column_lists_the_columns(tmp_path, store):
    data = tmp_path / "t.csv"
    data.write_text("age,income,label\n1,2,a\n3,4,b\n5,6,a\n7,8,b\n")
    task = ("task=csv", f"task.path={data}", "task.target=lable")
    (run,) = runs_after(*task, store=store, tmp_path=tmp_path)
    assert run.info.status == "FAILED"
    assert "lable" in run.data.tags["error"] and "label" in run.data.tags["error"]


def test_an_uncached_task_offline_fails_fast_with_how_to_fix_it(tmp_path, store, openml_cache):
    start = time.perf_counter()
    (run,) = runs_after("task=adult", "data.offline=true", store=store, tmp_path=tmp_path)
    assert run.info.status == "FAILED"
    assert run.data.tags["error_type"] == "TaskNotAvailableError"
    assert "OPENML_CACHE_DIR" in run.data.tags["error"]
    assert time.perf_counter() - start < 60


REFUSED_SWEEPS = [
    (  # the models of one comparison are tuned unequally
        ("+experiment=quick", "model=xgboost,logreg", "hpo.models=[xgboost]", "hpo.n_trials=2"),
        ("protocol: default, but xgboost is tuned", "protocol.exempt.xgboost"),
    ),
    (("model=logreg,xgboost", "seed=-1"), ("seed=-1: expected an integer >= 0.",)),
    (("model=logreg", "seed=0,abc"), ("seed='abc': expected an integer >= 0.",)),  # swept
]


@pytest.mark.parametrize(
    ("overrides", "messages"), REFUSED_SWEEPS, ids=["protocol", "boundary", "swept"]
)
def test_a_bad_sweep_is_refused_whole_before_any_run(tmp_path, store, overrides, messages):
    proc = runner(
        *overrides, "task=diabetes", "fold=0", store=store, tmp_path=tmp_path, multirun=True
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert all(m in proc.stderr for m in messages), proc.stderr[-2000:]
    assert stored_runs(store) == []  # refused whole: no job ran


def test_a_single_run_against_its_protocol_exits_2_with_the_reason(tmp_path, store):
    proc = runner("model=logreg", "protocol.name=tuned", store=store, tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "protocol: tuned, but logreg is not tuned" in proc.stderr


BAD_VALUES = [
    (("fold=abc",), "fold='abc': expected an integer >= 0."),
    (("seed=-5",), "seed=-5: expected an integer >= 0."),
    (
        ("model=xgboost", "model.params.n_estimators=abc"),
        "model.params.n_estimators='abc': expected a number, as conf/model/xgboost.yaml",
    ),
    (("fidelity.sigma=-1",), "fidelity.sigma=-1: expected a finite number > 0."),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_VALUES, ids=lambda v: str(v)[:40])
def test_a_bad_value_exits_2_with_one_line_and_records_nothing(tmp_path, store, overrides, message):
    proc = runner("task=synthetic/c1", *overrides, store=store, tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert errors == [f"error: {message}"] or (
        len(errors) == 1 and errors[0].startswith(f"error: {message}")
    ), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert stored_runs(store) == []
