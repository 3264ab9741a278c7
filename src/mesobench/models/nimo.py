r"""NIMO — Nonlinear Interpretable MOdel (the NIMO paper, ICLR 2026, arXiv 2506.05059).

A linear model whose every feature is modulated by a shared neural network of the *other*
features:

.. math::
    f(x) = \beta_0 + \sum_j x_j\, \beta_j\, \bigl(1 + g_j(x_{-j})\bigr),
    \qquad g_j(x_{-j}) = s\,a\,\bigl[\tanh \mathrm{net}(x_{-j}, j) - \tanh \mathrm{net}(0, j)\bigr]

* ``net`` is one network for all j. Its input for feature j is x with x_j set to 0 and the
  positional code of j (binary code of j, 1-based, ⌊log2 d⌋ + 1 bits mapped to ±0.5):
  ``z1 = tanh(fc1([x_{-j}, code_j]) + σ_n·ε)`` (noise ε ~ N(0, 1) in training only),
  ``z2 = sin(2π·fc2([z1, code_j]))``, ``net = fc3([z2, z1, code_j])``.
* Subtracting the zero point makes ``g_j(0) = 0`` exactly, so ``β_j = ∂f/∂x_j`` at x = 0: the
  mean marginal effect (MEM) when the features have mean 0.
* Bounded output with a learnable scale ``s = ½(1 + tanh α)``, α initialised at 2; ``a = 1``
  for regression (g ∈ s·(−2, 2) as a difference of tanh's) and ``a = 2`` for classification
  (the paper's ``2·tanh(·) + 1`` before the zero-point subtraction; the +1 cancels).
* Eight constructor parameters switch one detail each to the form of NIMO-DLM, the first
  author's later code (``first_layer_scale``, ``bound``, ``sine_dropout``, ``scale_param``,
  ``alpha_init``, ``output_init``, ``ridge_in_loss``, ``beta_refit``); their defaults are the
  form described here (docs/models.md#where-each-detail-comes-from).

All d per-feature network calls are one batched computation on a (rows, d, hidden) tensor: the
masked first layer is ``W1·x − x_j·W1[:, j] + W1_code·code_j + b1``, so the (rows·d, d + bits)
input is never built, and the code parts of fc1–fc3 are computed once per step.

**Parameter elimination.** With the design matrix ``B_u[i, j] = x_ij (1 + g_j(x_{i,−j}))``, β
has a closed form for fixed network weights u; it is recomputed inside every training step and
the gradient flows through the solve (``torch.linalg.solve``, float64). Adaptive ridge
(Grandvalet 1998): ``β = c ⊙ γ`` with learnable scales c and, on a batch of m rows,

.. math::
    \hat\gamma = \arg\min_\gamma \tfrac{1}{m} \textstyle\sum_i w_i (q_i - Z_i \gamma)^2
                 + \lambda \lVert \gamma_{1:} \rVert^2,
    \qquad Z = [1, B_u D_{|c|}]

(intercept column unpenalised, λ = ``ridge`` in per-row units, so a batch and the whole training
set solve the same objective). Regression: w = 1, q = y (standardised). Classification: one
IRLS step per batch warm-started from the previous β (kept on the module as the buffer
``beta``): ``η = β_0 + B_u β_prev``, ``π = clip(σ(η))``, ``w = π(1 − π)``,
``q = η + (y − π)/w`` — a Newton step of the ridge-penalised log-likelihood. Loss:

.. math::
    L = \ell(\beta_0 + B_u \hat\beta, y) + \mu \textstyle\sum_j (c_j^2)^{\delta}
        + \lambda_g \textstyle\sum_j \lVert W_1[:, j] \rVert_2

with ℓ the MSE (regression, standardised target), BCE (binary) or cross-entropy (multiclass).
Minimising ``λβ²/c² + μ c^{2δ}`` over c gives ``|β|`` for δ = 1 (Lasso) and ``|β|^{2/3}`` for
δ = ½. The group penalty runs over fc1's input-feature columns (not the code bits): a column
driven to 0 means feature j takes part in no interaction; ``interaction_strength_`` holds
the column norms.

**Multiclass** (not in the NIMO paper, ICLR 2026, arXiv 2506.05059; our extension): a
multinomial logit. fc3 has one output per class, so each class has its own modulation
``g_{jc}``, its own β_c and c_c, and ``logit_c = β_{0c} + Σ_j x_j β_{jc}(1 + g_{jc}(x_{−j}))``;
the loss is the softmax cross-entropy. β is updated by one *block-diagonal* IRLS step per
batch: the multinomial Newton step with the cross-class Hessian blocks dropped, i.e. per class
the binary formula above with ``π_c`` the softmax probability (C independent (d+1)×(d+1)
solves instead of one C(d+1)×C(d+1) solve). Why: the shared body keeps the cost of C classes
near that of one, the softmax gives calibrated probabilities that sum to 1 without one-vs-rest
renormalisation, and the block step costs C·d³ instead of C³·d³, so it runs on every CC18 task.

**β at inference.** After training (and after early stopping restored the best epoch), β is
recomputed in closed form on the whole training set with the final network in eval mode (noise
off): regression exactly, classification by IRLS iterated to convergence from the warm start,
with step halving so the penalised objective never increases. Beyond ``_REFIT_MAX_ELEMENTS``
entries of B_u the refit uses a seeded random subset of the training rows.

**Centring.** The estimator does not centre X: β is ∂f/∂x at x = 0 *in the units given*. The
benchmark's "neural" preprocessing standardises numeric features, so 0 is the training mean
there and β is the MEM; on raw data, centre the features first if you want that reading.
Explanations are always in the units of the ``X`` given and satisfy the identity exactly.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, fields

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from mesobench.config.expect import BOOLEAN, integer, number, one_of
from mesobench.models.explanation import Explanation
from mesobench.models.params import store_init_params
from mesobench.models.persistence import TorchPersistable
from mesobench.models.torch_estimator import TorchClassifier, TorchEstimator, TorchRegressor
from mesobench.models.training import full_precision, to_tensor, torch_threads

_TWO_PI = 2.0 * math.pi
_PAIRS_PER_CHUNK = 1 << 17
"""(row, feature) pairs per network chunk: bounds the (rows, d, hidden) activations.

