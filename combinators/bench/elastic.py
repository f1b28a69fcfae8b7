"""``combinators bench elastic``: the throughput of one data-parallel rank against a single process.

The plan: ``mix(*(from_npy(shard) for shard in 100 shards)) >> batch(32)``
(every stream active, with replacement), over 100 ``.npy`` shards of float32
rows written to a temporary folder, for two row sizes: 768 floats (3 KiB)
and 16,384 floats (64 KiB, an image). The reference is ``iterate(plan,
seed=0)`` in one process, in batches per second; the figure is the batches
per second of each of 4 ranks (``iterate(plan, seed=0, rank=r,
world_size=4)``), the slowest rank reported, against a target of 0.8x, with
the shards' pages in the page cache (warm) and evicted before each run
(cold, ``posix_fadvise(DONTNEED)``). Each rank draws every decision and
gathers only the rows of its own batches.

What bounds the ratio: a rank draws every decision, the same work as the
single process's over the same global span (four batches' worth per batch of
its own), and its rows lie sparse in each shard (a shard's consecutive rows
go to the four ranks' batches in turn). Reading no row of another rank's, it
makes one read per run of consecutive rows of its own, about 1.3 rows a read
(7,200 reads for the 9,600 rows of its 300 batches), where one process reads
about 25 rows a read. Each read is one ``os.preadv`` that scatters the run's
rows straight to their places in the block (no array or copy per run:
`combinators.sources.shards.ReadRows.read_runs`), and a rank's blocks are
four times longer than a single process's (it writes one row in four), so
four times fewer batches straddle two blocks (such a batch is concatenated,
another rank's too).

In CPU time (2-core host, warm, after the first batch): with 3 KiB rows the
single process takes 64 ms per 1,200 batches, a rank 40 ms per 300 (0.39x):
13 ms of decisions and blocks (no row read), 3 ms finding its runs, 25 ms
for its 7,200 reads (3.4 us each, of which about 2 us is the ``preadv`` of
3 KiB from the page cache itself). 0.8x would need the rank at 20 ms, so
4 ms for its reads: 0.6 us a read, less than the system call. With 64 KiB
rows, where the bytes dominate, a rank is at about 0.64x (392 ms per 300
batches against 1,007 ms per 1,200; 0.7x-0.8x in batches per second): its
reads copy 630 MB (209 ms), the
rest is its decisions, finding its runs (one call of numpy work per run of
decisions: 880 runs) and the batches of other ranks that straddle two
blocks. Cold, every rank still reads each page its rows share with the
others' (a 4 KiB page holds parts of rows of several ranks, and read-ahead
brings the rest), so no rank reads only its own bytes.

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

N_SHARDS, WORLD, BATCH = 100, 4, 32
#: (floats per row, rows per shard) of each figure, and of each figure with --quick
SHAPES, QUICK_SHAPES = ((768, 400), (16_384, 64)), ((768, 100), (4096, 50))


def write(folder: str, rows: int, wide: int = 768) -> list[str]:
    """``N_SHARDS`` shards of ``rows`` rows of ``wide`` float32 (the row's shard and position)."""
    paths = []
    for i in range(N_SHARDS):
        paths.append(os.path.join(folder, f"shard{i:03d}.npy"))
        data = np.empty((rows, wide), dtype=np.float32)
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
    batches, repeat = (200, 3) if quick else (1200, 5)
    figures = []
    for wide, rows in QUICK_SHAPES if quick else SHAPES:
        with tempfile.TemporaryDirectory(prefix="combinators-elastic-", dir=os.getcwd() if quick else None) as folder:
            figures += _figures(write(folder, rows, wide), wide, batches, repeat)
    return figures


def _figures(paths: list[str], wide: int, batches: int, repeat: int) -> list[Figure]:
    plan = mix(*map(from_npy, paths)) >> batch(BATCH)
    fns = [lambda: _rate(plan, batches)]  # the same global span: the ranks' items make up these batches
    fns += [lambda r=r: _rate(plan, batches // WORLD, rank=r, world_size=WORLD) for r in range(WORLD)]
    figures = []
    for cache, rates in (("warm", best_rates(*fns, repeat=repeat)), ("cold", _cold_rates(paths, *fns, repeat=repeat))):
        single, *ranks = rates
        figures.append(Figure(
            f"per-rank throughput, {WORLD} ranks, mix of {N_SHARDS} from_npy shards of {wide * 4 // 1024} KiB rows "
            f">> batch({BATCH}), {cache} page cache", min(ranks), single, "batches/s", target=0.8,
            note=(f"slowest of {WORLD} ranks ({', '.join(f'{r:,.0f}' for r in ranks)}), each run alone: a core of "
                  "its own; reference: the same plan in one process")))
    return figures
