"""Keys never lie: equal keys imply equal values (and equal types with ``typed=True``).

The strategy covers every supported type (each canonical encoder, a
registered one included): numbers of every kind with NaN's and zero's signs,
longdoubles, strings, containers, arrays of every dtype (structured ones with
object fields, object arrays of tuples), memoryviews, datetimes in time zones
of equal offsets, Enum members, module-level classes and functions (builtins
and ufuncs too) and partials of them. Values no encoding determines (local
classes and Enums, ``functools.wraps`` copies, callable objects, subclasses
with state, unknown time zones) raise `KeyingError` for every keymap.

Pairs of values are drawn so that collisions are likely: each value is paired
with a near neighbour of the kinds that collided before (the same bytes under
another structured dtype, a 0-d and a 1-element array, ``-0.0`` and ``0.0``,
a dict and an OrderedDict in another order, a tuple and a namedtuple, set and
frozenset, bytes and bytearray), or with an independent value. The same
implication is checked for the values a closure or a ``functools.partial``
captures, through the version `memoize` gives them. Values also round-trip
exactly through the no-pickle ``"numpy"`` serializer.
"""

from __future__ import annotations

import collections
import copy
import datetime
import decimal
import enum
import functools
import ipaddress
import math
import operator
import zoneinfo

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from combinators.errors import KeyingError
from combinators.memo import hashmap, memoize, picklemap, stringmap
from combinators.memo.encoding import dtype_description, register_encoder
from combinators.memo.serializers import NumpySerializer

Pair = collections.namedtuple("Pair", "first second")


class Colour(enum.Enum):
    RED = 1
    GREEN = 2


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


register_encoder(ipaddress.IPv4Address, lambda address: address.packed)  # the registered encoder, covered too

DTYPES = [np.dtype(d) for d in (
    "?", "i1", "u1", "<i2", ">i2", "<u4", "<i4", ">i4", "<i8", "<u8", "<f2", "<f4", ">f4", "<f8", ">f8",
    "<c8", "<c16", "S3", "<U2", "V4", "<M8[D]", "<M8[s]", "<m8[ms]", ">m8[ns]",
)] + [
    np.dtype([("a", "<i4"), ("b", "<f4")]),
    np.dtype([("x", "<f4"), ("y", "<i4")]),
    np.dtype([("b", "<f4"), ("a", "<i4")]),
    np.dtype({"names": ["a", "b"], "formats": ["<i4", "<f4"], "offsets": [4, 0], "itemsize": 8}),
    np.dtype([("a", "<i2", (2,)), ("b", "<f4")]),
    np.dtype([("p", [("q", "u1"), ("r", "u1")]), ("s", "<u2"), ("t", "<f4")]),
    np.dtype("<i4", metadata={"unit": "m"}),
    np.dtype("<i4", metadata={"unit": "s"}),
    np.dtype(("<f4", (2,))).base,
    np.dtype(np.longdouble), np.dtype(np.clongdouble),
]
LONG = {np.dtype(np.longdouble), np.dtype(np.clongdouble)}
OBJECT_DTYPES = [np.dtype(object), np.dtype([("p", object), ("q", object)]), np.dtype([("r", object), ("s", object)]),
                 np.dtype([("p", object), ("q", "<i8")])]
KEYMAPS = {
    "hashmap": hashmap(), "hashmap-typed": hashmap(typed=True), "picklemap": picklemap(),
    "stringmap": stringmap(), "stringmap-typed": stringmap(typed=True),
    "blake2b-typed": hashmap(typed=True, algorithm="blake2b"),
}
TYPED = {name for name in KEYMAPS if name.endswith("typed")}

GENERATED = [d for d in DTYPES if d.kind != "V" or d.names]  # hypothesis draws no raw void: views reach it
arrays = st.sampled_from(GENERATED).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3)))
floats = st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, math.inf, -math.inf, math.nan, -math.nan, 1e300, 2.0**63])
ZONES = [None, zoneinfo.ZoneInfo("Europe/Paris"), zoneinfo.ZoneInfo("Africa/Lagos"), zoneinfo.ZoneInfo("UTC"),
         datetime.timezone(datetime.timedelta(hours=1)), datetime.timezone(datetime.timedelta(hours=1), "CET"),
         datetime.timezone.utc]
