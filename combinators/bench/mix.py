"""``combinators bench mix``: a weighted mix then ``batch(32)``, against a hand-written loop.

The workload of the stream-algebra issue: 10 sources yielding
``{"X": float32 (8,), "y": int}`` with weights 1..10, batched by 32, in
process. The reference is the loop one would write by hand: source indices
drawn with numpy in blocks of 4096, items collated with ``np.stack``. A
second figure runs 1000 sources with a working set (``n_active=64,
rate=16``) against the 10-source figure, and reports peak traced memory for
100 and 1000 sources.
"""

from __future__ import annotations

import argparse
import tracemalloc

import numpy as np

from combinators.bench import Figure, best_rates
from combinators.execution.inprocess import iterate
from combinators.streams import mix, stream
from combinators.transforms import batch

BATCH = 32


def rows(label: int):
    """An endless source of ``{"X": float32 (8,), "y": label}`` items."""
    x = np.full(8, label, dtype=np.float32)
    while True:
        yield {"X": x, "y": label}


def _hand_loop(n_batches: int, weights: np.ndarray, seed: int) -> tuple[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    sources = [rows(i) for i in range(len(weights))]
    p = weights / weights.sum()
    counts = np.zeros(len(weights), dtype=np.int64)
    indices, used = np.empty(0, dtype=np.int64), 0
    for _ in range(n_batches):
        items = []
        for _ in range(BATCH):
            if used == len(indices):
                indices, used = rng.choice(len(p), size=4096, p=p).tolist(), 0
            items.append(next(sources[indices[used]]))
            used += 1
        out = {"X": np.stack([it["X"] for it in items]), "y": np.array([it["y"] for it in items])}
        counts += np.bincount(out["y"], minlength=len(p))
    return n_batches * BATCH, counts


def _ours(n_batches: int, plan, seed: int, n_sources: int) -> tuple[int, np.ndarray]:
    counts = np.zeros(n_sources, dtype=np.int64)
    with iterate(plan, seed=seed, max_iter=n_batches) as run:
        for out in run:
            counts += np.bincount(out["y"], minlength=n_sources)
    return n_batches * BATCH, counts


def _plan(n_sources: int, n_active: int | None = None, rate: float | None = None):
    weights = np.arange(1, n_sources + 1)
    return mix(*[stream(rows, i) for i in range(n_sources)], weights=weights, n_active=n_active, rate=rate) >> batch(BATCH)


def _peak_bytes(plan, n_batches: int) -> int:
    tracemalloc.start()
    try:
        _ours(n_batches, plan, 0, len(plan.stream.streams))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run(args: argparse.Namespace) -> list[Figure]:
    n_batches = 200 if args.quick else 4000
    weights = np.arange(1, 11, dtype=float)
    plan = _plan(10)
    big_plan = _plan(1000, 64, 16)
    hand, ours, big = best_rates(
        lambda: _hand_loop(n_batches, weights, 0)[0],
        lambda: _ours(n_batches, plan, 0, 10)[0],
        lambda: _ours(n_batches, big_plan, 0, 1000)[0],
    )
    _, counts = _ours(n_batches, plan, 1, 10)
    error = float(np.abs(counts / counts.sum() - weights / weights.sum()).max())
    peaks = {n: _peak_bytes(_plan(n, 64, 16), n_batches // 4) for n in (100, 1000)}
    return [
        Figure("mix(10 sources) >> batch(32), samples/s", ours, hand, "samples/s", target=0.6,
               note=f"max |realized - weight| = {error:.4f} (target <= 0.01)"),
        Figure("1000 sources n_active=64 rate=16 vs 10 sources", big, ours, "samples/s", target=0.5),
        Figure("peak traced memory, 1000 vs 100 sources", peaks[1000], peaks[100], "bytes",
               higher_is_better=False, target=2.0),
    ]
