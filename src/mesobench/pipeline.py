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

from mesobench import explain_summary, gamma_search, hpo
from mesobench.data import FoldData, Preprocessor, validation_split
from mesobench.errors import DataError
from mesobench.estimators import accepts, kind_params
from mesobench.metrics import classification_metrics, fidelity, regression_metrics
from mesobench.resources import measure

log = logging.getLogger(__name__)


@dataclass
class FoldOutcome:
    metrics: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)  # facts about the run (sizes, hpo...)
    notes: list[str] = field(default_factory=list)  # things a reader of the run should know
    artifacts: dict[str, Any] = field(default_factory=dict)  # file name → DataFrame | dict
    step_metrics: dict[str, list[float]] = field(default_factory=dict)  # metric → per step
    files: dict[str, bytes] = field(default_factory=dict)  # artifact path → raw bytes (model/...)


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


def _fidelity_settings(fidelity_cfg: dict[str, Any] | None) -> fidelity.FidelityConfig:
    return fidelity.FidelityConfig(
        **{k: v for k, v in (fidelity_cfg or {}).items() if k != "enabled"}
    )


def validation_infidelity(
    estimator: Any, X_val: Any, X_fit: Any, *, kind: str, seed: int, settings
) -> float:
    """LFR infidelity of a fitted model's explanations on a seeded sample of validation rows.

    Neighbourhoods as the test-fold metric (``fidelity.*`` settings); the same ``seed`` gives
    every candidate the same rows and neighbours, so their infidelities are comparable.
    """
    X_val = np.asarray(X_val, dtype=np.float64)
    rows = fidelity.sample_rows(len(X_val), settings.sample_size, seed)
    return fidelity.lfr_infidelity(
        estimator.explain,
        fidelity.output_function(estimator, kind),
        X_val[rows],
        neighborhood=settings.neighborhood,
        sigma=settings.sigma,
        n_neighbors=settings.n_neighbors,
        X_reference=np.asarray(X_fit, dtype=np.float64),
        k_nearest=settings.k_nearest,
        rng=seed,
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


def evaluate_fold(
    data: FoldData,
    estimator: Any,
    *,
    preprocessing: dict[str, Any],
    validation: dict[str, Any],
    seed: int,
    use_validation: bool = True,
    hpo_cfg: dict[str, Any] | None = None,
    explanations: dict[str, Any] | None = None,
    fidelity_cfg: dict[str, Any] | None = None,
    gamma_search_cfg: dict[str, Any] | None = None,
    cuda: bool = False,
    save_model: bool = False,
) -> FoldOutcome:
    """Run the protocol on one fold.

    ``use_validation``: give the estimator ``eval_set`` (early stopping) when its ``fit`` takes
    one. A validation split is cut from the training fold when the estimator uses it or when a
    hyperparameter search or the γ search (``gamma_search_cfg["enabled"]``, see
    :mod:`mesobench.gamma_search`) needs it; otherwise the model trains on the whole training
    fold. With both searches, HPO runs first and the γ search varies γ of its best trial.
    ``save_model``: return the final model's files (:func:`saved_model_files`) in
    ``FoldOutcome.files``, or a note where the model has no pickle-free format.
    """
    kind, n_classes = data.task.kind, data.n_classes
    hpo_cfg = hpo_cfg or {}
    n_trials = int(hpo_cfg.get("n_trials") or 0)
    gs_cfg = gamma_search_cfg or {}
    gs_enabled = bool(gs_cfg.get("enabled"))
    if gs_enabled:  # refuse a bad setting before any data is touched
        gs_grid, gs_alpha, gs_param = gamma_search.check_config(gs_cfg, estimator)
    notes: list[str] = []
    artifacts: dict[str, Any] = {}
    params: dict[str, Any] = {}
    step_metrics: dict[str, list[float]] = {}
    metrics_extra: dict[str, float] = {}

    gives_eval_set = use_validation and accepts(estimator.fit, "eval_set")
    X_fit, y_fit = data.X_train, data.y_train
    X_val = y_val = None
    if gives_eval_set or n_trials > 0 or gs_enabled:
        if data.X_val is not None:
            X_val, y_val = data.X_val, data.y_val
        else:
            fit_idx, val_idx = validation_split(
                y_fit, validation["fraction"], seed, stratify=kind != "regression"
            )
            X_val, y_val = _take(X_fit, val_idx), y_fit[val_idx]
            X_fit, y_fit = _take(X_fit, fit_idx), y_fit[fit_idx]
    if len(y_fit) == 0:
        raise DataError(f"task {data.task.name} fold {data.fold}: the training fold is empty")

    prep = Preprocessor(**preprocessing, random_state=seed)
    # fit_transform, not fit + transform: target encoding gives the fitting rows cross-fitted
    # codes, so their own labels do not leak into their features.
    Xf = prep.fit_transform(X_fit, y_fit, categorical=data.categorical)
    Xt = prep.transform(data.X_test)
    Xv = prep.transform(X_val) if X_val is not None else None
    fit_kwargs = {"eval_set": (Xv, y_val)} if gives_eval_set else {}
    if prep.dropped_columns_:
        notes.append(
            "dropped columns: "
            + "; ".join(f"{c} ({why})" for c, why in prep.dropped_columns_.items())
        )
    if kind != "regression":
        absent = sorted(set(range(n_classes)) - set(np.unique(y_fit).tolist()))
        if absent:
            names = [data.task.classes[c] for c in absent]
            notes.append(f"classes absent from the training data: {names} (scored as p=0)")
        if len(set(np.unique(data.y_test).tolist())) < 2:
            notes.append("test fold holds a single class: AUROC is undefined and not logged")

    with measure(cuda=cuda) as fit_usage:
        if n_trials > 0:

            def fit_and_score(candidate: Any) -> float:
                candidate.fit(Xf, y_fit, **fit_kwargs)
                return _validation_score(score(candidate, Xv, y_val, kind, n_classes))

            result = hpo.search(
                estimator,
                kind_params(hpo_cfg.get("space"), kind),
                fit_and_score,
                n_trials=n_trials,
                seed=seed,
                timeout_s=hpo_cfg.get("timeout_s"),
                sampler=str(hpo_cfg.get("sampler") or "tpe"),
            )
            estimator = result.estimator
            params.update({f"hpo.best.{k}": v for k, v in result.best_params.items()})
            params["hpo.trials_run"] = len(result.trials)
            step_metrics["hpo/validation_score"] = result.trials["value"].tolist()
            artifacts["hpo/trials.csv"] = result.trials
        elif not gs_enabled:
            estimator.fit(Xf, y_fit, **fit_kwargs)
        if gs_enabled:
            settings = _fidelity_settings(fidelity_cfg)
            found = gamma_search.search(
                estimator,
                grid=gs_grid,
                alpha=gs_alpha,
                param=gs_param,
                fit=lambda candidate: candidate.fit(Xf, y_fit, **fit_kwargs),
                performance=lambda c: _performance(score(c, Xv, y_val, kind, n_classes)),
                infidelity=lambda c: validation_infidelity(
                    c, Xv, Xf, kind=kind, seed=seed, settings=settings
                ),
            )
            estimator = found.estimator
            table = found.table
            for column in ("gamma", "D", "I", "R_F", "S"):
                step_metrics[f"gamma_search/{column}"] = table[column].tolist()
            metrics_extra["gamma_search/chosen_gamma"] = found.chosen_gamma
            params["gamma_search.chosen_gamma"] = found.chosen_gamma
            params["gamma_search.chosen_index"] = found.chosen_index
            artifacts["gamma_search/grid.csv"] = table
            failed = table.loc[table["error"].ne(""), "gamma"].tolist()
            if failed:
                notes.append(f"gamma search: grid point(s) γ={failed} failed (see grid.csv)")
    with measure(cuda=cuda) as predict_usage:
        metrics = score(estimator, Xt, data.y_test, kind, n_classes)

    metrics.update(metrics_extra)
    metrics.update(
        fit_seconds=fit_usage.seconds,
        predict_seconds=predict_usage.seconds,
        peak_rss_mb=max(fit_usage.peak_rss_mb, predict_usage.peak_rss_mb),
    )
    if fit_usage.peak_cuda_mb is not None:
        metrics["peak_cuda_mb"] = max(fit_usage.peak_cuda_mb, predict_usage.peak_cuda_mb or 0.0)

    if hasattr(estimator, "explain") and (explanations or {}).get("enabled", True):
        Xt_dense = np.asarray(Xt, dtype=np.float64)
        with measure(cuda=cuda) as explain_usage:
            explanation = estimator.explain(Xt)
        metrics["explain_seconds"] = explain_usage.seconds
        output = estimator.predict(Xt) if kind == "regression" else estimator.decision_function(Xt)
        metrics["explain_identity_error"] = explain_summary.identity_error(
            explanation, Xt_dense, output
        )
        artifacts["explanations/global_importance.csv"] = explain_summary.global_importance(
            explanation, Xt_dense, prep.source_columns_
        )
        n_sample = min(int((explanations or {}).get("sample_size", 100)), len(Xt_dense))
        rows = np.sort(np.random.default_rng(seed).choice(len(Xt_dense), n_sample, replace=False))
        artifacts["explanations/local_weights_sample.csv"] = explain_summary.local_weights_sample(
            explanation,
            prep.feature_names_out_,
            None if kind == "regression" else list(data.task.classes),
            rows,
        )
    fidelity_on = (fidelity_cfg or {}).get("enabled", True)
    # synthetic tasks: model units -> raw units, for the ground-truth errors
    affine = prep.numeric_affine() if data.truth is not None else None
    if fidelity_on and fidelity.attribution_method(estimator):
        truth_kwargs = {}
        if affine is not None:
            offset, scale, columns = affine
            truth_kwargs = dict(
                truth=data.truth,
                X_raw=np.asarray(data.X_test[columns], dtype=np.float64),
                feature_offset=offset,
                feature_scale=scale,
            )
        with measure(cuda=cuda) as fidelity_usage:
            result = fidelity.evaluate(
                estimator,
                Xt,
                kind=kind,
                seed=seed,
                config=_fidelity_settings(fidelity_cfg),
                X_reference=Xf,
                **truth_kwargs,
            )
        metrics.update(result.metrics)
        metrics["fidelity_seconds"] = fidelity_usage.seconds
        params.update(result.params)
        notes.extend(result.notes)
    if fidelity_on and affine is not None and (kind == "regression" or n_classes == 2):
        offset, scale, _ = affine
        beta = fidelity.marginal_effect_at_origin(
            fidelity.logit_output(estimator, kind),
            data.truth.n_features,
            offset=offset,
            scale=scale,
        )  # raw units already
        metrics["fidelity/gt_coef_mae"] = fidelity.coefficient_error(beta, data.truth)
    if hasattr(estimator, "describe"):
        artifacts["model/description.json"] = estimator.describe()
    files: dict[str, bytes] = {}
    if save_model:
        files, note = saved_model_files(estimator, prep.feature_names_out_)
        if note:
            notes.append(note)

    params.update(
        n_fit=len(y_fit),
        n_val=0 if y_val is None else len(y_val),
        n_test=len(data.y_test),
        n_features_in=data.X_train.shape[1],
        n_features_model=prep.n_features_out_,
    )
    return FoldOutcome(
        metrics=metrics,
        params=params,
        notes=notes,
        artifacts=artifacts,
        step_metrics=step_metrics,
        files=files,
    )
