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


def test_a_sweep_that_tunes_its_models_unequally_is_refused_before_any_run(tmp_path, store):
    proc = runner(
        "+experiment=quick",
        "model=xgboost,logreg",
        "hpo.models=[xgboost]",
        "hpo.n_trials=2",
        "task=diabetes",
        "fold=0",
        store=store,
        tmp_path=tmp_path,
        multirun=True,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "protocol: default, but xgboost is tuned" in proc.stderr
    assert "protocol.exempt.xgboost" in proc.stderr  # how to state why, if it is meant
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
        "model.params.n_estimators='abc': expected an integer, as conf/model/xgboost.yaml",
    ),
    (("fidelity.sigma=-1",), "fidelity.sigma=-1: expected a number > 0."),
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


def test_a_sweep_with_a_bad_value_is_refused_before_any_job(tmp_path, store):
    proc = runner(
        "task=synthetic/c1",
        "model=logreg,xgboost",
        "seed=-1",
        store=store,
        tmp_path=tmp_path,
        multirun=True,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "seed=-1: expected an integer >= 0." in proc.stderr
    assert stored_runs(store) == []
