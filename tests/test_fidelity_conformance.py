"""Conformance of mesobench's fidelity metrics with captum and Quantus on identical draws.

Each test builds one tiny fixed-weight torch model (6 features, tanh MLP; a binary model with
one logit and a 3-class model whose explained output is the logit of ``target``), runs a
mesobench metric with a seed, reproduces mesobench's random draws from that seed with
``numpy.random.default_rng`` and hands exactly those draws to the peer implementation:

* captum (``infidelity``, ``sensitivity_max``) through its ``perturb_func``;
* Quantus, which draws from numpy's global legacy generator, by replaying the draws through a
  patched ``np.random.choice`` / ``np.random.uniform`` for the duration of one call.

Everything runs in float64 (Quantus turns arrays into tensors with ``torch.Tensor(x)``, i.e.
in torch's default dtype, so the tests switch that to float64 while they run). Agreement is
required to 1e-9: relative for positive quantities (Yeh infidelity, sensitivities), absolute
for correlations and for curve values (logits of order 1).

Quantus 0.6.0 on flat (n, F) tabular input: ``FaithfulnessCorrelation`` always raises
("'subset_size' must be smaller than input size. [k >= 1.0]": its size check looks at
``x.shape[2:]`` after the (n, F) check) and ``PixelFlipping`` accepts only
``features_in_step=1`` (same ``shape[2:]`` product). The tests therefore give Quantus the rows
as (n, 1, F) — one channel of a length-F series — and the model flattens its input.
Quantus has no insertion metric; the insertion curve is taken from ``PixelFlipping`` run from
the baseline point with a ``perturb_func`` that puts the point's own values back.

Draw conventions reproduced here (one chunk of points):
``yeh_infidelity``: ``rng.standard_normal((n, k, F))``; ``faithfulness_correlation``:
``rng.random((n, n_subsets, F))``, subset = the k smallest keys; ``max_sensitivity``:
``rng.uniform(-1, 1, (n, k, F)) * radius``.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import captum.metrics as captum_metrics  # the dev extra pins both: a missing one must fail
import numpy as np
import pytest
import quantus
import torch

from mesobench.metrics import fidelity

N_POINTS, N_FEATURES, N_HIDDEN = 5, 6, 8
TOL = 1e-9
CASES = ("binary", "multiclass")

# --------------------------------------------------------------------------------------------
# The shared model, points, baseline and attributions
# --------------------------------------------------------------------------------------------


class TinyMLP(torch.nn.Module):
    """A fixed-weight float64 tanh MLP; reads (m, F) or (m, 1, F) rows, returns (m, C) logits."""

    def __init__(self, n_out: int, seed: int) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.hidden = torch.nn.Linear(N_FEATURES, N_HIDDEN, dtype=torch.float64)
        self.out = torch.nn.Linear(N_HIDDEN, n_out, dtype=torch.float64)
        with torch.no_grad():
            self.hidden.weight.copy_(
                torch.from_numpy(0.8 * rng.standard_normal((N_HIDDEN, N_FEATURES)))
            )
            self.hidden.bias.copy_(torch.from_numpy(0.3 * rng.standard_normal(N_HIDDEN)))
            self.out.weight.copy_(torch.from_numpy(rng.standard_normal((n_out, N_HIDDEN))))
            self.out.bias.copy_(torch.from_numpy(0.2 * rng.standard_normal(n_out)))
        self.eval()

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x.reshape(x.shape[0], -1))))


class Case:
    """Model, points X (n, F), per-feature baseline, explained class per row, attribution."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.n_out = 1 if kind == "binary" else 3
        self.model = TinyMLP(self.n_out, seed=7 if kind == "binary" else 8)
        rng = np.random.default_rng(3)
        self.X = rng.standard_normal((N_POINTS, N_FEATURES))
        self.baseline = np.array([0.2, -0.1, 0.0, 0.3, -0.4, 0.1])
        # multiclass: a fixed class per row, not always the predicted one
        self.target = None if kind == "binary" else np.array([0, 2, 1, 1, 0])
        # a fixed attribution near gradient × input, without ties and nonzero everywhere
        self.attribution = self.explain(self.X, self.target) + 0.25 * rng.standard_normal(
            (N_POINTS, N_FEATURES)
        )

    # outputs -------------------------------------------------------------------------------
    def output_fn(self, Z: np.ndarray) -> np.ndarray:
        """mesobench's ``output_fn``: the logits, (m,) for the binary model."""
        with torch.no_grad():
            out = self.model(torch.from_numpy(np.ascontiguousarray(Z, dtype=np.float64)))
        out = out.numpy()
        return out[:, 0] if self.n_out == 1 else out

    def forward(self, inputs):
        """captum's ``forward_func``: (m,) for the binary model, (m, C) otherwise."""
        out = self.model(inputs)
        return out[:, 0] if self.n_out == 1 else out

    def explained(self, Z: np.ndarray, target: np.ndarray | None) -> np.ndarray:
        out = np.asarray(self.output_fn(Z)).reshape(len(Z), -1)
        return out[:, 0] if target is None else out[np.arange(len(Z)), target]

    def y_batch(self, target: np.ndarray | None = None) -> np.ndarray:
        """Quantus's labels: the output column explained (0 for the single logit)."""
        target = self.target if target is None else target
        return np.zeros(N_POINTS, dtype=np.int64) if target is None else np.asarray(target)

    # explanations ----------------------------------------------------------------------------
    def explain_torch(self, Z, target=None):
        """Gradient × (z − baseline) of the explained logit, as a torch function of Z (m, F)."""
        with torch.enable_grad():
            z = Z.detach().clone().requires_grad_(True)
            out = self.model(z)
            if self.n_out == 1:
                picked = out[:, 0]
            else:
                picked = out.gather(1, torch.as_tensor(target).reshape(-1, 1).long())[:, 0]
            (grad,) = torch.autograd.grad(picked.sum(), z)
        return ((z - torch.from_numpy(self.baseline)) * grad).detach()

    def captum_explain(self, inputs, target=None):
        """captum's ``explanation_func``: called with a 1-tuple at x (answered with a 1-tuple)
        and with a tensor at the perturbed points."""
        if isinstance(inputs, tuple):
            return (self.explain_torch(inputs[0], target),)
        return self.explain_torch(inputs, target)

    def explain(self, Z: np.ndarray, target: np.ndarray | None) -> np.ndarray:
        """mesobench's ``explain_fn(Z, target)``."""
        tgt = None if target is None else torch.from_numpy(np.asarray(target))
        return self.explain_torch(torch.from_numpy(np.asarray(Z, dtype=np.float64)), tgt).numpy()

    def quantus_explain(self, model, inputs, targets, **kwargs) -> np.ndarray:
        """Quantus's ``explain_func``: the same explanation for (m, 1, F) inputs."""
        Z = np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1)
        target = None if self.n_out == 1 else np.asarray(targets)
        return self.explain(Z, target).reshape(np.shape(inputs))


