"""Fidelity in one raw feature space: every model gets the same perturbed raw rows, the same
baseline row and attributions per original feature (mesobench.metrics.raw_space, .scoring)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from mesobench.config.paths import compose_config
from mesobench.data import Preprocessor
from mesobench.errors import ConfigError
from mesobench.metrics import fidelity as fd
from mesobench.metrics.raw_space import RawSpace
from mesobench.metrics.scoring import ModelView, attribution_method, evaluate
from mesobench.models import (
    CatBoostClassifier,
    IMNClassifier,
    LogisticRegressionClassifier,
    NIMOClassifier,
    RandomForestClassifier,
    TabResNetClassifier,
    XGBoostClassifier,
)
from mesobench.protocol.settings import FidelitySettings

PREPROCESSING = {  # each model reads the raw rows through its own preprocessing mode
    "logreg": "neural",
    "imn": "neural",
    "nimo": "neural",
    "tabresnet": "neural",
    "random_forest": "ordinal",
    "xgboost": "native",
    "catboost": "native",
}


def _model(name: str):
    return {
        "logreg": lambda: LogisticRegressionClassifier(),
        "imn": lambda: IMNClassifier(epochs=3, hidden_size=8, random_state=0, n_jobs=1),
        "nimo": lambda: NIMOClassifier(epochs=3, hidden_size=8, random_state=0),
        "tabresnet": lambda: TabResNetClassifier(
            epochs=2, warmup_epochs=1, hidden_size=8, random_state=0
        ),
        "random_forest": lambda: RandomForestClassifier(n_estimators=20, random_state=0),
        "xgboost": lambda: XGBoostClassifier(n_estimators=20, random_state=0, n_jobs=1),
        "catboost": lambda: CatBoostClassifier(iterations=20, random_state=0, n_jobs=1),
    }[name]()


def _config(**changes):
    """The runner's fidelity settings (conf/config.yaml) with ``changes``."""
    base = FidelitySettings.from_config(compose_config()["fidelity"]).metrics
    return replace(base, **changes)


