"""Fit one estimator on one task fold and score it: the runner's work, without MLflow.

Data flows one way: raw fold → validation split (training fold only) → preprocessing fitted on
the fitting part only → (optional hyperparameter search, then optional γ search, on the
validation part) → fit → predict on the test fold → metrics → explanations, for models that
have ``explain`` → optionally the fitted model's files (:mod:`mesobench.models.persistence`,
pickle-free). Timings and peak memory are measured around fit (searches included), predict
and explain separately.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mesobench.data import FoldData, Preprocessor, validation_split
from mesobench.errors import DataError
from mesobench.metrics import classification_metrics, fidelity, regression_metrics, scoring
from mesobench.protocol import explain_summary, gamma_search, hpo
from mesobench.protocol.estimators import accepts, kind_params
from mesobench.protocol.resources import measure
from mesobench.protocol.settings import Protocol

log = logging.getLogger(__name__)


@dataclass
class FoldOutcome:
    metrics: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)  # facts about the run (sizes, hpo...)
    notes: list[str] = field(default_factory=list)  # things a reader of the run should know
    artifacts: dict[str, Any] = field(default_factory=dict)  # file name → DataFrame | dict
    step_metrics: dict[str, list[float]] = field(default_factory=dict)  # metric → per step
    files: dict[str, bytes] = field(default_factory=dict)  # artifact path → raw bytes (model/...)
    epoch_metrics: dict[str, list[float]] = field(default_factory=dict)  # metric → per epoch (1..)
    datasets: list[Any] = field(default_factory=list)  # mesobench.store.inputs.LoggedDataset


def align_proba(proba: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities in the task's full class order; classes unseen in training get 0."""
    proba = np.asarray(proba, dtype=np.float64)
    classes = np.asarray(classes).astype(np.int64)
    if proba.shape[1] == n_classes and np.array_equal(classes, np.arange(n_classes)):
        return proba
    full = np.zeros((proba.shape[0], n_classes))
    full[:, classes] = proba
    return full


def _take(X, idx):
    return X.iloc[idx] if hasattr(X, "iloc") else X[idx]


def score(estimator: Any, X: Any, y: np.ndarray, kind: str, n_classes: int | None):
    """Test (or validation) metrics of a fitted estimator."""
    if kind == "regression":
        return regression_metrics(y, np.asarray(estimator.predict(X), dtype=np.float64))
    full = align_proba(estimator.predict_proba(X), estimator.classes_, n_classes)
    if not np.all(np.isfinite(full)):
        raise DataError(f"{type(estimator).__name__} predicted non-finite probabilities")
    return classification_metrics(y, full)


def _validation_score(metrics: dict[str, float]) -> float:
    if "mse" in metrics:
        return -metrics["mse"]
    return metrics.get("auroc", metrics["accuracy"])


def _performance(metrics: dict[str, float]) -> float:
    """D of the γ search: R² (regression), else AUROC, else accuracy (AUROC undefined)."""
    if "r2" in metrics:
        return metrics["r2"]
    return metrics.get("auroc", metrics["accuracy"])


def validation_infidelity(
    estimator: Any,
    X_val: Any,
    X_fit: Any,
    *,
    kind: str,
    seed: int,
    settings: scoring.FidelityConfig,
) -> float:
    """LFR infidelity of a fitted model's explanations on a seeded sample of validation rows.

    Neighbourhoods as the test-fold metric (``fidelity.*`` settings); the same ``seed`` gives
    every candidate the same rows and neighbours, so their infidelities are comparable.
    """
    X_val = np.asarray(X_val, dtype=np.float64)
    rows = fidelity.sample_rows(len(X_val), settings.sample_size, seed)
    return fidelity.lfr_infidelity(
        estimator.explain,
        scoring.output_function(estimator, kind),
        X_val[rows],
        X_reference=np.asarray(X_fit, dtype=np.float64),
        rng=seed,
        **settings.neighbourhood(),
    )["infidelity"]


