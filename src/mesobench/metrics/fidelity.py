"""Explanation-fidelity metrics (docs/fidelity.md): model-agnostic functions on arrays, callables.

Every model with local attributions is scored the same way, through two things only:

* ``output_fn(Z) -> ndarray``: the model's own output at the rows of a float matrix ``Z`` — the
  prediction for regression, the logit(s) (``decision_function``) for classification; shape
  (m,) or (m, C). For models that read a DataFrame with ``category`` columns,
  :class:`FrameCodec` turns the frame into such a matrix and back.
* an attribution ``(n, F)`` of one scalar output per row, the *explained output*: the
  prediction, the binary logit, or for multiclass the logit of class ``target[i]`` (by default
  the predicted class, the argmax of the logits). Attributions here are of the kind that is
  "multiplied by the input": they share out ``f(x) − f(baseline)`` over the features — the
  local linear model's impact ``x ⊙ w(x)``, TreeSHAP contributions, gradient × input.

Metrics and their directions (``fidelity/*`` names as :func:`evaluate` returns them):

=====================================  =============================================  ========
name                                   definition                                     better
=====================================  =============================================  ========
``lfr_infidelity``                     mean over points x, neighbours x' and classes   lower
                                       of (w(x)·x' + b(x) − f(x'))² (LFR paper)
``lfr_scaled_infidelity``              lfr_infidelity / mean (f(x') − f(x))²           lower
                                       (0 exact, 1 = no better than the constant f(x))
``yeh_infidelity``                     E[(Iᵀφ(x) − (f(x) − f(x − I)))²] (Yeh 2019)     lower
``yeh_scaled_infidelity``              yeh_infidelity / E[(f(x) − f(x − I))²]          lower
                                       (1 = no better than the all-zero attribution)
``deletion_auc``                       normalised area under the deletion curve,       lower
                                       relative to the straight line (0 ≈ random
                                       order, < 0 = faithful)
``insertion_auc``                      the mirror of deletion: features put back from  higher
                                       the baseline in attribution order (> 0 =
                                       faithful, 0 ≈ random order)
``faithfulness_correlation``           Pearson corr., over random subsets S, of        higher
                                       Σ_S φ and f(x) − f(x_S = baseline) (Bhatt 2020)
``max_sensitivity``                    max over x′ in an L∞ ball of radius r of        lower
                                       ‖φ(x′) − φ(x)‖ / ‖φ(x)‖ (captum); φ = w(x) for
                                       ``explain`` models, else the attribution
``avg_sensitivity``                    the same with the mean over x′                  lower
``gt_gradient_mae``                    mean |w_raw(x) − ∇f_true(x)| (synthetic)        lower
``gt_intercept_mae``                   mean |b_raw(x) − (f_true(x) − ∇f_true(x)·x)|    lower
``gt_attribution_mae``                 mean |φ(x) − (x − x_ref) ⊙ ∇f_true(x)|          lower
``gt_coef_mae``                        mean |β̂ − β_true|, β̂ = ∂output/∂x at 0 (any model) lower
=====================================  =============================================  ========

:func:`fidelity_ratio` (higher = the model more faithful than the base) and
:func:`tuning_score` are the γ-search quantities of the LFR paper (Hammer et al. 2026;
docs/fidelity.md#lfr-infidelity-the-fidelity-ratio-and-the-tuning-score).

Definitions chosen where the sources leave them open
----------------------------------------------------
*Scaled LFR infidelity* (the LFR paper defines no scale; docs/fidelity.md states this choice):
I divided by the *local* variance of f over the neighbourhoods,
``V = mean_{x, x', c} (f(x') − f(x))²`` — the mean squared change of the output from each anchor
to its own neighbours. V is exactly the infidelity of the constant explanation
``w = 0, b = f(x)``, so the ratio is unit-free (comparable across tasks, output scales and, to
first order, σ): 0 = the local linear models reproduce f exactly, 1 = they are no better than
ignoring the features, > 1 = worse. (The pooled variance of f over all neighbourhood points is
dominated by the spread between anchors and would call even a slope-free explanation faithful;
it is returned as ``output_variance`` for reference.) NaN when f is constant (V = 0).

*Yeh infidelity*: perturbations ``perturbation="relative"`` (default; for attributions
multiplied by the input): ``I = (x − baseline) ⊙ m``, ``m ~ N(0, σ²)`` per feature, scored
with ``mᵀφ`` — Captum's ``(x − x̃) / (x − baseline)`` convention written without the division, so
a linear f with its impact attribution scores exactly 0. ``perturbation="absolute"`` (for
slopes: weights or gradients): ``I ~ N(0, σ² · scale²)``, scored with ``Iᵀφ``. σ = 0.1 by
default (standardised data: a tenth of a standard deviation / of the distance to the mean).
Features that are not perturbable (categorical codes of native-input models) or missing (NaN)
are never perturbed. Multiclass: the explained output is the logit of the target class.

*Deletion curve*: per point, features are set to ``baseline`` (0 on standardised data = the
training mean) in order of decreasing *signed* attribution, in ``n_steps`` equal shares of the
perturbable features; ``c_0 = f(x)`` … ``c_S = f(baseline)``. The score is the trapezoid area
under c over the removed fraction t ∈ [0, 1] minus the area under the straight line from c_0
to c_S, averaged over points and divided by the mean total change ``mean |c_0 − c_S|`` (both
order-independent). For an additive model the order by true contribution minimises every
partial sum, hence the area, and a random order follows the straight line in expectation: the
true attribution scores < 0 (−0.5 when one feature carries the whole change; lower still when
contributions of both signs make the curve dip below c_S), a random one ≈ 0, a reversed one > 0.

Everything is deterministic given ``rng`` (a ``numpy.random.Generator`` or a seed); drawing a
capped sample of rows is the caller's job (:func:`sample_rows`), and :func:`evaluate` does it.
Large perturbation batches are evaluated in chunks of about ``_MAX_ELEMENTS`` matrix entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from mesobench.models.explanation import Explanation

OutputFn = Callable[[np.ndarray], np.ndarray]


class UndefinedMetricError(ValueError):
    """A metric that is undefined for these data as a whole (not for some points): the message
    says why, and :func:`mesobench.metrics.scoring.evaluate` records it as a note."""


_MAX_ELEMENTS = 1 << 22  # entries of a perturbed block per output_fn call (32 MiB in float64)
NEIGHBORHOODS = ("gaussian", "smote")
YEH_PERTURBATIONS = ("relative", "absolute")


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def sample_rows(n: int, cap: int | None, seed: int) -> np.ndarray:
    """Sorted indices of ``min(n, cap)`` rows drawn without replacement (all rows if cap is None)."""
    if cap is None or cap >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, int(cap), replace=False))


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _matrix(X: Any) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D matrix, got shape {X.shape}")
    return X


def _per_feature(value: float | np.ndarray, n_features: int, name: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (n_features,))
    if arr.shape != (n_features,):
        raise ValueError(f"{name} must be a scalar or have {n_features} entries")
    return arr


def _chunks(n: int, rows_per_point: int, n_features: int):
    """Slices of anchor points so that one block holds about ``_MAX_ELEMENTS`` entries."""
    step = max(1, _MAX_ELEMENTS // max(1, rows_per_point * max(1, n_features)))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _outputs(output_fn: OutputFn, Z: np.ndarray) -> np.ndarray:
    """``output_fn(Z)`` as float64 of shape (m, C'), C' = 1 for a scalar output."""
    out = np.asarray(output_fn(Z), dtype=np.float64)
    if out.shape[0] != Z.shape[0] or out.ndim not in (1, 2):
        raise ValueError(f"output_fn returned shape {out.shape} for {Z.shape[0]} rows")
    return out.reshape(Z.shape[0], -1)


def _explained(out: np.ndarray, target: np.ndarray | None) -> np.ndarray:
    """The explained scalar output per row of ``out`` (m, C'): column ``target`` if C' > 1."""
    if out.shape[1] == 1:
        return out[:, 0]
    if target is None:
        raise ValueError("a multi-output output_fn needs the explained class per row (target)")
    return np.take_along_axis(out, np.asarray(target, dtype=np.int64)[:, None], axis=1)[:, 0]


def _resolve_target(f_x: np.ndarray, target: np.ndarray | None) -> np.ndarray | None:
    """Target classes per point: as given, or the argmax of the outputs (predicted class)."""
    if f_x.shape[1] == 1:
        return None
    if target is None:
        return np.argmax(f_x, axis=1)
    target = np.asarray(target, dtype=np.int64)
    if target.shape != (f_x.shape[0],):
        raise ValueError(f"target must have shape ({f_x.shape[0]},), got {target.shape}")
    return target


def _check_attribution(attribution: Any, X: np.ndarray) -> np.ndarray:
    phi = np.asarray(attribution, dtype=np.float64)
    if phi.shape != X.shape:
        raise ValueError(
            f"attribution must have the shape of X {X.shape} (one explained output per row), "
            f"got {phi.shape}"
        )
    return phi


# --------------------------------------------------------------------------------------------
# Neighbourhoods (LFR)
# --------------------------------------------------------------------------------------------


def gaussian_neighbors(
    X: np.ndarray, *, sigma: float = 0.1, n_neighbors: int = 1, rng=None
) -> np.ndarray:
    """``x' = x + N(0, σ² I)``, ``n_neighbors`` per point: shape (n, k, F)."""
    X = _matrix(X)
    noise = _rng(rng).standard_normal((X.shape[0], int(n_neighbors), X.shape[1]))
    return X[:, None, :] + float(sigma) * noise


def smote_neighbors(
    X: np.ndarray,
    X_reference: np.ndarray | None = None,
    *,
    n_neighbors: int = 1,
    k_nearest: int = 5,
    rng=None,
) -> np.ndarray:
    """SMOTE-style ``x' = x + u (x_nn − x)``, ``u ~ U(0, 1)``: shape (n, k, F).

    ``x_nn`` is drawn uniformly among the ``k_nearest`` Euclidean nearest neighbours of x in
    ``X_reference`` (the training data, say); with ``X_reference=None`` among the other rows of
    X (a point is not its own neighbour).
    """
    X = _matrix(X)
    own = X_reference is None
    ref = X if own else _matrix(X_reference)
    if ref.shape[1] != X.shape[1]:
        raise ValueError(f"X_reference has {ref.shape[1]} features, X has {X.shape[1]}")
    k_avail = ref.shape[0] - 1 if own else ref.shape[0]
    if k_avail < 1:
        raise ValueError("smote neighbourhoods need at least one reference row besides x")
    k_nn = min(int(k_nearest), k_avail)
    index = NearestNeighbors(n_neighbors=k_nn).fit(ref)
    _, nn_idx = index.kneighbors(None if own else X, n_neighbors=k_nn)  # (n, k_nn)
    rng = _rng(rng)
    n, k = X.shape[0], int(n_neighbors)
    pick = np.take_along_axis(nn_idx, rng.integers(0, k_nn, size=(n, k)), axis=1)  # (n, k)
    u = rng.random((n, k, 1))
    return X[:, None, :] + u * (ref[pick] - X[:, None, :])


def draw_neighbors(
    X: np.ndarray,
    kind: str = "gaussian",
    *,
    sigma: float = 0.1,
    n_neighbors: int = 1,
    X_reference: np.ndarray | None = None,
    k_nearest: int = 5,
    rng=None,
) -> np.ndarray:
    """Neighbours of each row of X, shape (n, n_neighbors, F): ``gaussian`` or ``smote``."""
    if kind == "gaussian":
        return gaussian_neighbors(X, sigma=sigma, n_neighbors=n_neighbors, rng=rng)
    if kind == "smote":
        return smote_neighbors(
            X, X_reference, n_neighbors=n_neighbors, k_nearest=k_nearest, rng=rng
        )
    raise ValueError(f"neighborhood must be one of {NEIGHBORHOODS}, got {kind!r}")


# --------------------------------------------------------------------------------------------
# LFR infidelity, fidelity ratio, tuning score (Hammer et al. 2026; docs/fidelity.md)
# --------------------------------------------------------------------------------------------


def lfr_infidelity(
    explanation: Explanation | Callable[[np.ndarray], Explanation],
    output_fn: OutputFn,
    X: np.ndarray,
    *,
    neighborhood: str = "gaussian",
    sigma: float = 0.1,
    n_neighbors: int = 10,
    X_reference: np.ndarray | None = None,
    k_nearest: int = 5,
    rng=None,
) -> dict[str, float]:
    """LFR infidelity of local linear models on held-out rows (no gradients, seeded).

    ``explanation``: the :class:`Explanation` of the rows of X, or ``explain_fn(X)``.
    For each x, ``n_neighbors`` neighbours x' are drawn (``gaussian``: σ; ``smote``: towards
    one of the ``k_nearest`` neighbours in ``X_reference``) and the local model of x is compared
    with the model's output there, per class on the logit scale for multiclass:

        infidelity = mean_{x, x', c} (w_c(x)·x' + b_c(x) − f_c(x'))²

    Returns ``infidelity``, ``scaled_infidelity`` (infidelity / ``local_variance``, see the
    module docstring), ``local_variance`` = mean (f_c(x') − f_c(x))², ``output_variance`` (the
    variance of f over all neighbourhood points, averaged over classes), ``n_points`` and
    ``n_neighbors``.
    """
    X = _matrix(X)
    expl = explanation if isinstance(explanation, Explanation) else explanation(X)
    W = np.asarray(expl.weights, dtype=np.float64)
    b = np.asarray(expl.intercept, dtype=np.float64)
    if W.shape[:2] != X.shape:
        raise ValueError(f"explanation weights {W.shape} do not match X {X.shape}")
    if W.ndim == 2:
        W, b = W[:, :, None], b[:, None]
    n, n_features = X.shape
    k = int(n_neighbors)
    if n == 0 or k < 1:
        raise ValueError("lfr_infidelity needs at least one point and one neighbour")
    X_nb = draw_neighbors(
        X,
        neighborhood,
        sigma=sigma,
        n_neighbors=k,
        X_reference=X_reference,
        k_nearest=k_nearest,
        rng=rng,
    )
    gap2 = local2 = 0.0
    f_all = []
    for sl in _chunks(n, k + 1, n_features):
        m = sl.stop - sl.start
        block = np.concatenate([X[sl], X_nb[sl].reshape(m * k, n_features)])
        out = _outputs(output_fn, block)
        if out.shape[1] != W.shape[2]:
            raise ValueError(
                f"output_fn gives {out.shape[1]} outputs, the explanation {W.shape[2]} classes"
            )
        f_x, f_nb = out[:m], out[m:].reshape(m, k, -1)
        linear = np.einsum("nkf,nfc->nkc", X_nb[sl], W[sl]) + b[sl, None, :]
        gap2 += float(np.square(linear - f_nb).sum())
        local2 += float(np.square(f_nb - f_x[:, None, :]).sum())
        f_all.append(f_nb.reshape(m * k, -1))
    count = n * k * W.shape[2]
    infidelity, local_variance = gap2 / count, local2 / count
    return {
        "infidelity": infidelity,
        "scaled_infidelity": infidelity / local_variance if local_variance > 0 else float("nan"),
        "local_variance": local_variance,
        "output_variance": float(np.concatenate(f_all).var(axis=0).mean()),
        "n_points": float(n),
        "n_neighbors": float(k),
    }


def fidelity_ratio(infidelity_base: float, infidelity_model: float) -> float:
    """R_F = I_base / (I_base + I_model) ∈ [0, 1], higher = more faithful than the base.

    0.5: as faithful as the base (the unregularised IMN, γ = 0); 1.0 when both are 0, as in
    the LFR reference code.
    """
    total = float(infidelity_base) + float(infidelity_model)
    return float(infidelity_base) / total if total > 0 else 1.0


def tuning_score(performance: float, ratio: float, alpha: float = 0.5) -> float:
    """S = α · max(0, D) + (1 − α) · R_F (LFR paper); D = validation AUROC or R², R_F the ratio."""
    return float(alpha) * max(0.0, float(performance)) + (1.0 - float(alpha)) * float(ratio)


# --------------------------------------------------------------------------------------------
# Yeh et al. (2019) infidelity and the deletion curve
# --------------------------------------------------------------------------------------------


def _feature_mask(perturbable: np.ndarray | None, n_features: int) -> np.ndarray:
    """The (F,) boolean mask of features that may be perturbed (None: all), checked."""
    mask = np.ones(n_features, dtype=bool) if perturbable is None else np.asarray(perturbable)
    if mask.shape != (n_features,) or mask.dtype != bool:
        raise ValueError(f"perturbable must be a boolean mask of {n_features} features")
    return mask


def _perturbable(X: np.ndarray, perturbable: np.ndarray | None) -> np.ndarray:
    """(n, F) mask of entries that may be perturbed: the feature mask and a finite value."""
    return _feature_mask(perturbable, X.shape[1])[None, :] & np.isfinite(X)


def yeh_infidelity(
    attribution: np.ndarray,
    output_fn: OutputFn,
    X: np.ndarray,
    *,
    perturbation: str = "relative",
    noise_std: float = 0.1,
    n_perturbations: int = 20,
    baseline: float | np.ndarray = 0.0,
    feature_scale: float | np.ndarray = 1.0,
    perturbable: np.ndarray | None = None,
    categorical: np.ndarray | None = None,
    removal_probability: float = 0.5,
    target: np.ndarray | None = None,
    rng=None,
) -> dict[str, float]:
    """Yeh et al. (2019) infidelity ``E[(Iᵀφ(x) − (f(x) − f(x − I)))²]`` with Gaussian I.

    ``perturbation="relative"`` (attributions multiplied by the input, the default):
    ``I = (x − baseline) ⊙ m``, ``m ~ N(0, noise_std²)``, and ``Iᵀφ`` reads ``mᵀφ``;
    ``"absolute"`` (slopes): ``I ~ N(0, (noise_std · feature_scale)²)``. Entries outside
    ``perturbable`` (F,) or not finite are not perturbed. f is the explained output (``target``
    class for multi-output ``output_fn``; default the argmax of f(x)).

    ``categorical`` (F,): features removed (set to ``baseline``, counting their whole φ_j) with
    probability ``removal_probability``, else kept (Yeh et al.'s removal perturbations). A
    feature at its baseline is not moved and counts 0 (captum's ``(x − x̃)/(x − baseline)``).
    Draws per chunk of points: Gaussian multipliers ``(m, k, F)``, then, if some feature is
    categorical, uniform removal draws ``(m, k, F)`` (removed below the probability).

    Returns ``infidelity``, ``scaled_infidelity`` (infidelity / E[(f(x) − f(x − I))²]: 1 = no
    better than φ = 0), ``n_points``, ``n_perturbations``, ``n_features_perturbed``.
    """
    if perturbation not in YEH_PERTURBATIONS:
        raise ValueError(f"perturbation must be one of {YEH_PERTURBATIONS}, got {perturbation!r}")
    X = _matrix(X)
    phi = _check_attribution(attribution, X)
    n, n_features = X.shape
    k = int(n_perturbations)
    if n == 0 or k < 1:
        raise ValueError("yeh_infidelity needs at least one point and one perturbation")
    base = _per_feature(baseline, n_features, "baseline")
    scale = _per_feature(feature_scale, n_features, "feature_scale")
    cat = (
        np.zeros(n_features, bool)
        if categorical is None
        else _feature_mask(categorical, n_features)
    )
    mask = _yeh_movable(X, base, perturbable, cat, perturbation)
    rng = _rng(rng)
    f_full = _outputs(output_fn, X)
    target = _resolve_target(f_full, target)
    f_x = _explained(f_full, target)

    err2 = delta2 = 0.0
    for sl in _chunks(n, k, n_features):
        m = sl.stop - sl.start
        eps = rng.standard_normal((m, k, n_features)) * noise_std
        if cat.any():
            removed = rng.random((m, k, n_features)) < float(removal_probability)
            eps = np.where(cat, removed.astype(np.float64), eps)
        eps *= mask[sl, None, :]
        offset = np.where(mask[sl], X[sl] - base, 0.0)
        shift, projected = _yeh_shift(eps, offset, phi[sl], cat, scale, perturbation)
        X_pert = (X[sl, None, :] - shift).reshape(m * k, n_features)
        tgt = None if target is None else np.repeat(target[sl], k)
        f_pert = _explained(_outputs(output_fn, X_pert), tgt).reshape(m, k)
        delta = f_x[sl, None] - f_pert
        err2 += float(np.square(projected - delta).sum())
        delta2 += float(np.square(delta).sum())
    infidelity = err2 / (n * k)
    mean_delta2 = delta2 / (n * k)
    return {
        "infidelity": infidelity,
        "scaled_infidelity": infidelity / mean_delta2 if mean_delta2 > 0 else float("nan"),
        "n_points": float(n),
        "n_perturbations": float(k),
        "n_features_perturbed": float(mask.any(axis=0).sum()),
    }


def _yeh_shift(eps, offset, phi, categorical, scale, perturbation: str):
    """``(I, Iᵀφ)`` of a chunk: relative I = (x − b) ⊙ m scored with mᵀφ; absolute
    I = m ⊙ scale scored with Iᵀφ; a categorical feature removed (m = 1) moves by x − b and
    counts its whole φ."""
    if perturbation == "relative":
        return offset[:, None, :] * eps, np.einsum("nkf,nf->nk", eps, phi)
    shift = np.where(categorical, offset[:, None, :] * eps, eps * scale)
    return shift, np.einsum("nkf,nf->nk", np.where(categorical, eps, shift), phi)


def _yeh_movable(X, base, perturbable, categorical, perturbation: str) -> np.ndarray:
    """(n, F) entries a Yeh perturbation moves: perturbable, present, and off the baseline
    where the perturbation is relative to it (relative mode, categorical features): an entry
    at its baseline cannot move and so counts 0, as in captum's convention."""
    mask = _perturbable(X, perturbable)
    off_base = base[None, :] != X
    if perturbation == "relative":
        return mask & off_base
    return mask & (off_base | ~categorical[None, :])


def deletion_auc(
    attribution: np.ndarray,
    output_fn: OutputFn,
    X: np.ndarray,
    *,
    baseline: float | np.ndarray = 0.0,
    n_steps: int = 20,
    perturbable: np.ndarray | None = None,
    target: np.ndarray | None = None,
    output_scale: float | None = None,
    rng: np.random.Generator | int | None = 0,
) -> dict[str, float]:
    """Deletion-curve score, lower = more faithful (0 ≈ a random deletion order).

    Per point, the perturbable features are set to ``baseline`` in order of decreasing signed
    attribution (:func:`ordered_curves`; ties in a seeded random order), giving outputs
    ``c_0 = f(x), ..., c_S``. The point's score is the trapezoid area under c over the removed
    fraction minus the area under the line from c_0 to c_S; ``deletion_auc`` is its mean over
    points divided by ``output_scale`` (default: the mean total change mean |c_0 − c_S|; NaN if
    0).

    Returns ``deletion_auc``, ``n_points``, ``n_steps``, ``n_features_perturbed``.
    """
    options = dict(baseline=baseline, n_steps=n_steps, perturbable=perturbable, target=target)
    return _ordered_curve_score(
        "deletion_auc", attribution, output_fn, X, False, output_scale, rng=rng, **options
    )


def insertion_auc(
    attribution: np.ndarray,
    output_fn: OutputFn,
    X: np.ndarray,
    *,
    output_scale: float | None = None,
    **options: Any,
) -> dict[str, float]:
    """Insertion-curve score, higher = more faithful (0 ≈ a random insertion order).

    The mirror of :func:`deletion_auc`: per point, start from ``baseline`` in every perturbable
    feature and put the point's own values back in order of decreasing signed attribution,
    giving ``c_0 = f(baseline), ..., c_S = f(x)``; the score is the area under c minus the area
    under the straight line from c_0 to c_S, over points, divided by ``output_scale`` (default
    the mean |c_S − c_0|). For an additive model the true attribution scores > 0 (+0.5 when one
    feature carries the whole change), a random one ≈ 0.

    ``options``: ``baseline``, ``n_steps``, ``perturbable``, ``target``, ``rng`` as for
    :func:`ordered_curves`. Returns ``insertion_auc``, ``n_points``, ``n_steps``,
    ``n_features_perturbed``.
    """
    return _ordered_curve_score(
        "insertion_auc", attribution, output_fn, X, True, output_scale, **options
    )


def ordered_curves(
    attribution: np.ndarray,
    output_fn: OutputFn,
    X: np.ndarray,
    *,
    insert: bool,
    baseline: float | np.ndarray = 0.0,
    n_steps: int = 20,
    perturbable: np.ndarray | None = None,
    target: np.ndarray | None = None,
    rng: np.random.Generator | int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Deletion (``insert=False``) or insertion curves: ``(t, curves)``.

    Features are moved in order of decreasing signed attribution; features with equal
    attributions (an all-zero attribution, say) in a random order drawn from ``rng`` (one
    uniform key per point and feature, ``(n, F)``), never by column order. ``S = min(n_steps,
    F_p)`` steps move equal shares of the F_p perturbable features; ``t`` (S+1,) is the moved
    fraction and ``curves`` (n, S+1) the explained output after each step: from f(x) to
    f(baseline) (deletion) or back (insertion). The blocks of a chunk of points go through
    ``output_fn`` in one call.
    """
    X = _matrix(X)
    phi = _check_attribution(attribution, X)
    n, n_features = X.shape
    mask = _feature_mask(perturbable, n_features)
    n_pert = int(mask.sum())
    if n == 0 or n_pert == 0:
        raise ValueError("ordered curves need at least one point and one perturbable feature")
    base = _per_feature(baseline, n_features, "baseline")
    steps = min(int(n_steps), n_pert)
    moved = np.rint(np.linspace(0, n_pert, steps + 1)).astype(np.int64)  # features per step
    ties = _rng(rng).random((n, n_features))
    # rank[i, j]: position of feature j in point i's order (non-perturbable: last)
    order = np.lexsort((ties, np.where(mask, -phi, np.inf)), axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n_features)[None, :], axis=1)

    if target is None:  # needed only to pick the predicted class of a multi-output model
        target = _resolve_target(_outputs(output_fn, X), None)
    curves = np.empty((n, steps + 1))
    for sl in _chunks(n, steps + 1, n_features):
        m = sl.stop - sl.start
        early = rank[sl, None, :] < moved[None, :, None]  # (m, S+1, F): moved by step s
        at_base = (~early & mask) if insert else early
        block = np.where(at_base, base, X[sl, None, :]).reshape(m * (steps + 1), n_features)
        tgt = None if target is None else np.repeat(target[sl], steps + 1)
        curves[sl] = _explained(_outputs(output_fn, block), tgt).reshape(m, steps + 1)
    return moved / n_pert, curves


def _ordered_curve_score(
    name: str,
    attribution: np.ndarray,
    output_fn: OutputFn,
    X: np.ndarray,
    insert: bool,
    output_scale: float | None,
    **options: Any,
) -> dict[str, float]:
    """The normalised area of :func:`ordered_curves` above their straight lines."""
    t, curve = ordered_curves(attribution, output_fn, X, insert=insert, **options)
    area = np.sum((curve[:, 1:] + curve[:, :-1]) * np.diff(t) / 2.0, axis=1)
    scores = area - (curve[:, 0] + curve[:, -1]) / 2.0
    total_change = np.abs(curve[:, 0] - curve[:, -1])
    scale = float(total_change.mean()) if output_scale is None else float(output_scale)
    n_pert = int(_feature_mask(options.get("perturbable"), np.shape(X)[1]).sum())
    return {
        name: float(scores.mean()) / scale if scale > 0 else float("nan"),
        "n_points": float(curve.shape[0]),
        "n_steps": float(len(t) - 1),
        "n_features_perturbed": float(n_pert),
    }


def faithfulness_correlation(
    attribution: np.ndarray,
    output_fn: OutputFn,
    X: np.ndarray,
    *,
    baseline: float | np.ndarray = 0.0,
    subset_size: int = 3,
    n_subsets: int = 50,
    perturbable: np.ndarray | None = None,
    target: np.ndarray | None = None,
    rng: np.random.Generator | int | None = 0,
) -> dict[str, float]:
    """Faithfulness correlation (Bhatt et al. 2020), higher = more faithful (1 = exact).

    Per point x: ``n_subsets`` random subsets S of ``min(subset_size, F_p − 1)`` of the F_p
    perturbable features (smaller than all of them, so that the subsets differ); the Pearson
    correlation, over the subsets, between the attribution mass ``Σ_{j∈S} φ_j`` and the output
    drop ``f(x) − f(x with x_S = baseline)``. The score is the mean over points whose
    correlation is defined (both series vary); ``n_undefined`` counts the others (an all-zero
    attribution, an output the subsets do not move). All subsets of a chunk of points go
    through ``output_fn`` in one call. Fewer than two perturbable features admit no
    correlation at all: :class:`UndefinedMetricError`, saying so.

    Returns ``faithfulness_correlation``, ``n_points``, ``n_undefined``, ``subset_size``.
    """
    X = _matrix(X)
    phi = _check_attribution(attribution, X)
    n, n_features = X.shape
    candidates = np.flatnonzero(_feature_mask(perturbable, n_features))
    if n == 0:
        raise ValueError("faithfulness_correlation needs at least one point")
    if candidates.size < 2:
        raise UndefinedMetricError(
            f"faithfulness correlation is undefined with {candidates.size} perturbable "
            "feature(s): every random subset would be the same"
        )
    k = min(int(subset_size), candidates.size - 1)
    gen = _rng(rng)
    keys = gen.random((n, n_subsets, candidates.size))  # a random subset per row: k smallest
    chosen = candidates[np.argsort(keys, axis=2)[:, :, :k]]  # (n, K, k)
    in_subset = np.zeros((n, n_subsets, n_features), dtype=bool)
    np.put_along_axis(in_subset, chosen, True, axis=2)
    base = _per_feature(baseline, n_features, "baseline")
    f_x = _outputs(output_fn, X)
    target = _resolve_target(f_x, target)
    f0 = _explained(f_x, target)
    drops = np.empty((n, n_subsets))
    for sl in _chunks(n, n_subsets, n_features):
        m = sl.stop - sl.start
        block = np.where(in_subset[sl], base, X[sl, None, :]).reshape(m * n_subsets, n_features)
        tgt = None if target is None else np.repeat(target[sl], n_subsets)
        out = _explained(_outputs(output_fn, block), tgt).reshape(m, n_subsets)
        drops[sl] = f0[sl, None] - out
    mass = np.einsum("nkf,nf->nk", in_subset, phi)
    corr = _row_correlation(mass, drops)
    defined = np.isfinite(corr)
    return {
        "faithfulness_correlation": float(corr[defined].mean()) if defined.any() else float("nan"),
        "n_points": float(n),
        "n_undefined": float((~defined).sum()),
        "subset_size": float(k),
    }


def _row_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b``; NaN where either
    row is constant (up to float rounding)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    na, nb = np.sqrt((a * a).sum(axis=1)), np.sqrt((b * b).sum(axis=1))
    tiny = 1e-12 * np.maximum(1.0, np.maximum(np.abs(a).max(axis=1), np.abs(b).max(axis=1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (a * b).sum(axis=1) / (na * nb)
    return np.where((na > tiny) & (nb > tiny), corr, np.nan)


ExplainFn = Callable[[np.ndarray, np.ndarray | None], np.ndarray]
"""``explain_fn(Z, target) -> (m, F)``: the explanation at the rows of Z, of class ``target``."""


@dataclass(frozen=True)
class CategoryResampler:
    """How the stability neighbourhood moves categorical features, which have no small
    continuous step: each present categorical entry is, with ``probability``, replaced by a
    category drawn from its training frequencies (possibly its own).

    columns: (F,) bool, the categorical features resampled.
    cdf: (F_c, K) cumulative category probabilities of those columns in order, padded with 1.
    probability: chance that one categorical entry of x′ is redrawn.
    """

    columns: np.ndarray
    cdf: np.ndarray
    probability: float

    def apply(self, X: np.ndarray, Z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``Z`` (n, P, F), the numeric perturbations of X, with categorical entries redrawn.

        Draws: uniforms ``(n, P, F_c)`` deciding which entries move, then uniforms of the same
        shape picking the category by inverse CDF.
        """
        cols = np.flatnonzero(self.columns)
        if cols.size == 0 or self.probability <= 0:
            return Z
        shape = (*Z.shape[:2], cols.size)
        moves = (rng.random(shape) < self.probability) & np.isfinite(X[:, None, cols])
        u = rng.random(shape)
        drawn = (u[..., None] >= self.cdf[None, None, :, :]).sum(axis=-1)  # inverse CDF
        drawn = np.minimum(drawn, self.cdf.shape[1] - 1).astype(np.float64)
        Z[:, :, cols] = np.where(moves, drawn, Z[:, :, cols])
        return Z


def max_sensitivity(
    explain_fn: ExplainFn,
    X: np.ndarray,
    *,
    radius: float | np.ndarray = 0.1,
    n_perturbations: int = 10,
    perturbable: np.ndarray | None = None,
    target: np.ndarray | None = None,
    rng: np.random.Generator | int | None = 0,
    phi_x: np.ndarray | None = None,
    resample: CategoryResampler | None = None,
) -> dict[str, float]:
    """Stability of explanations (captum's ``sensitivity_max``), lower = more stable (0: the
    explanation does not move).

    Per point x: ``n_perturbations`` points x′ = x + u, u uniform in [−radius, radius] on each
    perturbable feature (present values only); categorical features, if ``resample`` says
    so, redrawn as :class:`CategoryResampler` does. ``max_sensitivity`` is the mean over
    points of max_{x′} ‖φ(x′) − φ(x)‖₂ / ‖φ(x)‖₂ and ``avg_sensitivity`` of the mean over x′
    (points with φ(x) = 0 are undefined: left out and counted in ``n_zero``). φ is
    ``explain_fn`` at the same class ``target`` as at x; all perturbations of a chunk of points
    are explained in one call. ``phi_x``: φ at X when the caller has it (saves one pass).
    Draws: the uniform noise ``(n, n_perturbations, F)``, then the resampler's.

    Returns ``max_sensitivity``, ``avg_sensitivity``, ``n_points``, ``n_zero``.
    """
    X = _matrix(X)
    n, n_features = X.shape
    gen = _rng(rng)
    noise = gen.uniform(-1.0, 1.0, size=(n, n_perturbations, n_features))
    noise *= _per_feature(radius, n_features, "radius") * _perturbable(X, perturbable)[:, None, :]
    neighbours = X[:, None, :] + noise
    if resample is not None:
        neighbours = resample.apply(X, neighbours, gen)
    if phi_x is None:  # the explanation at X itself, unless the caller has it already
        phi_x = explain_fn(X, target)
    phi_x = np.asarray(phi_x, dtype=np.float64).reshape(n, -1)
    norm = np.linalg.norm(phi_x, axis=1)
    ratios = np.empty((n, n_perturbations))
    for sl in _chunks(n, n_perturbations, n_features):
        m = sl.stop - sl.start
        Z = neighbours[sl].reshape(m * n_perturbations, n_features)
        tgt = None if target is None else np.repeat(np.asarray(target)[sl], n_perturbations)
        phi_z = np.asarray(explain_fn(Z, tgt), dtype=np.float64).reshape(m, n_perturbations, -1)
        change = np.linalg.norm(phi_z - phi_x[sl, None, :], axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios[sl] = change / norm[sl, None]
    nonzero = norm > 0
    if not nonzero.any():
        nan = float("nan")
        return {
            "max_sensitivity": nan,
            "avg_sensitivity": nan,
            "n_points": float(n),
            "n_zero": float(n),
        }
    return {
        "max_sensitivity": float(ratios[nonzero].max(axis=1).mean()),
        "avg_sensitivity": float(ratios[nonzero].mean(axis=1).mean()),
        "n_points": float(n),
        "n_zero": float((~nonzero).sum()),
    }


# --------------------------------------------------------------------------------------------
# Errors against the ground truth of synthetic tasks
# --------------------------------------------------------------------------------------------
# The model works in its own input units x_m = (x_raw − offset) / scale (the runner
# standardises numerics); the truth speaks raw units. Then ∂f/∂x_raw = w_m / scale and the
# intercept of the tangent plane in raw units is b_m − Σ_j (w_m,j / scale_j) · offset_j.


def _raw_slope(slope: np.ndarray, scale: float | np.ndarray) -> np.ndarray:
    slope = np.asarray(slope, dtype=np.float64)
    if slope.ndim != 2:
        raise ValueError(f"ground-truth errors need (n, F) slopes (one output), got {slope.shape}")
    return slope / _per_feature(scale, slope.shape[1], "scale")


def gradient_error(
    slope: np.ndarray, truth: Any, X_raw: Any, *, scale: float | np.ndarray = 1.0
) -> float:
    """Mean |slope_raw − ∇f_true(x)| over rows and features; slope in model units, (n, F)."""
    return float(np.mean(np.abs(_raw_slope(slope, scale) - truth.gradient(X_raw))))


def intercept_error(
    slope: np.ndarray,
    intercept: np.ndarray,
    truth: Any,
    X_raw: Any,
    *,
    offset: float | np.ndarray = 0.0,
    scale: float | np.ndarray = 1.0,
) -> float:
    """Mean |b_raw(x) − (f_true(x) − ∇f_true(x)·x)| of local linear models (model units in)."""
    w_raw = _raw_slope(slope, scale)
    b_raw = np.asarray(intercept, dtype=np.float64) - w_raw @ _per_feature(
        offset, w_raw.shape[1], "offset"
    )
    return float(np.mean(np.abs(b_raw - truth.local_intercept(X_raw))))


def attribution_error(
    attribution: np.ndarray,
    truth: Any,
    X_raw: Any,
    *,
    reference: float | np.ndarray = 0.0,
) -> float:
    """Mean |φ(x) − (x − x_ref) ⊙ ∇f_true(x)|: attributions vs the true gradient × input.

    ``reference`` is the raw-unit point the attribution is relative to (its baseline: the
    training mean for standardised inputs, the data mean for TreeSHAP). φ is in output units,
    which the choice of input units does not change.
    """
    X_raw = np.asarray(X_raw.to_numpy() if isinstance(X_raw, pd.DataFrame) else X_raw, float)
    ref = _per_feature(reference, X_raw.shape[1], "reference")
    target = (X_raw - ref) * truth.gradient(X_raw)
    return float(np.mean(np.abs(np.asarray(attribution, dtype=np.float64) - target)))


def coefficient_error(coef: np.ndarray, truth: Any, *, scale: float | np.ndarray = 1.0) -> float:
    """Mean |β̂_raw − β_true| of global coefficients (NIMO's ``coef_``, model units in).

    β_true is the truth's ``coefficients``: ∇f at x = 0, the mean marginal effect (NIMO paper).
    """
    coef = np.asarray(coef, dtype=np.float64).reshape(-1)
    return float(
        np.mean(np.abs(coef / _per_feature(scale, len(coef), "scale") - truth.coefficients))
    )


def marginal_effect_at_origin(
    output: OutputFn,
    n_features: int,
    *,
    offset: float | np.ndarray = 0.0,
    scale: float | np.ndarray = 1.0,
    h: float = 1e-3,
) -> np.ndarray:
    """β̂ = ∂output/∂x_raw at x_raw = 0 by central differences (step ``h`` in raw units).

    Model-agnostic (any fitted model, its output read at 2d points), so Lasso, an MLP, NIMO and
    IMN are scored by the same rule against the true β = ∇f(0), the NIMO paper's mean marginal
    effect (docs/fidelity.md#errors-against-the-true-function-synthetic-tasks). For a linear
    model it is its coefficients; for NIMO, whose modulation vanishes at the origin, its β.
    Inputs in model units ``x_m = (x_raw − offset) / scale``.
    """
    steps = np.vstack([h * np.eye(n_features), -h * np.eye(n_features)])
    model_units = (steps - _per_feature(offset, n_features, "offset")) / _per_feature(
        scale, n_features, "scale"
    )
    out = np.asarray(output(model_units), dtype=np.float64).reshape(-1)
    return (out[:n_features] - out[n_features:]) / (2.0 * h)


def ground_truth_errors(
    truth: Any,
    X_raw: Any,
    *,
    slope: np.ndarray | None = None,
    intercept: np.ndarray | None = None,
    attribution: np.ndarray | None = None,
    coef: np.ndarray | None = None,
    offset: float | np.ndarray = 0.0,
    scale: float | np.ndarray = 1.0,
    reference: float | np.ndarray | None = None,
) -> dict[str, float]:
    """The ground-truth errors for whatever is given: ``gradient_mae`` (slope),
    ``intercept_mae`` (slope + intercept), ``attribution_mae`` (attribution, relative to
    ``reference`` raw; default ``offset``, the point where the model input is 0) and
    ``coef_mae`` (coef). Model units ``x_m = (x_raw − offset) / scale``.
    """
    out: dict[str, float] = {}
    if slope is not None:
        out["gradient_mae"] = gradient_error(slope, truth, X_raw, scale=scale)
        if intercept is not None:
            out["intercept_mae"] = intercept_error(
                slope, intercept, truth, X_raw, offset=offset, scale=scale
            )
    if attribution is not None:
        ref = offset if reference is None else reference
        out["attribution_mae"] = attribution_error(attribution, truth, X_raw, reference=ref)
    if coef is not None:
        out["coef_mae"] = coefficient_error(coef, truth, scale=scale)
    return out