def _task(n_classes=2, n=300, seed=0):
    """Raw rows with numeric (one with missing values, one constant) and categorical columns."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(3, 0.5, n)),
            "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])),
            "size": rng.choice(["S", "M", "L", "XL"], n).astype(object),
            "flat": np.ones(n),
        }
    )
    score = (X["age"] - 40) / 10 + (X["colour"] == "red") * 1.5 - (X["size"] == "XL") * 1.0
    cuts = np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])
    y = np.digitize(score + rng.normal(0, 0.3, n), cuts)
    categorical = [False, False, True, True, False]
    return X.iloc[: n - 60], y[: n - 60], X.iloc[n - 60 :].reset_index(drop=True), categorical


def _view(name, n_classes=2):
    X_train, y_train, X_test, categorical = _task(n_classes)
    prep = Preprocessor(mode=PREPROCESSING[name], random_state=0)
    model = _model(name).fit(prep.fit_transform(X_train, y_train, categorical=categorical), y_train)
    space = _config().space(X_train, categorical, X_scored=X_test)
    kind = "binary" if n_classes == 2 else "multiclass"
    return ModelView(model, kind, space, prep.transform, prep.source_columns_), X_test


# --------------------------------------------------------------------------------------------
# The raw space
# --------------------------------------------------------------------------------------------


def test_raw_space_baselines_come_from_the_training_fold():
    X_train, _, X_test, categorical = _task()
    space = RawSpace.fit(X_train, categorical, X_scored=X_test)
    assert space.baseline[0] == pytest.approx(X_train["age"].mean())
    assert space.baseline[1] == pytest.approx(X_train["income"].mean())  # NaN ignored
    assert space.scale[0] == pytest.approx(X_train["age"].std(ddof=0))
    most = X_train["colour"].value_counts().idxmax()
    assert space.categories[2][int(space.baseline[2])] == most == "red"
    assert space.perturbable.tolist() == [True, True, True, True, False]  # "flat" is constant
    median = RawSpace.fit(X_train, categorical, numeric_baseline="median")
    assert median.baseline[0] == pytest.approx(X_train["age"].median())
    missing = RawSpace.fit(X_train, categorical, categorical_baseline="missing")
    assert np.isnan(missing.baseline[2:4]).all()
    with pytest.raises(ConfigError, match="numeric_baseline"):
        RawSpace.fit(X_train, categorical, numeric_baseline="mode")


def test_raw_space_encoding_round_trips_missing_values_and_new_categories():
    X_train, _, X_test, categorical = _task()
    X_test = X_test.copy()
    X_test.loc[0, "size"] = "XXL"  # a category the training fold never saw
    X_test.loc[1, "colour"] = np.nan
    space = RawSpace.fit(X_train, categorical, X_scored=X_test)
    Z = space.encode(X_test)
    assert Z.shape == X_test.shape and np.isnan(Z[1, 2])
    back = space.decode(Z)
    assert back["size"].astype(object).tolist() == X_test["size"].tolist()
    assert back["colour"].isna()[1] and back["colour"].astype(object)[2] == X_test["colour"][2]
    np.testing.assert_array_equal(space.encode(back), Z)


# --------------------------------------------------------------------------------------------
# Attributions per original feature, relative to one baseline row
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes", [2, 3])
def test_logreg_attributions_are_per_raw_feature_and_sum_to_the_change_from_the_baseline(
    n_classes,
):
    view, X_test = _view("logreg", n_classes)
    Z = view.space.encode(X_test)
    attr = view.attribution(Z)
    assert attr.values.shape == (len(X_test), 5)  # one column per original feature
    out, base = view.output(Z), view.output(view.space.baseline[None, :])
    if n_classes > 2:
        out = np.take_along_axis(out, attr.target[:, None], axis=1)[:, 0]
        base = base[0, attr.target]
    np.testing.assert_allclose(attr.values.sum(1), out - base, atol=1e-6)
    assert np.all(attr.values[:, 4] == 0.0)  # the constant column never matters
    at_base = Z[:, 2] == view.space.baseline[2]  # rows already in the baseline colour
    assert at_base.any() and np.all(attr.values[at_base, 2] == 0.0)


def test_neural_attributions_sum_their_one_hot_columns():
    view, X_test = _view("imn")
    Z = view.space.encode(X_test)
    attr = view.attribution(Z)
    X_in = np.asarray(view.inputs(Z), dtype=np.float64)
    b_in = np.asarray(view.baseline_input, dtype=np.float64)
    impact = attr.slope * (X_in - b_in)  # per one-hot / numeric model column
    np.testing.assert_allclose(attr.values.sum(1), impact.sum(1), atol=1e-9)
    colour = [j for j, c in enumerate(view.groups.argmax(1)) if c == 2]
    assert len(colour) == 3  # one-hot: three model columns fold onto one raw feature
    np.testing.assert_allclose(attr.values[:, 2], impact[:, colour].sum(1), atol=1e-9)


def test_random_forest_now_has_attributions():
    assert attribution_method(_model("random_forest")) == "treeshap"


# --------------------------------------------------------------------------------------------
# The same perturbed raw rows for every model
# --------------------------------------------------------------------------------------------


def _recording(view: ModelView) -> list[np.ndarray]:
    """Every raw block the view hands its model from now on, as encoded matrices."""
    seen: list[np.ndarray] = []
    to_model = view.to_model

    def record(frame: pd.DataFrame):
        seen.append(view.space.encode(frame))
        return to_model(frame)

    view.to_model = record
    return seen


def test_a_one_hot_model_and_a_native_categorical_model_get_identical_perturbed_rows():
    """IMN (standardised one-hot input) and XGBoost (native categories) are scored on the same
    raw rows: same Yeh perturbations, faithfulness subsets and stability neighbours."""
    config = _config(sample_size=30, yeh_n_perturbations=4, faithfulness_sample_size=10)
    blocks = {}
    for name in ("imn", "xgboost"):
        view, X_test = _view(name)
        space, Z = view.space, view.space.encode(X_test.iloc[:30])
        attr = view.attribution(Z)
        seen = _recording(view)
        common = dict(baseline=space.baseline, perturbable=space.perturbable)
        fd.yeh_infidelity(
            attr.values, view.output, Z, categorical=space.categorical, rng=0, **common
        )
        fd.faithfulness_correlation(attr.values, view.output, Z, rng=0, **common)
        evaluate(view, X_test, seed=0, config=config)
        blocks[name] = seen
    imn, xgb = blocks["imn"], blocks["xgboost"]
    assert len(imn) >= 4 and [b.shape for b in imn[:2]] == [b.shape for b in xgb[:2]]
    for a, b in zip(imn[:2], xgb[:2], strict=True):  # Yeh, then faithfulness blocks
        assert a.tobytes() == b.tobytes()
    # within evaluate: the perturbation blocks whose rows do not depend on the attribution
    # order (deletion and insertion move features in each model's own order)
    assert imn[-1].tobytes() == xgb[-1].tobytes()  # the stability neighbours


# --------------------------------------------------------------------------------------------
# evaluate: every metric for every model, categorical-heavy tasks included
# --------------------------------------------------------------------------------------------

ATTRIBUTION_METRICS = (
    "yeh_infidelity",
    "yeh_scaled_infidelity",
    "deletion_auc",
    "insertion_auc",
    "faithfulness_correlation",
    "max_sensitivity",
    "avg_sensitivity",
)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("name", list(PREPROCESSING))
def test_every_model_gets_every_attribution_metric(name, n_classes):
    view, X_test = _view(name, n_classes)
    config = _config(sample_size=40, yeh_n_perturbations=4, n_neighbors=3)
    result = evaluate(view, X_test, seed=0, config=config)
    for metric in ATTRIBUTION_METRICS:
        assert np.isfinite(result.metrics[f"fidelity/{metric}"]), (name, metric)
    assert -1.0 <= result.metrics["fidelity/faithfulness_correlation"] <= 1.0
    assert result.params["fidelity.n_features"] == 5
    assert result.params["fidelity.n_features_perturbed"] == 4
    assert result.params["fidelity.n_categorical"] == 2
    assert ("fidelity/lfr_infidelity" in result.metrics) == (view.method == "local_linear")
    assert result.metrics == evaluate(view, X_test, seed=0, config=config).metrics


def test_a_linear_model_scores_exactly_in_the_raw_space():
    view, X_test = _view("logreg")
    result = evaluate(view, X_test, seed=0, config=_config(sample_size=50))
    m = result.metrics
    assert m["fidelity/lfr_infidelity"] < 1e-20 and m["fidelity/yeh_infidelity"] < 1e-12
    assert m["fidelity/faithfulness_correlation"] == pytest.approx(1.0, abs=1e-9)
    assert m["fidelity/insertion_auc"] > 0 > m["fidelity/deletion_auc"]
    assert m["fidelity/faithfulness_correlation_n_undefined"] == 0


def test_an_all_categorical_task_gets_stability_and_faithfulness():
    rng = np.random.default_rng(1)
    n = 300
    X = pd.DataFrame({f"c{j}": rng.choice(["a", "b", "c"], n).astype(object) for j in range(4)})
    y = ((X["c0"] == "a") | (X["c1"] == "b")).astype(int).to_numpy()
    categorical = [True] * 4
    prep = Preprocessor(mode="neural", random_state=0)
    model = LogisticRegressionClassifier().fit(prep.fit_transform(X, y, categorical=categorical), y)
    space = _config().space(X, categorical)
    view = ModelView(model, "binary", space, prep.transform, prep.source_columns_)
    m = evaluate(view, X, seed=0, config=_config(sample_size=40)).metrics
    for metric in ATTRIBUTION_METRICS:
        assert np.isfinite(m[f"fidelity/{metric}"]), metric
    assert m["fidelity/max_sensitivity"] > 0  # categories redrawn in the stability neighbourhood


def test_a_task_with_one_perturbable_feature_notes_why_faithfulness_is_undefined():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=200), "flat": np.zeros(200)})
    y = (X["x"] > 0).astype(int).to_numpy()
    prep = Preprocessor(mode="neural", random_state=0)
    model = LogisticRegressionClassifier().fit(prep.fit_transform(X, y), y)
    space = _config().space(X, [False, False])
    view = ModelView(model, "binary", space, prep.transform, prep.source_columns_)
    result = evaluate(view, X, seed=0, config=_config(sample_size=30))
    assert "fidelity/faithfulness_correlation" not in result.metrics
    assert any("1 perturbable feature" in note for note in result.notes)
    assert np.isfinite(result.metrics["fidelity/deletion_auc"])


def test_a_model_without_exact_attributions_keeps_its_run_and_says_why(monkeypatch):
    from mesobench.errors import AttributionUnavailableError

    view, X_test = _view("random_forest")

    def refuse(Z, target=None):
        raise AttributionUnavailableError("paths too deep for exact TreeSHAP")

    monkeypatch.setattr(view, "attribution", refuse)
    result = evaluate(view, X_test, seed=0, config=_config(sample_size=20))
    assert result.metrics == {}
    assert result.notes == ["fidelity: metrics skipped, paths too deep for exact TreeSHAP"]
