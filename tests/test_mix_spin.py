"""A mix that draws streams again ends when only streams its picks practically never reach are left.

Regression (issue 21's hang): with ``prune_empty=False``, a with-replacement or single-active mix whose
heavy streams are empty and whose other streams have a share below the picks' resolution (weights such as
``(1.7976931348623157e308, 1)``) kept replacing empty activations forever: the light streams were never
drawn, so never found empty, so the mix never saw that it spins. The per-item path spun in `mix_items`,
the block path in `mix_decisions`. The guard here is a count, not a clock: the empty source refuses to be
activated more than `GUARD` times, so the old code fails instead of hanging.
"""

from __future__ import annotations

import numpy as np
import pytest

import combinators as c
from combinators.sampling.working_set import UNDRAWN_SHARE
from combinators.strategies import counting, labelled, labelled_random

HUGE = 1.7976931348623157e308
#: activations of the empty source past which a run counts as spinning (the fixed code makes a handful)
GUARD = 10_000
ACTIVATIONS = [0]


class Spun(AssertionError):
    pass


def guarded_empty():
    """An empty generator source that counts its activations and refuses the `GUARD`-th."""
    ACTIVATIONS[0] += 1
    if ACTIVATIONS[0] > GUARD:
        raise Spun(f"the mix activated an empty stream {GUARD} times without an item: it spins")
    yield from ()


@pytest.fixture(autouse=True)
def _reset():
    ACTIVATIONS[0] = 0


MODES = [("with_replacement", None), ("with_replacement", 1), ("with_replacement", 2), ("single_active", 1),
         ("single_active", 2)]


@pytest.mark.parametrize(("mode", "n_active"), MODES)
@pytest.mark.parametrize("light_first", [False, True])  # first, the light stream is reached only by a uniform of 0
def test_a_mix_whose_drawn_streams_are_empty_ends_on_the_item_path(mode, n_active, light_first):
    empty, light = c.stream(guarded_empty), c.stream(labelled, "light", 3)
    streams, weights = ((light, empty), (1, HUGE)) if light_first else ((empty, light), (HUGE, 1))
    plan = c.mix(*streams, weights=weights, n_active=n_active, mode=mode, prune_empty=False)
    assert list(c.iterate(plan.take(5), seed=0)) == []
    assert 1 <= ACTIVATIONS[0] <= 20, ACTIVATIONS  # the first few, then it ends


@pytest.mark.parametrize(("mode", "n_active"), MODES)
def test_a_mix_whose_drawn_streams_are_empty_ends_on_the_block_path(mode, n_active):
    plan = c.mix(c.from_arrays(np.arange(0)), c.from_arrays(np.arange(100, 103)), weights=(HUGE, 1),
                 n_active=n_active, mode=mode, prune_empty=False).take(5)
    assert "[block path]" in c.explain(plan).splitlines()[1]
    assert list(c.iterate(plan, seed=0)) == []


def test_the_mix_of_mixes_the_resume_property_drew_ends():
    # the shape the property drew: every child empty, the light one never drawn, so never found empty
    inner = c.mix(c.stream(guarded_empty), c.stream(counting, "s1"), weights=(2.0, 0.0), prune_empty=False)
    plan = c.mix(inner, c.stream(labelled_random, "s2", 0), weights=(HUGE, 4.6), n_active=2, dist="poisson",
                 prune_empty=False) >> c.take(21)
    for seed in range(5):
        assert list(c.iterate(plan, seed=seed)) == []


def test_a_light_stream_still_gives_its_items_where_the_mix_reaches_it():
    light = c.from_iterable(list(labelled("light", 3)))
    empty = c.from_iterable([])
    # exhaustive: the empty heavy stream leaves the pool, the light one is drawn next
    exhaustive = c.mix(empty, light, weights=(HUGE, 1), n_active=1, mode="exhaustive", prune_empty=False)
    assert list(c.iterate(exhaustive, seed=0)) == list(labelled("light", 3))
    # pruned: the empty heavy stream is dropped, the light one fills the slots
    pruned = c.mix(empty, light, weights=(HUGE, 1)).take(4)
    assert [item[0] for item in c.iterate(pruned, seed=0)] == ["light"] * 4
    # a light stream that is empty does not stop a heavy one that gives items
    heavy = c.stream(counting, "heavy")
    assert len(list(c.iterate(c.mix(heavy, empty, weights=(HUGE, 1), prune_empty=False).take(7), seed=0))) == 7


def test_a_light_stream_above_the_resolution_is_still_waited_for():
    # a share of 1/64 keeps the mix drawing the empty heavy stream until the light one comes
    light, empty = c.stream(labelled, "light", 2), c.stream(guarded_empty)
    plan = c.mix(empty, light, weights=(63, 1), prune_empty=False).take(4)
    assert [item[0] for item in c.iterate(plan, seed=0)] == ["light"] * 4
    assert 1 / 64 > UNDRAWN_SHARE