@pytest.fixture(autouse=True)
def float64_torch():
    """Quantus builds tensors with ``torch.Tensor(x)`` (the default dtype): make that float64."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture(params=CASES)
def case(request) -> Case:
    return Case(request.param)


def _agree(name: str, ours, theirs, *, rtol: float = 0.0, atol: float = 0.0) -> float:
    """Assert ``|ours − theirs| <= atol + rtol |theirs|`` elementwise; print the deviation."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f"{name}: shapes {ours.shape} vs {theirs.shape}"
    assert np.isfinite(ours).all() and np.isfinite(theirs).all(), f"{name}: {ours} vs {theirs}"
    dev = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
    rel = float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-300)))
    print(f"[conformance] {name}: max abs dev {dev:.3e}, max rel dev {rel:.3e}")
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=name)
    return dev


@contextmanager
def _replay(monkeypatch, name: str, draws: list[np.ndarray], check):
    """Replace ``np.random.<name>`` (numpy's global legacy generator, which Quantus draws from)
    by a function that checks its arguments with ``check`` and returns ``draws`` in order."""
    queue = list(draws)

    def fake(*args, **kwargs):
        check(*args, **kwargs)
        assert queue, f"Quantus drew np.random.{name} more often than expected"
        return queue.pop(0).copy()

    with monkeypatch.context() as patch:
        patch.setattr(np.random, name, fake)
        yield
    assert not queue, (
        f"Quantus drew np.random.{name} {len(draws) - len(queue)} of {len(draws)} times"
    )


@contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


# --------------------------------------------------------------------------------------------
# 1. Yeh et al. infidelity vs captum.metrics.infidelity (normalize=False)
# --------------------------------------------------------------------------------------------


