"""Tree models' attributions against one baseline row are the baseline Shapley values.

``contributions(X, baseline)`` of XGBoost, CatBoost and the random forests must share out
``explained_output(X) − explained_output(baseline)`` exactly, give a feature at its baseline
value nothing, and equal the Shapley values of the game ``v(S) = f(x_S, baseline_rest)``, which
these tests compute from the definition (2^F model evaluations on hybrid rows).
"""

from __future__ import annotations

import itertools
import json
from math import factorial

import numpy as np
import pandas as pd
import pytest
import xgboost

from mesobench.models import (
    CatBoostClassifier,
    CatBoostRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    XGBoostClassifier,
    XGBoostRegressor,
    tree_shap,
)

KINDS = ["binary", "multiclass", "regression"]
FAMILIES = ["xgboost", "catboost", "random_forest"]
COLOURS = ["red", "green", "blue", "grey", "pink", "teal"]
SIZES = ["S", "M", "L", "XL"]


def _frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Numeric ``a`` (with NaN) and ``b``; categories ``colour`` (6, with missing), ``size`` (4)."""
    rng = np.random.default_rng(seed)
    colour = np.where(rng.random(n) < 0.1, None, rng.choice(COLOURS, n))
    return pd.DataFrame(
        {
            "a": np.where(rng.random(n) < 0.15, np.nan, rng.normal(size=n)),
            "b": rng.normal(size=n),
            "colour": pd.Categorical(colour, categories=COLOURS),
            "size": pd.Categorical(rng.choice(SIZES, n), categories=SIZES),
        }
    )


def _signal(X: pd.DataFrame) -> np.ndarray:
    return (
        np.nan_to_num(X["a"].to_numpy(), nan=1.0)
        - X["b"].to_numpy()
        + 1.5 * X["colour"].isin(["red", "blue", "teal"]).to_numpy()
        - X["colour"].isna().to_numpy()
        + (X["size"] == "XL").to_numpy()
    )


def _target(X: pd.DataFrame, kind: str) -> np.ndarray:
    signal = _signal(X)
    if kind == "binary":
        return (signal > 0.5).astype(int)
    if kind == "multiclass":
        return np.digitize(signal, [0.0, 1.2])
    return signal


def _ordinal(X: pd.DataFrame) -> np.ndarray:
    """The random forest's input (the ``ordinal`` preprocessing): category codes, NaN missing."""
    columns = [
        X[c].cat.codes.to_numpy().astype(float)
        if isinstance(X[c].dtype, pd.CategoricalDtype)
        else X[c].to_numpy(dtype=float)
        for c in X.columns
    ]
    matrix = np.column_stack(columns)
    matrix[matrix == -1] = np.nan  # a missing category's code
    return matrix


def _model(family: str, kind: str):
    classifier = kind != "regression"
    if family == "xgboost":
        cls = XGBoostClassifier if classifier else XGBoostRegressor
        return cls(n_estimators=20, max_depth=3, random_state=0, n_jobs=1)
    if family == "catboost":
        cls = CatBoostClassifier if classifier else CatBoostRegressor
        return cls(iterations=20, depth=3, random_state=0, n_jobs=1)
    cls = RandomForestClassifier if classifier else RandomForestRegressor
    return cls(n_estimators=8, random_state=0, n_jobs=1)


def _inputs(family: str, X: pd.DataFrame):
    return _ordinal(X) if family == "random_forest" else X


def _row(data, i: int):
    return data.iloc[[i]] if isinstance(data, pd.DataFrame) else data[[i]]


def _fitted(family: str, kind: str):
    X = _frame()
    model = _model(family, kind).fit(_inputs(family, X), _target(X, kind))
    return model, X


def _baseline_rows(X: pd.DataFrame) -> list[int]:
    """Baseline rows: an ordinary one, one missing ``a``, one missing ``colour``."""
    return [0, int(np.flatnonzero(X["a"].isna())[0]), int(np.flatnonzero(X["colour"].isna())[0])]


