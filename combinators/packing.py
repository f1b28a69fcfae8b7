"""msgpack with numpy: arrays, numpy scalars, tuples and complex numbers, read without running code.

One codec for every no-pickle store of values: the ``"numpy"`` memo
serializer (`combinators.memo.serializers`) and the items a run state holds
(`combinators.execution.runstate`). Extension types carry arrays (a `dtype_spec`,
the shape and the raw bytes), numpy scalars, numpy ``str_``/``bytes_``,
tuples (kept as tuples) and complex numbers; anything else raises
`Unpackable`, and reading parses data only.

Extension types nest at most `MAX_DEPTH` levels (a tuple of tuples is two):
each level is read by a nested msgpack call that holds about 40 KB of C
stack, so a value nested a few hundred deep would overflow the stack and
kill the process (SIGSEGV). `pack` refuses deeper values with `TooDeep` (so
nothing it writes is unreadable) and `unpack` refuses deeper data with
``ValueError`` before recursing.

>>> value = {"a": np.arange(3, dtype=np.int16), "b": (1, "x", None), "c": np.float32(1.5)}
>>> back = unpack(pack(value))
>>> back["a"].dtype, back["b"], type(back["c"]).__name__
(dtype('int16'), (1, 'x', None), 'float32')
"""

from __future__ import annotations

import math
from typing import Any, Callable

import msgpack
import numpy as np

__all__ = ["MAX_DEPTH", "deeper", "pack", "unpack", "Unpackable", "TooDeep", "dtype_spec", "dtype_from_spec"]

#: how deep extension types (tuples, arrays, numpy scalars, complex numbers) may nest in one value
MAX_DEPTH = 64

_EXT_ARRAY, _EXT_TUPLE, _EXT_SCALAR, _EXT_COMPLEX, _EXT_STR, _EXT_BYTES = 1, 2, 3, 4, 5, 6


def dtype_spec(dtype: np.dtype) -> Any:
    """A dtype as plain data (strings, numbers, lists, dicts): `dtype_from_spec` rebuilds it exactly.

    Unlike ``dtype.descr`` it keeps overlapping and out-of-order fields,
    alignment and metadata (when the metadata is plain data itself).

    >>> d = np.dtype({"names": ["a", "b"], "formats": ["<i4", "<f4"], "offsets": [4, 0], "itemsize": 8})
    >>> dtype_from_spec(dtype_spec(d)) == d
    True
    """
    if dtype.metadata is not None:
        return ["meta", dtype_spec(np.dtype(dtype.descr if dtype.names else dtype.str)), dict(dtype.metadata)]
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return ["sub", dtype_spec(base), list(shape)]
    if dtype.names is not None:
        fields = [dtype.fields[name] for name in dtype.names]
        return ["rec", list(dtype.names), [dtype_spec(f[0]) for f in fields], [f[1] for f in fields],
                dtype.itemsize, dtype.isalignedstruct]
    return dtype.str


def dtype_from_spec(spec: Any) -> np.dtype:
    """The dtype of a `dtype_spec` (parses strings only: no code runs)."""
    if isinstance(spec, str):
        return np.dtype(spec)
    kind, *rest = spec
    if kind == "meta":
        return np.dtype(dtype_from_spec(rest[0]), metadata=rest[1])
    if kind == "sub":
        return np.dtype((dtype_from_spec(rest[0]), tuple(rest[1])))
    if kind == "rec":
        names, formats, offsets, itemsize, aligned = rest
        layout = {"names": names, "formats": [dtype_from_spec(f) for f in formats], "offsets": offsets,
                  "itemsize": itemsize}
        return np.dtype(layout, align=aligned)
    msg = f"unknown dtype spec {spec!r:.60}"
    raise ValueError(msg)


