"""Transforms over an Apply (``Apply(Apply(source, t1), t2)``, built by hand: ``>>`` flattens): a state taken
mid-run validates and resumes with the same items, on the block path and item by item, in process and in workers.

The inner Apply is a leaf: over a row source it runs on blocks in process (`block_leaf`) and in a worker under
`Processes`; over a generator, item by item wherever it runs. The outer Apply runs its transforms in the
consumer, over the items it took from that leaf, which its state must count.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import combinators as c
from combinators.execution.statecheck import validate
from combinators.plan.block_path import block_leaf
from combinators.plan.stream import Apply
from combinators.plan.sources import is_leaf

ROWS = c.from_arrays(np.arange(40, dtype=np.int64))
MORE = c.from_arrays(np.arange(100, 130, dtype=np.int64))


def counted(n, start=0):
    yield from range(start, n)


def made(n):
    yield from range(n)


PLANS = {
    "rows-map|batch": Apply(Apply(ROWS, (c.map(np.negative),)), (c.batch(2),)),
    "rows-take|map-batch": Apply(Apply(ROWS, (c.take(30),)), (c.map(np.negative), c.batch(3))),
    "rows-batch|unbatch-take": Apply(Apply(ROWS, (c.batch(4),)), (c.unbatch(), c.take(25))),
    "rows-shuffle|batch": Apply(Apply(ROWS, (c.shuffle(8),)), (c.batch(3),)),
    "rows-take|shuffle|batch": Apply(Apply(Apply(ROWS, (c.take(33),)), (c.shuffle(5),)), (c.batch(2),)),
    "generator-map|shuffle": Apply(Apply(c.stream(made, 30), (c.map(np.negative),)), (c.shuffle(4),)),
    "seeking-map|batch": Apply(Apply(c.stream(counted, 30), (c.map(np.negative),)), (c.batch(2),)),
    "mix": c.mix(Apply(Apply(ROWS, (c.map(np.negative),)), (c.batch(2),)),
                 Apply(Apply(MORE, (c.take(20),)), (c.batch(2),)),
                 Apply(Apply(c.stream(made, 25), (c.take(21),)), (c.batch(3),)), n_active=2, rate=3) >> c.take(60),
}
EXECUTORS = {"inprocess": "inprocess", "processes": c.Processes(workers=1)}


def _same(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and np.array_equal(a, b), (a, b)


def test_a_leaf_has_a_block_state_exactly_where_block_leaf_runs_it_on_blocks_in_process():
    # the schema asks `block_leaf(leaf, True)`, as the interpreter does: a leaf over rows may hold the state of
    # its transforms on blocks; a generator leaf, or one an Apply wraps, only its items received
    rows = ROWS >> c.map(np.negative)
    with c.iterate(rows, seed=4) as run:
        [next(run) for _ in range(3)]
        state = run.state()
    assert "apply" in state["root"] and block_leaf(rows, True)
    validate(state, rows)
    for other in (c.stream(made, 40) >> c.map(np.negative), c.from_iterable(range(40)) >> c.map(np.negative)):
        assert is_leaf(other) and not block_leaf(other, True)
        with pytest.raises(c.ResumeError, match=r"\$\.root"):
            validate(state, other)


@pytest.mark.parametrize("taken", EXECUTORS)
@pytest.mark.parametrize("name", PLANS)
def test_a_state_of_nested_applies_validates_and_resumes_bit_identically(name, taken):
    plan = PLANS[name]
    expected = list(c.iterate(plan, seed=4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", c.IdleExecutorWarning)  # a plan all on blocks runs nothing in workers
        for cut in (1, len(expected) // 2):
            with c.iterate(plan, seed=4, executor=EXECUTORS[taken]) as run:
                _same([next(run) for _ in range(cut)], expected[:cut])
                state = run.state()
            validate(state, plan)
            for resumed in EXECUTORS.values():
                with c.iterate(plan, seed=4, executor=resumed, resume=state) as run:
                    _same(list(run), expected[cut:])
