"""Black-box and linear baselines as thin scikit-learn estimators with one common interface.

Every wrapper

* takes ``random_state``, ``device`` and ``n_jobs`` (threads; None = the library's default) besides
  its own hyperparameters, and only stores them in ``__init__``;
* fits with ``fit(X, y)``; the boosting models take ``fit(X, y, eval_set=(X_val, y_val))`` too and
  early-stop on it. Logistic regression and random forest have no ``eval_set`` argument on
  purpose: the harness gives validation data only to a ``fit`` that accepts it, so these train on
  the whole training fold instead of losing a validation share they would not use;
* keeps the original labels in ``classes_`` (any sortable values, e.g. strings) and returns
  ``predict_proba`` columns in that order (the library model is trained on codes 0..C-1);
* keeps the fitted library model in ``model_``.

Saving (:mod:`mesobench.models.persistence`): XGBoost in its own binary format (``model.ubj``),
CatBoost in its own (``model.cbm``), logistic regression as its coefficients (JSON in the
manifest), the random forests with skops (``model.skops``, loading only trusted types).

Local attributions, for the fidelity metrics (:mod:`mesobench.metrics.fidelity`): logistic
regression has ``explain(X)`` (its coefficients as a local linear model on every row) and
``decision_function``. The tree models (XGBoost, CatBoost, random forest) have
``explained_output(X)``, the output their attributions share out (the margin
``decision_function`` for the boosting classifiers, the class probabilities for the random forest
classifier, ``predict`` for regressors), and ``contributions(X, baseline=None) -> (values,
bias)`` with ``values.sum(1) + bias == explained_output(X)``:

* ``baseline`` given (one row, in X's format): interventional TreeSHAP against that one row
  (Lundberg et al. 2020), i.e. the baseline Shapley values (Sundararajan & Najmi 2020) that
  share out ``f(x) − f(baseline)``, and ``bias = f(baseline)``. Computed by library code:
  CatBoost's ``ShapValues`` with ``reference_data``, ``shap.TreeExplainer`` for XGBoost and the
  forests on their trees re-expressed exactly as plain threshold trees
  (:mod:`mesobench.models.tree_shap`: shap refuses XGBoost's categorical splits).
* ``baseline=None``: path-dependent TreeSHAP against the training data's cover-weighted
  expectation, the values XGBoost and CatBoost compute natively (shap's for the forest).

Expected inputs (what the harness's preprocessing produces for each ``preprocessing`` kind of
``conf/model/*.yaml``): logistic regression a finite float matrix (standardised + one-hot); random
forest a float matrix of ordinal codes that may hold NaN; XGBoost and CatBoost a DataFrame whose
categorical columns have pandas ``category`` dtype (numeric columns may hold NaN), or a float
matrix.

GPU: XGBoost (``device``) and CatBoost (``task_type="GPU"``) honour ``device="cuda"|"cuda:N"|"auto"``
via :func:`~mesobench.models.device.resolve_device`; scikit-learn has no GPU path, so logistic
regression and random forest accept any ``device`` value and always run on the CPU.
"""

from __future__ import annotations

import time
from typing import Any

