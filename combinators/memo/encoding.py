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

import collections
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

__all__ = ["Encoder", "dtype_description"]

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
            if self.typed:  # a subclass (namedtuple, np.float64, OrderedDict...) keys apart from its base
                _named(self, type(value), parts, path)
        handler(self, value, parts, path)

    def scalar_float(self, x: float, parts: list) -> None:
        """Floats key by value and sign of zero: ``-0.0`` and ``0.0`` key apart unless ``round`` is set."""
        if self.round is not None:
            x = round(x, self.round) + 0.0  # + 0.0 folds -0.0 into 0.0, as for arrays
        if not self.typed and x.is_integer() and abs(x) < 2**63 and (x or math.copysign(1.0, x) > 0):
            parts.append(b"i%d;" % int(x))
        elif x != x:
            parts.append(b"f" + _NAN)
        else:
            parts.append(b"f" + _D(x))


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
    tag = b"y" if enc.typed and type(value) is bytearray else b"b"
    parts.append(tag + _Q(len(value)) + bytes(value))


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
    parts.append((b">" if enc.typed and type(value) is frozenset else b"<") + _Q(len(value)))
    parts.extend(_sorted_items(enc, value, path, lambda item: f"{path} element {item!r:.40}"))


def _ordered_dict(enc: Encoder, value: collections.OrderedDict, parts: list, path: str) -> None:
    """An OrderedDict keys its items in order (its equality depends on the order)."""
    parts.append(b"o" + _Q(len(value)))
    for k, v in value.items():
        enc.encode(k, parts, f"{path} key {k!r:.40}")
        enc.encode(v, parts, f"{path}[{k!r:.40}]")


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


def dtype_description(dtype: np.dtype) -> bytes:
    """The full description of a dtype as bytes: two dtypes with equal descriptions are the same layout.

    A plain dtype is its ``dtype.str`` (kind, byte order, item size: ``<f8``,
    ``<M8[D]``). A structured dtype adds every field's name, offset and
    description, the item size and alignment; a subarray its base and shape;
    metadata its canonical encoding. (``dtype.str`` alone is ``|V8`` for every
    8-byte structured dtype, whatever its fields.)

    >>> a = np.dtype([("a", "<i4"), ("b", "<f4")]); b = np.dtype([("x", "<f4"), ("y", "<i4")])
    >>> a.str == b.str, dtype_description(a) == dtype_description(b)
    (True, False)
    """
    cached = _DESCRIPTIONS.get(dtype)
    if cached is not None and cached[0] is dtype:
        return cached[1]
    if dtype.fields is None and dtype.subdtype is None and dtype.metadata is None:
        text = dtype.str.encode()
    else:
        text = _structured_description(dtype)
    if len(_DESCRIPTIONS) > 256:
        _DESCRIPTIONS.clear()
    _DESCRIPTIONS[dtype] = (dtype, text)
    return text


def _structured_description(dtype: np.dtype) -> bytes:
    out = [b"(", dtype.str.encode(), b"/%d/%d" % (dtype.itemsize, dtype.isalignedstruct)]
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        out += [b"sub", dtype_description(base), repr(tuple(shape)).encode()]
    if dtype.names is not None:
        for name in dtype.names:
            field, offset, *title = dtype.fields[name]
            label = repr((name, offset, title[0] if title else None)).encode()
            out += [b"field", _Q(len(label)), label, dtype_description(field)]
    if dtype.metadata is not None:
        chunk: list = []
        try:
            Encoder(typed=True).encode(dict(dtype.metadata), chunk, "dtype metadata")
        except KeyingError:
            chunk = [repr(sorted(dtype.metadata.items(), key=repr)).encode()]
        out += [b"meta", *chunk]
    out.append(b")")
    return b"".join(bytes(c) for c in out)


_DESCRIPTIONS: dict[np.dtype, tuple[np.dtype, bytes]] = {}  # dtype -> (that dtype object, description)


def _raw_bytes(value: np.ndarray) -> Any:
    """The C-order contents of a contiguous array as a byte buffer (datetime64 and structured included)."""
    if not value.size or not value.itemsize:
        return b""
    try:
        return memoryview(value).cast("B")
    except (ValueError, TypeError):  # dtypes the buffer protocol refuses: datetime64, timedelta64, some records
        return memoryview(value.reshape(-1).view(np.uint8))


def _ndarray(enc: Encoder, value: np.ndarray, parts: list, path: str) -> None:
    if value.dtype.hasobject:
        parts.append(b"O" + _Q(value.ndim) + b"".join(_Q(n) for n in value.shape))
        _sequence(b"[")(enc, value.ravel().tolist(), parts, path)
        return
    if enc.round is not None and value.dtype.kind in "fc":
        value = np.round(value, enc.round) + 0.0  # + 0.0 folds -0.0 into 0.0, as for scalars
    if not value.flags.c_contiguous:
        value = value.copy(order="C")  # not np.ascontiguousarray: it turns a 0-d array into a 1-d one
    dtype = dtype_description(value.dtype)
    header = b"a" + _Q(len(dtype)) + dtype + _Q(value.ndim) + b"".join(_Q(n) for n in value.shape)
    parts.append(header)
    parts.append(_raw_bytes(value))


def _masked(enc: Encoder, value: np.ma.MaskedArray, parts: list, path: str) -> None:
    """A masked array: its data and its mask (arrays equal but for the mask key apart)."""
    parts.append(b"m")
    _ndarray(enc, np.ma.getdata(value), parts, path)
    _ndarray(enc, np.ma.getmaskarray(value), parts, path)


def _generic(enc: Encoder, value: np.generic, parts: list, path: str) -> None:
    numeric = isinstance(value, (np.integer, np.floating, np.bool_, np.complexfloating))
    if not enc.typed and numeric and not isinstance(value, np.timedelta64):  # NaT.item() is None
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


def _path(enc: Encoder, value: pathlib.PurePath, parts: list, path: str) -> None:
    """A path: its flavour (POSIX and Windows paths are never equal) and its text."""
    flavour = b"w" if isinstance(value, pathlib.PureWindowsPath) else b"p"
    _textual(b"P" + flavour)(enc, value, parts, path)


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
    if isinstance(value, collections.OrderedDict):
        return _ordered_dict
    if isinstance(value, np.ma.MaskedArray):  # before ndarray: its mask is part of its value
        return _masked
    for kind, handler in _HANDLERS.items():
        if isinstance(value, kind):
            return handler
    if isinstance(value, np.generic):
        return _generic
    if isinstance(value, pathlib.PurePath):
        return _path
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
