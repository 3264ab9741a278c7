"""TabResNetClassifier / TabResNetRegressor behave like scikit-learn estimators and learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from mesobench.models import TabResNetClassifier, TabResNetRegressor

SMALL = {"epochs": 8, "warmup_epochs": 2, "batch_size": 64, "hidden_size": 32}


def _classification(n_classes=2, n=300, seed=0):
    X, y = make_classification(
        n, 8, n_informative=5, n_classes=n_classes, n_clusters_per_class=1, random_state=seed
    )
    return X.astype(np.float32), y


def test_learns_an_easy_problem_to_high_auroc():
    X, y = make_classification(900, 10, n_informative=6, class_sep=1.5, random_state=1)
    train, val, test = slice(0, 500), slice(500, 700), slice(700, None)
    model = TabResNetClassifier(epochs=30, random_state=0)
    model.fit(X[train], y[train], eval_set=(X[val], y[val]))
    assert roc_auc_score(y[test], model.predict_proba(X[test])[:, 1]) > 0.9


def test_without_eval_set_all_epochs_run():
    X, y = _classification(2)
    model = TabResNetClassifier(random_state=0, **SMALL).fit(X, y)
    assert model.train_result_.epochs_run == SMALL["epochs"]
    assert model.train_result_.val_scores == []


def test_accepts_pandas_and_a_batch_size_larger_than_n():
    X, y = _classification(2, n=40)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    model = TabResNetClassifier(random_state=0, **{**SMALL, "batch_size": 4096})
    model.fit(frame, pd.Series(y))
    assert model.n_features_in_ == X.shape[1]
    assert model.predict_proba(frame).shape == (40, 2)


def test_eval_rows_with_labels_unseen_in_training_are_dropped_with_a_warning():
    X, y = _classification(2)
    y_val = np.r_[y[:20], [9, 9]]
    X_val = np.vstack([X[:20], X[:2]])
    with pytest.warns(UserWarning, match=r"dropped 2 row\(s\) whose labels \[9\]"):
        model = TabResNetClassifier(random_state=0, **SMALL).fit(X, y, eval_set=(X_val, y_val))
    assert len(model.train_result_.val_scores) == model.train_result_.epochs_run


def test_a_single_class_eval_set_disables_early_stopping_with_a_warning():
    X, y = _classification(2)
    with pytest.warns(UserWarning, match="without early stopping"):
        model = TabResNetClassifier(random_state=0, **SMALL).fit(
            X, y, eval_set=(X[:5], np.zeros(5, dtype=int))
        )
    assert model.train_result_.val_scores == []
    assert model.train_result_.epochs_run == SMALL["epochs"]


def test_wrong_feature_count_at_predict_is_refused():
    X, y = _classification(2)
    model = TabResNetClassifier(random_state=0, **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict_proba(X[:, :3])


@pytest.mark.parametrize("cls", [TabResNetClassifier, TabResNetRegressor])
def test_not_fitted_error_before_fit(cls):
    method = "predict_proba" if cls is TabResNetClassifier else "predict"
    with pytest.raises(NotFittedError):
        getattr(cls(), method)(np.zeros((2, 3)))


@pytest.mark.parametrize("cls", [TabResNetClassifier, TabResNetRegressor])
def test_get_params_set_params_and_clone_round_trip(cls):
    model = cls(hidden_size=64, lr=3e-3, random_state=5)
    params = model.get_params()
    assert params["hidden_size"] == 64 and params["device"] == "cpu"
    copy = clone(model)
    assert copy.get_params() == params and copy is not model
    copy.set_params(dropout=0.1, early_stopping_patience=None)
    assert copy.dropout == 0.1 and copy.early_stopping_patience is None
    assert model.dropout == 0.25


def test_regressor_predicts_on_the_original_scale():
    X, y = make_regression(400, 6, n_informative=4, noise=1.0, random_state=0)
    y = 1000 + 50 * y  # far from standardised
    model = TabResNetRegressor(random_state=0, epochs=40, warmup_epochs=2, batch_size=64)
    model.fit(X[:300], y[:300], eval_set=(X[300:], y[300:]))
    pred = model.predict(X[300:])
    assert abs(pred.mean() - y[300:].mean()) < 0.2 * y.std()
    assert np.corrcoef(pred, y[300:])[0, 1] > 0.9


def test_n_jobs_sets_torch_threads_only_while_fitting(monkeypatch):
    import torch

    from mesobench.models import torch_estimator

    threads_during_training = []

    def recording_train(*args, **kwargs):
        threads_during_training.append(torch.get_num_threads())
        return real_train(*args, **kwargs)

    real_train = torch_estimator.train
    monkeypatch.setattr(torch_estimator, "train", recording_train)
    before = torch.get_num_threads()
    X, y = _classification(2, n=60)
    TabResNetClassifier(random_state=0, n_jobs=1, **{**SMALL, "epochs": 1}).fit(X, y)
    assert threads_during_training == [1]
    assert torch.get_num_threads() == before
