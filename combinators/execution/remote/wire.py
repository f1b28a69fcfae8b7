"""Framing of items between processes: a msgpack header, then raw array buffers.

An item becomes a msgpack *header* (bytes) plus a list of *out-of-band
buffers*: every numpy array of at least `OUT_OF_BAND_BYTES` travels as its own
zero-copy frame; smaller arrays are inlined in the header. Several items are
coalesced into one message by concatenating their headers (`ItemPacker`);
consecutive items alike in structure (an array, or a dict or tuple of small
arrays and plain numbers) become one *row group*, packed column-wise
(`combinators.execution.remote.wire_rows`): one array of rows per array field,
decoded with one call per column, whose rows are the received items' arrays.

What round-trips exactly (type, dtype, shape and values):

- ``None``, ``bool``, ``int`` (any size), ``float``, ``complex``, ``str``,
  ``bytes``;
- ``list``, ``tuple``, ``dict`` (any msgpack-able keys, order kept), nested;
- numpy arrays of any non-object dtype (structured, datetime64, strings,
  byte-swapped included), any shape including 0-d, C- or Fortran-ordered;
  a non-contiguous array arrives as a C-contiguous copy with equal values;
- numpy scalars (``np.float32(1.5)`` stays a ``np.float32``).

``bytearray`` and ``memoryview`` values arrive as ``bytes`` (msgpack packs
them natively as binary). One ``str``, ``bytes`` or pickled value may hold at
most `MSGPACK_LIMIT` bytes (4 GiB - 1); a bigger one raises `TransportError`
naming that size before anything is sent. Arrays have no size limit: frames
bigger than the session's frame limit travel in pieces
(`combinators.execution.remote.protocol.send_items`).

Big arrays are referenced, not copied, until the message is sent: the code
that produced an item must not modify its arrays afterwards (workers make
them read-only, so such a write raises instead of corrupting items).

Anything else (sets, subclasses such as ``OrderedDict`` or named tuples,
object arrays, user classes) goes through a documented *pickle fallback*
(cloudpickle, so classes defined in ``__main__`` work); a value that cannot be
pickled raises `TransportError` naming its type. Tuples may nest at most
`combinators.packing.MAX_DEPTH` (64) deep: each level is decoded by a nested
msgpack call holding about 40 KB of C stack, so deeper data would overflow it;
a deeper item raises `TransportError` when it is sent, and a message nested
deeper is refused, as malformed, before recursing. Received arrays are
writable, like in-process ones: a small one owns a copy of its bytes, a big one
is a zero-copy view of its own received frame.

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
from typing import Any, Sequence

import cloudpickle
import msgpack
import numpy as np

from combinators.errors import TransportError
from combinators.packing import TooDeep, deeper
from combinators.execution.remote.wire_rows import OUT_OF_BAND_BYTES, _RowGroup, _Rows, _rows_items

__all__ = ["OUT_OF_BAND_BYTES", "MSGPACK_LIMIT", "ItemPacker", "freeze", "dumps", "loads", "unpack_items"]

#: the largest str, bytes or pickled value an item may hold (msgpack's 32-bit lengths)
MSGPACK_LIMIT = 2**32 - 1

# msgpack extension codes
_TUPLE, _ARRAY, _OOB_ARRAY, _SCALAR, _COMPLEX, _BIGINT, _PICKLE, _ROWS = range(1, 9)

#: strings are UTF-8 on the wire; lone surrogates (valid in a Python str) pass through as such
_SURROGATES = "surrogatepass"
_DTYPE_TOKENS: dict[np.dtype, Any] = {}
_TOKEN_DTYPES: dict[Any, np.dtype] = {}
_PREFIX_LENGTH = struct.Struct("<H")
_INDEX = struct.Struct("<I")

# An array's extension data is a *prefix* (its dtype, shape and order, cached per
# kind of array since a stream's arrays are usually alike) followed by its raw
# bytes (inline) or the index of its out-of-band buffer.
_CACHE_SIZE = 4096
_PREFIXES: dict[tuple[np.dtype, tuple[int, ...], str], bytes] = {}
_LAYOUTS: dict[bytes, tuple[np.dtype, list[int], str, int]] = {}


def _ext(code: int, data: bytes) -> msgpack.ExtType:
    """An ``ExtType`` without its Python-level argument checks (the hot path builds many)."""
    return tuple.__new__(msgpack.ExtType, (code, data))


def _has_metadata(dtype: np.dtype) -> bool:
    """Whether ``dtype`` or a dtype inside it carries ``metadata`` (which dtype equality ignores)."""
    if dtype.metadata is not None:
        return True
    if dtype.subdtype is not None:
        return _has_metadata(dtype.subdtype[0])
    return dtype.fields is not None and any(_has_metadata(field[0]) for field in dtype.fields.values())


def _dtype_token(dtype: np.dtype) -> str | bytes:
    """A msgpack-able token naming ``dtype`` exactly: its ``str`` or, failing that, its pickle.

    Dtypes with metadata are never cached: they compare (and hash) equal to the same dtype without.
    """
    if _has_metadata(dtype):
        return pickle.dumps(dtype, protocol=5)
    token = _DTYPE_TOKENS.get(dtype)
    if token is None:
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


def _prefix(dtype: np.dtype, shape: tuple[int, ...], order: str) -> bytes:
    key = (dtype, shape, order)
    if _has_metadata(dtype):  # not cached (see _dtype_token)
        meta = msgpack.packb([_dtype_token(dtype), list(shape), order], use_bin_type=True)
        return _PREFIX_LENGTH.pack(len(meta)) + meta
    prefix = _PREFIXES.get(key)
    if prefix is None:
        if len(_PREFIXES) >= _CACHE_SIZE:  # arrays of ever-changing shapes: keep the cache bounded
            _PREFIXES.clear()
        meta = msgpack.packb([_dtype_token(dtype), list(shape), order], use_bin_type=True)
        prefix = _PREFIXES[key] = _PREFIX_LENGTH.pack(len(meta)) + meta
    return prefix


def _layout(prefix: bytes) -> tuple[np.dtype, list[int], str, int]:
    """(dtype, shape, order, item count) that an array's prefix describes."""
    layout = _LAYOUTS.get(prefix)
    if layout is None:
        if len(_LAYOUTS) >= _CACHE_SIZE:
            _LAYOUTS.clear()
        token, shape, order = msgpack.unpackb(prefix[2:], raw=False)
        count = 1
        for size in shape:
            count *= size
        layout = _LAYOUTS[prefix] = (_token_dtype(token), shape, order, count)
    return layout


