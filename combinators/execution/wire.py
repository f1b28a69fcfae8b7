"""Framing of items between processes: a msgpack header, then raw array buffers.

An item becomes a msgpack *header* (bytes) plus a list of *out-of-band
buffers*: every numpy array of at least `OUT_OF_BAND_BYTES` travels as its own
zero-copy frame; smaller arrays are inlined in the header. Several items are
coalesced into one message by concatenating their headers (`ItemPacker`).

What round-trips exactly (type, dtype, shape and values):

- ``None``, ``bool``, ``int`` (any size), ``float``, ``complex``, ``str``,
  ``bytes``;
- ``list``, ``tuple``, ``dict`` (any msgpack-able keys, order kept), nested;
- numpy arrays of any non-object dtype (structured, datetime64, strings,
  byte-swapped included), any shape including 0-d, C- or Fortran-ordered;
  a non-contiguous array arrives as a C-contiguous copy with equal values;
- numpy scalars (``np.float32(1.5)`` stays a ``np.float32``).

Anything else (sets, subclasses such as ``OrderedDict`` or named tuples,
object arrays, user classes) goes through a documented *pickle fallback*
(cloudpickle, so classes defined in ``__main__`` work); a value that cannot be
pickled raises `TransportError` naming its type. Received arrays are
read-only views of the received message (copy one to modify it).

>>> import numpy as np
>>> value = {"x": np.arange(6, dtype=np.int16).reshape(2, 3, order="F"), "k": (1, b"a", None)}
>>> back = loads(dumps(value))
>>> back["x"].dtype, back["x"].shape, back["x"].flags.f_contiguous, back["k"]
(dtype('int16'), (2, 3), True, (1, b'a', None))
>>> bool((back["x"] == value["x"]).all())
True
"""

from __future__ import annotations

import pickle
import struct
from typing import Any, Iterator, Sequence

import cloudpickle
import msgpack
import numpy as np

from combinators.errors import TransportError

__all__ = ["OUT_OF_BAND_BYTES", "ItemPacker", "dumps", "loads", "unpack_items"]

#: arrays of at least this many bytes travel as their own zero-copy frame
OUT_OF_BAND_BYTES = 65536

# msgpack extension codes
_TUPLE, _ARRAY, _OOB_ARRAY, _SCALAR, _COMPLEX, _BIGINT, _PICKLE = range(1, 8)

_DTYPE_TOKENS: dict[np.dtype, Any] = {}
_TOKEN_DTYPES: dict[Any, np.dtype] = {}


def _dtype_token(dtype: np.dtype) -> str | bytes:
    """A msgpack-able token naming ``dtype`` exactly: its ``str`` or, failing that, its pickle."""
    token = _DTYPE_TOKENS.get(dtype)
    if token is None:
        if dtype.hasobject:
            msg = f"object dtype {dtype} has no raw buffer"
            raise TypeError(msg)
        token = dtype.str
        if dtype.fields is not None or dtype.subdtype is not None or np.dtype(token) != dtype:
            token = pickle.dumps(dtype, protocol=5)
        _DTYPE_TOKENS[dtype] = token
    return token


def _token_dtype(token: str | bytes) -> np.dtype:
    dtype = _TOKEN_DTYPES.get(token)
    if dtype is None:
        dtype = np.dtype(token) if isinstance(token, str) else pickle.loads(token)
        _TOKEN_DTYPES[token] = dtype
    return dtype


def _array_layout(array: np.ndarray) -> tuple[np.ndarray, str]:
    """``array`` as a contiguous array and its order letter (non-contiguous arrays are copied)."""
    if array.flags.c_contiguous:
        return array, "C"
    if array.flags.f_contiguous:
        return array, "F"
    return np.ascontiguousarray(array), "C"


class _Encoder:
    """The msgpack ``default`` hook: extension types, out-of-band buffers, pickle fallback."""

    __slots__ = ("buffers",)

    def __init__(self) -> None:
        self.buffers: list[Any] = []

    def __call__(self, obj: Any) -> msgpack.ExtType:
        kind = type(obj)
        if kind is np.ndarray and not obj.dtype.hasobject:
            return self._array(obj)
        if kind is tuple:
            return msgpack.ExtType(_TUPLE, _packb(list(obj), self))
        if isinstance(obj, np.generic) and not isinstance(obj, np.object_):
            return msgpack.ExtType(_SCALAR, _packb([_dtype_token(obj.dtype), obj.tobytes()], self))
        if kind is complex:
            return msgpack.ExtType(_COMPLEX, struct.pack("<dd", obj.real, obj.imag))
        if kind is int:
            return msgpack.ExtType(_BIGINT, str(obj).encode())
        return self._pickle(obj)

    def _array(self, array: np.ndarray) -> msgpack.ExtType:
        array, order = _array_layout(array)
        token = _dtype_token(array.dtype)
        if array.nbytes >= OUT_OF_BAND_BYTES:
            flat = array.reshape(-1, order=order).view(np.uint8)
            self.buffers.append(memoryview(flat))
            meta = [token, array.shape, order, len(self.buffers) - 1]
            return msgpack.ExtType(_OOB_ARRAY, _packb(meta, self))
        meta = [token, array.shape, order, array.tobytes(order=order)]
        return msgpack.ExtType(_ARRAY, _packb(meta, self))

    def _pickle(self, obj: Any) -> msgpack.ExtType:
        try:
            return msgpack.ExtType(_PICKLE, cloudpickle.dumps(obj, protocol=5))
        except Exception as error:
            msg = f"cannot send a value of type {type(obj).__module__}.{type(obj).__qualname__}: {error}"
            raise TransportError(msg) from error


