"""Saving fitted models pickle-free and loading them back (mesobench.models.persistence)."""

from __future__ import annotations

import json
from importlib import metadata

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from sklearn.datasets import make_classification, make_regression

from conftest import composed, run_key_of
from mesobench.config.paths import register_resolvers
from mesobench.data import Preprocessor, load_fold
from mesobench.models import (
    CatBoostClassifier,
    CatBoostRegressor,
    IMNClassifier,
    IMNRegressor,
    LFRIMNClassifier,
    LFRIMNRegressor,
    LogisticRegressionClassifier,
    NIMOClassifier,
    NIMORegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    TabResNetClassifier,
    TabResNetRegressor,
    XGBoostClassifier,
    XGBoostRegressor,
)
from mesobench.models.debug import SlowClassifier
from mesobench.models.persistence import (
    MANIFEST,
    WEIGHTS,
    ModelLoadError,
    UnsupportedModelError,
    load_model,
    save_model,
)
from mesobench.protocol.pipeline import saved_model_files, score

register_resolvers()

TORCH = {"epochs": 6, "warmup_epochs": 1, "batch_size": 64, "random_state": 0, "n_jobs": 1}
IMN = {**TORCH, "hidden_size": 16, "n_blocks": 1}  # 6 epochs: three cosine cycles, 3 snapshots
NIMO = {**TORCH, "hidden_size": 8, "sine_size": 16}
BOOST = {"random_state": 0, "n_jobs": 1}

# (estimator factory, expected weight file)
CLASSIFIERS = {
    "imn": (lambda: IMNClassifier(**IMN), WEIGHTS),
    "lfr_imn": (lambda: LFRIMNClassifier(**IMN, neighborhood="smote"), WEIGHTS),
    "tabresnet": (lambda: TabResNetClassifier(**IMN), WEIGHTS),
    "nimo": (lambda: NIMOClassifier(**NIMO), WEIGHTS),
    "xgboost": (lambda: XGBoostClassifier(n_estimators=15, **BOOST), "model.ubj"),
    "catboost": (lambda: CatBoostClassifier(iterations=15, **BOOST), "model.cbm"),
    "logreg": (lambda: LogisticRegressionClassifier(), None),
    "random_forest": (lambda: RandomForestClassifier(n_estimators=5, **BOOST), "model.skops"),
}
REGRESSORS = {
    "imn": (lambda: IMNRegressor(**IMN), WEIGHTS),
    "lfr_imn": (lambda: LFRIMNRegressor(**IMN), WEIGHTS),
    "tabresnet": (lambda: TabResNetRegressor(**IMN), WEIGHTS),
    "nimo": (lambda: NIMORegressor(**NIMO), WEIGHTS),
    "xgboost": (lambda: XGBoostRegressor(n_estimators=15, **BOOST), "model.ubj"),
    "catboost": (lambda: CatBoostRegressor(iterations=15, **BOOST), "model.cbm"),
    "random_forest": (lambda: RandomForestRegressor(n_estimators=5, **BOOST), "model.skops"),
}


def _classification(n_classes: int):
    X, y = make_classification(
        240, 6, n_informative=4, n_classes=n_classes, n_clusters_per_class=1, random_state=1
    )
    return X[:200], y[:200], X[200:]


def _regression():
    X, y = make_regression(240, 6, n_informative=4, noise=0.5, random_state=1)
    return X[:200], y[:200], X[200:]


def _outputs(est, X) -> dict[str, np.ndarray]:
    """Everything a loaded model must reproduce: predictions, margins, explanations."""
    out = {"predict": np.asarray(est.predict(X))}
    for method in ("predict_proba", "decision_function"):
        if hasattr(est, method):
            out[method] = np.asarray(getattr(est, method)(X), dtype=np.float64)
    if hasattr(est, "explain"):
        explanation = est.explain(X)
        out["weights"], out["intercept"] = explanation.weights, explanation.intercept
    if hasattr(est, "contributions"):
        out["contributions"], out["bias"] = est.contributions(X)
    return out


