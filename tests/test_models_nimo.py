"""NIMO (SPEC §3): the model's defining properties, its sklearn contract and the toy acceptance."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from mesobench.data.synthetic import generate
from mesobench.errors import ConfigError
from mesobench.models import NIMOClassifier, NIMORegressor
from mesobench.models.nimo import NIMONetwork, positional_codes

SMALL = {"epochs": 15, "warmup_epochs": 2, "batch_size": 64, "n_jobs": 1}
# The toy task of the NIMO paper; full batch, no noise, a cosine schedule: ~3 s on one thread.
TOY = {
    "lr": 5e-3,
    "epochs": 1000,
    "noise_std": 0.0,
    "early_stopping_patience": None,
    "n_jobs": 1,
}


@pytest.fixture(scope="module")
def toy():
    sample = generate("toy", n_train=200, n_test=100, seed=0)
    model = NIMORegressor(random_state=0, **TOY).fit(np.asarray(sample.X_train), sample.y_train)
    return model, sample


def _classification(n_classes=2, n=300, seed=0):
    X, y = make_classification(
        n,
        6,
        n_informative=4,
        n_redundant=0,
        n_classes=n_classes,
        n_clusters_per_class=1,
        random_state=seed,
    )
    return X, y


# ---- the toy acceptance ------------------------------------------------------------------------


def test_toy_recovers_the_mean_marginal_effects(toy):
    model, sample = toy
    np.testing.assert_allclose(sample.truth.coefficients, [3.0, -3.0, 0.0])
    assert np.all(np.abs(model.coef_ - [3.0, -3.0, 0.0]) < 0.3)
    assert abs(model.coef_[2]) < 0.05


def test_finite_difference_marginal_effect_at_zero_equals_beta(toy):
    model, _ = toy
    h = 1e-3
    for j in range(3):
        step = np.zeros((2, 3))
        step[0, j], step[1, j] = h, -h
        up, down = model.predict(step)
        assert (up - down) / (2 * h) == pytest.approx(model.coef_[j], abs=1e-4)


def test_modulation_is_exactly_zero_at_the_origin(toy):
    model, _ = toy
    with torch.no_grad():
        g = model.module_.eval().modulation(torch.zeros(4, 3))
    assert float(g.abs().max()) < 1e-6
    # so the local coefficients at x = 0 are β and the output there is β_0
    explanation = model.explain(np.zeros((1, 3)))
    np.testing.assert_allclose(explanation.weights[0], model.coef_, atol=1e-6)
    assert model.predict(np.zeros((1, 3)))[0] == pytest.approx(model.intercept_, abs=1e-9)


def test_interaction_map_marks_x3_as_non_interacting(toy):
    model, _ = toy
    strength = model.interaction_strength_
    assert strength.shape == (3,)
    assert strength[2] < 0.05 * strength[:2].min()
    summary = model.describe()
    assert summary["interaction_share"][2] < 0.05


def test_toy_predicts_well(toy):
    model, sample = toy
    mse = np.mean((model.predict(np.asarray(sample.X_test)) - sample.y_test) ** 2)
    assert mse < 0.1 * np.var(sample.y_test)


# ---- the network -------------------------------------------------------------------------------


def test_positional_code_is_the_binary_code_of_j_in_plus_minus_half():
    codes = positional_codes(5)  # ⌊log2 5⌋ + 1 = 3 bits, j = 1..5
    expected = np.array([[0, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0], [1, 0, 1]]) - 0.5
    np.testing.assert_array_equal(codes.numpy(), expected)
    assert positional_codes(8).shape == (8, 4)


def test_batched_modulation_equals_the_per_feature_network_calls():
    torch.manual_seed(0)
    d = 6
    net = NIMONetwork(d, n_outputs=2, hidden_size=16, sine_size=8, amplitude=2.0).eval()
    x = torch.randn(5, d)

    def explicit(inp):  # net([x_{-j}, code_j]) with the concatenations of the reference
        code = inp[:, d:]
        z1 = torch.tanh(net.fc1(inp))
        z1 = torch.cat([z1, code], 1)
        z2 = torch.sin(2 * math.pi * net.fc2(z1))
        return torch.tanh(net.fc3(torch.cat([z2, z1], 1)))

    with torch.no_grad():
        g = net.modulation(x)
        for j in range(d):
            masked = x.clone()
            masked[:, j] = 0
            code = net.codes[j].expand(5, -1)
            out = explicit(torch.cat([masked, code], 1))
            out0 = explicit(torch.cat([torch.zeros(1, d), net.codes[j : j + 1]], 1))
            expected = 2.0 * net.scale * (out - out0)
            torch.testing.assert_close(g[:, j, :], expected, atol=1e-5, rtol=1e-5)


def test_modulation_of_feature_j_ignores_x_j():
    torch.manual_seed(0)
    net = NIMONetwork(4, 1).eval()
    x = torch.randn(3, 4)
    moved = x.clone()
    moved[:, 1] += 5.0
    with torch.no_grad():
        torch.testing.assert_close(net.modulation(x)[:, 1], net.modulation(moved)[:, 1])


def test_noise_is_on_in_training_and_off_at_inference():
    torch.manual_seed(0)
    net = NIMONetwork(3, 1, noise_std=0.2, zero_init=False)  # zero-initialised fc3 hides noise
    x = torch.randn(4, 3)
    with torch.no_grad():
        assert not torch.equal(net.train().modulation(x), net.modulation(x))
        assert torch.equal(net.eval().modulation(x), net.modulation(x))


def test_gradient_flows_through_the_closed_form_beta():
    X = torch.randn(64, 4)
    y = X[:, 0] * (1 + torch.tanh(X[:, 1])) + 0.1 * torch.randn(64)
    model = NIMORegressor()
    torch.manual_seed(0)
    net = NIMONetwork(4, 1)
    loss = model._loss(net, X, y)
    loss.backward()
    assert net.fc3.weight.grad.abs().sum() > 0
    assert net.c.grad.abs().sum() > 0  # only through the solve (and the sparsity penalty)
    assert net.fc1.weight.grad[:, :4].abs().sum() > 0


def test_regression_beta_is_the_adaptive_ridge_closed_form_on_the_training_rows(toy):
    model, sample = toy
    net = model.module_
    X = torch.tensor(sample.X_train.to_numpy(), dtype=torch.float32)
    with torch.no_grad():
        B = net.eval().design(X)[:, :, 0].double().numpy()
    c = np.abs(net.c.detach().double().numpy()[0])
    y = (sample.y_train - model.y_mean_) / model.y_scale_
    Z = np.column_stack([np.ones(len(y)), B * c])
    penalty = np.diag([1e-8 * model.ridge] + [model.ridge] * 3)
    gamma = np.linalg.solve(Z.T @ Z / len(y) + penalty, Z.T @ y / len(y))
    np.testing.assert_allclose(model.coef_, c * gamma[1:] * model.y_scale_, rtol=1e-4, atol=1e-5)


def test_per_batch_ridge_is_the_references_lambda_on_each_batch_gram_matrix():
    X, y = _classification(2)
    per_row = NIMOClassifier(ridge=0.5, random_state=0, **SMALL).fit(X, y)
    assert per_row.ridge_per_row_ == 0.5
    per_batch = NIMOClassifier(ridge=1.0, ridge_units="per_batch", random_state=0, **SMALL)
    assert per_batch.fit(X, y).ridge_per_row_ == pytest.approx(1.0 / SMALL["batch_size"])
    with pytest.raises(ConfigError, match="ridge_units"):
        NIMOClassifier(ridge_units="per_epoch", **SMALL).fit(X, y)


# ---- the scikit-learn contract -----------------------------------------------------------------


def test_clone_and_get_params_round_trip():
    model = NIMOClassifier(ridge=0.5, group_penalty=0.2, delta=1.0, random_state=3)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert copy.get_params()["ridge"] == 0.5
    assert NIMORegressor().set_params(sparsity=0.1).sparsity == 0.1


@pytest.mark.parametrize("method", ["predict", "predict_proba", "explain", "decision_function"])
def test_methods_before_fit_raise_not_fitted(method):
    with pytest.raises(NotFittedError):
        getattr(NIMOClassifier(), method)(np.zeros((2, 3)))
    with pytest.raises(NotFittedError):
        NIMORegressor().describe()


def test_binary_classifier_learns_and_explains_its_logit():
    X, y = _classification(2, n=400)
    model = NIMOClassifier(random_state=0, **SMALL).fit(X[:300], y[:300])
    assert roc_auc_score(y[300:], model.predict_proba(X[300:])[:, 1]) > 0.85
    explanation = model.explain(X[300:])
    assert explanation.weights.shape == (100, 6) and explanation.intercept.shape == (100,)
    np.testing.assert_allclose(
        explanation.output(X[300:]), model.decision_function(X[300:]), atol=1e-4, rtol=0
    )
    assert model.coef_.shape == (6,) and isinstance(model.intercept_, float)


def test_multiclass_runs_and_explains_every_class_logit():
    X, y = _classification(3, n=400)
    model = NIMOClassifier(random_state=0, **SMALL).fit(X[:300], y[:300])
    assert roc_auc_score(y[300:], model.predict_proba(X[300:]), multi_class="ovr") > 0.8
    explanation = model.explain(X[300:])
    assert explanation.weights.shape == (100, 6, 3) and explanation.intercept.shape == (100, 3)
    np.testing.assert_allclose(
        explanation.output(X[300:]), model.decision_function(X[300:]), atol=1e-4, rtol=0
    )
    assert model.coef_.shape == (3, 6) and model.intercept_.shape == (3,)
    assert model.interaction_strength_.shape == (6,)


def test_regression_works_in_y_units_and_explains_predict():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (200, 3))
    y = X[:, 0] * (1 + 0.5 * np.tanh(X[:, 1]))
    unit = NIMORegressor(random_state=0, **SMALL).fit(X, y)
    scaled = NIMORegressor(random_state=0, **SMALL).fit(X, 100 * y + 7)
    np.testing.assert_allclose(scaled.predict(X), 100 * unit.predict(X) + 7, rtol=1e-6)
    np.testing.assert_allclose(scaled.coef_, 100 * unit.coef_, rtol=1e-6)
    assert scaled.intercept_ == pytest.approx(100 * unit.intercept_ + 7, rel=1e-6)
    explanation = scaled.explain(X)
    np.testing.assert_allclose(explanation.output(X), scaled.predict(X), atol=1e-8, rtol=0)


def test_describe_is_json_serialisable_with_the_interaction_structure():
    X, y = _classification(3)
    summary = NIMOClassifier(random_state=0, **SMALL).fit(X, y).describe()
    json.dumps(summary)
    assert np.shape(summary["coef"]) == (3, 6)
    assert len(summary["interaction_strength"]) == 6
    assert summary["feature_index"] == list(range(6))


def test_constant_and_zero_columns_give_finite_outputs():
    X, y = _classification(2)
    X = np.column_stack([X, np.zeros(len(X)), np.full(len(X), 3.0)])
    model = NIMOClassifier(random_state=0, **SMALL).fit(X, y)
    assert np.all(np.isfinite(model.predict_proba(X)))
    assert model.coef_[6] == 0.0


def test_wide_one_hot_input_trains_in_chunks():
    rng = np.random.default_rng(0)
    n, d = 300, 500  # 150 000 (row, feature) pairs: the checkpointed chunk path
    X = (rng.uniform(size=(n, d)) < 0.05).astype(np.float64)
    y = (X[:, :10].sum(1) + rng.normal(0, 0.3, n) > 0.5).astype(int)
    model = NIMOClassifier(random_state=0, epochs=2, warmup_epochs=1, n_jobs=1).fit(X, y)
    assert np.all(np.isfinite(model.predict_proba(X)))
    assert model.explain(X[:5]).weights.shape == (5, d)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_and_explains_on_cuda():
    X, y = _classification(3)
    model = NIMOClassifier(random_state=0, device="cuda", **SMALL).fit(X, y)
    assert model.module_.beta.is_cuda
    np.testing.assert_allclose(model.predict_proba(X).sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(
        model.explain(X).output(X), model.decision_function(X), atol=1e-4, rtol=0
    )


def test_ridge_solve_is_exact_for_a_batch_of_wide_systems_on_two_threads():
    """Multiclass NIMO solves one (d+1)-square system per class each step. torch 2.13's batched
    CPU LU returned invalid pivots for such a batch at d ≈ 600 with 2 threads (NIMO on the har
    shape failed on its first step), so the solve must hold there, and match a per-system one."""
    from mesobench.models.nimo import ridge_solve

    gen = torch.Generator().manual_seed(0)
    C, m, p = 4, 900, 700
    Z = torch.randn(C, m, p, generator=gen)
    w = torch.rand(C, m, generator=gen) + 0.1
    rhs = torch.randn(C, p, generator=gen)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        gamma = ridge_solve(Z, w, rhs, 0.01)
    finally:
        torch.set_num_threads(threads)
    for c in range(C):
        gram = ((Z[c] * w[c, :, None]).T @ Z[c] / m).double()  # formed in float32, as in NIMO
        lhs = 0.5 * (gram + gram.T) + 0.01 * torch.eye(p, dtype=torch.float64)
        lhs[0, 0] -= 0.01 * (1 - 1e-8)  # the intercept is (almost) unpenalised
        expected = torch.linalg.solve(lhs, rhs[c].double())
        torch.testing.assert_close(gamma[c].double(), expected, rtol=1e-4, atol=1e-5)
