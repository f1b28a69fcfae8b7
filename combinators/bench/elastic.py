"""``combinators bench elastic``: the throughput of one data-parallel rank against a single process.

The plan: ``mix(*(from_npy(shard) for shard in 100 shards)) >> batch(32)``
(every stream active, with replacement), over 100 ``.npy`` shards of
128-float32 rows written to a temporary folder. The reference is
``iterate(plan, seed=0)`` in one process, in batches per second; the figure
is the batches per second of each of 4 ranks (``iterate(plan, seed=0,
rank=r, world_size=4)``), the slowest rank reported, against a target of
0.8x, with the shards' pages in the page cache (warm) and evicted before
each run (cold, ``posix_fadvise(DONTNEED)``). Each rank draws every decision
and gathers only the rows of its own batches. The target is missed (about
0.3x on the 2-core host): a rank draws the decisions of four batches per
batch of its own, and its rows lie sparse in each shard (every fourth batch),
so where one process copies about 40 consecutive rows of a shard per block
with one slice, a rank copies about 10 scattered rows with one fancy index
(a copy more, and no read-ahead when the pages are cold).

How the ranks run: one after another in this process, each alone, so each
figure is what a rank does with a core of its own (as on a host or GPU of its
own). The machine this is written for has 2 cores: 4 ranks at once there
would share them, and each would show about half its speed, a figure of the
machine rather than of the design. Figures are best of ``repeat`` runs,
measured in turns with the reference so both see the same load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Callable

import numpy as np

from combinators.bench import Figure, best_rates
from combinators.execution.run import iterate
from combinators.plan.mixes import mix
from combinators.plan.transforms import batch
from combinators.sources.shards import from_npy

__all__ = ["run"]

N_SHARDS, WIDE, WORLD, BATCH = 100, 768, 4, 32


def write(folder: str, rows: int) -> list[str]:
    """``N_SHARDS`` shards of ``rows`` rows of ``WIDE`` float32 (the row's shard and position)."""
    paths = []
    for i in range(N_SHARDS):
        paths.append(os.path.join(folder, f"shard{i:03d}.npy"))
        data = np.empty((rows, WIDE), dtype=np.float32)
        data[:, 0], data[:, 1:] = i, np.arange(rows, dtype=np.float32)[:, None]
        np.save(paths[-1], data)
    return paths


def _rate(plan, batches: int, **ranks) -> int:
    """Yield ``batches`` batches of ``plan`` (this rank's, with ``ranks``) and return how many came."""
    with iterate(plan, seed=0, max_iter=batches, **ranks) as run:
        return sum(1 for _ in run)


def _evict(paths: list[str]) -> None:
    """Drop the shards' pages from the page cache (``posix_fadvise(DONTNEED)``): the next run reads the disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _cold_rates(paths: list[str], *fns: Callable[[], int], repeat: int) -> list[float]:
    """`best_rates` with the page cache emptied of the shards before each run (the eviction is not timed)."""
    best = [0.0] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            _evict(paths)
            start = time.perf_counter()
            count = fn()
            best[i] = max(best[i], count / (time.perf_counter() - start))
    return best


def run(args: argparse.Namespace) -> list[Figure]:
    quick = getattr(args, "quick", False)
    rows, batches, repeat = (100, 200, 3) if quick else (400, 1200, 5)
    figures = []
    with tempfile.TemporaryDirectory(prefix="combinators-elastic-", dir=os.getcwd() if quick else None) as folder:
        paths = write(folder, rows)
        plan = mix(*map(from_npy, paths)) >> batch(BATCH)
        fns = [lambda: _rate(plan, batches)]  # the same global span: the ranks' items make up these batches
        fns += [lambda r=r: _rate(plan, batches // WORLD, rank=r, world_size=WORLD) for r in range(WORLD)]
        for cache, rates in (("warm", best_rates(*fns, repeat=repeat)), ("cold", _cold_rates(paths, *fns, repeat=repeat))):
            single, *ranks = rates
            figures.append(Figure(
                f"per-rank throughput, {WORLD} ranks, mix of {N_SHARDS} from_npy shards >> batch({BATCH}), {cache} "
                "page cache", min(ranks), single, "batches/s", target=0.8,
                note=(f"slowest of {WORLD} ranks ({', '.join(f'{r:,.0f}' for r in ranks)}), each run alone: a core of "
                      "its own; reference: the same plan in one process")))
    return figures
