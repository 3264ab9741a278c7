r"""IMN — Interpretable Mesomorphic Network (Kadra, Arango & Grabocka, NeurIPS 2024).

A hypernetwork reads an instance and writes the weights of a linear model for that instance:

.. math::
    h(x)   &= \mathrm{TabResNetTrunk}(x) \in \mathbb{R}^H                              \\
    w(x)   &= \mathrm{reshape}_{(F+1) \times C}(W_{head}\, h(x) + b_{head})            \\
    z(x)   &= [x, 1] \cdot w(x) = \textstyle\sum_{j \le F} x_j\, w_j(x) + w_{F+1}(x)

with the last row of ``w(x)`` the intercept, C = 1 for binary classification and regression and
C = #classes for multiclass. ``z`` is the logit (classification) or the standardised prediction
(regression). The explanation of ``x`` is ``w(x)``; the feature impact is ``x ⊙ w(x)``.

Training objective (one batch B):

.. math::
    L = \ell(z(x_B), y_B) + \lambda \cdot \mathrm{mean}\,|w(x_B)|

with ℓ = BCE-with-logits (binary), cross-entropy (multiclass) or MSE on the standardised target
(regression), and the L1 mean over all generated weights, the intercept row included or not
(``l1_intercept``). The loss is the estimator method :meth:`_IMNBase._loss`, so variants such as
LFR-IMN add their terms by overriding it. Parameter checks, the ``fit`` preamble and the training
call are the torch estimators' shared base (:mod:`mesobench.models.torch_estimator`).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import Tensor, nn

from mesobench.config.expect import BOOLEAN, number, one_of
from mesobench.models.explanation import Explanation
from mesobench.models.params import store_init_params
from mesobench.models.torch_estimator import TorchClassifier, TorchEstimator, TorchRegressor
from mesobench.models.training import predict_in_batches, to_tensor, torch_threads
from mesobench.models.training_settings import check_parameters
from mesobench.models.trunk import TRUNK_PARAMETERS, MLPTrunk, TabResNetTrunk

BACKBONES = ("tabresnet", "mlp")
SNAPSHOT_AVERAGES = ("weights", "predictions")
"""How the snapshot ensemble combines its members, see the ``snapshot_average`` parameter."""
WEIGHT_L1_UNITS = ("standardised", "raw")
"""The units λ is stated in, see the ``weight_l1_units`` parameter."""


def local_linear_output(x: Tensor, weights: Tensor) -> Tensor:
    """``[x, 1] · w``: the local linear models ``weights`` (n, F+1, C) evaluated at ``x`` (n, F).

    Returns shape (n, C). Used for the forward pass and by fidelity terms that evaluate the
    model emitted at one point on another point (LFR-IMN). (A broadcast product and a sum: on
    the CPU this is faster than ``einsum`` / ``bmm`` for these thin batched products.)
    """
    x1 = torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)
    return (x1.unsqueeze(2) * weights).sum(dim=1)


class HyperNetwork(nn.Module):
    r"""The IMN hypernetwork: a trunk (TabResNet, or an MLP) + Linear(H → (F+1)·C) head.

    .. math::
        h &= \mathrm{trunk}(x)                                  && (n, H)\\
        w &= \mathrm{reshape}(\mathrm{head}(h), (n, F+1, C))    && \text{last row = intercept}\\
        z &= [x, 1] \cdot w                                     && (n, C)

    ``forward(x)`` returns ``(z, w)``: one pass gives both the logits and the weights.

    Parameters
    ----------
    in_features : int
        F, the number of input features.
    n_outputs : int
        C: 1 for binary classification and regression, the number of classes otherwise.
    hidden_size, n_blocks, dropout
        Trunk settings, see :class:`~mesobench.models.trunk.TabResNetTrunk`; for the MLP trunk
        ``n_blocks`` is the number of hidden H → H layers (:class:`~mesobench.models.trunk
        .MLPTrunk`).
    backbone : {"tabresnet", "mlp"}, default "tabresnet"
        The trunk. ``"mlp"`` also starts the head at zero (w(x) = 0 at initialisation), as
        the LFR-IMN reference's ``MLPBackbone`` does; the TabResNet head keeps PyTorch's default
        initialisation, as the IMN reference.
    """

    def __init__(
        self,
        in_features: int,
        n_outputs: int,
        hidden_size: int = 128,
        n_blocks: int = 2,
        dropout: float = 0.25,
        backbone: str = "tabresnet",
    ) -> None:
        super().__init__()
        check_parameters({"backbone": backbone}, {"backbone": one_of(BACKBONES)})
        self.in_features = in_features
        self.n_outputs = n_outputs
        if backbone == "tabresnet":
            self.trunk = TabResNetTrunk(in_features, hidden_size, n_blocks, dropout)
        else:
            self.trunk = MLPTrunk(in_features, hidden_size, n_blocks, dropout)
        self.head = nn.Linear(hidden_size, (in_features + 1) * n_outputs)
        if backbone == "mlp":
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(x)
        w = self.head(h).view(-1, self.in_features + 1, self.n_outputs)
        z = local_linear_output(x, w)
        return z, w


class _SnapshotEnsemble:
    """Collects ``state_dict`` copies at the ends of the cosine cycles (``on_cycle_end`` hook)."""

    def __init__(self) -> None:
        self.states: list[dict[str, Tensor]] = []

    def __call__(self, cycle: int, module: nn.Module) -> None:
        self.states.append({k: v.detach().clone() for k, v in module.state_dict().items()})


_COMMON_DOC = """
    Parameters
    ----------
    hidden_size : int, default 128
        Width H of the trunk (paper default).
    n_blocks : int, default 2
        Number of residual blocks of the trunk (paper default); with ``backbone="mlp"`` the
        number of hidden H → H layers after the input layer.
    dropout : float, default 0.25
        Dropout probability in the trunk (paper default).
    backbone : {"tabresnet", "mlp"}, default "tabresnet"
        Trunk of the hypernetwork: the paper's TabResNet (with BatchNorm), or a plain MLP
        (Linear → GELU layers, no BatchNorm, zero-initialised head) as in the LFR-IMN reference's
        synthetic example (there: hidden_size 64, n_blocks 1, dropout 0).
    epochs : int, default 500
        Number of epochs (paper default). With the default warm-up and three cosine cycles
        (T_mult = 2) the cycles end at epochs ≈ 75, 218 and 500.
    lr : float, default 0.01
        Base learning rate (paper default).
    batch_size : int, default 64
        Rows per step, cut to n when larger (paper default).
    weight_decay : float, default 0.01
        Weight decay (paper default): an L2 term added to the gradient with ``optimizer="adam"``,
        decoupled with ``"adamw"``.
    optimizer : {"adam", "adamw"}, default "adam"
        ``"adam"`` is the reference's ``torch.optim.Adam(lr, weight_decay)``; ``"adamw"``
        decouples the decay, a much weaker regulariser at these settings (on the 10 diabetes
        folds at the paper settings: mean AUROC 0.753 with AdamW against the reference's 0.840;
        see results/imn_parity/ for Adam).
    weight_l1 : float, default 0.1
        λ, the weight of ``mean |w(x)|`` in the loss (paper default).
    l1_intercept : bool, default True
        Whether the L1 term covers the generated intercept row too (as the reference code does)
        or only the feature weights.
    weight_l1_units : {"standardised", "raw"}, default "standardised"
        Regression only: the units λ is stated in. The regressor fits the standardised target
        ``(y − m) / s``, in which the task and fidelity terms shrink by s² but the L1 term on w
        only by s. ``"raw"`` uses λ / s, so the loss is exactly the loss on raw y divided by s²
        (the LFR reference code fits raw y; its λ = 0.01 is stated that way). Classifiers
        ignore it (their outputs are logits either way).
    warmup_epochs : float, default 5
        Linear learning-rate warm-up (paper default).
    scheduler : {"cosine_restarts", "constant"}, default "cosine_restarts"
        Learning rate after warm-up: cosine annealing with warm restarts (T_mult = 2, three
        cycles filling ``epochs``, as the reference) or constant.
    cycle_timing : {"after_warmup", "reference"}, default "after_warmup"
        ``"after_warmup"``: three cycles of T0, 2·T0, 4·T0 epochs exactly fill the epochs after
        warm-up and the snapshots are taken at their ends. ``"reference"``: the IMN code's
        timing, T_0 = ⌊all steps / 7⌋ *iterations* and snapshots after global steps T_0,
        3·T_0, 7·T_0, i.e. a warm-up's length before the cycle ends
        (:class:`~mesobench.models.training.ReferenceSchedule`).
    snapshot_ensemble : bool, default True
        Keep the weights at the end of every completed cosine cycle (three with the default
        schedule, as the reference) and predict with their ensemble. The ensemble averages the
        *logits* (the standardised prediction, for regression) of the snapshots, which equals the
        local linear model with the *average* of the snapshots' generated weights:
        ``mean_s [x,1]·w_s(x) = [x,1]·mean_s w_s(x)``. So the ensemble is itself a local linear
        model and ``explain`` returns the averaged weights, for which the explanation identity
        holds exactly. ``snapshot_average="predictions"`` combines them as the reference does
        instead. Without completed cycles (``scheduler="constant"``) or with early stopping, the
        single final model is used.
    snapshot_average : {"weights", "predictions"}, default "weights"
        ``"weights"``: the ensemble's logit (regression: prediction) is that of the averaged
        local linear model, and ``explain`` returns the averaged weights (exact explanation of
        the model that predicts). ``"predictions"``: the IMN reference's rule, the mean of the
        snapshots' *probabilities* (regression: predictions; ``decision_function`` is the
        logit of the mean probability, log-probabilities for multiclass) and ``explain``
        returns the *last* snapshot's local model, which then describes that snapshot, not
        the ensemble. Measured effect on AUROC: results/imn_parity/.
    early_stopping_patience : int or None, default None
        None: ``eval_set`` is ignored and all ``epochs`` run (the paper's protocol). An int:
        with ``eval_set`` given to ``fit``, the validation score (AUROC, one-vs-rest macro for
        multiclass; −MSE for regression) is computed after every epoch, training stops after
        this many epochs without improvement and the best epoch's weights are restored; the
        snapshot ensemble is then not used (its cycles would end after the stopping point).
    random_state : int, RandomState or None, default None
        Seeds initialisation, batch order and dropout. With an int and ``device="cpu"`` two fits
        (with the same ``n_jobs``) give bitwise-identical predictions.
    device : str, default "cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``, see
        :func:`mesobench.models.device.resolve_device`. The training data live on the device;
        batches are index slices, so there is no host↔device copy per step.
    n_jobs : int or None, default None
        CPU threads for torch during ``fit``, ``predict*`` and ``explain``
        (``torch.set_num_threads``, restored afterwards); None keeps torch's setting.
    precision : {"fp32", "bf16"}, default "fp32"
        Training arithmetic (:func:`mesobench.models.training.train`). ``"bf16"``: the loss
        forward pass runs under bfloat16 autocast (linear layers and matrix products in
        bfloat16, on the CPU or a CUDA GPU with bf16 support); the task loss and the L1 term are
        reduced in float32, and the weights, gradients and optimiser state stay float32. It mainly
        pays off on GPUs with bf16 tensor cores; results differ from fp32 by rounding (a
        checked tolerance, not bitwise). ``predict*``, ``explain`` and the early-stopping
        score always run in float32, uncompiled, so reported metrics are full precision.
        Every invalid parameter raises scikit-learn's ``InvalidParameterError`` (a
        ``ValueError``) at ``fit``, before any training.
    compile : bool, default False
        Compile the per-step loss (forward and backward) with ``torch.compile``, see
        :func:`mesobench.models.training.train`. The first steps pay the compilation, so it
        suits long trainings on a GPU; a failing compilation raises (no silent fallback).
        Inference is not compiled.
    verbose : bool, default False
        True: one INFO log line per epoch; False: at most one every 10 s (module logger
        ``mesobench.models.training``).

    Attributes
    ----------
    module_ : HyperNetwork
        The trained hypernetwork (the last snapshot, or the restored best epoch).
    snapshots_ : list of HyperNetwork
        The models that predict and explain (their outputs and weights are averaged): the
        cycle-end snapshots, or ``[module_]``.
    device_ : str
        The resolved device.
    n_features_in_ : int
        Number of input features F.
    train_result_ : mesobench.models.training.TrainResult
        Epochs run, best epoch, loss and validation histories, cycle end times.
