"""In-run hyperparameter search: Optuna (TPE or a full grid) on the validation split.

A model declares its search space in its config's defaults list
(``- /hpo@_global_.hpo.space: imn`` names ``conf/hpo/imn.yaml``, composed into ``hpo.space``; a
config that inherits a model inherits its space): ``params`` for every task kind, optionally
``regressor_params`` / ``classifier_params`` merged over them for that kind (as the model configs
do: :func:`mesobench.protocol.estimators.kind_params`). ``hpo.n_trials=N`` turns the search on, for the
models listed in ``hpo.models`` (null: every model), so one sweep can tune some models and
not others. ``hpo.sampler``: ``tpe`` (seeded TPE, N trials) or ``grid`` (every combination of
the ``categorical`` choices once, at most N trials; Optuna's ``GridSampler``). Every trial fits
a fresh clone of the configured estimator with the trial's constructor parameters on the
fitting part and is scored on the validation part (AUROC for classification, −MSE for
regression); the best trial's fitted estimator is the run's model. The test fold is never seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from mesobench.errors import ConfigError

log = logging.getLogger(__name__)

SPEC_TYPES = ("float", "int", "categorical")
SAMPLERS = ("tpe", "grid")


def _sampler(name: str, space: Mapping[str, Mapping[str, Any]], seed: int) -> tuple[Any, int]:
    """The Optuna sampler for ``name`` and, for a grid, its number of points."""
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed), 0
    if name != "grid":
        raise ConfigError(f"hpo.sampler must be one of {SAMPLERS}, got {name!r}")
    grid = grid_points(space)
    return optuna.samplers.GridSampler(grid, seed=seed), grid_size(grid)


def grid_points(space: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The choices of every parameter of a grid search (each must be categorical)."""
    not_listed = sorted(k for k, spec in space.items() if spec.get("type") != "categorical")
    if not_listed:
        raise ConfigError(
            f"hpo.sampler=grid needs every parameter as {{type: categorical, choices: [...]}}; "
            f"{not_listed} are not"
        )
    return {k: list(spec["choices"]) for k, spec in space.items()}


def grid_size(grid: Mapping[str, list[Any]]) -> int:
    """The number of points of a grid: the product of its parameters' choice counts."""
    return int(np.prod([len(v) for v in grid.values()]))


def suggest(trial: Any, name: str, spec: Mapping[str, Any]) -> Any:
    """Sample one parameter from its spec (``{type: float|int|categorical, ...}``)."""
    kind = spec.get("type")
    if kind == "float":
        return trial.suggest_float(
            name, spec["low"], spec["high"], log=bool(spec.get("log", False))
        )
    if kind == "int":
        return trial.suggest_int(name, spec["low"], spec["high"], log=bool(spec.get("log", False)))
    if kind == "categorical":
        return trial.suggest_categorical(name, list(spec["choices"]))
    raise ConfigError(f"hpo space: parameter '{name}' has type {kind!r}; use one of {SPEC_TYPES}")


@dataclass
class SearchResult:
    estimator: Any  # the best trial's fitted estimator
    best_params: dict[str, Any]
    best_score: float
    trials: pd.DataFrame  # one row per trial: number, score, state, params


def search(
    estimator: Any,
    space: Mapping[str, Mapping[str, Any]],
    fit_and_score: Callable[[Any], float],
    *,
    n_trials: int,
    seed: int,
    timeout_s: float | None = None,
    sampler: str = "tpe",
) -> SearchResult:
    """Maximise ``fit_and_score(candidate)`` over ``space`` with a seeded sampler.

    ``sampler="grid"`` tries every point of the (categorical) grid once, in a seeded order, or
    the first ``n_trials`` of them when the grid is larger.

    ``fit_and_score`` fits the candidate (a clone of ``estimator`` with the trial's parameters)
    and returns its validation score, higher is better. A trial that raises is recorded as
    failed and the search goes on; if every trial fails, the last error is raised.
    """
    import optuna

    if not space:
        raise ConfigError(
            "hpo.n_trials > 0 but this model has no search space: add a conf/hpo/<space>.yaml and"
            " '- /hpo@_global_.hpo.space: <space>' to the defaults list of its conf/model/ file"
        )
    unknown = sorted(set(space) - set(estimator.get_params()))
    if unknown:
        raise ConfigError(f"hpo space names parameters the model does not have: {unknown}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    chosen_sampler, grid_size = _sampler(sampler, space, seed)
    if grid_size:
        n_trials = min(n_trials, grid_size)
    best: dict[str, Any] = {"score": -np.inf, "estimator": None}
    errors: list[BaseException] = []

    def objective(trial: optuna.Trial) -> float:
        params = {name: suggest(trial, name, spec) for name, spec in space.items()}
        candidate = clone(estimator).set_params(**params)
        try:
            score = float(fit_and_score(candidate))
        except Exception as exc:  # a bad corner of the space must not end the search
            errors.append(exc)
            log.warning("hpo trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
            raise optuna.TrialPruned() from exc
        if not np.isfinite(score):
            raise optuna.TrialPruned()
        if score > best["score"]:
            best.update(score=score, estimator=candidate)
        log.info(
            "hpo trial %d/%d: score %.4f (best %.4f)",
            trial.number + 1,
            n_trials,
            score,
            best["score"],
        )
        return score

    study = optuna.create_study(direction="maximize", sampler=chosen_sampler)
    study.optimize(objective, n_trials=n_trials, timeout=timeout_s)
    if best["estimator"] is None:
        raise errors[-1] if errors else RuntimeError("hpo: no trial finished")
    trials = study.trials_dataframe(attrs=("number", "value", "state", "params"))
    return SearchResult(
        estimator=best["estimator"],
        best_params=dict(study.best_params),
        best_score=float(best["score"]),
        trials=trials,
    )
