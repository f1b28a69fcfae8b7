"""Descriptions: construction runs nothing, values are frozen, equal, hashable, picklable,
their repr rebuilds them, and every bad argument is refused naming the value."""

from __future__ import annotations

import pickle

import cloudpickle

import attrs
import numpy as np
import pytest

import combinators as c
from combinators.errors import InvalidArgument, InvalidArgumentType


def letters(text):
    yield from text


def noisy(n, rng):
    yield from rng.integers(0, 1000, size=n).tolist()


A, B = c.from_iterable("abc"), c.from_iterable("xy")

EXAMPLES = [
    A,
    c.from_iterable([1, 2, 3]),
    c.from_iterable(range(4)),
    c.from_iterable(np.arange(3.0)),
    c.from_arrays(np.arange(6).reshape(3, 2)),
    c.from_arrays({"x": np.zeros((2, 2), np.float32), "y": np.array([0, 1])}),
    c.stream(letters, "hello"),
    c.stream(noisy, 3),
    A | B,
    c.chain(A, B, cycle=True),
    A.cycle(),
    A.take(2),
    c.mix(A, B),
    c.mix(A, B, (1, 3)),
    c.mix(A, B, weights=[2, 1], n_active=1, rate=4, mode="single_active", dist="poisson", prune_empty=False),
    c.round_robin(A, B, mode="permuted_cycle"),
    A >> c.batch(2, partial=True, axis=0) >> c.unbatch(),
    A >> c.map(str.upper) >> c.filter(str.isalpha) >> c.shuffle(3) >> c.cache(2, prob=0.25),
    c.from_iterable([{"x": 1, "y": 2}]) >> c.tuples("x", "y") >> c.take(1),
    c.from_iterable([{"x": 1, "y": 2}]) >> c.keras_tuples("x", ["y"]) >> c.progress(total=1, desc="d"),
]

NAMESPACE = {
    **{name: getattr(c, name) for name in c.__all__},
    "letters": letters, "noisy": noisy, "str": str, "range": range,
    "array": np.array, "float32": np.float32, "int64": np.int64,
}


@pytest.mark.parametrize("description", EXAMPLES, ids=repr)
def test_value_semantics(description):
    assert attrs.has(type(description))
    rebuilt = eval(repr(description), NAMESPACE)  # noqa: S307 - the repr is the expression
    assert rebuilt == description and hash(rebuilt) == hash(description)
    assert pickle.loads(pickle.dumps(description)) == description
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(description, attrs.fields(type(description))[0].name, None)


def test_building_runs_nothing():
    calls = []

    def source():
        calls.append("ran")
        yield 1

    plan = c.mix(c.stream(source), c.stream(source) >> c.map(calls.append), n_active=1, rate=2) >> c.batch(2)
    c.explain(plan), repr(plan), hash(plan), cloudpickle.dumps(plan)
    assert calls == []


def test_equality_is_by_fields():
    assert c.mix(A, B, (1, 3)) == c.mix(A, B, (1.0, 3.0)) == c.mix(A, B, np.array([1, 3]))
    assert c.mix(A, B, (1, 3)) != c.mix(A, B, (3, 1))
    assert c.from_iterable(np.arange(3)) != c.from_iterable(np.arange(3.0))  # dtype matters
    assert c.batch(2) == c.batch(2) and c.batch(2) != c.batch(3)


def test_operators_flatten():
    C = c.from_iterable("z")
    assert (A | B) | C == A | (B | C) == c.chain(A, B, C)
    assert (A >> c.take(2)) >> c.batch(1) == A >> (c.take(2) >> c.batch(1))
    assert c.chain(A.cycle(), B) != c.chain(A, B)  # a cycling chain is not flattened
    assert A.__or__(3) is NotImplemented and A.__rshift__(3) is NotImplemented
    assert c.take(1).__rshift__(A) is NotImplemented


def test_mix_of_one_stream():
    assert c.mix(A, mode="exhaustive") == A
    assert c.mix(A) == A.cycle()
    assert isinstance(c.mix(A, n_active=1, rate=2), c.plan.Mix)


def test_user_weights_are_never_mutated():
    weights = np.array([1, 3])
    listed = [1, 3]
    c.mix(A, B, weights), c.mix(A, B, listed)
    list(c.iterate(c.mix(A, B, weights, n_active=1, rate=2), seed=0, max_iter=20))
    assert weights.tolist() == [1, 3] and weights.dtype.kind == "i" and listed == [1, 3]


def test_from_iterable_copies_lists():
    items = [1, 2]
    s = c.from_iterable(items)
    items.append(3)
    assert list(s) == [1, 2]


