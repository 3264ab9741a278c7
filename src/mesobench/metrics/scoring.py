"""Fidelity of one fitted model, scored in the task's raw feature space (what the runner calls).

:mod:`.raw_space` encodes the scored rows once per task fold; a :class:`ModelView` shows a
fitted model from there: it decodes raw rows, applies the model's own preprocessing
(``to_model``) and reads the model's output and attributions through its public API only.
Every model therefore receives the *same* perturbed raw rows, is scored against the *same*
baseline row, and explains the *same* features:

* **Attributions per original feature, relative to the baseline row b.** A local linear model
  w(x) (``explain``) and a gradient g(x) (``input_gradients``) are turned into
  ``φ_j = Σ_{d ∈ cols(j)} w_d(x) · (x_d − b_d)`` over the model-input columns d that raw feature
  j became (its one-hot or target-encoded columns; one column for a numeric feature), with
  x_d, b_d the model inputs of x and of the baseline row. Tree ensembles (``contributions``)
  give interventional TreeSHAP against the baseline row (baseline Shapley values, Sundararajan &
  Najmi 2020; Lundberg et al. 2020), which sum exactly to f(x) − f(b), summed the same way.
* **The explained output** is the model's own: ``explained_output`` where a model defines it
  (the random forest's probabilities), else the logit(s) (``decision_function``) or the
  prediction (regression); multiclass: the logit of the predicted class.

The metric functions are in :mod:`.fidelity`; which metrics run and with which settings is
:class:`FidelityConfig` (``fidelity.*`` in ``conf/config.yaml``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mesobench.errors import AttributionUnavailableError
from mesobench.metrics import fidelity as fd
from mesobench.metrics.raw_space import RawSpace
from mesobench.models.explanation import Explanation

METHODS = ("local_linear", "treeshap", "gradient_x_input")


def attribution_method(estimator: Any) -> str | None:
    """Which attribution a model has (first match of :data:`METHODS`), or None."""
    if hasattr(estimator, "explain"):
        return "local_linear"
    if hasattr(estimator, "contributions"):
        return "treeshap"
    if hasattr(estimator, "input_gradients"):
        return "gradient_x_input"
    return None


def output_function(estimator: Any, kind: str) -> Callable[[Any], np.ndarray]:
    """The output a model's explanations explain: ``explained_output`` if the model defines
    it, else ``predict`` (regression) or ``decision_function`` (logits)."""
    if hasattr(estimator, "explained_output"):
        return estimator.explained_output
    if kind == "regression":
        return estimator.predict
    if not hasattr(estimator, "decision_function"):
        raise ValueError(f"{type(estimator).__name__} has no decision_function (logits)")
    return estimator.decision_function


def logit_output(estimator: Any, kind: str) -> Callable[[Any], np.ndarray]:
    """``predict`` / ``decision_function``, or the logit of ``predict_proba`` for binary
    classifiers without ``decision_function`` (random forests): the output β̂ is read from."""
    if kind == "regression" or hasattr(estimator, "decision_function"):
        return estimator.predict if kind == "regression" else estimator.decision_function

    def logit(X: Any) -> np.ndarray:
        p = np.clip(np.asarray(estimator.predict_proba(X))[:, 1], 1e-12, 1.0 - 1e-12)
        return np.log(p) - np.log1p(-p)

    return logit


def _pick(values: np.ndarray, target: np.ndarray | None) -> np.ndarray:
    """(n, D) from (n, D) or (n, D, C) by the class ``target`` of each row."""
    if values.ndim == 2 or target is None:
        return values
    return np.take_along_axis(values, target[:, None, None], axis=2)[:, :, 0]


@dataclass(frozen=True)
class Attribution:
    """Attributions of one explained output per row, per raw feature.

    Attributes:
        values: (n, F) per raw feature, relative to the baseline row.
        target: (n,) class explained per row (multi-output models), else None.
        method: one of :data:`METHODS`.
        model_input: the rows as the model read them (its preprocessing of the raw rows).
        slope: (n, D) local slope of the explained output in model-input units (the weights
            w(x), the input gradient), or None (TreeSHAP).
        intercept: (n,) local intercept of the explained output (``explain``), or None.
        explanation: the full :class:`Explanation` (``explain`` only), or None.
    """

    values: np.ndarray
    target: np.ndarray | None
    method: str
    model_input: Any
    slope: np.ndarray | None = None
    intercept: np.ndarray | None = None
    explanation: Explanation | None = None


class ModelView:
    """A fitted model seen from the raw feature space: its output and its attributions at the
    rows of a raw float matrix Z (:class:`RawSpace` encoding).

    ``to_model``: the model's preprocessing, raw DataFrame → what the model reads (fitted on
    its training rows); ``sources``: the raw column each model-input column came from.
    """

    def __init__(
        self,
        estimator: Any,
        kind: str,
        space: RawSpace,
        to_model: Callable[[pd.DataFrame], Any],
        sources: Sequence[Any],
    ) -> None:
        self.method = attribution_method(estimator)
        if self.method is None:
            raise ValueError(f"{type(estimator).__name__} has no local attributions")
        self.estimator, self.kind, self.space, self.to_model = estimator, kind, space, to_model
        self.output_fn = output_function(estimator, kind)
        index = space.feature_index(sources)
        self.groups = np.zeros((len(index), space.n_features))  # model column → raw feature
        self.groups[np.arange(len(index)), index] = 1.0
        self.baseline_input = self.inputs(space.baseline[None, :])
        # local linear and gradient models read a matrix (tree models may read a DataFrame)
        dense = self.method != "treeshap"
        self._baseline_matrix = _dense(self.baseline_input) if dense else None
        # one explained output, or one per class (then each row explains its predicted class)
        self.multi_output = np.ndim(self.output_fn(self.baseline_input)) == 2

    def inputs(self, Z: np.ndarray) -> Any:
        """Raw rows → the model's input (its own preprocessing)."""
        return self.to_model(self.space.decode(Z))

    def output(self, Z: np.ndarray) -> np.ndarray:
        """The explained output(s) at raw rows: (m,) or (m, C)."""
        return np.asarray(self.output_fn(self.inputs(Z)), dtype=np.float64)

    def attribution(self, Z: np.ndarray, target: np.ndarray | None = None) -> Attribution:
        """Attributions per raw feature at raw rows Z, of class ``target`` (default: the
        predicted class of a multi-output model)."""
        X_in = self.inputs(Z)
        if target is None and self.multi_output:
            target = np.argmax(np.asarray(self.output_fn(X_in), dtype=np.float64), axis=1)
        if self.method == "treeshap":
            values, _ = self.estimator.contributions(
                X_in, baseline=self.baseline_input, target=target
            )
            phi = _pick(np.asarray(values, dtype=np.float64), target)
            return Attribution(phi @ self.groups, target, self.method, X_in)
        X_dense = _dense(X_in)
        delta = X_dense - self._baseline_matrix
        if self.method == "local_linear":
            expl = self.estimator.explain(X_in)
            slope = _pick(np.asarray(expl.weights, dtype=np.float64), target)
            b = np.asarray(expl.intercept, dtype=np.float64)
            b = b if b.ndim == 1 else np.take_along_axis(b, target[:, None], axis=1)[:, 0]
            phi = (slope * delta) @ self.groups
            return Attribution(phi, target, self.method, X_in, slope, b, expl)
        slope = np.asarray(self.estimator.input_gradients(X_in, target=target), np.float64)
        return Attribution((slope * delta) @ self.groups, target, self.method, X_in, slope)


