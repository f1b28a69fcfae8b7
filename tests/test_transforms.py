"""Transforms on real numpy items: batch shapes and errors, tuples, keras tuples, cache, shuffle."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import combinators as c
from combinators.errors import DataError


def rows(n, width=3, label=0):
    for i in range(n):
        yield {"X": np.full(width, i, dtype=np.float32), "y": label, "w": np.float64(i)}


def test_batch_of_dicts_stacks_each_key():
    batches = list(c.stream(rows, 10) >> c.batch(4))
    assert len(batches) == 2  # the short tail is dropped without partial
    first = batches[0]
    assert first["X"].shape == (4, 3) and first["X"].dtype == np.float32
    assert first["y"].shape == (4,) and first["y"].dtype.kind == "i"
    assert first["w"].dtype == np.float64 and first["w"].tolist() == [0, 1, 2, 3]
    tail = list(c.stream(rows, 10) >> c.batch(4, partial=True))[-1]
    assert tail["X"].shape == (2, 3)


def test_batch_keeps_big_ints_exact():
    big = [2**63 + 1, -1]
    (batched,) = list(c.from_iterable(big) >> c.batch(2))
    assert batched.tolist() == big  # not rounded through float64
    assert [int(x) for x in c.from_iterable(big) >> c.batch(2) >> c.unbatch()] == big


def test_batch_of_arrays_tuples_and_scalars():
    arrays = list(c.from_iterable([np.ones((2, 5))] * 6) >> c.batch(3))
    assert [a.shape for a in arrays] == [(3, 2, 5), (3, 2, 5)]
    concatenated = list(c.from_iterable([np.ones((2, 5))] * 6) >> c.batch(3, axis=0))
    assert [a.shape for a in concatenated] == [(6, 5), (6, 5)]
    pairs = list(c.from_iterable([(np.zeros(2), 1)] * 4) >> c.batch(2))
    assert isinstance(pairs[0], tuple) and pairs[0][0].shape == (2, 2) and pairs[0][1].tolist() == [1, 1]
    scalars = list(c.from_iterable(range(6)) >> c.batch(3))
    assert [s.tolist() for s in scalars] == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize(
    ("items", "fragment"),
    [
        ([{"x": 1}, {"y": 1}], "keys ['x'] and ['y'] differ"),
        ([{"x": np.zeros(2)}, {"x": np.zeros(3)}], "key 'x': shapes [(2,), (3,)]"),
        ([(1, 2), (1,)], "tuple of length 2"),
        ([np.zeros((2, 2)), np.zeros((3, 3))], "shapes [(2, 2), (3, 3)]"),
        ([{"x": 1}, 5], "keys ['x'] and int differ"),
    ],
)
def test_batch_mismatch_raises_data_error(items, fragment):
    with pytest.raises(DataError) as info:
        list(c.from_iterable(items) >> c.batch(2))
    assert fragment in str(info.value)


def test_unbatch_inverts_batch():
    items = list(c.stream(rows, 8))
    back = list(c.stream(rows, 8) >> c.batch(4) >> c.unbatch())
    assert len(back) == 8
    for a, b in zip(items, back):
        assert a.keys() == b.keys() and np.array_equal(a["X"], b["X"]) and a["y"] == b["y"]
    with pytest.raises(DataError, match="lengths differ"):
        list(c.from_iterable([{"x": np.zeros(2), "y": np.zeros(3)}]) >> c.unbatch())
    with pytest.raises(DataError, match="no leading axis"):
        list(c.from_iterable([3]) >> c.unbatch())


def test_map_filter_take():
    assert list(c.from_iterable(range(10)) >> c.map(lambda x: x * x) >> c.filter(lambda x: x % 2) >> c.take(3)) == [1, 9, 25]


def test_map_with_rng_is_seeded_by_position():
    def jitter(x, rng):
        return x + float(rng.random())

    plan = c.from_iterable([0, 0, 0]).cycle().take(6) >> c.map(jitter)
    first = list(c.iterate(plan, seed=1))
    assert first == list(c.iterate(plan, seed=1)) and first != list(c.iterate(plan, seed=2))
    assert len(set(first)) == 6  # every position draws afresh


def test_tuples_and_keras_tuples():
    items = [{"x": np.arange(2), "y": 1, "z": "s"}]
    assert list(c.from_iterable(items) >> c.tuples("y", "z")) == [(1, "s")]
    (x, y), = list(c.from_iterable(items) >> c.keras_tuples("x", "y"))
    assert x.tolist() == [0, 1] and y == 1
    assert list(c.from_iterable(items) >> c.keras_tuples(["y", "z"])) == [([1, "s"], None)]
    assert list(c.from_iterable(items) >> c.keras_tuples(outputs="y")) == [(None, 1)]
    with pytest.raises(KeyError):
        list(c.from_iterable(items) >> c.tuples("missing"))
    with pytest.raises(DataError, match="cannot take key 'x' from item 3"):
        list(c.from_iterable([3]) >> c.keras_tuples("x"))


def test_keras_tuples_batches_feed_fit_shapes():
    plan = c.stream(rows, 64) >> c.batch(16) >> c.keras_tuples("X", "y")
    for x, y in plan:
        assert x.shape == (16, 3) and y.shape == (16,)


def test_stochastic_cache():
    plan = c.from_iterable(range(1000)) >> c.cache(10, prob=0.25)
    out = list(c.iterate(plan, seed=0))
    assert out[:10] == list(range(10))  # the cache fills first
    first_seen = list(dict.fromkeys(out))
    assert first_seen == list(range(1000))  # every input item passes, in order
    assert abs(990 / (len(out) - 10) - 0.25) < 0.05  # about prob of the later steps are fresh
    assert all(out.count(x) >= 1 for x in range(1000)) and len(out) > 3000
    assert out == list(c.iterate(plan, seed=0))
    assert list(c.from_iterable([]) >> c.cache(3)) == []


def test_shuffle_is_a_seeded_permutation():
    plan = c.from_iterable(range(100)) >> c.shuffle(10)
    out = list(c.iterate(plan, seed=3))
    assert sorted(out) == list(range(100)) and out != list(range(100))
    assert out == list(c.iterate(plan, seed=3)) and out != list(c.iterate(plan, seed=4))
    # a buffer of b lets an item move at most b - 1 places earlier
    assert all(out.index(i) >= i - 9 for i in range(100))


def test_progress_passes_items_through(capsys):
    assert list(c.from_iterable(range(5)) >> c.progress(total=5, desc="t")) == list(range(5))


def test_transforms_over_a_mix_run_in_the_consumer():
    plan = c.mix(c.stream(rows, 50, label=0), c.stream(rows, 50, label=1), mode="exhaustive") >> c.batch(10)
    labels = collections.Counter()
    for b in c.iterate(plan, seed=0):
        labels.update(b["y"].tolist())
    assert labels == {0: 50, 1: 50}