def _roundtrip(est, X_new, tmp_path, weight_file):
    names = save_model(est, tmp_path / "saved")
    assert names[0] == MANIFEST
    assert (weight_file in names) if weight_file else names == [MANIFEST]
    loaded = load_model(tmp_path / "saved")
    assert loaded is not est and type(loaded) is type(est)
    assert loaded.get_params() == est.get_params()
    expected, got = _outputs(est, X_new), _outputs(loaded, X_new)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        if value.dtype.kind in "fc":
            np.testing.assert_allclose(got[key], value, rtol=1e-6, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(got[key], value, err_msg=key)
    if hasattr(est, "describe"):
        assert loaded.describe() == est.describe()
    return loaded


@pytest.mark.parametrize("n_classes", [2, 3], ids=["binary", "multiclass"])
@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_a_saved_classifier_loads_with_identical_outputs(name, n_classes, tmp_path):
    factory, weight_file = CLASSIFIERS[name]
    X, y, X_new = _classification(n_classes)
    labels = np.array(["ant", "bee", "cat"])[y]  # string labels survive the round trip
    est = factory().fit(X, labels)
    loaded = _roundtrip(est, X_new, tmp_path, weight_file)
    assert list(loaded.classes_) == list(est.classes_)
    if name == "lfr_imn":
        assert loaded.neighbor_index_ is None  # training-only, not saved


@pytest.mark.parametrize("name", sorted(REGRESSORS))
def test_a_saved_regressor_loads_with_identical_outputs(name, tmp_path):
    factory, weight_file = REGRESSORS[name]
    X, y, X_new = _regression()
    _roundtrip(factory().fit(X, y), X_new, tmp_path, weight_file)


def test_an_early_stopped_booster_on_a_dataframe_keeps_its_best_round_and_categories(tmp_path):
    X, y, X_new = _classification(2)
    rng = np.random.default_rng(0)

    def frame(A):
        df = pd.DataFrame(A, columns=[f"x{i}" for i in range(A.shape[1])])
        df["colour"] = pd.Categorical(rng.choice(["red", "blue"], len(A)), ["blue", "red"])
        return df

    est = XGBoostClassifier(n_estimators=200, early_stopping_rounds=3, **BOOST)
    est.fit(frame(X[:150]), y[:150], eval_set=(frame(X[150:]), y[150:]))
    assert est.model_.best_iteration < 199
    loaded = _roundtrip(est, frame(X_new), tmp_path, "model.ubj")
    assert loaded.model_.best_iteration == est.model_.best_iteration
    assert list(loaded.feature_names_in_) == list(est.feature_names_in_)
    boosted = CatBoostClassifier(iterations=10, **BOOST).fit(frame(X), y)
    cat = _roundtrip(boosted, frame(X_new), tmp_path / "cat", "model.cbm")
    assert list(cat.feature_names_in_) == list(frame(X).columns)


def test_the_imn_snapshot_ensemble_is_saved_member_by_member(tmp_path):
    X, y, _ = _classification(2)
    est = IMNClassifier(**IMN).fit(X, y)
    assert len(est.snapshots_) == 3
    save_model(est, tmp_path)
    weights = torch.load(tmp_path / WEIGHTS, weights_only=True)
    assert len(weights["snapshots"]) == 3
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["class"] == "mesobench.models.imn.IMNClassifier"
    assert manifest["params"]["hidden_size"] == 16
    assert manifest["attributes"]["n_outputs_"] == 1
    assert manifest["libraries"]["torch"] == metadata.version("torch")


def _saved_logreg(tmp_path):
    X, y, _ = _classification(2)
    save_model(LogisticRegressionClassifier().fit(X, y), tmp_path)
    return tmp_path / MANIFEST


@pytest.mark.parametrize(
    "cls",
    [
        "sklearn.linear_model.LogisticRegression",
        "builtins.eval",
        "mesobench.models.baselines.BaseEstimator",  # imported into the package, not defined there
        "mesobench.models.baselines.np",
        "mesobench.models.persistence.Persistable",
        "mesobench.models.RandomForestClassifier",
    ],
)
def test_the_manifest_refuses_a_class_that_is_not_a_savable_mesobench_model(cls, tmp_path):
    manifest_path = _saved_logreg(tmp_path)
    manifest = json.loads(manifest_path.read_text())
    manifest["class"] = cls
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="refusing to load class"):
        load_model(tmp_path)


def test_a_newer_format_version_is_refused(tmp_path):
    manifest_path = _saved_logreg(tmp_path)
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="format version 99 is not supported"):
        load_model(tmp_path)


CALLS: list[str] = []


def _record(what: str) -> str:
    CALLS.append(what)
    return what


