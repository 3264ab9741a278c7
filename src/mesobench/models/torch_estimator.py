"""The base classes of the torch estimators (TabResNet, IMN, LFR-IMN, NIMO).

Why one base: the four models train alike through :func:`mesobench.models.training.train` and
differ only in their network, their loss and how they read it out. What they share is written
here once:

* the parameter check: every constructor parameter is checked at the start of ``fit``, before
  the data are read, the network is built or a step is taken (the training settings as a
  :class:`~mesobench.models.training_settings.TrainingSettings`, the model's own parameters by
  its ``_parameter_expectations``), raising
  :class:`~mesobench.errors.InvalidParameterError`;
* the ``fit`` preamble (validated rows, device, target encoding) for classifiers
  (:class:`TorchClassifier`: label codes, one output for binary, one per class otherwise) and
  regressors (:class:`TorchRegressor`: the standardised target), the validation score for
  early stopping (AUROC via :func:`class_scores`, or −MSE), and the task loss;
* the training call (:meth:`TorchEstimator._fit_network`): seeding, the network, the thread
  setting, the trainer;
* ``training_curves``, and the classifiers' ``decision_function`` / ``predict``.

A model implements ``_build_module`` (also used to load a saved model), ``_loss`` and
``_module_outputs``, and may override the hooks ``_batch_size``, ``_training_inputs``,
``_validates`` and ``_epoch_score``. The constructor parameters stay the models' own (configs
and run keys name them).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_regressor
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import Tensor, nn
from torch.nn import functional as F

from mesobench.config.expect import Expect, integer
from mesobench.metrics.prediction import ovr_macro_auroc
from mesobench.models.device import resolve_device
from mesobench.models.persistence import TorchPersistable
from mesobench.models.training import (
    encode_class_labels,
    encode_eval_labels,
    seed_everything,
    seed_from,
    to_tensor,
    torch_threads,
    train,
)
from mesobench.models.training_settings import TrainingSettings, check_parameters

ValScore = Callable[[nn.Module], float]


def class_scores(logits: Tensor) -> Tensor:
    """Per-class scores for AUROC: the logit itself for binary (C = 1), softmax otherwise."""
    return logits if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


class TorchEstimator(TorchPersistable, BaseEstimator):
    """Parameter check, training and curves shared by the torch estimators (module docstring).

    ``_input_dtype``: the dtype ``fit`` reads X (and the validation rows) in.
    ``_parameter_expectations``: the model's parameters outside the training settings, each
    with its :class:`~mesobench.models.training_settings.Expect`.
    """

    _input_dtype: ClassVar[Any] = np.float32
    _parameter_expectations: ClassVar[dict[str, Expect]] = {"n_jobs": integer(1, optional=True)}

    def _checked_settings(self) -> TrainingSettings:
        """Check every parameter; the training settings, ready for :func:`train`."""
        params = self.get_params(deep=False)
        check_parameters(params, self._parameter_expectations)
        return TrainingSettings.from_params(params, log_every_s=0.0 if self.verbose else 10.0)

    def fit(self, X, y, eval_set=None):
        """Fit on ``(X, y)``; ``eval_set=(X_val, y_val)`` gives the validation score that picks
        the epoch to keep and, with ``early_stopping_patience``, stops the training."""
        settings = self._checked_settings()
        X, y = validate_data(
            self,
            X,
            y,
            dtype=self._input_dtype,
            y_numeric=is_regressor(self),
            ensure_min_samples=2,
        )
        self.device_ = resolve_device(self.device)
        target = self._encode_target(y)
        self._fit_network(X, target, self._validation_score(eval_set), settings)
        return self

    def _fit_network(
        self,
        X: np.ndarray,
        target: Tensor,
        val_score: ValScore | None,
        settings: TrainingSettings,
        on_cycle_end: Callable[[int, nn.Module], None] | None = None,
    ) -> tuple[Tensor, Tensor, int]:
        """Seed, build ``module_`` on ``device_`` and train it under the fit's thread setting.

        ``early_stopping_patience`` applies only when there is a ``val_score``. Returns the
        training tensors and the seed, for a model that post-processes its fit (NIMO's β refit).
        """
        seed = seed_from(self.random_state)
        seed_everything(seed)
        patience = settings.early_stopping_patience if val_score is not None else None
        settings = replace(
            settings,
            seed=seed,
            batch_size=self._batch_size(*X.shape),
            early_stopping_patience=patience,
        )
        self.module_ = self._build_module(X.shape[1])
        with torch_threads(self.n_jobs):
            X_t, y_t = to_tensor(X, self.device_), target.to(self.device_)
            self.train_result_ = train(
                self.module_,
                self._loss,
                self._training_inputs(X_t),
                y_t,
                settings,
                val_score=self._epoch_score(val_score, X_t, y_t, seed),
                on_cycle_end=on_cycle_end,
            )
        return X_t, y_t, seed

    # ---- hooks --------------------------------------------------------------------------------

    def _loss(self, module: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
        """The scalar loss of one training batch (module in training mode)."""
        raise NotImplementedError

    def _module_outputs(self, module: nn.Module, X: Tensor) -> Tensor:
        """The network's outputs (n, C) on rows ``X`` (logits, or the standardised prediction)."""
        raise NotImplementedError

    def _batch_size(self, n_rows: int, n_features: int) -> int:
        """Rows per step of this fit (here ``batch_size`` itself)."""
        return self.batch_size

    def _training_inputs(self, X: Tensor) -> Tensor:
        """The per-row tensor the trainer slices into batches for :meth:`_loss` (here X itself).

        A variant that needs more per-row data in its loss appends it as extra columns (LFR-IMN
        with SMOTE neighbourhoods: each row's nearest training neighbour), so the trainer stays
        generic. Called once per fit, on the device, under the fit's thread setting.
        """
        return X

    def _epoch_score(
        self, val_score: ValScore | None, X: Tensor, y: Tensor, seed: int
    ) -> ValScore | None:
        """The score the trainer takes after each epoch, given the fit's training tensors and
        seed; here ``val_score`` itself (NIMO: β re-solved on the training rows first)."""
        return val_score

    def _validates(self, eval_set) -> bool:
        """Whether ``eval_set`` is scored: only for early stopping (TabResNet: whenever given)."""
        return eval_set is not None and self.early_stopping_patience is not None

    def _validation_outputs(self, X_val: np.ndarray) -> Callable[[nn.Module], Tensor]:
        """``outputs(module)`` on fixed validation rows (tensor built once)."""
        X_val_t = to_tensor(X_val, self.device_)
        return lambda module: self._module_outputs(module, X_val_t)

    def _encode_target(self, y: np.ndarray) -> Tensor:
        raise NotImplementedError

    def _validation_score(self, eval_set) -> ValScore | None:
        raise NotImplementedError

    # ---- after fitting ------------------------------------------------------------------------

    def training_curves(self) -> dict[str, list[float]]:
        """Per-epoch series of the final fit, see :meth:`~mesobench.models.training.TrainResult
        .curves` (the runner logs them as MLflow step metrics without reaching into
        ``train_result_``)."""
        check_is_fitted(self, "train_result_")
        return self.train_result_.curves()


class TorchClassifier(ClassifierMixin, TorchEstimator):
    """Label codes as the target, AUROC for early stopping, BCE / cross-entropy, and the
    outputs read as classes. A model implements ``_logits(X)``: checked rows → float64 (n, C)."""

    def _encode_target(self, y: np.ndarray) -> Tensor:
        """Sets ``classes_`` and ``n_outputs_`` (1 for binary, else the class count); the codes
        as float 0/1 (binary, for BCE) or int64 (multiclass, for cross-entropy)."""
        self.classes_, codes = encode_class_labels(y)
        binary = len(self.classes_) == 2
        self.n_outputs_ = 1 if binary else len(self.classes_)
        return torch.as_tensor(codes, dtype=torch.float32 if binary else torch.long)

    def _validation_score(self, eval_set) -> ValScore | None:
        """AUROC (one-vs-rest macro for multiclass) on ``eval_set``, or None where undefined."""
        if not self._validates(eval_set):
            return None
        X_val, y_val = eval_set
        X_val = validate_data(self, X_val, reset=False, dtype=self._input_dtype)
        keep, codes = encode_eval_labels(self.classes_, y_val)
        if len(np.unique(codes)) < 2:
            warnings.warn(
                "eval_set holds fewer than two of the training classes, so validation AUROC is "
                "undefined: training runs all epochs without early stopping.",
                stacklevel=3,
            )
            return None
        outputs = self._validation_outputs(X_val[keep])

        def val_score(module: nn.Module) -> float:
            return ovr_macro_auroc(codes, class_scores(outputs(module)).cpu().numpy())

        return val_score

    def _task_loss(self, out: Tensor, yb: Tensor) -> Tensor:
        """BCE with logits (binary, one output) or cross-entropy, on float32 outputs (n, C)."""
        if self.n_outputs_ == 1:
            return F.binary_cross_entropy_with_logits(out[:, 0], yb)
        return F.cross_entropy(out, yb)

    def _logits(self, X) -> np.ndarray:
        raise NotImplementedError

    def decision_function(self, X) -> np.ndarray:
        """Logits: shape (n,) for binary (positive class), (n, C) for multiclass."""
        z = self._logits(X)
        return z[:, 0] if self.n_outputs_ == 1 else z

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in ``classes_`` order."""
        z = torch.from_numpy(self._logits(X))
        if self.n_outputs_ == 1:
            p = torch.sigmoid(z[:, 0])
            return torch.stack([1.0 - p, p], dim=1).numpy()
        return torch.softmax(z, dim=1).numpy()

    def predict(self, X) -> np.ndarray:
        """Most probable class label for each row."""
        check_is_fitted(self)  # NotFittedError, not an AttributeError on classes_
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class TorchRegressor(RegressorMixin, TorchEstimator):
    """The standardised target ``(y − m) / s``, −MSE for early stopping and the MSE loss."""

    def _encode_target(self, y: np.ndarray) -> Tensor:
        """Sets ``n_outputs_`` (1), ``y_mean_`` (m) and ``y_scale_`` (s; 1 for a constant y)."""
        self.n_outputs_ = 1
        y = np.asarray(y, dtype=np.float64)
        self.y_mean_ = float(y.mean())
        self.y_scale_ = float(y.std()) or 1.0
        return torch.as_tensor((y - self.y_mean_) / self.y_scale_, dtype=torch.float32)

    def _validation_score(self, eval_set) -> ValScore | None:
        """−MSE on ``eval_set``, in the standardised units the network is trained in."""
        if not self._validates(eval_set):
            return None
        X_val = validate_data(self, eval_set[0], reset=False, dtype=self._input_dtype)
        outputs = self._validation_outputs(X_val)
        y_val = (np.asarray(eval_set[1], dtype=np.float64) - self.y_mean_) / self.y_scale_
        y_val_t = to_tensor(y_val, self.device_)

        def val_score(module: nn.Module) -> float:
            return -float(F.mse_loss(outputs(module)[:, 0], y_val_t))

        return val_score

    def _task_loss(self, out: Tensor, yb: Tensor) -> Tensor:
        """MSE of the first (only) output against the standardised target."""
        return F.mse_loss(out[:, 0], yb)
