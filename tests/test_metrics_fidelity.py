"""Fidelity metrics score explanations against the model's own behaviour, with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from mesobench.data.truth import SyntheticTruth
from mesobench.metrics import fidelity as fd
from mesobench.models import (
    CatBoostClassifier,
    CatBoostRegressor,
    Explanation,
    LogisticRegressionClassifier,
    TabResNetClassifier,
    TabResNetRegressor,
    XGBoostClassifier,
    XGBoostRegressor,
)

# --------------------------------------------------------------------------------------------
# Small known models
# --------------------------------------------------------------------------------------------


class LinearExplained:
    """A fitted linear regression whose explanation is its own coefficients (exactly local-linear)."""

    def __init__(self, X, y):
        self.model_ = LinearRegression().fit(X, y)

    def predict(self, X):
        return self.model_.predict(np.asarray(X, dtype=np.float64))

    def explain(self, X):
        n = len(X)
        return Explanation(np.tile(self.model_.coef_, (n, 1)), np.full(n, self.model_.intercept_))


def _square(X):
    """f(x) = x1², with the tangent-plane explanation w = (2x1, 0, ...), b = −x1²."""
    return X[:, 0] ** 2


def _square_tangent(X):
    w = np.zeros_like(X)
    w[:, 0] = 2 * X[:, 0]
    return Explanation(w, -(X[:, 0] ** 2))


def _uniform(n, d, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, size=(n, d))


def _class_data(n_classes, n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    cuts = np.quantile(X[:, 0], np.linspace(0, 1, n_classes + 1)[1:-1])
    return X, np.digitize(X[:, 0] + 0.5 * X[:, 1], cuts)


# --------------------------------------------------------------------------------------------
# Sampling and neighbourhoods
# --------------------------------------------------------------------------------------------


def test_sample_rows_is_a_sorted_seeded_subset_or_everything():
    rows = fd.sample_rows(100, 10, seed=3)
    assert len(rows) == 10 and len(set(rows)) == 10 and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, fd.sample_rows(100, 10, seed=3))
    assert np.array_equal(fd.sample_rows(5, 10, seed=3), np.arange(5))
    assert np.array_equal(fd.sample_rows(5, None, seed=3), np.arange(5))


def test_gaussian_neighbors_have_shape_n_k_f_scale_sigma_and_are_seeded():
    X = _uniform(50, 3)
    nb = fd.draw_neighbors(X, "gaussian", sigma=0.1, n_neighbors=40, rng=0)
    assert nb.shape == (50, 40, 3)
    assert np.std(nb - X[:, None, :]) == pytest.approx(0.1, rel=0.05)
    assert np.array_equal(nb, fd.draw_neighbors(X, "gaussian", sigma=0.1, n_neighbors=40, rng=0))


def test_smote_neighbors_lie_between_x_and_its_nearest_reference_row():
    X = _uniform(20, 2, seed=1)
    ref = _uniform(30, 2, seed=2)
    nb = fd.smote_neighbors(X, ref, n_neighbors=5, k_nearest=1, rng=0)
    assert nb.shape == (20, 5, 2)
    nearest = ref[np.argmin(((X[:, None, :] - ref[None]) ** 2).sum(-1), axis=1)]
    step, span = nb - X[:, None, :], (nearest - X)[:, None, :]
    u = (step * span).sum(-1) / (span**2).sum(-1)
    np.testing.assert_allclose(step, u[..., None] * span, atol=1e-12)  # on the segment
    assert np.all((u >= 0) & (u <= 1))
    assert np.array_equal(nb, fd.smote_neighbors(X, ref, n_neighbors=5, k_nearest=1, rng=0))


def test_smote_without_reference_never_uses_the_point_itself():
    X = _uniform(10, 2)
    nb = fd.smote_neighbors(X, None, n_neighbors=3, k_nearest=1, rng=0)
    nearest_other = np.argsort(((X[:, None] - X[None]) ** 2).sum(-1), axis=1)[:, 1]
    span = (X[nearest_other] - X)[:, None, :]
    u = ((nb - X[:, None, :]) * span).sum(-1) / (span**2).sum(-1)
    np.testing.assert_allclose(nb - X[:, None, :], u[..., None] * span, atol=1e-12)


def test_unknown_neighborhood_is_refused():
    with pytest.raises(ValueError, match="neighborhood"):
        fd.draw_neighbors(_uniform(3, 2), "mixup")


# --------------------------------------------------------------------------------------------
# LFR infidelity, fidelity ratio, tuning score
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("neighborhood", ["gaussian", "smote"])
def test_a_truly_linear_model_has_zero_lfr_infidelity(neighborhood):
    X = _uniform(200, 3)
    model = LinearExplained(X, X @ [1.0, -2.0, 0.5] + 3.0)
    out = fd.lfr_infidelity(
        model.explain, model.predict, X[:50], neighborhood=neighborhood, X_reference=X, rng=0
    )
    assert out["infidelity"] == pytest.approx(0.0, abs=1e-20)
    assert out["scaled_infidelity"] == pytest.approx(0.0, abs=1e-18)
    assert out["local_variance"] > 0 and out["n_points"] == 50 and out["n_neighbors"] == 10


def test_lfr_infidelity_of_a_tangent_plane_is_the_curvature_term():
    # f = x1², tangent at x: f(x') − (2x x' − x²) = (x' − x)² = δ², so I = E δ⁴ = 3σ⁴
    X = _uniform(400, 2)
    out = fd.lfr_infidelity(_square_tangent, _square, X, sigma=0.1, n_neighbors=50, rng=0)
    assert out["infidelity"] == pytest.approx(3 * 0.1**4, rel=0.05)
    assert out["local_variance"] == pytest.approx(
        np.mean(4 * X[:, 0] ** 2) * 0.1**2 + 3 * 0.1**4, rel=0.05
    )


def test_scaled_lfr_infidelity_of_the_constant_explanation_is_one():
    X = _uniform(100, 2)
    flat = Explanation(np.zeros_like(X), _square(X))  # w = 0, b = f(x)
    out = fd.lfr_infidelity(flat, _square, X, rng=0)
    assert out["scaled_infidelity"] == pytest.approx(1.0)


def test_lfr_infidelity_is_deterministic_under_a_seed():
    X = _uniform(50, 2)
    first = fd.lfr_infidelity(_square_tangent, _square, X, rng=7)
    assert first == fd.lfr_infidelity(_square_tangent, _square, X, rng=7)
    assert first != fd.lfr_infidelity(_square_tangent, _square, X, rng=8)


def test_lfr_infidelity_compares_every_class_of_a_multiclass_model():
    X, y = _class_data(3)
    logreg = LogisticRegressionClassifier().fit(X, y)
    out = fd.lfr_infidelity(logreg.explain(X), logreg.decision_function, X, rng=0)
    assert out["infidelity"] == pytest.approx(0.0, abs=1e-20)
    # a wrong explanation for one class only shows up
    expl = logreg.explain(X)
    weights = expl.weights.copy()
    weights[:, :, 2] = 0.0
    wrong = fd.lfr_infidelity(Explanation(weights, expl.intercept), logreg.decision_function, X)
    assert wrong["infidelity"] > 1e-3


def test_lfr_infidelity_checks_that_explanation_and_output_agree_in_classes():
    X = _uniform(10, 2)
    with pytest.raises(ValueError, match="outputs"):
        fd.lfr_infidelity(_square_tangent, lambda Z: np.c_[_square(Z), _square(Z)], X)


def test_fidelity_ratio_is_the_base_share_of_the_summed_infidelity():
    assert fd.fidelity_ratio(3.0, 1.0) == pytest.approx(0.75)
    assert fd.fidelity_ratio(1.0, 1.0) == pytest.approx(0.5)
    assert fd.fidelity_ratio(0.0, 0.0) == 1.0  # as the LFR reference code


def test_tuning_score_weighs_clipped_performance_against_the_ratio():
    assert fd.tuning_score(0.9, 0.6) == pytest.approx(0.75)
    assert fd.tuning_score(-0.3, 0.6, alpha=0.25) == pytest.approx(0.45)  # R² < 0 counts as 0


# --------------------------------------------------------------------------------------------
# Yeh infidelity and the deletion curve
# --------------------------------------------------------------------------------------------


def test_yeh_infidelity_of_a_linear_model_is_zero_for_its_slope_and_its_impact():
    X = _uniform(60, 4)
    w = np.array([1.0, -2.0, 0.5, 3.0])

    def f(Z):
        return Z @ w + 1.0

    slope = fd.yeh_infidelity(np.tile(w, (60, 1)), f, X, perturbation="absolute", rng=0)
    impact = fd.yeh_infidelity(X * w, f, X, perturbation="relative", rng=0)
    assert slope["infidelity"] == pytest.approx(0.0, abs=1e-20)
    assert impact["infidelity"] == pytest.approx(0.0, abs=1e-20)
    assert impact["n_perturbations"] == 20 and impact["n_features_perturbed"] == 4


def test_yeh_infidelity_of_the_zero_attribution_scales_to_one():
    X = _uniform(60, 3)
    truth = SyntheticTruth("toy")
    out = fd.yeh_infidelity(np.zeros_like(X), truth.mean, X, rng=0)
    assert out["scaled_infidelity"] == pytest.approx(1.0)


@pytest.mark.parametrize("generator", ["toy", "lfr_example"])
def test_the_true_attribution_beats_a_random_one_on_yeh_infidelity(generator):
    truth = SyntheticTruth(generator)
    X = _uniform(200, truth.n_features)
    true = X * truth.gradient(X)  # gradient × input, baseline 0
    random = np.random.default_rng(1).normal(size=X.shape) * np.abs(true).mean()
    score_true = fd.yeh_infidelity(true, truth.mean, X, rng=0)["infidelity"]
    score_random = fd.yeh_infidelity(random, truth.mean, X, rng=0)["infidelity"]
    assert score_true < 0.1 * score_random


@pytest.mark.parametrize("generator", ["toy", "lfr_example"])
def test_the_true_attribution_beats_a_random_one_on_the_deletion_score(generator):
    truth = SyntheticTruth(generator)
    X = _uniform(200, truth.n_features)
    true = X * truth.gradient(X)
    random = np.random.default_rng(1).normal(size=X.shape)
    score_true = fd.deletion_auc(true, truth.mean, X)["deletion_auc"]
    score_random = fd.deletion_auc(random, truth.mean, X)["deletion_auc"]
    score_reversed = fd.deletion_auc(-true, truth.mean, X)["deletion_auc"]
    assert score_true < -0.1 and abs(score_random) < 0.05 and score_reversed > 0.1


def test_deletion_auc_by_hand():
    # f = 2 x1 + x2 at x = (1, 1): deleting x1 first gives the curve 3, 1, 0 over t = 0, ½, 1:
    # area 1.25, straight line 1.5 → −0.25; deleting x2 first: 3, 2, 0 → +0.25
    def f(Z):
        return Z @ [2.0, 1.0]

    X = np.ones((1, 2))
    good = fd.deletion_auc(np.array([[2.0, 1.0]]), f, X, output_scale=1.0)
    bad = fd.deletion_auc(np.array([[1.0, 2.0]]), f, X, output_scale=1.0)
    assert good["deletion_auc"] == pytest.approx(-0.25)
    assert bad["deletion_auc"] == pytest.approx(0.25)
    assert good["n_steps"] == 2


def test_perturbation_metrics_leave_masked_features_and_missing_values_alone():
    X = _uniform(20, 3)
    X[0, 1] = np.nan
    seen = []

    def f(Z):
        seen.append(Z.copy())
        return np.nan_to_num(Z).sum(1)

    mask = np.array([True, True, False])
    yeh = fd.yeh_infidelity(np.nan_to_num(X), f, X, perturbable=mask, rng=0)
    fd.deletion_auc(np.nan_to_num(X), f, X, perturbable=mask, baseline=5.0, n_steps=2)
    for Z in seen:
        np.testing.assert_array_equal(Z[:, 2], np.repeat(X[:, 2], len(Z) // len(X)))
    assert yeh["n_features_perturbed"] == 2
    assert np.isnan(seen[1][0, 1])  # the missing entry of row 0 stays missing under Yeh noise


def test_multiclass_outputs_are_explained_for_the_target_class():
    X, y = _class_data(3)
    logreg = LogisticRegressionClassifier().fit(X, y)
    expl = logreg.explain(X)
    assert expl.weights.shape == (len(X), 4, 3)
    predicted = np.argmax(logreg.decision_function(X), axis=1)
    impact = expl.impact(X)  # (n, F, C)
    right = np.take_along_axis(impact, predicted[:, None, None], axis=2)[:, :, 0]
    wrong = np.take_along_axis(impact, ((predicted + 1) % 3)[:, None, None], axis=2)[:, :, 0]
    f = logreg.decision_function
    assert fd.yeh_infidelity(right, f, X, rng=0)["infidelity"] < 1e-20  # default: predicted
    assert fd.yeh_infidelity(wrong, f, X, rng=0)["infidelity"] > 1e-3
    assert fd.yeh_infidelity(wrong, f, X, target=(predicted + 1) % 3, rng=0)["infidelity"] < 1e-20


def test_attribution_of_the_wrong_shape_is_refused():
    X = _uniform(5, 3)
    with pytest.raises(ValueError, match="shape of X"):
        fd.deletion_auc(np.zeros((5, 3, 2)), _square, X)


# --------------------------------------------------------------------------------------------
# Ground truth (synthetic tasks)
# --------------------------------------------------------------------------------------------


def test_ground_truth_errors_are_zero_for_the_truth_itself_in_standardised_units():
    truth = SyntheticTruth("toy")
    X_raw = _uniform(50, 3)
    offset, scale = np.array([0.1, -0.2, 0.3]), np.array([1.2, 0.8, 1.1])
    grad = truth.gradient(X_raw)
    slope = grad * scale  # ∂f/∂x_model
    intercept = truth.local_intercept(X_raw) + grad @ offset  # tangent plane in model units
    X_model = (X_raw - offset) / scale
    np.testing.assert_allclose((X_model * slope).sum(1) + intercept, truth.mean(X_raw))
    errors = fd.ground_truth_errors(
        truth,
        X_raw,
        slope=slope,
        intercept=intercept,
        attribution=X_model * slope,  # impact, relative to x_model = 0, i.e. x_raw = offset
        coef=truth.coefficients * scale,
        offset=offset,
        scale=scale,
    )
    assert set(errors) == {"gradient_mae", "intercept_mae", "attribution_mae", "coef_mae"}
    for value in errors.values():
        assert value == pytest.approx(0.0, abs=1e-12)


def test_ground_truth_errors_grow_with_a_wrong_slope():
    truth = SyntheticTruth("lfr_example")
    X = _uniform(30, 2)
    wrong = truth.gradient(X) + 0.5
    assert fd.gradient_error(wrong, truth, X) == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------
# Native attributions of the baselines
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes", [2, 3])
def test_logreg_explain_reproduces_its_decision_function(n_classes):
    X, y = _class_data(n_classes)
    model = LogisticRegressionClassifier().fit(X, y)
    expl = model.explain(X)
    logits = model.decision_function(X)
    assert logits.shape == ((len(X),) if n_classes == 2 else (len(X), n_classes))
    np.testing.assert_allclose(expl.output(X), logits, atol=1e-6)


BOOSTERS = {
    "xgboost": (
        lambda: XGBoostClassifier(n_estimators=20, random_state=0, n_jobs=1),
        lambda: XGBoostRegressor(n_estimators=20, random_state=0, n_jobs=1),
    ),
    "catboost": (
        lambda: CatBoostClassifier(iterations=20, random_state=0, n_jobs=1),
        lambda: CatBoostRegressor(iterations=20, random_state=0, n_jobs=1),
    ),
}


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("name", BOOSTERS)
def test_booster_contributions_and_bias_sum_to_the_margin(name, n_classes):
    X, y = _class_data(n_classes)
    model = BOOSTERS[name][0]().fit(X[:200], y[:200], eval_set=(X[200:], y[200:]))
    values, bias = model.contributions(X)
    margin = model.decision_function(X)
    if n_classes == 2:
        assert values.shape == (len(X), 4) and bias.shape == margin.shape == (len(X),)
    else:
        assert values.shape == (len(X), 4, 3) and bias.shape == margin.shape == (len(X), 3)
    np.testing.assert_allclose(values.sum(axis=1) + bias, margin, atol=1e-4)
    # the margin is what predict_proba is made of
    proba = model.predict_proba(X)
    expected = 1 / (1 + np.exp(-margin)) if n_classes == 2 else None
    if expected is not None:
        np.testing.assert_allclose(proba[:, 1], expected, atol=1e-5)
    else:
        soft = np.exp(margin - margin.max(1, keepdims=True))
        np.testing.assert_allclose(proba, soft / soft.sum(1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize("name", BOOSTERS)
def test_booster_regressor_contributions_sum_to_the_prediction(name):
    X, _ = _class_data(2)
    y = 2 * X[:, 0] + X[:, 1] ** 2
    model = BOOSTERS[name][1]().fit(X, y)
    values, bias = model.contributions(X)
    np.testing.assert_allclose(values.sum(axis=1) + bias, model.predict(X), atol=1e-4)


@pytest.mark.parametrize("name", BOOSTERS)
def test_booster_contributions_read_category_columns(name):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "size": np.where(rng.random(200) < 0.1, np.nan, rng.normal(size=200)),
            "colour": pd.Categorical(rng.choice(["red", "blue"], 200)),
        }
    )
    y = np.where(X["colour"] == "red", 1, 0) ^ (rng.random(200) < 0.1)
    model = BOOSTERS[name][0]().fit(X, y)
    values, bias = model.contributions(X)
    assert values.shape == (200, 2)
    np.testing.assert_allclose(values.sum(1) + bias, model.decision_function(X), atol=1e-4)


def _finite_differences(fn, X, eps=1e-2):
    cols = [(fn(X + eps * e) - fn(X - eps * e)) / (2 * eps) for e in np.eye(X.shape[1])]
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_tabresnet_input_gradients_match_finite_differences(n_classes):
    X, y = _class_data(n_classes)
    model = TabResNetClassifier(epochs=2, warmup_epochs=1, batch_size=64, random_state=0)
    model.fit(X, y)
    x = X[:8].astype(np.float32).astype(np.float64)
    grads = model.input_gradients(x)
    expected = _finite_differences(model.decision_function, x)
    assert grads.shape == expected.shape
    np.testing.assert_allclose(grads, expected, atol=2e-4)
    if n_classes > 2:
        target = np.array([0, 1, 2, 0, 1, 2, 0, 1])
        picked = model.input_gradients(x, target=target)
        np.testing.assert_allclose(picked, grads[np.arange(8), :, target], atol=1e-7)


def test_tabresnet_regressor_gradients_are_in_the_units_of_y():
    X, _ = _class_data(2)
    y = 100 * X[:, 0] + 5
    model = TabResNetRegressor(epochs=2, warmup_epochs=1, batch_size=64, random_state=0)
    model.fit(X, y)
    x = X[:8].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(
        model.input_gradients(x), _finite_differences(model.predict, x), rtol=1e-3, atol=1e-2
    )


# ---- insertion, faithfulness correlation, stability ----------------------------------------


def _linear(seed=0, n=200, f=6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    w = rng.normal(size=f)
    return X, w, (lambda Z: Z @ w)


def test_insertion_ranks_the_true_order_above_random_above_reversed():
    from mesobench.metrics.fidelity import insertion_auc

    X, w, f = _linear()
    exact = X * w
    random = np.random.default_rng(1).normal(size=X.shape)
    score = {
        name: insertion_auc(phi, f, X)["insertion_auc"]
        for name, phi in (("exact", exact), ("random", random), ("reversed", -exact))
    }
    assert score["exact"] > 0.2 > abs(score["random"]) and score["reversed"] < -0.2


def test_insertion_of_one_dominant_feature_scores_one_half():
    from mesobench.metrics.fidelity import insertion_auc

    X = np.random.default_rng(0).normal(size=(50, 4))
    f = lambda Z: 3.0 * Z[:, 0]  # noqa: E731
    phi = np.zeros_like(X)
    phi[:, 0] = 3.0 * X[:, 0]  # exact: feature 0 first where it raises f, last where it lowers it
    assert insertion_auc(phi, f, X, n_steps=4)["insertion_auc"] == pytest.approx(0.375)
    # the whole change at the first of S = 4 steps: area (1 - 1/(2S)) - 1/2 = 0.375 of |f(x)|;
    # at the last step where f(x) < 0: area 1/(2S) - 1/2 of f(x) < 0, the same 0.375 |f(x)|


def test_faithfulness_correlation_is_one_for_an_exact_attribution_and_near_zero_for_noise():
    from mesobench.metrics.fidelity import faithfulness_correlation

    X, w, f = _linear()
    exact = faithfulness_correlation(X * w, f, X, subset_size=2, n_subsets=30)
    assert exact["faithfulness_correlation"] == pytest.approx(1.0, abs=1e-9)
    assert exact["n_undefined"] == 0
    noise = np.random.default_rng(2).normal(size=X.shape)
    assert abs(faithfulness_correlation(noise, f, X)["faithfulness_correlation"]) < 0.05


def test_a_constant_explanation_has_zero_sensitivity_and_a_moving_one_more_with_the_radius():
    from mesobench.metrics.fidelity import max_sensitivity

    X, w, _ = _linear()
    weights = lambda Z, target: np.broadcast_to(w, Z.shape)  # noqa: E731
    flat = max_sensitivity(weights, X, radius=0.5)
    assert flat["max_sensitivity"] == 0.0 and flat["avg_sensitivity"] == 0.0
    impact = lambda Z, target: Z * w  # noqa: E731
    small = max_sensitivity(impact, X, radius=0.05)
    large = max_sensitivity(impact, X, radius=0.5)
    assert 0 < small["avg_sensitivity"] <= small["max_sensitivity"] < large["max_sensitivity"]


def test_sensitivity_perturbs_only_perturbable_features_and_is_seeded():
    from mesobench.metrics.fidelity import max_sensitivity

    X, w, _ = _linear()
    only_last = np.zeros(X.shape[1], dtype=bool)
    only_last[-1] = True
    first = lambda Z, target: Z[:, :1]  # noqa: E731
    assert max_sensitivity(first, X, perturbable=only_last)["max_sensitivity"] == 0.0
    impact = lambda Z, target: Z * w  # noqa: E731
    assert max_sensitivity(impact, X, rng=3) == max_sensitivity(impact, X, rng=3)


# ---- one raw space: categorical removal, unmoved features, ties, undefined subsets ----------


def test_yeh_counts_nothing_for_a_feature_at_its_baseline():
    # f = x1 * x2 at x = (0, 2) with baseline 0: x1 sits at its baseline, so no relative
    # perturbation moves it and its (wrong, non-zero) attribution must not be charged
    def f(Z):
        return Z[:, 0] * Z[:, 1]

    X = np.array([[0.0, 2.0]])
    charged = fd.yeh_infidelity(np.array([[5.0, 0.0]]), f, X, rng=0)
    assert charged["infidelity"] == 0.0


def test_yeh_removes_categorical_features_whole_and_is_exact_for_an_additive_model():
    # an additive f over a categorical code (effect per category) and a numeric feature:
    # the baseline attribution effect(x_cat) - effect(b_cat), w (x_num - b_num) is exact
    effect = np.array([0.0, 1.5, -2.0])

    def f(Z):
        return effect[Z[:, 0].astype(int)] + 0.7 * Z[:, 1]

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 3, 40), rng.normal(size=40)]).astype(float)
    base = np.array([0.0, 0.1])
    phi = np.column_stack([effect[X[:, 0].astype(int)] - effect[0], 0.7 * (X[:, 1] - 0.1)])
    cat = np.array([True, False])
    exact = fd.yeh_infidelity(phi, f, X, baseline=base, categorical=cat, rng=0)
    assert exact["infidelity"] == pytest.approx(0.0, abs=1e-20)
    wrong = fd.yeh_infidelity(phi * [0.5, 1.0], f, X, baseline=base, categorical=cat, rng=0)
    assert wrong["infidelity"] > 0.1
    seen = []
    fd.yeh_infidelity(
        phi, lambda Z: seen.append(Z.copy()) or f(Z), X, baseline=base, categorical=cat, rng=0
    )
    codes = seen[1][:, 0]  # the perturbed rows: a category is kept or set to the baseline
    repeated = np.repeat(X[:, 0], 20)
    assert np.all((codes == repeated) | (codes == 0.0)) and np.any(codes != repeated)


def test_removal_probability_sets_how_often_a_categorical_feature_is_removed():
    X = np.ones((200, 1))
    seen = []
    fd.yeh_infidelity(
        np.zeros_like(X),
        lambda Z: seen.append(Z.copy()) or Z[:, 0],
        X,
        baseline=0.0,
        categorical=np.array([True]),
        removal_probability=0.2,
        rng=0,
    )
    assert (seen[1][:, 0] == 0.0).mean() == pytest.approx(0.2, abs=0.02)


def test_tied_attributions_are_removed_in_a_seeded_random_order_not_by_column():
    # f = x1 alone; a zero attribution ties every feature. By column order x1 would always go
    # first (deletion score −0.5 for every point); a random order averages out near 0
    X = np.random.default_rng(0).normal(size=(400, 4))
    f = lambda Z: Z[:, 0]  # noqa: E731
    zero = np.zeros_like(X)
    score = fd.deletion_auc(zero, f, X, n_steps=4, rng=0)["deletion_auc"]
    assert abs(score) < 0.1
    assert score == fd.deletion_auc(zero, f, X, n_steps=4, rng=0)["deletion_auc"]
    t, curves = fd.ordered_curves(zero, f, X, insert=False, n_steps=4, rng=1)
    assert t.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    first_step_removed_x1 = curves[:, 1] == 0.0
    assert 0.15 < first_step_removed_x1.mean() < 0.35  # 1 in 4, not always


def test_faithfulness_subsets_are_smaller_than_the_perturbable_set():
    X, w, f = _linear(f=3)
    out = fd.faithfulness_correlation(X * w, f, X, subset_size=3, n_subsets=20)
    assert out["subset_size"] == 2 and out["faithfulness_correlation"] == pytest.approx(1.0)
    two = fd.faithfulness_correlation(
        X * w, f, X, perturbable=np.array([True, True, False]), n_subsets=20
    )
    assert two["subset_size"] == 1 and np.isfinite(two["faithfulness_correlation"])
    with pytest.raises(fd.UndefinedMetricError, match="1 perturbable feature"):
        fd.faithfulness_correlation(X * w, f, X, perturbable=np.array([True, False, False]))


def test_points_with_zero_attribution_are_counted_as_undefined():
    X, w, f = _linear()
    phi = X * w
    phi[:5] = 0.0
    corr = fd.faithfulness_correlation(phi, f, X, n_subsets=20)
    assert corr["n_undefined"] == 5
    stab = fd.max_sensitivity(lambda Z, t: Z * w, X, phi_x=phi)
    assert stab["n_zero"] == 5 and np.isfinite(stab["max_sensitivity"])


def test_the_category_resampler_draws_from_the_training_frequencies():
    X = np.zeros((4000, 2))
    X[:, 1] = 1.0
    cdf = np.array([[0.7, 0.9, 1.0]])  # frequencies 0.7, 0.2, 0.1
    resampler = fd.CategoryResampler(np.array([False, True]), cdf, probability=0.5)
    Z = resampler.apply(X, X[:, None, :].copy(), np.random.default_rng(0))[:, 0, :]
    assert np.all(Z[:, 0] == 0.0)  # not a resampled column
    # kept with 0.5 (value 1), else drawn: 0 w.p. 0.35, 1 w.p. 0.5 + 0.1, 2 w.p. 0.05
    share = np.bincount(Z[:, 1].astype(int), minlength=3) / len(Z)
    np.testing.assert_allclose(share, [0.35, 0.60, 0.05], atol=0.03)
    never = fd.CategoryResampler(np.array([False, True]), cdf, probability=0.0)
    assert np.array_equal(never.apply(X, X[:, None, :].copy(), np.random.default_rng(0))[:, 0], X)
