"""IMNClassifier / IMNRegressor: scikit-learn estimators whose explanations are their own model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from conftest import protocol
from mesobench.config.paths import compose_config
from mesobench.data import Preprocessor, load_fold
from mesobench.errors import ConfigError, DataError
from mesobench.models import Explanation, IMNClassifier, IMNRegressor
from mesobench.models.imn import HyperNetwork
from mesobench.protocol.pipeline import evaluate_fold

REPO = Path(__file__).resolve().parents[1]
SMALL = {"epochs": 8, "warmup_epochs": 2, "batch_size": 64, "hidden_size": 32, "n_jobs": 1}
LINEAR_TASK = OmegaConf.load(REPO / "conf" / "task" / "synthetic" / "linear.yaml")


def _classification(n_classes=2, n=300, seed=0):
    X, y = make_classification(
        n, 8, n_informative=5, n_classes=n_classes, n_clusters_per_class=1, random_state=seed
    )
    return X, y


# ---- the hypernetwork ---------------------------------------------------------------------------


def test_hypernetwork_returns_logits_equal_to_the_generated_linear_model():
    torch.manual_seed(0)
    net = HyperNetwork(in_features=5, n_outputs=3, hidden_size=16, n_blocks=1).eval()
    x = torch.randn(7, 5)
    logits, weights = net(x)
    assert logits.shape == (7, 3) and weights.shape == (7, 6, 3)
    manual = (x[:, :, None] * weights[:, :5, :]).sum(1) + weights[:, 5, :]
    torch.testing.assert_close(logits, manual)


# ---- learning and the explanation contract ------------------------------------------------------


@pytest.mark.slow  # trains IMN to convergence
def test_generated_weights_recover_the_coefficients_of_the_linear_task():
    """y = Σ β_j x_j + ε, β = (−5, ..., 4): every test row's weights are β (in raw x units)."""
    data = load_fold(LINEAR_TASK, 0)
    beta = data.truth.coefficients
    # 300 epochs at batch 64 with strong dropout and a light L1 term keep w(x) flat (a few s);
    # a light L2 too: the paper's 0.01 under Adam (L2 in the gradient) biases w(x) towards 0
    model = IMNRegressor(
        epochs=300,
        dropout=0.5,
        weight_l1=0.01,
        weight_decay=1e-3,
        snapshot_ensemble=False,
        random_state=0,
        n_jobs=1,
    ).fit(data.X_train, data.y_train)
    explanation = model.explain(data.X_test)
    assert np.mean(np.abs(explanation.weights - beta)) < 0.1
    assert np.mean(np.abs(explanation.intercept - data.truth.intercept)) < 0.2


def test_regression_explanation_reproduces_predictions_in_the_units_of_y():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = 1000 + 50 * (X @ [1.0, -2.0, 0.5, 0.0]) + rng.normal(size=200)
    model = IMNRegressor(random_state=0, **SMALL).fit(X, y)
    explanation = model.explain(X)
    assert explanation.weights.shape == (200, 4) and explanation.intercept.shape == (200,)
    np.testing.assert_allclose(explanation.output(X), model.predict(X), atol=1e-4)


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("snapshot_ensemble", [True, False])
def test_explanation_reproduces_the_decision_function(n_classes, snapshot_ensemble):
    X, y = _classification(n_classes)
    model = IMNClassifier(random_state=0, snapshot_ensemble=snapshot_ensemble, **SMALL).fit(X, y)
    explanation = model.explain(X)
    assert isinstance(explanation, Explanation)
    logits = model.decision_function(X)
    if n_classes == 2:
        assert explanation.weights.shape == (len(X), 8) and logits.shape == (len(X),)
    else:
        assert explanation.weights.shape == (len(X), 8, n_classes)
        assert logits.shape == (len(X), n_classes)
    assert explanation.intercept.shape == logits.shape
    np.testing.assert_allclose(explanation.output(X), logits, atol=1e-4)


def test_snapshot_ensemble_averages_the_three_cycle_end_models():
    X, y = _classification(2)
    model = IMNClassifier(random_state=0, **SMALL).fit(X, y)
    assert len(model.snapshots_) == 3
    assert model.train_result_.cycle_end_epochs[-1] == SMALL["epochs"]
    with torch.no_grad():
        logits = [m(torch.tensor(X, dtype=torch.float32))[0][:, 0] for m in model.snapshots_]
    ensemble = torch.stack(logits).mean(0).double().numpy()
    np.testing.assert_allclose(model.decision_function(X), ensemble, atol=1e-4)
    assert not np.allclose(logits[0].numpy(), logits[-1].numpy())  # three different models
    single = IMNClassifier(random_state=0, snapshot_ensemble=False, **SMALL).fit(X, y)
    assert single.snapshots_ == [single.module_]


