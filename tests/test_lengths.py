"""len(s) and combinators.length(s): known without running, or TypeError / None."""

from __future__ import annotations

import numpy as np
import pytest

import combinators as c

A, B = c.from_iterable(range(5)), c.from_arrays({"x": np.zeros((3, 2))})


def gen(n):
    yield from range(n)


@pytest.mark.parametrize(("plan", "expected"), [
    (A, 5),
    (B, 3),
    (c.from_iterable(np.zeros((7, 2))), 7),
    (A | B | A, 13),
    (c.mix(A, B, mode="exhaustive"), 8),
    (c.mix(A, B, (1, 2), n_active=1, mode="exhaustive"), 8),
    (c.mix(A, B, n_active=1, rate=2, mode="exhaustive"), 8),
    (c.mix(A, B, c.stream(gen, 3), weights=(1, 0, 0), mode="exhaustive"), 5),  # weight 0: never drawn  # a budget suspends an activation, drops nothing
    (c.round_robin(A, B), 8),
    (A >> c.take(3), 3),
    (A >> c.take(30), 5),
    (A >> c.batch(2), 2),
    (A >> c.batch(2, partial=True), 3),
    (A >> c.map(str) >> c.shuffle(2) >> c.tuples(0), 5),
    (c.mix(A, B).take(100), 100),  # an infinite mix of non-empty streams
    (A.cycle() >> c.batch(4) >> c.take(9), 9),
    (c.from_iterable([]).cycle(), 0),
])
def test_known_lengths(plan, expected):
    assert len(plan) == c.length(plan) == expected
    assert len(list(c.iterate(plan, seed=0))) == expected


@pytest.mark.parametrize("plan", [
    c.stream(gen, 3),
    A >> c.filter(bool),
    A >> c.batch(2) >> c.unbatch(),
    c.mix(A, B, n_active=1, rate=2, mode="first_exhausted"),  # ends when any stream runs dry
    c.mix(A, B, mode="first_exhausted"),
    c.mix(A, c.stream(gen, 3)),  # infinite unless the generator is empty: unknown
    A.cycle(),  # infinite
    c.mix(A, B),
    c.round_robin(A, B, mode="cycle"),
])
def test_unknown_lengths_raise_type_error(plan):
    assert c.length(plan) is None
    with pytest.raises(TypeError, match="not known without running"):
        len(plan)
    assert bool(plan) is True  # a description is never falsy, sized or not


def test_progress_takes_its_total_and_description_from_the_stream():
    plan = A.named("numbers") >> c.map(str) >> c.progress()
    assert plan.transforms[-1] == c.progress(total=5, desc="numbers")
    assert (c.stream(gen, 3) >> c.progress()).transforms[-1] == c.progress()  # unknown: no total
    assert (A >> c.progress(total=2, desc="mine")).transforms[-1] == c.progress(total=2, desc="mine")
    composed = c.take(2) >> c.progress()
    assert (A >> composed).transforms[-1].total == 2
