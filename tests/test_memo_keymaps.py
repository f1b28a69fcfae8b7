"""Keymaps: pure keys across processes and hash seeds, binding, numpy, ignore, round, errors."""

from __future__ import annotations

import collections
import dataclasses
import enum
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from combinators import KeyingError
from combinators.errors import InvalidArgument
from combinators.memo import hashmap, keymap, picklemap, stringmap

ROOT = Path(__file__).resolve().parents[1]


class Color(enum.Enum):
    RED = 1


@dataclasses.dataclass(frozen=True)
class Point:
    x: float
    y: float


def features(data, scale=1.0, *, options=None, labels=frozenset()):
    return data


def calls() -> list[tuple[tuple, dict]]:
    """Arguments whose hash()-based keys would vary with PYTHONHASHSEED."""
    return [
        (("a string",), {}),
        ((b"bytes", 2.5), {"options": {"z": 1, "a": [1, 2], "m": {"x", "y", "w"}}}),
        ((np.arange(12, dtype=np.float32).reshape(3, 4),), {"labels": frozenset({"cat", "dog", "eel"})}),
        (({"k": (1, None, True)},), {"options": {3: "x", (1, "t"): 2.0}}),
        ((Point(1.0, 2.0), Color.RED), {}),
    ]


def all_keys() -> list[str]:
    out = []
    for km in (hashmap(), hashmap(algorithm="blake2b"), picklemap(), stringmap(), hashmap(typed=True)):
        bound = km.bind(features)
        out += [bound(args, kwargs).hex() for args, kwargs in calls()]
        out += [km(*args, **kwargs).hex() for args, kwargs in calls()]
    return out


def test_keys_are_identical_across_processes_and_hash_seeds():
    script = "import test_memo_keymaps as t; print('\\n'.join(t.all_keys()))"
    outputs = []
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout.split())
    assert outputs[0] == outputs[1] == outputs[2] == all_keys()
    assert len(set(outputs[0])) == len(outputs[0])  # and every call keys apart


def test_dict_and_set_keys_ignore_insertion_order():
    key = hashmap()
    assert key({"a": 1, "b": 2}) == key({"b": 2, "a": 1})
    assert key({3, 1, 2}) == key({2, 3, 1}) == key(frozenset({1, 2, 3}))  # as set == frozenset
    assert key({3, 1, 2}) != key([1, 2, 3]) != key((1, 2, 3))
    assert key({"a": 1}) != key({"a": 2}) != key({"b": 2})


@pytest.mark.parametrize("km", [hashmap(), picklemap(), stringmap(), keymap()])
def test_arguments_bind_to_the_signature_with_defaults(km):
    def f(a, b=2, *args, c=3, **kwargs):
        return a

    key = km.bind(f)
    assert key((1,), {}) == key((1, 2), {}) == key((), {"a": 1, "b": 2}) == key((1,), {"c": 3})
    assert key((1,), {}) != key((1, 3), {})
    assert key((1, 2, 5), {}) != key((1, 2), {})
    assert key((1,), {"x": 1, "y": 2}) == key((1,), {"y": 2, "x": 1}) != key((1,), {"x": 1})


def test_a_call_that_does_not_fit_the_signature_is_a_type_error():
    key = hashmap().bind(lambda a, b: a)
    with pytest.raises(TypeError, match="cannot bind"):
        key((1, 2, 3), {})


def test_numpy_arrays_key_by_dtype_shape_and_contents():
    key = hashmap()
    a = np.zeros(100_000)
    b = a.copy()
    b[50_000] = 1e-300  # differs only in the middle (klepto's repr-based keys collide here)
    assert key(a) != key(b)
    assert key(a) == key(a.copy())
    assert key(a) != key(a.astype(np.float32)) != key(a.reshape(1000, 100))
    assert key(np.asfortranarray(a.reshape(100, 1000))) == key(np.ascontiguousarray(a.reshape(100, 1000)))
    assert key(a[::2]) == key(np.ascontiguousarray(a[::2]))
    assert stringmap()(a) != stringmap()(b)
    assert picklemap()(np.array([1, 2], dtype=object)) == picklemap()(np.array([1, 2], dtype=object))


def test_ignore_by_name_and_position():
    def train(data, seed, verbose=False):
        return data

    full = hashmap().bind(train)
    by_name = hashmap(ignore="verbose").bind(train)
    by_position = hashmap(ignore=(2,)).bind(train)
    assert full((1, 2, True), {}) != full((1, 2, False), {})
    assert by_name((1, 2, True), {}) == by_name((1, 2), {}) == by_position((1, 2), {"verbose": True})
    assert by_name((1, 2), {}) != by_name((1, 3), {})
    with pytest.raises(InvalidArgument, match="'nope'"):
        hashmap(ignore="nope").bind(train)
    with pytest.raises(InvalidArgument, match="position 7"):
        hashmap(ignore=7).bind(train)
    assert hashmap(ignore=0)(object(), 1) == hashmap(ignore=0)(object(), 1)


