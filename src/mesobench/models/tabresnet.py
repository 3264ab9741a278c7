"""TabResNet: the IMN trunk with a plain linear head, the black-box network baseline (as in Kadra
et al., NeurIPS 2024 (IMN)).

    logits = W_head · trunk(x) + b_head,   W_head ∈ R^{C×H}

with C = 1 for binary classification (BCE with logits), C = #classes for multiclass (cross-entropy)
and C = 1 for regression (MSE on the standardised target). Trained by
:func:`mesobench.models.training.train` through the torch estimators' shared base
(:mod:`mesobench.models.torch_estimator`).

For the fidelity metrics the classifier has ``decision_function`` (logits) and both estimators
have ``input_gradients(X)`` (∂output/∂x by autograd): the attribution of a plain network is
gradient × input.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import Tensor, nn

from mesobench.models.params import store_init_params
from mesobench.models.torch_estimator import TorchClassifier, TorchEstimator, TorchRegressor
from mesobench.models.training import predict_in_batches, to_tensor, torch_threads
from mesobench.models.trunk import TRUNK_PARAMETERS, TabResNetTrunk


class TabResNet(nn.Module):
    """Trunk + Linear(H → out_features) head; returns logits (or the standardised regression output)."""

    def __init__(
        self, in_features: int, out_features: int, hidden_size: int, n_blocks: int, dropout: float
    ) -> None:
        super().__init__()
        self.trunk = TabResNetTrunk(in_features, hidden_size, n_blocks, dropout)
        self.head = nn.Linear(hidden_size, out_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))


_COMMON_DOC = """
    Parameters
    ----------
    hidden_size : int, default 128
        Width H of the trunk (the IMN paper's default, Kadra et al., NeurIPS 2024).
    n_blocks : int, default 2
        Number of residual blocks (the IMN paper's default).
    dropout : float, default 0.25
        Dropout probability in the trunk (the IMN paper's default).
    epochs : int, default 100
        Maximum number of epochs. With the default warm-up and three cosine cycles (T_mult = 2)
        the cycles end at epochs ≈ 18.6, 45.7 and 100.
    lr : float, default 1e-3
        Base learning rate, the usual value for tabular ResNets with batch 256 (the IMN
        paper's 0.01 is paired with batch 64 and 500 epochs, too slow for a CPU benchmark).
    batch_size : int, default 256
        Rows per step (cut to n when larger). 256 keeps an epoch of letter (20k rows) to a few
        dozen steps, so the quick suite runs on 2 CPU cores.
    weight_decay : float, default 1e-2
        Weight decay (the IMN reference code's value): L2 added to the gradient with
        ``optimizer="adam"``, decoupled with ``"adamw"``.
    optimizer : {"adam", "adamw"}, default "adam"
        ``torch.optim.Adam`` as the IMN reference code (which trains its TabResNet baseline
        with the same optimiser as IMN), or AdamW (decoupled decay).
    warmup_epochs : float, default 5
        Linear learning-rate warm-up (as the IMN reference code).
    scheduler : {"cosine_restarts", "constant"}, default "cosine_restarts"
        Learning rate after warm-up: cosine annealing with warm restarts (T_mult = 2, three
        cycles filling ``epochs``, as the IMN reference code) or constant.
    early_stopping_patience : int or None, default 20
        With ``eval_set`` given to ``fit``: stop after this many epochs without a better
        validation score and restore the best epoch's weights. Ignored without ``eval_set``
        (then all ``epochs`` run); None disables early stopping but still restores the best
        epoch when ``eval_set`` is given.
    random_state : int, RandomState or None, default None
        Seeds initialisation, batch order and dropout. With an int and ``device="cpu"`` two fits
        give bitwise-identical predictions.
    device : str, default "cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``, see
        :func:`mesobench.models.device.resolve_device`.
    n_jobs : int or None, default None
        CPU threads for torch during ``fit`` and ``predict*`` (``torch.set_num_threads``, restored
        afterwards); None keeps torch's setting (all cores). Bitwise reproducibility on the CPU
        holds for a fixed ``n_jobs``.
    precision : {"fp32", "bf16"}, default "fp32"
        Training arithmetic (:func:`mesobench.models.training.train`). ``"bf16"``: the loss
        forward pass runs under bfloat16 autocast (linear layers in bfloat16, on the CPU or a
        CUDA GPU with bf16 support); the loss is reduced in float32 (the logits are cast up),
        and the weights, gradients and optimiser state stay float32. It mainly pays off on GPUs with
        bf16 tensor cores; results differ from fp32 by rounding. ``predict*``,
        ``input_gradients`` and the early-stopping score always run in float32, uncompiled, so
        reported metrics are full precision. Every invalid parameter raises scikit-learn's
        ``InvalidParameterError`` (a ``ValueError``) at ``fit``, before any training.
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
    module_ : TabResNet
        The trained network (on ``device_``).
    device_ : str
        The resolved device.
    n_features_in_ : int
        Number of input features.
    n_outputs_ : int
        Outputs of the head: 1 (binary classification, regression) or the number of classes.
    train_result_ : mesobench.models.training.TrainResult
        Epochs run, best epoch, loss and validation histories.
"""


class _TabResNetBase(TorchEstimator):
    """Parameters, the network and its loss, shared by the classifier and the regressor.

    Saved by :mod:`mesobench.models.persistence`: the network's ``state_dict`` in
    ``weights.pt``, the plain fitted attributes in the manifest.
    """

    def __init__(
        self,
        hidden_size: int = 128,
        n_blocks: int = 2,
        dropout: float = 0.25,
        epochs: int = 100,
        lr: float = 1e-3,
        batch_size: int = 256,
        weight_decay: float = 1e-2,
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

    _parameter_expectations = {**TorchEstimator._parameter_expectations, **TRUNK_PARAMETERS}

    def _loss(self, module: TabResNet, xb: Tensor, yb: Tensor) -> Tensor:
        """The task loss of the network's outputs, reduced in float32 (also under bf16)."""
        return self._task_loss(module(xb).float(), yb)

    def _module_outputs(self, module: TabResNet, X: Tensor) -> Tensor:
        return predict_in_batches(module, X)

    def _validates(self, eval_set) -> bool:
        """An ``eval_set`` is always scored: the best epoch is kept even without patience."""
        return eval_set is not None

    def _build_module(self, n_features: int) -> TabResNet:
        """The (untrained) network of these settings on ``device_``; fit and load build it here."""
        return TabResNet(
            n_features, self.n_outputs_, self.hidden_size, self.n_blocks, self.dropout
        ).to(self.device_)

    def _forward(self, X) -> Tensor:
        """Network output for already-validated rows, on the device."""
        with torch_threads(self.n_jobs):
            return self._module_outputs(self.module_, to_tensor(X, self.device_))

    def _input_gradients(self, X, target, batch_size: int = 1024) -> np.ndarray:
        """∂ network output / ∂x for validated rows, in eval mode, batched on the device.

        ``target``: None → every output, shape (n, F, C_out); an int array (n,) → the output
        ``target[i]`` of row i only, shape (n, F).
        """
        module = self.module_
        module.eval()
        X_t = to_tensor(X, self.device_)
        target_t = None if target is None else torch.as_tensor(target, device=self.device_)
        grads = []
        with torch_threads(self.n_jobs), torch.enable_grad():
            for start in range(0, X_t.shape[0], batch_size):
                xb = X_t[start : start + batch_size].clone().requires_grad_(True)
                out = module(xb)  # (b, C_out)
                if target_t is not None:
                    tb = target_t[start : start + batch_size]
                    picked = out.gather(1, tb[:, None].long()).sum()
                    (g,) = torch.autograd.grad(picked, xb)
                else:
                    cols = [
                        torch.autograd.grad(out[:, c].sum(), xb, retain_graph=True)[0]
                        for c in range(out.shape[1])
                    ]
                    g = torch.stack(cols, dim=2)
                grads.append(g.detach().double().cpu())
        if not grads:
            n_out = module.head.out_features
            return np.zeros((0, X_t.shape[1]) if target is not None else (0, X_t.shape[1], n_out))
        return torch.cat(grads).numpy()


class TabResNetClassifier(TorchClassifier, _TabResNetBase):
    __doc__ = (
        """TabResNet classifier: trunk + Linear(H → C), trained with BCE-with-logits (binary,
    C = 1) or cross-entropy (multiclass, C = #classes).

    Inputs are float features (standardised / one-hot, no NaN); labels may be any sortable
    values (strings, ints), ``classes_`` holds them sorted and ``predict_proba``'s columns follow
    it. ``fit(X, y, eval_set=(X_val, y_val))`` early-stops on the validation one-vs-rest macro
    AUROC (plain AUROC for binary).
"""
        + _COMMON_DOC
    )

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in ``classes_`` order.

        Computed from the float32 logits (the sigmoid in float32), unlike the float64 local
        models of IMN and NIMO, so the base class's version is not used.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        logits = self._forward(X)
        if logits.shape[1] == 1:
            p = torch.sigmoid(logits.squeeze(1)).double()
            proba = torch.stack([1.0 - p, p], dim=1)
        else:
            proba = torch.softmax(logits.double(), dim=1)
        return proba.cpu().numpy()

    def _logits(self, X) -> np.ndarray:
        """The logits (n, C), computed in float32 and returned as float64."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return self._forward(X).double().cpu().numpy()

    def input_gradients(self, X, target=None) -> np.ndarray:
        """Gradient of the logits with respect to the input rows (autograd, eval mode).

        Binary: ∂logit/∂x, shape (n, F). Multiclass: the Jacobian (n, F, C) when ``target`` is
        None, else the gradient of logit ``target[i]`` (class index, in ``classes_`` order) of
        each row i, shape (n, F). Gradient × input is computed by
        :func:`mesobench.metrics.fidelity.attributions`.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        if len(self.classes_) == 2:
            return self._input_gradients(X, np.zeros(len(X), dtype=np.int64))
        if target is None:
            return self._input_gradients(X, None)
        return self._input_gradients(X, np.asarray(target, dtype=np.int64))


class TabResNetRegressor(TorchRegressor, _TabResNetBase):
    __doc__ = (
        """TabResNet regressor: trunk + Linear(H → 1), trained with MSE on the standardised target
    (y − mean) / std, undone at predict time. ``fit(X, y, eval_set=(X_val, y_val))`` early-stops
    on the validation −MSE.
"""
        + _COMMON_DOC
    )

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        out = self._forward(X).squeeze(1).double().cpu().numpy()
        return out * self.y_scale_ + self.y_mean_

    def input_gradients(self, X, target=None) -> np.ndarray:
        """Gradient of ``predict`` (in y's units) with respect to the input rows, shape (n, F).

        ``target`` is accepted for a uniform interface with the classifier and ignored.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return self._input_gradients(X, np.zeros(len(X), dtype=np.int64)) * self.y_scale_
