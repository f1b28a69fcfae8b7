"""What every description (stream or transform) shares: equality, hashing, repr.

Descriptions are frozen attrs classes whose fields may hold numpy arrays or
callables, so equality and hashing go through `fingerprint`, which turns a
field into a hashable value (arrays by dtype, shape and bytes), and the repr is
the expression that built the value (`call_repr`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import attrs
import numpy as np

__all__ = ["Description", "fingerprint", "call_repr", "callable_repr"]


def fingerprint(value: Any) -> Any:
    """A hashable stand-in for ``value`` that is equal exactly when the values are.

    >>> fingerprint([1, {"a": (2, 3)}])
    ('list', (1, ('dict', (('a', ('tuple', (2, 3))),))))
    """
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, np.ascontiguousarray(value).tobytes())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(fingerprint(v) for v in value))
    if isinstance(value, Mapping):
        return ("dict", tuple((fingerprint(k), fingerprint(v)) for k, v in value.items()))
    if isinstance(value, Description):
        return value._fingerprint()
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return value


def callable_repr(fn: Callable[..., Any]) -> str:
    """The name a callable is known by in its module (its qualified name).

    >>> callable_repr(len)
    'len'
    """
    if isinstance(fn, Description):
        return repr(fn)
    name = getattr(fn, "__qualname__", None)
    return name if isinstance(name, str) else repr(fn)


def _value_repr(value: Any) -> str:
    if callable(value) and not isinstance(value, np.ndarray):
        return callable_repr(value)
    return repr(value)


def call_repr(name: str, args: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None) -> str:
    """Render ``name(*args, **kwargs)`` as source text.

    >>> call_repr("batch", (32,), {"partial": True})
    'batch(32, partial=True)'
    """
    parts = [_value_repr(a) for a in args]
    parts += [f"{k}={_value_repr(v)}" for k, v in (kwargs or {}).items()]
    return f"{name}({', '.join(parts)})"


class Description:
    """Mixin: equality and hashing by fields (through `fingerprint`).

    Subclasses are ``attrs.frozen(eq=False, repr=False)`` classes and define
    ``__repr__`` as the expression that builds them.
    """

    __slots__ = ()

    def _fingerprint(self) -> tuple[Any, ...]:
        fields = attrs.fields(type(self))
        return (type(self).__name__, *(fingerprint(getattr(self, f.name)) for f in fields))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fingerprint() == other._fingerprint()  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self) -> int:
        return hash(self._fingerprint())
