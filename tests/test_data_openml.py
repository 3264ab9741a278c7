"""OpenML tasks load with OpenML's official splits, offline, and fail fast when not cached."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import numpy as np
import openml
import pytest

from mesobench.data import Preprocessor, load_fold
from mesobench.data.openml_source import missing_cache_files, server_reachable
from mesobench.errors import ConfigError, TaskNotAvailableError

CREDIT_G = {"source": "openml", "name": "credit-g", "task_id": 31}
BALANCE = {"source": "openml", "name": "balance-scale", "task_id": 11}
BREAST_W = {"source": "openml", "name": "breast-w", "task_id": 15}
ADULT = {"source": "openml", "name": "adult", "task_id": 7592}  # CC18, not in the offline cache
SPLIT_MD5 = {31: "86bc7780f1c9bd2bbda90e10c79aee3d", 11: "84d686e6d3fd6accbebfe9655d878968"}


def _official_task(cache: Path, task_id: int):
    openml.config.set_root_cache_directory(cache)
    openml.config.set_retry_policy("human", n_retries=1)
    return openml.tasks.get_task(task_id, download_splits=True)


@pytest.mark.parametrize("cfg", [CREDIT_G, BALANCE], ids=["credit-g", "balance-scale"])
def test_fold_indices_equal_openmls_official_split(openml_cache, cfg):
    task = _official_task(openml_cache, cfg["task_id"])
    for k in (0, 9):
        fold = load_fold(cfg, k, openml_cache_dir=str(openml_cache), offline="true")
        train, test = task.get_train_test_split_indices(fold=k, repeat=0)
        np.testing.assert_array_equal(fold.train_index, train)
        np.testing.assert_array_equal(fold.test_index, test)


@pytest.mark.parametrize("cfg", [CREDIT_G, BALANCE], ids=["credit-g", "balance-scale"])
def test_test_folds_partition_all_rows(openml_cache, cfg):
    folds = [load_fold(cfg, k, openml_cache_dir=str(openml_cache)) for k in range(10)]
    test_rows = np.concatenate([f.test_index for f in folds])
    n_rows = len(folds[0].train_index) + len(folds[0].test_index)
    np.testing.assert_array_equal(np.sort(test_rows), np.arange(n_rows))
    for f in folds:
        assert not set(f.train_index) & set(f.test_index)


@pytest.mark.parametrize("task_id", sorted(SPLIT_MD5))
def test_cached_split_file_is_openmls(openml_cache, task_id):
    path = openml_cache / "org" / "openml" / "www" / "tasks" / str(task_id) / "datasplits.arff"
    assert hashlib.md5(path.read_bytes()).hexdigest() == SPLIT_MD5[task_id]


def test_folds_are_stratified(openml_cache):
    fold = load_fold(CREDIT_G, 4, openml_cache_dir=str(openml_cache))
    # credit-g: 700 good / 300 bad, 100 test rows per fold
    assert np.bincount(fold.y_test).tolist() == [70, 30]
    assert len(fold.y_train) == 900


def test_rows_and_labels_match_openmls_data(openml_cache):
    task = _official_task(openml_cache, 31)
    X, y = task.get_X_and_y(dataset_format="dataframe")
    fold = load_fold(CREDIT_G, 2, openml_cache_dir=str(openml_cache))
    np.testing.assert_array_equal(
        fold.X_test.to_numpy(dtype=object), X.iloc[fold.test_index].to_numpy(dtype=object)
    )
    labels = np.asarray(fold.task.classes)[fold.y_test]
    np.testing.assert_array_equal(labels, y.iloc[fold.test_index].astype(str).to_numpy())


def test_binary_classes_follow_openmls_class_labels(openml_cache):
    fold = load_fold(CREDIT_G, 0, openml_cache_dir=str(openml_cache))
    assert fold.task.classes == ("good", "bad")  # positive class = classes[1]
    assert fold.task.kind == "binary" and fold.n_classes == 2
    assert fold.y_train.dtype == np.int64


def test_multiclass_task_info(openml_cache):
    fold = load_fold(BALANCE, 0, openml_cache_dir=str(openml_cache))
    assert fold.task.kind == "multiclass"
    assert fold.task.classes == ("L", "B", "R")
    assert (fold.task.task_id, fold.task.dataset_id, fold.task.target) == (11, 11, "class")


def test_categorical_flags_follow_openml(openml_cache):
    fold = load_fold(CREDIT_G, 0, openml_cache_dir=str(openml_cache))
    assert sum(fold.categorical) == 13 and len(fold.categorical) == 20


def test_fold_outside_range_names_the_valid_range(openml_cache):
    with pytest.raises(ConfigError, match=r"0\.\.9"):
        load_fold(CREDIT_G, 10, openml_cache_dir=str(openml_cache))


def test_breast_w_missing_values_reach_the_fold(openml_cache):
    folds = [load_fold(BREAST_W, k, openml_cache_dir=str(openml_cache)) for k in range(10)]
    assert sum(int(f.X_test.isna().sum().sum()) for f in folds) == 16


@pytest.mark.parametrize("mode", ["neural", "ordinal", "native"])
def test_breast_w_preprocessing_handles_missing_values(openml_cache, mode):
    folds = [load_fold(BREAST_W, k, openml_cache_dir=str(openml_cache)) for k in range(10)]
    n_nan = 0
    for f in folds:
        pre = Preprocessor(mode=mode)
        pre.fit_transform(f.X_train, f.y_train, categorical=f.categorical)
        out = pre.transform(f.X_test)
        if mode == "native":
            assert out["Bare_Nuclei"].dtype == np.float64
            n_nan += int(out.isna().sum().sum())
        else:
            assert out.dtype == np.float32
            n_nan += int(np.isnan(out).sum())
    assert n_nan == (0 if mode == "neural" else 16)


def _cache_state(cache: Path) -> dict[str, int]:
    www = cache / "org" / "openml" / "www"
    return {str(p.relative_to(www)): p.stat().st_size for p in www.rglob("*.arff")}


@pytest.mark.parametrize("offline", ["true", True])
def test_uncached_task_offline_fails_fast_and_says_how_to_fix(openml_cache, offline):
    before = _cache_state(openml_cache)
    start = time.monotonic()
    with pytest.raises(TaskNotAvailableError) as info:
        load_fold(ADULT, 0, openml_cache_dir=str(openml_cache), offline=offline)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "7592" in message and "adult" in message and "OPENML_CACHE_DIR" in message
    assert str(openml_cache) in message
    assert _cache_state(openml_cache) == before
    assert not (openml_cache / "org" / "openml" / "www" / "tasks" / "7592").exists()


def test_uncached_task_auto_fails_fast_when_server_unreachable(openml_cache):
    if server_reachable():
        pytest.skip("www.openml.org is reachable: offline='auto' would download adult")
    start = time.monotonic()
    with pytest.raises(TaskNotAvailableError, match="OPENML_CACHE_DIR"):
        load_fold(ADULT, 0, openml_cache_dir=str(openml_cache), offline="auto")
    assert time.monotonic() - start < 10
    assert load_fold(CREDIT_G, 0, openml_cache_dir=str(openml_cache)).X_train.shape == (900, 20)


def test_auto_mode_checks_the_configured_server(openml_cache, monkeypatch):
    monkeypatch.setattr(openml.config, "server", "https://127.0.0.1:9/api/v1/xml")
    start = time.monotonic()
    with pytest.raises(TaskNotAvailableError, match="127.0.0.1:9 is unreachable"):
        load_fold(ADULT, 0, openml_cache_dir=str(openml_cache), offline="auto")
    assert time.monotonic() - start < 10


def test_reachability_check_gives_up_after_its_timeout():
    start = time.monotonic()
    assert server_reachable("10.255.255.1", 443, timeout=0.5) is False  # non-routable
    assert time.monotonic() - start < 2


def test_cached_tasks_report_no_missing_files(openml_cache):
    www = openml_cache / "org" / "openml" / "www"
    assert missing_cache_files(www, 31) == []
    assert missing_cache_files(www, 7592) == [www / "tasks" / "7592" / "task.xml"]


def test_read_only_cache_dir_is_a_config_error(openml_cache, tmp_path):
    src = openml_cache / "org" / "openml" / "www"
    ro = tmp_path / "ro"
    for part in ("tasks/11", "datasets/11"):
        shutil.copytree(src / part, ro / "org" / "openml" / "www" / part)
    dirs = [p for p in ro.rglob("*") if p.is_dir()] + [ro]
    for d in dirs:
        d.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running with rights that ignore directory permissions")
        with pytest.raises(ConfigError, match="not writable"):
            load_fold(BALANCE, 0, openml_cache_dir=str(ro), offline="true")
    finally:
        for d in dirs:
            d.chmod(0o755)


def test_invalid_offline_value_is_a_config_error(openml_cache):
    with pytest.raises(ConfigError, match="offline"):
        load_fold(CREDIT_G, 0, openml_cache_dir=str(openml_cache), offline="sometimes")


@pytest.mark.parametrize("task_id", [3, 6, 11, 15, 28, 31, 37, 43])
def test_every_cached_task_loads_and_preprocesses(openml_cache, task_id):
    fold = load_fold(
        {"source": "openml", "task_id": task_id}, 0, openml_cache_dir=str(openml_cache)
    )
    n_rows = len(fold.train_index) + len(fold.test_index)
    assert len(fold.test_index) in (n_rows // 10, n_rows // 10 + 1)
    assert set(np.unique(fold.y_train)) == set(range(fold.n_classes))
    out = Preprocessor().fit_transform(fold.X_train, fold.y_train, categorical=fold.categorical)
    assert out.shape[0] == len(fold.y_train) and np.isfinite(out).all()
