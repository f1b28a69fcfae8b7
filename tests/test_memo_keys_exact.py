"""Issue 23, items 1-13: a value is keyed only by an encoding that determines it.

Each test memoizes over a real `DictArchive` (or calls a keymap) with values
that main keyed alike though they differ (1-11), or crashed on (12-13).
Values without such an encoding raise `KeyingError` naming the value and the
ways out, as joblib 1.6.0 refuses items 1-5 and 8.
"""

from __future__ import annotations

import datetime
import enum
import functools
import gc
import ipaddress
import math
import zoneinfo

import numpy as np
import pytest

from combinators.errors import KeyingError
from combinators.memo import DictArchive, hashmap, keymap, memoize, picklemap, stringmap
from combinators.memo.encoding import register_encoder, resolves

WAYS_OUT = r"ignore=.*register_encoder.*version="


def memoized(fn):
    return memoize(fn, archive=DictArchive())


def attribute_k(cls):
    return cls.k


def call_with_10(f):
    return f(10)


def base(x):
    return x


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


def test_1_local_classes_are_refused_not_keyed_by_name():
    def make(n):
        class C:
            k = n

        return C

    f = memoized(attribute_k)
    with pytest.raises(KeyingError, match=r"'cls'.*make.<locals>.C.*do not give it back.*" + WAYS_OUT):
        f(make(1))
    Colour.k = 7
    assert f(Colour) == 7  # a module-level class keys by its name
    assert resolves(Colour) and not resolves(make(1))


def test_2_classes_made_by_type_are_refused():
    f = memoized(attribute_k)
    with pytest.raises(KeyingError, match="'cls'.*do not give it back"):
        f(type("C", (), {"k": 1}))


def test_3_functions_named_after_another_by_wraps_are_refused():
    def times(n):
        def decorate(fn):
            @functools.wraps(fn)
            def wrapper(x):
                return n * fn(x)

            return wrapper

        return decorate

    f = memoized(call_with_10)
    assert f(base) == 10  # the module-level function itself resolves
    with pytest.raises(KeyingError, match="'f'.*base.*do not give it back"):
        f(times(2)(base))


class Scaled:
    def __init__(self, fn, n):
        functools.update_wrapper(self, fn)
        self.n = n

    def __call__(self, x):
        return self.n * self.__wrapped__(x)


def test_4_callable_objects_copying_a_name_are_refused():
    f = memoized(call_with_10)
    with pytest.raises(KeyingError, match=r"'f' of type test_memo_keys_exact.Scaled.*no canonical encoding"):
        f(Scaled(base, 2))


def test_5_members_of_local_enums_are_refused_module_level_ones_keyed():
    def make(n):
        class E(enum.Enum):
            A = n

        return E.A

    f = memoized(lambda e: e.value)
    with pytest.raises(KeyingError, match="'e'.*make.<locals>.E"):
        f(make(1))
    assert (f(Colour.RED), f(Colour.BLUE)) == (1, 2)


def test_6_nan_keys_by_its_sign():
    f = memoized(lambda x: math.copysign(1.0, x))
    assert (f(math.nan), f(-math.nan)) == (1.0, -1.0)
    for km in (hashmap(), picklemap(), stringmap(), hashmap(typed=True)):
        assert km(math.nan) != km(-math.nan) and km(math.nan) == km(float("nan"))
    assert hashmap()(np.float32(-math.nan)) == hashmap()(-math.nan)


def test_7_time_zones_key_by_identity_not_offset():
    f = memoized(lambda t: (t + datetime.timedelta(days=180)).utcoffset())
    t = datetime.datetime(2024, 1, 1)
    paris, fixed = zoneinfo.ZoneInfo("Europe/Paris"), datetime.timezone(datetime.timedelta(hours=1))
    assert t.replace(tzinfo=paris).isoformat() == t.replace(tzinfo=fixed).isoformat()
    assert f(t.replace(tzinfo=paris)) == datetime.timedelta(hours=2)
    assert f(t.replace(tzinfo=fixed)) == datetime.timedelta(hours=1)
    key = hashmap()
    assert key(t.replace(tzinfo=paris)) == key(t.replace(tzinfo=zoneinfo.ZoneInfo.no_cache("Europe/Paris")))
    assert key(t.replace(fold=1)) != key(t)  # fold picks the later of two wall times
    named = datetime.timezone(datetime.timedelta(hours=1), "CET")
    assert key(datetime.time(1, tzinfo=named)) != key(datetime.time(1, tzinfo=fixed))


def test_7_unknown_time_zone_classes_are_refused():
    class Zone(datetime.tzinfo):
        def utcoffset(self, dt):
            return datetime.timedelta(0)

    with pytest.raises(KeyingError, match="time zone"):
        hashmap()(datetime.datetime(2024, 1, 1, tzinfo=Zone()))


