"""scikit-learn's constructor contract, written once.

An estimator's ``__init__`` must list every parameter explicitly (``get_params`` reads the
signature) and store each one unchanged under its own name, doing nothing else (validation
happens in ``fit``). :func:`store_init_params` does the storing, so a constructor is its
signature and one call, and a subclass that adds parameters needs no chain of ``super()``
calls restating its parent's.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any


def store_init_params(estimator: Any, values: Mapping[str, Any]) -> None:
    """Set every parameter of ``type(estimator).__init__`` from ``values`` (its ``locals()``)."""
    for name in inspect.signature(type(estimator).__init__).parameters:
        if name != "self":
            setattr(estimator, name, values[name])