def _captum_infidelity(case: Case, X, attribution, X_pert, k: int, ratio_cols: np.ndarray):
    """captum's per-point infidelity with a perturb_func returning mesobench's perturbed rows.

    The perturbation handed to captum is computed from those rows by captum's conventions:
    in the ``ratio_cols`` (F,) ``(x − x̃) / (x − baseline)``, 0 where x == baseline (an unmoved
    feature counts 0); elsewhere the absolute ``x − x̃``."""
    n, F = X.shape
    X_t, x_tilde = _t(X), _t(X_pert.reshape(n * k, F))
    ratio = torch.from_numpy(np.asarray(ratio_cols, dtype=bool))

    def perturb_func(inputs, baselines):
        assert torch.equal(inputs, torch.repeat_interleave(X_t, k, dim=0))
        gap = inputs - baselines
        safe = torch.where(gap == 0, torch.ones_like(gap), gap)
        relative = torch.where(gap == 0, torch.zeros_like(gap), (inputs - x_tilde) / safe)
        return torch.where(ratio, relative, inputs - x_tilde), x_tilde

    target = None if case.target is None else torch.from_numpy(case.target)
    return captum_metrics.infidelity(
        case.forward,
        perturb_func,
        X_t,
        _t(attribution),
        baselines=_t(np.broadcast_to(case.baseline, X.shape)),
        target=target,
        n_perturb_samples=k,
        normalize=False,
    ).numpy()


def _yeh_both(case: Case, X, perturbation: str, *, categorical=None, seed=11, k=16, sigma=0.3):
    """mesobench's Yeh infidelity, and captum's per point for φ and for φ = 0, on the same
    perturbed rows. ``categorical`` (F,): removal features, set to the baseline when their
    uniform draw (drawn after the Gaussian one) is below ``removal_probability`` = 0.4."""
    scale = np.array([1.0, 0.5, 2.0, 1.5, 0.8, 1.2])
    extra = {} if categorical is None else {"categorical": categorical, "removal_probability": 0.4}
    ours = fidelity.yeh_infidelity(
        case.attribution,
        case.output_fn,
        X,
        perturbation=perturbation,
        noise_std=sigma,
        n_perturbations=k,
        baseline=case.baseline,
        feature_scale=scale,
        target=case.target,
        rng=seed,
        **extra,
    )
    n, F = X.shape
    cat = np.zeros(F, dtype=bool) if categorical is None else np.asarray(categorical)
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((n, k, F)) * sigma
    removed = rng.random((n, k, F)) < 0.4 if cat.any() else np.zeros((n, k, F), dtype=bool)
    offset = (X - case.baseline)[:, None, :]
    if perturbation == "relative":
        shift = offset * np.where(cat, removed.astype(np.float64), eps)
        ratio_cols = np.ones(F, dtype=bool)
    else:
        shift = np.where(cat, offset * removed, eps * scale)
        ratio_cols = cat
    X_pert = X[:, None, :] - shift
    per_point = _captum_infidelity(case, X, case.attribution, X_pert, k, ratio_cols)
    zero = _captum_infidelity(case, X, np.zeros_like(X), X_pert, k, ratio_cols)
    return ours, per_point, zero


def _with_unmoved(case: Case) -> np.ndarray:
    """The points with feature 2 of point 1 and feature 0 of point 3 exactly at the baseline."""
    X = case.X.copy()
    X[1, 2] = case.baseline[2]
    X[3, 0] = case.baseline[0]
    assert case.attribution[1, 2] != 0 and case.attribution[3, 0] != 0
    return X


@pytest.mark.parametrize("perturbation", ["relative", "absolute"])
def test_yeh_infidelity_matches_captum(case: Case, perturbation: str):
    """No feature at its baseline: mesobench = captum(φ).mean(); the scaled variant is
    captum(φ).mean() / captum(0).mean() (the all-zero attribution scores E[Δ²])."""
    assert np.all(case.X - case.baseline != 0)
    ours, per_point, zero = _yeh_both(case, case.X, perturbation)
    _agree(f"yeh {perturbation} {case.kind}", ours["infidelity"], per_point.mean(), rtol=TOL)
    _agree(
        f"yeh scaled {perturbation} {case.kind}",
        ours["scaled_infidelity"],
        per_point.mean() / zero.mean(),
        rtol=TOL,
    )