def saved_model_files(estimator: Any, feature_names: list[str]) -> tuple[dict[str, bytes], str]:
    """``(files, note)``: the fitted model saved pickle-free, as artifact path → bytes.

    Paths are ``model/<file>`` (:func:`mesobench.models.persistence.save_model`) plus
    ``model/feature_names.json``, the names of the preprocessed columns the model consumes. A
    model with no pickle-free format gives no files and a note saying so ("" otherwise).
    """
    from mesobench.models import persistence

    try:
        with tempfile.TemporaryDirectory(prefix="mesobench-model-") as tmp:
            names = persistence.save_model(estimator, tmp)
            files = {f"model/{name}": Path(tmp, name).read_bytes() for name in names}
    except persistence.UnsupportedModelError as exc:
        return {}, f"model not saved: {exc}"
    files["model/feature_names.json"] = json.dumps([str(n) for n in feature_names]).encode()
    return files, ""


@dataclass
class _Split:
    """The training fold cut for validation (or not): fitting rows and validation rows."""

    X_fit: Any
    y_fit: np.ndarray
    X_val: Any = None
    y_val: np.ndarray | None = None


@dataclass
class _Prepared:
    """The preprocessor fitted on the fitting rows, and every part in model units."""

    prep: Preprocessor
    Xf: Any
    Xv: Any
    Xt: Any
    fit_kwargs: dict[str, Any]


@dataclass
class FoldRun:
    """One fold as the stages see it: the data, the settings, what earlier stages made, and
    the outcome every stage adds its metrics, params, notes and artifacts to."""

    data: FoldData
    protocol: Protocol
    seed: int
    cuda: bool
    split: _Split
    prepared: _Prepared
    outcome: FoldOutcome

    @property
    def kind(self) -> str:
        return self.data.task.kind

    def validation_score(self, estimator: Any) -> dict[str, float]:
        return score(estimator, self.prepared.Xv, self.split.y_val, self.kind, self.data.n_classes)

    def fit(self, estimator: Any) -> None:
        estimator.fit(self.prepared.Xf, self.split.y_fit, **self.prepared.fit_kwargs)


def evaluate_fold(
    data: FoldData, estimator: Any, protocol: Protocol, *, seed: int, cuda: bool = False
) -> FoldOutcome:
    """Run the protocol on one fold: split → prepare → (search) → fit → score → explain →
    fidelity → files. Each stage adds its metrics, params, notes and artifacts to the outcome.

    A validation split is cut from the training fold when the estimator early-stops on it
    (``protocol.use_validation`` and its ``fit`` takes ``eval_set``) or a search (HPO, γ) needs
    it; otherwise the model trains on the whole training fold. With both searches, HPO runs
    first and the γ search varies γ of its best trial.
    """
    if protocol.gamma_search.enabled:  # refuse a bad setting before any data is touched
        gamma_search.check_estimator(protocol.gamma_search, estimator)
    outcome = FoldOutcome(metrics={})
    gives_eval_set = protocol.use_validation and accepts(estimator.fit, "eval_set")
    needs_split = gives_eval_set or protocol.hpo.enabled or protocol.gamma_search.enabled
    split = split_training_fold(data, needs_split, protocol.validation_fraction, seed)
    prepared = prepare(data, split, protocol.preprocessing, seed, gives_eval_set, outcome)
    run = FoldRun(data, protocol, seed, cuda, split, prepared, outcome)
    with measure(cuda=cuda) as fit_usage:
        estimator = fit_model(estimator, run)
    with measure(cuda=cuda) as predict_usage:
        outcome.metrics.update(score(estimator, prepared.Xt, data.y_test, run.kind, data.n_classes))
    outcome.metrics.update(
        fit_seconds=fit_usage.seconds,
        predict_seconds=predict_usage.seconds,
        peak_rss_mb=max(fit_usage.peak_rss_mb, predict_usage.peak_rss_mb),
    )
    if fit_usage.peak_cuda_mb is not None:
        outcome.metrics["peak_cuda_mb"] = max(
            fit_usage.peak_cuda_mb, predict_usage.peak_cuda_mb or 0.0
        )
    if hasattr(estimator, "explain") and protocol.explanations.enabled:
        explain(estimator, run)
    if protocol.fidelity.enabled:
        score_fidelity(estimator, run)
    if hasattr(estimator, "describe"):
        outcome.artifacts["model/description.json"] = estimator.describe()
    if hasattr(estimator, "training_curves"):
        curves = estimator.training_curves().items()
        outcome.epoch_metrics = {f"train/{name}": values for name, values in curves}
    if protocol.save_model:
        outcome.files, note = saved_model_files(estimator, prepared.prep.feature_names_out_)
        if note:
            outcome.notes.append(note)
    outcome.params.update(
        n_fit=len(split.y_fit),
        n_val=0 if split.y_val is None else len(split.y_val),
        n_test=len(data.y_test),
        n_features_in=data.X_train.shape[1],
        n_features_model=prepared.prep.n_features_out_,
    )
    return outcome