def _equal_to(data, baseline, j: int) -> np.ndarray:
    """Rows whose feature j equals the baseline's (both missing counts as equal)."""
    if isinstance(data, pd.DataFrame):
        column, value = data.iloc[:, j], baseline.iloc[0, j]
        if pd.isna(value):
            return column.isna().to_numpy()
        return (column == value).fillna(False).to_numpy(dtype=bool)
    column, value = data[:, j], baseline[0, j]
    return np.isnan(column) if np.isnan(value) else column == value


def _hybrid(data, baseline, keep: tuple[int, ...]):
    """data with every column not in ``keep`` set to the baseline's value."""
    out = data.copy()
    for j in range(data.shape[1]):
        if j in keep:
            continue
        if isinstance(data, pd.DataFrame):
            name = data.columns[j]
            value = np.repeat(baseline[name].to_numpy(), len(out))
            out[name] = pd.Series(value, index=out.index).astype(data[name].dtype)
        else:
            out[:, j] = baseline[0, j]
    return out


def _shapley_by_definition(model, data, baseline) -> np.ndarray:
    """Baseline Shapley values from the definition: the weighted marginal contributions of each
    feature over all coalitions S of the others, v(S) = explained_output(x_S, baseline_rest)."""
    F = data.shape[1]
    value = {
        S: np.asarray(model.explained_output(_hybrid(data, baseline, S)), dtype=np.float64)
        for r in range(F + 1)
        for S in itertools.combinations(range(F), r)
    }
    phi = np.zeros((data.shape[0], F, *value[()].shape[1:]))
    for j in range(F):
        others = [k for k in range(F) if k != j]
        for r in range(F):
            weight = factorial(r) * factorial(F - r - 1) / factorial(F)
            for S in itertools.combinations(others, r):
                phi[:, j] += weight * (value[tuple(sorted((*S, j)))] - value[S])
    return phi


# --------------------------------------------------------------------------------------------
# (a) additivity, (b) null player, and the values by definition, every model and kind
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_contributions_add_up_to_the_output_minus_the_output_at_the_baseline(family, kind):
    model, X = _fitted(family, kind)
    data = _inputs(family, X)
    output = model.explained_output(data)
    for i in _baseline_rows(X):
        baseline = _row(data, i)
        values, bias = model.contributions(data, baseline)
        at_baseline = model.explained_output(baseline)
        if kind == "multiclass":
            assert values.shape == (len(X), 4, 3) and bias.shape == output.shape == (len(X), 3)
        else:
            assert values.shape == (len(X), 4) and bias.shape == output.shape == (len(X),)
        np.testing.assert_allclose(bias, np.repeat(at_baseline, len(X), axis=0), rtol=0, atol=0)
        np.testing.assert_allclose(values.sum(axis=1) + bias, output, rtol=1e-5, atol=1e-5)
        # (b) a feature at the baseline's value is a null player: exactly nothing
        for j in range(4):
            same = _equal_to(data, baseline, j)
            assert same.any()
            assert np.all(values[same, j] == 0.0)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_target_class_per_row_gives_that_class_alone(family):
    model, X = _fitted(family, "multiclass")
    data = _inputs(family, X)
    baseline = _row(data, 0)
    values, bias = model.contributions(data, baseline)
    target = np.arange(len(X)) % 3
    picked, picked_bias = model.contributions(data, baseline, target=target)
    assert picked.shape == (len(X), 4) and picked_bias.shape == (len(X),)
    np.testing.assert_allclose(picked, values[np.arange(len(X)), :, target], atol=1e-9)
    np.testing.assert_array_equal(picked_bias, bias[np.arange(len(X)), target])
    with pytest.raises(ValueError, match="one class index per row"):
        model.contributions(data, baseline, target=np.full(len(X), 3))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_contributions_are_the_baseline_shapley_values(family, kind):
    model, X = _fitted(family, kind)
    data = _inputs(family, X)
    rows = data.iloc[:40] if isinstance(data, pd.DataFrame) else data[:40]
    baseline = _row(data, _baseline_rows(X)[1])  # its ``a`` is missing
    values, _ = model.contributions(rows, baseline)
    np.testing.assert_allclose(
        values, _shapley_by_definition(model, rows, baseline), rtol=1e-5, atol=1e-5
    )


