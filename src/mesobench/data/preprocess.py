"""Preprocessing of raw tabular features, fitted on the training fold only.

Three output modes, one per model family:

``"neural"`` (IMN, LFR-IMN, NIMO, MLPs, logistic regression) → ``float32`` ndarray.
    Numerics standardised with NaN-ignoring statistics, then NaN → 0 (mean imputation, as the
    IMN reference code; ``standardise_numeric=False`` keeps them raw, NaN → 0, for protocols
    that feed raw features, e.g. the NIMO paper's synthetic tasks). Categoricals with at most ``onehot_max_categories`` categories are
    one-hot encoded (missing and unseen categories → all-zero row); those with more are target
    encoded (scikit-learn ``TargetEncoder``, cross-fitted on the training data, works for
    binary, multiclass and regression targets; needs ``y``) and then standardised, or, with
    ``high_cardinality="ordinal"``, replaced by standardised ordinal codes.
``"ordinal"`` (scikit-learn trees) → ``float32`` ndarray.
    Numerics raw with NaN kept; categoricals as ordinal codes 0..k−1 with missing/unseen → NaN.
``"native"`` (XGBoost, CatBoost) → DataFrame.
    Numerics ``float64`` with NaN; categoricals as pandas ``category`` dtype whose categories are
    the training fold's categories as strings (unseen → NaN).

All modes drop, in this order of checks: columns with more than ``max_missing_fraction``
missing values, constant columns (at most one distinct non-missing value), and categoricals
whose share of distinct values among non-missing ones exceeds ``max_unique_fraction``
(ID-like). ``dropped_columns_`` says why each was dropped.

Use ``fit_transform`` on the training data: with target encoding, the training rows get the
cross-fitted encodings, which differ from ``fit(X, y).transform(X)`` by design (no target
leakage into the training features).

Why not scikit-learn's ``ColumnTransformer``: the target encoding is scikit-learn's
(``TargetEncoder``), but a ColumnTransformer lays its output out transformer by transformer,
while here each kept input column's block stays in input-column order (``source_columns_``
folds explanations back onto it), and a network's initialisation is tied to its input order,
so regrouping the columns would move every committed result. The remaining pieces are a few
vectorised lines each that the library has no exact counterpart for: dropping columns with a
stated reason, missing *and* unseen categories as all-zero one-hot rows, NaN-ignoring
statistics as the IMN reference computes them, and the ``native`` mode's pandas categories.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.preprocessing import TargetEncoder
from sklearn.utils.validation import check_is_fitted

from mesobench.errors import ConfigError, DataError

log = logging.getLogger(__name__)

MODES = ("neural", "ordinal", "native")
HIGH_CARDINALITY = ("target", "ordinal")
CATEGORICAL_ENCODINGS = ("onehot", "reference")
"""``onehot``: one-hot up to ``onehot_max_categories``, then ``high_cardinality``; ``reference``:
as the IMN reference code, every categorical of a *binary* classification task is target
encoded (multiclass and regression tasks as ``onehot``)."""
_MISSING, _UNSEEN = -1, -2


def is_categorical_dtype(dtype: Any) -> bool:
    """True for the dtypes that are treated as categorical by default."""
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_bool_dtype(dtype)
    )


def _pct(fraction: float) -> str:
    return f"{100.0 * fraction:.1f}".rstrip("0").rstrip(".") + "%"


def _sorted_categories(values: np.ndarray) -> list[Any]:
    try:
        return sorted(values.tolist())
    except TypeError:  # mixed types
        return sorted(values.tolist(), key=lambda v: (type(v).__name__, str(v)))


def _nan_standardise(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(all="ignore"):
        mean = np.nanmean(A, axis=0) if A.shape[0] else np.zeros(A.shape[1])
        std = np.nanstd(A, axis=0) if A.shape[0] else np.ones(A.shape[1])
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
    return mean, std


def _target_encoder(target_type: str, random_state: int | None) -> TargetEncoder:
    """A 5-fold, shuffled, seeded TargetEncoder (scikit-learn >= 1.9 wants a cv splitter)."""
    if TargetEncoder().get_params().get("shuffle") != "deprecated":  # scikit-learn < 1.9
        return TargetEncoder(target_type=target_type, shuffle=True, random_state=random_state)
    splitter = KFold if target_type == "continuous" else StratifiedKFold
    cv = splitter(n_splits=5, shuffle=True, random_state=random_state)
    return TargetEncoder(target_type=target_type, cv=cv)


class Preprocessor(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Turn a raw feature DataFrame into model input; fitted on the training fold only.

    Args:
        mode: ``"neural"``, ``"ordinal"`` or ``"native"`` (see the module docstring).
        max_missing_fraction: Drop columns with a larger share of missing values (default 0.9).
        max_unique_fraction: Drop categoricals with a larger share of distinct values among
            their non-missing values (ID-like; default 0.9).
        onehot_max_categories: In ``"neural"`` mode, one-hot encode categoricals with at most
            this many categories (default 10); encode larger ones per ``high_cardinality``.
        high_cardinality: ``"target"`` (target encoding, needs ``y``) or ``"ordinal"``
            (standardised ordinal codes), for ``"neural"`` mode.
        categorical_encoding: ``"onehot"`` (default, the rule above) or ``"reference"``: the
            IMN reference code's rule, target encoding of every categorical when ``y`` has two
            classes (binary tasks), otherwise the rule above. (The reference leaves its target
            encodings unscaled in [0, 1]; here they are standardised like every other input.
            For multiclass tasks the reference's command-line default is ordinal codes, while
            its one-hot path and its documented rule (docs/running.md#preprocessing) one-hot;
            we one-hot.)
        standardise_numeric: In ``"neural"`` mode, standardise numeric columns (default). False
            passes them raw (NaN → 0): the NIMO paper feeds its synthetic x ~ U(−2, 2) raw, so
            that β at x = 0 is the true marginal effect at the origin.
        random_state: Seed of the target encoder's cross-fitting.

    Attributes (after ``fit``):
        feature_names_in_: Input column names (as strings).
        categorical_in_: Categorical flag of each input column.
        dropped_columns_: Dropped column → reason, e.g. ``"constant"``, ``"92% missing"``,
            ``"ID-like categorical: 98% unique"``.
        numeric_columns_, categorical_columns_: Kept columns of each type.
        categories_: Kept categorical column → its training categories (code order).
        feature_names_out_: Name of each output feature (one-hot: ``"col=value"``, target
            encoding: ``"col_te"`` or ``"col_te_<class>"``).
        source_columns_: Input column of each output feature, so one-hot and target-encoded
            features can be folded back onto their column.
        n_features_out_: Number of output features.
    """

    def __init__(
        self,
        mode: str = "neural",
        max_missing_fraction: float = 0.9,
        max_unique_fraction: float = 0.9,
        onehot_max_categories: int = 10,
        high_cardinality: str = "target",
        categorical_encoding: str = "onehot",
        standardise_numeric: bool = True,
        random_state: int | None = 0,
    ) -> None:
        self.mode = mode
        self.max_missing_fraction = max_missing_fraction
        self.max_unique_fraction = max_unique_fraction
        self.onehot_max_categories = onehot_max_categories
        self.high_cardinality = high_cardinality
        self.categorical_encoding = categorical_encoding
        self.standardise_numeric = standardise_numeric
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(
        self, X: pd.DataFrame, y: Any = None, categorical: Sequence[bool] | None = None
    ) -> Preprocessor:
        """Learn column types, drops, categories and scaling from the training data."""
        self._fit(X, y, categorical)
        return self

    def fit_transform(
        self, X: pd.DataFrame, y: Any = None, categorical: Sequence[bool] | None = None, **_: Any
    ) -> np.ndarray | pd.DataFrame:
        """``fit`` then ``transform``, with cross-fitted target encodings for these rows."""
        train_te = self._fit(X, y, categorical)
        return self._transform(self._as_frame(X), train_te)

    def _check_params(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"Preprocessor mode must be one of {MODES}, got {self.mode!r}")
        if self.high_cardinality not in HIGH_CARDINALITY:
            raise ConfigError(
                f"high_cardinality must be one of {HIGH_CARDINALITY}, got {self.high_cardinality!r}"
            )
        if self.categorical_encoding not in CATEGORICAL_ENCODINGS:
            raise ConfigError(
                f"categorical_encoding must be one of {CATEGORICAL_ENCODINGS}, "
                f"got {self.categorical_encoding!r}"
            )
        for name in ("max_missing_fraction", "max_unique_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
        if int(self.onehot_max_categories) < 0:
            raise ConfigError(
                f"onehot_max_categories must be >= 0, got {self.onehot_max_categories!r}"
            )

    def _as_frame(self, X: Any) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            return X
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(f"expected a 2-d table, got shape {arr.shape}")
        columns = getattr(self, "_columns", None)
        if columns is None or len(columns) != arr.shape[1]:
            columns = [f"x{j + 1}" for j in range(arr.shape[1])]
        return pd.DataFrame(arr, columns=columns)

    def _fit(self, X: Any, y: Any, categorical: Sequence[bool] | None) -> np.ndarray | None:
        """Fit; return the cross-fitted target encodings of the training rows (or None)."""
        self._check_params()
        for attr in ("_columns", "feature_names_out_"):
            self.__dict__.pop(attr, None)
        X = self._as_frame(X)
        if X.columns.has_duplicates:
            dup = X.columns[X.columns.duplicated()].tolist()
            raise DataError(f"duplicate column names: {dup}")
        n = len(X)
        if n == 0:
            raise DataError("cannot fit the preprocessor on an empty training set")
        if categorical is None:
            cat_flags = [is_categorical_dtype(dt) for dt in X.dtypes]
        else:
            cat_flags = [bool(c) for c in categorical]
            if len(cat_flags) != X.shape[1]:
                raise ValueError(f"categorical has {len(cat_flags)} flags for {X.shape[1]} columns")
        self._columns = list(X.columns)
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = X.shape[1]
        self.categorical_in_ = cat_flags

        # ---- which columns to drop
        n_missing = X.isna().sum().to_numpy()
        n_unique = X.nunique(dropna=True).to_numpy()
        self.dropped_columns_: dict[str, str] = {}
        kept: list[tuple[Any, bool]] = []
        for col, is_cat, miss, uniq in zip(X.columns, cat_flags, n_missing, n_unique, strict=True):
            miss_frac = miss / n
            present = n - miss
            if miss_frac > self.max_missing_fraction:
                self.dropped_columns_[str(col)] = f"{_pct(miss_frac)} missing"
            elif uniq <= 1:
                self.dropped_columns_[str(col)] = "constant"
            elif is_cat and uniq / present > self.max_unique_fraction:
                self.dropped_columns_[str(col)] = (
                    f"ID-like categorical: {_pct(uniq / present)} unique"
                )
            else:
                kept.append((col, is_cat))
        if self.dropped_columns_:
            log.info("preprocessing drops %s", self.dropped_columns_)
        if not kept:
            reasons = "; ".join(f"{c}: {r}" for c, r in list(self.dropped_columns_.items())[:30])
            more = len(self.dropped_columns_) - 30
            raise DataError(
                f"no usable feature left: all {X.shape[1]} columns were dropped ({reasons}"
                + (f"; ... and {more} more" if more > 0 else "")
                + "). Relax max_missing_fraction / max_unique_fraction or check the data."
            )
        self._kept = [c for c, _ in kept]
        self.numeric_columns_ = [str(c) for c, is_cat in kept if not is_cat]
        self.categorical_columns_ = [str(c) for c, is_cat in kept if is_cat]
        self._num_cols = [c for c, is_cat in kept if not is_cat]
        self._cat_cols = [c for c, is_cat in kept if is_cat]

        # ---- categories (observed in training, categorical dtype order or sorted)
        self.categories_: dict[str, list[Any]] = {}
        for col in self._cat_cols:
            s = X[col]
            if isinstance(s.dtype, pd.CategoricalDtype):
                cats = list(s.cat.remove_unused_categories().cat.categories)
            else:
                cats = _sorted_categories(pd.unique(s.dropna().to_numpy(dtype=object)))
            self.categories_[str(col)] = cats

        num = self._numeric_block(X)
        if self.mode == "native":
            self._fit_layout_native()
            return None
        if self.mode == "ordinal":
            self._fit_layout_ordinal()
            return None
        return self._fit_layout_neural(X, y, num)

    def _encoding(self, col: Any) -> str:
        if self._target_encode_all:
            return "target"
        k = len(self.categories_[str(col)])
        if k <= int(self.onehot_max_categories):
            return "onehot"
        return "target" if self.high_cardinality == "target" else "ordinal"

    def _fit_layout_native(self) -> None:
        self.feature_names_out_ = [str(c) for c in self._kept]
        self.source_columns_ = list(self.feature_names_out_)
        self.n_features_out_ = len(self.feature_names_out_)
        self._native_categories = {}
        for col in self._cat_cols:
            strs = [str(c) for c in self.categories_[str(col)]]
            if len(set(strs)) < len(strs):  # e.g. 1 and "1" in one object column
                strs = [repr(c) for c in self.categories_[str(col)]]
            self._native_categories[str(col)] = strs

    def _fit_layout_ordinal(self) -> None:
        names = [str(c) for c in self._kept]
        pos = {c: j for j, c in enumerate(self._kept)}
        self._num_pos = np.asarray([pos[c] for c in self._num_cols], dtype=np.int64)
        self._cat_pos = np.asarray([pos[c] for c in self._cat_cols], dtype=np.int64)
        self.feature_names_out_ = names
        self.source_columns_ = list(names)
        self.n_features_out_ = len(names)

    def _fit_layout_neural(self, X: pd.DataFrame, y: Any, num: np.ndarray) -> np.ndarray | None:
        self._num_mean, self._num_scale = _nan_standardise(num)
        if not self.standardise_numeric:
            self._num_mean = np.zeros_like(self._num_mean)
            self._num_scale = np.ones_like(self._num_scale)
        self._target_encode_all = bool(
            self.categorical_encoding == "reference"
            and self._cat_cols
            and y is not None
            and len(np.unique(np.asarray(y))) == 2
        )
        onehot = [c for c in self._cat_cols if self._encoding(c) == "onehot"]
        target = [c for c in self._cat_cols if self._encoding(c) == "target"]
        ordinal = [c for c in self._cat_cols if self._encoding(c) == "ordinal"]

        train_te = None
        te_names: dict[Any, list[str]] = {}
        self._te = None
        if target:
            y_arr = self._check_y(y, n=len(X), columns=target)
            target_type = "continuous" if np.issubdtype(y_arr.dtype, np.floating) else "auto"
            self._te = _target_encoder(target_type, self.random_state)
            train_te = self._te.fit_transform(self._codes(X, target), y_arr)
            self._te_mean, self._te_scale = _nan_standardise(train_te)
            if self._te.target_type_ == "multiclass":
                labels = [str(c) for c in self._te.classes_]
                te_names = {c: [f"{c}_te_{lab}" for lab in labels] for c in target}
            else:
                te_names = {c: [f"{c}_te"] for c in target}
        if ordinal:
            codes = self._codes(X, ordinal).astype(np.float64)
            codes[codes < 0] = np.nan
            self._ord_mean, self._ord_scale = _nan_standardise(codes)

        # output layout: each kept column's block in input column order
        names: list[str] = []
        sources: list[str] = []
        num_pos, te_pos, ord_pos = [], [], []
        self._onehot_pos: list[tuple[Any, int, int]] = []  # (column, start, n_categories)
        num_set, oh_set, te_set = set(self._num_cols), set(onehot), set(target)
        for col in self._kept:
            start = len(names)
            if col in num_set:
                num_pos.append(start)
                block = [str(col)]
            elif col in oh_set:
                cats = self.categories_[str(col)]
                self._onehot_pos.append((col, start, len(cats)))
                block = [f"{col}={c}" for c in cats]
            elif col in te_set:
                block = te_names[col]
                te_pos.extend(range(start, start + len(block)))
            else:
                ord_pos.append(start)
                block = [str(col)]
            names.extend(block)
            sources.extend([str(col)] * len(block))
        self._num_pos = np.asarray(num_pos, dtype=np.int64)
        self._te_cols, self._te_pos = target, np.asarray(te_pos, dtype=np.int64)
        self._ord_cols, self._ord_pos = ordinal, np.asarray(ord_pos, dtype=np.int64)
        self.feature_names_out_ = names
        self.source_columns_ = sources
        self.n_features_out_ = len(names)
        return train_te

    def numeric_affine(self) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
        """``(offset, scale, columns)`` with ``out = (x − offset) / scale`` per output feature.

        Defined when every output feature is one numeric input column (all-numeric data, e.g.
        the synthetic tasks), so that explanations in model units can be mapped back to raw
        units: ``w_raw = w / scale``. Neural mode: the standardisation; ordinal mode: the
        identity (numerics pass raw). ``None`` otherwise (categoricals, or native DataFrames).
        """
        check_is_fitted(self, "n_features_out_")
        numeric_only = len(self._num_cols) == self.n_features_out_
        if not numeric_only or self.mode == "native":
            return None
        if self.mode == "ordinal":
            n = self.n_features_out_
            return np.zeros(n), np.ones(n), list(self.source_columns_)
        return np.asarray(self._num_mean), np.asarray(self._num_scale), list(self.source_columns_)

    def _check_y(self, y: Any, n: int, columns: list[Any]) -> np.ndarray:
        what = f"target encoding of the high-cardinality categorical column(s) {columns[:5]}"
        if y is None:
            raise DataError(f"{what} needs y: pass y to fit, or set high_cardinality='ordinal'")
        y_arr = np.asarray(y.to_numpy() if isinstance(y, pd.Series) else y)
        if y_arr.ndim != 1 or len(y_arr) != n:
            raise DataError(f"{what}: y must be 1-d with {n} entries, got shape {y_arr.shape}")
        if y_arr.dtype == object or y_arr.dtype.kind in "USb":
            raise DataError(
                f"{what}: y must be int class codes or float targets, got {y_arr.dtype}"
            )
        if np.issubdtype(y_arr.dtype, np.floating) and not np.isfinite(y_arr).all():
            raise DataError(f"{what}: y contains NaN or infinite values")
        if len(np.unique(y_arr)) < 2:
            raise DataError(f"{what}: y has a single value, nothing to encode")
        return y_arr

    # ------------------------------------------------------------------ transform
    def transform(self, X: pd.DataFrame) -> np.ndarray | pd.DataFrame:
        """Apply the fitted preprocessing to new rows (see ``mode`` for the output type)."""
        check_is_fitted(self, "feature_names_out_")
        X = self._as_frame(X)
        missing = [c for c in self._kept if c not in X.columns]
        if missing:
            raise DataError(
                f"columns seen in fit are missing at transform time: {[str(c) for c in missing]}"
            )
        return self._transform(X, None)

    def _numeric_block(self, X: pd.DataFrame) -> np.ndarray:
        cols = self._num_cols
        if not cols:
            return np.empty((len(X), 0))
        try:
            A = X[cols].to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        except (TypeError, ValueError):
            bad = []
            for c in cols:
                try:
                    X[c].to_numpy(dtype=np.float64, na_value=np.nan)
                except (TypeError, ValueError):
                    bad.append(str(c))
            raise DataError(
                f"column(s) {bad} are treated as numeric but hold non-numeric values; "
                "mark them categorical"
            ) from None
        A[np.isinf(A)] = np.nan
        return A

    def _codes(self, X: pd.DataFrame, cols: list[Any]) -> np.ndarray:
        """Category codes 0..k−1 per column; −1 missing, −2 unseen. Shape (n, len(cols))."""
        out = np.empty((len(X), len(cols)), dtype=np.int64)
        for j, col in enumerate(cols):
            # factorize (cheap for category dtype), then map the few distinct values
            local, uniques = pd.factorize(X[col], use_na_sentinel=True)
            train_cats = pd.Index(self.categories_[str(col)])
            mapping = train_cats.get_indexer(np.asarray(uniques, dtype=object)).astype(np.int64)
            mapping[mapping < 0] = _UNSEEN
            out[:, j] = np.where(local >= 0, mapping[np.maximum(local, 0)], _MISSING)
        return out

    def _transform(self, X: pd.DataFrame, train_te: np.ndarray | None) -> np.ndarray | pd.DataFrame:
        n = len(X)
        num = self._numeric_block(X)
        if self.mode == "native":
            data: dict[str, Any] = {}
            num_idx = {c: j for j, c in enumerate(self._num_cols)}
            cat_set = set(self._cat_cols)
            for col in self._kept:
                if col in cat_set:
                    codes = self._codes(X, [col])[:, 0]
                    codes[codes < 0] = -1
                    data[str(col)] = pd.Categorical.from_codes(
                        codes, categories=self._native_categories[str(col)]
                    )
                else:
                    data[str(col)] = num[:, num_idx[col]]
            return pd.DataFrame(data, index=X.index)

        out = np.empty((n, self.n_features_out_), dtype=np.float32)
        if self.mode == "ordinal":
            out[:, self._num_pos] = num
            if self._cat_cols:
                codes = self._codes(X, self._cat_cols).astype(np.float64)
                codes[codes < 0] = np.nan
                out[:, self._cat_pos] = codes
            return out

        # neural
        z = (num - self._num_mean) / self._num_scale
        out[:, self._num_pos] = np.nan_to_num(z, nan=0.0)
        for col, start, k in self._onehot_pos:
            codes = self._codes(X, [col])[:, 0]
            out[:, start : start + k] = codes[:, None] == np.arange(k)[None, :]
        if self._te_cols:
            te = (
                train_te
                if train_te is not None
                else self._te.transform(self._codes(X, self._te_cols))
            )
            out[:, self._te_pos] = (te - self._te_mean) / self._te_scale
        if self._ord_cols:
            codes = self._codes(X, self._ord_cols).astype(np.float64)
            codes[codes < 0] = np.nan
            z = (codes - self._ord_mean) / self._ord_scale
            out[:, self._ord_pos] = np.nan_to_num(z, nan=0.0)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)
