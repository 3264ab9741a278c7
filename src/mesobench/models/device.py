"""Turn the user's ``device`` setting into a concrete torch device string.

Every estimator takes ``device`` as a plain string and resolves it at ``fit`` time (never in
``__init__``), so a config written on a GPU machine still constructs on a laptop and fails, if at
all, with a message that says what to do.
"""

from __future__ import annotations

import re

import torch

from mesobench.errors import ConfigError

_CUDA_INSTALL_HINT = (
    "Install a CUDA build of PyTorch (see https://pytorch.org/get-started/locally/, e.g. "
    "`pip install torch --index-url https://download.pytorch.org/whl/cu126`) on a machine with an "
    "NVIDIA GPU, or run with device=cpu (or device=auto, which falls back to the CPU)."
)


def resolve_device(device: str) -> str:
    """Return ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` for a user's device setting.

    Parameters
    ----------
    device : str
        ``"cpu"``; ``"cuda"`` or ``"cuda:N"`` (a CUDA device, which must exist); or ``"auto"``,
        which picks ``"cuda"`` when ``torch.cuda.is_available()`` and ``"cpu"`` otherwise.

    Raises
    ------
    ConfigError
        The value is not one of the above, or a CUDA device was asked for and this PyTorch build
        cannot see one (the message says how to get a CUDA build or fall back to the CPU).

    Notes
    -----
    Availability is judged by PyTorch, also for XGBoost and CatBoost: a PyTorch CPU build with a
    GPU build of XGBoost still refuses ``device="cuda"``.
    """
    name = str(device).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise ConfigError(
            f"Unknown device {device!r}: use cpu, cuda, cuda:N (N = GPU index) or auto."
        )
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device={device!r} was requested but PyTorch {torch.__version__} sees no CUDA GPU "
            f"(torch.cuda.is_available() is False). {_CUDA_INSTALL_HINT}"
        )
    index = match.group(1)
    if index is not None and int(index) >= torch.cuda.device_count():
        raise ConfigError(
            f"device={device!r} was requested but only {torch.cuda.device_count()} CUDA device(s) "
            f"are visible (indices 0..{torch.cuda.device_count() - 1}); pick one of them or use "
            "device=cuda."
        )
    return name