def test_a_column_set_to_the_baseline_gets_nothing_on_every_row():
    model, X = _fitted("xgboost", "multiclass")
    baseline = X.iloc[[3]]
    moved = X.copy()
    moved["b"] = baseline["b"].iloc[0]
    moved["colour"] = pd.Categorical([baseline["colour"].iloc[0]] * len(X), categories=COLOURS)
    values, bias = model.contributions(moved, baseline)
    assert np.all(values[:, 1:3] == 0.0)
    np.testing.assert_allclose(values.sum(1) + bias, model.explained_output(moved), atol=1e-5)


# --------------------------------------------------------------------------------------------
# (c) a model that uses one feature
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("used", ["a", "colour"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_a_model_of_one_feature_attributes_everything_to_it(family, kind, used):
    """Trained with every other column constant, the trees cannot split on them."""
    X = _frame()
    train = X.copy()
    for column in X.columns.drop(used):
        train[column] = X[column].iloc[[1]].repeat(len(X)).to_numpy()
        train[column] = train[column].astype(X[column].dtype)
    model = _model(family, kind).fit(_inputs(family, train), _target(X, kind))
    data = _inputs(family, X)  # every column varies here
    j = list(X.columns).index(used)
    baseline = _row(data, 2)
    values, bias = model.contributions(data, baseline)
    others = [k for k in range(4) if k != j]
    assert np.all(values[:, others] == 0.0)
    np.testing.assert_allclose(
        values[:, j], model.explained_output(data) - bias, rtol=1e-5, atol=1e-5
    )
    assert np.abs(values[:, j]).max() > 0


# --------------------------------------------------------------------------------------------
# XGBoost: shap's own reading, partition splits, early stopping, re-coded categories
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_xgboost_numeric_model_matches_shaps_own_interventional_explainer(kind):
    import shap

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 5))
    X[rng.random(X.shape) < 0.1] = np.nan
    signal = np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1] * X[:, 2], nan=-0.5)
    y = {"binary": signal > 0, "multiclass": np.digitize(signal, [-0.5, 0.5]), "regression": signal}
    model = _model("xgboost", kind).set_params(n_estimators=30).fit(X, y[kind].astype(float))
    for i in [0, int(np.flatnonzero(np.isnan(X[:, 0]))[0])]:
        baseline = X[[i]]
        values, bias = model.contributions(X, baseline)
        explainer = shap.TreeExplainer(
            model.model_, data=baseline, feature_perturbation="interventional"
        )
        expected = explainer.shap_values(X, check_additivity=False)
        np.testing.assert_allclose(values, expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(
            values.sum(1) + bias, model.explained_output(X), rtol=1e-5, atol=1e-5
        )


def _category_runs(model) -> list[int]:
    """Per categorical split of the booster: how many runs of consecutive codes its set has."""
    trees = json.loads(model.model_.get_booster().save_raw("json"))["learner"]["gradient_booster"][
        "model"
    ]["trees"]
    runs = []
    for tree in trees:
        starts, sizes = tree["categories_segments"], tree["categories_sizes"]
        for start, size in zip(starts, sizes, strict=True):
            codes = sorted(tree["categories"][start : start + size])
            runs.append(1 + sum(b - a > 1 for a, b in zip(codes, codes[1:], strict=False)))
    return runs


@pytest.mark.parametrize("kind", KINDS)
def test_xgboost_partition_splits_of_scattered_categories_add_up_exactly(kind):
    """25 categories with random effects: XGBoost splits them by sets that are no run of
    consecutive codes (partition splits), nested several deep."""
    rng = np.random.default_rng(2)
    n, names = 500, [f"k{i:02d}" for i in range(25)]
    effect = dict(zip(names, rng.normal(size=len(names)), strict=True))
    X = pd.DataFrame(
        {
            "city": pd.Categorical(
                np.where(rng.random(n) < 0.08, None, rng.choice(names, n)), categories=names
            ),
            "shop": pd.Categorical(rng.choice(names[:12], n), categories=names[:12]),
            "x": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        }
    )
    signal = (
        X["city"].map(effect).astype(float).fillna(0.8).to_numpy()
        + X["shop"].map(effect).astype(float).to_numpy()
        + 0.3 * np.nan_to_num(X["x"].to_numpy())
    )
    y = {"binary": signal > 0, "multiclass": np.digitize(signal, [-0.7, 0.7]), "regression": signal}
    model = _model("xgboost", kind).set_params(n_estimators=40, max_depth=5)
    model.fit(X, y[kind].astype(float))
    assert max(_category_runs(model)) >= 3  # sets scattered over the codes
    # each tree orders the codes so that its sets are few runs: hardly any subtree is copied
    converted = tree_shap.xgboost_trees(model.model_.get_booster(), model._iteration_range())
    booster = json.loads(model.model_.get_booster().save_raw("json"))["learner"]
    original = sum(len(t["left_children"]) for t in booster["gradient_booster"]["model"]["trees"])
    assert sum(t.n_nodes for t in converted) < 2 * original  # measured 1.4-1.6 (8-10 in code order)
    output = model.explained_output(X)
    for i in [0, int(np.flatnonzero(X["city"].isna())[0])]:
        baseline = X.iloc[[i]]
        values, bias = model.contributions(X, baseline)
        np.testing.assert_allclose(values.sum(1) + bias, output, rtol=1e-5, atol=1e-5)
        same_city = _equal_to(X, baseline, 0)
        assert same_city.sum() > 5 and np.all(values[same_city, 0] == 0.0)
    rows = X.iloc[:25]
    np.testing.assert_allclose(
        model.contributions(rows, baseline)[0],
        _shapley_by_definition(model, rows, baseline),
        rtol=1e-5,
        atol=1e-5,
    )


def test_xgboost_explains_the_trees_of_the_best_round_after_early_stopping():
    X = _frame(400)
    y = _target(X, "binary")
    model = XGBoostClassifier(
        n_estimators=300, learning_rate=0.5, early_stopping_rounds=5, random_state=0, n_jobs=1
    ).fit(X[:300], y[:300], eval_set=(X[300:], y[300:]))
    assert model._iteration_range()[1] < model.model_.get_booster().num_boosted_rounds()
    values, bias = model.contributions(X, X.iloc[[0]])
    np.testing.assert_allclose(
        values.sum(1) + bias, model.decision_function(X), rtol=1e-5, atol=1e-5
    )


@pytest.mark.skipif(
    not hasattr(xgboost.Booster, "get_categories"), reason="XGBoost < 3.1 does not re-code"
)
def test_xgboost_reads_categories_by_value_whatever_their_order_in_the_dtype():
    model, X = _fitted("xgboost", "binary")
    shuffled = X.copy()
    shuffled["colour"] = X["colour"].cat.reorder_categories(COLOURS[::-1])
    expected = model.contributions(X, X.iloc[[0]])
    got = model.contributions(shuffled, shuffled.iloc[[0]])
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


# --------------------------------------------------------------------------------------------
# Limits: the node cap, trees too large for shap, paths too deep for it
# --------------------------------------------------------------------------------------------


def test_the_node_cap_stops_the_conversion_with_a_clear_error(monkeypatch):
    monkeypatch.setattr(tree_shap, "MAX_TREE_SHAP_NODES", 30)
    X = _frame()
    for family in ["xgboost", "random_forest"]:
        model = _model(family, "binary").fit(_inputs(family, X), _target(X, "binary"))
        data = _inputs(family, X)
        with pytest.raises(ValueError, match="MAX_TREE_SHAP_NODES = 30"):
            model.contributions(data, _row(data, 0))


@pytest.mark.parametrize("family", ["xgboost", "random_forest"])
def test_trees_larger_than_shap_takes_are_split_into_parts_that_add_up(family, monkeypatch):
    model, X = _fitted(family, "multiclass")
    data = _inputs(family, X)
    baseline = _row(data, 5)
    whole, bias = model.contributions(data, baseline)
    monkeypatch.setattr(tree_shap, "SHAP_TREE_NODE_LIMIT", 9)
    parts, same_bias = model.contributions(data, baseline)
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(same_bias, bias)


def _comb_tree(depth: int) -> tree_shap.ShapTree:
    """A path of ``depth`` splits on distinct features (x = 1 goes right, the baseline -1 left)
    that continues the way of x at even features and of the baseline at odd ones."""
    n = 2 * depth + 1
    left, right = np.full(n, -1), np.full(n, -1)
    feature, value = np.full(n, -1), np.zeros(n)
    for i in range(depth):
        on, off = 2 * (i + 1), 2 * i + 1
        left[2 * i], right[2 * i] = (off, on) if i % 2 == 0 else (on, off)
        feature[2 * i] = i
    value[2 * depth] = 1.0
    return tree_shap.ShapTree(left, right, left.copy(), feature, np.zeros(n), value, np.ones(n), 0)


def test_paths_on_more_features_than_shap_computes_exactly_are_refused():
    limit = tree_shap.SHAP_EXACT_PATH_FEATURES
    ok = tree_shap.interventional_values(
        [_comb_tree(limit)], 1, np.ones((1, limit)), -np.ones((1, limit))
    )[0, :, 0]
    # v(S) = 1 iff S holds every even feature and no odd one: φ_even = e!o!/(e·n!)
    even = factorial(limit // 2 - 1) * factorial(limit // 2) / factorial(limit)
    np.testing.assert_allclose(ok[::2], even, rtol=1e-5)
    np.testing.assert_allclose(ok[1::2], -even, rtol=1e-5)
    deep = limit + 2
    with pytest.raises(ValueError, match="32-bit binomial coefficients overflow"):
        tree_shap.interventional_values(
            [_comb_tree(deep)], 1, np.ones((1, deep)), -np.ones((1, deep))
        )


# --------------------------------------------------------------------------------------------
# Random forest: float32 thresholds, missing values, the native (path-dependent) values
# --------------------------------------------------------------------------------------------


def test_forest_routes_values_on_adjacent_float32_training_values_like_sklearn():
    """Adjacent float32 values make scikit-learn thresholds that float32 rounding (what shap's
    routine does to them) moves onto the upper value."""
    upper = np.float32(1000.0)
    values = [upper]
    for _ in range(5):
        values.append(np.nextafter(values[-1], np.float32(np.inf)))
    grid = np.asarray(values, dtype=np.float32).astype(np.float64)
    X = np.column_stack([np.repeat(grid, 10), np.tile(np.arange(10.0), 6)])
    y = np.repeat(np.arange(6.0), 10) + 0.1 * X[:, 1]
    model = RandomForestRegressor(n_estimators=5, max_features=None, random_state=0).fit(X, y)
    for i in [0, 10, 55]:
        values, bias = model.contributions(X, X[[i]])
        np.testing.assert_allclose(values.sum(1) + bias, model.predict(X), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_forest_without_baseline_gives_shaps_path_dependent_values(kind):
    model, X = _fitted("random_forest", kind)
    data = _inputs("random_forest", X)
    values, bias = model.contributions(data)
    assert values.shape[:2] == data.shape and bias.shape == values.shape[:1] + values.shape[2:]
    np.testing.assert_allclose(
        values.sum(1) + bias, model.explained_output(data), rtol=1e-9, atol=1e-9
    )


def test_explained_output_is_what_each_model_explains():
    X = _frame()
    y = _target(X, "binary")
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(_ordinal(X), y)
    np.testing.assert_array_equal(
        forest.explained_output(_ordinal(X)), forest.predict_proba(_ordinal(X))[:, 1]
    )
    booster = _model("xgboost", "binary").fit(X, y)
    np.testing.assert_array_equal(booster.explained_output(X), booster.decision_function(X))
    regressor = _model("catboost", "regression").fit(X, _target(X, "regression"))
    np.testing.assert_array_equal(regressor.explained_output(X), regressor.predict(X))


def test_a_baseline_of_several_rows_is_refused():
    model, X = _fitted("catboost", "binary")
    with pytest.raises(ValueError, match="baseline must be one row"):
        model.contributions(X, X.iloc[:2])


@pytest.mark.parametrize("family", FAMILIES)
def test_a_saved_and_loaded_model_gives_the_same_attributions(family, tmp_path):
    from mesobench.models.persistence import load_model, save_model

    model, X = _fitted(family, "multiclass")
    data = _inputs(family, X)
    baseline = _row(data, 7)
    save_model(model, tmp_path / "saved")
    loaded = load_model(tmp_path / "saved")
    expected, got = model.contributions(data, baseline), loaded.contributions(data, baseline)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