class _Payload:
    """Unpickling this runs ``_record`` — what a malicious weights file would do."""

    def __reduce__(self):
        return _record, ("code ran while loading",)


def test_weights_are_read_with_weights_only_so_a_pickled_object_is_refused(tmp_path):
    X, y, _ = _classification(2)
    save_model(TabResNetClassifier(**IMN).fit(X, y), tmp_path)
    weights = torch.load(tmp_path / WEIGHTS, weights_only=True)
    weights["module"]["extra"] = _Payload()
    torch.save(weights, tmp_path / WEIGHTS)
    with pytest.raises(ModelLoadError, match="weights_only=True"):
        load_model(tmp_path)
    assert CALLS == []


def test_a_model_without_a_pickle_free_format_is_not_saved(tmp_path):
    X, y, _ = _classification(2)
    slow = SlowClassifier(seconds=0.0).fit(X, y)
    with pytest.raises(UnsupportedModelError, match="SlowClassifier has no pickle-free"):
        save_model(slow, tmp_path / "saved")
    assert not (tmp_path / "saved").exists()
    files, note = saved_model_files(slow, ["a", "b"])
    assert files == {}
    assert note == "model not saved: SlowClassifier has no pickle-free format"


def test_a_forest_file_naming_a_foreign_type_is_refused(tmp_path):
    """skops loads only the types it trusts: a file naming anything but forest parts fails."""
    import skops.io

    X, y, _ = _classification(2)
    save_model(RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y), tmp_path)
    (tmp_path / "model.skops").write_bytes(skops.io.dumps({"payload": pd.Timestamp(0)}))
    with pytest.raises(ModelLoadError, match="types outside a forest"):
        load_model(tmp_path)


def test_the_switch_is_off_by_default_and_not_part_of_the_run_key():
    base = composed("model=imn_fast")
    assert base.artifacts.save_model is False
    assert run_key_of(base) == run_key_of(composed("model=imn_fast", "artifacts.save_model=true"))


@pytest.mark.slow  # a whole run into MLflow
def test_a_run_with_save_model_logs_a_model_that_reproduces_its_predictions(tmp_path):
    """End to end, through the time-limited child process: run → artifacts → load_model."""
    from mesobench.runner.execute import execute

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = composed(
        "model=imn_fast",
        "task=synthetic/c1",
        "model.params.epochs=4",
        "model.params.hidden_size=16",
        "model.params.n_blocks=1",
        "threads=1",
        "fidelity.enabled=false",
        "artifacts.save_model=true",
        "guards.time_limit_s=300",
        f"tracking.uri={store}",
        f"tracking.artifact_location={tmp_path / 'artifacts'}",
    )
    result = execute(cfg)
    assert result["status"] == "FINISHED", result
    client = MlflowClient(tracking_uri=store)
    run = client.get_run(result["run_id"])
    assert run.data.params["artifacts.save_model"] == "True"
    local = client.download_artifacts(run.info.run_id, "model", str(tmp_path / "download"))
    model = load_model(local)
    assert isinstance(model, IMNClassifier)

    # the run's test fold, preprocessed as the run did (fitted on the whole training fold)
    plain = OmegaConf.to_container(cfg, resolve=True)
    data = load_fold(plain["task"], 0)
    prep = Preprocessor(**plain["preprocessing"], random_state=0)
    prep.fit_transform(data.X_train, data.y_train, categorical=data.categorical)
    X_test = prep.transform(data.X_test)
    names = json.loads((tmp_path / "download" / "model" / "feature_names.json").read_text())
    assert names == list(prep.feature_names_out_)

    metrics = score(model, X_test, data.y_test, data.task.kind, data.n_classes)
    for name in ("auroc", "log_loss", "accuracy"):
        assert metrics[name] == pytest.approx(run.data.metrics[name], rel=1e-9, abs=1e-12)
    sample = pd.read_csv(
        client.download_artifacts(
            run.info.run_id, "explanations/local_weights_sample.csv", str(tmp_path / "dl2")
        )
    )
    explanation = model.explain(X_test)
    rows = sample["row"].to_numpy()
    np.testing.assert_allclose(sample[names].to_numpy(), explanation.weights[rows], rtol=1e-9)
    np.testing.assert_allclose(sample["intercept"], explanation.intercept[rows], rtol=1e-9)