def split_training_fold(data: FoldData, needed: bool, fraction: float, seed: int) -> _Split:
    """The task's own validation rows, else a seeded (stratified) share of the training fold,
    when ``needed``; else the whole training fold for fitting."""
    split = _Split(data.X_train, data.y_train)
    if needed:
        if data.X_val is not None:
            split.X_val, split.y_val = data.X_val, data.y_val
        else:
            kind = data.task.kind
            fit_idx, val_idx = validation_split(
                split.y_fit, fraction, seed, stratify=kind != "regression"
            )
            split.X_val, split.y_val = _take(split.X_fit, val_idx), split.y_fit[val_idx]
            split.X_fit, split.y_fit = _take(split.X_fit, fit_idx), split.y_fit[fit_idx]
    if len(split.y_fit) == 0:
        raise DataError(f"task {data.task.name} fold {data.fold}: the training fold is empty")
    return split


def prepare(
    data: FoldData,
    split: _Split,
    preprocessing: Any,
    seed: int,
    gives_eval_set: bool,
    outcome: FoldOutcome,
) -> _Prepared:
    """Fit the preprocessor on the fitting rows only; notes on dropped columns and classes."""
    prep = Preprocessor(**preprocessing, random_state=seed)
    # fit_transform, not fit + transform: target encoding gives the fitting rows cross-fitted
    # codes, so their own labels do not leak into their features.
    Xf = prep.fit_transform(split.X_fit, split.y_fit, categorical=data.categorical)
    Xt = prep.transform(data.X_test)
    Xv = prep.transform(split.X_val) if split.X_val is not None else None
    fit_kwargs = {"eval_set": (Xv, split.y_val)} if gives_eval_set else {}
    if prep.dropped_columns_:
        outcome.notes.append(
            "dropped columns: "
            + "; ".join(f"{c} ({why})" for c, why in prep.dropped_columns_.items())
        )
    if data.task.kind != "regression":
        absent = sorted(set(range(data.n_classes)) - set(np.unique(split.y_fit).tolist()))
        if absent:
            names = [data.task.classes[c] for c in absent]
            outcome.notes.append(f"classes absent from the training data: {names} (scored as p=0)")
        if len(set(np.unique(data.y_test).tolist())) < 2:
            outcome.notes.append(
                "test fold holds a single class: AUROC is undefined and not logged"
            )
    return _Prepared(prep, Xf, Xv, Xt, fit_kwargs)


def fit_model(estimator: Any, run: FoldRun) -> Any:
    """Fit the run's model: the HPO search's best trial and/or the γ search's choice, else
    one plain fit. Returns the fitted estimator (a search returns a fitted clone)."""
    if run.protocol.hpo.enabled:
        estimator = search_hyperparameters(estimator, run)
    elif not run.protocol.gamma_search.enabled:
        run.fit(estimator)
    if run.protocol.gamma_search.enabled:
        estimator = search_gamma(estimator, run)
    return estimator


def search_hyperparameters(estimator: Any, run: FoldRun) -> Any:
    """Optuna over the model's search space, each trial scored on the validation rows."""

    def fit_and_score(candidate: Any) -> float:
        run.fit(candidate)
        return _validation_score(run.validation_score(candidate))

    settings, outcome = run.protocol.hpo, run.outcome
    result = hpo.search(
        estimator,
        kind_params(settings.space, run.kind),
        fit_and_score,
        n_trials=settings.n_trials,
        seed=run.seed,
        timeout_s=settings.timeout_s,
        sampler=settings.sampler,
    )
    outcome.params.update({f"hpo.best.{k}": v for k, v in result.best_params.items()})
    outcome.params["hpo.trials_run"] = len(result.trials)
    outcome.step_metrics["hpo/validation_score"] = result.trials["value"].tolist()
    outcome.artifacts["hpo/trials.csv"] = result.trials
    return result.estimator


