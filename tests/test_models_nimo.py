"""NIMO (SPEC §3): the model's defining properties, its sklearn contract and the toy acceptance."""

from __future__ import annotations

import json
import math
from dataclasses import fields

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score
from torch import Tensor

from mesobench.data.synthetic import generate
from mesobench.errors import ConfigError
from mesobench.models import NIMOClassifier, NIMORegressor
from mesobench.models.nimo import NetworkForm, NIMONetwork, positional_codes, ridge_term

# One xdist worker takes this module's tests: they share a module-scoped fixture, built once.
pytestmark = pytest.mark.xdist_group("models_nimo")

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


def _network(n_features, n_outputs, noise_std=0.2, amplitude=1.0, **form) -> NIMONetwork:
    """A network with the details ``form`` (fields of :class:`NetworkForm`) switched."""
    form = NetworkForm(**form)
    return NIMONetwork(n_features, n_outputs, noise_std=noise_std, amplitude=amplitude, form=form)


def _explicit_nets(net: NIMONetwork, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(net(x_{-j}, j), net(0, j))`` before the bound, (m, d, C) and (d, C), one feature at a
    time with the concatenations of the reference (eval mode: no noise, no dropout)."""
    d = net.n_features

    def explicit(inp):
        code = inp[:, d:]
        z1 = torch.tanh(net.form.first_layer_scale * net.fc1(inp))
        z1 = torch.cat([z1, code], 1)
        z2 = torch.sin(2 * math.pi * net.fc2(z1))
        return net.fc3(torch.cat([z2, z1], 1))

    rows, zeros = [], []
    for j in range(d):
        masked = x.clone()
        masked[:, j] = 0
        rows.append(explicit(torch.cat([masked, net.codes[j].expand(len(x), -1)], 1)))
        zeros.append(explicit(torch.cat([torch.zeros(1, d), net.codes[j : j + 1]], 1))[0])
    return torch.stack(rows, 1), torch.stack(zeros)


def _closed_form_coef(model: NIMORegressor, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The adaptive-ridge β of ``model``'s current network on (X, y), in y's units (NumPy)."""
    net = model.module_.eval()
    with torch.no_grad():
        B = net.design(torch.tensor(X, dtype=torch.float32))[:, :, 0].double().numpy()
        s = net.scales().detach().double().numpy()[0]
    y = (y - model.y_mean_) / model.y_scale_
    Z = np.column_stack([np.ones(len(y)), B * s])
    penalty = np.diag([1e-8 * model.ridge] + [model.ridge] * B.shape[1])
    gamma = np.linalg.solve(Z.T @ Z / len(y) + penalty, Z.T @ y / len(y))
    return s * gamma[1:] * model.y_scale_


def test_batched_modulation_equals_the_per_feature_network_calls():
    torch.manual_seed(0)
    net = NIMONetwork(6, n_outputs=2, hidden_size=16, sine_size=8, amplitude=2.0).eval()
    x = torch.randn(5, 6)
    with torch.no_grad():
        out, out0 = _explicit_nets(net, x)
        expected = 2.0 * net.scale * (torch.tanh(out) - torch.tanh(out0))
        torch.testing.assert_close(net.modulation(x), expected, atol=1e-5, rtol=1e-5)


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
    net = _network(3, 1, noise_std=0.2, output_init="default")  # a zero fc3 hides noise
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
    expected = _closed_form_coef(model, sample.X_train.to_numpy(), np.asarray(sample.y_train))
    np.testing.assert_allclose(model.coef_, expected, rtol=1e-4, atol=1e-5)


def test_per_batch_ridge_is_the_references_lambda_on_each_batch_gram_matrix():
    X, y = _classification(2)
    per_row = NIMOClassifier(ridge=0.5, random_state=0, **SMALL).fit(X, y)
    assert per_row.ridge_per_row_ == 0.5
    per_batch = NIMOClassifier(ridge=1.0, ridge_units="per_batch", random_state=0, **SMALL)
    assert per_batch.fit(X, y).ridge_per_row_ == pytest.approx(1.0 / SMALL["batch_size"])
    with pytest.raises(ConfigError, match="ridge_units"):
        NIMOClassifier(ridge_units="per_epoch", **SMALL).fit(X, y)


# ---- the details of NIMO-DLM (the first author's later code), one switch each -----------------

DLM_DETAILS = {
    "first_layer_scale": 0.3,
    "bound": "centred",
    "sine_dropout": 0.1,
    "scale_param": "softplus",
    "alpha_init": 4.0,
    "output_init": "default",
    "ridge_in_loss": True,
    "beta_refit": "epoch",
}


def _regression(n=200, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (n, d))
    return X, X[:, 0] * (1 + np.tanh(X[:, 1] * X[:, 2])) - X[:, 3] + 0.1 * rng.normal(size=n)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("first_layer_scale", 0.0),
        ("bound", "clipped"),
        ("sine_dropout", 1.5),
        ("scale_param", "exp"),
        ("alpha_init", math.inf),
        ("alpha_init", "4"),
        ("output_init", "xavier"),
        ("ridge_in_loss", 1),
        ("beta_refit", "batch"),
    ],
)
def test_a_bad_detail_value_is_refused_at_fit_before_training(name, value):
    X, y = _regression(20)
    model = NIMORegressor(**{name: value}, **SMALL)
    with pytest.raises(ConfigError, match=f"{name}=.*expected"):
        model.fit(X, y)
    assert not hasattr(model, "module_")