def test_8_memoryviews_key_by_format_shape_and_bytes():
    f = memoized(lambda m: (m.format, m.shape))
    data = np.arange(4, dtype="<i4").tobytes()
    views = [memoryview(data), memoryview(data).cast("i"), memoryview(data).cast("i", (2, 2))]
    assert [f(v) for v in views] == [("B", (16,)), ("i", (4,)), ("i", (2, 2))]
    assert hashmap()(memoryview(b"ab")) != hashmap()(memoryview(b"ac"))
    released = memoryview(b"ab")
    released.release()
    with pytest.raises(KeyingError, match="released"):
        hashmap()(released)


def test_9_structured_arrays_with_object_fields_keep_their_field_names():
    f = memoized(lambda a: a.dtype.names)
    x = np.array([(1, "a")], dtype=[("p", object), ("q", object)])
    y = np.array([(1, "a")], dtype=[("r", object), ("s", object)])
    assert (f(x), f(y)) == (("p", "q"), ("r", "s"))


def test_10_object_arrays_of_tuples_differ_from_structured_object_arrays():
    f = memoized(lambda a: a.dtype.names)
    structured = np.array([(1, "a")], dtype=[("p", object), ("q", object)])
    tuples = np.empty(1, dtype=object)
    tuples[0] = (1, "a")
    assert (f(tuples), f(structured)) == (None, ("p", "q"))


@pytest.mark.parametrize("km", [hashmap(), picklemap(), stringmap(), hashmap(typed=True), keymap()])
def test_11_keymaps_called_directly_delimit_keyword_names(km):
    assert km(a=1, b=2) != km(**{"a=i1;@b": 2})
    assert km(a=1, b=2) != km(**{"a=1;@b": 2}) and km(a=1, b=2) == km(b=2, a=1)
    assert km(("b", 2)) != km(b=2)


def test_11_keymap_dicts_differ_from_frozensets_of_pairs():
    def f(x):
        return x

    key = keymap().bind(f)
    assert key(({1: 2},), {}) != key((frozenset({(1, 2)}),), {})


def test_12_longdouble_keys_exactly():
    key = hashmap()
    third = np.longdouble(1) / 3
    assert key(np.longdouble(1)) == key(1.0) == key(1)
    assert key(third) != key(float(third)) and key(third) == key(np.longdouble(1) / 3)
    assert key(np.clongdouble(third)) != key(complex(float(third)))
    f = memoized(lambda x: x * 3)
    assert f(third) == third * 3
    ones = np.ones(3, np.longdouble)
    assert key(ones) == key(np.ones(3, np.longdouble)) != key(ones / 3)
    assert hashmap(typed=True)(third) == hashmap(typed=True)(np.longdouble(1) / 3)


def apply(f, x):
    return f(x)


@pytest.mark.parametrize("fn, x, expected", [(math.sqrt, 4.0, 2.0), (len, "abc", 3), (np.sin, 0.0, 0.0)])
def test_13_module_level_builtins_key_by_name(fn, x, expected):
    f = memoized(apply)
    assert f(fn, x) == expected
    assert hashmap()(gc.collect) != hashmap()(gc.enable) and hashmap()(len) == hashmap()(len)
    assert hashmap()(math.sqrt) != hashmap()(np.sqrt)


def test_unsupported_subclasses_are_refused():
    class Tagged(int):
        pass

    tagged = Tagged(3)
    tagged.unit = "m"
    with pytest.raises(KeyingError, match="state or behaviour of its own"):
        hashmap()(tagged)
    with pytest.raises(KeyingError, match="state or behaviour of its own"):
        hashmap()(__import__("collections").defaultdict(list))


def test_a_registered_encoder_keys_its_type_and_only_it():
    network = ipaddress.IPv4Network
    with pytest.raises(KeyingError, match="no canonical encoding"):
        hashmap()(network("10.0.0.0/8"))
    register_encoder(network, lambda net: (net.network_address.packed, net.prefixlen))
    try:
        key = hashmap()
        assert key(network("10.0.0.0/8")) != key(network("10.0.0.0/16")) != key(network("11.0.0.0/16"))
        assert key(network("10.0.0.0/8")) == key(network("10.0.0.0/8"))
        assert key(network("10.0.0.0/8")) != key((network("10.0.0.0/8").network_address.packed, 8))
    finally:
        register_encoder(network, None)
    with pytest.raises(KeyingError, match="no canonical encoding"):
        hashmap()(network("10.0.0.0/8"))
    with pytest.raises(KeyingError, match="built-in encoding"):
        register_encoder(float, str)
    with pytest.raises(KeyingError, match="give back"):
        register_encoder(type("Local", (), {}), str)


def test_partials_key_by_function_and_bound_arguments():
    key = hashmap()
    assert key(functools.partial(base, 1)) != key(functools.partial(base, 2))
    assert key(functools.partial(base, 1)) == key(functools.partial(base, 1))
    with pytest.raises(KeyingError, match=r"\.func"):
        key(functools.partial(lambda x: x, 1))
