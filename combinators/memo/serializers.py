"""Serializers: archive values to bytes and back.

``"pickle"`` (the default) takes any picklable value, with protocol 5 and a
fast path for plain numpy arrays (their dtype, shape and raw bytes: no pickle
machinery on the way back). ``"numpy"`` (nested containers of arrays and
plain values, as msgpack) and ``"json"`` never unpickle, so an
archive written by someone else cannot run code when read: use them for
archives shared with others. An archive records its serializer's name and
refuses to be opened with another (`SerializerMismatch`).
"""

from __future__ import annotations

import io
import json
import math
import pickle
from typing import Any

import attrs
import numpy as np

from combinators.errors import InvalidArgument, InvalidArgumentType
from combinators.packing import TooDeep, Unpackable, dtype_from_spec, dtype_spec, pack, unpack

__all__ = [
    "Serializer", "PickleSerializer", "NumpySerializer", "JsonSerializer", "serializer", "SERIALIZERS", "dtype_spec",
    "dtype_from_spec",
]



_LAYOUTS: dict[bytes, tuple[np.dtype, tuple[int, ...], int]] = {}  # header -> dtype, shape, nbytes
_MAX_LAYOUTS = 1024  # variable-length arrays have a header per length: cleared when it grows past this


def _array_to_bytes(array: np.ndarray) -> bytes:
    """``b"A"``, header length, header (dtype string and shape, as text) and C-order contents."""
    header = f"{array.dtype.str}{array.shape}".encode()
    return b"A" + bytes([len(header)]) + header + np.ascontiguousarray(array).tobytes()


def _layout(header: bytes) -> tuple[np.dtype, tuple[int, ...], int]:
    """dtype, shape and byte count of an array header, parsed once per distinct header."""
    layout = _LAYOUTS.get(header)
    if layout is None:
        if len(_LAYOUTS) >= _MAX_LAYOUTS:
            _LAYOUTS.clear()
        text = header.decode()
        split = text.index("(")
        dtype = np.dtype(text[:split])
        shape = tuple(int(n) for n in text[split + 1:-1].split(",") if n.strip())
        layout = _LAYOUTS.setdefault(header, (dtype, shape, math.prod(shape) * dtype.itemsize))
    return layout


def _array_from_bytes(data: memoryview) -> np.ndarray:
    start = 2 + data[1]
    dtype, shape, nbytes = _layout(bytes(data[2:start]))
    if len(data) - start != nbytes:
        msg = f"array payload has {len(data) - start} bytes, expected {nbytes}"
        raise ValueError(msg)
    flat = np.frombuffer(data, dtype=dtype, offset=start).copy()  # writable, independent of the archive's buffer
    return flat if len(shape) == 1 else flat.reshape(shape)


class Serializer:
    """Turns values into bytes and back; ``name`` is recorded in the archive."""

    name: str = ""

    def dumps(self, value: Any) -> bytes:
        """The bytes of ``value``; raises `InvalidArgumentType` for values it cannot store."""
        raise NotImplementedError

    def loads(self, data: memoryview | bytes) -> Any:
        """The value of ``data`` (which may be a view valid only during the call)."""
        raise NotImplementedError


@attrs.frozen
class PickleSerializer(Serializer):
    """Any picklable value, pickle protocol 5; plain numpy arrays skip pickle.

    >>> s = PickleSerializer()
    >>> s.loads(s.dumps({"a": (1, 2.5)}))
    {'a': (1, 2.5)}
    >>> s.loads(s.dumps(np.arange(6.0).reshape(2, 3)))
    array([[0., 1., 2.],
           [3., 4., 5.]])
    """

    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        if type(value) is np.ndarray and not value.dtype.hasobject and value.ndim < 20:
            return _array_to_bytes(value)
        try:
            return b"P" + pickle.dumps(value, protocol=5)
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            msg = f"cannot pickle a value of type {type(value).__qualname__}: {error}"
            raise InvalidArgumentType(msg) from None

    def loads(self, data: memoryview | bytes) -> Any:
        data = memoryview(data)
        tag = data[0]
        if tag == 0x41:  # b"A": inlined _array_from_bytes (the hot path of an archive hit)
            start = 2 + data[1]
            dtype, shape, nbytes = _LAYOUTS.get(bytes(data[2:start])) or _layout(bytes(data[2:start]))
            if len(data) - start == nbytes:
                flat = np.frombuffer(data, dtype=dtype, offset=start).copy()
                return flat if len(shape) == 1 else flat.reshape(shape)
            return _array_from_bytes(data)
        if tag == 0x50:  # b"P"
            return pickle.loads(data[1:])
        msg = f"unknown value tag {bytes(data[:1])!r}"
        raise ValueError(msg)