@pytest.mark.parametrize("n_classes", [2, 3])
def test_predictions_average_is_the_references_mean_probability_explained_by_the_last_snapshot(
    n_classes,
):
    X, y = _classification(n_classes)
    model = IMNClassifier(random_state=0, snapshot_average="predictions", **SMALL).fit(X, y)
    with torch.no_grad():
        logits = [m(torch.tensor(X, dtype=torch.float32))[0].double() for m in model.snapshots_]
    if n_classes == 2:
        p = torch.stack([torch.sigmoid(z[:, 0]) for z in logits]).mean(0).numpy()
        np.testing.assert_allclose(model.predict_proba(X)[:, 1], p, atol=1e-5)
    else:
        p = torch.stack([torch.softmax(z, dim=1) for z in logits]).mean(0).numpy()
        np.testing.assert_allclose(model.predict_proba(X), p, atol=1e-5)
    last = logits[-1].numpy()
    explained = model.explain(X).output(X)
    np.testing.assert_allclose(explained, last[:, 0] if n_classes == 2 else last, atol=1e-4)
    # weights-averaging (the default) differs: it is the averaged local linear model
    default = IMNClassifier(random_state=0, **SMALL).fit(X, y)
    assert not np.allclose(default.predict_proba(X), model.predict_proba(X), atol=1e-6)


def test_an_unknown_snapshot_average_is_refused_at_fit():
    X, y = _classification(2)
    with pytest.raises(ConfigError, match="snapshot_average"):
        IMNClassifier(snapshot_average="median", **SMALL).fit(X, y)


def test_l1_term_can_leave_out_the_intercept_row():
    weights = torch.zeros(4, 3, 1)
    weights[:, -1, 0] = 2.0  # intercept only
    with_b = IMNClassifier(weight_l1=0.5)._weight_penalty(weights)
    without_b = IMNClassifier(weight_l1=0.5, l1_intercept=False)._weight_penalty(weights)
    assert float(with_b) == pytest.approx(0.5 * 2.0 / 3) and float(without_b) == 0.0


def test_learns_an_easy_problem_to_high_auroc():
    X, y = make_classification(700, 10, n_informative=6, class_sep=1.5, random_state=1)
    model = IMNClassifier(random_state=0, **{**SMALL, "epochs": 20}).fit(X[:500], y[:500])
    assert roc_auc_score(y[500:], model.predict_proba(X[500:])[:, 1]) > 0.9


def test_multiclass_on_the_cached_balance_scale_task(openml_cache):
    task = OmegaConf.load(REPO / "conf" / "task" / "balance-scale.yaml")
    data = load_fold(task, 0, openml_cache_dir=str(openml_cache), offline="true")
    prep = Preprocessor(mode="neural", random_state=0)
    X_train = prep.fit_transform(data.X_train, data.y_train, categorical=data.categorical)
    X_test = prep.transform(data.X_test)
    model = IMNClassifier(random_state=0, **{**SMALL, "epochs": 20}).fit(X_train, data.y_train)
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert roc_auc_score(data.y_test, proba, multi_class="ovr") > 0.9
    explanation = model.explain(X_test)
    assert explanation.weights.shape == (len(X_test), X_test.shape[1], 3)
    np.testing.assert_allclose(
        explanation.output(X_test), model.decision_function(X_test), atol=1e-4
    )


# ---- early stopping -----------------------------------------------------------------------------


def test_early_stopping_uses_a_single_model():
    X, y = _classification(2, n=400)
    model = IMNClassifier(random_state=0, early_stopping_patience=3, **{**SMALL, "epochs": 60})
    model.fit(X[:300], y[:300], eval_set=(X[300:], y[300:]))
    assert len(model.train_result_.val_scores) == model.train_result_.epochs_run
    assert model.snapshots_ == [model.module_]  # the restored best epoch, no snapshot ensemble


def test_eval_set_is_ignored_without_early_stopping():
    X, y = _classification(2, n=400)
    model = IMNClassifier(random_state=0, **SMALL).fit(X[:300], y[:300], eval_set=(X, y))
    assert model.train_result_.val_scores == []
    assert model.train_result_.epochs_run == SMALL["epochs"]