def _dense(X: Any) -> np.ndarray:
    return np.asarray(X, dtype=np.float64)


@dataclass(frozen=True)
class FidelityConfig:
    """Settings of :func:`evaluate`: the ``fidelity`` section of ``conf/config.yaml``, which
    holds their defaults and the reasons for them (built by ``FidelitySettings.from_config``
    in :mod:`mesobench.protocol.settings`).

    sample_size: test rows scored (a seeded sample; None = all).
    numeric_baseline, categorical_baseline: the baseline row (:class:`RawSpace`).
    neighborhood, sigma, n_neighbors, k_nearest: LFR neighbourhoods (:func:`fd.draw_neighbors`).
    yeh_perturbation, yeh_noise_std, yeh_n_perturbations, yeh_categorical_removal: see
    :func:`fd.yeh_infidelity` (the last is its ``removal_probability``).
    deletion_steps, insertion_steps: see :func:`fd.ordered_curves`.
    faithfulness_sample_size: scored rows (the first of the sample) for insertion and
    faithfulness correlation; faithfulness_subset_size, faithfulness_n_subsets: see
    :func:`fd.faithfulness_correlation`.
    sensitivity_sample_size: scored rows for the stability metrics; sensitivity_radius,
    sensitivity_n_perturbations: see :func:`fd.max_sensitivity`; sensitivity_category_redraw:
    the :class:`fd.CategoryResampler` probability.
    """

    sample_size: int | None
    numeric_baseline: str
    categorical_baseline: str
    neighborhood: str
    sigma: float
    n_neighbors: int
    k_nearest: int
    yeh_perturbation: str
    yeh_noise_std: float
    yeh_n_perturbations: int
    yeh_categorical_removal: float
    deletion_steps: int
    insertion_steps: int
    faithfulness_sample_size: int
    faithfulness_subset_size: int
    faithfulness_n_subsets: int
    sensitivity_sample_size: int
    sensitivity_radius: float
    sensitivity_n_perturbations: int
    sensitivity_category_redraw: float

    def neighbourhood(self) -> dict[str, Any]:
        """The :func:`fd.lfr_infidelity` arguments that define the LFR neighbourhoods, so the
        test metric and the γ search's validation infidelity draw them alike."""
        return {
            "neighborhood": self.neighborhood,
            "sigma": self.sigma,
            "n_neighbors": self.n_neighbors,
            "k_nearest": self.k_nearest,
        }

    def space(self, X_train: pd.DataFrame, categorical: Sequence[bool], X_scored: Any = None):
        """The :class:`RawSpace` of a task fold with this config's baselines."""
        return RawSpace.fit(
            X_train,
            categorical,
            X_scored=X_scored,
            numeric_baseline=self.numeric_baseline,
            categorical_baseline=self.categorical_baseline,
        )


