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
import functools
import math
import pathlib
import struct
import sys
import types
import uuid
import zoneinfo
from typing import Any, Callable

import attrs
import numpy as np

from combinators.errors import KeyingError

__all__ = ["Encoder", "dtype_description", "register_encoder", "resolves"]

_Q = struct.Struct("<Q").pack
_D = struct.Struct("<d").pack
_NAN = _D(math.nan)
_NEGATIVE_NAN = _D(-math.nan)


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
        """Floats key by value and sign (of zero and of NaN): ``-0.0`` and ``0.0`` key apart unless ``round`` is set."""
        if self.round is not None:
            x = round(x, self.round) + 0.0  # + 0.0 folds -0.0 into 0.0, as for arrays
        if not self.typed and x.is_integer() and abs(x) < 2**63 and (x or math.copysign(1.0, x) > 0):
            parts.append(b"i%d;" % int(x))
        elif x != x:  # one NaN per sign (payloads folded): copysign(1, nan) tells them apart
            parts.append(b"f" + (_NAN if math.copysign(1.0, x) > 0 else _NEGATIVE_NAN))
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


_LONG = np.dtype(np.longdouble)
#: bytes of a longdouble that hold its value: the x87 80-bit format pads 10 bytes to 12 or 16 with
#: bytes no operation defines, which would make equal values key apart
_LONG_BYTES = 10 if np.finfo(np.longdouble).nmant == 63 else _LONG.itemsize
_LONG_KINDS = frozenset({_LONG, np.dtype(np.clongdouble)}) if _LONG.itemsize > 8 else frozenset()


def _raw_bytes(value: np.ndarray) -> Any:
    """The C-order contents of a contiguous array as a byte buffer (datetime64 and structured included)."""
    if not value.size or not value.itemsize:
        return b""
    if value.dtype.kind in "fc" and value.dtype.newbyteorder("=") in _LONG_KINDS:  # each component's defined bytes
        native = value.astype(value.dtype.newbyteorder("="))
        return native.reshape(-1).view(np.uint8).reshape(-1, _LONG.itemsize)[:, :_LONG_BYTES].tobytes()
    try:
        return memoryview(value).cast("B")
    except (ValueError, TypeError):  # dtypes the buffer protocol refuses: datetime64, timedelta64, some records
        return memoryview(value.reshape(-1).view(np.uint8))


def _shape(tag: bytes, value: Any) -> bytes:
    return tag + _Q(value.ndim) + b"".join(_Q(n) for n in value.shape)


def _ndarray(enc: Encoder, value: np.ndarray, parts: list, path: str) -> None:
    dtype = dtype_description(value.dtype)
    if value.dtype.hasobject:  # the dtype keeps a structured array's field names apart from a tuple's items
        parts.append(_shape(b"O" + _Q(len(dtype)) + dtype, value))
        _sequence(b"[")(enc, value.ravel().tolist(), parts, path)
        return
    if enc.round is not None and value.dtype.kind in "fc":
        value = np.round(value, enc.round) + 0.0  # + 0.0 folds -0.0 into 0.0, as for scalars
    if not value.flags.c_contiguous:
        value = value.copy(order="C")  # not np.ascontiguousarray: it turns a 0-d array into a 1-d one
    parts.append(_shape(b"a" + _Q(len(dtype)) + dtype, value))
    parts.append(_raw_bytes(value))


def _masked(enc: Encoder, value: np.ma.MaskedArray, parts: list, path: str) -> None:
    """A masked array: its data and its mask (arrays equal but for the mask key apart)."""
    parts.append(b"m")
    _ndarray(enc, np.ma.getdata(value), parts, path)
    _ndarray(enc, np.ma.getmaskarray(value), parts, path)


def _generic(enc: Encoder, value: np.generic, parts: list, path: str) -> None:
    numeric = isinstance(value, (np.integer, np.floating, np.bool_, np.complexfloating))
    if not enc.typed and numeric and not isinstance(value, np.timedelta64):  # NaT.item() is None
        if value.dtype in _LONG_KINDS:
            _long(enc, value, parts, path)
        else:
            enc.encode(value.item(), parts, path)
    else:
        _ndarray(enc, np.asarray(value), parts, path)


def _long(enc: Encoder, value: np.generic, parts: list, path: str) -> None:
    """A longdouble (complex or real) by exact value: as a float when one holds it, else as a ratio."""
    if value.dtype.kind == "c":
        parts.append(b"c")
        _long(enc, value.real, parts, path)
        _long(enc, value.imag, parts, path)
    elif not np.isfinite(value) or float(value) == value:
        enc.scalar_float(float(value), parts)  # float() keeps infinities and NaN's sign
    else:
        numerator, denominator = value.as_integer_ratio()
        parts.append(b"L%d/%d;" % (numerator, denominator))


