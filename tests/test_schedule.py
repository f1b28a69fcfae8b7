"""Mixture weights on a schedule: description, both paths, resume across a boundary, stats, proportions."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import combinators as c
from combinators.errors import InvalidArgument, InvalidArgumentType, ResumeError
from combinators.execution.runstate import plan_fingerprint
from combinators.plan.block_path import block_schema
from combinators.plan.schedule import Schedule, schedule
from combinators.testing import assert_proportions

SIZES = (40, 70, 25)


def arrays():
    return [np.arange(1000 * i, 1000 * i + n, dtype=np.int64) for i, n in enumerate(SIZES)]


def rows(array):
    yield from array


def sources(block: bool):
    """Row sources (the block path) or generator sources of the same rows (the per-item path)."""
    if block:
        return [c.from_arrays(a) for a in arrays()]
    return [c.stream(rows, a) for a in arrays()]


SETTINGS = [
    {},
    {"mode": "exhaustive"},
    {"n_active": 2, "rate": 3},
    {"n_active": 2, "rate": 4, "mode": "exhaustive"},
    {"n_active": 1, "rate": 5, "dist": "constant", "mode": "first_exhausted"},
    {"n_active": 2, "mode": "single_active"},
]
SCHEDULES = [
    schedule({0: (1, 1, 1), 17: (1, 5, 0.5), 50: (4, 1, 1)}),
    schedule({0: (1, 2, 3), 60: (3, 2, 1)}, interpolate="linear", step=7),
]


def plan(block: bool, weights, settings) -> c.Stream:
    node = c.mix(*sources(block), weights=weights, **settings)
    assert (block_schema(node) is not None) == block, "the test must exercise the path it names"
    return node


def ints(run_or_items) -> list[int]:
    return [int(x) for x in run_or_items]


def test_repr_reads_back_and_fingerprint_sees_the_schedule():
    s = schedule({0: (1, 1), 10_000: (1, 3)})
    assert repr(s) == "schedule({0: (1.0, 1.0), 10000: (1.0, 3.0)})"
    lin = schedule({0: (1, 1), 10: (1, 3)}, interpolate="linear", step=5)
    assert eval(repr(lin), {"schedule": schedule}) == lin
    a, b = c.from_iterable("a"), c.from_iterable("b")
    m = c.mix(a, b, weights=s)
    assert repr(m) == "mix(from_iterable('a'), from_iterable('b'), weights=schedule({0: (1.0, 1.0), 10000: (1.0, 3.0)}))"
    assert eval(repr(m), {"mix": c.mix, "from_iterable": c.from_iterable, "schedule": schedule}) == m
    assert pickle.loads(pickle.dumps(m)) == m
    other = c.mix(a, b, weights=schedule({0: (1, 1), 10_001: (1, 3)}))
    constant = c.mix(a, b, weights=(1, 1))
    assert len({plan_fingerprint(m), plan_fingerprint(other), plan_fingerprint(constant)}) == 3
    assert m != other and hash(m) == hash(c.mix(a, b, weights=schedule({0: [1, 1], 10_000: [1, 3]})))


@pytest.mark.parametrize("points, error", [
    ({5: (1, 1)}, InvalidArgument),  # no point at 0
    ({0: (1, 1), 5: (1, 1, 1)}, InvalidArgument),  # lengths differ
    ({0: (1, 0), 5: (1, 1)}, InvalidArgument),  # a stream leaves 0
    ({0: (1, 1), 5: (0, 0)}, InvalidArgument),  # all zero
    ({0: (1, -1)}, InvalidArgument),
    ({0: (1, float("nan"))}, InvalidArgument),
    ({-1: (1, 1), 0: (1, 1)}, InvalidArgument),
    ([(0, (1, 1))], InvalidArgumentType),
    ({0: "ab"}, InvalidArgumentType),
])
def test_bad_schedules_are_refused_naming_the_value(points, error):
    with pytest.raises(error, match="schedule"):
        schedule(points)


def test_bad_options_and_lengths_are_refused():
    with pytest.raises(InvalidArgument, match="'cubic'"):
        schedule({0: (1, 1)}, interpolate="cubic")
    with pytest.raises(InvalidArgument, match="step"):
        schedule({0: (1, 1)}, interpolate="linear", step=0)
    with pytest.raises(InvalidArgument, match="3 streams, a schedule of 2"):
        c.mix(*sources(True), weights=schedule({0: (1, 1)}))


def test_linear_interpolation_steps_every_step_items():
    s = schedule({0: (1, 2), 10: (3, 2)}, interpolate="linear", step=5)
    assert s.segments() == ((0, (1.0, 2.0)), (5, (2.0, 2.0)), (10, (3.0, 2.0)))
    assert s.at(4) == (1.0, 2.0) and s.at(5) == (2.0, 2.0) and s.at(99) == (3.0, 2.0)


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("weights", SCHEDULES)
def test_block_path_and_per_item_path_give_the_same_items(weights, settings):
    for seed in range(3):
        block = ints(c.iterate(plan(True, weights, settings), seed=seed, max_iter=400))
        items = ints(c.iterate(plan(False, weights, settings), seed=seed, max_iter=400))
        assert block == items


def test_the_weights_change_at_the_boundary():
    """A weight far below the others is (almost) never drawn: the boundary shows in the items."""
    a, b = c.from_iterable("a").cycle(), c.from_iterable("b").cycle()
    items = "".join(c.iterate(c.mix(a, b, weights=schedule({0: (1, 1e-9), 300: (1e-9, 1)})), seed=0, max_iter=600))
    assert items == "a" * 300 + "b" * 300
    # the constant weights of the first segment give another sequence: the schedule is used
    first = "".join(c.iterate(c.mix(a, b, weights=(1, 1e-9)), seed=0, max_iter=600))
    assert first == "a" * 600


@pytest.mark.parametrize("block", [True, False])
@pytest.mark.parametrize("settings", SETTINGS)
def test_resume_across_a_boundary_is_exact(block, settings):
    weights = SCHEDULES[0]
    whole = ints(c.iterate(plan(block, weights, settings), seed=5, max_iter=300))
    for cut in (16, 17, 18, 49, 50, 51, 130):
        if cut >= len(whole):
            continue
        run = c.iterate(plan(block, weights, settings), seed=5)
        head = ints(next(run) for _ in range(cut))
        state = json.loads(json.dumps(run.state()))
        run.close()
        rest = ints(c.iterate(plan(block, weights, settings), resume=state, max_iter=len(whole) - cut))
        assert head + rest == whole, (cut, settings)


def test_resume_under_a_batch_across_a_boundary_is_exact():
    weights = SCHEDULES[1]
    p = plan(True, weights, {"n_active": 2, "rate": 4}) >> c.batch(8)
    whole = [b.tolist() for b in c.iterate(p, seed=2, max_iter=40)]
    run = c.iterate(p, seed=2)
    head = [next(run).tolist() for _ in range(9)]  # 72 items: across the boundaries at 63 and 70
    rest = [b.tolist() for b in c.iterate(p, resume=run.state(), max_iter=31)]
    assert head + rest == whole


def test_a_state_of_another_schedule_is_refused():
    run = c.iterate(plan(True, SCHEDULES[0], {}), seed=1)
    next(run)
    other = plan(True, schedule({0: (1, 1, 1), 18: (1, 5, 0.5), 50: (4, 1, 1)}), {})
    with pytest.raises(ResumeError, match="another plan"):
        c.iterate(other, resume=run.state())


@pytest.mark.parametrize("block", [True, False])
def test_stats_give_each_segment_its_target_and_counts(block):
    p = plan(block, schedule({0: (1, 1, 1), 30: (1, 2, 1)}), {})
    with c.iterate(p, seed=0, max_iter=50) as run:
        list(run)
        (stats,) = run.stats()
    (s0, t0, n0), (s1, t1, n1) = stats.segments
    assert (s0, s1) == (0, 30) and int(n0.sum()) == 30 and int(n1.sum()) == 20
    assert np.allclose(t0, 1 / 3) and np.allclose(t1, [0.25, 0.5, 0.25])
    assert (n0 + n1).tolist() == stats.counts.tolist()
    assert "segment from item 30: 20 items" in str(stats)


@pytest.mark.parametrize("block", [True, False])
@pytest.mark.parametrize("settings", SETTINGS[:4])
def test_segment_stats_count_the_items_handed_out_at_every_cut(block, settings):
    """Mid-run, each segment's counts are those of the items received so far: the block path decides
    rows ahead of the consumer, past the next boundary, and a segment shows only once its first item
    is handed out."""
    starts = (0, 17, 50)
    with c.iterate(plan(block, SCHEDULES[0], settings), seed=3) as run:
        items = []
        for cut in (5, 16, 17, 18, 40, 49, 50, 51, 90):
            while len(items) < cut:
                items.append(int(next(run)))
            (stats,) = run.stats()
            children = np.array(items) // 1000
            reached = [s for s in starts if s < cut]
            assert [s for s, _, _ in stats.segments] == reached, (cut, settings)
            for (start, _, counts), stop in zip(stats.segments, [*reached[1:], cut]):
                assert counts.tolist() == np.bincount(children[start:stop], minlength=3).tolist(), (cut, start)


def test_assert_proportions_checks_each_segment():
    a, b = c.from_iterable("a").cycle(), c.from_iterable("b").cycle()
    good = c.mix(a, b, weights=schedule({0: (1, 1), 2000: (1, 4)}))
    assert_proportions(good, n=4000)
    # the same run checked against the first segment's weights throughout fails
    with pytest.raises(AssertionError, match="p-value"):
        assert_proportions(good, (1, 1), n=4000)
    with pytest.raises(AssertionError, match="in the segment of the schedule from item 0"):
        assert_proportions(c.mix(a, b, weights=schedule({0: (1, 1), 2000: (1, 1.0001)})), n=4000, alpha=1.0)


def test_a_schedule_is_a_description():
    s = schedule({0: (1, 2)})
    assert isinstance(s, Schedule) and len(s) == 2 and s == schedule({0: (1.0, 2.0)})
