"""``combinators bench executors``: parallel executors on hierarchical sampling (issue 15), in one run.

The plan is pescador's canonical workload: 50 sources, mixed through a
working set ``mix(..., n_active=8, rate=R) >> take(N) >> batch(16)``, so
activations are short and frequent. Each row runs the same plan and seed in
process (the reference) and with ``Processes(workers=2)`` (one row with
``ZMQ(workers=2)``), interleaved so both see the same load, startup included
(best of 3 runs each; of 5 for the cheap rows, which take a fraction of a second);
it prints the ratio, the items the workers produced that were never consumed
(``items_wasted`` of `Run.executor_stats`, target <= 10% of the items
consumed) and the activation start latency (median, p99).

Rows: CPU-bound sources (about 0.4 ms of numpy per item) at ``rate`` None, 8
and 32, and ZMQ at rate 8; cheap sources (about 1 us: a dict holding a row of
64 floats) at rate 32 and None, where ``Processes`` runs each leaf in the
consumer once its workers measured that its items cost less to make than to
move (``inline``), and at rate 32 with ``inline=False`` (every activation in a
worker: the cost of moving them). A 2-worker speed-up needs 2 idle cores, so the
run also measures this host's ceiling: 2 bare forked processes doing the same
CPU work, against one (as ``bench transport`` does).
"""

from __future__ import annotations

import argparse
from typing import Callable, Iterator

import numpy as np

from combinators.bench import Figure, best_rates
from combinators.bench.transport import _bare_processes, _work_size, cpu_source
from combinators.execution.base import Executor
from combinators.execution.run import iterate
from combinators.execution.remote.processes import Processes
from combinators.execution.remote.zmq import ZMQ
from combinators.plan.mixes import mix
from combinators.plan.sources import stream
from combinators.plan.stream import Stream
from combinators.plan.transforms import batch, take

__all__ = ["run", "sampling_plan", "cheap_source"]

SOURCES, N_ACTIVE, BATCH = 50, 8, 16
CHEAP = "~1 us dict"


def cheap_source(index: int, items: int) -> Iterator[dict[str, np.ndarray]]:
    """A cheap source: ``{"x": row}`` with a new row of 64 float64 values (about 1 us an item)."""
    base = np.full(64, float(index))
    for i in range(items):
        yield {"x": base + i}


def sampling_plan(source: Callable[..., Iterator], args: tuple, rate: float | None, items: int) -> Stream:
    """50 sources ``source(k, *args)`` mixed with ``n_active=8`` and ``rate``, then ``take(items) >> batch(16)``."""
    sources = [stream(source, k, *args) for k in range(SOURCES)]
    return mix(*sources, n_active=N_ACTIVE, rate=rate) >> take(items) >> batch(BATCH)


class _Measured:
    """Runs a plan under an executor and keeps the last run's executor statistics."""

    def __init__(self, plan: Stream, executor: Executor | str):
        self.plan, self.executor = plan, executor
        self.stats: dict[str, float] = {}

    def __call__(self) -> int:
        with iterate(self.plan, seed=0, executor=self.executor) as run:
            count = sum(len(batch_["x"]) if isinstance(batch_, dict) else len(batch_) for batch_ in run)
            self.stats = run.executor_stats()
        return count


def _rows(quick: bool, size: int) -> list[tuple[str, Callable, tuple, float | None, int, Executor, float | None]]:
    cpu_items, cheap_items = (400, 4000) if quick else (3000, 60_000)
    per_source_cpu, per_source_cheap = 64, 4096  # rate=None activations run to their source's end
    cpu, cheap = (cpu_source, (per_source_cpu, size)), (cheap_source, (per_source_cheap,))
    two, zmq_two = Processes(workers=2), ZMQ(workers=2)
    return [
        ("~0.4 ms numpy", *cpu, None, cpu_items, two, 1.7),
        ("~0.4 ms numpy", *cpu, 8, cpu_items, two, 1.6),
        ("~0.4 ms numpy", *cpu, 32, cpu_items, two, None),
        ("~0.4 ms numpy", *cpu, 8, cpu_items, zmq_two, None),
        (CHEAP, *cheap, 32, cheap_items, two, 0.7),
        (CHEAP, *cheap, None, cheap_items, two, None),
        (CHEAP, *cheap, 32, cheap_items, Processes(workers=2, inline=False), None),
    ]


def run(args: argparse.Namespace) -> list[Figure]:
    """Measure every row of issue 15's table and the host's 2-process ceiling; see the module docstring."""
    quick = args.quick
    size = _work_size(0.0004)
    figures: list[Figure] = []
    for work, source, source_args, rate, items, executor, target in _rows(quick, size):
        plan = sampling_plan(source, source_args, rate, items)
        parallel, reference = _Measured(plan, executor), _Measured(plan, "inprocess")
        # a cheap row takes a fraction of a second: best of 5, like the other benchmarks; a CPU-bound one, 3
        ours, inprocess = best_rates(parallel, reference, repeat=2 if quick else 5 if work == CHEAP else 3)
        stats = parallel.stats
        name = f"{SOURCES} sources, {work}, n_active={N_ACTIVE}, rate={rate}: {executor!r}"
        figures.append(Figure(
            name=name, value=ours, reference=inprocess, unit="items/s", target=None if quick else target,
            note=f"reference: in process; {int(stats['activations'])} activations in workers, "
            f"{int(stats['activations_inline'])} in the consumer, start latency median "
            f"{stats['start_latency_median_ms']:.2f} ms, p99 {stats['start_latency_p99_ms']:.2f} ms",
        ))
        figures.append(Figure(
            name=f"{name}: items produced, never consumed", value=stats["items_wasted"], reference=items,
            unit="items", higher_is_better=False, target=0.10,
            note=f"reference: items consumed; {int(stats['items_received'])} received",
        ))
    ceiling_items = 200 if quick else 1000
    bare, single = best_rates(
        _bare_processes(2, ceiling_items, size), lambda: sum(1 for _ in cpu_source(0, ceiling_items // 2, size)),
        repeat=2 if quick else 3,
    )
    figures.append(Figure(
        name="this host's ceiling: 2 bare forked processes doing the CPU-bound work", value=bare, reference=single,
        unit="items/s", note="reference: 1 process; the 2-worker targets assume this is about 2x (2 idle cores)",
    ))
    return figures