def resolves(obj: Any) -> bool:
    """Whether ``obj``'s module (as imported: in ``sys.modules``) and qualified name give back ``obj`` itself.

    Only then does the name determine the object: a class or function made
    in a function (``<locals>``), by ``type(...)``, or copying another's name
    (``functools.wraps``) does not resolve, nor does a bound method of an
    instance. Module-level builtins (``len``, ``math.sqrt``) and numpy ufuncs
    do.

    >>> import math
    >>> resolves(math.sqrt), resolves(len), resolves(type("C", (), {})), resolves(lambda: 0)
    (True, True, False, False)
    """
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(obj, np.ufunc):
        qualname = obj.__name__
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        return False
    try:
        found = sys.modules[module]  # a module not loaded is not where the object came from: no import here
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception:  # noqa: BLE001 - any failure to import or look up means: does not resolve
        return False
    return found is obj or (isinstance(obj, types.MethodType) and isinstance(obj.__self__, type) and found == obj)


def _qualified_name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__name__ if isinstance(obj, np.ufunc) else obj.__qualname__}"


def _named(enc: Encoder, value: Any, parts: list, path: str) -> None:
    """A class or function by its module and qualified name, which must give it back (`resolves`)."""
    if not resolves(value):
        name = f"{getattr(value, '__module__', None)}.{getattr(value, '__qualname__', None)}"
        why = (f"its module and qualified name {name!r} do not give it back (a class or function made in a "
               f"function, by type(), or named after another)")
        raise KeyingError(_refusal(value, path, why))
    name = _qualified_name(value).encode()
    parts.append(b"n" + _Q(len(name)) + name)


def _textual(tag: bytes) -> Callable:
    def handler(enc: Encoder, value: Any, parts: list, path: str) -> None:
        text = (value.isoformat() if hasattr(value, "isoformat") else str(value)).encode()
        parts.append(tag + _Q(len(text)) + text)

    return handler


def _zone(enc: Encoder, value: Any, zone: Any, parts: list, path: str) -> None:
    """A datetime's or time's time zone by identity: a ZoneInfo by its key, a fixed offset by offset and name."""
    if zone is None:
        parts.append(b"-")
    elif type(zone) is datetime.timezone:
        text = f"{zone.utcoffset(None)}/{zone.tzname(None)}".encode()
        parts.append(b"+" + _Q(len(text)) + text)
    elif type(zone) is zoneinfo.ZoneInfo and isinstance(zone.key, str):
        parts.append(b"Z" + _Q(len(zone.key)) + zone.key.encode())
    else:
        raise KeyingError(_refusal(value, path, f"its time zone {zone!r:.60} is not a ZoneInfo with a key or a "
                                                "datetime.timezone"))


def _clock(tag: bytes) -> Callable:
    """datetimes and times: wall clock text, fold and time zone (two zones of one offset key apart)."""
    def handler(enc: Encoder, value: Any, parts: list, path: str) -> None:
        text = value.replace(tzinfo=None).isoformat().encode()
        parts.append(tag + _Q(len(text)) + text + b"%d" % value.fold)
        _zone(enc, value, value.tzinfo, parts, path)

    return handler


def _memoryview(enc: Encoder, value: memoryview, parts: list, path: str) -> None:
    """A memoryview by its item format, shape and contents in C order."""
    try:
        data, fmt = value.tobytes(), value.format.encode()
    except ValueError as error:  # released
        raise KeyingError(_refusal(value, path, str(error))) from None
    parts.append(_shape(b"v" + _Q(len(fmt)) + fmt, value) + _Q(len(data)) + data)


def _path(enc: Encoder, value: pathlib.PurePath, parts: list, path: str) -> None:
    """A path: its flavour (POSIX and Windows paths are never equal) and its text."""
    flavour = b"w" if isinstance(value, pathlib.PureWindowsPath) else b"p"
    _textual(b"P" + flavour)(enc, value, parts, path)


def _enum(enc: Encoder, value: enum.Enum, parts: list, path: str) -> None:
    """An Enum member: its class (which must resolve) and its name, or its value for a Flag combination."""
    _named(enc, type(value), parts, path)
    if isinstance(value.name, str):
        _str(enc, value.name, parts, path)
    else:
        enc.encode(value.value, parts, f"{path}.value")


def _record(enc: Encoder, value: Any, parts: list, path: str) -> None:
    """attrs instances and dataclasses: their class (which must resolve) and fields, by name."""
    if attrs.has(type(value)):
        names = [a.name for a in attrs.fields(type(value))]
    else:
        names = [f.name for f in dataclasses.fields(value)]
    _named(enc, type(value), parts, path)
    parts.append(b"r" + _Q(len(names)))
    for name in names:
        _str(enc, name, parts, path)
        enc.encode(getattr(value, name), parts, f"{path}.{name}")


