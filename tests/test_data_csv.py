"""User tables: reading, typing, errors a user can act on, and seeded (stratified) folds."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from mesobench.data import load_fold
from mesobench.errors import ConfigError, DataError


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 120
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "income": rng.normal(50, 10, n),
            "city": rng.choice(["Oslo", "Bergen", "Tromsø"], n),
            "label": np.where(rng.uniform(size=n) < 0.3, "yes", "no"),
        }
    )


def _cfg(path, target="label", **kw):
    return {"source": "csv", "name": "csv", "path": str(path), "target": target, **kw}


def _write(df, tmp_path, name="data.csv"):
    path = tmp_path / name
    if name.endswith(".parquet"):
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


def test_missing_target_column_lists_available_columns_closest_first(table, tmp_path):
    path = _write(table, tmp_path)
    with pytest.raises(DataError) as info:
        load_fold(_cfg(path, target="lable"), 0)
    message = str(info.value)
    assert "'lable'" in message and "Did you mean 'label'?" in message
    assert message.index("'label'", message.index("Available")) < message.index("'age'")
    for col in ("age", "income", "city"):
        assert repr(col) in message


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_fold(_cfg(tmp_path / "nope.csv"), 0)


def test_unset_path_says_how_to_set_it():
    with pytest.raises(ConfigError, match="task.path"):
        load_fold({"source": "csv", "path": "???", "target": "y"}, 0)


def test_csv_and_parquet_give_the_same_fold(table, tmp_path):
    a = load_fold(_cfg(_write(table, tmp_path, "d.csv")), 1)
    b = load_fold(_cfg(_write(table, tmp_path, "d.parquet")), 1)
    pd.testing.assert_frame_equal(a.X_train, b.X_train, check_dtype=False, check_categorical=False)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.task == b.task


def test_string_columns_are_categorical(table, tmp_path):
    fold = load_fold(_cfg(_write(table, tmp_path)), 0)
    assert fold.categorical == [False, False, True]
    assert isinstance(fold.X_train["city"].dtype, pd.CategoricalDtype)


def test_forced_categorical_column(table, tmp_path):
    fold = load_fold(_cfg(_write(table, tmp_path), categorical=["age"]), 0)
    assert fold.categorical == [True, False, True]


def test_string_target_is_binary_with_sorted_classes(table, tmp_path):
    fold = load_fold(_cfg(_write(table, tmp_path)), 0)
    assert fold.task.kind == "binary" and fold.task.classes == ("no", "yes")
    assert fold.task.name == "csv:data" and fold.task.source == "csv"


def test_float_target_is_regression(table, tmp_path):
    fold = load_fold(_cfg(_write(table, tmp_path), target="income"), 0)
    assert fold.task.kind == "regression" and fold.y_train.dtype == np.float64


def test_integer_target_with_few_values_is_multiclass(table, tmp_path):
    table["grade"] = np.arange(len(table)) % 4
    fold = load_fold(_cfg(_write(table, tmp_path), target="grade"), 0)
    assert fold.task.kind == "multiclass" and fold.task.classes == ("0", "1", "2", "3")


def test_integer_target_with_many_values_is_regression(table, tmp_path):
    table["count"] = np.arange(len(table))
    assert load_fold(_cfg(_write(table, tmp_path), target="count"), 0).task.kind == "regression"


def test_explicit_binary_type_with_three_classes_is_an_error(table, tmp_path):
    with pytest.raises(DataError, match="3 distinct"):
        load_fold(_cfg(_write(table, tmp_path), target="city", type="binary"), 0)


def test_rows_with_missing_target_are_dropped(table, tmp_path, caplog):
    table.loc[:9, "label"] = None
    with caplog.at_level(logging.WARNING):
        folds = [load_fold(_cfg(_write(table, tmp_path)), k) for k in range(5)]
    assert sum(len(f.y_test) for f in folds) == len(table) - 10
    assert "missing target" in caplog.text


def test_folds_partition_the_rows_and_are_stratified(table, tmp_path):
    path = _write(table, tmp_path)
    folds = [load_fold(_cfg(path, n_folds=4), k) for k in range(4)]
    np.testing.assert_array_equal(
        np.sort(np.concatenate([f.test_index for f in folds])), np.arange(len(table))
    )
    n_yes = (table["label"] == "yes").sum()
    for f in folds:
        assert abs(f.y_test.sum() - n_yes / 4) <= 1


def test_folds_are_seeded(table, tmp_path):
    path = _write(table, tmp_path)
    a, b = load_fold(_cfg(path, cv_seed=1), 0), load_fold(_cfg(path, cv_seed=1), 0)
    c = load_fold(_cfg(path, cv_seed=2), 0)
    np.testing.assert_array_equal(a.test_index, b.test_index)
    assert not np.array_equal(a.test_index, c.test_index)


def test_tiny_class_falls_back_to_unstratified_folds(table, tmp_path, caplog):
    table.loc[0, "label"] = "maybe"
    with caplog.at_level(logging.WARNING):
        fold = load_fold(_cfg(_write(table, tmp_path)), 0)
    assert fold.task.classes == ("maybe", "no", "yes")
    assert "not stratified" in caplog.text


def test_fold_out_of_range_is_a_config_error(table, tmp_path):
    with pytest.raises(ConfigError, match=r"0\.\.4"):
        load_fold(_cfg(_write(table, tmp_path)), 5)
