"""Keys never lie: equal keys imply equal values (and equal types with ``typed=True``).

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
import functools
import math

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from combinators.errors import KeyingError
from combinators.memo import hashmap, memoize, picklemap, stringmap
from combinators.memo.encoding import dtype_description
from combinators.memo.serializers import NumpySerializer

Pair = collections.namedtuple("Pair", "first second")

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
]
KEYMAPS = {
    "hashmap": hashmap(), "hashmap-typed": hashmap(typed=True), "picklemap": picklemap(),
    "stringmap": stringmap(), "stringmap-typed": stringmap(typed=True),
    "blake2b-typed": hashmap(typed=True, algorithm="blake2b"),
}
TYPED = {name for name in KEYMAPS if name.endswith("typed")}

GENERATED = [d for d in DTYPES if d.kind != "V" or d.names]  # hypothesis draws no raw void: views reach it
arrays = st.sampled_from(GENERATED).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3)))
floats = st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, math.inf, -math.inf, math.nan, 1e300, 2.0**63])
atoms = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(-2**70, 2**70), floats, st.floats(),
    st.complex_numbers(max_magnitude=4), st.text(max_size=3), st.binary(max_size=3),
    arrays.filter(lambda a: a.ndim == 0).map(lambda a: a[()]),  # numpy scalars of every dtype
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


values = st.recursive(st.one_of(atoms, arrays), _containers, max_leaves=6)
#: first values of a pair: anything, and (as often) each kind that collided before
firsts = st.one_of(
    values, arrays, floats, st.sampled_from([0.0, -0.0]),
    st.dictionaries(st.text(max_size=2), atoms, min_size=2, max_size=3).map(collections.OrderedDict),
    st.tuples(atoms, atoms).map(lambda t: Pair(*t)),
    st.frozensets(hashables, min_size=1, max_size=3), st.binary(max_size=3),
)


def neighbours(value: object) -> list:
    """Values that collided with ``value`` before (or nearly could): each must key apart unless equal."""
    out: list = [copy.deepcopy(value)]
    if isinstance(value, np.ndarray) and not value.dtype.hasobject:
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
    second = draw(st.one_of(st.sampled_from(deep_neighbours(first)), values))
    return first, second


def same(a: object, b: object, typed: bool) -> bool:
    """Python equality made exact: arrays by dtype, shape and bytes; floats by sign of zero; NaN equals NaN."""
    if typed and type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray) or _array_like_scalar(a) or _array_like_scalar(b):
        return _same_array(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return isinstance(a, list) == isinstance(b, list) and len(a) == len(b) and all(
            same(x, y, typed) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        if isinstance(a, collections.OrderedDict) and isinstance(b, collections.OrderedDict) and list(a) != list(b):
            return False
        return a.keys() == b.keys() and all(same(a[k], b[k], typed) for k in a)
    if isinstance(a, (float, complex)) or isinstance(b, (float, complex)):
        return _same_number(a, b)
    if isinstance(a, (str, bytes, bytearray)) or isinstance(b, (str, bytes, bytearray)):
        return isinstance(a, str) == isinstance(b, str) and a == b
    return bool(a == b)


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
    return (a.dtype == b.dtype and dtype_description(a.dtype) == dtype_description(b.dtype)
            and a.shape == b.shape and a.tobytes() == b.tobytes())


def _same_number(a: object, b: object) -> bool:
    if not all(isinstance(x, (int, float, complex, np.number, np.bool_)) for x in (a, b)):
        return False
    a, b = complex(a), complex(b)
    return all(_same_float(x, y) for x, y in ((a.real, b.real), (a.imag, b.imag)))


def _same_float(x: float, y: float) -> bool:
    return (x != x and y != y) or (x == y and math.copysign(1.0, x) == math.copysign(1.0, y))


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
        assert a == _key(keymap, copy.deepcopy(first))  # keys are pure
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
    assert same(out, value, typed=True), (value, out)
