"""``combinators bench mix``: weighted mixes then ``batch(32)``, against hand-written references.

The workload of the array-sources issue: 10 sources of
``{"X": float32 (8,), "y": int}`` rows with weights 1..10, batched by 32, in
process. The reference is the loop one would write by hand: source indices
drawn with numpy in blocks of 4096, items taken from generators, collated
with ``np.stack``. Figures, each measured in turns with its reference:

1. ``from_arrays`` sources (the block path) against the hand loop;
2. rows of 768 float32 (3 KiB), in GB/s, against one ``np.take`` of as many
   random rows into a preallocated array (the gather bound);
3. generator sources (the per-item path): all active; ``n_active=4,
   rate=16``; 1000 sources with ``n_active=64, rate=16``; against the hand
   loop (informational for the working sets: it replaces no activation),
   and the working sets against the same working set written by hand
   (`_hand_working_set`: a new generator per activation, Poisson budgets, a
   bisect per item), which makes the same replacements (issue 22: >= 0.8x);
4. the block path around and beside the mix (issue 22): one ``from_arrays``
   of 200,000 rows ``>> batch(32)``, the same ``>> shuffle(1024)``, the mix
   of 10 all active and with ``n_active=4, rate=16``, against the hand
   slicing loop (``{"X": X[i:i+32], "y": y[i:i+32]}`` over one array); and
   ``.cycle()``, ``take``/``cycle`` and cycled children around block plans
   against the same plans without them; the working set and the mix of 10
   against the same written by hand (`_hand_working_set` over the arrays,
   `_hand_numpy_mix`), which decide and copy rows as they do; ``unbatch()``
   of rows of 4 sub-rows against the same rows unstacked, and ``filter`` over
   the mix of 10 against the mix alone (no target: its predicate runs once
   per row, in Python);
5. 200 compressed ``from_npz`` shards, ``mix(..., n_active=8) >> batch(32)``
   under ``Processes(workers=2)`` against the same plan in process (issue 22,
   figure 7): the workers read and decompress the shards, the consumer decides
   and gathers;
6. a mix of 1,000 ``from_npy`` shard files with ``n_active=16`` over a
   dataset of ``--dataset-gib`` GiB (written to a temporary folder, removed
   after): peak RSS and the most files open at once, measured in a child
   process so the other figures' memory does not count.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import tracemalloc
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

from combinators.bench import Figure, best_rates
from combinators.execution.remote.processes import Processes
from combinators.execution.run import iterate
from combinators.plan.mixes import mix
from combinators.plan.sources import from_arrays, stream
from combinators.sources.shards import from_npz
from combinators.plan.transforms import batch, filter, shuffle, unbatch  # noqa: A004 - the transform

BATCH = 32
#: rows per ``from_arrays`` source (the mix restarts a source when it is exhausted)
ARRAY_ROWS = 20_000
#: the row width of figure 2 (768 float32: 3 KiB)
WIDE = 768


def rows(label: int):
    """An endless source of ``{"X": float32 (8,), "y": label}`` items."""
    x = np.full(8, label, dtype=np.float32)
    while True:
        yield {"X": x, "y": label}


def _hand_loop(n_batches: int, weights: np.ndarray, seed: int) -> int:
    rng = np.random.default_rng(seed)
    sources = [rows(i) for i in range(len(weights))]
    p = weights / weights.sum()
    indices, used = [], 0
    for _ in range(n_batches):
        items = []
        for _ in range(BATCH):
            if used == len(indices):
                indices, used = rng.choice(len(p), size=4096, p=p).tolist(), 0
            items.append(next(sources[indices[used]]))
            used += 1
        {"X": np.stack([it["X"] for it in items]), "y": np.array([it["y"] for it in items])}
    return n_batches * BATCH


def _hand_working_set(n_batches: int, n_sources: int, n_active: int, rate: float, seed: int, open_source=rows) -> int:
    """The working set one would write by hand: ``n_active`` generators picked by weight, each replaced
    by a new one (chosen by weight, budget ``1 + Poisson(rate - 1)``) once it has given its budget.
    ``open_source(i)`` starts source ``i`` (a generator of ``{"X", "y"}`` rows)."""
    rng = np.random.default_rng(seed)
    weights = np.arange(1, n_sources + 1, dtype=float)
    pool = np.cumsum(weights).tolist()
    slots, left, slot_weight = [None] * n_active, [0] * n_active, [0.0] * n_active

    def refill(slot: int) -> None:
        index = bisect.bisect_right(pool, rng.random() * pool[-1])
        slots[slot], left[slot], slot_weight[slot] = open_source(index), 1 + int(rng.poisson(rate - 1)), weights[index]

    for slot in range(n_active):
        refill(slot)
    cumulative = list(itertools.accumulate(slot_weight))
    uniforms, used = [], 0
    for _ in range(n_batches):
        items = []
        for _ in range(BATCH):
            if used == len(uniforms):
                uniforms, used = rng.random(4096).tolist(), 0
            slot = bisect.bisect_right(cumulative, uniforms[used] * cumulative[-1])
            used += 1
            items.append(next(slots[slot]))
            left[slot] -= 1
            if not left[slot]:
                slots[slot].close()
                refill(slot)
                cumulative = list(itertools.accumulate(slot_weight))
        {"X": np.stack([it["X"] for it in items]), "y": np.array([it["y"] for it in items])}
    return n_batches * BATCH


def _hand_numpy_mix(n_batches: int, sources: list, weights: np.ndarray, seed: int) -> int:
    """The block mix one would write by hand with numpy over in-memory sources, all active: 4096 uniforms at a
    time mapped to sources (``searchsorted``), grouped (a stable ``argsort``), each source's next rows copied
    into the block at once, and batches sliced from the block. It keeps no state and no stats, and restarts an
    exhausted source at the next block (the mix splits the block there)."""
    rng, cumulative = np.random.default_rng(seed), np.cumsum(weights, dtype=float)
    data, positions, length = [source.data for source in sources], [0] * len(sources), len(sources[0])
    block, left = 4096, n_batches
    while left > 0:
        picks = cumulative.searchsorted(rng.random(block) * cumulative[-1], side="right").astype(np.uint8)
        order, end = np.argsort(picks, kind="stable"), 0
        out = {key: np.empty((block, *column.shape[1:]), column.dtype) for key, column in data[0].items()}
        for index, count in enumerate(np.bincount(picks, minlength=len(sources)).tolist()):
            where, end, first = order[end : end + count], end + count, positions[index]
            first = 0 if first + count > length else first
            for key, column in out.items():
                column[where] = data[index][key][first : first + count]
            positions[index] = first + count
        x, y = out["X"], out["y"]
        for start in range(0, min(block, left * BATCH), BATCH):
            {"X": x[start : start + BATCH], "y": y[start : start + BATCH]}
        left -= block // BATCH
    return n_batches * BATCH


#: rows of the lone source of figure 4
ONE_ROWS = 200_000


def _one_source(n_rows: int = ONE_ROWS):
    rng = np.random.default_rng(0)
    return from_arrays({"X": rng.random((n_rows, 8), dtype=np.float32), "y": np.arange(n_rows)})


def _hand_slicing(n_batches: int, source) -> int:
    """The loop one writes by hand over one array: a dict of slices per batch (wrapping at the end)."""
    x, y = source.data["X"], source.data["y"]
    last = len(y) - BATCH
    for k in range(n_batches):
        i = (k * BATCH) % last
        {"X": x[i : i + BATCH], "y": y[i : i + BATCH]}
    return n_batches * BATCH


def _array_rows(source):
    """Opens an activation of a ``from_arrays`` source as a hand-written loop would: its rows, one by one."""
    return lambda: ({"X": x, "y": y} for x, y in zip(source.data["X"], source.data["y"]))


def _block_path_figures(n_batches: int, n_rows: int) -> list[Figure]:
    """Figure 4: the block path beyond the mix of 10, each measured in turns with its reference."""
    one, weights = _one_source(), np.arange(1, 11)
    sources = [
        from_arrays({"X": np.full((n_rows, 8), i, dtype=np.float32), "y": np.full(n_rows, i)}) for i in range(10)
    ]
    opens = [_array_rows(source) for source in sources]
    plans = {
        "one": one >> batch(BATCH),
        "one cycled": one.cycle() >> batch(BATCH),
        "one shuffled": one >> shuffle(1024) >> batch(BATCH),
        "mix": mix(*sources, weights=weights) >> batch(BATCH),
        "mix take cycled": mix(*sources, weights=weights).take(5 * n_rows).cycle() >> batch(BATCH),
        "mix of cycled": mix(*[s.cycle() for s in sources], weights=weights) >> batch(BATCH),
        "working set": mix(*sources, weights=weights, n_active=4, rate=16) >> batch(BATCH),
        # rows of 4 sub-rows each, unbatched on blocks (a reshape): as many rows as ``one``, in the same arrays
        "one unbatched": from_arrays({key: value.reshape(-1, 4, *value.shape[1:]) for key, value in one.data.items()})
        >> unbatch() >> batch(BATCH),
        "mix filtered": mix(*sources, weights=weights) >> filter(_not_third) >> batch(BATCH),
    }
    hand = lambda: _hand_slicing(n_batches, one)  # noqa: E731
    hand_set = lambda: _hand_working_set(n_batches, 10, 4, 16, 0, open_source=lambda i: opens[i]())  # noqa: E731

    def figure(name: str, plan: str, reference, target: float | None, note: str = "") -> Figure:
        return _versus(name, lambda: _ours(plans[plan], n_batches),
                       reference if callable(reference) else lambda: _ours(plans[reference], n_batches), target, note)

    versus = "vs hand slicing loop, samples/s"
    return [
        figure(f"one from_arrays >> batch(32) {versus}", "one", hand, 0.25),
        figure("one from_arrays .cycle() >> batch(32) vs without .cycle()", "one cycled", "one", 0.9),
        figure("mix(10 from_arrays).take(n).cycle() >> batch(32) vs the mix alone", "mix take cycled", "mix", 0.9),
        figure("mix(10 from_arrays .cycle()d) >> batch(32) vs the mix alone", "mix of cycled", "mix", 0.9),
        figure(f"one from_arrays >> shuffle(1024) >> batch(32) {versus}", "one shuffled", hand, 0.05),
        figure(f"mix(10 from_arrays) n_active=4 rate=16 >> batch(32) {versus}", "working set", hand, 0.05),
        figure("mix(10 from_arrays) n_active=4 rate=16 >> batch(32) vs the same working set written by hand",
               "working set", hand_set, 0.8,
               note="the hand loop makes no decision; this reference makes the same replacements over the arrays"),
        figure(f"mix(10 from_arrays) all active >> batch(32) {versus}", "mix", hand, 0.08),
        figure("mix(10 from_arrays) all active >> batch(32) vs the same mix written by hand with numpy", "mix",
               lambda: _hand_numpy_mix(n_batches, sources, weights, 0), None,
               note="the hand slicing loop makes no decision and copies no row; this reference does both"),
        figure("one from_arrays of (4, 8) rows >> unbatch() >> batch(32) vs the same rows unstacked >> batch(32)",
               "one unbatched", "one", 0.9),
        figure("mix(10 from_arrays) >> filter(y % 3 != 0) >> batch(32) vs the mix alone", "mix filtered", "mix", None,
               note="the predicate runs once per row, in Python"),
    ]


def _not_third(row: dict) -> bool:
    return row["y"] % 3 != 0


#: why the working sets of generator sources have no target against the hand loop (issue 22 restated them)
_NO_WORKING_SET = ("the hand loop replaces no activation: the target is against the hand-written working set, "
                   "which makes the same replacements (below)")


def _versus(name: str, ours, reference, target: float | None, note: str = "") -> Figure:
    """A figure measured in turns with its own reference only (`best_rates` of the two): measured in turns with
    other plans too, a figure also pays for their garbage (the collector's passes) and their cache traffic
    (``one from_arrays >> batch(32)`` read 0.05x-0.15x of the hand loop that way, 0.31x-0.35x alone)."""
    mine, theirs = best_rates(ours, reference)
    return Figure(name, mine, theirs, "samples/s", target=target, note=note)


def _ours(plan, n_batches: int, seed: int = 0, executor="inprocess", stats: dict | None = None) -> int:
    with iterate(plan, seed=seed, max_iter=n_batches, executor=executor) as run:
        for _ in run:
            pass
        if stats is not None:
            stats.update(run.executor_stats())
    return n_batches * BATCH


#: figure 5: 200 shards of ``{"X": float32 (64,), "y": int64}`` rows, deflated at zlib level 1 (written fast;
#: inflating costs about the same at any level)
NPZ_SHARDS, NPZ_WIDTH = 200, 64


def _write_npz(folder: str, rows: int) -> list[str]:
    rng, paths = np.random.default_rng(0), []
    for k in range(NPZ_SHARDS):
        paths.append(os.path.join(folder, f"shard{k:03d}.npz"))
        arrays = {"X": np.round(rng.normal(size=(rows, NPZ_WIDTH)), 1).astype(np.float32), "y": np.full(rows, k)}
        with zipfile.ZipFile(paths[-1], "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for key, array in arrays.items():
                with archive.open(f"{key}.npy", "w") as file:
                    np.lib.format.write_array(file, array)
    return paths


def _npz_figure(rows: int, repeat: int) -> Figure:
    """Figure 5: the shards read in 2 worker processes against in process, each run reading every shard once
    (on average: a working set of 8 with replacement), in turns; session startup counts."""
    with tempfile.TemporaryDirectory(prefix="combinators-bench-") as folder:
        plan = mix(*[from_npz(path) for path in _write_npz(folder, rows)], n_active=8) >> batch(BATCH)
        n_batches, stats = NPZ_SHARDS * rows // BATCH, {}
        executor = Processes(workers=2)
        here, workers = best_rates(lambda: _ours(plan, n_batches),
                                   lambda: _ours(plan, n_batches, executor=executor, stats=stats), repeat=repeat)
    note = (f"{rows} rows of {NPZ_WIDTH} float32 a shard; in workers: {stats['row_activations']} shard reads, "
            f"in the consumer: {stats['row_activations_inline']}")
    return Figure(f"{NPZ_SHARDS} from_npz shards n_active=8 >> batch(32), Processes(workers=2) vs in process",
                  workers, here, "samples/s", target=1.4, note=note)


def _generator_plan(n_sources: int, n_active: int | None = None, rate: float | None = None):
    weights = np.arange(1, n_sources + 1)
    sources = [stream(rows, i) for i in range(n_sources)]
    return mix(*sources, weights=weights, n_active=n_active, rate=rate) >> batch(BATCH)


def _array_plan(width: int, n_rows: int):
    sources = [
        from_arrays({"X": np.full((n_rows, width), i, dtype=np.float32), "y": np.full(n_rows, i)}) for i in range(10)
    ]
    return mix(*sources, weights=np.arange(1, 11)) >> batch(BATCH)


def _proportion_error(plan, n_batches: int) -> float:
    counts = np.zeros(10, dtype=np.int64)
    with iterate(plan, seed=1, max_iter=n_batches) as run:
        for out in run:
            counts += np.bincount(out["y"], minlength=10)
    weights = np.arange(1, 11) / 55
    return float(np.abs(counts / counts.sum() - weights).max())


def _peak_bytes(plan, n_batches: int) -> int:
    tracemalloc.start()
    try:
        _ours(plan, n_batches)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _gather_figure(n_batches: int, n_rows: int) -> Figure:
    plan = _array_plan(WIDE, n_rows)
    pool = np.random.default_rng(0).random((10 * n_rows, WIDE), dtype=np.float32)
    n = n_batches * BATCH
    out = np.empty((n, WIDE), dtype=np.float32)
    indices = np.random.default_rng(1).integers(0, len(pool), size=n)

    def take() -> int:
        np.take(pool, indices, axis=0, out=out)
        return n

    ours, bound = best_rates(lambda: _ours(plan, n_batches), take)
    to_gb = WIDE * 4 / 1e9
    return Figure("768-float32 rows, mix(10 from_arrays) >> batch(32) vs one np.take of random rows", ours * to_gb,
                  bound * to_gb, "GB/s", target=0.8)


def _shard_figures(gib: float) -> list[Figure]:
    """Figure 6, run in a child process (`shard_child`) so its peak RSS is its own."""
    with tempfile.TemporaryDirectory(prefix="combinators-bench-") as folder:
        command = [sys.executable, "-m", "combinators.bench.shards", folder, str(gib)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    note = (f"{result['files']} shards, {result['gib']:.2f} GiB read once in {result['seconds']:.1f} s "
            f"({result['gib'] * 2**30 / 1e9 / result['seconds']:.2f} GB/s), {result['batches']} batches")
    return [
        Figure("1000 from_npy shards n_active=16: peak RSS vs 300 MB", result["peak_rss"] / 1e6, 300.0, "MB",
               higher_is_better=False, target=1.0, note=note),
        Figure("1000 from_npy shards n_active=16: files open at once vs 16 + 8", result["open_files"], 24, "files",
               higher_is_better=False, target=1.0),
    ]


def run(args: argparse.Namespace) -> list[Figure]:
    quick = args.quick
    n_batches = 200 if quick else 3000
    weights = np.arange(1, 11, dtype=float)
    plans = {
        "arrays": _array_plan(8, 2_000 if quick else ARRAY_ROWS),
        "generators": _generator_plan(10),
        "n_active=4 rate=16": _generator_plan(10, 4, 16),
        "1000 sources n_active=64 rate=16": _generator_plan(1000, 64, 16),
    }
    hand = lambda: _hand_loop(n_batches, weights, 0)  # noqa: E731
    ours = {name: (lambda p=p: _ours(p, n_batches)) for name, p in plans.items()}
    error = _proportion_error(plans["arrays"], n_batches)
    figures = [
        _versus("mix(10 from_arrays) >> batch(32) vs hand loop, samples/s", ours["arrays"], hand, 5.0,
                note=f"max |realized - weight| = {error:.4f}"),
        _gather_figure(n_batches // 4, 500 if quick else 5_000),
        _versus("mix(10 generator sources) >> batch(32) vs hand loop", ours["generators"], hand, 0.8),
        _versus("generator sources n_active=4 rate=16 vs hand loop", ours["n_active=4 rate=16"], hand, None,
                note=_NO_WORKING_SET),
        _versus("1000 generator sources n_active=64 rate=16 vs hand loop", ours["1000 sources n_active=64 rate=16"],
                hand, None, note=_NO_WORKING_SET),
        _versus("generator sources n_active=4 rate=16 vs a hand-written working set", ours["n_active=4 rate=16"],
                lambda: _hand_working_set(n_batches, 10, 4, 16, 0), 0.8, note="the same replacements, written by hand"),
        _versus("1000 generator sources n_active=64 rate=16 vs a hand-written working set",
                ours["1000 sources n_active=64 rate=16"], lambda: _hand_working_set(n_batches, 1000, 64, 16, 0), 0.8,
                note="the same replacements, written by hand"),
    ]
    figures += _block_path_figures(n_batches, 2_000 if quick else ARRAY_ROWS)
    peaks = {n: _peak_bytes(_generator_plan(n, 64, 16), n_batches // 4) for n in (100, 1000)}
    figures.append(Figure("peak traced memory, 1000 vs 100 generator sources", peaks[1000], peaks[100], "bytes",
                          higher_is_better=False, target=2.0))
    gib = args.dataset_gib if getattr(args, "dataset_gib", None) is not None else (0.05 if quick else 2.0)
    figures.append(_npz_figure(100 if quick else 2_000, 3 if quick else 5))
    figures += _shard_figures(gib)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return figures
