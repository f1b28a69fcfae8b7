"""Credit never deadlocks: whatever the items' structure, the windows and when an activation moves to the consumer.

A worker stops sending when what it has in flight fills its credit window (items or
bytes); the consumer must count in flight exactly as the worker does, or it waits for
credit it never returns (a hang), and an activation moving to the consumer waits until
its worker has spent its credit. A hang fails the example after `TIMEOUT` seconds.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import combinators as c
from combinators.execution.remote.processes import Processes
from combinators.execution.remote.session import RemoteSession

TIMEOUT = 20


def shaped(kind, n, size):
    """Items of one structure: plain numbers, rows of a small array beside plain fields, dicts, bytes (rows
    travel column-wise, in row groups, whose size a worker once only estimated)."""
    for i in range(n):
        if kind == "int":
            yield i
        elif kind == "row":
            yield (np.zeros(size, np.uint8), 0, 0.5, i)
        elif kind == "wide":  # many small plain fields beside an array
            yield (np.zeros(size % 8 + 1, np.uint8), *range(10), i)
        elif kind == "record":
            yield {"x": np.arange(size, dtype=np.float32), "i": i}
        else:
            yield bytes(size) + i.to_bytes(4, "little")


@contextlib.contextmanager
def _deadline(seconds):
    def expire(signum, frame):
        raise TimeoutError(f"the run did not end within {seconds} s: credit deadlock")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@settings(max_examples=max(10, settings.default.max_examples // 3))
@given(
    st.sampled_from(["int", "row", "wide", "record", "bytes"]), st.integers(1, 150), st.integers(1, 200),
    st.sampled_from([1, 2, 5, 64]), st.sampled_from([40, 300, 1000, 1 << 20]),
    st.lists(st.booleans(), min_size=1, max_size=6),
)
def test_an_activation_always_ends_with_its_items(kind, n, size, prefetch, prefetch_bytes, moves):
    plan = c.stream(shaped, kind, n, size)
    expected = [repr(item) for item in c.iterate(plan, seed=0)]
    move = itertools.cycle(moves)
    with mock.patch.object(RemoteSession, "runs_inline", lambda session, leaf_plan: False), \
            mock.patch.object(RemoteSession, "moves_inline", lambda session, number: next(move)), _deadline(TIMEOUT):
        executor = Processes(workers=1, prefetch=prefetch, prefetch_bytes=prefetch_bytes)
        with c.iterate(plan, seed=0, executor=executor) as run:
            items = [repr(item) for item in run]
            stats = run.executor_stats()
    assert items == expected
    assert stats["items_wasted"] == 0, stats  # a move waits for what its worker may still send
