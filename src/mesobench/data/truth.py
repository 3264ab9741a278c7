"""The ground truth of the synthetic tasks (the LFR and NIMO papers): functions and derivatives.

Each generator's function f is written once, in torch (float64, vectorised over rows), and
everything else is derived from it: the noise-free mean, the gradient ∂f/∂x (autograd), the
local intercept f(x) − ∇f(x)·x, and the global coefficients (the gradient at x = 0, which is the
NIMO mean marginal effect β; for ``linear`` that is its β).

Generators (x ~ U(−2, 2)^d unless noted, ε ~ N(0, noise²), noise = 0.1 in the papers):

=============  ===  ============  ===============================================================
name           d    kind          f(x)
=============  ===  ============  ===============================================================
lfr_example    2    regression    1 + x1 + x2 + x1·x2, x ~ N(0, I_2)  (LFR paper)
lfr_smooth3    3    regression    x1 + 2x2 − x3 + x1·x2 + 0.5·x2·x3, x ~ N(0, I_3)
lfr_sine3      3    regression    sin x1 + x2·cos x3, x ~ N(0, I_3)
lfr_tanh4      4    regression    tanh(x1 + x2) + x3·x4 + 0.5·x4, x ~ N(0, I_4)
lfr_quad3      3    regression    0.5·x1² − 0.5·x2² + x1·x3, x ~ N(0, I_3)
toy            3    regression    3x1[1 + tanh(10x2)] − 3x2[1 + sin(−2x1)] + 0·x3
r1             5    regression    3x1[1 + (2σ(x2x3) − 1)] − 2x2 + 2x3
r2             10   regression    x1[1 + tanh(x2x3 + sin x4)] + 2x2[1 + sin(2x1)]
                                  − x3[1 + (2/π)arctan(x2x4)]
r3             50   regression    −2x1[1 + tanh(x2x4)] + 2x2[1 + (2/π)arctan(x4 − x5)]
                                  + 3x4[1 + tanh(x2 + sin x5)] − x5[1 + (2σ(x1x4) − 1)]
linear         10   regression    Σ β_j x_j, β = (−5, −4, ..., 4)
c1             3    binary        logit 2x1[1 + 2tanh x2] − 2x2[1 + 3sin(2x1) + tanh(2x1)] + 1
c2             10   binary        logit 10x1[1 + 2tanh(2x2) + sin x4] + 20x2[1 + 2cos(2x1)]
                                  − 20x3[1 + 2arctan(x2x4)] + 10x4 − 10
c3             50   binary        logit: r3 with coefficients −20, 20, 30, −10
=============  ===  ============  ===============================================================

Regression: y = f(x) + ε. Classification: y ~ Bernoulli(σ(f(x) + ε)), labels 0/1, and the truth's
``mean`` is the noise-free logit f(x). Note that the MEM at 0 need not equal the printed
coefficient: for c2, ∂f/∂x2(0) = 20·(1 + 2cos 0) = 60.

Sampling data from these functions is :mod:`mesobench.data.synthetic`'s job; this module is
what the fold (:class:`~mesobench.data.fold.FoldData`), the oracle model and the fidelity
metrics need to know about a task's truth, with no dependency on how folds are drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from mesobench.errors import ConfigError

TorchFn = Callable[[torch.Tensor], torch.Tensor]


def _sigmoid_pm(t: torch.Tensor) -> torch.Tensor:
    """2σ(t) − 1, in (−1, 1)."""
    return 2.0 * torch.sigmoid(t) - 1.0


def _atan_pm(t: torch.Tensor) -> torch.Tensor:
    """(2/π)·arctan(t), in (−1, 1)."""
    return (2.0 / math.pi) * torch.atan(t)


def _f_lfr_example(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[:, 0], x[:, 1]
    return 1.0 + x1 + x2 + x1 * x2


def _f_toy(x: torch.Tensor) -> torch.Tensor:
    x1, x2, x3 = x[:, 0], x[:, 1], x[:, 2]
    return 3 * x1 * (1 + torch.tanh(10 * x2)) - 3 * x2 * (1 + torch.sin(-2 * x1)) + 0 * x3


def _f_r1(x: torch.Tensor) -> torch.Tensor:
    x1, x2, x3 = x[:, 0], x[:, 1], x[:, 2]
    return 3 * x1 * (1 + _sigmoid_pm(x2 * x3)) - 2 * x2 + 2 * x3


def _f_r2(x: torch.Tensor) -> torch.Tensor:
    x1, x2, x3, x4 = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
    return (
        x1 * (1 + torch.tanh(x2 * x3 + torch.sin(x4)))
        + 2 * x2 * (1 + torch.sin(2 * x1))
        - x3 * (1 + _atan_pm(x2 * x4))
    )


def _r3_shape(x: torch.Tensor, a: float, b: float, c: float, e: float) -> torch.Tensor:
    """R3's function with coefficients (a, b, c, e) on x1, x2, x4, x5."""
    x1, x2, x4, x5 = x[:, 0], x[:, 1], x[:, 3], x[:, 4]
    return (
        a * x1 * (1 + torch.tanh(x2 * x4))
        + b * x2 * (1 + _atan_pm(x4 - x5))
        + c * x4 * (1 + torch.tanh(x2 + torch.sin(x5)))
        + e * x5 * (1 + _sigmoid_pm(x1 * x4))
    )


