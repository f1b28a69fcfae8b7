"""The no-pickle encoding of the items a run state holds (partial batches, shuffle buffers, caches).

Items are packed by `combinators.packing` (msgpack with extension types
for numpy arrays, numpy scalars, tuples kept as tuples and complex numbers:
the codec of the ``"numpy"`` memo serializer), then base64 text so the
state stays JSON. Decoding runs no code.

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
from typing import Any

import numpy as np

from combinators.errors import RunStateError
from combinators.packing import Unpackable, pack, unpack

__all__ = ["encode", "decode"]


def encode(items: Any) -> str:
    """``items`` (a list of items, usually) as base64 text of their msgpack form.

    Raises `RunStateError` naming the type of the first value it cannot encode.
    """
    try:
        return base64.b64encode(pack(items)).decode("ascii")
    except Unpackable as refused:
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
    """The items `encode` turned into ``text``; raises `RunStateError` for text it did not write."""
    try:
        return unpack(base64.b64decode(text.encode("ascii")))
    except ValueError as error:
        msg = f"a run state holds items this version cannot read: {error}"
        raise RunStateError(msg) from None