In training the chunks are gradient-checkpointed, so activation memory stays ~0.5 GB whatever
the batch size and d; at inference rows are processed in chunks of this many pairs.
"""
_REFIT_MAX_ELEMENTS = 1 << 27
"""Largest B_u (rows × d × outputs, float32: 512 MiB) held for the final β refit."""
RIDGE_UNITS = ("per_row", "per_batch")
"""Units of ``ridge``: per training row (batch-size free) or per batch (the reference)."""
_PROB_CLIP = 5e-4  # π is clipped to [ε, 1 − ε] in IRLS (reference: 0.999·σ + 0.0005)
_C_INIT = 1.0  # initial adaptive-ridge scales c (scale_param="abs")
_SOFTPLUS_C_INIT = (0.5, 0.1)  # mean, sd of the raw c under scale_param="softplus" (NIMO-DLM)
_MIN_SCALE = 1e-6  # scales below this count as this in 1 / c (the penalised IRLS objective)
BOUNDS = ("difference", "centred")
"""How g is bounded: ``s·a·(tanh net(x) − tanh net(0))`` or ``s·a·tanh(net(x) − net(0))``."""
SCALE_PARAMS = ("abs", "softplus")
"""How the learnable c gives the adaptive-ridge scales: ``|c|`` or ``softplus(c)``."""
BETA_REFITS = ("last_step", "epoch")
"""The β the validation score uses: the last training step's, or a re-solve on all training rows."""
OUTPUT_INITS = ("zero", "default")
"""fc3's initial weight: zero (g ≡ 0 at the start) or PyTorch's default."""


@dataclass(frozen=True)
class NetworkForm:
    """The network's details that NIMO-DLM has otherwise, as the estimators' parameters of these
    names (:class:`NIMORegressor`); the defaults are mesobench's form."""

    output_init: str = "zero"
    alpha_init: float = 2.0
    scale_param: str = "abs"
    first_layer_scale: float = 1.0
    sine_dropout: float = 0.0
    bound: str = "difference"


def positional_codes(n_features: int) -> Tensor:
    """Binary codes of j = 1..d, ⌊log2 d⌋ + 1 bits (most significant first), mapped to ±0.5."""
    n_bits = int(math.floor(math.log2(n_features))) + 1
    j = torch.arange(1, n_features + 1)
    shifts = torch.arange(n_bits - 1, -1, -1)
    return ((j[:, None] >> shifts[None, :]) & 1).float() - 0.5


def linear_predictor(B: Tensor, beta: Tensor) -> Tensor:
    """``β_0 + B_u β`` per output: B (m, d, C), beta (C, d + 1) with the intercept first → (m, C)."""
    return torch.einsum("mjc,cj->mc", B, beta[:, 1:]) + beta[:, 0]


def ridge_solve(Z: Tensor, w: Tensor, rhs: Tensor, ridge: float) -> Tensor:
    """Solve ``(Zᵀ diag(w) Z / m + λ R) γ = rhs`` per output, in float64, differentiably.

    Z: (C, m, p) with column 0 the intercept; w: (C, m); rhs: (C, p), already divided by m.
    R = diag(0, 1, ..., 1): the intercept is unpenalised (it gets 1e-8·λ for safety only).
    Autocast is off inside and bfloat16 / float16 inputs are cast up to float32 first, so the
    Gram matrix is never formed in low precision (``precision="bf16"``); the result is float32
    (or float64 for float64 inputs).

    The system is symmetric positive definite (a weighted Gram matrix plus a ridge), so it is
    solved by Cholesky: half the flops of LU, and it avoids torch 2.13's batched CPU LU, which
    with more than one thread returns invalid pivots for p ≳ 600 ("Pivots given to lu_solve
    must all be greater or equal to 1": NIMO on the har shape, 561 features and 6 classes,
    failed on its first step with 2 threads and ran with 1). The Gram matrix is symmetrised
    first (float32 products leave it asymmetric in the 7th digit); a matrix that is not
    positive definite in floating point falls back to LU.
    """
    out_dtype = torch.promote_types(Z.dtype, torch.float32)
    with full_precision(Z.device.type):
        Z, w, rhs = Z.to(out_dtype), w.to(out_dtype), rhs.to(out_dtype)
        m, p = Z.shape[1], Z.shape[2]
        gram = (Z * w[:, :, None]).transpose(1, 2) @ Z / m
        penalty = torch.full((p,), float(ridge), dtype=torch.float64, device=Z.device)
        penalty[0] = 1e-8 * float(ridge)
        gram = gram.double()
        lhs = 0.5 * (gram + gram.transpose(1, 2)) + torch.diag(penalty)
        rhs = rhs.double()[:, :, None]
        factor, info = torch.linalg.cholesky_ex(lhs)
        if bool((info == 0).all()):
            gamma = torch.cholesky_solve(rhs, factor)
        else:  # not positive definite in floating point
            gamma = torch.linalg.solve(lhs, rhs)
        return gamma[:, :, 0].to(out_dtype)


def positive_scales(c: Tensor, scale_param: str = "abs") -> Tensor:
    """The adaptive-ridge scales from the learnable c: ``|c|`` or ``softplus(c)``."""
    return c.abs() if scale_param == "abs" else F.softplus(c)


def augmented_design(B: Tensor, c: Tensor, scale_param: str = "abs") -> Tensor:
    """``Z = [1, B_u D_s]`` per output, s the scales of c: B (m, d, C), c (C, d) → (C, m, d + 1)."""
    Bc = B.permute(2, 0, 1) * positive_scales(c, scale_param)[:, None, :]
    return torch.cat([torch.ones_like(Bc[:, :, :1]), Bc], dim=2)


def beta_from_gamma(gamma: Tensor, c: Tensor, scale_param: str = "abs") -> Tensor:
    """``β = [γ_0, s ⊙ γ_{1:}]``, s the scales of c: gamma (C, d + 1), c (C, d)."""
    return torch.cat([gamma[:, :1], positive_scales(c, scale_param) * gamma[:, 1:]], dim=1)


