"""The no-pickle encoding of the items a run state holds (partial batches, shuffle buffers, caches).

Items are packed as msgpack with extension types for numpy arrays (dtype
descr, shape, raw bytes), numpy scalars, tuples (kept as tuples) and complex
numbers, then base64 text so the state stays JSON. Decoding runs no code.
The extension codes are those of the ``"numpy"`` memo serializer (branch
h10-memo), so one module can serve both once merged.

What round-trips exactly: ``None``, ``bool``, ``int`` (64 bits), ``float``,
``complex``, ``str``, ``bytes``, lists, tuples and dicts of them, numpy
arrays of any non-object dtype and numpy scalars. Anything else raises
`RunStateError` naming its type.

>>> value = [{"x": np.arange(3, dtype=np.int16)}, (1, "a", b"b", None), np.float32(1.5)]
>>> back = decode(encode(value))
>>> back[0]["x"].dtype, back[1], type(back[2]).__name__
(dtype('int16'), (1, 'a', b'b', None), 'float32')
>>> encode([{1, 2}])
Traceback (most recent call last):
...
combinators.errors.RunStateError: a run state cannot hold an item of type set (inside a list); it holds arrays, numbers, str, bytes, None and lists, tuples and dicts of them
"""

from __future__ import annotations

import base64
import math
from typing import Any

import msgpack
import numpy as np

from combinators.errors import RunStateError

__all__ = ["encode", "decode"]

_EXT_ARRAY, _EXT_TUPLE, _EXT_SCALAR, _EXT_COMPLEX = 1, 2, 3, 4


class _Refused(Exception):
    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.value = value


def _default(value: Any) -> msgpack.ExtType:
    kind = type(value)
    if kind is tuple:
        return msgpack.ExtType(_EXT_TUPLE, _packb(list(value)))
    if kind is np.ndarray and not value.dtype.hasobject:
        descr = np.lib.format.dtype_to_descr(value.dtype)
        return msgpack.ExtType(_EXT_ARRAY, _packb([descr, list(value.shape), value.tobytes()]))
    if isinstance(value, np.generic) and not value.dtype.hasobject:
        return msgpack.ExtType(_EXT_SCALAR, _packb([np.lib.format.dtype_to_descr(value.dtype), value.tobytes()]))
    if kind is complex:
        return msgpack.ExtType(_EXT_COMPLEX, _packb([value.real, value.imag]))
    raise _Refused(value)


def _packb(value: Any) -> bytes:
    return msgpack.packb(value, default=_default, strict_types=True, use_bin_type=True)


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_TUPLE:
        return tuple(_unpackb(data))
    if code == _EXT_ARRAY:
        descr, shape, raw = _unpackb(data)
        dtype = np.lib.format.descr_to_dtype(descr)
        return np.frombuffer(raw, dtype=dtype, count=math.prod(shape)).reshape(shape).copy()
    if code == _EXT_SCALAR:
        descr, raw = _unpackb(data)
        return np.frombuffer(raw, dtype=np.lib.format.descr_to_dtype(descr), count=1)[0]
    if code == _EXT_COMPLEX:
        real, imag = _unpackb(data)
        return complex(real, imag)
    msg = f"unknown msgpack extension {code} in a run state"
    raise RunStateError(msg)


def _unpackb(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False, use_list=True)


def encode(items: Any) -> str:
    """``items`` (a list of items, usually) as base64 text of their msgpack form.

    Raises `RunStateError` naming the type of the first value it cannot encode.
    """
    try:
        return base64.b64encode(_packb(items)).decode("ascii")
    except _Refused as refused:
        bad = refused.value
        what = type(bad).__qualname__ + (" of object dtype" if isinstance(bad, (np.ndarray, np.generic)) else "")
        inside = "" if bad is items else f" (inside a {type(items).__qualname__})"
        msg = (f"a run state cannot hold an item of type {what}{inside}; it holds arrays, numbers, str, bytes, "
               "None and lists, tuples and dicts of them")
        raise RunStateError(msg) from None
    except (OverflowError, TypeError) as error:
        msg = f"a run state cannot hold {type(items).__qualname__} items: {error}"
        raise RunStateError(msg) from None


def decode(text: str) -> Any:
    """The items `encode` turned into ``text``."""
    return _unpackb(base64.b64decode(text.encode("ascii")))
