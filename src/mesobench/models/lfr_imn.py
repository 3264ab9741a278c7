r"""LFR-IMN — IMN with Local Fidelity Regularization (Hammer et al. 2026 (LFR)).

IMN can put the explanatory variance of a prediction into one generated weight, or into the
intercept, and still predict well: nothing asks the local linear model emitted at x to describe
the network *around* x. LFR adds exactly that. For a batch B with neighbours x'_i of x_i:

.. math::
    L_{fid} &= \mathrm{mean}_{i \in B,\, c}\,
               \big( [x'_i, 1] \cdot w_c(x_i) - f_c(x'_i) \big)^2,
    \qquad f(x') = [x', 1] \cdot w(x')                                                  \\
    L &= \ell(z(x_B), y_B) + \gamma \, L_{fid} + \lambda \, \mathrm{mean}\,|w(x_B)|

with f on the logit scale, per class (C = #classes for multiclass, 1 otherwise), or the
standardised target for regression. Gradients flow through both sides, the local model
``w(x)`` and the network's output ``f(x')``, as in the reference code.

Neighbourhoods (one neighbour per row per step):

* ``gaussian`` (the reference code): ``x' = x + N(0, σ² I)``;
* ``smote`` (the paper): ``x' = x + u (x_nn − x)``, ``u ~ U(0, 1)`` per row, with ``x_nn`` the
  nearest *other* training row (Euclidean, exact duplicates of x skipped so that x' ≠ x where
  possible). The neighbours are found once per fit, on the device, by chunked ``torch.cdist``
  (:func:`nearest_neighbor_index`), and carried next to X through the trainer.

Cost: x and x' go through the hypernetwork in **one** batched forward pass of 2|B| rows per step
(so a TabResNet trunk's BatchNorm sees both in its batch statistics), about 1.5–2× the time of
an IMN step. The reference code calls the network twice instead, so BatchNorm normalises x and
x' with their own batch statistics (and updates its running statistics twice per step):
``neighbor_pass="separate"`` does that.

Dropout: in the joint pass x and x' share one dropout mask (``tie_dropout``), so the fidelity
term compares one random sub-network with itself. To first order in δ = x' − x the gap is
``(w(x) − ∇f(x))·δ``, of size σ; with independent masks it also holds the difference of two
sub-networks, of the size of the dropout noise whatever σ is, and γ·L_fid then mostly
penalises dropout variance (measured on ``synthetic/lfr_smooth3``: γ = 100 with independent
masks gave a test MSE of 1.03 against 0.075 with tied masks, results/lfr_ablation).
``gamma = 0`` skips the neighbours altogether: the loss, the random streams and hence the
fitted model are exactly IMN's under the same seed.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import Tensor

from mesobench.config.expect import BOOLEAN, number, one_of
from mesobench.models.imn import (
    _COMMON_DOC,
    HyperNetwork,
    IMNClassifier,
    IMNRegressor,
    local_linear_output,
)
from mesobench.models.params import store_init_params
from mesobench.models.persistence import ModelState
from mesobench.models.trunk import tied_dropout

NEIGHBORHOODS = ("gaussian", "smote")
NEIGHBOR_PASSES = ("joint", "separate")
"""How x and x' go through the hypernetwork: one batch of 2|B| rows, or two passes (reference)."""
_CDIST_ELEMENTS = 1 << 24  # distance-matrix entries per chunk (64 MiB in float32)
_DUPLICATE_RTOL = 3e-3  # ~10x float32 rounding of ||a||² + ||b||² − 2ab, relative to the norms