def freeze(array: np.ndarray) -> np.ndarray:
    """``array`` made read-only, with every array it views, so no write can change it while in flight;
    a copy instead when its memory also belongs to a writable non-numpy buffer (a ``bytearray``, an ``mmap``).

    >>> buffer = np.zeros(4)
    >>> view = freeze(buffer[1:])
    >>> view.flags.writeable, buffer.flags.writeable
    (False, False)
    >>> frozen = freeze(np.frombuffer(bytearray(8), np.uint8))
    >>> frozen.flags.writeable, frozen.base is None
    (True, True)
    """
    node: Any = array
    while isinstance(node, np.ndarray):
        node = node.base
    if node is not None and not _readonly(node):
        return array.copy()
    node = array
    while isinstance(node, np.ndarray):
        if node.flags.writeable:
            node.flags.writeable = False
        node = node.base
    return array


def _readonly(buffer: Any) -> bool:
    try:
        with memoryview(buffer) as view:
            return view.readonly
    except TypeError:
        return False


class _Encoder:
    """The msgpack ``default`` hook: extension types, out-of-band buffers, pickle fallback.

    With ``freeze`` (as in workers), out-of-band arrays are made read-only (see `freeze`): they are
    sent without copying, after the source has moved on.
    """

    __slots__ = ("buffers", "nbytes", "freeze", "depth")

    def __init__(self, freeze: bool = False) -> None:
        self.buffers: list[Any] = []
        self.nbytes = 0  # of the out-of-band buffers
        self.freeze = freeze
        self.depth = 0  # of the tuples being packed (see _nested)

    def __call__(self, obj: Any) -> msgpack.ExtType:
        kind = type(obj)
        if kind is np.ndarray and not obj.dtype.hasobject:
            flags = obj.flags
            if flags.c_contiguous:
                array, order = obj, "C"
            elif flags.f_contiguous:
                array, order = obj, "F"
            else:
                array, order = np.ascontiguousarray(obj), "C"
            dtype = array.dtype
            key = (dtype, array.shape, order)
            if dtype.metadata is None and dtype.fields is None and dtype.subdtype is None:
                prefix = _PREFIXES.get(key) or _prefix(*key)
            else:  # metadata, maybe nested: see _dtype_token
                prefix = _prefix(*key)
            if array.nbytes < OUT_OF_BAND_BYTES:
                return _ext(_ARRAY, prefix + array.tobytes(order))
            if self.freeze:
                array = freeze(array)
            self.buffers.append(memoryview(array.reshape(-1, order=order).view(np.uint8)))
            self.nbytes += array.nbytes
            return _ext(_OOB_ARRAY, prefix + _INDEX.pack(len(self.buffers) - 1))
        if kind is tuple:
            return _ext(_TUPLE, _nested(self, _packb, list(obj)))
        if isinstance(obj, np.generic) and not isinstance(obj, np.object_):
            return _ext(_SCALAR, _prefix(obj.dtype, (), "C") + obj.tobytes())
        if kind is complex:
            return _ext(_COMPLEX, struct.pack("<dd", obj.real, obj.imag))
        if kind is int:
            return _ext(_BIGINT, str(obj).encode())
        return self._pickle(obj)

    def _pickle(self, obj: Any) -> msgpack.ExtType:
        try:
            return _ext(_PICKLE, cloudpickle.dumps(obj, protocol=5))
        except Exception as error:
            msg = f"cannot send a value of type {type(obj).__module__}.{type(obj).__qualname__}: {error}"
            raise TransportError(msg) from error