clocks = st.one_of(
    st.builds(lambda t, zone, fold: t.replace(tzinfo=zone, fold=fold),
              st.datetimes(datetime.datetime(2020, 1, 1), datetime.datetime(2021, 1, 1)), st.sampled_from(ZONES),
              st.integers(0, 1)),
    st.builds(lambda t, zone: t.replace(tzinfo=zone), st.times(), st.sampled_from(ZONES)),
    st.dates(), st.timedeltas(),
)
longs = st.sampled_from([np.longdouble(1), np.longdouble(1) / 3, np.longdouble(2) / 3, -np.longdouble("nan"),
                         np.clongdouble(1 + 1j) / 3, np.longdouble(0.5)])
NAMED = [len, math.sqrt, math.floor, np.sin, np.cos, operator.add, int, float, Colour, Pair, functools.reduce]
named = st.sampled_from(NAMED)
others = st.one_of(
    clocks, longs, named, st.sampled_from([Colour.RED, Colour.GREEN, Level.LOW, Level.HIGH]),
    st.builds(functools.partial, st.sampled_from([operator.add, max]), st.integers(-2, 2)),
    st.decimals(allow_nan=True, places=2), st.fractions(max_denominator=5), st.uuids(),
    st.integers(0, 3).map(lambda n: ipaddress.IPv4Address(n)),
    st.builds(lambda data, i: _views(data)[i % len(_views(data))], st.binary(max_size=8), st.integers(0, 3)),
)