import catboost
import numpy as np
import pandas as pd
import xgboost
from sklearn import ensemble, linear_model
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import (
    assert_all_finite,
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from threadpoolctl import threadpool_limits

from mesobench.errors import DataError
from mesobench.models import tree_shap
from mesobench.models.device import resolve_device
from mesobench.models.explanation import Explanation
from mesobench.models.params import store_init_params
from mesobench.models.persistence import ModelLoadError, ModelState, Persistable, native_bytes
from mesobench.models.training import encode_class_labels, encode_eval_labels, seed_from

# --------------------------------------------------------------------------------------------
# Shared fit / predict logic
# --------------------------------------------------------------------------------------------


class _Wrapper(BaseEstimator):
    """Input validation shared by all wrappers; subclasses implement ``_fit_model``.

    ``_native_input = True`` keeps DataFrames as they are (XGBoost, CatBoost read ``category``
    columns themselves); otherwise X becomes a float64 array, NaN allowed iff ``_allow_nan``.
    """

    _native_input = False
    _allow_nan = False

    def _validate_X(self, X, *, reset: bool):
        if self._native_input:
            if not isinstance(X, pd.DataFrame):  # a matrix: 2-d, numbers, NaN allowed
                X = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan")
            validate_data(self, X, reset=reset, skip_check_array=True)
            return X
        finite = "allow-nan" if self._allow_nan else True
        return validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite=finite)

    def _validate_Xy(self, X, y):
        X = self._validate_X(X, reset=True)
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        if len(y) < 2:  # the libraries fail on it with their own, less clear, errors
            raise DataError(f"got n_samples = {len(y)}: a model needs at least 2 rows to fit")
        return X, y

    def __sklearn_tags__(self):
        """Tree models take missing values (``allow_nan``), as scikit-learn's own trees say."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self._allow_nan or self._native_input
        return tags

    @property
    def n_iter_(self):
        """Iterations the wrapped solver ran, for the models that iterate (``max_iter``)."""
        return self.model_.n_iter_


class _WrappedClassifier(ClassifierMixin, _Wrapper):
    def fit(self, X, y):
        """Fit on (X, y); returns self."""
        return self._fit(X, y, eval_set=None)

    def _fit(self, X, y, eval_set):
        X, y = self._validate_Xy(X, y)
        self.classes_, y_codes = encode_class_labels(y)
        if eval_set is not None:
            X_val, y_val = eval_set
            X_val = self._validate_X(X_val, reset=False)
            keep, codes = encode_eval_labels(self.classes_, column_or_1d(y_val))
            X_val = X_val if keep.all() else X_val[keep]
            eval_set = (X_val, codes) if len(codes) else None
        self.model_ = self._fit_model(X, y_codes, eval_set)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in ``classes_`` order."""
        check_is_fitted(self)
        proba = np.asarray(self._predict_proba(self._validate_X(X, reset=False)), dtype=np.float64)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """Most probable class label for each row."""
        check_is_fitted(self)  # NotFittedError, not an AttributeError on classes_
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def _predict_proba(self, X):
        return self.model_.predict_proba(X)


class _WrappedRegressor(RegressorMixin, _Wrapper):
    def fit(self, X, y):
        """Fit on (X, y); returns self."""
        return self._fit(X, y, eval_set=None)

    def _fit(self, X, y, eval_set):
        X, y = self._validate_Xy(X, y)
        y = np.asarray(y, dtype=np.float64)
        assert_all_finite(y, input_name="y")
        if eval_set is not None:
            X_val, y_val = eval_set
            eval_set = (self._validate_X(X_val, reset=False), column_or_1d(y_val).astype(float))
        self.model_ = self._fit_model(X, y, eval_set)
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(self._predict(self._validate_X(X, reset=False)), dtype=np.float64)

    def _predict(self, X):
        return self.model_.predict(X)