@pytest.mark.parametrize("perturbation", ["relative", "absolute"])
def test_yeh_unmoved_feature_counts_zero(case: Case, perturbation: str):
    """Points with a feature exactly at its baseline (and a nonzero attribution there): in the
    relative convention that feature does not move, so its attribution must not enter Iᵀφ —
    captum's perturbation ``(x − x̃)/(x − baseline)`` is 0 there. (The absolute perturbation
    is unaffected and is checked here on the same points.)"""
    ours, per_point, zero = _yeh_both(case, _with_unmoved(case), perturbation)
    _agree(
        f"yeh unmoved {perturbation} {case.kind}", ours["infidelity"], per_point.mean(), rtol=TOL
    )
    _agree(
        f"yeh unmoved scaled {perturbation} {case.kind}",
        ours["scaled_infidelity"],
        per_point.mean() / zero.mean(),
        rtol=TOL,
    )


@pytest.mark.parametrize("perturbation", ["relative", "absolute"])
def test_yeh_categorical_removal_matches_captum(case: Case, perturbation: str):
    """Categorical features (2 and 5) are removed — set to their baseline — or kept, so their
    captum perturbation ``(x − x̃)/(x − baseline)`` is 1 or 0 in either mode (0 also for the
    categorical feature of point 1, which sits at its baseline); the numeric ones follow the
    mode (mesobench's ``categorical`` / ``removal_probability`` arguments)."""
    categorical = np.array([False, False, True, False, False, True])
    ours, per_point, zero = _yeh_both(
        case, _with_unmoved(case), perturbation, categorical=categorical
    )
    _agree(
        f"yeh categorical {perturbation} {case.kind}",
        ours["infidelity"],
        per_point.mean(),
        rtol=TOL,
    )
    _agree(
        f"yeh categorical scaled {perturbation} {case.kind}",
        ours["scaled_infidelity"],
        per_point.mean() / zero.mean(),
        rtol=TOL,
    )


# --------------------------------------------------------------------------------------------
# 2. Max / average sensitivity vs captum.metrics.sensitivity_max and Quantus
# --------------------------------------------------------------------------------------------

SENS_SEED, SENS_K, SENS_RADIUS = 5, 12, 0.2


def _sensitivity_noise() -> np.ndarray:
    """mesobench's draw: uniform in the L∞ ball of radius r, (n, k, F)."""
    rng = np.random.default_rng(SENS_SEED)
    return rng.uniform(-1.0, 1.0, size=(N_POINTS, SENS_K, N_FEATURES)) * SENS_RADIUS


def _ours_sensitivity(case: Case) -> dict[str, float]:
    return fidelity.max_sensitivity(
        case.explain,
        case.X,
        radius=SENS_RADIUS,
        n_perturbations=SENS_K,
        target=case.target,
        rng=SENS_SEED,
    )


def test_max_sensitivity_matches_captum(case: Case):
    ours = _ours_sensitivity(case)
    noise = _sensitivity_noise()
    X_t = _t(case.X)

    def perturb_func(inputs, radius):
        assert radius == SENS_RADIUS
        assert torch.equal(inputs, torch.repeat_interleave(X_t, SENS_K, dim=0))
        return inputs + _t(noise.reshape(-1, N_FEATURES))

    kwargs = {} if case.target is None else {"target": torch.from_numpy(case.target)}
    theirs = captum_metrics.sensitivity_max(
        case.captum_explain,
        X_t,
        perturb_func=perturb_func,
        perturb_radius=SENS_RADIUS,
        n_perturb_samples=SENS_K,
        **kwargs,
    ).numpy()
    assert ours["n_zero"] == 0
    _agree(
        f"max_sensitivity vs captum {case.kind}", ours["max_sensitivity"], theirs.mean(), rtol=TOL
    )


@pytest.mark.parametrize("metric", ["MaxSensitivity", "AvgSensitivity"])
def test_sensitivity_matches_quantus(case: Case, metric: str, monkeypatch):
    """Quantus draws ``np.random.uniform(-r, r, (n, F))`` once per sample: replay mesobench's."""
    ours = _ours_sensitivity(case)
    noise = _sensitivity_noise()

    def check(low, high, size):
        assert (low, high, tuple(size)) == (-SENS_RADIUS, SENS_RADIUS, (N_POINTS, N_FEATURES))

    draws = [noise[:, s, :] for s in range(SENS_K)]
    scorer = getattr(quantus, metric)(
        nr_samples=SENS_K,
        lower_bound=SENS_RADIUS,
        normalise=False,
        abs=False,
        return_aggregate=False,
        disable_warnings=True,
    )
    X3 = case.X[:, None, :]
    a3 = case.explain(case.X, case.target)[:, None, :]
    with _quiet(), _replay(monkeypatch, "uniform", draws, check):
        scores = scorer(
            model=case.model,
            x_batch=X3,
            y_batch=case.y_batch(),
            a_batch=a3,
            explain_func=case.quantus_explain,
            channel_first=True,
            softmax=False,
            device="cpu",
        )
    key = "max_sensitivity" if metric == "MaxSensitivity" else "avg_sensitivity"
    _agree(f"{key} vs Quantus {case.kind}", ours[key], np.mean(scores), rtol=TOL)