@dataclass
class FidelityResult:
    metrics: dict[str, float] = field(default_factory=dict)  # "fidelity/<name>" → value
    params: dict[str, Any] = field(default_factory=dict)  # "fidelity.<name>" → fact
    notes: list[str] = field(default_factory=list)


STREAMS = ("lfr", "yeh", "faithfulness", "stability", "order")
"""The independent random streams of :func:`evaluate`, children of the run's seed in order."""


def evaluate(
    view: ModelView,
    X_test: pd.DataFrame,
    *,
    seed: int,
    config: FidelityConfig,
    X_reference: Any = None,
    truth: Any = None,
    affine: tuple[np.ndarray, np.ndarray] | None = None,
) -> FidelityResult:
    """Every fidelity metric of a fitted model on a seeded sample of the raw test rows.

    ``X_reference``: the model's training rows in model-input units (``smote`` LFR
    neighbourhoods). Synthetic tasks: ``truth`` (:class:`~mesobench.data.truth
    .SyntheticTruth`) and ``affine`` = the preprocessor's ``(offset, scale)`` with
    ``x_model = (x_raw − offset) / scale``, for the errors against the true function.

    Models with ``explain`` get the LFR metrics (in their own input units: the LFR objective,
    which LFR-IMN trains on); every model gets Yeh infidelity, deletion and insertion,
    faithfulness correlation and max / average sensitivity in the raw space. Points where a
    metric is undefined are counted (``fidelity/<metric>_n_undefined``); a metric undefined for
    the task as a whole is left out with a note saying why.
    """
    result = FidelityResult()
    space = view.space
    rows = fd.sample_rows(len(X_test), config.sample_size, seed)
    Z = space.encode(X_test.iloc[rows])
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    rng = {
        name: np.random.default_rng(child) for name, child in zip(STREAMS, children, strict=True)
    }
    try:
        attr = view.attribution(Z)
        return _scored(result, view, attr, Z, config, rng, X_reference, truth, affine)
    except AttributionUnavailableError as exc:
        result.metrics.clear()
        result.notes.append(f"fidelity: metrics skipped, {exc}")
        return result


