"""What a value must be, and how a message says it: the one vocabulary of value checks.

Used at both edges where a value enters: the runner's command-line settings
(:mod:`mesobench.protocol.boundary`) and an estimator's constructor parameters
(:mod:`mesobench.models.training_settings`), so both say "expected an integer >= 1" alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Expect:
    """What a parameter must be: ``test(value)``, and ``text``, how a message says it."""

    test: Callable[[Any], bool]
    text: str


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)
    )


def integer(minimum: int | None, *, optional: bool = False) -> Expect:
    """An int (not a bool) ``>= minimum`` (None: any int); with ``optional``, None too."""
    text = "an integer" + ("" if minimum is None else f" >= {minimum}")
    text += " or None" if optional else ""
    return Expect(
        lambda v: (optional and v is None) or (_is_int(v) and (minimum is None or v >= minimum)),
        text,
    )


def number(
    minimum: float | None,
    *,
    strict: bool = False,
    maximum: float | None = None,
    optional: bool = False,
) -> Expect:
    """A finite real ``>= minimum`` (``> minimum`` when ``strict``; None: any), ``<= maximum``
    if given."""
    text = "a finite number"
    if minimum is not None:
        text += f" {'>' if strict else '>='} {minimum:g}"
    if maximum is not None:
        text += f" and <= {maximum:g}"
    if optional:
        text += " or None"

    def test(v: Any) -> bool:
        if optional and v is None:
            return True
        if not _is_number(v) or (maximum is not None and v > maximum):
            return False
        if minimum is None:
            return True
        return v > minimum if strict else v >= minimum

    return Expect(test, text)


def one_of(choices: tuple[str, ...], why: str = "") -> Expect:
    """One of the strings ``choices`` (``why``: an explanation appended to the message)."""
    return Expect(lambda v: isinstance(v, str) and v in choices, f"one of {choices}{why}")


BOOLEAN = Expect(lambda v: isinstance(v, (bool, np.bool_)), "True or False")


def integer_or(word: str, minimum: int) -> Expect:
    """An int ``>= minimum``, or the string ``word`` (``threads: auto``)."""
    base = integer(minimum)
    return Expect(lambda v: v == word or base.test(v), f"{base.text} or {word!r}")