def _packb(obj: Any, encoder: _Encoder) -> bytes:
    return msgpack.packb(obj, default=encoder, strict_types=True, use_bin_type=True)


class _Decoder:
    """The msgpack ``ext_hook``: rebuilds extension types over the message's frames."""

    __slots__ = ("frames",)

    def __init__(self, frames: Sequence[Any]):
        self.frames = frames

    def __call__(self, code: int, data: bytes) -> Any:
        if code == _ARRAY or code == _OOB_ARRAY:
            token, shape, order, raw = _unpackb(data, self)
            if code == _OOB_ARRAY:
                raw = self.frames[raw]
            return _array_from(raw, _token_dtype(token), shape, order)
        if code == _TUPLE:
            return tuple(_unpackb(data, self))
        if code == _SCALAR:
            token, raw = _unpackb(data, self)
            return np.frombuffer(raw, dtype=_token_dtype(token))[0]
        if code == _COMPLEX:
            return complex(*struct.unpack("<dd", data))
        if code == _BIGINT:
            return int(data)
        if code == _PICKLE:
            return pickle.loads(data)
        msg = f"unknown wire extension code {code}"
        raise TransportError(msg)


def _array_from(raw: Any, dtype: np.dtype, shape: list[int], order: str) -> np.ndarray:
    if dtype.itemsize == 0:
        return np.empty(shape, dtype=dtype, order=order)
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order)


def _unpackb(data: Any, decoder: _Decoder) -> Any:
    return msgpack.unpackb(data, ext_hook=decoder, raw=False, strict_map_key=False, use_list=True)


class ItemPacker:
    """Coalesces items into one message: concatenated msgpack headers plus out-of-band buffers.

    ``add(item)`` encodes one item (raising `TransportError` naming the type of
    a value that cannot be sent, with the packer left as before the call);
    ``frames()`` returns ``[header, *buffers]`` ready for a multipart send and
    resets the packer. ``nbytes`` and ``count`` measure what is pending.

    >>> import numpy as np
    >>> packer = ItemPacker()
    >>> packer.add(np.zeros(3, np.float32)); packer.add("two")
    >>> packer.count
    2
    >>> [type(item).__name__ for item in unpack_items(packer.frames())]
    ['ndarray', 'str']
    """

    __slots__ = ("_encoder", "_packer", "_chunks", "count", "nbytes")

    def __init__(self) -> None:
        self._encoder = _Encoder()
        self._packer = msgpack.Packer(default=self._encoder, strict_types=True, use_bin_type=True)
        self._chunks: list[bytes] = []
        self.count = 0
        self.nbytes = 0

    def add(self, item: Any) -> None:
        buffers = self._encoder.buffers
        before = len(buffers)
        try:
            chunk = self._packer.pack(item)
        except TransportError:
            del buffers[before:]
            raise
        except (TypeError, ValueError, OverflowError) as error:
            del buffers[before:]
            msg = f"cannot send a value of type {type(item).__qualname__}: {error}"
            raise TransportError(msg) from error
        self._chunks.append(chunk)
        self.count += 1
        self.nbytes += len(chunk) + sum(buffer.nbytes for buffer in buffers[before:])

    def frames(self) -> list[Any]:
        """``[header, *buffers]`` of the pending items; resets the packer."""
        frames = [b"".join(self._chunks), *self._encoder.buffers]
        self._chunks = []
        self._encoder.buffers = []
        self.count = 0
        self.nbytes = 0
        return frames


def unpack_items(frames: Sequence[Any]) -> Iterator[Any]:
    """The items of a message made by `ItemPacker.frames` (header first, then buffers)."""
    unpacker = msgpack.Unpacker(
        ext_hook=_Decoder(frames[1:]), raw=False, strict_map_key=False, use_list=True,
        max_buffer_size=0,
    )
    unpacker.feed(frames[0])
    return unpacker


def dumps(value: Any) -> list[Any]:
    """One value as frames ``[header, *buffers]`` (buffers are zero-copy views of its arrays).

    Raises `TransportError` naming the type of a value that cannot be sent.
    """
    packer = ItemPacker()
    packer.add(value)
    return packer.frames()


def loads(frames: Sequence[Any]) -> Any:
    """The value `dumps` framed; ``frames`` may be bytes, memoryviews or ``zmq.Frame`` buffers."""
    (value,) = unpack_items(frames)
    return value