def _nested(hook: _Encoder | _Decoder, call: Any, value: Any) -> Any:
    """``call(value, hook)`` one tuple deeper (`combinators.packing.deeper`): a `TransportError` past `MAX_DEPTH`."""
    try:
        return deeper(hook, call, value)
    except TooDeep as error:
        msg = f"{error} cannot be sent"
        raise TransportError(msg) from None


def _packb(obj: Any, encoder: _Encoder) -> bytes:
    try:
        return msgpack.packb(obj, default=encoder, strict_types=True, use_bin_type=True)
    except UnicodeEncodeError:  # a str with lone surrogates (valid Python): the slower, lossless packer
        return msgpack.packb(obj, default=encoder, strict_types=True, use_bin_type=True, unicode_errors=_SURROGATES)


class _ItemUnpickling(Exception):
    """An item's own unpickling error, carried through the decoder so that `unpack_items` raises it as it is
    (any other error while decoding means the message is malformed)."""


class _Decoder:
    """The msgpack ``ext_hook``: rebuilds extension types over the message's frames."""

    __slots__ = ("frames", "depth")

    def __init__(self, frames: Sequence[Any]):
        self.frames = frames
        self.depth = 0  # of the tuples and row groups being decoded (see _nested)

    def __call__(self, code: int, data: bytes) -> Any:
        if code == _ARRAY or code == _OOB_ARRAY:
            (length,) = _PREFIX_LENGTH.unpack_from(data)
            offset = 2 + length
            dtype, shape, order, count = _LAYOUTS.get(data[:offset]) or _layout(data[:offset])
            if code == _OOB_ARRAY:  # a view of its own (writable) received frame
                (index,) = _INDEX.unpack_from(data, offset)
                data = self.frames[index]
            else:  # a writable copy, as in-process arrays are writable
                data = bytearray(memoryview(data)[offset:])
            offset = 0
            if not dtype.itemsize:
                return np.empty(shape, dtype, order)
            array = np.frombuffer(data, dtype, count, offset)
            return array if len(shape) == 1 else array.reshape(shape, order=order)
        if code == _TUPLE:
            return tuple(_nested(self, _unpackb, data))
        if code == _SCALAR:
            (length,) = _PREFIX_LENGTH.unpack_from(data)
            dtype = _layout(data[: 2 + length])[0]
            return np.frombuffer(data, dtype, 1, 2 + length)[0]
        if code == _COMPLEX:
            return complex(*struct.unpack("<dd", data))
        if code == _BIGINT:
            return int(data)
        if code == _PICKLE:
            try:
                return pickle.loads(data)
            except Exception as error:
                raise _ItemUnpickling(error) from None
        if code == _ROWS:
            return _Rows(_rows_items(_nested(self, _unpackb, data)))
        msg = f"unknown wire extension code {code}"
        raise TransportError(msg)


def _unpackb(data: Any, decoder: _Decoder) -> Any:
    return msgpack.unpackb(
        data, ext_hook=decoder, raw=False, strict_map_key=False, use_list=True, unicode_errors=_SURROGATES
    )


def _pack_rows(group: _RowGroup, encoder: _Encoder) -> bytes:
    """The group as one top-level msgpack value: ext ``_ROWS`` of ``[kind, keys, count, *columns]``."""
    inner = _packb(group.fields(), encoder)
    return msgpack.packb(_ext(_ROWS, inner))


