"""TabResNet trunk shared by TabResNet and the IMN family (Kadra et al., NeurIPS 2024 (IMN), as
the IMN reference code).

The trunk maps a preprocessed instance x ∈ R^F to a representation h ∈ R^H. A model puts its own
head on top: TabResNet a Linear(H → C) that emits logits, IMN a Linear(H → (F+1)·C) that emits the
weights of a per-instance linear model. The estimators' trunk parameters are checked at ``fit``
against :data:`TRUNK_PARAMETERS`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mesobench.config.expect import integer, number

TRUNK_PARAMETERS = {
    "hidden_size": integer(1),
    "n_blocks": integer(0),
    "dropout": number(0, maximum=1),
}
"""What the estimators' trunk parameters must be (checked at ``fit``, before the trunk is built)."""


class TiedDropout(nn.Dropout):
    """``nn.Dropout`` that can give ``copies`` equal slices of a batch the same mask.

    By default (``copies = 1``) it is ``nn.Dropout`` exactly, random stream included. Inside
    :func:`tied_dropout` a batch of ``copies · m`` rows is treated as ``copies`` stacked views of
    the same m instances: one mask is drawn for the first m rows and reused for the others. Why:
    LFR-IMN compares the local model emitted at x with the network's output at a neighbour x'
    of x in one batch ``[x; x']``; with independent masks the two sides are two *different*
    random sub-networks, so the fidelity term measures dropout noise (which does not vanish as
    σ → 0) instead of how well ``w(x)`` describes the network around x.
    """

    copies: int = 1

    def forward(self, x: Tensor) -> Tensor:
        if self.copies == 1 or not self.training or self.p == 0:
            return F.dropout(x, self.p, self.training, self.inplace)
        m = x.shape[0] // self.copies
        keep = torch.empty_like(x[:m]).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        return x * keep.repeat(self.copies, *([1] * (x.dim() - 1)))


@contextmanager
def tied_dropout(module: nn.Module, copies: int = 2) -> Iterator[None]:
    """Within the block, every :class:`TiedDropout` of ``module`` ties ``copies`` batch slices."""
    layers = [m for m in module.modules() if isinstance(m, TiedDropout)]
    for layer in layers:
        layer.copies = copies
    try:
        yield
    finally:
        for layer in layers:
            layer.copies = 1


class ResidualBlock(nn.Module):
    r"""One residual block of the TabResNet trunk.

    .. math::
        r &= \mathrm{Dropout}(h)                                        && \text{skip path}\\
        u &= \mathrm{Dropout}(\mathrm{GELU}(\mathrm{BN}_1(W_1 h + b_1))) \\
        v &= \mathrm{BN}_2(W_2 u + b_2)                                 && \text{residual branch}\\
        h' &= \mathrm{GELU}(v + r)

    As in the reference code the skip path is dropped out too ("dropout on the residual path"),
    with an independent mask, so in training the block sees ``h`` but adds a dropped-out copy.
    ``BN_2`` starts with weight 0, so at initialisation ``v = 0`` and the block reduces to its
    skip path: ``h' = GELU(Dropout(h))``, which is ``GELU(h)`` in eval mode.
    """

    def __init__(self, hidden_size: int, dropout: float) -> None:
        super().__init__()
        self.skip_dropout = TiedDropout(dropout)
        self.linear1 = nn.Linear(hidden_size, hidden_size)
        self.bn1 = nn.BatchNorm1d(hidden_size)
        self.hidden_dropout = TiedDropout(dropout)
        self.linear2 = nn.Linear(hidden_size, hidden_size)
        self.bn2 = nn.BatchNorm1d(hidden_size)
        self.act = nn.GELU()

    def forward(self, h: Tensor) -> Tensor:
        r = self.skip_dropout(h)
        u = self.hidden_dropout(self.act(self.bn1(self.linear1(h))))
        v = self.bn2(self.linear2(u))
        return self.act(v + r)


class TabResNetTrunk(nn.Module):
    r"""TabResNet trunk: an input layer followed by ``n_blocks`` residual blocks.

    .. math::
        h_0 &= \mathrm{Dropout}(\mathrm{GELU}(\mathrm{BN}(W_{in} x + b_{in})))\\
        h_{k+1} &= \mathrm{Block}_k(h_k), \quad k = 0, \dots, n\_blocks - 1
        \quad \text{(see :class:`ResidualBlock`)}

    Output: ``h_{n_blocks}`` of shape ``(batch, hidden_size)``; ``out_features == hidden_size``.

    Initialisation (as the IMN reference code of Kadra et al., NeurIPS 2024): every BatchNorm weight 1 and bias 0, except the last BatchNorm of
    each block, whose weight is 0 so that each block starts as its skip path. Linear layers keep
    PyTorch's default initialisation.

    Parameters
    ----------
    in_features : int
        F, the number of (preprocessed) input features.
    hidden_size : int, default 128
        H, the width of every layer.
    n_blocks : int, default 2
        Number of residual blocks (0 gives the input layer only).
    dropout : float, default 0.25
        Dropout probability, used after the input layer, inside each block and on each block's
        skip path.
    """

    def __init__(
        self, in_features: int, hidden_size: int = 128, n_blocks: int = 2, dropout: float = 0.25
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = hidden_size
        self.input_layer = nn.Linear(in_features, hidden_size)
        self.input_bn = nn.BatchNorm1d(hidden_size)
        self.input_dropout = TiedDropout(dropout)
        self.act = nn.GELU()
        self.blocks = nn.ModuleList(ResidualBlock(hidden_size, dropout) for _ in range(n_blocks))
        self.reset_batchnorm()

    @torch.no_grad()
    def reset_batchnorm(self) -> None:
        """Set every BatchNorm to weight 1 / bias 0, then each block's last BatchNorm weight to 0."""
        for module in self.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.weight.fill_(1.0)
                module.bias.zero_()
        for block in self.blocks:
            block.bn2.weight.zero_()

    def forward(self, x: Tensor) -> Tensor:
        h = self.input_dropout(self.act(self.input_bn(self.input_layer(x))))
        for block in self.blocks:
            h = block(h)
        return h


class MLPTrunk(nn.Module):
    r"""Plain MLP trunk, the hypernetwork of the LFR-IMN reference's synthetic example (Hammer et
    al. 2026 (LFR)).

    .. math::
        h_0 &= \mathrm{Dropout}(\mathrm{GELU}(W_0 x + b_0))\\
        h_{k+1} &= \mathrm{Dropout}(\mathrm{GELU}(W_{k+1} h_k + b_{k+1})),
        \quad k = 0, \dots, n\_layers - 1

    ``n_layers = 1``, ``hidden_size = 64`` and no dropout is the reference ``MLPBackbone``
    (Linear → GELU → Linear → GELU, then the head). No BatchNorm: the output at a row depends on
    that row only, which is what makes the hypernetwork a smooth function of x in train mode.
    """

    def __init__(
        self, in_features: int, hidden_size: int = 64, n_layers: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = hidden_size
        widths = [in_features] + [hidden_size] * (n_layers + 1)
        layers: list[nn.Module] = []
        for d_in, d_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(d_in, d_out), nn.GELU()]
            if dropout > 0:
                layers.append(TiedDropout(dropout))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