@pytest.mark.parametrize("kind", ["regression", "binary"])
@pytest.mark.parametrize(("name", "value"), DLM_DETAILS.items())
def test_each_detail_changes_the_fit_and_keeps_the_explanation_exact(kind, name, value):
    if kind == "regression":
        X, y = _regression()
        cls, output = NIMORegressor, "predict"
    else:
        X, y = _classification(2)
        cls, output = NIMOClassifier, "decision_function"
    fits = [
        cls(random_state=0, early_stopping_patience=50, **params, **SMALL).fit(
            X[:150], y[:150], eval_set=(X[150:], y[150:])
        )
        for params in ({}, {name: value})
    ]
    assert fits[1].train_result_.val_scores != fits[0].train_result_.val_scores
    got = getattr(fits[1], output)(X)
    np.testing.assert_allclose(fits[1].explain(X).output(X), got, atol=1e-4, rtol=0)


def test_the_networks_form_defaults_are_the_estimators():
    defaults = NIMOClassifier().get_params()
    assert NetworkForm() == NetworkForm(**{f.name: defaults[f.name] for f in fields(NetworkForm)})


def test_first_layer_scale_multiplies_fc1s_whole_pre_activation():
    torch.manual_seed(0)
    scaled = _network(5, 1, first_layer_scale=0.3, output_init="default").eval()
    plain = _network(5, 1, output_init="default").eval()
    plain.load_state_dict(scaled.state_dict())
    with torch.no_grad():
        plain.fc1.weight.mul_(0.3)
        plain.fc1.bias.mul_(0.3)
        x = torch.randn(7, 5)
        torch.testing.assert_close(scaled.modulation(x), plain.modulation(x))


@pytest.mark.parametrize("amplitude", [1.0, 2.0])
def test_centred_bound_is_tanh_of_the_difference_zero_at_the_origin_and_below_the_scale(amplitude):
    torch.manual_seed(0)
    net = _network(5, 2, amplitude=amplitude, bound="centred", output_init="default").eval()
    difference = _network(5, 2, amplitude=amplitude, output_init="default").eval()
    with torch.no_grad():
        net.fc3.weight.mul_(40.0)  # saturate the bound
        difference.load_state_dict(net.state_dict())
        x = 2 * torch.randn(200, 5)
        out, out0 = _explicit_nets(net, x)
        g, limit = net.modulation(x), amplitude * float(net.scale)
        # float32 rounding of the (×40) outputs: atol 1e-4
        torch.testing.assert_close(g, limit * torch.tanh(out - out0), atol=1e-4, rtol=1e-4)
        assert float(g.abs().max()) <= limit  # (−1, 1)·a·s (float32 tanh saturates at 1),
        assert float(difference.modulation(x).abs().max()) > 1.2 * limit  # not (−2, 2)·a·s
        zero = net.modulation(torch.zeros(3, 5))  # 0 up to the rounding of batched products
        torch.testing.assert_close(zero, torch.zeros(3, 5, 2), atol=1e-5, rtol=0)