def _scored(result, view, attr, Z, config, rng, X_reference, truth, affine) -> FidelityResult:
    """:func:`evaluate` once the scored rows have their attributions."""
    space = view.space
    result.params.update(
        {
            "fidelity.n_points": len(Z),
            "fidelity.attribution": view.method,
            "fidelity.n_features": space.n_features,
            "fidelity.n_features_perturbed": int(space.perturbable.sum()),
            "fidelity.n_categorical": int(space.categorical.sum()),
        }
    )
    if view.method == "local_linear":
        ref = None if X_reference is None else _dense(X_reference)
        result.metrics.update(_lfr_metrics(view, attr, config, ref, rng["lfr"]))
    if not space.perturbable.any():
        result.notes.append("fidelity: no feature varies in the training fold; nothing scored")
        return result
    result.metrics.update(_perturbation_metrics(view, attr, Z, config, rng))
    result.metrics.update(_faithfulness_metrics(view, attr, Z, config, rng, result.notes))
    result.metrics.update(_stability_metrics(view, attr, Z, config, rng["stability"]))
    if truth is not None and affine is not None:
        _ground_truth_metrics(result, attr, space, truth, Z, affine)
    _drop_undefined(result)
    return result


def _drop_undefined(result: FidelityResult) -> None:
    """A metric that came out NaN for the task as a whole (the output never moved under any
    perturbation, no point with a non-zero attribution) is left out, with a note saying so."""
    for name in [k for k, v in result.metrics.items() if not np.isfinite(v)]:
        del result.metrics[name]
        result.notes.append(
            f"fidelity: {name.removeprefix('fidelity/')} undefined on every scored point "
            "(constant output under its perturbations, or all-zero attributions)"
        )


def _lfr_metrics(view: ModelView, attr: Attribution, cfg: FidelityConfig, reference, rng):
    lfr = fd.lfr_infidelity(
        attr.explanation,
        view.output_fn,
        _dense(attr.model_input),
        X_reference=reference,
        rng=rng,
        **cfg.neighbourhood(),
    )
    return {
        "fidelity/lfr_infidelity": lfr["infidelity"],
        "fidelity/lfr_scaled_infidelity": lfr["scaled_infidelity"],
    }


def _perturbation_metrics(view, attr, Z, cfg: FidelityConfig, rng) -> dict[str, float]:
    space = view.space
    yeh = fd.yeh_infidelity(
        attr.values,
        view.output,
        Z,
        perturbation=cfg.yeh_perturbation,
        noise_std=cfg.yeh_noise_std,
        n_perturbations=cfg.yeh_n_perturbations,
        baseline=space.baseline,
        feature_scale=space.scale,
        perturbable=space.perturbable,
        categorical=space.categorical,
        removal_probability=cfg.yeh_categorical_removal,
        target=attr.target,
        rng=rng["yeh"],
    )
    deletion = fd.deletion_auc(
        attr.values,
        view.output,
        Z,
        baseline=space.baseline,
        n_steps=cfg.deletion_steps,
        perturbable=space.perturbable,
        target=attr.target,
        rng=rng["order"],
    )
    return {
        "fidelity/yeh_infidelity": yeh["infidelity"],
        "fidelity/yeh_scaled_infidelity": yeh["scaled_infidelity"],
        "fidelity/deletion_auc": deletion["deletion_auc"],
    }