def ridge_term(beta: Tensor, c: Tensor, ridge: float, scale_param: str = "abs") -> Tensor:
    """``λ Σ_cj (β_cj / s_cj)²`` = λ‖γ_{1:}‖², the ridge of the β solve, for β (..., C, d + 1)."""
    inv_c = 1.0 / positive_scales(c, scale_param).clamp_min(_MIN_SCALE)
    return ridge * ((beta[..., 1:] * inv_c) ** 2).sum(dim=(-2, -1))


def _narrow_linear(x: Tensor, weight: Tensor) -> Tensor:
    """``F.linear(x, weight)`` for a layer with few outputs (C), computed as ``(W xᵀ)ᵀ``.

    Same values; the point is the backward. ``F.linear`` forms the weight gradient as
    ``xᵀ @ grad``, a (k, rows) × (rows, C) product that CPU BLAS runs several times slower
    than ``gradᵀ @ x``, which is what autograd computes for this form. For NIMO's output layer,
    (rows·d, 128) → C, forward plus backward take about half the time (C = 1 and C = 10).
    """
    flat = x.reshape(-1, x.shape[-1])
    return torch.mm(weight, flat.t()).t().reshape(*x.shape[:-1], weight.shape[0])


class NIMONetwork(nn.Module):
    r"""The shared modulation network g_u, the adaptive-ridge scales c and the current β.

    ``design(x)`` returns ``B_u = x ⊙ (1 + g(x))`` of shape (m, d, C) and ``logits(x)`` the
    output ``β_0 + B_u β`` with the stored β (buffer ``beta``, (C, d + 1), intercept first).

    Parameters
    ----------
    n_features : int
        d.
    n_outputs : int
        C: 1 for regression and binary classification, the number of classes otherwise.
    hidden_size, sine_size : int
        Widths of fc1 (tanh) and fc2 (sine).
    noise_std : float
        σ_n of the Gaussian noise added to fc1's pre-activation in training mode.
    amplitude : float
        a: 1 (regression) or 2 (classification), see the module docstring.
    form : NetworkForm
        The details NIMO-DLM has otherwise (fc3's and α's initialisation, the scales of c, the
        first layer's scale, dropout on the sine layer, the bound of g).
    """

    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        hidden_size: int = 64,
        sine_size: int = 128,
        noise_std: float = 0.2,
        amplitude: float = 1.0,
        form: NetworkForm = NetworkForm(),
    ) -> None:
        super().__init__()
        codes = positional_codes(n_features)
        self.n_features, self.n_outputs = n_features, n_outputs
        self.n_bits = codes.shape[1]
        self.noise_std, self.amplitude, self.form = float(noise_std), float(amplitude), form
        self.register_buffer("codes", codes)
        self.fc1 = nn.Linear(n_features + self.n_bits, hidden_size)
        self.fc2 = nn.Linear(hidden_size + self.n_bits, sine_size)
        self.fc3 = nn.Linear(sine_size + hidden_size + self.n_bits, n_outputs)
        if form.output_init == "zero":
            nn.init.zeros_(self.fc3.weight)  # g ≡ 0 at the start: NIMO starts as the linear model
        self.alpha = nn.Parameter(torch.tensor(float(form.alpha_init)))
        self.c = nn.Parameter(self._initial_c(n_outputs, n_features))
        self.register_buffer("beta", torch.zeros(n_outputs, n_features + 1))

    def _initial_c(self, n_outputs: int, n_features: int) -> Tensor:
        """c = 1 (|c| = 1), or raw c ~ N(0.5, 0.1²) under softplus (NIMO-DLM: softplus ≈ 0.97)."""
        if self.form.scale_param == "abs":
            return torch.full((n_outputs, n_features), _C_INIT)
        return torch.empty(n_outputs, n_features).normal_(*_SOFTPLUS_C_INIT)

    @property
    def scale(self) -> Tensor:
        """s = ½(1 + tanh α) ∈ (0, 1)."""
        return 0.5 * (1.0 + torch.tanh(self.alpha))

    def feature_columns(self) -> Tensor:
        """fc1's input-feature columns W1[:, :d] (the code bits excluded), shape (hidden, d)."""
        return self.fc1.weight[:, : self.n_features]

    def _code_terms(self) -> tuple[Tensor, Tensor, Tensor]:
        """The code_j parts of fc1, fc2, fc3 (with their biases), one row per feature j."""
        d, h, s = self.n_features, self.fc1.out_features, self.fc2.out_features
        t1 = F.linear(self.codes, self.fc1.weight[:, d:], self.fc1.bias)  # (d, h)
        t2 = F.linear(self.codes, self.fc2.weight[:, h:], self.fc2.bias)  # (d, s)
        t3 = F.linear(self.codes, self.fc3.weight[:, s + h :], self.fc3.bias)  # (d, C)
        return t1, t2, t3

    def _net(self, pre1: Tensor, t2: Tensor, t3: Tensor) -> Tensor:
        """net (before the bound) from fc1's pre-activation (..., d, h): the layers above fc1."""
        h, s = self.fc1.out_features, self.fc2.out_features
        if self.training and self.noise_std > 0:  # one fused pass over the (..., d, h) tensor
            pre1 = torch.add(pre1, torch.randn_like(pre1), alpha=self.noise_std)
        if self.form.first_layer_scale != 1.0:
            pre1 = pre1 * self.form.first_layer_scale
        z1 = torch.tanh(pre1)  # (..., d, h)
        # sin(2π(W2 z1 + t2)) with 2π folded into the small weight and code term: one pass less
        # over the largest tensor, (..., d, s), forward and backward
        z2 = torch.sin(F.linear(z1, _TWO_PI * self.fc2.weight[:, :h]) + _TWO_PI * t2)
        if self.training and self.form.sine_dropout > 0:
            z2 = F.dropout(z2, self.form.sine_dropout)
        out = _narrow_linear(z2, self.fc3.weight[:, :s]) + _narrow_linear(
            z1, self.fc3.weight[:, s : s + h]
        )
        return out + t3  # (..., d, C)

    def _zero_point(self, net0: Tensor) -> Tensor:
        """What :meth:`_bounded` subtracts: tanh net(0, j) (``"difference"``) or net(0, j)."""
        return torch.tanh(net0) if self.form.bound == "difference" else net0

    def _bounded(self, net: Tensor, zero: Tensor) -> Tensor:
        """``tanh net − tanh net0`` ∈ (−2, 2) (``"difference"``) or ``tanh(net − net0)`` ∈ (−1, 1)."""
        if self.form.bound == "difference":
            return torch.tanh(net) - zero
        return torch.tanh(net - zero)

    def _modulation(self, x: Tensor, t1: Tensor, t2: Tensor, t3: Tensor, zero: Tensor) -> Tensor:
        """g for rows x (m, d), shape (m, d, C): fc1 on x with x_j zeroed, for all j at once."""
        W1x = self.feature_columns()  # (h, d)
        # W1 x − x_j W1[:, j] + t1_j for every j: one broadcast add and one fused multiply-add
        base = (x @ W1x.T)[:, None, :] + t1  # (m, d, h)
        pre1 = torch.addcmul(base, x[:, :, None], W1x.T[None, :, :], value=-1.0)
        return self.amplitude * self.scale * self._bounded(self._net(pre1, t2, t3), zero)

    def _design_rows(self, x: Tensor, t1: Tensor, t2: Tensor, t3: Tensor, zero: Tensor) -> Tensor:
        return x[:, :, None] * (1.0 + self._modulation(x, t1, t2, t3, zero))

    def _chunked(self, fn, x: Tensor) -> Tensor:
        """``fn(rows, *code terms)`` over row chunks; chunks are checkpointed under autograd."""
        t1, t2, t3 = self._code_terms()
        zero = self._zero_point(self._net(t1, t2, t3))  # from net(0, j), (d, C)
        rows = max(1, _PAIRS_PER_CHUNK // self.n_features)
        if x.shape[0] <= rows:
            return fn(x, t1, t2, t3, zero)
        parts = []
        for start in range(0, x.shape[0], rows):
            xb = x[start : start + rows]
            if torch.is_grad_enabled():
                parts.append(checkpoint(fn, xb, t1, t2, t3, zero, use_reentrant=False))
            else:
                parts.append(fn(xb, t1, t2, t3, zero))
        return torch.cat(parts)

    def modulation(self, x: Tensor) -> Tensor:
        """g_j(x_{−j}) for rows x (m, d), shape (m, d, C); g(0) = 0 exactly in eval mode."""
        return self._chunked(self._modulation, x)

    def design(self, x: Tensor) -> Tensor:
        """B_u(x) = x ⊙ (1 + g(x)), shape (m, d, C)."""
        return self._chunked(self._design_rows, x)

    def logits(self, x: Tensor) -> Tensor:
        """``β_0 + B_u β`` with the stored β, shape (m, C)."""
        return linear_predictor(self.design(x), self.beta)

    def scales(self) -> Tensor:
        """The adaptive-ridge scales s (|c| or softplus(c)), shape (C, d)."""
        return positive_scales(self.c, self.form.scale_param)

    def penalty(self, sparsity: float, delta: float, group_penalty: float) -> Tensor:
        """``μ Σ (s²)^δ + λ_g Σ_j ‖W1[:, j]‖₂`` (smoothed by 1e-12 at 0), s the scales of c."""
        squared = self.c**2 if self.form.scale_param == "abs" else self.scales() ** 2
        c_term = ((squared + 1e-12) ** delta).sum()
        group = torch.sqrt((self.feature_columns() ** 2).sum(dim=0) + 1e-12).sum()
        return sparsity * c_term + group_penalty * group


_COMMON_DOC = """
    Parameters
    ----------
    hidden_size : int, default 64
        Width of fc1 (tanh layer, noise injection), as the reference.
    sine_size : int, default 128
        Width of fc2 (SIREN-style ``sin(2π·)`` layer), as the reference.
    ridge : float, default {ridge}
        λ of the closed-form β solve, per training row (the batch objective is a mean), on
        γ = β / c. The intercept is unpenalised.
    ridge_units : {{"per_row", "per_batch"}}, default "per_row"
        ``"per_row"``: λ per training row, so the solve's strength does not depend on the batch
        size (0.016 ≈ the reference's λ = 1 on a 64-row batch). ``"per_batch"``: the
        reference's ``X̃ᵀWX̃ + λI`` on each batch, i.e. λ / batch_size per row (with λ = 1 and
        batch 256 that is 4x less ridge than the default). Measured effect: results/nimo_audit.
    The zero point ``net(0, j)`` gets its own draw of the training noise, as in the reference
    code (independent noise for the rows and the zero point), so g(0) = 0 holds exactly only
    in eval mode.
    sparsity : float, default {sparsity}
        μ, weight of ``Σ_j (c_j²)^δ``, the adaptive-ridge penalty on the scales c.
    delta : float, default 0.5
        δ: 1 behaves like the Lasso, 0.5 like ``|β|^{{2/3}}`` (sub-L1, the reference default).
    group_penalty : float, default {group_penalty}
        λ_g, weight of ``Σ_j ‖W1[:, j]‖₂`` over fc1's input-feature columns.
    noise_std : float, default 0.2
        Standard deviation of the Gaussian noise on fc1's pre-activation, training only.

    The next eight switch one detail each from mesobench's form to that of NIMO-DLM, the
    first author's later code (docs/models.md#where-each-detail-comes-from); the defaults are
    mesobench's.

    first_layer_scale : float, default {first_layer_scale}
        k in fc1's activation ``z1 = tanh(k·(fc1(·) + σ_n ε))``; NIMO-DLM: 0.3 ("near linear at
        init"). It rescales fc1's weights, so λ_g acts 1/k times as strongly on the function.
    bound : {{"difference", "centred"}}, default "difference"
        ``"difference"``: ``g = s·a·(tanh net(x_{{−j}}, j) − tanh net(0, j))`` ∈ s·a·(−2, 2), the
        bound before the zero point. ``"centred"`` (NIMO-DLM): ``g = s·a·tanh(net(x_{{−j}}, j) −
        net(0, j))`` ∈ s·a·(−1, 1). Both give g(0) = 0.
    sine_dropout : float, default {sine_dropout}
        Dropout probability on the sine layer's output, training only, the zero point's pass
        included (NIMO-DLM: 0.1).
    scale_param : {{"abs", "softplus"}}, default "abs"
        The adaptive-ridge scales s_j from the learnable c: ``|c|`` with c = 1 at the start, or
        ``softplus(c)`` with raw c ~ N(0.5, 0.1²) (NIMO-DLM; softplus(0.5) ≈ 0.97). β = s ⊙ γ,
        and ``sparsity`` weighs ``Σ_j (s_j²)^δ``.
    alpha_init : float, default {alpha_init}
        Initial α of the modulation scale ``s = ½(1 + tanh α)``: 2 gives 0.982; NIMO-DLM: 4
        (0.9993).
    output_init : {{"zero", "default"}}, default "zero"
        fc3's initial weight: zero, so g ≡ 0 and NIMO starts as the linear model, or PyTorch's
        default initialisation (NIMO-DLM).
    ridge_in_loss : bool, default False
        True: the loss also holds the solve's ridge ``λ Σ_j (β_j / s_j)²`` (= λ‖γ_{{1:}}‖²), so it
        is the objective the closed-form β minimises (NIMO-DLM's λΣγ² term). False: the ridge
        acts inside the solve only.
    beta_refit : {{"last_step", "epoch"}}, default "last_step"
        The β the validation score sees (and the next epoch's IRLS warm start): the last
        training step's solve, or (``"epoch"``, NIMO-DLM's ``recompute_gamma``) β re-solved on
        all training rows with the network in eval mode after every epoch. After training, β
        is re-solved so in either case.

    epochs : int, default {epochs}
        Maximum number of epochs.
    lr : float, default {lr}
        Adam learning rate (the NIMO paper, ICLR 2026, arXiv 2506.05059: 1e-3 on the synthetic
        tasks, 5e-3 on real data).
    batch_size : int, default {batch_size}
        Rows per step. Raised to at least ``2·(d + 1)`` so the per-batch solve is
        over-determined, and cut to n (full batch) when larger.
    weight_decay : float, default 0.0
        Weight decay (0: plain Adam, as the paper; then both optimisers are the same update).
    optimizer : {{"adam", "adamw"}}, default "adam"
        Adam with L2 weight decay added to the gradient, or AdamW (decoupled decay).
    warmup_epochs : float, default 5
        Linear learning-rate warm-up.
    scheduler : {{"cosine_restarts", "constant"}}, default "cosine_restarts"
        Learning rate after warm-up (see :func:`mesobench.models.training.train`).
    early_stopping_patience : int or None, default {patience}
        With ``eval_set`` given to ``fit``: stop after this many epochs without a better
        validation score ({score}) and restore the best epoch. None: run all epochs.
    random_state : int, RandomState or None, default None
        Seeds initialisation, batch order and the training noise. With an int and
        ``device="cpu"`` two fits (same ``n_jobs``) give identical predictions.
    device : str, default "cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``
        (:func:`mesobench.models.device.resolve_device`).
    n_jobs : int or None, default None
        CPU threads for torch in ``fit``, ``predict*`` and ``explain``; None keeps torch's setting.
    precision : {{"fp32", "bf16"}}, default "fp32"
        Training arithmetic (:func:`mesobench.models.training.train`). ``"bf16"``: only the
        modulation network (fc1–fc3, the bulk of the compute) runs under bfloat16 autocast;
        B_u is cast up and the closed-form β solve (adaptive ridge / IRLS, autocast off,
        float32 inputs, float64 solve), the output ``β_0 + B_u β``, the loss and the penalties
        are float32, as are the weights, gradients and the Adam state. It mainly pays off on
        GPUs with bf16 tensor cores. Results differ from fp32 by rounding, and NIMO's training
        amplifies it: after many epochs a bf16 fit is about as far from the fp32 one as a fit
        with another seed (metrics within seed noise; measured on a small task). The final β
        refit, ``predict*``, ``explain`` and the early-stopping score always run in float32,
        uncompiled, so reported metrics and β are full precision. Every invalid parameter
        raises scikit-learn's ``InvalidParameterError`` (a ``ValueError``) at ``fit``, before
        any training.
    compile : bool, default False
        Compile the per-step loss (network, β solve, loss; forward and backward) with
        ``torch.compile``, see :func:`mesobench.models.training.train`. The first steps pay
        the compilation, so it suits long trainings on a GPU; a failing compilation raises (no
        silent fallback). Inference and the β refit are not compiled.
    verbose : bool, default False
        True: one INFO log line per epoch (logger ``mesobench.models.training``).

    Attributes
    ----------
    coef_ : ndarray
        β, the mean marginal effects ∂f/∂x_j at x = 0, in the units of X (and y): shape (F,)
        for regression and binary classification, (C, F) for multiclass.
    intercept_ : float or ndarray
        β_0 (the output at x = 0): a float, or shape (C,) for multiclass.
    interaction_strength_ : ndarray of shape (F,)
        ``‖W1[:, j]‖₂``, the norm of fc1's column of feature j: how much feature j enters the
        modulation of the other features. 0 means no interaction.
    module_ : NIMONetwork
        The trained network, holding the final β (buffer ``beta``, model units).
    device_ : str
        The resolved device.
    n_features_in_ : int
        Number of input features F.
    train_result_ : mesobench.models.training.TrainResult
        Epochs run, best epoch, loss and validation histories.
"""


class _NIMOBase(TorchEstimator):
    """Parameters, the training objective, the β refit and inference shared by both tasks.

    Subclasses set ``_amplitude`` and implement :meth:`_solve_beta` and :meth:`_refit_beta`; the
    task loss and ``n_outputs_`` come from
    :class:`~mesobench.models.torch_estimator.TorchClassifier` or
    :class:`~mesobench.models.torch_estimator.TorchRegressor`. Saved by
    :mod:`mesobench.models.persistence`: the network's ``state_dict`` (β included, as the buffer
    ``beta``) in ``weights.pt``; β, β_0 and the interaction strengths also as plain attributes in
    the manifest.
    """

    _amplitude = 1.0
    _input_dtype = np.float64
    _parameter_expectations = {
        **TorchEstimator._parameter_expectations,
        "hidden_size": integer(1),
        "sine_size": integer(1),
        "ridge": number(0),
        "ridge_units": one_of(RIDGE_UNITS),
        "sparsity": number(0),
        "delta": number(0, strict=True),
        "group_penalty": number(0),
        "noise_std": number(0),
        "first_layer_scale": number(0, strict=True),
        "bound": one_of(BOUNDS),
        "sine_dropout": number(0, maximum=1),
        "scale_param": one_of(SCALE_PARAMS),
        "alpha_init": number(None),
        "output_init": one_of(OUTPUT_INITS),
        "ridge_in_loss": BOOLEAN,
        "beta_refit": one_of(BETA_REFITS),
    }
    _persisted_attributes = (
        *TorchPersistable._persisted_attributes,
        "coef_",
        "intercept_",
        "interaction_strength_",
    )

    def __init__(
        self,
        hidden_size: int = 64,
        sine_size: int = 128,
        ridge: float = 0.016,
        ridge_units: str = "per_row",
        sparsity: float = 1e-3,
        delta: float = 0.5,
        group_penalty: float = 0.01,
        noise_std: float = 0.2,
        first_layer_scale: float = 1.0,
        bound: str = "difference",
        sine_dropout: float = 0.0,
        scale_param: str = "abs",
        alpha_init: float = 2.0,
        output_init: str = "zero",
        ridge_in_loss: bool = False,
        beta_refit: str = "last_step",
        epochs: int = 200,
        lr: float = 5e-3,
        batch_size: int = 256,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        warmup_epochs: float = 5,
        scheduler: str = "cosine_restarts",
        early_stopping_patience: int | None = 20,
        random_state=None,
        device: str = "cpu",
        n_jobs: int | None = None,
        precision: str = "fp32",
        compile: bool = False,
        verbose: bool = False,
    ) -> None:
        store_init_params(self, locals())

    # ---- the objective ------------------------------------------------------------------------

    def _loss(self, module: NIMONetwork, xb: Tensor, yb: Tensor) -> Tensor:
        """One step: B_u, the closed-form β through the solve, task loss + penalties.

        Under ``precision="bf16"`` only ``design`` (the network) runs in bfloat16: everything
        after it (β solve, output, loss) runs with autocast off on float32 B_u.
        """
        B = module.design(xb)
        with full_precision(B.device.type):
            B = B.float()
            beta = self._solve_beta(module, B, yb)
            with torch.no_grad():
                module.beta.copy_(beta)  # warm start of the next step, and β for validation
            out = linear_predictor(B, beta)
            penalty = module.penalty(self.sparsity, self.delta, self.group_penalty)
            if self.ridge_in_loss:  # the loss then holds the objective the solve minimises
                ridge = self._solve_ridge(B.shape[0])
                penalty = penalty + ridge_term(beta, module.c, ridge, self.scale_param)
            return self._task_loss(out, yb) + penalty

    def _solve_beta(self, module: NIMONetwork, B: Tensor, yb: Tensor) -> Tensor:
        raise NotImplementedError

    def _solve_ridge(self, rows: int) -> float:
        """λ per row for a solve on ``rows`` rows: the fit's ``ridge_per_row_``, before it ``rows``."""
        if hasattr(self, "ridge_per_row_"):
            return self.ridge_per_row_
        return self._ridge_per_row(rows)

    def _ridge_per_row(self, batch_rows: int) -> float:
        """λ in the per-row units of :func:`ridge_solve` for batches of ``batch_rows`` rows.

        ``ridge_units="per_row"``: ``ridge`` as given, so every batch and the final refit on
        all rows solve the same objective whatever the batch size. ``"per_batch"``: the
        reference's ``Zᵀ W Z + λ I`` on a batch of m rows, i.e. ``λ / m`` per row; its strength
        relative to the data therefore falls as the batch grows (the final refit keeps the
        training batches' per-row strength).
        """
        return float(self.ridge) if self.ridge_units == "per_row" else self.ridge / batch_rows

    def _refit_beta(self, B: Tensor, y: Tensor) -> None:
        raise NotImplementedError

    # ---- training -----------------------------------------------------------------------------

    def _batch_size(self, n_rows: int, n_features: int) -> int:
        """``batch_size``, raised to ``2·(d + 1)`` so each batch's β solve is over-determined.

        It also fixes the fit's ridge strength (``ridge_per_row_``), which depends on the rows
        per batch with ``ridge_units="per_batch"``; every solve from here on uses it.
        """
        batch_size = max(self.batch_size, 2 * (n_features + 1))
        self.ridge_per_row_ = self._ridge_per_row(min(batch_size, n_rows))
        return batch_size

    def _fit_network(self, X, target, val_score, settings, on_cycle_end=None):
        """Train, then refit β on the training rows (eval mode) and set the public attributes."""
        X_t, y_t, seed = super()._fit_network(X, target, val_score, settings, on_cycle_end)
        with torch_threads(self.n_jobs):
            self._refit_on_training_rows(X_t, y_t, seed)
        self._set_public_attributes()
        return X_t, y_t, seed

    def _refit_on_training_rows(self, X_t: Tensor, y_t: Tensor, seed: int) -> None:
        """β re-solved on the training rows (a seeded subset beyond ``_REFIT_MAX_ELEMENTS``)
        with the current network in eval mode: after training, and with ``beta_refit="epoch"``
        after every epoch."""
        self.module_.eval()
        rows = _refit_rows(X_t.shape[0], X_t.shape[1] * self.n_outputs_, seed)
        X_r, y_r = (X_t, y_t) if rows is None else (X_t[rows], y_t[rows])
        with torch.no_grad():
            self._refit_beta(self._design(X_r), y_r)

    def _epoch_score(self, val_score, X_t: Tensor, y_t: Tensor, seed: int):
        """``beta_refit="epoch"``: each validation score sees β re-solved on the training rows
        (without a validation score, nothing reads the per-epoch β: the fit's last refit counts)."""
        if self.beta_refit == "last_step" or val_score is None:
            return val_score

        def score(module: NIMONetwork) -> float:
            self._refit_on_training_rows(X_t, y_t, seed)
            return val_score(module)

        return score

    def _build_module(self, n_features: int) -> NIMONetwork:
        """The (untrained) network of these settings on ``device_``; fit and load build it here."""
        form = NetworkForm(**{f.name: getattr(self, f.name) for f in fields(NetworkForm)})
        return NIMONetwork(
            n_features,
            self.n_outputs_,
            self.hidden_size,
            self.sine_size,
            self.noise_std,
            self._amplitude,
            form,
        ).to(self.device_)

    def _design(self, X_t: Tensor) -> Tensor:
        """B_u of all rows in eval mode, without autograd (chunked inside ``design``)."""
        self.module_.eval()
        with torch.inference_mode():
            return self.module_.design(X_t)

    def _module_outputs(self, module: NIMONetwork, X: Tensor) -> Tensor:
        """``β_0 + B_u β`` with the stored β, in eval mode (the validation score)."""
        module.eval()
        with torch.inference_mode():
            return module.logits(X)

    def _set_public_attributes(self) -> None:
        beta = self.module_.beta.detach().double().cpu().numpy()  # (C, d + 1), model units
        coef, intercept = beta[:, 1:] * self._output_scale(), beta[:, 0] * self._output_scale()
        intercept = intercept + self._output_offset()
        if self.n_outputs_ == 1:
            self.coef_, self.intercept_ = coef[0], float(intercept[0])
        else:
            self.coef_, self.intercept_ = coef, intercept
        W1 = self.module_.feature_columns().detach().double().cpu()
        self.interaction_strength_ = torch.linalg.vector_norm(W1, dim=0).numpy()

    def _output_scale(self) -> float:
        return 1.0

    def _output_offset(self) -> float:
        return 0.0

    # ---- inference ----------------------------------------------------------------------------

    def _validated(self, X) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=np.float64)

    def _local_models(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(weights (n, F, C), intercept (n, C))`` in float64, in the units of X and y.

        ``weights_jc = β_jc (1 + g_jc(x_{−j}))``, ``intercept_c = β_0c``; the model output is
        ``(X * weights).sum(1) + intercept`` (computed from these in float64).
        """
        module = self.module_.eval()
        X_t = to_tensor(X, self.device_)
        with torch_threads(self.n_jobs), torch.inference_mode():
            g = module.modulation(X_t).double().cpu().numpy()
        beta = module.beta.detach().double().cpu().numpy() * self._output_scale()
        weights = beta[:, 1:].T[None, :, :] * (1.0 + g)
        intercept = np.broadcast_to(beta[:, 0] + self._output_offset(), (len(X), self.n_outputs_))
        return weights, intercept.copy()

    def _outputs(self, X: np.ndarray) -> np.ndarray:
        """Model outputs (n, C) from the local linear models, float64."""
        weights, intercept = self._local_models(X)
        return np.einsum("nf,nfc->nc", X, weights) + intercept

    def explain(self, X) -> Explanation:
        """Per-instance coefficients ``β_j(1 + g_j(x_{−j}))`` and intercept β_0, in X's units.

        Shapes (n, F) and (n,) for regression and binary classification, (n, F, C) and (n, C)
        for multiclass; ``Explanation.output(X)`` equals ``predict`` (regression) or
        ``decision_function`` (classification).
        """
        X = self._validated(X)
        weights, intercept = self._local_models(X)
        if self.n_outputs_ == 1:
            return Explanation(weights=weights[:, :, 0], intercept=intercept[:, 0])
        return Explanation(weights=weights, intercept=intercept)

    def describe(self) -> dict:
        """JSON-serialisable summary: β, β_0 and the interaction structure (fc1 column norms)."""
        check_is_fitted(self)
        strength = self.interaction_strength_
        top = float(strength.max()) if strength.size else 0.0
        out = {
            "model": type(self).__name__,
            "coef": np.asarray(self.coef_).tolist(),
            "intercept": np.asarray(self.intercept_).tolist(),
            "interaction_strength": strength.tolist(),
            "interaction_share": (strength / top if top > 0 else strength).tolist(),
            "feature_index": list(range(self.n_features_in_)),
            "modulation_scale": float(self.module_.scale.detach()),
            "epochs_run": self.train_result_.epochs_run,
            "best_epoch": self.train_result_.best_epoch,
        }
        if hasattr(self, "feature_names_in_"):
            out["feature_names"] = [str(name) for name in self.feature_names_in_]
        if hasattr(self, "classes_"):
            out["classes"] = [str(c) for c in self.classes_]
        return out


def _common_doc(score: str) -> str:
    """The shared parameter docs, with the defaults read from the signature so they cannot drift."""
    defaults = {
        name: param.default
        for name, param in inspect.signature(_NIMOBase.__init__).parameters.items()
    }
    return _COMMON_DOC.format(
        ridge=defaults["ridge"],
        sparsity=defaults["sparsity"],
        group_penalty=defaults["group_penalty"],
        first_layer_scale=defaults["first_layer_scale"],
        sine_dropout=defaults["sine_dropout"],
        alpha_init=defaults["alpha_init"],
        epochs=defaults["epochs"],
        lr=defaults["lr"],
        batch_size=defaults["batch_size"],
        patience=defaults["early_stopping_patience"],
        score=score,
    )


def _refit_rows(n: int, per_row: int, seed: int) -> Tensor | None:
    """Row subset for the β refit when B_u of all rows would exceed ``_REFIT_MAX_ELEMENTS``."""
    cap = max(1, _REFIT_MAX_ELEMENTS // max(per_row, 1))
    if n <= cap:
        return None
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)[:cap].sort().values


class NIMORegressor(TorchRegressor, _NIMOBase):
    __doc__ = """NIMO regressor: ``f(x) = β_0 + Σ_j x_j β_j (1 + g_j(x_{−j}))`` (the NIMO paper,
    ICLR 2026, arXiv 2506.05059).

    Trained with the MSE on the standardised target (y − mean) / std, undone at predict time
    (``coef_``, ``intercept_`` and ``explain`` are in y's units). β is the adaptive-ridge closed
    form, recomputed in every step with gradients through the solve.
    ``fit(X, y, eval_set=(X_val, y_val))`` early-stops on the validation −MSE.
""" + _common_doc(score="−MSE")

    def _solve_beta(self, module: NIMONetwork, B: Tensor, yb: Tensor) -> Tensor:
        Z = augmented_design(B, module.c, self.scale_param)  # (1, m, d + 1)
        rhs = (Z.transpose(1, 2) @ yb[None, :, None])[:, :, 0] / yb.shape[0]
        gamma = ridge_solve(Z, torch.ones_like(Z[:, :, 0]), rhs, self._solve_ridge(Z.shape[1]))
        return beta_from_gamma(gamma, module.c, self.scale_param)

    def _refit_beta(self, B: Tensor, y: Tensor) -> None:
        self.module_.beta.copy_(self._solve_beta(self.module_, B, y))

    def _output_scale(self) -> float:
        return self.y_scale_

    def _output_offset(self) -> float:
        return self.y_mean_

    def predict(self, X) -> np.ndarray:
        """Predictions in y's units."""
        return self._outputs(self._validated(X))[:, 0]


class NIMOClassifier(TorchClassifier, _NIMOBase):
    __doc__ = """NIMO classifier: the logit is ``β_0 + Σ_j x_j β_j (1 + g_j(x_{−j}))`` (the NIMO paper,
    ICLR 2026, arXiv 2506.05059).

    Binary: one logit, BCE, β by one warm-started IRLS step per batch. Multiclass: a multinomial
    logit with one modulation head, β and c per class, softmax cross-entropy and a
    block-diagonal IRLS step per batch (see the module docstring). Labels may be any sortable
    values; ``classes_`` holds them sorted and ``predict_proba``'s columns follow it.
    ``decision_function`` gives the logit(s) that ``explain`` reproduces exactly.
    ``fit(X, y, eval_set=(X_val, y_val))`` early-stops on the validation AUROC (one-vs-rest
    macro for multiclass).
""" + _common_doc(score="AUROC")

    _amplitude = 2.0

    # ---- IRLS ---------------------------------------------------------------------------------

    def _targets(self, yb: Tensor) -> Tensor:
        """Indicator matrix (m, C): y itself for binary, one-hot for multiclass."""
        if self.n_outputs_ == 1:
            return yb[:, None]
        return F.one_hot(yb, self.n_outputs_).to(torch.float32)

    def _probabilities(self, eta: Tensor) -> Tensor:
        p = torch.sigmoid(eta) if self.n_outputs_ == 1 else torch.softmax(eta, dim=1)
        return p.clamp(_PROB_CLIP, 1.0 - _PROB_CLIP)

    def _newton_target(self, Z: Tensor, eta: Tensor, Y: Tensor) -> Tensor:
        """The (block-diagonal) IRLS solution from the linear predictor ``eta`` (m, C) → γ (C, p).

        ``γ = (Zᵀ W Z / m + λR)⁻¹ Zᵀ W q / m`` with ``q = η + (y − π)/W``, written as
        ``Zᵀ (W η + y − π)`` so that nothing is divided by W.
        """
        pi = self._probabilities(eta)
        w = pi * (1.0 - pi)
        rhs = (Z.transpose(1, 2) @ (w * eta + Y - pi).T[:, :, None])[:, :, 0] / Z.shape[1]
        return ridge_solve(Z, w.T, rhs, self._solve_ridge(Z.shape[1]))

    def _irls_update(self, B: Tensor, c: Tensor, beta_prev: Tensor, yb: Tensor) -> Tensor:
        """One damped IRLS step from ``beta_prev``; gradients flow through the solve.

        The Newton target β_N is reached along ``β(t) = β_prev + t (β_N − β_prev)`` with the
        step t ∈ {1, ½, ..., 2⁻¹⁰, 0} that minimises the batch's penalised objective
        ``mean ℓ + λ Σ (β_j / c_j)²`` (all candidates at once, no host sync). On a mini-batch
        the previous β can be a poor start (the batch differs from the last one), and an
        undamped Newton step from there can overshoot on nearly separable data.
        """
        Y = self._targets(yb)
        eta_prev = linear_predictor(B, beta_prev)
        Z = augmented_design(B, c, self.scale_param)
        beta_newton = beta_from_gamma(self._newton_target(Z, eta_prev, Y), c, self.scale_param)
        with torch.no_grad():
            ts = torch.cat([0.5 ** torch.arange(11.0, device=B.device), B.new_zeros(1)])
            eta_newton = linear_predictor(B, beta_newton)
            etas = eta_prev[None] + ts[:, None, None] * (eta_newton - eta_prev)[None]  # (T, m, C)
            if self.n_outputs_ == 1:
                losses = F.binary_cross_entropy_with_logits(
                    etas[:, :, 0], yb[None].expand(len(ts), -1), reduction="none"
                ).mean(1)
            else:
                losses = F.cross_entropy(
                    etas.permute(0, 2, 1), yb[None].expand(len(ts), -1), reduction="none"
                ).mean(1)
            betas = beta_prev[None] + ts[:, None, None] * (beta_newton - beta_prev)[None]
            ridge = ridge_term(betas, c, self._solve_ridge(B.shape[0]), self.scale_param)
            objective = torch.nan_to_num(losses + ridge, nan=math.inf)
            t = ts[torch.argmin(objective)]
        return beta_prev + t * (beta_newton - beta_prev)

    def _solve_beta(self, module: NIMONetwork, B: Tensor, yb: Tensor) -> Tensor:
        return self._irls_update(B, module.c, module.beta.clone(), yb)

    def _refit_beta(self, B: Tensor, y: Tensor, max_iter: int = 100, tol: float = 1e-6) -> None:
        """Damped IRLS iterated on (B, y) from the stored β until β stops changing."""
        c, beta = self.module_.c.detach(), self.module_.beta.clone()
        for _ in range(max_iter):
            new = self._irls_update(B, c, beta, y)
            change = float((new - beta).abs().max())
            beta = new
            if change <= tol * (1.0 + float(beta.abs().max())):
                break
        self.module_.beta.copy_(beta)

    # ---- inference ----------------------------------------------------------------------------

    def _logits(self, X) -> np.ndarray:
        """The logits (n, C) in float64, from the local linear models."""
        return self._outputs(self._validated(X))
