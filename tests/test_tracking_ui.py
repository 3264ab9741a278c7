"""What a person browsing the MLflow UI relies on: the experiment's kind, a run's datasets, source,
description, nesting under its sweep, training curves and picture."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from mesobench.store.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, Tracker


def test_a_new_experiment_is_a_model_training_experiment(store):
    tracker = Tracker(store, "mesobench")
    exp = MlflowClient(tracking_uri=store).get_experiment(tracker.experiment_id)
    assert exp.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"


def test_an_existing_experiment_gets_the_kind_but_a_kind_set_by_hand_is_kept(store):
    client = MlflowClient(tracking_uri=store)
    old = client.create_experiment("old")
    Tracker(store, "old")
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    mine = client.create_experiment("mine", tags={EXPERIMENT_KIND_TAG: "finetuning"})
    Tracker(store, "mine")
    assert client.get_experiment(mine).tags[EXPERIMENT_KIND_TAG] == "finetuning"


# ---- series, datasets, descriptions ------------------------------------------------------------


def test_series_are_logged_in_batches_with_their_steps(store):
    tracker = Tracker(store, "mesobench")
    run_id = tracker.claim("k", "run", {}).run_id
    calls = []
    log_batch = tracker.client.log_batch
    tracker.client.log_batch = lambda *a, **k: calls.append(1) or log_batch(*a, **k)
    curves = {"train/loss": [3.0, 2.0, 1.0] * 400, "train/lr": [0.1] * 1200}
    tracker.log_series(run_id, curves, first_step=1)
    assert len(calls) == 3  # 2400 points, 1000 a call
    history = MlflowClient(tracking_uri=store).get_metric_history(run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, 1201))
    assert {m.step: m.value for m in history}[3] == 1.0


def _synthetic_fold():
    from mesobench.data import load_fold

    task = {"source": "synthetic", "name": "synthetic/c1", "generator": "c1", "type": "binary"}
    task |= {"n_train": 50, "n_val": 0, "n_test": 30, "noise": 0.1, "base_seed": 0}
    return task, load_fold(task, 0)


def test_a_fold_is_described_as_a_train_and_a_test_dataset_with_digest_source_and_schema():
    import json

    from mesobench.store.inputs import fold_inputs

    task, data = _synthetic_fold()
    train, test = fold_inputs(data, task)
    assert (train.context, test.context) == ("train", "test")
    assert train.name == "synthetic/c1/fold0/train" and train.digest != test.digest
    assert json.loads(train.profile)["num_rows"] == 50
    columns = [c["name"] for c in json.loads(train.schema)["mlflow_colspec"]]
    assert columns == [*data.X_train.columns, data.task.target or "target"]
    assert "mesobench.data.synthetic:c1" in train.source
    assert fold_inputs(data, task)[0].digest == train.digest  # same data, same digest


def test_the_fast_schema_is_the_one_mlflow_infers():
    import warnings

    import numpy as np
    import pandas as pd
    from mlflow.types.utils import _infer_schema

    from mesobench.store.inputs import schema_of

    n = 300
    frame = pd.DataFrame(
        {
            "x": np.linspace(0, 1, n).astype(np.float32),
            "gap": np.where(np.arange(n) == 250, np.nan, 1.0),  # missing after the typed rows
            "c": pd.Categorical(np.where(np.arange(n) % 3 == 0, "a", "b")),
            "k": pd.Categorical.from_codes(np.where(np.arange(n) == 200, -1, 0), ["u"]),
            "y": np.arange(n) % 2,
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert schema_of(frame) == _infer_schema(frame)
    assert [c.required for c in schema_of(frame).inputs] == [True, False, True, False, True]


def test_an_openml_fold_names_its_task_page_and_a_csv_fold_its_file(tmp_path, openml_cache):
    from mesobench.data import load_fold
    from mesobench.store.inputs import fold_inputs

    task = {"source": "openml", "name": "diabetes", "task_id": 37, "dataset_id": 37}
    task |= {"target": "class", "type": "binary"}
    data = load_fold(task, 0, openml_cache_dir=str(openml_cache), offline="true")
    train, _ = fold_inputs(data, task)
    assert train.source_type == "http" and "openml.org/t/37" in train.source
    csv = tmp_path / "t.csv"
    csv.write_text(
        "a,b,label\n" + "\n".join(f"{i},{i % 3},{'x' if i % 2 else 'y'}" for i in range(40))
    )
    task = {"source": "csv", "name": "csv", "path": str(csv), "target": "label", "type": "auto"}
    task |= {"n_folds": 2, "cv_seed": 0, "categorical": None}
    train, _ = fold_inputs(load_fold(task, 0), task)
    assert str(csv) in train.source


def test_a_description_says_what_ran_how_to_rerun_it_and_its_headline_metrics():
    from mesobench.store import run_note

    tags = {"model": "imn", "task": "diabetes", "task_id": 37, "fold": 3, "seed": 0}
    tags |= {"sweep_id": "s1", "device": "cpu"}
    command = run_note.command_line(["model=imn", "task=diabetes", "fold=3"])
    metrics = {"auroc": 0.83251, "fit_seconds": 12.0, "other": 1.0}
    note = run_note.describe(tags, command, run_note.results(metrics))
    assert "**imn** on **diabetes** (OpenML task 37), fold 3, seed 0" in note
    assert "`python -m mesobench.run model=imn task=diabetes fold=3 force=true`" in note
    assert "| auroc | 0.8325 |" in note and "other" not in note
    assert "**FAILED**: boom" in run_note.describe(tags, command, run_note.failure("boom"))


def test_torch_models_expose_one_point_per_epoch_of_loss_lr_and_validation_score():
    from conftest import binary_interaction_task
    from mesobench.models import IMNClassifier

    X, y, *_ = binary_interaction_task()
    model = IMNClassifier(epochs=6, hidden_size=16, early_stopping_patience=50, random_state=0)
    model.fit(X[:300], y[:300], eval_set=(X[300:400], y[300:400]))
    curves = model.training_curves()
    assert set(curves) == {"loss", "lr", "val_score", "epoch_seconds"}
    assert all(len(values) == 6 for values in curves.values())
    assert curves["lr"][0] < curves["lr"][3]  # the warm-up
    assert curves["val_score"][0] < 0.75 < curves["val_score"][-1] <= 1.0  # it learns
    assert curves["loss"][-1] < curves["loss"][0]


# ---- the sweep's parent -----------------------------------------------------------------------


def test_a_sweep_parent_is_found_by_its_sweep_reopened_by_a_rerun_and_not_a_benchmark_run(
    store, tmp_path
):
    from mesobench.runner import progress, sweep_parent
    from mesobench.store.integrity import audit

    tracker = Tracker(store, "mesobench")
    parent = sweep_parent.open_parent(tracker, "s1", "python -m mesobench.run -m fold=0,1")
    from mesobench.store.runs import find_sweep_parent

    assert find_sweep_parent(tracker, "s1") == parent and find_sweep_parent(tracker, "s2") is None
    child = tracker.claim("k", "run", {"sweep_id": "s1", "mlflow.parentRunId": parent}).run_id
    tracker.end(child, "FINISHED")
    (tmp_path / progress._STATE).write_text('{"total": 2, "start": 0}')
    (tmp_path / progress._EVENTS).write_text("FINISHED\nSKIPPED\n")
    sweep_parent.close_parent(tracker, parent, "s1", "cmd", tmp_path)
    run = tracker.client.get_run(parent)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {
        "sweep/planned": 2.0,
        "sweep/finished": 1.0,
        "sweep/failed": 0.0,
        "sweep/skipped": 1.0,
    }
    assert "1 finished" in run.data.tags["mlflow.note.content"]
    assert sweep_parent.open_parent(tracker, "s1", "again") == parent  # a rerun reopens it
    assert tracker.client.get_run(parent).info.status == "RUNNING"
    integrity = audit(store, sweep_id="s1")
    assert (integrity.keys, integrity.finished, integrity.failed) == (1, 1, 0)


# ---- end to end through the CLI ---------------------------------------------------------------


@pytest.mark.slow
def test_a_sweep_and_an_imn_run_carry_what_the_ui_shows(tmp_path, store, openml_cache):
    from conftest import run_cli, runs_after, stored_runs
    from mesobench.config.tags import PARENT_RUN_TAG, RUN_KEY_TAG, SWEEP_PARENT_TAG

    sweep = ("model=logreg,xgboost", "task=diabetes,breast-w", "fold=0", "sweep_id=ui")
    runs_after(*sweep, store=store, tmp_path=tmp_path, multirun=True)
    imn = ("model=imn_fast", "task=diabetes", "model.params.epochs=4", "fidelity.sample_size=50")
    runs_after(*imn, store=store, tmp_path=tmp_path)
    runs = stored_runs(store, parents=True)
    (parent,) = [r for r in runs if r.data.tags.get(SWEEP_PARENT_TAG)]
    assert parent.info.status == "FINISHED" and parent.data.metrics["sweep/finished"] == 4
    bench = {r.info.run_name: r for r in runs if RUN_KEY_TAG in r.data.tags}
    assert len(bench) == 5 and {r.info.status for r in bench.values()} == {"FINISHED"}
    for name, run in bench.items():
        contexts = sorted(d.tags[0].value for d in run.inputs.dataset_inputs)
        assert contexts == ["test", "train"], name
        assert len(run.data.tags["mlflow.source.git.commit"]) == 40
        assert run.data.tags["mlflow.source.name"] == "mesobench.run"
        assert f"**{run.data.tags['model']}**" in run.data.tags["mlflow.note.content"]
        assert "| auroc |" in run.data.tags["mlflow.note.content"]
        nested = run.data.tags.get(PARENT_RUN_TAG) == parent.info.run_id
        assert nested == (run.data.tags["model"] != "imn_fast"), name  # a single run has none
    imn_run = bench["imn_fast/diabetes/fold0/seed0"]
    client = MlflowClient(tracking_uri=store)
    history = client.get_metric_history(imn_run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    pictures = {a.path for a in client.list_artifacts(imn_run.info.run_id, "pictures")}
    assert pictures == {"pictures/explanation.png", "pictures/training_curves.png"}

    runs_after(*sweep, store=store, tmp_path=tmp_path, multirun=True)
    again = stored_runs(store, parents=True)
    (reopened,) = [r for r in again if r.data.tags.get(SWEEP_PARENT_TAG)]
    assert reopened.info.run_id == parent.info.run_id  # same sweep id: the same parent
    assert reopened.data.metrics["sweep/skipped"] == 4 and reopened.info.status == "FINISHED"

    report = run_cli(
        "mesobench.aggregate",
        f"tracking.uri={store}",
        f"out_dir={tmp_path / 'report'}",
        f"tracking.artifact_location={tmp_path / 'artifacts'}",
        tmp_path=tmp_path,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    attached = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/README.md" in attached  # make report: the sweep's parent holds its report

    off = runs_after(
        *imn,
        "force=true",
        "tracking.log_curves=false",
        "tracking.log_pictures=false",
        store=store,
        tmp_path=tmp_path,
    )
    latest = max(
        (r for r in off if r.data.tags.get("model") == "imn_fast"), key=lambda r: r.info.start_time
    )
    assert not any(k.startswith("train/") for k in latest.data.metrics)
    assert not client.list_artifacts(latest.info.run_id, "pictures")


@pytest.mark.slow
def test_system_metrics_are_sampled_when_switched_on(tmp_path, store):
    from conftest import runs_after

    on = ("tracking.system_metrics=true", "tracking.system_metrics_interval_s=1")
    (run,) = runs_after(
        "model=debug_slow",
        "model.params.seconds=4",
        "task=synthetic/c1",
        *on,
        store=store,
        tmp_path=tmp_path,
    )
    assert run.info.status == "FINISHED"
    assert "system/cpu_utilization_percentage" in run.data.metrics


def test_make_ui_prints_the_link_that_lands_on_each_experiments_runs_table(store):
    from mesobench.store import ui

    exp_id = Tracker(store, "mesobench").experiment_id
    link = f"mesobench: http://h:1/#/experiments/{exp_id}?workflowType=machine_learning"
    assert link in ui.links(store, "http://h:1")
