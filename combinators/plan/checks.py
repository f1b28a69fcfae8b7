"""Argument checks shared by every constructor: each names the bad value.

>>> positive_int("batch size", 0)
Traceback (most recent call last):
...
combinators.errors.InvalidArgument: batch size must be an integer >= 1, got 0
"""

from __future__ import annotations

import functools
import inspect
import numbers
from typing import Any, Callable, Iterable

import numpy as np

from combinators.errors import InvalidArgument, InvalidArgumentType

__all__ = [
    "positive_int", "non_negative_int", "one_of", "a_callable", "probability", "positive_number", "instance_of",
]


def _is_integer(value: Any) -> bool:
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def _integer(what: str, value: Any, minimum: int) -> int:
    if not _is_integer(value):
        msg = f"{what} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})"
        raise InvalidArgumentType(msg)
    if value < minimum:
        msg = f"{what} must be an integer >= {minimum}, got {value!r}"
        raise InvalidArgument(msg)
    return int(value)


def positive_int(what: str, value: Any) -> int:
    """``value`` as an int, if it is an integer >= 1."""
    return _integer(what, value, 1)


def non_negative_int(what: str, value: Any) -> int:
    """``value`` as an int, if it is an integer >= 0."""
    return _integer(what, value, 0)


def real_number(what: str, value: Any) -> float:
    """``value`` as a finite float, if it is a real number (not a bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)):
        msg = f"{what} must be a real number, got {value!r} ({type(value).__name__})"
        raise InvalidArgumentType(msg)
    try:
        number = float(value)
    except OverflowError:  # an int or Fraction beyond float64
        msg = f"{what} must be finite (fit in a float64), got {value!r}"
        raise InvalidArgument(msg) from None
    if not np.isfinite(number):
        msg = f"{what} must be finite, got {value!r}"
        raise InvalidArgument(msg)
    return number


def positive_number(what: str, value: Any) -> float:
    """``value`` as a float, if it is a finite real number > 0."""
    number = real_number(what, value)
    if number <= 0:
        msg = f"{what} must be > 0, got {value!r}"
        raise InvalidArgument(msg)
    return number


def probability(what: str, value: Any) -> float:
    """``value`` as a float, if it lies in (0, 1]."""
    number = real_number(what, value)
    if not 0 < number <= 1:
        msg = f"{what} must be in (0, 1], got {value!r}"
        raise InvalidArgument(msg)
    return number


def one_of(what: str, value: Any, choices: Iterable[str]) -> str:
    """``value``, if it is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        msg = f"unknown {what} {value!r}; expected one of {', '.join(map(repr, choices))}"
        raise InvalidArgument(msg)
    return value


def a_callable(what: str, value: Any) -> Callable[..., Any]:
    """``value``, if it is callable."""
    if not callable(value):
        msg = f"{what} must be callable, got {value!r} ({type(value).__name__})"
        raise InvalidArgumentType(msg)
    return value


def instance_of(what: str, value: Any, kind: type | tuple[type, ...], expected: str) -> Any:
    """``value``, if it is an instance of ``kind``; ``expected`` names the kind in the error.

    >>> instance_of("a stream's >> operand", 3, str, "a transform")
    Traceback (most recent call last):
    ...
    combinators.errors.InvalidArgumentType: a stream's >> operand must be a transform, got 3 (int)
    """
    if not isinstance(value, kind):
        msg = f"{what} must be {expected}, got {value!r} ({type(value).__name__})"
        raise InvalidArgumentType(msg)
    return value


@functools.lru_cache(maxsize=4096)
def accepts(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` has a parameter ``name`` (False for builtins without a signature).

    >>> accepts(lambda item, rng: item, "rng"), accepts(len, "rng")
    (True, False)
    """
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False