# --------------------------------------------------------------------------------------------
# 3. Faithfulness correlation vs quantus.FaithfulnessCorrelation
# --------------------------------------------------------------------------------------------

FAITH_BASELINE, FAITH_K = 0.3, 20


def _quantus_faithfulness(case: Case, chosen: np.ndarray, subset_size: int, monkeypatch):
    """Quantus's per-point correlations with its subsets replayed from ``chosen`` (n, K, k):
    it draws ``np.random.choice(F, k, replace=False)`` per run (outer) and point (inner)."""
    n, K, _ = chosen.shape

    def check(a, size=None, replace=True, p=None):
        assert (a, size, replace, p) == (N_FEATURES, subset_size, False, None)

    draws = [chosen[i, r] for r in range(K) for i in range(n)]
    scorer = quantus.FaithfulnessCorrelation(
        nr_runs=K,
        subset_size=subset_size,
        perturb_baseline=FAITH_BASELINE,
        normalise=False,
        abs=False,
        return_aggregate=False,
        disable_warnings=True,
    )
    with _quiet(), _replay(monkeypatch, "choice", draws, check):
        scores = scorer(
            model=case.model,
            x_batch=case.X[:, None, :],
            y_batch=case.y_batch(),
            a_batch=case.attribution[:, None, :],
            channel_first=True,
            softmax=False,
            device="cpu",
        )
    return np.asarray(scores, dtype=np.float64)


def _subsets(seed: int, n: int, k: int) -> np.ndarray:
    """mesobench's subsets: the k smallest of ``rng.random((n, K, F))`` keys."""
    keys = np.random.default_rng(seed).random((n, FAITH_K, N_FEATURES))
    return np.argsort(keys, axis=2)[:, :, :k]


def _ours_faithfulness(case: Case, rows: slice, seed: int, subset_size: int):
    target = None if case.target is None else case.target[rows]
    return fidelity.faithfulness_correlation(
        case.attribution[rows],
        case.output_fn,
        case.X[rows],
        baseline=FAITH_BASELINE,
        subset_size=subset_size,
        n_subsets=FAITH_K,
        target=target,
        rng=seed,
    )


def test_faithfulness_correlation_matches_quantus(case: Case, monkeypatch):
    """Per point (mesobench on one row at a time, seeds 100 + i) and the mean over points (one
    call, seed 21); subset size 3 of 6 features, scalar baseline 0.3."""
    k = 3
    per_row = [_ours_faithfulness(case, slice(i, i + 1), 100 + i, k) for i in range(N_POINTS)]
    chosen = np.concatenate([_subsets(100 + i, 1, k) for i in range(N_POINTS)])
    theirs = _quantus_faithfulness(case, chosen, k, monkeypatch)
    ours = np.array([r["faithfulness_correlation"] for r in per_row])
    _agree(f"faithfulness per point {case.kind}", ours, theirs, atol=TOL)

    whole = _ours_faithfulness(case, slice(None), 21, k)
    theirs = _quantus_faithfulness(case, _subsets(21, N_POINTS, k), k, monkeypatch)
    assert whole["n_undefined"] == 0 and whole["subset_size"] == k
    _agree(
        f"faithfulness mean {case.kind}", whole["faithfulness_correlation"], theirs.mean(), atol=TOL
    )


def test_faithfulness_subset_size_leaves_one_feature(case: Case, monkeypatch):
    """subset_size ≥ the number of candidates uses F − 1 features (a subset of every feature
    would give the same mass every time); Quantus needs subset_size < F and gets F − 1.
    (mesobench's rule: k = min(subset_size, n_candidates − 1).)"""
    ours = _ours_faithfulness(case, slice(None), 22, N_FEATURES)
    k = N_FEATURES - 1
    theirs = _quantus_faithfulness(case, _subsets(22, N_POINTS, k), k, monkeypatch)
    assert ours["subset_size"] == k
    _agree(
        f"faithfulness k=F-1 {case.kind}", ours["faithfulness_correlation"], theirs.mean(), atol=TOL
    )


# --------------------------------------------------------------------------------------------
# 4. Deletion and insertion curves vs quantus.PixelFlipping
# --------------------------------------------------------------------------------------------

