"""Canonical, process-independent byte encoding of argument values.

The encoding is the ground truth of every byte keymap: the same value gives
the same bytes in any process, under any ``PYTHONHASHSEED``, whatever the
insertion order of its dicts and sets and whatever object identities it
shares (``pickle`` fails the last two: its bytes depend on dict order and on
which equal objects are the same object). Each value is a one-byte tag, a
length where needed, and its contents; numpy arrays contribute their dtype,
shape and raw C-order contents (as a ``memoryview``, so a 10 MB array is
hashed without a copy).

Values that have no canonical form raise `KeyingError` naming the argument
path (``x[2]['a']``) and the type.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import fractions
import math
import pathlib
import struct
import uuid
from typing import Any, Callable

import attrs
import numpy as np

from combinators.errors import KeyingError

__all__ = ["Encoder"]

_Q = struct.Struct("<Q").pack
_D = struct.Struct("<d").pack
_NAN = _D(math.nan)


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


@attrs.frozen
class Encoder:
    """Appends the canonical bytes of values to a list of byte chunks.

    ``typed`` makes the exact type of every scalar part of the key (so ``3``
    and ``3.0`` differ); ``round`` rounds floats (also float arrays) to that
    many decimal digits first.

    >>> e = Encoder()
    >>> parts = []; e.encode({"b": 1, "a": {2, 1}}, parts, "x")
    >>> other = []; e.encode({"a": {1, 2}, "b": 1.0}, other, "x")
    >>> b"".join(parts) == b"".join(other)
    True
    >>> def encoded(value, **options):
    ...     parts = []
    ...     Encoder(**options).encode(value, parts, "x")
    ...     return b"".join(parts)
    >>> encoded(3) == encoded(3.0), encoded(3, typed=True) == encoded(3.0, typed=True)
    (True, False)
    >>> encoded(0.123456, round=2) == encoded(0.12)
    True
    """

    typed: bool = False
    round: int | None = None

    def encode(self, value: Any, parts: list, path: str) -> None:
        """Append the encoding of ``value`` to ``parts``; ``path`` names it in errors."""
        handler = _HANDLERS.get(type(value))
        if handler is None:
            handler = _find_handler(value, path)
        handler(self, value, parts, path)

    def scalar_float(self, x: float, parts: list) -> None:
        if self.round is not None:
            x = round(x, self.round)
        if not self.typed and x.is_integer() and abs(x) < 2**63:
            parts.append(b"i%d;" % int(x))
        elif x != x:
            parts.append(b"f" + _NAN)
        else:
            parts.append(b"f" + _D(x + 0.0))  # + 0.0 folds -0.0 into 0.0


def _none(enc: Encoder, value: Any, parts: list, path: str) -> None:
    parts.append(b"N")


def _bool(enc: Encoder, value: bool, parts: list, path: str) -> None:
    if enc.typed:
        parts.append(b"T" if value else b"F")
    else:
        parts.append(b"i1;" if value else b"i0;")


def _int(enc: Encoder, value: int, parts: list, path: str) -> None:
    parts.append(b"i%d;" % value)


def _float(enc: Encoder, value: float, parts: list, path: str) -> None:
    enc.scalar_float(float(value), parts)


def _complex(enc: Encoder, value: complex, parts: list, path: str) -> None:
    parts.append(b"c")
    enc.scalar_float(value.real, parts)
    enc.scalar_float(value.imag, parts)


def _str(enc: Encoder, value: str, parts: list, path: str) -> None:
    data = value.encode("utf-8", "surrogatepass")
    parts.append(b"s" + _Q(len(data)) + data)


def _bytes(enc: Encoder, value: bytes, parts: list, path: str) -> None:
    parts.append(b"b" + _Q(len(value)) + bytes(value))


def _sequence(tag: bytes) -> Callable:
    def handler(enc: Encoder, value: Any, parts: list, path: str) -> None:
        parts.append(tag + _Q(len(value)))
        for i, item in enumerate(value):
            enc.encode(item, parts, f"{path}[{i}]")

    return handler


def _sorted_items(enc: Encoder, items: Any, path: str, label: Callable[[Any], str]) -> list[bytes]:
    encoded = []
    for item in items:
        chunk: list = []
        enc.encode(item, chunk, label(item))
        encoded.append(b"".join(chunk))
    return sorted(encoded)


def _set(enc: Encoder, value: Any, parts: list, path: str) -> None:
    parts.append(b"<" + _Q(len(value)))
    parts.extend(_sorted_items(enc, value, path, lambda item: f"{path} element {item!r:.40}"))


def _dict(enc: Encoder, value: dict, parts: list, path: str) -> None:
    pairs = []
    for k, v in value.items():
        chunk: list = []
        enc.encode(k, chunk, f"{path} key {k!r:.40}")
        key = b"".join(chunk)
        enc.encode(v, chunk, f"{path}[{k!r:.40}]")
        pairs.append((key, b"".join(chunk)))
    pairs.sort()
    parts.append(b"{" + _Q(len(pairs)))
    parts.extend(chunk for _, chunk in pairs)


def _ndarray(enc: Encoder, value: np.ndarray, parts: list, path: str) -> None:
    if value.dtype.hasobject:
        parts.append(b"O" + _Q(value.ndim) + b"".join(_Q(n) for n in value.shape))
        _sequence(b"[")(enc, value.ravel().tolist(), parts, path)
        return
    if enc.round is not None and value.dtype.kind in "fc":
        value = np.round(value, enc.round) + 0.0
    value = np.ascontiguousarray(value)
    dtype = value.dtype.str.encode()
    header = b"a" + _Q(len(dtype)) + dtype + _Q(value.ndim) + b"".join(_Q(n) for n in value.shape)
    parts.append(header)
    parts.append(memoryview(value).cast("B") if value.size else b"")


def _generic(enc: Encoder, value: np.generic, parts: list, path: str) -> None:
    if not enc.typed and isinstance(value, (np.integer, np.floating, np.bool_, np.complexfloating)):
        enc.encode(value.item(), parts, path)
    else:
        _ndarray(enc, np.asarray(value), parts, path)


def _named(enc: Encoder, value: Any, parts: list, path: str) -> None:
    name = _qualified(value).encode()
    parts.append(b"n" + _Q(len(name)) + name)


def _textual(tag: bytes) -> Callable:
    def handler(enc: Encoder, value: Any, parts: list, path: str) -> None:
        text = (value.isoformat() if hasattr(value, "isoformat") else str(value)).encode()
        parts.append(tag + _Q(len(text)) + text)

    return handler


def _enum(enc: Encoder, value: enum.Enum, parts: list, path: str) -> None:
    _named(enc, type(value), parts, path)
    _str(enc, value.name, parts, path)


def _record(enc: Encoder, value: Any, parts: list, path: str) -> None:
    """attrs instances and dataclasses: their class and fields, by name."""
    if attrs.has(type(value)):
        names = [a.name for a in attrs.fields(type(value))]
    else:
        names = [f.name for f in dataclasses.fields(value)]
    _named(enc, type(value), parts, path)
    parts.append(b"r" + _Q(len(names)))
    for name in names:
        _str(enc, name, parts, path)
        enc.encode(getattr(value, name), parts, f"{path}.{name}")


_HANDLERS: dict[type, Callable] = {
    type(None): _none,
    bool: _bool,
    int: _int,
    float: _float,
    complex: _complex,
    str: _str,
    bytes: _bytes,
    bytearray: _bytes,
    tuple: _sequence(b"("),
    list: _sequence(b"["),
    set: _set,
    frozenset: _set,
    dict: _dict,
    np.ndarray: _ndarray,
    datetime.datetime: _textual(b"D"),
    datetime.date: _textual(b"d"),
    datetime.time: _textual(b"t"),
    datetime.timedelta: _textual(b"z"),
    decimal.Decimal: _textual(b"M"),
    fractions.Fraction: _textual(b"Q"),
    uuid.UUID: _textual(b"U"),
}


def _is_named_callable(value: Any) -> bool:
    """Module-level functions and classes, which key by their qualified name."""
    qualname = getattr(value, "__qualname__", "")
    return isinstance(value, type) or (
        callable(value) and hasattr(value, "__module__") and "<" not in qualname and qualname != ""
        and not hasattr(value, "__self__")
    )


def _find_handler(value: Any, path: str) -> Callable:
    """The handler of a subclass or of a structured type; KeyingError if none."""
    if isinstance(value, enum.Enum):
        return _enum
    for kind, handler in _HANDLERS.items():
        if isinstance(value, kind):
            return handler
    if isinstance(value, np.generic):
        return _generic
    if isinstance(value, pathlib.PurePath):
        return _textual(b"P")
    if isinstance(value, memoryview):
        return lambda enc, v, parts, p: _bytes(enc, v.tobytes(), parts, p)
    if attrs.has(type(value)) or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        return _record
    if _is_named_callable(value):
        return _named
    msg = (
        f"cannot key argument {path} of type {_qualified(type(value))} ({value!r:.60}): no canonical encoding "
        f"(use ignore= to leave it out, or pass a value of a supported type)"
    )
    raise KeyingError(msg)
