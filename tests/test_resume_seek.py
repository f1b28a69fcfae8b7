"""A resumed leaf with transforms seeks its source: rows = items x batch size, the rows before never read."""

from __future__ import annotations

import json

import numpy as np
import pytest

import combinators as c
from combinators.execution.leaf import seeks


class ReadRows(c.plan.FromArrays):
    """from_arrays that records the ranges of rows read from its activations."""

    read: list[tuple[int, int]] = []

    def open(self):
        return _Recorded(super().open())


class _Recorded:
    def __init__(self, opened):
        self.opened = opened

    def __len__(self):
        return len(self.opened)

    def rows(self, start, stop):
        ReadRows.read.append((start, min(stop, len(self.opened))))
        return self.opened.rows(start, stop)

    def close(self):
        self.opened.close()


def _state_after(plan, k, seed=3):
    with c.iterate(plan, seed=seed) as run:
        first = [next(run) for _ in range(k)]
        return first, json.loads(json.dumps(run.state()))


def test_from_arrays_under_batch_resumes_at_its_row_without_reading_the_rows_before():
    plan = ReadRows(np.arange(100_000)) >> c.batch(1000)
    _, state = _state_after(plan, 99)
    ReadRows.read.clear()
    with c.iterate(plan, resume=state) as resumed:
        batch = next(resumed)
    assert batch.tolist() == list(range(99_000, 100_000))
    assert min(start for start, _ in ReadRows.read) == 99_000
    assert sum(stop - start for start, stop in ReadRows.read) == 1000


CALLS = []


def numbers(n, start):
    CALLS.append(start)
    yield from range(start, n)


def test_a_seeking_stream_under_map_take_and_batch_starts_at_the_row_the_counts_give():
    plan = c.stream(numbers, 1000) >> c.map(abs) >> c.take(700) >> c.batch(30, partial=True)
    expected = [b.tolist() for b in c.iterate(plan, seed=1)]
    CALLS.clear()
    first, state = _state_after(plan, 12, seed=1)
    rest = [b.tolist() for b in c.iterate(plan, resume=state)]
    assert [b.tolist() for b in first] + rest == expected
    assert CALLS == [0, 360]


def add_noise(row, rng):
    return (row, int(rng.integers(1000)))


def same(row):
    return row


_square = np.arange(60).reshape(20, 3)

SEEKING = {
    "batch-partial": c.from_arrays(np.arange(50)) >> c.batch(7, partial=True),
    "batch": c.from_arrays(np.arange(50)) >> c.batch(7),
    "take-batch": c.from_arrays(np.arange(50)) >> c.take(23) >> c.batch(4, partial=True),
    "batch-unbatch-take": c.from_arrays(np.arange(50)) >> c.batch(4) >> c.unbatch() >> c.take(30),
    "map-rng-batch": c.from_arrays(np.arange(50)) >> c.map(add_noise) >> c.batch(3),
    "rows-unbatch": c.from_arrays(_square) >> c.unbatch() >> c.batch(4, partial=True),
    "dict-rows-unbatch": c.from_arrays({"a": _square, "b": 2 * _square}) >> c.unbatch() >> c.map(same),
    "iterable": c.from_iterable(list(range(30))) >> c.map(abs) >> c.batch(5) >> c.unbatch() >> c.batch(2),
    "batch-axis": c.from_arrays(_square) >> c.batch(3, axis=0, partial=True) >> c.take(5),
    "keras": c.from_arrays({"a": np.arange(9), "b": np.arange(9)}) >> c.keras_tuples("a", "b") >> c.batch(2),
}


def _plain(item):
    if isinstance(item, dict):
        return {key: _plain(value) for key, value in item.items()}
    if isinstance(item, (tuple, list)):
        return [_plain(value) for value in item]
    return item.tolist() if isinstance(item, (np.ndarray, np.generic)) else item


@pytest.mark.parametrize("name", sorted(SEEKING))
def test_leaves_that_seek_resume_to_the_uninterrupted_items_at_every_cut(name):
    plan = SEEKING[name]
    assert seeks(plan)
    expected = [_plain(item) for item in c.iterate(plan, seed=3)]
    for k in range(len(expected) + 1):
        first, state = _state_after(plan, k)
        assert [_plain(item) for item in first] + [_plain(item) for item in c.iterate(plan, resume=state)] == expected


def test_leaves_with_a_filter_shuffle_or_cache_or_an_unbatch_of_unknown_lengths_do_not_seek():
    arrays = c.from_arrays(np.arange(10))
    assert not seeks(arrays >> c.filter(bool) >> c.batch(2))
    assert not seeks(arrays >> c.shuffle(3))
    assert not seeks(arrays >> c.cache(2))
    assert not seeks(arrays >> c.map(same) >> c.unbatch())  # a function may change the rows' lengths
    assert not seeks(c.stream(range, 10) >> c.batch(2))  # the source itself does not seek