@attrs.frozen
class NumpySerializer(Serializer):
    """Nested dicts, lists and tuples of numpy arrays, numbers, str, bytes, bools and None; never unpickles.

    Values come back with their types: tuples as tuples, numpy scalars as
    numpy scalars, arrays with their dtype (structured, datetime64 and byte
    order, alignment and plain metadata included) and shape. The format is
    msgpack with extension types for arrays, numpy scalars, tuples and
    complex numbers (read with no code execution). Other types, subclasses
    (``OrderedDict``, namedtuples), object arrays, integers beyond 64 bits and
    tuples nested more than `combinators.packing.MAX_DEPTH` (64) deep raise
    `InvalidArgumentType` naming the type and where it is. Entries
    written as ``.npy``/``.npz`` by earlier versions still read.

    >>> s = NumpySerializer()
    >>> s.loads(s.dumps({"a": np.ones(2), "b": [(np.int8(1), 1.5, "x", b"y", None, True)]}))
    {'a': array([1., 1.]), 'b': [(np.int8(1), 1.5, 'x', b'y', None, True)]}
    >>> s.dumps({1, 2})
    Traceback (most recent call last):
    ...
    combinators.errors.InvalidArgumentType: the "numpy" serializer cannot store a value of type set; it stores dicts, lists and tuples of arrays, numbers, str, bytes, bools and None
    """

    name = "numpy"

    def dumps(self, value: Any) -> bytes:
        try:
            return b"m" + pack(value)
        except Unpackable as refused:
            bad = refused.value
            what = type(bad).__qualname__ + (" of object dtype" if isinstance(bad, (np.ndarray, np.generic)) else "")
            inside = "" if bad is value else f" inside a {type(value).__qualname__}"
            msg = (f'the "numpy" serializer cannot store a value of type {what}{inside}; it stores dicts, lists '
                   f"and tuples of arrays, numbers, str, bytes, bools and None")
            raise InvalidArgumentType(msg) from None
        except TooDeep as error:
            msg = f'the "numpy" serializer cannot store {error} (in a {type(value).__qualname__})'
            raise InvalidArgumentType(msg) from None
        except OverflowError as error:
            msg = f'the "numpy" serializer stores integers of up to 64 bits: {error} (in a {type(value).__qualname__})'
            raise InvalidArgumentType(msg) from None

    def loads(self, data: memoryview | bytes) -> Any:
        tag = bytes(data[:1])
        if tag == b"m":
            return unpack(memoryview(data)[1:])
        stream = io.BytesIO(bytes(data[1:]))
        if tag == b"a":  # written by earlier versions
            return np.load(stream, allow_pickle=False)
        if tag == b"z":
            with np.load(stream, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        msg = f"unknown value tag {tag!r}"
        raise ValueError(msg)


@attrs.frozen
class JsonSerializer(Serializer):
    """JSON values (dict with str keys, list, str, int, float, bool, None); never unpickles.

    Tuples come back as lists. NaN and infinities are kept (as JSON extensions).

    >>> s = JsonSerializer()
    >>> s.loads(s.dumps({"b": [1, 2.5, None], "a": "x"}))
    {'a': 'x', 'b': [1, 2.5, None]}
    """

    name = "json"

    def dumps(self, value: Any) -> bytes:
        try:
            return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
        except (TypeError, ValueError) as error:
            msg = f'the "json" serializer cannot store a value of type {type(value).__qualname__}: {error}'
            raise InvalidArgumentType(msg) from None

    def loads(self, data: memoryview | bytes) -> Any:
        return json.loads(bytes(data))


#: serializer name -> instance
SERIALIZERS: dict[str, Serializer] = {s.name: s for s in (PickleSerializer(), NumpySerializer(), JsonSerializer())}


def serializer(spec: str | Serializer) -> Serializer:
    """The serializer named ``spec`` (``"pickle"``, ``"numpy"``, ``"json"``), or ``spec`` itself.

    Raises `InvalidArgument` for an unknown name.

    >>> serializer("json").name
    'json'
    """
    if isinstance(spec, Serializer):
        return spec
    if spec not in SERIALIZERS:
        msg = f"serializer must be one of {sorted(SERIALIZERS)} or a Serializer, got {spec!r}"
        raise InvalidArgument(msg)
    return SERIALIZERS[spec]