class _Packing:
    """msgpack's ``default`` hook for the types it has no exact form of (called with ``strict_types=True``).

    Each extension's data is packed by a nested call; ``depth`` counts them, so a value nested deeper than
    `MAX_DEPTH` raises `TooDeep` instead of writing what `unpack` would refuse.
    """

    __slots__ = ("depth",)

    def __init__(self) -> None:
        self.depth = 0

    def __call__(self, value: Any) -> msgpack.ExtType:
        kind = type(value)
        if kind is tuple:
            return msgpack.ExtType(_EXT_TUPLE, self.nested(list(value)))
        if kind is np.ndarray and not value.dtype.hasobject:
            return msgpack.ExtType(_EXT_ARRAY, self.nested([dtype_spec(value.dtype), list(value.shape),
                                                            value.tobytes()]))
        if kind is np.str_ or kind is np.bytes_:
            return msgpack.ExtType(_EXT_STR if kind is np.str_ else _EXT_BYTES, self.nested(value.item()))
        if isinstance(value, np.generic) and not value.dtype.hasobject:
            return msgpack.ExtType(_EXT_SCALAR, self.nested([dtype_spec(value.dtype), value.tobytes()]))
        if kind is complex:
            return msgpack.ExtType(_EXT_COMPLEX, self.nested([value.real, value.imag]))
        raise Unpackable(value)

    def nested(self, value: Any) -> bytes:
        return deeper(self, _packb, value)


def deeper(hook: Any, call: Callable[[Any, Any], Any], value: Any) -> Any:
    """``call(value, hook)`` one level deeper in ``hook.depth`` (a msgpack hook's nested call).

    Raises `TooDeep` when ``hook.depth`` is already `MAX_DEPTH`, before the nested call, whose C stack a few
    hundred levels would overflow.
    """
    if hook.depth >= MAX_DEPTH:
        raise TooDeep(MAX_DEPTH)
    hook.depth += 1
    try:
        return call(value, hook)
    finally:
        hook.depth -= 1


def _packb(value: Any, hook: _Packing) -> bytes:
    return msgpack.packb(value, default=hook, strict_types=True, use_bin_type=True)


class Unpackable(Exception):
    """A value `pack` has no form for (``.value``): each user says so in its own words."""

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.value = value


class TooDeep(ValueError):
    """A value whose tuples (or other extension types) nest deeper than `MAX_DEPTH`."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"tuples (with the arrays, numpy scalars and complex numbers inside them) nested more "
                         f"than {limit} deep")


def pack(value: Any) -> bytes:
    """``value`` as msgpack.

    Raises `Unpackable` (the value), `TooDeep` (tuples nested more than `MAX_DEPTH` deep) or
    ``OverflowError`` (an integer beyond 64 bits).

    >>> deep = 1
    >>> for _ in range(MAX_DEPTH + 1):
    ...     deep = (deep,)
    >>> pack(deep)
    Traceback (most recent call last):
    ...
    combinators.packing.TooDeep: tuples (with the arrays, numpy scalars and complex numbers inside them) nested more than 64 deep
    """
    return _packb(value, _Packing())


class _Unpacking:
    """msgpack's ``ext_hook``: rebuilds the extension types, refusing data nested deeper than `MAX_DEPTH`."""

    __slots__ = ("depth",)

    def __init__(self) -> None:
        self.depth = 0

    def __call__(self, code: int, data: bytes) -> Any:
        if code == _EXT_TUPLE:
            return tuple(self.nested(data))
        if code == _EXT_ARRAY:
            spec, shape, raw = self.nested(data)
            return np.frombuffer(raw, dtype=_plain_dtype(spec), count=math.prod(shape)).reshape(shape).copy()
        if code == _EXT_SCALAR:
            spec, raw = self.nested(data)
            return np.frombuffer(raw, dtype=_plain_dtype(spec), count=1)[0]
        if code == _EXT_COMPLEX:
            real, imag = self.nested(data)
            return complex(real, imag)
        if code in (_EXT_STR, _EXT_BYTES):
            return (np.str_ if code == _EXT_STR else np.bytes_)(self.nested(data))
        msg = f"unknown msgpack extension {code}"
        raise ValueError(msg)

    def nested(self, data: bytes | memoryview) -> Any:
        return deeper(self, _unpackb, data)


def _unpackb(data: bytes | memoryview, hook: _Unpacking) -> Any:
    return msgpack.unpackb(data, ext_hook=hook, raw=False, strict_map_key=False, use_list=True)


def _plain_dtype(spec: Any) -> np.dtype:
    dtype = dtype_from_spec(spec)
    if dtype.hasobject:  # never: dumps refuses them, so this entry was not written by it
        msg = f"an array of object dtype {dtype}"
        raise ValueError(msg)
    return dtype


def unpack(data: bytes | memoryview) -> Any:
    """The value `pack` made ``data`` from.

    Raises ``ValueError`` for an extension or dtype it never writes, or `TooDeep` (a ``ValueError``) for
    extension types nested more than `MAX_DEPTH` deep.
    """
    return _unpackb(data, _Unpacking())