def _faithfulness_metrics(view, attr, Z, cfg: FidelityConfig, rng, notes) -> dict[str, float]:
    """Insertion AUC and faithfulness correlation on the first ``faithfulness_sample_size``
    scored rows (a seeded sample), which keeps their cost within that of the others."""
    space, rows = view.space, slice(0, cfg.faithfulness_sample_size)
    target = None if attr.target is None else attr.target[rows]
    common = dict(baseline=space.baseline, perturbable=space.perturbable, target=target)
    values, Zs = attr.values[rows], Z[rows]
    out = {}
    insertion = fd.insertion_auc(
        values, view.output, Zs, n_steps=cfg.insertion_steps, rng=rng["order"], **common
    )
    out["fidelity/insertion_auc"] = insertion["insertion_auc"]
    try:
        correlation = fd.faithfulness_correlation(
            values,
            view.output,
            Zs,
            subset_size=cfg.faithfulness_subset_size,
            n_subsets=cfg.faithfulness_n_subsets,
            rng=rng["faithfulness"],
            **common,
        )
    except fd.UndefinedMetricError as exc:
        notes.append(f"fidelity: {exc}")
        return out
    out["fidelity/faithfulness_correlation"] = correlation["faithfulness_correlation"]
    out["fidelity/faithfulness_correlation_n_undefined"] = correlation["n_undefined"]
    return out


def _stability_metrics(view, attr, Z, cfg: FidelityConfig, rng) -> dict[str, float]:
    """Max / average sensitivity of the per-feature attributions on the first
    ``sensitivity_sample_size`` scored rows: numeric features move in an L∞ ball of radius
    ``sensitivity_radius`` training standard deviations, categorical ones are redrawn with
    probability ``sensitivity_category_redraw`` (each x′ costs one attribution pass)."""
    space, rows = view.space, slice(0, cfg.sensitivity_sample_size)
    redrawn = space.categorical & space.perturbable
    cdf = space.cdf[space.perturbable[space.categorical]]  # rows of the redrawn features
    resampler = fd.CategoryResampler(redrawn, cdf, cfg.sensitivity_category_redraw)
    sensitivity = fd.max_sensitivity(
        lambda Zp, target: view.attribution(Zp, target).values,
        Z[rows],
        radius=cfg.sensitivity_radius * space.scale,
        n_perturbations=cfg.sensitivity_n_perturbations,
        perturbable=space.perturbable & ~space.categorical,
        target=None if attr.target is None else attr.target[rows],
        rng=rng,
        phi_x=attr.values[rows],
        resample=resampler,
    )
    return {
        "fidelity/max_sensitivity": sensitivity["max_sensitivity"],
        "fidelity/avg_sensitivity": sensitivity["avg_sensitivity"],
        "fidelity/max_sensitivity_n_undefined": sensitivity["n_zero"],
        "fidelity/avg_sensitivity_n_undefined": sensitivity["n_zero"],
    }


def _ground_truth_metrics(
    result: FidelityResult,
    attr: Attribution,
    space: RawSpace,
    truth: Any,
    Z: np.ndarray,
    affine: tuple[np.ndarray, np.ndarray],
) -> None:
    """Errors against the synthetic task's true function, in raw units (``fidelity/gt_*``).
    Slopes are in model units (``x_model = (x_raw − offset) / scale``); attributions are
    already per raw feature, relative to the raw baseline row."""
    one_to_one = space.n_features == truth.n_features and len(affine[0]) == truth.n_features
    if not one_to_one or attr.target is not None:
        result.notes.append(
            "fidelity: ground-truth errors skipped (model features do not map one-to-one "
            "onto the synthetic task's features, or the output is multiclass)"
        )
        return
    offset, scale = affine
    gt = fd.ground_truth_errors(
        truth,
        Z,
        slope=attr.slope,
        intercept=attr.intercept,
        attribution=attr.values,
        offset=offset,
        scale=scale,
        reference=space.baseline,
    )
    result.metrics.update({f"fidelity/gt_{k}": v for k, v in gt.items()})