def test_sine_dropout_acts_in_training_only():
    torch.manual_seed(0)
    net = _network(4, 1, noise_std=0.0, sine_dropout=0.5, output_init="default")
    plain = _network(4, 1, noise_std=0.0, output_init="default")
    plain.load_state_dict(net.state_dict())
    x = torch.randn(6, 4)
    with torch.no_grad():
        assert not torch.equal(net.train().modulation(x), net.modulation(x))
        assert torch.equal(plain.train().modulation(x), plain.modulation(x))
        assert torch.equal(net.eval().modulation(x), plain.eval().modulation(x))


def test_softplus_scales_start_near_one_and_carry_the_solve_and_the_penalty():
    torch.manual_seed(0)
    net = _network(50, 3, scale_param="softplus")
    assert float(net.c.detach().mean()) == pytest.approx(0.5, abs=0.03)
    assert float(net.c.detach().std()) == pytest.approx(0.1, abs=0.02)
    torch.testing.assert_close(net.scales(), torch.nn.functional.softplus(net.c))
    expected = 0.1 * ((net.scales() ** 2 + 1e-12) ** 0.5).sum()
    torch.testing.assert_close(net.penalty(0.1, 0.5, 0.0), expected)
    X, y = _regression()
    model = NIMORegressor(scale_param="softplus", random_state=0, **SMALL).fit(X, y)
    np.testing.assert_allclose(model.coef_, _closed_form_coef(model, X, y), rtol=1e-4, atol=1e-5)


def test_alpha_init_and_output_init_set_the_starting_network():
    x = torch.randn(5, 3)
    with torch.no_grad():
        assert float(_network(3, 1, alpha_init=4.0).scale) == pytest.approx(0.99966, abs=1e-5)
        assert float(NIMONetwork(3, 1).scale) == pytest.approx(0.5 * (1 + math.tanh(2)))
        assert torch.equal(NIMONetwork(3, 1).eval().modulation(x), torch.zeros(5, 3, 1))
        assert _network(3, 1, output_init="default").eval().modulation(x).abs().min() > 0


def test_ridge_in_loss_adds_the_solves_ridge_on_gamma():
    X, y = _regression(64)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    losses, betas = [], []
    for flag in (False, True):
        model = NIMORegressor(ridge=0.05, noise_std=0.0, ridge_in_loss=flag)
        torch.manual_seed(0)
        net = _network(4, 1, noise_std=0.0, output_init="default")
        losses.append(float(model._loss(net, X, y).detach()))
        betas.append(net.beta.clone())
    torch.testing.assert_close(betas[0], betas[1])  # the same solve
    gamma = betas[1][:, 1:] / net.scales().detach()
    assert losses[1] - losses[0] == pytest.approx(0.05 * float((gamma**2).sum()), rel=1e-4)
    assert float(ridge_term(betas[1], net.c.detach(), 0.05)) == pytest.approx(
        losses[1] - losses[0], rel=1e-4
    )


@pytest.mark.parametrize("beta_refit", ["last_step", "epoch"])
def test_beta_refit_epoch_scores_validation_with_beta_resolved_on_all_training_rows(
    beta_refit, monkeypatch
):
    X, y = _regression(240)
    settings = {**SMALL, "epochs": 4, "batch_size": 40}  # 5 steps an epoch, training noise on
    model = NIMORegressor(beta_refit=beta_refit, noise_std=0.2, random_state=0, **settings)
    seen = []
    scored = NIMORegressor._module_outputs

    def record(self, module, X_val):  # β as the validation score sees it, and the closed form
        coef = module.beta[0, 1:].double().numpy() * self.y_scale_
        seen.append((coef, _closed_form_coef(self, X[:200], y[:200])))
        module.eval()
        return scored(self, module, X_val)

    monkeypatch.setattr(NIMORegressor, "_module_outputs", record)
    model.fit(X[:200], y[:200], eval_set=(X[200:], y[200:]))
    assert len(seen) == 4
    matches = [np.allclose(got, closed, rtol=1e-4, atol=1e-5) for got, closed in seen]
    assert matches == [beta_refit == "epoch"] * 4
    np.testing.assert_allclose(model.coef_, _closed_form_coef(model, X[:200], y[:200]), rtol=1e-4)


def test_a_saved_model_with_every_detail_switched_loads_with_identical_outputs(tmp_path):
    from mesobench.models.persistence import load_model, save_model

    X, y = _regression()
    model = NIMORegressor(random_state=0, **DLM_DETAILS, **SMALL).fit(X, y)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.module_.form == NetworkForm(
        **{f.name: DLM_DETAILS[f.name] for f in fields(NetworkForm)}
    )
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


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