def test_regressor_early_stops_on_validation_mse():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = X @ [1.0, 2.0, -1.0]
    model = IMNRegressor(random_state=0, early_stopping_patience=2, **{**SMALL, "epochs": 30})
    model.fit(X[:200], y[:200], eval_set=(X[200:], y[200:]))
    assert all(score <= 0 for score in model.train_result_.val_scores)
    assert model.train_result_.best_score == max(model.train_result_.val_scores)


# ---- scikit-learn contract ----------------------------------------------------------------------


@pytest.mark.parametrize("cls", [IMNClassifier, IMNRegressor])
@pytest.mark.parametrize("method", ["predict", "explain"])
def test_not_fitted_error_before_fit(cls, method):
    with pytest.raises(NotFittedError):
        getattr(cls(), method)(np.zeros((2, 3)))


@pytest.mark.parametrize("cls", [IMNClassifier, IMNRegressor])
def test_get_params_set_params_and_clone_round_trip(cls):
    model = cls(hidden_size=64, weight_l1=1e-3, l1_intercept=False, random_state=5)
    params = model.get_params()
    assert params["hidden_size"] == 64 and params["weight_l1"] == 1e-3
    assert params["device"] == "cpu" and params["snapshot_ensemble"] is True
    copy = clone(model)
    assert copy.get_params() == params and copy is not model
    copy.set_params(dropout=0.1, early_stopping_patience=5)
    assert copy.dropout == 0.1 and copy.early_stopping_patience == 5
    assert model.dropout == 0.25 and model.early_stopping_patience is None


def test_a_single_class_is_refused():
    with pytest.raises(DataError, match="one class only"):
        IMNClassifier(**SMALL).fit(np.zeros((10, 2)), np.ones(10))


def test_wrong_feature_count_at_explain_is_refused():
    X, y = _classification(2)
    model = IMNClassifier(random_state=0, **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.explain(X[:, :3])


def test_invalid_settings_fail_at_fit_with_the_parameter_named():
    X, y = _classification(2)
    with pytest.raises(ConfigError, match="batch_size"):
        IMNClassifier(batch_size=0).fit(X, y)


def test_describe_reports_the_training_as_plain_values():
    X, y = _classification(2)
    info = IMNClassifier(random_state=0, **SMALL).fit(X, y).describe()
    assert info["epochs_run"] == SMALL["epochs"] and info["n_snapshots"] == 3
    assert json.loads(json.dumps(info)) == info


# ---- configs ------------------------------------------------------------------------------------


def test_model_config_repeats_the_paper_defaults_of_the_class():
    cfg = compose_config("model=imn")["model"]
    assert cfg["name"] == "imn" and cfg["preprocessing"] == "neural"
    assert cfg["use_validation"] is False  # no early stopping → no validation split needed
    defaults = IMNClassifier().get_params()
    assert {k: defaults[k] for k in cfg["params"]} == cfg["params"]
    paper = {"lr": 0.01, "weight_decay": 0.01, "weight_l1": 0.1, "batch_size": 64, "epochs": 500}
    assert {k: cfg["params"][k] for k in paper} == paper
    assert cfg["params"]["snapshot_ensemble"] is True


def test_through_the_runner_protocol_the_explanation_identity_holds():
    data = load_fold(LINEAR_TASK, 0)
    model = IMNRegressor(random_state=0, **SMALL)
    outcome = evaluate_fold(data, model, protocol("model=imn"), seed=0)
    assert outcome.params["n_fit"] == len(data.y_train)  # no validation split was cut
    assert outcome.metrics["explain_identity_error"] < 1e-6
    assert "explanations/global_importance.csv" in outcome.artifacts


def test_hpo_space_names_constructor_parameters():
    space = compose_config("model=imn")["hpo"]["space"]["params"]
    assert set(space) == {"epochs", "lr", "batch_size", "weight_decay", "weight_l1", "dropout"}
    assert set(space) <= set(IMNClassifier().get_params())
    assert space["batch_size"]["choices"] == [32, 64, 128, 256, 512]


# ---- GPU ----------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_predicts_and_explains_on_cuda():
    X, y = _classification(3)
    model = IMNClassifier(random_state=0, **{**SMALL, "device": "cuda"}).fit(X, y)
    assert all(next(m.parameters()).is_cuda for m in model.snapshots_)
    proba = model.predict_proba(X)
    assert isinstance(proba, np.ndarray)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-9)
    explanation = model.explain(X)
    np.testing.assert_allclose(explanation.output(X), model.decision_function(X), atol=1e-4)