def nearest_neighbor_index(X: Tensor, *, chunk_elements: int = _CDIST_ELEMENTS) -> Tensor:
    """Index of the nearest *other* row of X for every row (Euclidean), on X's device.

    Rows are processed in chunks of about ``chunk_elements`` distances, so memory stays bounded
    (a chunk of 167 rows for n = 100 000); ``torch.cdist`` uses its fast matrix-product form.
    A row never picks itself, and duplicates of it (distance below ``_DUPLICATE_RTOL`` times
    the rows' norms, i.e. equal up to float32 rounding of the matrix-product form) are skipped
    so that the SMOTE segment has a length; a row whose every other row is a duplicate gets its
    own index (its neighbour is x itself). Returns int64 (n,).
    """
    n = X.shape[0]
    if n < 2:
        raise ValueError("nearest_neighbor_index needs at least two rows")
    rows = max(1, int(chunk_elements) // n)
    sq_norms = X.square().sum(dim=1)
    out = torch.empty(n, dtype=torch.long, device=X.device)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        dist = torch.cdist(X[start:stop], X)  # (m, n)
        tol = _DUPLICATE_RTOL * (sq_norms[start:stop, None] + sq_norms[None, :]).sqrt()
        dist = dist.masked_fill(dist <= tol, float("inf"))  # self and duplicates
        best, idx = dist.min(dim=1)
        own = torch.arange(start, stop, device=X.device)
        out[start:stop] = torch.where(torch.isfinite(best), idx, own)
    return out


class _LFRMixin:
    """The LFR-IMN parameters, loss and neighbour bookkeeping, mixed into the IMN estimators."""

    _parameter_expectations = {
        **IMNClassifier._parameter_expectations,
        "gamma": number(0),
        "neighborhood": one_of(NEIGHBORHOODS),
        "sigma": number(0, strict=True),
        "neighbor_pass": one_of(NEIGHBOR_PASSES),
        "tie_dropout": BOOLEAN,
    }

    def __init__(
        self,
        hidden_size: int = 128,
        n_blocks: int = 2,
        dropout: float = 0.0,
        backbone: str = "tabresnet",
        epochs: int = 500,
        lr: float = 0.01,
        batch_size: int = 64,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        weight_l1: float = 0.01,
        l1_intercept: bool = True,
        weight_l1_units: str = "standardised",
        warmup_epochs: float = 5,
        scheduler: str = "cosine_restarts",
        cycle_timing: str = "after_warmup",
        snapshot_ensemble: bool = True,
        snapshot_average: str = "weights",
        early_stopping_patience: int | None = None,
        gamma: float = 100.0,
        neighborhood: str = "gaussian",
        sigma: float = 0.1,
        neighbor_pass: str = "joint",
        tie_dropout: bool = True,
        random_state=None,
        device: str = "cpu",
        n_jobs: int | None = None,
        precision: str = "fp32",
        compile: bool = False,
        verbose: bool = False,
    ) -> None:
        store_init_params(self, locals())

    def _uses_smote(self) -> bool:
        return self.gamma > 0 and self.neighborhood == "smote"

    def _training_inputs(self, X: Tensor) -> Tensor:
        """X, or for SMOTE ``[X, X_nn]`` (n, 2F): each row next to its nearest training row.

        The neighbour index is computed here, once per fit and on the device, and kept as
        ``neighbor_index_``; carrying ``X_nn`` as extra columns lets the generic trainer slice
        it with the batch (no per-step lookup, no Python loop).
        """
        self.neighbor_index_ = None
        if not self._uses_smote():
            return X
        self.neighbor_index_ = nearest_neighbor_index(X)
        return torch.cat([X, X[self.neighbor_index_]], dim=1)

    def _restore_state(self, state: ModelState, device: str) -> None:
        """As IMN; ``neighbor_index_`` is training-only and not saved (None after loading)."""
        super()._restore_state(state, device)
        self.neighbor_index_ = None

    def _neighbors(self, xb: Tensor, n_features: int) -> tuple[Tensor, Tensor]:
        """``(x, x')`` for a training batch: the anchors and one neighbour per anchor."""
        if self._uses_smote():
            x, x_nn = xb[:, :n_features], xb[:, n_features:]
            u = torch.rand(x.shape[0], 1, device=x.device, dtype=x.dtype)
            return x, x + u * (x_nn - x)
        return xb, xb + self.sigma * torch.randn_like(xb)

    def _loss(self, module: HyperNetwork, xb: Tensor, yb: Tensor) -> Tensor:
        """Task loss + λ·mean|w(x)| + γ·L_fid, x and x' in one forward pass (γ = 0: IMN's loss)."""
        if self.gamma == 0:
            return super()._loss(module, xb, yb)
        x, x_nb = self._neighbors(xb, module.in_features)
        n = x.shape[0]
        if self.neighbor_pass == "separate":  # two calls, as the reference: BatchNorm per call
            (z, w), (f_nb, _) = module(x), module(x_nb)
        else:
            with tied_dropout(module) if self.tie_dropout else nullcontext():
                z_all, w_all = module(torch.cat([x, x_nb]))
            z, w, f_nb = z_all[:n], w_all[:n], z_all[n:]
        # float32 from here on (a no-op in fp32; under bf16 autocast w is bfloat16)
        logits, w_x, f_nb = z.float(), w.float(), f_nb.float()
        fidelity = (local_linear_output(x_nb, w_x) - f_nb).square().mean()
        return self._task_loss(logits, yb) + self._weight_penalty(w_x) + self.gamma * fidelity


_LFR_DOC = """
    LFR parameters
    --------------
    gamma : float, default 100
        γ, the weight of the local-fidelity term L_fid (0 = plain IMN, exactly). To first order
        in σ, ``L_fid ≈ σ² ‖w(x) − ∇f(x)‖²`` (the gap between the emitted weights and the
        network's own gradient), so γσ² = 1 at the defaults weighs that gap like the task loss.
        The reference uses 10 (TabResNet) and 100 (MLP) on its synthetic regression example.
        Per task, pick γ on validation data with the runner's ``gamma_search`` (tuning score S,
        Hammer et al. 2026 (LFR); docs/models.md).
    neighborhood : {"gaussian", "smote"}, default "gaussian"
        How the neighbour x' of each training row is drawn at every step: ``x + N(0, σ²)``
        (the reference code) or SMOTE interpolation towards the nearest other training row
        (the paper), see the module docstring.
    sigma : float, default 0.1
        σ of the Gaussian neighbourhood, in the units of the (standardised) inputs (> 0; unused
        by SMOTE).
    neighbor_pass : {"joint", "separate"}, default "joint"
        ``"joint"``: x and x' in one forward pass of 2|B| rows (BatchNorm statistics over both;
        one pass is faster). ``"separate"``: two passes as the LFR reference code (BatchNorm
        normalises each on its own). Measured effect: results/lfr_audit.
    tie_dropout : bool, default True
        With ``neighbor_pass="joint"``: x and its neighbour x' share one dropout mask (the same
        random sub-network is compared with itself, :class:`~mesobench.models.trunk.TiedDropout`).
        False: independent masks, as the reference's two calls; then L_fid also measures the
        dropout noise between two sub-networks, which does not shrink with σ and, at the
        default dropout 0.25, swamps the σ²-sized fidelity signal (see the module docstring).

    Defaults that differ from IMN's, and why
    ----------------------------------------
    ``gamma=100, weight_l1=0.01, dropout=0, weight_decay=0`` (IMN, at the paper's settings:
    γ = 0, λ = 0.1, dropout 0.25, Adam's L2 0.01). Each of IMN's settings keeps w(x) away from
    the gradient that LFR asks it to match:

    * IMN's L1 pulls every generated weight towards 0 by λ/(F+1) (a mean over F+1 weights),
      which beats a fidelity pull of 2γσ²·|w − ∇f| unless γσ² ≫ λ/(2(F+1)); with few features
      and γσ² = 0.01 (γ = 1) the fidelity term is lost. And once w ≈ ∇f, an L1 on w is an L1
      on the slopes of f, which shrinks the fit: λ = 0.01 as in the LFR reference.
    * Dropout makes f(x') and w(x) come from different sub-networks (see ``tie_dropout``) and,
      tied or not, makes w(x) noisy; L2 weight decay biases the hypernetwork's output.

    Measured through the runner on ``synthetic/lfr_smooth3``, where these defaults were chosen
    (3 replicates, 1000 rows; gradient MAE / test MSE; results/lfr_ablation): IMN 0.461 /
    0.082; the former LFR defaults (γ 1 with IMN's λ, dropout and L2) 0.450 / 0.087; γ 100
    alone 0.672 / 1.030 with independent dropout masks and 0.269 / 0.075 with tied ones; + λ
    0.01 and no dropout 0.141 / 0.032; + no weight decay (the defaults) 0.073 / 0.019. On
    functions not used for choosing them: results/lfr_defaults (``+experiment=lfr_defaults``); this ablation is ``+experiment=lfr_ablation``.

    Extra attribute: ``neighbor_index_`` (int64 tensor (n,) on ``device_``, SMOTE only, else
    None): the nearest-other-row index of every training row (training-only: not saved by
    :func:`mesobench.models.persistence.save_model`, None in a loaded model).
"""


class LFRIMNClassifier(_LFRMixin, IMNClassifier):
    __doc__ = (
        """LFR-IMN classifier: IMN + γ · local fidelity of the logits, per class (Hammer et al.
    2026 (LFR)).

    Same API and explanation contract as :class:`~mesobench.models.IMNClassifier`
    (``predict_proba``, ``decision_function``, ``explain``); only the training loss differs.
"""
        + _LFR_DOC
        + _COMMON_DOC
    )


class LFRIMNRegressor(_LFRMixin, IMNRegressor):
    __doc__ = (
        """LFR-IMN regressor: IMN + γ · local fidelity of the prediction (Hammer et al. 2026
    (LFR)).

    The fidelity term is computed on the standardised target scale the network is trained on
    (the infidelity in y's units is ``s²`` times it, ``s`` the training std of y).
"""
        + _LFR_DOC
        + _COMMON_DOC
    )


__all__ = ["LFRIMNClassifier", "LFRIMNRegressor", "nearest_neighbor_index", "NEIGHBORHOODS"]