def _partial(enc: Encoder, value: functools.partial, parts: list, path: str) -> None:
    """A functools.partial: its function, bound arguments and keywords."""
    parts.append(b"p")
    enc.encode(value.func, parts, f"{path}.func")
    enc.encode(value.args, parts, f"{path}.args")
    enc.encode(value.keywords, parts, f"{path}.keywords")


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
    memoryview: _memoryview,
    functools.partial: _partial,
    datetime.datetime: _clock(b"D"),
    datetime.date: _textual(b"d"),
    datetime.time: _clock(b"t"),
    datetime.timedelta: _textual(b"z"),
    decimal.Decimal: _textual(b"M"),
    fractions.Fraction: _textual(b"Q"),
    uuid.UUID: _textual(b"U"),
}
_BUILTIN_TYPES = frozenset(_HANDLERS)
_PATHS = frozenset({pathlib.PurePath, pathlib.PurePosixPath, pathlib.PureWindowsPath, pathlib.Path,
                    pathlib.PosixPath, pathlib.WindowsPath})
_CALLABLE_TYPES = (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType, np.ufunc)
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined by a class statement (C types add hidden state)


def register_encoder(kind: type, encode: Callable[[Any], Any] | None) -> None:
    """Key instances of exactly ``kind`` by ``encode(value)``, a keyable value that determines them.

    ``encode`` returns a value of a supported type (a tuple of its fields,
    say) from which the instance could be rebuilt: two instances whose
    ``encode`` results are equal must be interchangeable as arguments. Keys
    then hold ``kind``'s qualified name and that value. ``encode=None``
    removes the encoder. Raises `KeyingError` when ``kind`` is a built-in
    type or does not `resolve <resolves>` (a class made in a function).

    >>> import ipaddress
    >>> def key(value):
    ...     parts = []
    ...     Encoder().encode(value, parts, "x")
    ...     return b"".join(parts)
    >>> register_encoder(ipaddress.IPv4Address, lambda address: address.packed)
    >>> key(ipaddress.ip_address("10.0.0.1")) != key(ipaddress.ip_address("10.0.0.2"))
    True
    >>> register_encoder(ipaddress.IPv4Address, None)
    >>> key(ipaddress.ip_address("10.0.0.1"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    combinators.errors.KeyingError: cannot key x of type ipaddress.IPv4Address (IPv4Address('10.0.0.1')): no ...
    """
    if kind in _BUILTIN_TYPES:
        msg = f"{_qualified_name(kind)} has a built-in encoding, which cannot be replaced"
        raise KeyingError(msg)
    if encode is None:
        _HANDLERS.pop(kind, None)
        return
    if not isinstance(kind, type) or not resolves(kind):
        msg = f"cannot register an encoder for {kind!r:.60}: it must be a class its module and name give back"
        raise KeyingError(msg)

    def handler(enc: Encoder, value: Any, parts: list, path: str) -> None:
        _named(enc, kind, parts, path)
        enc.encode(encode(value), parts, f"{path} (encoded by {getattr(encode, '__qualname__', encode)!r:.40})")

    _HANDLERS[kind] = handler


def _refusal(value: Any, path: str, why: str) -> str:
    return (f"cannot key {path} of type {_describe(type(value))} ({value!r:.80}): {why} (use ignore= to leave it "
            f"out of the key, register an encoder for its type with combinators.memo.encoding.register_encoder, "
            f"or, for a value a memoized function captures, pass version= to vouch for it)")


def _describe(kind: type) -> str:
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', kind.__name__)}"


def _adds_no_state(value: Any, base: type) -> bool:
    """Whether ``type(value)`` is Python subclasses of ``base`` that hold nothing beyond ``base``'s value.

    A namedtuple qualifies (no slots, no ``__dict__``); a C subclass (pandas'
    Timestamp, defaultdict) or one whose instances carry attributes does not.
    """
    for cls in type(value).__mro__:
        if cls is base:
            return not getattr(value, "__dict__", None)
        if not cls.__flags__ & _HEAPTYPE or cls.__dict__.get("__slots__", ()) not in ((), [], ""):
            return False
    return False


_FAMILIES: list[tuple[Callable[[Any], bool], Callable]] = [  # checked in order, before the subclasses
    (lambda v: isinstance(v, enum.Enum), _enum),
    (lambda v: type(v) is collections.OrderedDict, _ordered_dict),
    (lambda v: isinstance(v, np.ma.MaskedArray), _masked),  # before ndarray: its mask is part of its value
    (lambda v: isinstance(v, np.generic), _generic),
    (lambda v: type(v) is np.memmap, _ndarray),
    (lambda v: type(v) in _PATHS, _path),
    (lambda v: attrs.has(type(v)) or (dataclasses.is_dataclass(v) and not isinstance(v, type)), _record),
    (lambda v: isinstance(v, _CALLABLE_TYPES), _named),
]


def _find_handler(value: Any, path: str) -> Callable:
    """The handler of a value whose exact type has none: its family, or its base's; else KeyingError."""
    for test, handler in _FAMILIES:
        if test(value):
            return handler
    for kind, handler in _HANDLERS.items():
        if kind in _BUILTIN_TYPES and isinstance(value, kind):
            if _adds_no_state(value, kind):
                return handler
            why = f"it is a {_describe(kind)} with state or behaviour of its own, which no encoding holds"
            raise KeyingError(_refusal(value, path, why))
    raise KeyingError(_refusal(value, path, "no canonical encoding determines it"))