@pytest.mark.parametrize(
    ("build", "error", "fragment"),
    [
        (lambda: c.mix(A, B, (1,)), InvalidArgument, "2 streams, 1 weights"),
        (lambda: c.mix(A, B, (1, -1)), InvalidArgument, "-1"),
        (lambda: c.mix(A, B, (np.nan, 1)), InvalidArgument, "nan"),
        (lambda: c.mix(A, B, (np.inf, 1)), InvalidArgument, "inf"),
        (lambda: c.mix(A, B, (0, 0.0)), InvalidArgument, "all be zero"),
        (lambda: c.mix(A, B, ("x", 1)), InvalidArgumentType, "'x'"),
        (lambda: c.mix(A, B, weights="ab"), InvalidArgumentType, "'ab'"),
        (lambda: c.mix(A, B, (1, 2), weights=(1, 2)), InvalidArgument, "twice"),
        (lambda: c.mix(A, B, n_active=0), InvalidArgument, "got 0"),
        (lambda: c.mix(A, B, n_active=1.5), InvalidArgumentType, "1.5"),
        (lambda: c.mix(A, B, rate=0), InvalidArgument, "got 0"),
        (lambda: c.mix(A, B, rate=-2), InvalidArgument, "-2"),
        (lambda: c.mix(A, B, rate=0.5, dist="poisson"), InvalidArgument, "rate=0.5"),
        (lambda: c.mix(A, B, rate=0.5, dist="binomial"), InvalidArgument, "rate=0.5"),
        (lambda: c.mix(A, B, mode="round"), InvalidArgument, "'round'"),
        (lambda: c.mix(A, B, dist="gauss"), InvalidArgument, "'gauss'"),
        (lambda: c.mix(A, 3), InvalidArgumentType, "3"),
        (lambda: c.mix(A, "b", B), InvalidArgumentType, "'b'"),
        (lambda: c.mix(), InvalidArgument, "at least one"),
        (lambda: c.round_robin(A, mode="random"), InvalidArgument, "'random'"),
        (lambda: c.chain(A, [1]), InvalidArgumentType, "[1]"),
        (lambda: c.batch(0), InvalidArgument, "got 0"),
        (lambda: c.batch(2.0), InvalidArgumentType, "2.0"),
        (lambda: c.take(-1), InvalidArgument, "-1"),
        (lambda: c.shuffle(0), InvalidArgument, "got 0"),
        (lambda: c.cache(0), InvalidArgument, "got 0"),
        (lambda: c.cache(2, prob=1.5), InvalidArgument, "1.5"),
        (lambda: c.tuples(), InvalidArgument, "at least one key"),
        (lambda: c.keras_tuples(), InvalidArgument, "inputs=None"),
        (lambda: c.map(3), InvalidArgumentType, "3"),
        (lambda: c.filter("x"), InvalidArgumentType, "'x'"),
        (lambda: c.from_iterable(iter([1, 2])), InvalidArgumentType, "one-shot list_iterator"),
        (lambda: c.from_iterable(x for x in "ab"), InvalidArgumentType, "one-shot generator"),
        (lambda: c.from_iterable({"b", "a"}), InvalidArgumentType, "set"),
        (lambda: c.from_iterable(A), InvalidArgumentType, "not a stream"),
        (lambda: c.from_iterable(3), InvalidArgumentType, "3"),
        (lambda: c.from_arrays([1, 2]), InvalidArgumentType, "list"),
        (lambda: c.from_arrays(np.float32(1)), InvalidArgumentType, "float32"),
        (lambda: c.from_arrays({"x": np.zeros(2), "y": np.zeros(3)}), InvalidArgument, "'y': 3"),
        (lambda: c.stream(3), InvalidArgumentType, "3"),
        (lambda: c.stream(letters), InvalidArgumentType, "letters"),
        (lambda: c.stream(letters, "a", "b"), InvalidArgumentType, "('a', 'b')"),
        (lambda: c.iterate([1, 2]), InvalidArgumentType, "[1, 2]"),
        (lambda: c.iterate(A, seed=-1), InvalidArgument, "-1"),
        (lambda: c.iterate(A, seed="x"), InvalidArgumentType, "'x'"),
        (lambda: c.iterate(A, executor="gpu"), InvalidArgument, "'gpu'"),
        (lambda: c.iterate(A, max_iter=-1), InvalidArgument, "-1"),
    ],
)
def test_bad_arguments_are_refused_naming_the_value(build, error, fragment):
    with pytest.raises(error, match=None) as info:
        build()
    assert isinstance(info.value, c.CombinatorsError)
    assert fragment in str(info.value)


def test_explain_shows_normalized_weights():
    text = c.explain(c.mix(A, B | A, (1, 3), n_active=1, rate=4) >> c.batch(2))
    assert "[0.250] from_iterable('abc')" in text and "[0.750] chain" in text
    assert text.splitlines()[0] == "apply: batch(2)"


def test_from_arrays_random_access():
    s = c.from_arrays({"x": np.arange(6).reshape(3, 2), "y": np.array([5, 6, 7])})
    assert len(s) == 3 and int(s[2]["y"]) == 7 and s[1]["x"].tolist() == [2, 3]
    assert [int(row["y"]) for row in s] == [5, 6, 7]
    with pytest.raises(ValueError):
        s.data["x"][0, 0] = 9  # the stored arrays are read-only views


def test_public_names_match_all():
    public = {name for name in vars(c) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(c, name)).__name__ == "module"}
    assert set(c.__all__) == public - modules - {"annotations"}
    for name in c.__all__:
        assert getattr(c, name).__doc__, name
