"""What a run holds does not grow with the number of streams of a mix (beyond their weights).

Peak traced memory (tracemalloc) of a whole run, from `iterate` to the last
item and its final state: a mix of 1000 streams may hold a few doubles per
stream, never a Python object per stream per activation, per checkpoint
or per character of the plan's repr.
"""

from __future__ import annotations

import tracemalloc

import numpy as np

import combinators as c


def rows(label):
    x = np.full(8, label, dtype=np.float32)
    while True:
        yield {"X": x, "y": label}


def _peak(n_sources: int, n_items: int = 20_000) -> int:
    plan = c.mix(*[c.stream(rows, i) for i in range(n_sources)], weights=np.arange(1, n_sources + 1), n_active=64,
                 rate=16) >> c.batch(32)
    tracemalloc.start()
    try:
        with c.iterate(plan, seed=0, max_iter=n_items // 32) as run:
            for _ in run:
                pass
            run.stats(), run.state()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_run_of_1000_streams_holds_less_than_twice_what_one_of_100_does():
    _peak(10, 1000)  # imports and caches out of the way
    small, large = _peak(100), _peak(1000)
    # per stream: its weight, share and cumulative weight (3 doubles), a count and a leaf flag
    assert large - small < 900 * 120 + 40_000, (small, large)
    assert large < 2 * small, (small, large)
