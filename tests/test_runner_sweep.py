"""End to end through the real CLI: sweeps land in MLflow, resume, and survive failures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import run_cli, runner, runs_after
from conftest import stored_runs as _runs
from mesobench.config import identity

# One xdist worker takes this module's tests: they share a module-scoped fixture, built once.
pytestmark = pytest.mark.xdist_group("runner_sweep")


def _status(runs):
    return sorted(r.info.status for r in runs)


@pytest.fixture(scope="module")
def swept(tmp_path_factory, openml_cache):
    """2 models × 2 cached tasks × 2 folds in a fresh store, run once for the module."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = (
        "model=logreg,random_forest",
        "task=diabetes,breast-w",
        "fold=0,1",
    )
    first = runner(*args, store=store, tmp_path=tmp_path, multirun=True)
    return tmp_path, store, first, args


def test_a_sweep_of_8_configurations_lands_8_finished_runs(swept):
    _, store, first, _ = swept
    assert first.returncode == 0, first.stderr[-3000:]
    runs = _runs(store)
    assert _status(runs) == ["FINISHED"] * 8
    keys = {(r.data.tags["model"], r.data.tags["task"], r.data.tags["fold"]) for r in runs}
    assert len(keys) == 8

    def mean_auroc(task):
        return np.mean([r.data.metrics["auroc"] for r in runs if r.data.tags["task"] == task])

    # OpenML's 10-fold logistic-regression AUROC: breast-w 0.995, diabetes 0.834
    assert mean_auroc("breast-w") > 0.97
    assert mean_auroc("diabetes") > 0.78


def test_the_sweep_reports_its_progress(swept):
    _, _, first, _ = swept
    out = first.stdout + first.stderr
    assert "[sweep] 8 runs planned" in out
    assert "[sweep] 8/8 done, 8 finished, 0 failed, 0 skipped, 0 left" in out


def test_rerunning_the_sweep_skips_every_finished_run(swept):
    tmp_path, store, _, args = swept
    again = runner(*args, store=store, tmp_path=tmp_path, multirun=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _status(_runs(store)) == ["FINISHED"] * 8
    assert "8/8 done, 0 finished, 0 failed, 8 skipped" in again.stdout + again.stderr


def test_runs_carry_the_tags_and_metrics_a_reader_needs(swept):
    _, store, _, _ = swept
    run = _runs(store)[0]
    for tag in ("model", "task", "task_id", "fold", "seed", "sweep_id", "config_hash"):
        assert run.data.tags.get(tag) not in (None, ""), tag
    assert len(run.data.tags["mlflow.source.git.commit"]) == 40  # the repository's HEAD
    assert run.data.tags["mesobench.git_dirty"] in {"true", "false"}
    assert run.data.tags["mesobench.run_key_version"] == identity.RUN_KEY_VERSION
    for metric in ("auroc", "auroc_ovo_macro", "accuracy", "log_loss", "fit_seconds"):
        assert metric in run.data.metrics
    assert run.data.params["preprocessing.mode"] in {"neural", "ordinal"}


def test_a_failing_model_is_recorded_failed_while_the_others_finish(tmp_path, store, openml_cache):
    swept = runs_after(
        "model=logreg,debug_fail",
        "task=diabetes",
        "fold=0",
        store=store,
        tmp_path=tmp_path,
        multirun=True,
    )
    runs = {r.data.tags["model"]: r for r in swept}
    assert runs["logreg"].info.status == "FINISHED"
    assert runs["debug_fail"].info.status == "FAILED"
    assert "deliberate failure" in runs["debug_fail"].data.tags["error"]


def test_a_diverging_model_is_recorded_failed_with_its_reason(tmp_path, store, openml_cache):
    (run,) = runs_after("model=debug_diverge", "task=diabetes", store=store, tmp_path=tmp_path)
    assert run.info.status == "FAILED"
    assert run.data.tags["error_type"] == "DivergenceError"


def test_the_aggregator_tabulates_the_store(swept):
    tmp_path, store, _, _ = swept
    out = tmp_path / "report"
    proc = run_cli(
        "mesobench.aggregate", f"tracking.uri={store}", f"out_dir={out}", tmp_path=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(out / "auroc_by_task.csv")
    assert set(table["model"]) == {"logreg", "random_forest"}
    assert set(table["task"]) == {"diabetes", "breast-w"}
    assert (table["n_folds"] == 2).all()
    ranks = pd.read_csv(out / "average_rank.csv")
    assert ranks["average_rank"].sum() == pytest.approx(3.0)  # ranks 1 and 2 averaged
    assert "Average rank" in (out / "README.md").read_text()


def _rare_class_csv(path):
    rng = np.random.default_rng(0)
    n = 150
    x = rng.normal(size=(n, 3))
    label = np.where(x[:, 0] > 0, "pos", "neg").astype(object)
    label[7] = "rare"  # one row: every fold either trains or tests without it
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["colour"] = rng.choice(["red", "green", "blue"], n)
    frame["const"] = 1.0
    frame["label"] = label
    frame.to_csv(path, index=False)


def test_a_csv_task_runs_end_to_end_even_when_a_fold_lacks_a_class(tmp_path, store):
    data = tmp_path / "table.csv"
    _rare_class_csv(data)
    folds = ("fold=0,1,2,3,4",)
    task = ("task=csv", f"task.path={data}", "task.target=label")
    runs = runs_after("model=logreg", *task, *folds, store=store, tmp_path=tmp_path, multirun=True)
    assert _status(runs) == ["FINISHED"] * 5
    notes = " ".join(r.data.tags.get("notes", "") for r in runs)
    assert "const (constant)" in notes
    assert "classes absent from the training data: ['rare']" in notes
    lacking = [r for r in runs if "classes absent" in r.data.tags.get("notes", "")]
    assert len(lacking) == 1
    others = [r.data.metrics["auroc"] for r in runs if r not in lacking]
    assert min(others) > 0.9
    # the unseen class is scored p=0: its one-vs-rest AUROC is 0.5, which honestly pulls the
    # macro mean of that fold down instead of hiding it
    assert 0.6 < lacking[0].data.metrics["auroc"] < min(others)


def test_an_in_run_search_logs_every_trial_and_the_best_parameters(tmp_path, store, openml_cache):
    search = ("hpo.n_trials=4",)
    (run,) = runs_after("model=logreg", "task=diabetes", *search, store=store, tmp_path=tmp_path)
    assert run.info.status == "FINISHED"
    history = MlflowClient(tracking_uri=store).get_metric_history(
        run.info.run_id, "hpo/validation_score"
    )
    assert sorted(m.step for m in history) == [0, 1, 2, 3]
    assert float(run.data.params["hpo.best.C"]) > 0
