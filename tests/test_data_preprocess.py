"""Preprocessor: drops with reasons, encodings per mode, unseen categories, no leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from mesobench.data import Preprocessor
from mesobench.errors import ConfigError, DataError

N = 200


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "green", "blue"], N).astype(object)
    colour[:5] = None
    return pd.DataFrame(
        {
            "height": rng.normal(170, 10, N),
            "const": np.full(N, 7.0),
            "mostly_missing": np.where(rng.uniform(size=N) < 0.95, np.nan, 1.0),
            "colour": pd.Series(colour).astype("category"),
            "row_id": [f"id{i}" for i in range(N)],
            "zip": pd.Series(rng.integers(0, 30, N).astype(str)).astype("category"),
        }
    )


@pytest.fixture
def y() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 2, N)


def test_dropped_columns_are_reported_with_reasons(frame, y):
    pre = Preprocessor().fit(frame, y)
    assert pre.dropped_columns_["const"] == "constant"
    assert pre.dropped_columns_["mostly_missing"].endswith("% missing")
    assert pre.dropped_columns_["row_id"] == "ID-like categorical: 100% unique"
    assert set(pre.dropped_columns_) == {"const", "mostly_missing", "row_id"}


def test_neural_output_is_float32_without_nan(frame, y):
    out = Preprocessor().fit_transform(frame, y)
    assert out.dtype == np.float32 and not np.isnan(out).any()


def test_neural_numerics_are_standardised_on_the_training_data(frame, y):
    pre = Preprocessor()
    out = pre.fit_transform(frame, y)
    height = out[:, pre.feature_names_out_.index("height")]
    assert abs(height.mean()) < 1e-5 and abs(height.std() - 1) < 1e-5


def test_one_hot_columns_fold_back_to_their_source(frame, y):
    pre = Preprocessor().fit(frame, y)
    onehot = [n for n in pre.feature_names_out_ if n.startswith("colour=")]
    assert onehot == ["colour=blue", "colour=green", "colour=red"]
    sources = dict(zip(pre.feature_names_out_, pre.source_columns_, strict=True))
    assert {sources[n] for n in onehot} == {"colour"}
    assert len(pre.source_columns_) == pre.n_features_out_


def test_missing_category_is_an_all_zero_one_hot_row(frame, y):
    pre = Preprocessor()
    out = pre.fit_transform(frame, y)
    cols = [i for i, s in enumerate(pre.source_columns_) if s == "colour"]
    assert (out[:5][:, cols] == 0).all()
    assert (out[5:][:, cols].sum(1) == 1).all()


def test_unseen_category_at_transform_time(frame, y):
    test = frame.head(3).copy()
    test["colour"] = pd.Categorical(["purple", "red", "purple"])
    for mode in ("neural", "ordinal", "native"):
        pre = Preprocessor(mode=mode).fit(frame, y)
        out = pre.transform(test)
        if mode == "neural":
            cols = [i for i, s in enumerate(pre.source_columns_) if s == "colour"]
            assert out[:, cols].sum(1).tolist() == [0, 1, 0]
        elif mode == "ordinal":
            codes = out[:, pre.feature_names_out_.index("colour")]
            assert np.isnan(codes[[0, 2]]).all() and codes[1] == 2
        else:
            assert out["colour"].isna().tolist() == [True, False, True]


def test_more_categories_than_the_cap_are_target_encoded(frame, y):
    pre = Preprocessor(onehot_max_categories=10).fit(frame, y)
    assert pre.feature_names_out_.count("zip_te") == 1
    assert not any(n.startswith("zip=") for n in pre.feature_names_out_)


def test_reference_encoding_target_encodes_every_categorical_of_a_binary_task(frame, y):
    pre = Preprocessor(categorical_encoding="reference").fit(frame, y)
    assert "colour_te" in pre.feature_names_out_ and "zip_te" in pre.feature_names_out_
    assert not any("=" in n for n in pre.feature_names_out_)  # no one-hot column left
    out = pre.transform(frame)
    assert out.shape[1] == pre.n_features_out_ and not np.isnan(out).any()


def test_reference_encoding_keeps_one_hot_for_a_multiclass_task(frame):
    y3 = np.arange(N) % 3
    ours = Preprocessor().fit(frame, y3).feature_names_out_
    assert Preprocessor(categorical_encoding="reference").fit(frame, y3).feature_names_out_ == ours
    assert any(n.startswith("colour=") for n in ours)


def test_an_unknown_categorical_encoding_is_a_config_error(frame, y):
    with pytest.raises(ConfigError, match="categorical_encoding"):
        Preprocessor(categorical_encoding="binary").fit(frame, y)


def test_multiclass_target_encoding_gives_one_column_per_class(frame):
    y3 = np.arange(N) % 3
    pre = Preprocessor().fit(frame, y3)
    assert [n for n in pre.feature_names_out_ if n.startswith("zip_te")] == [
        "zip_te_0",
        "zip_te_1",
        "zip_te_2",
    ]


def test_regression_target_encoding(frame):
    out = Preprocessor().fit_transform(frame, np.linspace(0, 1, N))
    assert not np.isnan(out).any()


def test_training_rows_get_cross_fitted_target_encodings(frame, y):
    pre = Preprocessor()
    cross_fitted = pre.fit_transform(frame, y)
    refit = pre.transform(frame)
    j = pre.feature_names_out_.index("zip_te")
    assert not np.allclose(cross_fitted[:, j], refit[:, j])
    others = [i for i in range(pre.n_features_out_) if i != j]
    np.testing.assert_array_equal(cross_fitted[:, others], refit[:, others])


def test_target_encoding_without_y_says_what_to_do(frame):
    with pytest.raises(DataError, match="high_cardinality='ordinal'"):
        Preprocessor().fit(frame)


def test_target_encoding_rejects_string_labels(frame):
    with pytest.raises(DataError, match="int class codes"):
        Preprocessor().fit(frame, np.array(["a", "b"] * (N // 2)))


def test_ordinal_high_cardinality_needs_no_y(frame):
    pre = Preprocessor(high_cardinality="ordinal").fit(frame)
    assert "zip" in pre.feature_names_out_


def test_ordinal_mode_keeps_nan_and_raw_numbers(frame, y):
    frame.loc[0, "height"] = np.nan
    pre = Preprocessor(mode="ordinal")
    out = pre.fit_transform(frame, y)
    j = pre.feature_names_out_.index("height")
    assert np.isnan(out[0, j])
    np.testing.assert_allclose(out[1:, j], frame["height"][1:], rtol=1e-6)
    colour = out[:, pre.feature_names_out_.index("colour")]
    assert np.isnan(colour[:5]).all() and set(colour[5:]) == {0.0, 1.0, 2.0}


def test_native_mode_fixes_categories_from_the_training_data(frame, y):
    pre = Preprocessor(mode="native")
    train = pre.fit_transform(frame.iloc[:100], y[:100])
    test = pre.transform(frame.iloc[100:])
    assert list(train["zip"].cat.categories) == list(test["zip"].cat.categories)
    assert train["height"].dtype == np.float64
    assert list(train.columns) == ["height", "colour", "zip"]


def test_native_categories_are_strings_even_for_numeric_codes(y):
    X = pd.DataFrame({"level": [1, 2, 3, 1] * 50, "v": np.arange(200.0)})
    out = Preprocessor(mode="native").fit_transform(X, y, categorical=[True, False])
    assert list(out["level"].cat.categories) == ["1", "2", "3"]


def test_categorical_flags_override_dtypes(y):
    X = pd.DataFrame({"level": [1, 2, 3, 1] * 50, "v": np.arange(200.0)})
    pre = Preprocessor().fit(X, y, categorical=[True, False])
    assert pre.feature_names_out_ == ["level=1", "level=2", "level=3", "v"]


def test_nothing_left_is_a_data_error_naming_the_drops():
    X = pd.DataFrame({"a": [1.0] * 10, "b": [np.nan] * 10})
    with pytest.raises(DataError, match=r"a: constant; b: 100% missing"):
        Preprocessor().fit(X)


def test_column_missing_at_transform_time(frame, y):
    pre = Preprocessor().fit(frame, y)
    with pytest.raises(DataError, match="height"):
        pre.transform(frame.drop(columns=["height"]))


def test_numeric_flag_on_text_column_is_a_data_error():
    X = pd.DataFrame({"t": ["a", "b"] * 5, "v": np.arange(10.0)})
    with pytest.raises(DataError, match="mark them categorical"):
        Preprocessor().fit(X, categorical=[False, False])


def test_unknown_mode_is_a_config_error(frame, y):
    with pytest.raises(ConfigError, match="mode"):
        Preprocessor(mode="fancy").fit(frame, y)


def test_sklearn_clone_keeps_parameters():
    pre = Preprocessor(mode="ordinal", onehot_max_categories=4, random_state=5)
    assert clone(pre).get_params() == pre.get_params()


def test_numpy_input_is_accepted():
    X = np.random.default_rng(0).normal(size=(30, 3))
    out = Preprocessor().fit(X).transform(X)
    assert out.shape == (30, 3)