CURVE_BASELINE = 0.3


def _insert_values(arr, indices, *, source, **kwargs):
    """A Quantus ``perturb_func`` that puts the point's own values back at ``indices``."""
    out = np.array(arr, copy=True)
    rows = np.arange(out.shape[0])[:, None]
    out[rows, indices] = np.asarray(source).reshape(out.shape)[rows, indices]
    return out


def _quantus_curve(case: Case, n_steps: int, insert: bool) -> np.ndarray:
    """Quantus's (n, S) curve after each step: deletion = PixelFlipping with baseline
    replacement; insertion = PixelFlipping started at the baseline point, putting x back."""
    options = {}
    x_start = case.X
    if insert:
        options = {"perturb_func": _insert_values, "perturb_func_kwargs": {"source": case.X}}
        x_start = np.full_like(case.X, CURVE_BASELINE)
    scorer = quantus.PixelFlipping(
        features_in_step=N_FEATURES // n_steps,
        perturb_baseline=CURVE_BASELINE,
        normalise=False,
        abs=False,
        return_aggregate=False,
        return_auc_per_sample=False,
        disable_warnings=True,
        **options,
    )
    with _quiet():
        curve = scorer(
            model=case.model,
            x_batch=x_start[:, None, :],
            y_batch=case.y_batch(),
            a_batch=case.attribution[:, None, :],
            channel_first=True,
            softmax=False,
            device="cpu",
        )
    curve = np.asarray(curve, dtype=np.float64)
    assert curve.shape == (N_POINTS, n_steps)
    return curve


def _full_curve(case: Case, n_steps: int, insert: bool) -> np.ndarray:
    """Quantus's curve with its start c_0 (f(x) for deletion, f(baseline) for insertion)."""
    start = np.full_like(case.X, CURVE_BASELINE) if insert else case.X
    c0 = case.explained(start, case.target)
    return np.column_stack([c0, _quantus_curve(case, n_steps, insert)])


def _score(curve: np.ndarray) -> float:
    """mesobench's normalised area: mean(trapezoid area − chord area) / mean |c_0 − c_S|."""
    t = np.linspace(0.0, 1.0, curve.shape[1])
    area = np.sum((curve[:, 1:] + curve[:, :-1]) * np.diff(t) / 2.0, axis=1)
    score = area - (curve[:, 0] + curve[:, -1]) / 2.0
    return float(score.mean() / np.abs(curve[:, 0] - curve[:, -1]).mean())


@pytest.mark.parametrize("n_steps", [6, 3, 2])
@pytest.mark.parametrize("insert", [False, True], ids=["deletion", "insertion"])
def test_ordered_curve_scores_match_quantus_curves(case: Case, insert: bool, n_steps: int):
    """deletion_auc / insertion_auc (public today) = the normalised area of Quantus's curve."""
    assert len(np.unique(case.attribution, axis=None)) == case.attribution.size  # no ties
    func = fidelity.insertion_auc if insert else fidelity.deletion_auc
    name = "insertion_auc" if insert else "deletion_auc"
    ours = func(
        case.attribution,
        case.output_fn,
        case.X,
        baseline=CURVE_BASELINE,
        n_steps=n_steps,
        target=case.target,
    )
    assert ours["n_steps"] == n_steps
    _agree(
        f"{name} S={n_steps} {case.kind}",
        ours[name],
        _score(_full_curve(case, n_steps, insert)),
        atol=TOL,
    )


@pytest.mark.parametrize("n_steps", [6, 3, 2])
@pytest.mark.parametrize("insert", [False, True], ids=["deletion", "insertion"])
def test_ordered_curves_match_quantus_step_by_step(case: Case, insert: bool, n_steps: int):
    """``fidelity.ordered_curves``: t = removed fraction, curves (n, S+1) of the
    explained output, c_0 = f(x) (deletion) or f(baseline) (insertion), then Quantus's steps."""
    t, curves = fidelity.ordered_curves(
        case.attribution,
        case.output_fn,
        case.X,
        insert=insert,
        baseline=CURVE_BASELINE,
        n_steps=n_steps,
        target=case.target,
        rng=0,
    )
    np.testing.assert_allclose(np.asarray(t), np.arange(n_steps + 1) / n_steps, rtol=0, atol=1e-15)
    kind = "insertion" if insert else "deletion"
    _agree(
        f"{kind} curve S={n_steps} {case.kind}",
        curves,
        _full_curve(case, n_steps, insert),
        atol=TOL,
    )