def _largest(value: Any) -> int:
    """The size in bytes of the largest str or bytes value in ``value`` (lists, tuples, dicts walked)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return memoryview(value).nbytes
    if isinstance(value, str):
        return len(value.encode(errors="surrogatepass"))
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, (list, tuple)):
        return max(map(_largest, value), default=0)
    return 0


class ItemPacker:
    """Coalesces items into one message: concatenated msgpack headers plus out-of-band buffers.

    With ``freeze=True`` (in workers), out-of-band arrays are made read-only (`freeze`),
    so a source that writes into an array it yielded fails at once instead of
    corrupting what is still in flight.

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

    __slots__ = ("_encoder", "_packer", "_chunks", "_group", "count", "nbytes")

    def __init__(self, freeze: bool = False) -> None:
        self._encoder = _Encoder(freeze)
        self._packer = msgpack.Packer(default=self._encoder, strict_types=True, use_bin_type=True)
        self._chunks: list[bytes] = []
        self._group: _RowGroup | None = None  # the row group that consecutive alike items join
        self.count = 0
        self.nbytes = 0

    def add(self, item: Any) -> None:
        group = self._group
        if group is not None and group.append(item):
            self.count += 1
            self.nbytes += group.row_bytes
            return
        self._close_group()
        self._add_value(item)  # on its own, until an alike item follows (a group of one costs more)
        self._group = _RowGroup.start(item)

    def _close_group(self) -> None:
        """Pack the open group in place of its first item's own encoding (the last chunk), if it grew."""
        group, self._group = self._group, None
        if group is not None and group.count > 1:
            self._chunks[-1] = _pack_rows(group, self._encoder)

    def _add_value(self, item: Any) -> None:
        """Encode one item on its own (raising `TransportError` with the packer as it was)."""
        encoder = self._encoder
        before, before_bytes = len(encoder.buffers), encoder.nbytes
        try:
            try:
                chunk = self._packer.pack(item)
            except UnicodeEncodeError:  # a str with lone surrogates: again, with the slower lossless packer
                del encoder.buffers[before:]
                encoder.nbytes = before_bytes
                chunk = self._surrogate_packer().pack(item)
        except Exception as error:
            del encoder.buffers[before:]
            encoder.nbytes = before_bytes
            if isinstance(error, TransportError):
                raise
            msg = f"cannot send a value of type {type(item).__qualname__}: {error}"
            if isinstance(error, ValueError) and "too large" in str(error):
                msg += (
                    f" (its largest str or bytes value holds {_largest(item)} bytes; a str, bytes or pickled "
                    f"value may hold at most {MSGPACK_LIMIT} bytes, numpy arrays have no such limit)"
                )
            raise TransportError(msg) from error
        self._chunks.append(chunk)
        self.count += 1
        self.nbytes += len(chunk) + encoder.nbytes - before_bytes

    def _surrogate_packer(self) -> msgpack.Packer:
        return msgpack.Packer(default=self._encoder, strict_types=True, use_bin_type=True, unicode_errors=_SURROGATES)

    def frames(self) -> list[Any]:
        """``[header, *buffers]`` of the pending items; resets the packer."""
        self._close_group()
        frames = [b"".join(self._chunks), *self._encoder.buffers]
        self._chunks = []
        self._encoder.buffers = []
        self._encoder.nbytes = 0
        self.count = 0
        self.nbytes = 0
        return frames


def unpack_items(frames: Sequence[Any]) -> list[Any]:
    """The items of a message made by `ItemPacker.frames` (header first, then buffers), in order.

    Raises `TransportError` when the header is not such a message: bytes
    msgpack cannot read, an extension whose data is not what its code
    promises (a layout that does not fit its buffer, a row group whose
    columns are not lists of rows...), or a header cut short (whose last item
    would otherwise be left out without a word). An item's own unpickling
    error is raised as it is.

    >>> unpack_items(dumps([1, 2]))
    [[1, 2]]
    >>> unpack_items([dumps([1, 2])[0][:-1]])
    Traceback (most recent call last):
    ...
    combinators.errors.TransportError: a message of items cut short: 0 of its 2 bytes read
    """
    unpacker = msgpack.Unpacker(
        ext_hook=_Decoder(frames[1:]), raw=False, strict_map_key=False, use_list=True,
        max_buffer_size=0, unicode_errors=_SURROGATES,
    )
    unpacker.feed(frames[0])
    items: list[Any] = []
    read = 0  # bytes of the whole values read (an incomplete last value ends the loop without a word)
    try:
        for value in unpacker:
            read = unpacker.tell()
            if type(value) is _Rows:
                items.extend(value)
            else:
                items.append(value)
    except _ItemUnpickling as carried:
        raise carried.args[0] from None
    except Exception as error:  # whatever the decoding of a message that is not one raises
        msg = f"a malformed message of items ({type(error).__name__}: {error})"
        raise TransportError(msg) from error
    if read != len(frames[0]):
        msg = f"a message of items cut short: {read} of its {len(frames[0])} bytes read"
        raise TransportError(msg)
    return items


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