def test_round_and_typed():
    assert hashmap(round=3)(0.12341) == hashmap(round=3)(0.12339) != hashmap(round=3)(0.1236)
    assert hashmap(round=1)(np.array([0.11, 0.22])) == hashmap(round=1)(np.array([0.12, 0.19]))
    assert hashmap()(3) == hashmap()(3.0) == hashmap()(np.int64(3))
    assert hashmap(typed=True)(3) != hashmap(typed=True)(3.0)
    assert hashmap(typed=True)(np.float32(3)) != hashmap(typed=True)(np.float64(3))
    assert hashmap()(0.0) != hashmap()(-0.0)  # a function may tell them apart: 1 / x, atan2
    assert hashmap(round=2)(0.0) == hashmap(round=2)(-0.0) == hashmap(round=2)(-0.001)
    assert hashmap()(float("nan")) == hashmap()(float("nan"))


def test_an_argument_that_cannot_be_keyed_names_the_parameter_and_type():
    def f(data, model):
        return data

    with pytest.raises(KeyingError, match=r"'model'.*test_memo_keymaps\.Opaque"):
        hashmap().bind(f)((1, Opaque()), {})
    with pytest.raises(KeyingError, match=r"'data'\[1\]\['k'\].*Opaque"):
        hashmap().bind(f)(([0, {"k": Opaque()}], 1), {})
    with pytest.raises(KeyingError, match="position 0 of type builtins.function"):
        hashmap()(lambda: 1)
    with pytest.raises(KeyingError, match="'data'.*list"):
        keymap().bind(f)(([1], 2), {})


class Opaque:
    pass


def test_module_level_functions_key_by_name():
    assert hashmap()(features) == hashmap()(features) != hashmap()(calls)


def test_keymaps_are_frozen_values_with_validation():
    assert hashmap(ignore="x") == hashmap(ignore=("x",))
    with pytest.raises(TypeError):
        hashmap(round=1.5)
    with pytest.raises(ValueError):
        hashmap(algorithm="md5")


pair = collections.namedtuple("pair", "x y")


def test_keys_that_collided_now_key_apart():
    key, typed = hashmap(), hashmap(typed=True)
    a = np.zeros(3, [("a", "<i4"), ("b", "<f4")])
    b = a.view([("x", "<f4"), ("y", "<i4")])  # the same bytes, and dtype.str is |V8 for both
    assert a.dtype.str == b.dtype.str and a.tobytes() == b.tobytes() and key(a) != key(b)
    assert key(np.zeros(2, np.dtype("<i4", metadata={"u": "m"}))) != key(np.zeros(2, "<i4"))
    assert key(np.zeros(1, [("a", "<i2", (2,))])) != key(np.zeros(1, [("a", "<i4")]))
    assert key(np.array(5.0)) != key(np.array([5.0]))  # 0-d and 1-element
    assert key(collections.OrderedDict(a=1, b=2)) != key(collections.OrderedDict(b=2, a=1))
    assert key(collections.OrderedDict(a=1, b=2)) == key(collections.OrderedDict(a=1, b=2))
    assert key(pair(1, 2)) == key((1, 2)) and typed(pair(1, 2)) != typed((1, 2))
    assert typed(np.float64(1.5)) != typed(1.5) and typed(frozenset({1})) != typed({1})
    masked = np.ma.array([1, 2], mask=[0, 1])
    assert key(masked) != key(np.ma.array([1, 2], mask=[1, 0]))


def test_zero_keys_by_sign_in_scalars_and_arrays_alike():
    key = hashmap()
    assert key(-0.0) != key(0.0) == key(0) and key(np.float64(-0.0)) == key(-0.0)
    assert key(np.array([-0.0])) != key(np.array([0.0]))
    rounded = hashmap(round=3)
    assert rounded(-0.0) == rounded(0.0) and rounded(np.array([-0.0])) == rounded(np.array([0.0]))


@pytest.mark.parametrize("dtype", ["M8[D]", "M8[ns]", "m8[s]", "m8[ms]"])
def test_datetime_arrays_key(dtype):
    a = np.array([1, 2], dtype=dtype)
    for km in (hashmap(), picklemap(), stringmap(), hashmap(typed=True)):
        assert km(a) == km(a.copy()) != km(a[::-1])
    assert hashmap()(a) != hashmap()(a.view("<i8")) and hashmap()(np.datetime64("NaT")) != hashmap()(None)