"""


class _IMNBase(TorchEstimator):
    """Parameters, the loss and the snapshot ensemble shared by classifier and regressor.

    The task loss comes from :class:`~mesobench.models.torch_estimator.TorchClassifier` or
    :class:`~mesobench.models.torch_estimator.TorchRegressor`. Saved by
    :mod:`mesobench.models.persistence`: one ``state_dict`` per snapshot in ``weights.pt``, the
    plain fitted attributes in the manifest.
    """

    _parameter_expectations = {
        **TorchEstimator._parameter_expectations,
        **TRUNK_PARAMETERS,
        "backbone": one_of(BACKBONES),
        "weight_l1": number(0),
        "l1_intercept": BOOLEAN,
        "weight_l1_units": one_of(WEIGHT_L1_UNITS),
        "snapshot_ensemble": BOOLEAN,
        "snapshot_average": one_of(SNAPSHOT_AVERAGES),
    }

    def __init__(
        self,
        hidden_size: int = 128,
        n_blocks: int = 2,
        dropout: float = 0.25,
        backbone: str = "tabresnet",
        epochs: int = 500,
        lr: float = 0.01,
        batch_size: int = 64,
        weight_decay: float = 0.01,
        optimizer: str = "adam",
        weight_l1: float = 0.1,
        l1_intercept: bool = True,
        weight_l1_units: str = "standardised",
        warmup_epochs: float = 5,
        scheduler: str = "cosine_restarts",
        cycle_timing: str = "after_warmup",
        snapshot_ensemble: bool = True,
        snapshot_average: str = "weights",
        early_stopping_patience: int | None = None,
        random_state=None,
        device: str = "cpu",
        n_jobs: int | None = None,
        precision: str = "fp32",
        compile: bool = False,
        verbose: bool = False,
    ) -> None:
        store_init_params(self, locals())

    # ---- the objective (override to extend, e.g. LFR-IMN) ------------------------------------

    def _loss(self, module: HyperNetwork, xb: Tensor, yb: Tensor) -> Tensor:
        """Loss of one training batch: task loss + λ · mean|w| (module in training mode).

        This is the ``loss_fn`` handed to :func:`~mesobench.models.training.train`; ``yb`` holds
        float 0/1 labels (binary), class codes (multiclass) or the standardised target
        (regression). A variant extends it from the same pieces, e.g. LFR-IMN with one more
        forward pass on neighbours ``x_nb`` of the batch::

            logits, w = module(xb)
            f_nb, _ = module(x_nb)
            fidelity = ((local_linear_output(x_nb, w) - f_nb) ** 2).mean()
            return self._task_loss(logits, yb) + self._weight_penalty(w) + gamma * fidelity
        """
        logits, weights = module(xb)  # bfloat16 under precision="bf16": reduce in float32
        return self._task_loss(logits.float(), yb) + self._weight_penalty(weights.float())

    def _weight_penalty(self, weights: Tensor) -> Tensor:
        """``λ · mean |w|`` over the generated weights (n, F+1, C), intercept row per flag."""
        penalised = weights if self.l1_intercept else weights[:, :-1, :]
        return self.weight_l1 / self._l1_divisor() * penalised.abs().mean()

    def _l1_divisor(self) -> float:
        """s for a regressor with ``weight_l1_units="raw"`` (see the parameter), else 1."""
        if self.weight_l1_units == "raw" and hasattr(self, "y_scale_"):
            return float(self.y_scale_)
        return 1.0

    # ---- training -----------------------------------------------------------------------------

    def _fit_network(self, X, target, val_score, settings, on_cycle_end=None):
        """Train; then the snapshot ensemble: the cycle-end snapshots, unless early stopping
        (its restored best epoch is the model) or ``snapshot_ensemble=False``."""
        snapshots = _SnapshotEnsemble()
        keep_snapshots = self.snapshot_ensemble and val_score is None
        fitted = super()._fit_network(
            X, target, val_score, settings, snapshots if keep_snapshots else None
        )
        self.snapshots_ = [self.module_]
        if snapshots.states:
            self.snapshots_ = []
            for state in snapshots.states:
                member = copy.deepcopy(self.module_)
                member.load_state_dict(state)
                self.snapshots_.append(member.eval())
        self.module_.eval()
        return fitted

    def _build_module(self, n_features: int) -> HyperNetwork:
        """The (untrained) hypernetwork of these settings on ``device_``; fit and load build it here."""
        return HyperNetwork(
            n_features,
            self.n_outputs_,
            self.hidden_size,
            self.n_blocks,
            self.dropout,
            self.backbone,
        ).to(self.device_)

    def _module_outputs(self, module: nn.Module, X: Tensor) -> Tensor:
        """One network's logits (n, C) on ``X`` (the validation score; no ensemble)."""
        return predict_in_batches(module, X)[0]

    # ---- persistence (mesobench.models.persistence) ---------------------------------------------

    def _extra_tensors(self) -> dict[str, Any]:
        """The snapshots of the ensemble, when they are separate networks."""
        single = len(self.snapshots_) == 1 and self.snapshots_[0] is self.module_
        return {"snapshots": [] if single else [m.state_dict() for m in self.snapshots_]}

    def _restore_extra_tensors(self, tensors: dict[str, Any]) -> None:
        snapshots = tensors["snapshots"]
        self.snapshots_ = [self._load_module(s) for s in snapshots] if snapshots else [self.module_]

    # ---- inference ----------------------------------------------------------------------------

    def _local_models(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(z, w)``: the ensemble's output and the local linear model that explains it.

        ``snapshot_average="weights"``: ``w`` (n, F+1, C) is the snapshot average of the
        generated weights and ``z = [X, 1] · w`` (n, C), in the model's training units (logits /
        standardised target), computed from ``w`` in float64 so that ``explain`` reproduces the
        outputs to float64 precision. ``"predictions"`` (the reference's rule): ``z`` combines
        the snapshots' own outputs (:meth:`_combine_outputs`) and ``w`` is the last snapshot's.
        The members are visited one at a time, so memory holds one (n, F+1, C) array beside the
        running sum (or the members' (n, C) outputs).
        """
        by_predictions = self.snapshot_average == "predictions" and len(self.snapshots_) > 1
        X_t = to_tensor(X, self.device_)
        w_sum, outputs = None, []
        with torch_threads(self.n_jobs):
            for member in self.snapshots_:
                w = predict_in_batches(member, X_t)[1].double().cpu().numpy()
                if by_predictions:
                    outputs.append(_linear(X, w))
                else:
                    w_sum = w if w_sum is None else w_sum + w
        if by_predictions:
            return self._combine_outputs(np.stack(outputs)), w
        w = w_sum / len(self.snapshots_)
        return _linear(X, w), w

    def _combine_outputs(self, outputs: np.ndarray) -> np.ndarray:
        """The reference's ensemble of the snapshots' outputs (S, n, C), in training units."""
        return outputs.mean(axis=0)

    def describe(self) -> dict:
        """What the fit did, as plain JSON values (the runner saves it as a run artifact)."""
        check_is_fitted(self)
        result = self.train_result_
        return {
            "n_features_in": int(self.n_features_in_),
            "n_outputs": int(self.n_outputs_),
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "n_snapshots": len(self.snapshots_),
            "cycle_end_epochs": [round(e, 3) for e in result.cycle_end_epochs],
            "final_train_loss": result.losses[-1] if result.losses else None,
            "best_val_score": result.best_score,
            "train_seconds": round(result.seconds, 3),
        }

    def _validated(self, X) -> np.ndarray:
        """Checked rows, float64 kept as given (outputs are computed in float64 from ``X``)."""
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=(np.float64, np.float32))


def _linear(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``[X, 1] · w`` in float64: (n, F) rows and (n, F+1, C) local models → (n, C)."""
    return np.einsum("nf,nfc->nc", X.astype(np.float64), w[:, :-1, :]) + w[:, -1, :]


class IMNClassifier(TorchClassifier, _IMNBase):
    __doc__ = (
        """IMN classifier: a hypernetwork emits a per-instance logistic regression (Kadra et al.,
    NeurIPS 2024).

    Binary problems have one logit (C = 1, BCE-with-logits), multiclass ones one per class
    (C = #classes, cross-entropy). Inputs are float features (standardised / one-hot, no NaN);
    labels may be any sortable values, ``classes_`` holds them sorted and ``predict_proba``'s
    columns follow it.

    ``decision_function(X)`` is the (ensemble) logit: (n,) binary, (n, C) multiclass.
    ``explain(X)`` returns the :class:`~mesobench.models.explanation.Explanation` with weights
    (n, F) and intercept (n,) for binary, (n, F, C) and (n, C) for multiclass, in the units of
    the ``X`` given, such that ``(X * weights).sum(1) + intercept == decision_function(X)``.
"""
        + _COMMON_DOC
    )

    def _combine_outputs(self, outputs: np.ndarray) -> np.ndarray:
        """Mean of the snapshots' probabilities, returned on the logit scale.

        Binary: ``logit(mean σ(z_s))``; multiclass: ``log mean softmax(z_s)``, whose softmax
        is the mean probability. So ``predict_proba`` gives the reference's averaged
        probabilities and ``decision_function`` stays a logit.
        """
        z = torch.from_numpy(outputs)
        if self.n_outputs_ == 1:
            p = torch.sigmoid(z).mean(dim=0)
            return torch.logit(p.clamp(1e-300, 1.0 - 1e-16)).numpy()
        return torch.log(torch.softmax(z, dim=2).mean(dim=0).clamp_min(1e-300)).numpy()

    def _logits(self, X) -> np.ndarray:
        """The ensemble's logits (n, C) in float64, from its local linear models."""
        return self._local_models(self._validated(X))[0]

    def explain(self, X) -> Explanation:
        """Per-instance weights and intercept of the logit(s), in the units of ``X``."""
        _, w = self._local_models(self._validated(X))
        if self.n_outputs_ == 1:
            return Explanation(weights=w[:, :-1, 0], intercept=w[:, -1, 0])
        return Explanation(weights=w[:, :-1, :], intercept=w[:, -1, :])


class IMNRegressor(TorchRegressor, _IMNBase):
    __doc__ = (
        """IMN regressor: a hypernetwork emits a per-instance linear regression (Kadra et al.,
    NeurIPS 2024).

    Trained with MSE on the standardised target ``(y − m) / s``; the generated model
    ``[x, 1] · w(x)`` predicts that standardised target, so the prediction in y's units is
    ``s · [x, 1] · w(x) + m`` and ``explain`` returns the weights ``s · w_{1..F}(x)`` and the
    intercept ``s · w_{F+1}(x) + m``, for which ``(X * weights).sum(1) + intercept ==
    predict(X)``. ``fit(X, y, eval_set=(X_val, y_val))`` early-stops on the validation −MSE when
    ``early_stopping_patience`` is set.
"""
        + _COMMON_DOC
    )

    def predict(self, X) -> np.ndarray:
        """Predictions in the units of y."""
        z, _ = self._local_models(self._validated(X))
        return z[:, 0] * self.y_scale_ + self.y_mean_

    def explain(self, X) -> Explanation:
        """Per-instance weights and intercept of the prediction, in the units of ``X`` and y."""
        _, w = self._local_models(self._validated(X))
        w = w[:, :, 0] * self.y_scale_
        return Explanation(weights=w[:, :-1], intercept=w[:, -1] + self.y_mean_)
