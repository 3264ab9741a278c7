"""TabResNet: the IMN trunk with a plain linear head, the black-box network baseline (SPEC §1).

    logits = W_head · trunk(x) + b_head,   W_head ∈ R^{C×H}

with C = 1 for binary classification (BCE with logits), C = #classes for multiclass (cross-entropy)
and C = 1 for regression (MSE on the standardised target). Trained by
:func:`mesobench.models.training.train`.

For the fidelity metrics the classifier has ``decision_function`` (logits) and both estimators
have ``input_gradients(X)`` (∂output/∂x by autograd): the attribution of a plain network is
gradient × input.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import Tensor, nn
from torch.nn import functional as F

from mesobench.metrics.prediction import ovr_macro_auroc
from mesobench.models.device import resolve_device
from mesobench.models.params import store_init_params
from mesobench.models.persistence import TorchPersistable
from mesobench.models.training import (
    TrainingCurves,
    check_precision_compile,
    encode_class_labels,
    predict_in_batches,
    seed_everything,
    seed_from,
    to_tensor,
    torch_threads,
    train,
    validation_for_auroc,
)
from mesobench.models.trunk import TabResNetTrunk


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
        Width H of the trunk (SPEC §1 default).
    n_blocks : int, default 2
        Number of residual blocks (SPEC §1 default).
    dropout : float, default 0.25
        Dropout probability in the trunk (SPEC §1 default).
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
        Weight decay (SPEC §1 / IMN reference value): L2 added to the gradient with
        ``optimizer="adam"``, decoupled with ``"adamw"``.
    optimizer : {"adam", "adamw"}, default "adam"
        ``torch.optim.Adam`` as the IMN reference code (which trains its TabResNet baseline
        with the same optimiser as IMN), or AdamW (decoupled decay).
    warmup_epochs : float, default 5
        Linear learning-rate warm-up (SPEC §1).
    scheduler : {"cosine_restarts", "constant"}, default "cosine_restarts"
        Learning rate after warm-up: cosine annealing with warm restarts (T_mult = 2, three
        cycles filling ``epochs``, SPEC §1) or constant.
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
        reported metrics are full precision. Invalid values raise ``ValueError`` at ``fit``.
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


class _TabResNetBase(TrainingCurves, TorchPersistable, BaseEstimator):
    """Parameters, ``__init__`` and training shared by the classifier and the regressor.

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

    def _fit_module(self, X: np.ndarray, target: Tensor, out_features: int, loss_fn, val_score):
        """Build the network on ``device_`` and train it; ``val_score(module)`` or None."""
        check_precision_compile(self.precision, self.compile)
        seed = seed_from(self.random_state)
        seed_everything(seed)
        self.n_outputs_ = out_features
        self.module_ = self._build_module(X.shape[1])
        with torch_threads(self.n_jobs):
            self.train_result_ = train(
                self.module_,
                loss_fn,
                to_tensor(X, self.device_),
                target.to(self.device_),
                epochs=self.epochs,
                batch_size=self.batch_size,
                lr=self.lr,
                weight_decay=self.weight_decay,
                optimizer=self.optimizer,
                warmup_epochs=self.warmup_epochs,
                scheduler=self.scheduler,
                val_score=val_score,
                patience=self.early_stopping_patience if val_score is not None else None,
                seed=seed,
                log_every_s=0.0 if self.verbose else 10.0,
                precision=self.precision,
                compile=self.compile,
            )

    def _build_module(self, n_features: int) -> TabResNet:
        """The (untrained) network of these settings on ``device_``; fit and load build it here."""
        return TabResNet(
            n_features, self.n_outputs_, self.hidden_size, self.n_blocks, self.dropout
        ).to(self.device_)

    def _forward(self, X) -> Tensor:
        """Network output for already-validated rows, on the device."""
        with torch_threads(self.n_jobs):
            return predict_in_batches(self.module_, to_tensor(X, self.device_))

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


class TabResNetClassifier(ClassifierMixin, _TabResNetBase):
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

    def fit(self, X, y, eval_set=None):
        X, y = validate_data(self, X, y, dtype=np.float32, ensure_min_samples=2)
        self.device_ = resolve_device(self.device)
        self.classes_, y_idx = encode_class_labels(y)
        binary = len(self.classes_) == 2
        if binary:
            target = torch.as_tensor(y_idx, dtype=torch.float32)

            def loss_fn(module, xb, yb):
                return F.binary_cross_entropy_with_logits(module(xb).squeeze(1).float(), yb)
        else:
            target = torch.as_tensor(y_idx, dtype=torch.long)

            def loss_fn(module, xb, yb):
                return F.cross_entropy(module(xb).float(), yb)

        val_score = None
        validation = (
            validation_for_auroc(self, eval_set, np.float32) if eval_set is not None else None
        )
        if validation is not None:
            X_val, y_val_idx = validation
            X_val_t = to_tensor(X_val, self.device_)

            def val_score(module):
                scores = _class_scores(predict_in_batches(module, X_val_t))
                return ovr_macro_auroc(y_val_idx, scores.cpu().numpy())

        out_features = 1 if binary else len(self.classes_)
        self._fit_module(X, target, out_features, loss_fn, val_score)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in ``classes_`` order."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        logits = self._forward(X)
        if logits.shape[1] == 1:
            p = torch.sigmoid(logits.squeeze(1)).double()
            proba = torch.stack([1.0 - p, p], dim=1)
        else:
            proba = torch.softmax(logits.double(), dim=1)
        return proba.cpu().numpy()

    def predict(self, X) -> np.ndarray:
        """Most probable class label for each row."""
        check_is_fitted(self)  # NotFittedError, not an AttributeError on classes_
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def decision_function(self, X) -> np.ndarray:
        """Logits: shape (n,) for binary (positive class), (n, C) for multiclass."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        logits = self._forward(X).double().cpu().numpy()
        return logits[:, 0] if logits.shape[1] == 1 else logits

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


class TabResNetRegressor(RegressorMixin, _TabResNetBase):
    __doc__ = (
        """TabResNet regressor: trunk + Linear(H → 1), trained with MSE on the standardised target
    (y − mean) / std, undone at predict time. ``fit(X, y, eval_set=(X_val, y_val))`` early-stops
    on the validation −MSE.
"""
        + _COMMON_DOC
    )

    def fit(self, X, y, eval_set=None):
        X, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True, ensure_min_samples=2)
        self.device_ = resolve_device(self.device)
        y = np.asarray(y, dtype=np.float64)
        self.y_mean_ = float(y.mean())
        self.y_scale_ = float(y.std()) or 1.0
        target = torch.as_tensor((y - self.y_mean_) / self.y_scale_, dtype=torch.float32)

        def loss_fn(module, xb, yb):
            return F.mse_loss(module(xb).squeeze(1).float(), yb)

        val_score = None
        if eval_set is not None:
            X_val, y_val = eval_set
            X_val = validate_data(self, X_val, reset=False, dtype=np.float32)
            X_val_t = to_tensor(X_val, self.device_)
            y_val_std = (np.asarray(y_val, dtype=np.float64) - self.y_mean_) / self.y_scale_
            y_val_t = to_tensor(y_val_std, self.device_)

            def val_score(module):
                return -float(F.mse_loss(predict_in_batches(module, X_val_t).squeeze(1), y_val_t))

        self._fit_module(X, target, 1, loss_fn, val_score)
        return self

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


def _class_scores(logits: Tensor) -> Tensor:
    """Per-class scores for AUROC: the logit itself for binary (C = 1), softmax otherwise."""
    return logits if logits.shape[1] == 1 else torch.softmax(logits, dim=1)