def _split_contributions(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Library SHAP output → ``(values, bias)``.

    ``raw`` is (n, F+1) (one output) or (n, C, F+1) (one per class), the last column the bias
    (expected value). Returns values (n, F) and bias (n,), or (n, F, C) and (n, C).
    """
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim == 2:
        return raw[:, :-1], raw[:, -1]
    return raw[:, :, :-1].transpose(0, 2, 1), raw[:, :, -1]


class _TreeAttributions:
    """``contributions(X, baseline=None, target=None)`` of the tree wrappers.

    Subclasses implement ``explained_output(X)``, ``_native_contributions(X)`` (baseline None)
    and ``_baseline_values(X, B, target)`` ((n, F) or (n, F, C) values against the validated
    one-row baseline ``B``; with ``target``, (n, F) of each row's class).
    """

    def _contributions(self, X, baseline, target=None) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        if baseline is None:
            return self._native_contributions(X)
        B = self._validate_X(baseline, reset=False)
        if B.shape[0] != 1:
            raise ValueError(f"baseline must be one row (in X's format); got {B.shape[0]} rows")
        if target is not None:  # one class per row: only multiclass has a choice to make
            target = np.asarray(target, dtype=np.int64).reshape(-1)
            if self._n_outputs() == 1:
                target = None
            elif target.shape != (X.shape[0],) or not np.all(
                (target >= 0) & (target < self._n_outputs())
            ):
                raise ValueError(f"target must hold one class index per row of X ({X.shape[0]})")
        values = np.asarray(self._baseline_values(X, B, target), dtype=np.float64)
        at_baseline = np.repeat(np.asarray(self.explained_output(B), np.float64), len(values), 0)
        if target is not None:
            at_baseline = np.take_along_axis(at_baseline, target[:, None], axis=1)[:, 0]
        return values, at_baseline

    def _n_outputs(self) -> int:
        """Explained outputs: one per class for multiclass, else one."""
        classes = getattr(self, "classes_", None)
        return len(classes) if classes is not None and len(classes) > 2 else 1


def _one_output(values: np.ndarray) -> np.ndarray:
    """(n, F, 1) → (n, F); (n, F, C) as it is."""
    return values[:, :, 0] if values.shape[2] == 1 else values


_CONTRIBUTIONS_DOC = """{intro}

    Returns ``(values, bias)``: values (n, F) and bias (n,) for binary classification and
    regression, (n, F, C) and (n, C) for multiclass, one value per input column (a ``category``
    column gets one), such that ``values.sum(1) + bias == explained_output(X)`` ({output}).

    ``baseline`` (one row in X's format: a 1-row DataFrame with the same column dtypes for
    DataFrame input, a (1, F) matrix otherwise): interventional TreeSHAP against that single
    row (Lundberg et al. 2020, "From local explanations to global understanding with
    explainable AI for trees"), which is the baseline Shapley value of Sundararajan & Najmi
    2020: values share out ``f(x) − f(baseline)``, ``bias`` is ``explained_output(baseline)``
    on every row, and a feature whose value equals the baseline's gets exactly 0. {baseline}
    ``target`` (with a baseline, multiclass only): one class index per row; values (n, F) and
    bias (n,) of that class alone, at the cost of one class (each class's trees explain only
    the rows that ask for it).

    ``baseline=None``: {native}
    """


# --------------------------------------------------------------------------------------------
# Logistic regression
# --------------------------------------------------------------------------------------------


class LogisticRegressionClassifier(Persistable, _WrappedClassifier):
    """L2-regularised (multinomial) logistic regression, scikit-learn's lbfgs solver.

    Parameters
    ----------
    C : float, default 1.0
        Inverse L2 regularisation strength (scikit-learn's default).
    max_iter : int, default 1000
        lbfgs iterations; 1000 converges on standardised one-hot CC18 data (scikit-learn's 100
        does not on e.g. letter or optdigits).
    random_state : int, RandomState or None, default None
        Passed to scikit-learn (lbfgs is deterministic; kept for a uniform interface).
    device : str, default "cpu"
        Ignored: scikit-learn always runs on the CPU.
    n_jobs : int or None, default None
        Limit of BLAS/OpenMP threads during fit (threadpoolctl); None leaves the default.

    Input: a finite float matrix (standardised + one-hot).
    """

    def __init__(self, C=1.0, max_iter=1000, random_state=None, device="cpu", n_jobs=None):
        store_init_params(self, locals())

    def _new_model(self) -> linear_model.LogisticRegression:
        return linear_model.LogisticRegression(
            C=self.C, solver="lbfgs", max_iter=self.max_iter, random_state=self.random_state
        )

    def _fit_model(self, X, y, eval_set):
        with threadpool_limits(limits=self.n_jobs):
            return self._new_model().fit(X, y)

    def _persist_state(self) -> ModelState:
        """The fitted coefficients, as plain attributes (no weight file)."""
        model = self.model_
        return ModelState(
            attributes={
                **self._fitted_attributes(),
                "model_coef_": model.coef_,
                "model_intercept_": model.intercept_,
                "model_classes_": model.classes_,
                "model_n_iter_": model.n_iter_,
            }
        )

    def _restore_state(self, state: ModelState, device: str) -> None:
        """scikit-learn's model with the saved coefficients: it predicts from exactly these."""
        self._restore_attributes(state.attributes)
        model = self._new_model()
        model.coef_ = state.attributes["model_coef_"]
        model.intercept_ = state.attributes["model_intercept_"]
        model.classes_ = state.attributes["model_classes_"]
        model.n_iter_ = state.attributes["model_n_iter_"]
        model.n_features_in_ = self.n_features_in_
        self.model_ = model

    def decision_function(self, X) -> np.ndarray:
        """Logits ``X · coef + intercept``: shape (n,) for binary (positive class), (n, C) else."""
        check_is_fitted(self)
        return self.model_.decision_function(self._validate_X(X, reset=False))

    def explain(self, X) -> Explanation:
        """The global linear model as a local one: the same weights and intercept on every row.

        Binary: weights (n, F), intercept (n,); multiclass: (n, F, C), (n, C). ``Explanation
        .output(X)`` equals ``decision_function(X)`` (a truly local-linear model, so its LFR
        infidelity is 0).
        """
        check_is_fitted(self)
        n = self._validate_X(X, reset=False).shape[0]
        coef, intercept = self.model_.coef_, self.model_.intercept_  # (C', F), (C',)
        if len(self.classes_) == 2:
            return Explanation(np.tile(coef[0], (n, 1)), np.full(n, float(intercept[0])))
        return Explanation(np.tile(coef.T, (n, 1, 1)), np.tile(intercept, (n, 1)))


# --------------------------------------------------------------------------------------------
# Random forest
# --------------------------------------------------------------------------------------------

_RF_DOC = """
    Parameters
    ----------
    n_estimators : int, default 500
        Number of trees; AUROC has saturated by then on CC18 and letter (20k rows) still fits in
        about 6 s on 2 cores.
    max_features : str, int or float, default "sqrt"
        Features considered per split (scikit-learn's classification default; the regressor
        uses the same default here, which is usually better than all features).
    min_samples_leaf : int, default 1
        Minimum rows in a leaf (scikit-learn's default).
    max_depth : int or None, default 30
        Deepest level of a tree (None: grown until the leaves are pure, scikit-learn's
        default). 30 because interventional TreeSHAP (``contributions`` with a baseline,
        computed by ``shap``) is exact only on paths that split on at most 30 distinct
        features, which unbounded trees exceed on wider tasks (spambase); docs/fidelity.md
        gives the measured effect on AUROC.
    random_state : int, RandomState or None, default None
        Seeds bootstrap and feature sampling.
    device : str, default "cpu"
        Ignored: scikit-learn always runs on the CPU.
    n_jobs : int or None, default None
        Trees built in parallel (scikit-learn's ``n_jobs``; None = 1 thread).

    Input: a float matrix of ordinal codes; NaN is allowed (scikit-learn >= 1.4 trees route
    missing values).
"""


SKOPS_FILE = "model.skops"
FOREST_TYPE_PREFIXES = ("sklearn.ensemble._forest.", "sklearn.tree.", "numpy.", "builtins.")
"""The types a saved scikit-learn forest may name (forest, trees, NumPy values)."""


class _RandomForestParams(Persistable, _Wrapper):
    """Parameters, fit and saving shared by the forest classifier and regressor.

    Saved with skops (``model.skops``): scikit-learn has no format of its own for a forest
    besides pickle, and skops' format loads only the types it is told to trust. Loading trusts
    exactly the types a scikit-learn forest is made of (forest, trees, NumPy values) and refuses
    a file naming anything else.
    """

    _allow_nan = True
    _forest: Any = None  # the scikit-learn class a subclass wraps

    def __init__(
        self,
        n_estimators=500,
        max_features="sqrt",
        min_samples_leaf=1,
        max_depth=30,
        random_state=None,
        device="cpu",
        n_jobs=None,
    ):
        store_init_params(self, locals())

    def _fit_model(self, X, y, eval_set):
        return self._forest(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf,
            max_depth=self.max_depth,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        ).fit(X, y)

    def _persist_state(self) -> ModelState:
        import skops.io

        return ModelState(
            attributes=self._fitted_attributes(), files={SKOPS_FILE: skops.io.dumps(self.model_)}
        )

    def _restore_state(self, state: ModelState, device: str) -> None:
        import skops.io

        data = state.files[SKOPS_FILE]
        untrusted = skops.io.get_untrusted_types(data=data)
        foreign = [t for t in untrusted if not t.startswith(FOREST_TYPE_PREFIXES)]
        if foreign:
            raise ModelLoadError(
                f"refusing {SKOPS_FILE}: it names types outside a forest: {foreign}"
            )
        self._restore_attributes(state.attributes)
        self.model_ = skops.io.loads(data, trusted=untrusted)


class _ForestAttributions(_TreeAttributions):
    def contributions(self, X, baseline=None, target=None) -> tuple[np.ndarray, np.ndarray]:
        return self._contributions(X, baseline, target)

    contributions.__doc__ = _CONTRIBUTIONS_DOC.format(
        intro="TreeSHAP values of the forest's ``explained_output``, computed by ``shap``.",
        output="class probabilities for the classifier, ``predict`` for the regressor",
        baseline='``shap.TreeExplainer(..., feature_perturbation="interventional")`` on the '
        "forest's trees, their thresholds rounded down to float32 (shap's interventional "
        "routine would round them to nearest, misrouting float32 inputs that sit on adjacent "
        "float32 training values); missing values follow each split's ``missing_go_to_left``.",
        native='shap\'s path-dependent TreeSHAP (``feature_perturbation="tree_path_dependent"``'
        "), explaining the output against the training data's cover-weighted expectation (the "
        "bias); exact, but about 20x slower than the baseline version on deep forests.",
    )

    def _columns(self) -> list[int]:
        """The value columns explained: the positive class, every class, or the prediction."""
        if not hasattr(self, "classes_"):
            return [0]
        return [1] if len(self.classes_) == 2 else list(range(len(self.classes_)))

    def _baseline_values(self, X, B, target) -> np.ndarray:
        columns = self._columns()
        trees = tree_shap.cached(
            self.model_,
            ("forest", tuple(columns)),
            lambda: tree_shap.forest_trees(self.model_, columns),
        )
        X, B = tree_shap.float32_values(X), tree_shap.float32_values(B)
        values = tree_shap.interventional_values(trees, len(columns), X, B, target)
        return values if target is not None else _one_output(values)

    def _native_contributions(self, X) -> tuple[np.ndarray, np.ndarray]:
        from shap import TreeExplainer

        explainer = TreeExplainer(self.model_, feature_perturbation="tree_path_dependent")
        values = np.asarray(explainer.shap_values(X, check_additivity=False), dtype=np.float64)
        expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
        if values.ndim == 3:
            columns = self._columns()
            values, expected = _one_output(values[:, :, columns]), expected[columns]
        bias = np.repeat(expected[None, :], X.shape[0], axis=0)
        return values, bias[:, 0] if bias.shape[1] == 1 else bias


class RandomForestClassifier(_ForestAttributions, _RandomForestParams, _WrappedClassifier):
    __doc__ = "scikit-learn random forest classifier.\n" + _RF_DOC
    _forest = ensemble.RandomForestClassifier

    def explained_output(self, X) -> np.ndarray:
        """What ``contributions`` shares out: the class probabilities ``predict_proba(X)``,
        (n,) the positive class for binary, (n, C) for multiclass. A forest's probability is the
        average of its trees' leaf class fractions, so it is the sum of tree outputs TreeSHAP
        splits exactly (a logit of it is not)."""
        proba = self.predict_proba(X)
        return proba[:, 1] if proba.shape[1] == 2 else proba


class RandomForestRegressor(_ForestAttributions, _RandomForestParams, _WrappedRegressor):
    __doc__ = "scikit-learn random forest regressor.\n" + _RF_DOC
    _forest = ensemble.RandomForestRegressor

    def explained_output(self, X) -> np.ndarray:
        """What ``contributions`` shares out: the prediction ``predict(X)``, shape (n,)."""
        return self.predict(X)


# --------------------------------------------------------------------------------------------
# XGBoost
# --------------------------------------------------------------------------------------------

_XGB_DOC = """
    Parameters
    ----------
    n_estimators : int, default 1000
        Maximum boosting rounds. With ``eval_set`` training stops after ``early_stopping_rounds``
        rounds without improvement of the validation log loss and the best round is used;
        without ``eval_set`` all rounds are built.
    learning_rate : float, default 0.1
        Shrinkage. With early stopping 0.1 is within noise of 0.05 / 2000 rounds in AUROC on the
        cached CC18 tasks at about half the time (letter builds 26 trees per round: ~20 s).
    max_depth : int, default 6
        Maximum tree depth (XGBoost's default).
    min_child_weight : float, default 1.0
        Minimum hessian sum in a leaf (XGBoost's default).
    subsample : float, default 0.8
        Row subsampling per tree.
    colsample_bytree : float, default 0.8
        Column subsampling per tree.
    reg_lambda : float, default 1.0
        L2 regularisation of leaf weights (XGBoost's default).
    max_bin : int, default 256
        Histogram bins per feature (XGBoost's default).
    early_stopping_rounds : int, default 50
        Patience in rounds, used only with ``eval_set``.
    random_state : int, RandomState or None, default None
        Seeds the row / column subsampling.
    device : str, default "cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (XGBoost's ``device``).
    n_jobs : int or None, default None
        XGBoost threads (None = all cores).

    Input: a DataFrame (``category`` columns are used natively, ``enable_categorical=True``;
    NaN is missing) or a float matrix. Uses ``tree_method="hist"``; the objective
    (``binary:logistic`` / ``multi:softprob`` / ``reg:squarederror``) follows the task.
"""


class _RoundTimer(xgboost.callback.TrainingCallback):
    """Wall seconds of each boosting round, so that a round's cost is known apart from the fit's
    one-off part (data conversion, quantile sketch): the cost plan scales a 20-tree measurement
    to 1000 trees, and fit / trees counted the one-off part a thousand times."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._last = 0.0

    def before_training(self, model):
        self._last = time.perf_counter()
        return model

    def after_iteration(self, model, epoch, evals_log) -> bool:
        now = time.perf_counter()
        self.seconds.append(now - self._last)
        self._last = now
        return False  # never stops training


class _XGBoostParams(_TreeAttributions, Persistable, _Wrapper):
    _native_input = True
    _library_class: type  # xgboost.XGBClassifier / XGBRegressor

    def __init__(
        self,
        n_estimators=1000,
        learning_rate=0.1,
        max_depth=6,
        min_child_weight=1.0,
        subsample=0.8,
        colsample_bytree=0.8,
        reg_lambda=1.0,
        max_bin=256,
        early_stopping_rounds=50,
        random_state=None,
        device="cpu",
        n_jobs=None,
    ):
        store_init_params(self, locals())

    def fit(self, X, y, eval_set=None):
        """Fit on (X, y), early-stopping on ``eval_set=(X_val, y_val)`` when given; returns self."""
        return self._fit(X, y, eval_set)

    def _fit_model(self, X, y, eval_set):
        model = self._library_class(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            min_child_weight=self.min_child_weight,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            max_bin=self.max_bin,
            early_stopping_rounds=self.early_stopping_rounds if eval_set is not None else None,
            tree_method="hist",
            enable_categorical=True,
            device=resolve_device(self.device),
            n_jobs=self.n_jobs,
            random_state=seed_from(self.random_state),
            callbacks=[timer := _RoundTimer()],
        )
        model.fit(X, y, eval_set=[eval_set] if eval_set is not None else None, verbose=False)
        model.set_params(callbacks=None)  # a fitted model carries no timer (pickling, saving)
        self.round_seconds_ = timer.seconds
        return model

    def training_curves(self) -> dict[str, list[float]]:
        """``epoch_seconds``: the wall time of each boosting round (XGBoost's epoch), as the
        torch models report theirs; empty for a model loaded from disk."""
        check_is_fitted(self)
        seconds = getattr(self, "round_seconds_", None)
        return {"epoch_seconds": list(seconds)} if seconds else {}

    def _persist_state(self) -> ModelState:
        """The booster in XGBoost's own binary format (UBJSON), with its scikit-learn settings."""
        return ModelState(
            attributes=self._fitted_attributes(),
            files={"model.ubj": native_bytes(self.model_.save_model, "model.ubj")},
        )

    def _restore_state(self, state: ModelState, device: str) -> None:
        self._restore_attributes(state.attributes)
        model = self._library_class()
        model.load_model(bytearray(state.files["model.ubj"]))
        model.set_params(device=resolve_device(device), n_jobs=self.n_jobs)
        self.model_ = model

    def _iteration_range(self) -> tuple[int, int]:
        """Trees used by ``predict``: up to the best round after early stopping, else all."""
        try:
            return 0, int(self.model_.best_iteration) + 1
        except AttributeError:  # no early stopping
            return 0, 0

    def contributions(self, X, baseline=None, target=None) -> tuple[np.ndarray, np.ndarray]:
        return self._contributions(X, baseline, target)

    contributions.__doc__ = _CONTRIBUTIONS_DOC.format(
        intro="TreeSHAP values of the margin, in margin units.",
        output="``decision_function(X)``, log-odds / per-class raw scores, for the classifier, "
        "``predict(X)`` for the squared-error regressor",
        baseline='``shap.TreeExplainer(..., feature_perturbation="interventional")`` on the '
        "trees ``predict`` uses, re-expressed as plain threshold trees by "
        ":func:`mesobench.models.tree_shap.xgboost_trees` (shap refuses XGBoost's categorical "
        "splits; each becomes a binary search over thresholds on the same column's category "
        "codes, so the column stays one player and the values are exact). Raises ValueError "
        "when that needs more than ``tree_shap.MAX_TREE_SHAP_NODES`` nodes.",
        native="XGBoost's own path-dependent TreeSHAP (``pred_contribs``), against the training "
        "data's cover-weighted expectation (the bias).",
    )

    def _native_contributions(self, X) -> tuple[np.ndarray, np.ndarray]:
        matrix = xgboost.DMatrix(X, enable_categorical=True, nthread=self.n_jobs or -1)
        raw = self.model_.get_booster().predict(
            matrix, pred_contribs=True, iteration_range=self._iteration_range()
        )
        return _split_contributions(raw)

    def _baseline_values(self, X, B, target) -> np.ndarray:
        booster = self.model_.get_booster()
        iterations = self._iteration_range()
        trees = tree_shap.cached(
            self.model_,
            ("xgboost", iterations),
            lambda: tree_shap.xgboost_trees(booster, iterations),
        )
        categories = tree_shap.xgboost_categories(booster)
        X, B = tree_shap.xgboost_matrix(X, categories), tree_shap.xgboost_matrix(B, categories)
        values = tree_shap.interventional_values(trees, self._n_outputs(), X, B, target)
        return values if target is not None else _one_output(values)


class XGBoostClassifier(_XGBoostParams, _WrappedClassifier):
    __doc__ = "XGBoost gradient-boosted trees classifier.\n" + _XGB_DOC
    _library_class = xgboost.XGBClassifier

    def decision_function(self, X) -> np.ndarray:
        """Margin (raw score before the link): (n,) log-odds for binary, (n, C) multiclass."""
        check_is_fitted(self)
        margin = self.model_.predict(self._validate_X(X, reset=False), output_margin=True)
        return np.asarray(margin, dtype=np.float64)

    def explained_output(self, X) -> np.ndarray:
        """What ``contributions`` shares out: the margin ``decision_function(X)``, (n,) log-odds
        for binary, (n, C) per-class scores for multiclass. The margin is the sum of the trees'
        leaf values (plus the base score), the quantity TreeSHAP splits exactly."""
        return self.decision_function(X)


class XGBoostRegressor(_XGBoostParams, _WrappedRegressor):
    __doc__ = "XGBoost gradient-boosted trees regressor.\n" + _XGB_DOC
    _library_class = xgboost.XGBRegressor

    def explained_output(self, X) -> np.ndarray:
        """What ``contributions`` shares out: the prediction ``predict(X)``, shape (n,) (for the
        squared error the margin itself: the sum of the trees' leaf values and base score)."""
        return self.predict(X)


# --------------------------------------------------------------------------------------------
# CatBoost
# --------------------------------------------------------------------------------------------

_CATBOOST_DOC = """
    Parameters
    ----------
    iterations : int, default 500
        Maximum boosting rounds. With ``eval_set`` training stops after ``early_stopping_rounds``
        rounds without improvement of the validation loss and the best iteration is kept
        (``use_best_model``); without ``eval_set`` all rounds are built. A MultiClass round
        costs ~30 ms on letter (14k rows, 26 classes) on 2 cores, so letter takes ~15 s; on the
        cached CC18 tasks 500 rounds at lr 0.1 match 1000 at lr 0.03 in AUROC.
    learning_rate : float or None, default 0.1
        Shrinkage. CatBoost's automatic choice (None) is 0.03 whenever an eval set is given,
        which needs about 3x the rounds for the same fit.
    depth : int, default 6
        Depth of the symmetric trees (CatBoost's default).
    l2_leaf_reg : float, default 3.0
        L2 regularisation of leaf values (CatBoost's default).
    early_stopping_rounds : int, default 50
        Patience in rounds, used only with ``eval_set``.
    random_state : int, RandomState or None, default None
        CatBoost's ``random_seed``.
    device : str, default "cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CatBoost ``task_type="GPU"``,
        ``devices=N``).
    n_jobs : int or None, default None
        CatBoost ``thread_count`` (None = all cores).

    Input: a DataFrame whose ``category`` / string columns become ``cat_features`` (values as
    strings, missing as the string "nan"; numeric NaN is missing), or a float matrix. CatBoost
    writes nothing to disk (``allow_writing_files=False``) and prints nothing.
"""


def _catboost_frame(X) -> tuple[object, list]:
    """``(X, cat_features)``: categorical DataFrame columns as str with missing as "nan"."""
    if not isinstance(X, pd.DataFrame):
        return X, []
    categorical = [
        c
        for c in X.columns
        if isinstance(X[c].dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(X[c])
    ]
    if not categorical:
        return X, []
    X = X.copy()
    for c in categorical:
        values = X[c].astype(object)
        X[c] = values.where(values.notna(), "nan").astype(str)
    return X, categorical


class _CatBoostParams(_TreeAttributions, Persistable, _Wrapper):
    _native_input = True
    _library_class: type  # catboost.CatBoostClassifier / CatBoostRegressor

    def __init__(
        self,
        iterations=500,
        learning_rate=0.1,
        depth=6,
        l2_leaf_reg=3.0,
        early_stopping_rounds=50,
        random_state=None,
        device="cpu",
        n_jobs=None,
    ):
        store_init_params(self, locals())

    def fit(self, X, y, eval_set=None):
        """Fit on (X, y), early-stopping on ``eval_set=(X_val, y_val)`` when given; returns self."""
        return self._fit(X, y, eval_set)

    def _fit_catboost(self, X, y, eval_set, **loss):
        device = resolve_device(self.device)
        gpu = {}
        if device.startswith("cuda"):
            gpu = {"task_type": "GPU", "devices": device.partition(":")[2] or "0"}
        model = self._library_class(
            iterations=self.iterations,
            learning_rate=self.learning_rate,
            depth=self.depth,
            l2_leaf_reg=self.l2_leaf_reg,
            random_seed=seed_from(self.random_state),
            thread_count=self.n_jobs if self.n_jobs is not None else -1,
            allow_writing_files=False,
            verbose=False,
            **gpu,
            **loss,
        )
        X, cat_features = _catboost_frame(X)
        fit_args = {}
        if eval_set is not None:
            fit_args = {
                "eval_set": (_catboost_frame(eval_set[0])[0], eval_set[1]),
                "early_stopping_rounds": self.early_stopping_rounds,
                "use_best_model": True,
            }
        return model.fit(X, y, cat_features=cat_features, **fit_args)

    def _catboost_input(self, X):
        return _catboost_frame(X)[0]

    def _persist_state(self) -> ModelState:
        """The model in CatBoost's own binary format (``.cbm``)."""

        def write(path):
            self.model_.save_model(str(path), format="cbm")

        return ModelState(
            attributes=self._fitted_attributes(),
            files={"model.cbm": native_bytes(write, "model.cbm")},
        )

    def _restore_state(self, state: ModelState, device: str) -> None:
        """The saved model; it predicts on the CPU (CatBoost applies models on the CPU)."""
        self._restore_attributes(state.attributes)
        self.model_ = self._library_class().load_model(blob=state.files["model.cbm"])

    def contributions(self, X, baseline=None, target=None) -> tuple[np.ndarray, np.ndarray]:
        return self._contributions(X, baseline, target)

    contributions.__doc__ = _CONTRIBUTIONS_DOC.format(
        intro="SHAP values of the raw formula value, computed by CatBoost itself.",
        output="``decision_function(X)`` for the classifier, ``predict(X)`` for the RMSE regressor",
        baseline="CatBoost's ``ShapValues`` with ``reference_data`` = the baseline (its "
        "Independent Tree SHAP, the interventional TreeSHAP of Lundberg et al.), binary, "
        "multiclass and regression alike.",
        native="CatBoost's own path-dependent ``ShapValues``, against the training data's "
        "expectation (the bias).",
    )

    def _catboost_pool(self, X) -> catboost.Pool:
        """X as a Pool with a dummy label: CatBoost's ``reference_data`` SHAP needs labels."""
        X, cat_features = _catboost_frame(X)
        return catboost.Pool(X, cat_features=cat_features, label=np.zeros(X.shape[0]))

    def _native_contributions(self, X) -> tuple[np.ndarray, np.ndarray]:
        X, cat_features = _catboost_frame(X)
        raw = self.model_.get_feature_importance(
            data=catboost.Pool(X, cat_features=cat_features),
            type="ShapValues",
            thread_count=self.n_jobs if self.n_jobs is not None else -1,
        )
        return _split_contributions(raw)

    def _baseline_values(self, X, B, target) -> np.ndarray:
        raw = self.model_.get_feature_importance(
            data=self._catboost_pool(X),
            type="ShapValues",
            reference_data=self._catboost_pool(B),
            thread_count=self.n_jobs if self.n_jobs is not None else -1,
        )
        values = _split_contributions(raw)[0]  # CatBoost computes every class in one pass
        if target is None:
            return values
        return np.take_along_axis(values, target[:, None, None], axis=2)[:, :, 0]


class CatBoostClassifier(_CatBoostParams, _WrappedClassifier):
    __doc__ = "CatBoost gradient-boosted trees classifier.\n" + _CATBOOST_DOC
    _library_class = catboost.CatBoostClassifier

    def _fit_model(self, X, y, eval_set):
        loss = "Logloss" if len(self.classes_) == 2 else "MultiClass"
        return self._fit_catboost(X, y, eval_set, loss_function=loss)

    def _predict_proba(self, X):
        return self.model_.predict_proba(self._catboost_input(X))

    def decision_function(self, X) -> np.ndarray:
        """Raw formula value: (n,) log-odds for binary, (n, C) per-class scores for multiclass."""
        check_is_fitted(self)
        X = self._catboost_input(self._validate_X(X, reset=False))
        raw = self.model_.predict(X, prediction_type="RawFormulaVal")
        return np.asarray(raw, dtype=np.float64)

    def explained_output(self, X) -> np.ndarray:
        """What ``contributions`` shares out: the raw formula value ``decision_function(X)``,
        (n,) log-odds for binary, (n, C) per-class scores for multiclass (the sum of the trees'
        leaf values, the quantity TreeSHAP splits exactly)."""
        return self.decision_function(X)


class CatBoostRegressor(_CatBoostParams, _WrappedRegressor):
    __doc__ = "CatBoost gradient-boosted trees regressor.\n" + _CATBOOST_DOC
    _library_class = catboost.CatBoostRegressor

    def _fit_model(self, X, y, eval_set):
        return self._fit_catboost(X, y, eval_set, loss_function="RMSE")

    def _predict(self, X):
        return self.model_.predict(self._catboost_input(X))

    def explained_output(self, X) -> np.ndarray:
        """What ``contributions`` shares out: the prediction ``predict(X)``, shape (n,) (for
        RMSE the raw formula value, the sum of the trees' leaf values)."""
        return self.predict(X)
