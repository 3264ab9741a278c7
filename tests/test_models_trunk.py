"""TabResNet trunk: shapes, initialisation and the residual structure of SPEC §1."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mesobench.models.trunk import TabResNetTrunk, TiedDropout, tied_dropout


@pytest.fixture
def trunk() -> TabResNetTrunk:
    torch.manual_seed(0)
    return TabResNetTrunk(in_features=7, hidden_size=16, n_blocks=3, dropout=0.25)


def test_output_has_hidden_size_columns(trunk):
    out = trunk(torch.randn(5, 7))
    assert out.shape == (5, 16)
    assert trunk.out_features == 16


def test_block_count_follows_n_blocks():
    assert len(TabResNetTrunk(4, 8, n_blocks=0).blocks) == 0
    assert len(TabResNetTrunk(4, 8, n_blocks=4).blocks) == 4


def test_batchnorm_starts_at_weight_one_bias_zero_except_each_blocks_last(trunk):
    last_bns = {id(block.bn2) for block in trunk.blocks}
    for module in trunk.modules():
        if isinstance(module, nn.BatchNorm1d):
            expected_weight = 0.0 if id(module) in last_bns else 1.0
            assert torch.all(module.weight == expected_weight)
            assert torch.all(module.bias == 0)


def test_each_block_starts_as_its_skip_path(trunk):
    """Zero-initialised BN2 makes the residual branch exactly 0: block(h) = GELU(h) in eval mode."""
    trunk.train()
    trunk(torch.randn(64, 7))  # update running statistics, as training would
    trunk.eval()
    h = torch.randn(32, 16)
    for block in trunk.blocks:
        assert torch.equal(block(h), F.gelu(h))


def test_at_init_the_trunk_is_input_layer_then_gelu_per_block(trunk):
    trunk.eval()
    x = torch.randn(10, 7)
    h = F.gelu(trunk.input_bn(trunk.input_layer(x)))
    for _ in trunk.blocks:
        h = F.gelu(h)
    assert torch.allclose(trunk(x), h)


def test_training_the_last_bn_makes_blocks_nonlinear(trunk):
    with torch.no_grad():
        trunk.blocks[0].bn2.weight.fill_(1.0)
    trunk.eval()
    h = torch.randn(32, 16)
    assert not torch.allclose(trunk.blocks[0](h), F.gelu(h))


def test_dropout_acts_on_the_skip_path_in_training_mode():
    """With the branch at zero, a training-mode block outputs GELU(Dropout(h)): some units are 0."""
    torch.manual_seed(0)
    block = TabResNetTrunk(3, 64, n_blocks=1, dropout=0.5).blocks[0]
    block.train()
    h = torch.rand(256, 64) + 1.0  # positive, so GELU(h) > 0 wherever h was kept
    out = block(h)
    zeroed = (out == 0).float().mean().item()
    assert 0.4 < zeroed < 0.6
    kept = out != 0
    assert torch.allclose(out[kept], F.gelu(2.0 * h)[kept])  # inverted dropout scales by 1/(1-p)


def test_eval_mode_is_deterministic(trunk):
    trunk.eval()
    x = torch.randn(8, 7)
    assert torch.equal(trunk(x), trunk(x))


def test_tied_dropout_is_plain_dropout_outside_the_context():
    layer, plain = TiedDropout(0.3).train(), nn.Dropout(0.3).train()
    x = torch.ones(8, 5)
    torch.manual_seed(1)
    ours = layer(x)
    torch.manual_seed(1)
    torch.testing.assert_close(ours, plain(x))  # same random stream, same mask


def test_tied_dropout_gives_both_halves_of_the_batch_one_mask():
    trunk = TabResNetTrunk(4, hidden_size=16, n_blocks=1, dropout=0.5).train()
    layer = trunk.input_dropout
    x = torch.randn(6, 16)
    with tied_dropout(trunk):
        out = layer(torch.cat([x, 2 * x]))
    torch.testing.assert_close(out[6:], 2 * out[:6])  # the same units dropped for x and x'
    assert (out[:6] == 0).any()
    assert layer.copies == 1  # restored
    # BatchNorm statistics aside, a trunk sees x and its copy through the same sub-network
    x4 = torch.randn(6, 4)
    with tied_dropout(trunk):
        h = trunk(torch.cat([x4, x4]))
    torch.testing.assert_close(h[:6], h[6:])
