"""``combinators bench resume``: what a run state costs (issue 11).

- resuming a ``from_arrays`` source 10 million rows in (its first item after
  ``iterate(plan, resume=state)``), against a budget of 10 ms, and beside a
  fresh start of the same plan; the same for ``from_arrays >> batch(100_000)``
  resumed at row 9.9 million (batch 99; issue 21: the leaf seeks, rows =
  batches x batch size);
- the JSON size of the state of a 1000-source mix with ``n_active=64``,
  against a budget of 16 KiB (generator sources: the mix keeps a working
  set; a block-path mix of ``from_arrays`` sources is shown too);
- the throughput of a batched 1000-source mix when ``state()`` is taken
  every 100 batches, against the same run without it (target: under 2%
  slower).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable, Iterator

import numpy as np

from combinators.bench import Figure, best_rates
from combinators.execution.run import iterate
from combinators.plan.mixes import mix
from combinators.plan.sources import from_arrays, stream
from combinators.plan.stream import Stream
from combinators.plan.transforms import batch

__all__ = ["run"]


def _seconds(fn: Callable[[], Any], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _resumed_and_fresh(plan: Stream, at: int) -> tuple[float, float]:
    """Seconds to the first item of ``plan`` resumed after ``at`` items, and of a fresh start (best of 5)."""
    with iterate(plan, seed=0) as run:
        next(run)
        state = json.loads(json.dumps(run.state()))
    state["items"], state["root"] = at, {"received": at}  # the state after ``at`` items

    def resume() -> Any:
        with iterate(plan, resume=state) as resumed:
            return next(resumed)

    def fresh() -> Any:
        with iterate(plan, seed=0) as started:
            return next(started)

    return _seconds(resume), _seconds(fresh)


def _resume_figures(rows: int) -> list[Figure]:
    resumed, started = _resumed_and_fresh(from_arrays(np.arange(rows, dtype=np.float32)), rows - 10)
    return [
        Figure(f"resume from_arrays {rows:,} rows in", resumed * 1e3, 10.0, "ms", higher_is_better=False, target=1.0,
               note="reference: the 10 ms budget"),
        Figure(f"resume from_arrays {rows:,} rows in, vs a fresh start", resumed * 1e3, started * 1e3, "ms",
               higher_is_better=False),
    ]


def _batched_resume_figures(rows: int, size: int) -> list[Figure]:
    """Resuming ``from_arrays(rows) >> batch(size)`` at batch 0.99 x rows / size (its first batch)."""
    at = (rows // size) * 99 // 100
    resumed, started = _resumed_and_fresh(from_arrays(np.arange(rows, dtype=np.float32)) >> batch(size), at)
    label = f"resume from_arrays({rows:,} rows) >> batch({size:,}) at row {at * size:,}"
    return [
        Figure(label, resumed * 1e3, 10.0, "ms", higher_is_better=False, target=1.0,
               note="its first batch; reference: the 10 ms budget"),
        Figure(f"{label}, vs a fresh start", resumed * 1e3, started * 1e3, "ms", higher_is_better=False),
    ]


def counting(index: int) -> Iterator[int]:
    """An endless source: its index, then 0, 1, 2..."""
    yield from range(index, 1 << 62)


def generator_mix(n_sources: int, n_active: int) -> Stream:
    return mix(*[stream(counting, i) for i in range(n_sources)], n_active=n_active, rate=16.0)


def _size_figures(n_sources: int, n_active: int, items: int) -> list[Figure]:
    figures = []
    arrays = mix(*[from_arrays(np.arange(10_000) + i) for i in range(n_sources)], n_active=n_active, rate=16.0)
    for label, plan in (("generator sources", generator_mix(n_sources, n_active)), ("from_arrays (block path)", arrays)):
        with iterate(plan, seed=0) as run:
            for _ in range(items):
                next(run)
            size = len(json.dumps(run.state()))
        figures.append(Figure(f"state of a {n_sources}-source mix, n_active={n_active}, {label}, after {items:,} items",
                              size / 1024, 16.0, "KiB", higher_is_better=False, target=1.0,
                              note="reference: the 16 KiB budget"))
    return figures


def _overhead_figures(n_sources: int, n_active: int, batches: int) -> list[Figure]:
    plan = generator_mix(n_sources, n_active) >> batch(32)

    def consume(every: int | None) -> Callable[[], int]:
        def go() -> int:
            with iterate(plan, seed=0) as run:
                for index in range(batches):
                    next(run)
                    if every and index % every == every - 1:
                        run.state()
            return batches * 32
        return go

    # each order in turn: in a pair, the second function runs 1-3% faster here (warm caches)
    first, second, third, fourth = best_rates(consume(100), consume(None), consume(None), consume(100), repeat=5)
    with_state, without = max(first, fourth), max(second, third)
    with iterate(plan, seed=0) as run:
        hundred = _seconds(lambda: [next(run) for _ in range(100)])
        one_state = _seconds(run.state)
    return [Figure("one state() vs 100 batches of batch(32) over a 1000-source mix", one_state * 1e3, hundred * 1e3,
                   "ms", higher_is_better=False, target=0.02, note="best of 5 each; the steadier figure on a busy host"),
            Figure("throughput taking state() every 100 batches (batch(32) over a 1000-source mix)", with_state, without,
                   "items/s", target=0.98, note="reference: the same run without state()")]


def run(args: argparse.Namespace) -> list[Figure]:
    quick = getattr(args, "quick", False)
    figures = _resume_figures(1_000_000 if quick else 10_000_000)
    figures += _batched_resume_figures(1_000_000 if quick else 10_000_000, 10_000 if quick else 100_000)
    figures += _size_figures(1000, 64, 20_000 if quick else 200_000)
    figures += _overhead_figures(1000, 64, 600 if quick else 8000)
    return figures