def search_gamma(estimator: Any, run: FoldRun) -> Any:
    """The γ with the best tuning score S on the validation rows (:mod:`.gamma_search`)."""
    settings, outcome, prepared = run.protocol.gamma_search, run.outcome, run.prepared
    found = gamma_search.search(
        estimator,
        grid=settings.grid,
        alpha=settings.alpha,
        param=settings.param,
        fit=run.fit,
        performance=lambda c: _performance(run.validation_score(c)),
        infidelity=lambda c: validation_infidelity(
            c,
            prepared.Xv,
            prepared.Xf,
            kind=run.kind,
            seed=run.seed,
            settings=run.protocol.fidelity.metrics,
        ),
    )
    table = found.table
    for column in ("gamma", "D", "I", "R_F", "S"):
        outcome.step_metrics[f"gamma_search/{column}"] = table[column].tolist()
    outcome.metrics["gamma_search/chosen_gamma"] = found.chosen_gamma
    outcome.params["gamma_search.chosen_gamma"] = found.chosen_gamma
    outcome.params["gamma_search.chosen_index"] = found.chosen_index
    outcome.artifacts["gamma_search/grid.csv"] = table
    failed = table.loc[table["error"].ne(""), "gamma"].tolist()
    if failed:
        outcome.notes.append(f"gamma search: grid point(s) γ={failed} failed (see grid.csv)")
    return found.estimator


def explain(estimator: Any, run: FoldRun) -> None:
    """Explain the test fold: the identity check, global importance, a sample of local weights."""
    Xt, kind, prep, outcome = run.prepared.Xt, run.kind, run.prepared.prep, run.outcome
    Xt_dense = np.asarray(Xt, dtype=np.float64)
    with measure(cuda=run.cuda) as explain_usage:
        explanation = estimator.explain(Xt)
    outcome.metrics["explain_seconds"] = explain_usage.seconds
    output = estimator.predict(Xt) if kind == "regression" else estimator.decision_function(Xt)
    outcome.metrics["explain_identity_error"] = explain_summary.identity_error(
        explanation, Xt_dense, output
    )
    outcome.artifacts["explanations/global_importance.csv"] = explain_summary.global_importance(
        explanation, Xt_dense, prep.source_columns_
    )
    n_sample = min(run.protocol.explanations.sample_size, len(Xt_dense))
    rows = np.sort(np.random.default_rng(run.seed).choice(len(Xt_dense), n_sample, replace=False))
    outcome.artifacts["explanations/local_weights_sample.csv"] = (
        explain_summary.local_weights_sample(
            explanation,
            prep.feature_names_out_,
            None if kind == "regression" else list(run.data.task.classes),
            rows,
        )
    )


def score_fidelity(estimator: Any, run: FoldRun) -> None:
    """The fidelity metrics on the test fold, in the task's raw feature space shared by every
    model (:mod:`mesobench.metrics.scoring`); on a synthetic task also the errors against the
    true function, in raw feature units (the preprocessor's affine map undone)."""
    data, outcome, prep = run.data, run.outcome, run.prepared.prep
    config = run.protocol.fidelity.metrics
    affine = prep.numeric_affine() if data.truth is not None else None
    if scoring.attribution_method(estimator):
        with measure(cuda=run.cuda) as fidelity_usage:
            space = config.space(data.X_train, data.categorical, X_scored=data.X_test)
            view = scoring.ModelView(
                estimator, run.kind, space, prep.transform, prep.source_columns_
            )
            result = scoring.evaluate(
                view,
                data.X_test,
                seed=run.seed,
                config=config,
                X_reference=run.prepared.Xf,
                truth=data.truth if affine is not None else None,
                affine=None if affine is None else affine[:2],
            )
        outcome.metrics.update(result.metrics)
        outcome.metrics["fidelity_seconds"] = fidelity_usage.seconds
        outcome.params.update(result.params)
        outcome.notes.extend(result.notes)
    else:
        outcome.notes.append(
            f"fidelity: metrics skipped, {type(estimator).__name__} has no local attributions"
        )
    if affine is not None and (run.kind == "regression" or data.n_classes == 2):
        offset, scale, _ = affine
        beta = fidelity.marginal_effect_at_origin(
            scoring.logit_output(estimator, run.kind),
            data.truth.n_features,
            offset=offset,
            scale=scale,
        )  # raw units already
        outcome.metrics["fidelity/gt_coef_mae"] = fidelity.coefficient_error(beta, data.truth)
