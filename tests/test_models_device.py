"""resolve_device: what a user's device setting turns into."""

from __future__ import annotations

import pytest
import torch

from mesobench.errors import ConfigError
from mesobench.models import resolve_device

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


def test_cpu_is_cpu():
    assert resolve_device("cpu") == "cpu"


def test_auto_picks_cuda_only_when_available():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


@no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "CUDA"])
def test_cuda_without_a_gpu_says_how_to_get_one_or_fall_back(device):
    with pytest.raises(ConfigError, match="device=cpu") as info:
        resolve_device(device)
    assert "CUDA build of PyTorch" in str(info.value)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tpu", ""])
def test_unknown_device_names_are_rejected(device):
    with pytest.raises(ConfigError, match="Unknown device"):
        resolve_device(device)