def _views(data: bytes) -> list:
    view = memoryview(data)
    out = [view]
    if data and len(data) % 4 == 0:
        out += [view.cast("i"), view.cast("f")] + ([view.cast("i", (2, len(data) // 8))] if len(data) % 8 == 0 else [])
    return out


@st.composite
def object_arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from(OBJECT_DTYPES))
    n = draw(st.integers(0, 2))
    fields = len(dtype.names) if dtype.names else 2
    rows = [tuple(draw(st.integers(-2, 2)) for _ in range(fields)) for _ in range(n)]
    out = np.empty(n, dtype)
    for i, row in enumerate(rows):
        out[i] = row
    return out
atoms = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(-2**70, 2**70), floats, st.floats(),
    st.complex_numbers(max_magnitude=4), st.text(max_size=3), st.binary(max_size=3),
    arrays.filter(lambda a: a.ndim == 0).map(lambda a: a[()]),  # numpy scalars of every dtype
    others,
)
hashables = st.recursive(st.one_of(st.integers(-3, 3), st.text(max_size=2), st.binary(max_size=2)),
                         lambda inner: st.tuples(inner, inner), max_leaves=4)


def _containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.lists(inner, max_size=3), st.lists(inner, max_size=3).map(tuple),
        st.tuples(inner, inner).map(lambda t: Pair(*t)),
        st.dictionaries(st.text(max_size=2), inner, max_size=3),
        st.dictionaries(st.text(max_size=2), inner, max_size=3).map(collections.OrderedDict),
        st.frozensets(hashables, max_size=3), st.sets(hashables, max_size=3),
    )


values = st.recursive(st.one_of(atoms, arrays, object_arrays()), _containers, max_leaves=6)
#: first values of a pair: anything, and (as often) each kind that collided before
firsts = st.one_of(
    values, arrays, floats, st.sampled_from([0.0, -0.0]), others, object_arrays(),
    st.dictionaries(st.text(max_size=2), atoms, min_size=2, max_size=3).map(collections.OrderedDict),
    st.tuples(atoms, atoms).map(lambda t: Pair(*t)),
    st.frozensets(hashables, min_size=1, max_size=3), st.binary(max_size=3),
)


def neighbours(value: object) -> list:
    """Values that collided with ``value`` before (or nearly could): each must key apart unless equal."""
    out: list = [_copy(value)]
    if isinstance(value, np.ndarray) and value.dtype.hasobject:
        out += [_retyped(value, d) for d in OBJECT_DTYPES]
    elif isinstance(value, (datetime.datetime, datetime.time)):
        out += [value.replace(tzinfo=zone) for zone in ZONES] + [value.replace(fold=1 - value.fold)]
    elif isinstance(value, memoryview):
        out += _views(value.tobytes()) + [value.tobytes()]
    elif isinstance(value, (np.longdouble, np.clongdouble)):
        out += [complex(value) if value.dtype.kind == "c" else float(value), -value]
    elif isinstance(value, enum.Enum):
        out += [value.value, value.name]
    elif callable(value):
        out += NAMED
    elif isinstance(value, np.ndarray):
        out += [value.view(d) for d in DTYPES if d.itemsize == value.dtype.itemsize and value.ndim]
        out += [value.reshape(-1), value.reshape((1,) * max(value.ndim, 1) + (-1,))[..., :value.size]]
        if value.dtype.kind in "fc":
            out.append(-value)
    elif isinstance(value, float):
        out += [-value, int(value) if value.is_integer() else value, np.float64(value)]
    elif isinstance(value, (bool, int)) and not isinstance(value, np.generic):
        out += [float(value), np.int64(value) if abs(value) < 2**63 else value, bool(value)]
    elif isinstance(value, Pair):
        out += [tuple(value), list(value)]
    elif isinstance(value, tuple):
        out += [list(value)] + ([Pair(*value)] if len(value) == 2 else [])
    elif isinstance(value, dict):
        items = list(value.items())
        out += [collections.OrderedDict(items[::-1]), collections.OrderedDict(items), dict(items[::-1])]
    elif isinstance(value, (set, frozenset)):
        out += [set(value), frozenset(value)]
    elif isinstance(value, bytes):
        out += [bytearray(value), value.decode("latin-1")]
    elif isinstance(value, str):
        out.append(np.str_(value))
    if isinstance(value, np.generic):
        out += [value.item(), np.asarray(value), np.asarray(value).reshape(1)]
    return out


def _retyped(value: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``value``'s rows under another object dtype: tuples in an object array, or other field names."""
    out = np.empty(value.shape, dtype)
    for i, row in enumerate(value.tolist()):
        out[i] = row if dtype.names else tuple(row) if dtype.fields is None else row
    return out


def _copy(value: object) -> object:
    """A deep copy (memoryviews included, which copy.deepcopy refuses)."""
    if isinstance(value, memoryview):
        return memoryview(value.tobytes()).cast("B").cast(value.format, value.shape) if value.nbytes else \
            memoryview(b"")
    if type(value) in (list, tuple):
        return type(value)(_copy(v) for v in value)
    if isinstance(value, Pair):
        return Pair(*map(_copy, value))
    if isinstance(value, dict):
        return type(value)((k, _copy(v)) for k, v in value.items())
    return copy.deepcopy(value)


def deep_neighbours(value: object) -> list:
    """`neighbours` of the value, and the value with each element replaced by a neighbour of it."""
    out = neighbours(value)
    for pick in (1, -1):
        if type(value) in (list, tuple, Pair):
            out.append(type(value)(*[_nth(neighbours(v), pick) for v in value]) if type(value) is Pair
                       else type(value)(_nth(neighbours(v), pick) for v in value))
        elif isinstance(value, dict):
            out.append(type(value)((k, _nth(neighbours(v), pick)) for k, v in value.items()))
    return out


def _nth(items: list, i: int) -> object:
    return items[i] if len(items) > 1 else items[0]


@st.composite
def pairs(draw: st.DrawFn) -> tuple:
    first = draw(firsts)
    near = deep_neighbours(first)  # by index: sampled_from hashes its elements, which memoryviews refuse
    second = near[draw(st.integers(0, len(near) - 1))] if draw(st.booleans()) else draw(values)
    return first, second


def same(a: object, b: object, typed: bool) -> bool:
    """Python equality made exact: arrays by dtype, shape and bytes; floats by sign of zero; NaN equals NaN."""
    if typed and type(a) is not type(b):
        return False
    special = _same_special(a, b, typed)
    if special is not None:
        return special
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray) or _array_like_scalar(a) or _array_like_scalar(b):
        return _same_array(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return isinstance(a, list) == isinstance(b, list) and len(a) == len(b) and all(
            same(x, y, typed) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        if isinstance(a, collections.OrderedDict) and isinstance(b, collections.OrderedDict) and list(a) != list(b):
            return False
        return a.keys() == b.keys() and all(same(a[k], b[k], typed) for k in a)
    if any(isinstance(x, (float, complex, np.floating, np.complexfloating)) for x in (a, b)):  # NaN: by sign
        return _same_number(a, b)
    if isinstance(a, (str, bytes, bytearray)) or isinstance(b, (str, bytes, bytearray)):
        return isinstance(a, str) == isinstance(b, str) and a == b
    return bool(a == b)


def _same_special(a: object, b: object, typed: bool) -> bool | None:
    """Exact sameness of the kinds Python's equality blurs, or ``None`` for the others."""
    kinds = (type(a), type(b))
    if callable(a) or callable(b):
        if isinstance(a, functools.partial) and isinstance(b, functools.partial):
            return a.func is b.func and same(a.args, b.args, typed) and same(a.keywords, b.keywords, typed)
        return a is b
    if isinstance(a, enum.Enum) or isinstance(b, enum.Enum):
        return a is b
    if memoryview in kinds:
        return kinds == (memoryview, memoryview) and (a.format, a.shape, a.tobytes()) == (b.format, b.shape, b.tobytes())
    if any(issubclass(k, (datetime.datetime, datetime.time)) for k in kinds):
        return (type(a) is type(b) and a.replace(tzinfo=None) == b.replace(tzinfo=None) and a.fold == b.fold
                and _zone(a.tzinfo) == _zone(b.tzinfo))
    if any(issubclass(k, (np.longdouble, np.clongdouble)) for k in kinds):
        return _same_long(a, b)
    if any(isinstance(x, np.ndarray) and x.dtype.hasobject for x in (a, b)):
        return (all(isinstance(x, np.ndarray) for x in (a, b)) and a.dtype == b.dtype
                and dtype_description(a.dtype) == dtype_description(b.dtype) and a.shape == b.shape
                and same(a.tolist(), b.tolist(), typed))
    if isinstance(a, decimal.Decimal) or isinstance(b, decimal.Decimal):
        return type(a) is type(b) and str(a) == str(b)
    return None


def _zone(zone: object) -> object:
    if isinstance(zone, zoneinfo.ZoneInfo):
        return ("zone", zone.key)
    return None if zone is None else (zone.utcoffset(None), zone.tzname(None))


def _same_long(a: object, b: object) -> bool:
    if not all(isinstance(x, (int, float, complex, np.number)) for x in (a, b)):
        return False
    a, b = np.clongdouble(a), np.clongdouble(b)
    return all(_same_float(x, y) for x, y in ((a.real, b.real), (a.imag, b.imag)))


def _array_like_scalar(value: object) -> bool:
    """numpy scalars that key as arrays (not as Python numbers): datetimes, strings, records."""
    if isinstance(value, (np.datetime64, np.timedelta64)):  # timedelta64 is an np.integer
        return True
    return isinstance(value, np.generic) and not isinstance(
        value, (np.integer, np.floating, np.bool_, np.complexfloating, np.str_, np.bytes_))


def _same_array(a: object, b: object) -> bool:
    if not (isinstance(a, (np.ndarray, np.generic)) and isinstance(b, (np.ndarray, np.generic))):
        return False
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == b.dtype and a.dtype.kind in "fc" and a.dtype.newbyteorder("=") in LONG and a.shape == b.shape:
        return bool(np.array_equal(a, b, equal_nan=True)) and all(  # their padding bytes are undefined
            np.array_equal(np.signbit(part(a)), np.signbit(part(b))) for part in (np.real, np.imag))
    return (a.dtype == b.dtype and dtype_description(a.dtype) == dtype_description(b.dtype)
            and a.shape == b.shape and a.tobytes() == b.tobytes())


def _same_number(a: object, b: object) -> bool:
    if not all(isinstance(x, (int, float, complex, np.number, np.bool_)) for x in (a, b)):
        return False
    a, b = complex(a), complex(b)
    return all(_same_float(x, y) for x, y in ((a.real, b.real), (a.imag, b.imag)))


def _same_float(x: float, y: float) -> bool:
    return (x == y or (x != x and y != y)) and bool(np.copysign(1.0, x) == np.copysign(1.0, y))


def _key(keymap: object, value: object) -> bytes | None:
    try:
        return keymap(value)
    except KeyingError:
        return None


@given(firsts, values)
def test_equal_keys_imply_equal_values(first, other):
    """Against every neighbour of the first value (the likely collisions) and an independent value."""
    for name, keymap in KEYMAPS.items():
        a = _key(keymap, first)
        assert a == _key(keymap, _copy(first))  # keys are pure
        for second in [*deep_neighbours(first), other]:
            b = _key(keymap, second)
            if a is not None and a == b:
                assert same(first, second, name in TYPED), (name, first, second)


def _closure(value: object):
    def reads():
        return value

    return reads


def _with(bound: object, x: object = None) -> object:
    return bound, x


@given(pairs())
def test_captured_values_key_like_arguments(pair):
    """Closures and partials capturing unequal values never share a version (so never an entry)."""
    versions = []
    for make in (_closure, lambda v: functools.partial(_with, v)):
        try:
            versions.append([memoize(make(v)).version for v in pair])
        except KeyingError:
            continue
    for first, second in versions:
        if first == second:
            assert same(*pair, typed=True), pair


def _storable(value: object) -> bool:
    kind = type(value)
    if kind in (list, tuple, dict):
        return all(map(_storable, value.values() if kind is dict else value))
    if isinstance(value, (np.ndarray, np.generic)):
        return not value.dtype.hasobject
    return kind in (type(None), bool, float, complex, str, bytes) or (kind is int and -2**63 <= value < 2**64)


@given(values)
def test_the_numpy_serializer_gives_values_back_exactly(value):
    assume(_storable(value))
    serializer = NumpySerializer()
    out = serializer.loads(serializer.dumps(value))
    assert same(out, value, typed=True), (value, out, np.asarray(value).tobytes(), np.asarray(out).tobytes())


class Opaque:
    def __init__(self, n: int) -> None:
        self.n = n


class Zone(datetime.tzinfo):
    def utcoffset(self, dt: object) -> datetime.timedelta:
        return datetime.timedelta(hours=1)


class Tagged(int):
    """An int subclass whose instances carry state no encoding holds."""


def _local_class(n: int) -> type:
    class Local:
        k = n

    return Local


def _local_enum(n: int) -> enum.Enum:
    class Local(enum.Enum):
        A = n

    return Local.A


def _wrapped(n: int) -> object:
    @functools.wraps(math.sqrt)
    def wrapper(x: float) -> float:
        return n * math.sqrt(x)

    return wrapper


def _tagged(n: int) -> Tagged:
    out = Tagged(n)
    out.unit = "m"
    return out


unsupported = st.integers(0, 3).flatmap(lambda n: st.sampled_from([
    _local_class(n), type("Made", (), {"k": n}), _local_enum(n), _wrapped(n), Opaque(n), _tagged(n),
    lambda x: x + n, collections.defaultdict(list, {n: []}), datetime.datetime(2020, 1, 1, tzinfo=Zone()),
    ipaddress.IPv6Address(n), functools.partial(lambda x: x, n),
]))


@given(unsupported, values)
def test_values_no_encoding_determines_are_refused(value, other):
    """Alone or inside a container, for every keymap (a memoize argument too)."""
    for keymap in KEYMAPS.values():
        for wrapped in (value, [other, value], {"k": value}, (value,)):
            try:
                keymap(wrapped)
            except KeyingError as error:
                assert "ignore=" in str(error) or "encoder" in str(error), error
            else:
                raise AssertionError(f"{keymap!r} keyed {wrapped!r}")
