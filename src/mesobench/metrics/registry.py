"""Every metric the runner logs: its direction, its scale and what it measures.

The aggregator ranks, tests and imputes by a metric's direction, so the direction is data here,
not guessed from the name: a wrong guess silently inverts ranks, Friedman tests and
win/tie/loss counts. A metric that is not listed is refused by the aggregator with the list of
known ones, unless the user states its direction (``higher_is_better=true|false``).

Scales: ``scale-free`` (comparable across tasks), ``target units`` (regression errors, in the
target's units; also synthetic ground-truth errors in the raw units of f), ``output units``
(squared or absolute units of the explained output: logit or target; not comparable across
models whose outputs differ in scale), ``seconds``, ``megabytes``, ``count``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesobench.errors import ConfigError


@dataclass(frozen=True)
class MetricInfo:
    """What the report needs to know about one metric."""

    name: str
    higher_is_better: bool | None  # None: a diagnostic without a better direction
    scale: str
    definition: str


def _m(name: str, higher: bool | None, scale: str, definition: str) -> MetricInfo:
    return MetricInfo(name, higher, scale, definition)


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        # prediction, classification (mesobench.metrics.prediction)
        _m("auroc", True, "scale-free", "ROC AUC on the test fold; multiclass: one-vs-rest macro"),
        _m("auroc_ovo_macro", True, "scale-free", "ROC AUC, one-vs-one macro average"),
        _m("auroc_ovr_weighted", True, "scale-free", "ROC AUC, one-vs-rest, prevalence-weighted"),
        _m("accuracy", True, "scale-free", "share of test rows whose arg-max class is right"),
        _m("balanced_accuracy", True, "scale-free", "mean per-class recall"),
        _m("log_loss", False, "scale-free", "mean negative log-likelihood of the true class"),
        # prediction, regression
        _m("mse", False, "target units", "mean squared error (squared target units)"),
        _m("rmse", False, "target units", "root mean squared error"),
        _m("mae", False, "target units", "mean absolute error"),
        _m("r2", True, "scale-free", "coefficient of determination"),
        # cost
        _m("fit_seconds", False, "seconds", "wall time of fit, including any HPO / γ search"),
        _m("predict_seconds", False, "seconds", "wall time of predicting the test fold"),
        _m("explain_seconds", False, "seconds", "wall time of explaining the test fold"),
        _m("fidelity_seconds", False, "seconds", "wall time of the fidelity metrics"),
        _m("peak_rss_mb", False, "megabytes", "peak resident memory above the start of fit"),
        _m("peak_cuda_mb", False, "megabytes", "peak CUDA memory allocated during fit"),
        # explanations (mesobench.metrics.fidelity; see its table)
        _m(
            "explain_identity_error",
            False,
            "output units",
            "max |w(x)·x + b(x) − output(x)|: 0 when the explanation is the model",
        ),
        _m(
            "fidelity/lfr_infidelity",
            False,
            "output units",
            "mean squared gap between the output at a neighbour and the local linear model's "
            "prediction there (squared logit / target units); LFR-IMN's training objective, "
            "so never the sole ground for a claim",
        ),
        _m(
            "fidelity/lfr_scaled_infidelity",
            False,
            "scale-free",
            "lfr_infidelity / the mean squared output change over the neighbours (LFR-IMN's "
            "training objective, scaled)",
        ),
        _m(
            "fidelity/yeh_infidelity",
            False,
            "output units",
            "Yeh et al. 2019: E[(I·φ − (f(x) − f(x − I)))²] over perturbations I",
        ),
        _m(
            "fidelity/yeh_scaled_infidelity",
            False,
            "scale-free",
            "yeh_infidelity / E[(f(x) − f(x − I))²] (1 = no better than a zero attribution)",
        ),
        _m(
            "fidelity/deletion_auc",
            False,
            "scale-free",
            "area under the deletion curve relative to the straight line (< 0 = faithful order)",
        ),
        _m(
            "fidelity/insertion_auc",
            True,
            "scale-free",
            "area under the insertion curve relative to the straight line (> 0 = faithful order)",
        ),
        _m(
            "fidelity/faithfulness_correlation",
            True,
            "scale-free",
            "Pearson correlation of attribution mass and output drop over random feature subsets",
        ),
        _m(
            "fidelity/max_sensitivity",
            False,
            "scale-free",
            "max over perturbations of ||phi(x') - phi(x)|| / ||phi(x)|| (0 = stable explanation)",
        ),
        _m(
            "fidelity/avg_sensitivity",
            False,
            "scale-free",
            "mean over perturbations of ||phi(x') - phi(x)|| / ||phi(x)||",
        ),
        *(
            _m(
                f"fidelity/{name}_n_undefined",
                None,
                "count",
                f"scored points where {name} is undefined ({why}); left out of its mean",
            )
            for name, why in (
                ("faithfulness_correlation", "attribution mass or output drop constant"),
                ("max_sensitivity", "all-zero attribution at the point"),
                ("avg_sensitivity", "all-zero attribution at the point"),
            )
        ),
        _m(
            "fidelity/gt_gradient_mae",
            False,
            "target units",
            "synthetic tasks: mean |w(x) − ∇f_true(x)| in raw feature units",
        ),
        _m(
            "fidelity/gt_intercept_mae",
            False,
            "target units",
            "synthetic tasks: mean |b(x) − (f_true(x) − ∇f_true(x)·x)|",
        ),
        _m(
            "fidelity/gt_attribution_mae",
            False,
            "target units",
            "synthetic tasks: mean |φ(x) − (x − x_ref) ⊙ ∇f_true(x)|",
        ),
        _m(
            "fidelity/gt_coef_mae",
            False,
            "target units",
            "synthetic tasks: mean |β̂ − β_true|, β̂ = ∂output/∂x at x = 0 (central differences)",
        ),
        # searches inside a run (their last step's value; the history is in the run)
        _m("hpo/validation_score", True, "scale-free", "validation score of the last HPO trial"),
        # per-epoch training curves of the torch models (step = epoch; the table holds the last)
        _m("train/loss", None, "output units", "mean training loss of the epoch (last epoch)"),
        _m("train/lr", None, "count", "learning rate at the end of the epoch (last epoch)"),
        _m("train/val_score", None, "scale-free", "early-stopping validation score (last epoch)"),
        _m("train/epoch_seconds", None, "seconds", "wall time of the epoch's steps (last epoch)"),
        _m("gamma_search/chosen_gamma", None, "count", "the γ the in-run search chose"),
        _m("gamma_search/gamma", None, "count", "γ of the last grid point tried"),
        _m("gamma_search/D", True, "scale-free", "γ search: prediction quality of the last point"),
        _m("gamma_search/I", False, "output units", "γ search: LFR infidelity of the last point"),
        _m("gamma_search/R_F", True, "scale-free", "γ search: fidelity ratio of the last point"),
        _m("gamma_search/S", True, "scale-free", "γ search: tuning score of the last point"),
    )
}


class UnknownMetricError(ConfigError):
    """A metric name the registry does not know, or one that cannot be ranked."""


def info(name: str) -> MetricInfo:
    """The registry entry of ``name``; :class:`UnknownMetricError` naming the known ones."""
    if name not in METRICS:
        raise UnknownMetricError(
            f"unknown metric {name!r}: known metrics are {', '.join(METRICS)}. For a metric "
            "logged by code of your own, state its direction with higher_is_better=true|false."
        )
    return METRICS[name]


def higher_is_better(name: str, override: bool | None = None) -> bool:
    """The direction to rank ``name`` by: ``override`` if given, else the registry's.

    Refuses unknown metrics (without an override) and diagnostics that have no direction.
    """
    if override is not None:
        return bool(override)
    entry = info(name)
    if entry.higher_is_better is None:
        raise UnknownMetricError(
            f"metric {name!r} ({entry.definition}) has no better direction and cannot be ranked"
        )
    return entry.higher_is_better