def _f_r3(x: torch.Tensor) -> torch.Tensor:
    return _r3_shape(x, -2.0, 2.0, 3.0, -1.0)


LINEAR_BETA = np.arange(-5.0, 5.0)  # (−5, −4, ..., 4)


def _f_linear(x: torch.Tensor) -> torch.Tensor:
    return x @ torch.as_tensor(LINEAR_BETA, dtype=x.dtype, device=x.device)


def _f_c1(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[:, 0], x[:, 1]
    return (
        2 * x1 * (1 + 2 * torch.tanh(x2))
        - 2 * x2 * (1 + 3 * torch.sin(2 * x1) + torch.tanh(2 * x1))
        + 1.0
    )


def _f_c2(x: torch.Tensor) -> torch.Tensor:
    x1, x2, x3, x4 = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
    return (
        10 * x1 * (1 + 2 * torch.tanh(2 * x2) + torch.sin(x4))
        + 20 * x2 * (1 + 2 * torch.cos(2 * x1))
        - 20 * x3 * (1 + 2 * torch.atan(x2 * x4))
        + 10 * x4
        - 10.0
    )


def _f_c3(x: torch.Tensor) -> torch.Tensor:
    return _r3_shape(x, -20.0, 20.0, 30.0, -10.0)


def _f_lfr_smooth3(x: torch.Tensor) -> torch.Tensor:
    x1, x2, x3 = x[:, 0], x[:, 1], x[:, 2]
    return x1 + 2 * x2 - x3 + x1 * x2 + 0.5 * x2 * x3


def _f_lfr_sine3(x: torch.Tensor) -> torch.Tensor:
    x1, x2, x3 = x[:, 0], x[:, 1], x[:, 2]
    return torch.sin(x1) + x2 * torch.cos(x3)


def _f_lfr_tanh4(x: torch.Tensor) -> torch.Tensor:
    x1, x2, x3, x4 = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
    return torch.tanh(x1 + x2) + x3 * x4 + 0.5 * x4


def _f_lfr_quad3(x: torch.Tensor) -> torch.Tensor:
    x1, x2, x3 = x[:, 0], x[:, 1], x[:, 2]
    return 0.5 * x1**2 - 0.5 * x2**2 + x1 * x3


@dataclass(frozen=True)
class GeneratorSpec:
    """One synthetic generator: dimension, kind, input distribution and its function."""

    name: str
    n_features: int
    kind: str  # "regression" | "binary"
    fn: TorchFn = field(repr=False)
    distribution: str = "uniform"  # "uniform": U(−2, 2)^d, "normal": N(0, I_d)


GENERATORS: dict[str, GeneratorSpec] = {
    s.name: s
    for s in (
        GeneratorSpec("lfr_example", 2, "regression", _f_lfr_example, "normal"),
        GeneratorSpec("lfr_smooth3", 3, "regression", _f_lfr_smooth3, "normal"),
        GeneratorSpec("lfr_sine3", 3, "regression", _f_lfr_sine3, "normal"),
        GeneratorSpec("lfr_tanh4", 4, "regression", _f_lfr_tanh4, "normal"),
        GeneratorSpec("lfr_quad3", 3, "regression", _f_lfr_quad3, "normal"),
        GeneratorSpec("toy", 3, "regression", _f_toy),
        GeneratorSpec("r1", 5, "regression", _f_r1),
        GeneratorSpec("r2", 10, "regression", _f_r2),
        GeneratorSpec("r3", 50, "regression", _f_r3),
        GeneratorSpec("linear", 10, "regression", _f_linear),
        GeneratorSpec("c1", 3, "binary", _f_c1),
        GeneratorSpec("c2", 10, "binary", _f_c2),
        GeneratorSpec("c3", 50, "binary", _f_c3),
    )
}


def get_generator(name: str) -> GeneratorSpec:
    """The generator called ``name`` (case-insensitive); ConfigError listing the known ones."""
    key = str(name).lower()
    if key not in GENERATORS:
        raise ConfigError(
            f"unknown synthetic generator {name!r}; known generators: {', '.join(GENERATORS)}"
        )
    return GENERATORS[key]


class SyntheticTruth:
    """Ground truth of a synthetic task, in raw feature units.

    Attributes:
        generator: Generator name.
        kind: ``"regression"`` or ``"binary"``.
        n_features: Input dimension d.
        noise: Standard deviation of ε.
        coefficients: True global β, the gradient of f at x = 0 (NIMO's mean marginal effect;
            toy: (3, −3, 0); linear: its β; lfr_example: (1, 1)).
        intercept: True β0 = f(0).
    """

    def __init__(self, generator: str, noise: float = 0.1) -> None:
        spec = get_generator(generator)
        self.generator = spec.name
        self.kind = spec.kind
        self.n_features = spec.n_features
        self.noise = float(noise)
        zero = np.zeros((1, spec.n_features))
        self.coefficients: np.ndarray = self.gradient(zero)[0]
        self.intercept: float = float(self.mean(zero)[0])

    @property
    def _fn(self) -> TorchFn:
        return GENERATORS[self.generator].fn

    def _as_tensor(self, X: Any) -> torch.Tensor:
        arr = np.array(X.to_numpy() if isinstance(X, pd.DataFrame) else X, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != self.n_features:
            raise ValueError(
                f"{self.generator} expects X of shape (n, {self.n_features}), got {arr.shape}"
            )
        return torch.from_numpy(arr)  # np.array copies: writable and contiguous

    def mean(self, X: Any) -> np.ndarray:
        """Noise-free f(x): the regression mean, or the logit for classification. Shape (n,)."""
        with torch.no_grad():
            return self._fn(self._as_tensor(X)).numpy().copy()

    def proba(self, X: Any) -> np.ndarray:
        """P(y = 1 | x) = σ(f(x)) for classification (ignoring ε). Shape (n,)."""
        if self.kind == "regression":
            raise ValueError(f"{self.generator} is a regression task; it has no probabilities")
        return 1.0 / (1.0 + np.exp(-self.mean(X)))

    def gradient(self, X: Any) -> np.ndarray:
        """∂f/∂x at each row of X by autograd, shape (n, d)."""
        x = self._as_tensor(X).clone().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(self._fn(x).sum(), x)
        return grad.numpy().copy()

    def local_intercept(self, X: Any) -> np.ndarray:
        """f(x) − ∇f(x)·x, the intercept of the tangent plane at x. Shape (n,)."""
        x = self._as_tensor(X).numpy()
        return self.mean(x) - np.einsum("ij,ij->i", self.gradient(x), x)

    def __repr__(self) -> str:
        return f"SyntheticTruth(generator={self.generator!r}, noise={self.noise})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SyntheticTruth)
            and other.generator == self.generator
            and other.noise == self.noise
        )

    def __hash__(self) -> int:
        return hash((self.generator, self.noise))
