"""Figure 4 of ``combinators bench mix``, run in a child process: a mix of 1,000 shard files.

``python -m combinators.bench.shards FOLDER GIB`` writes 1,000 ``.npy``
shards of 768-float32 rows totalling ``GIB`` GiB into ``FOLDER``, reads them
all once through ``mix(*from_npy(...), n_active=16, mode="exhaustive") >>
batch(32)`` and prints, as JSON, the process's peak RSS (``VmHWM``, bytes),
the most files it had open at once (``/proc/self/fd``, sampled at every
batch, beyond those open before the run), the seconds and the batches.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from combinators.execution.run import iterate
from combinators.sources.shards import from_npy
from combinators.plan.mixes import mix
from combinators.plan.transforms import batch

N_SHARDS, N_ACTIVE, WIDE = 1000, 16, 768


def write(folder: str, gib: float) -> list[str]:
    """The shard files: equal shares of ``gib`` GiB of 768-float32 rows."""
    rows = max(1, int(gib * 2**30 / (WIDE * 4) / N_SHARDS))
    paths = []
    for i in range(N_SHARDS):
        paths.append(os.path.join(folder, f"shard{i:04d}.npy"))
        np.save(paths[-1], np.full((rows, WIDE), i, dtype=np.float32))
    return paths


def _peak_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main(folder: str, gib: float) -> dict:
    paths = write(folder, gib)
    plan = mix(*map(from_npy, paths), n_active=N_ACTIVE, mode="exhaustive") >> batch(32, partial=True)
    before, most, batches, rows = len(os.listdir("/proc/self/fd")), 0, 0, 0
    start = time.perf_counter()
    with iterate(plan, seed=0) as run:
        for out in run:
            most = max(most, len(os.listdir("/proc/self/fd")) - before)
            batches, rows = batches + 1, rows + len(out)
    seconds = time.perf_counter() - start
    return {"peak_rss": _peak_rss(), "open_files": most, "seconds": seconds, "batches": batches,
            "files": len(paths), "gib": rows * WIDE * 4 / 2**30}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], float(sys.argv[2]))))
