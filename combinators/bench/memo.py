"""``combinators bench memo``: memoize hit, miss and keying costs against same-run references.

The function is ``f(x: int) -> 100 float64``. Figures:

- LMDB hit through `memoize` with no memory cache, against a raw lmdb get +
  ``pickle.loads`` keyed by blake2b of the pickled arguments (target <= 1.2x),
  for ``f`` and for ``g``, which computes the same through two helpers of
  this module: its hit includes the check that no function it calls was
  redefined (`combinators.memo.calls.CodeVersion.stale`);
- memory-cache hit, against a 2 us budget (target <= 1x), and beside
  ``functools.lru_cache`` (informational);
- keying a 10 MB float64 array with `hashmap`, against 5 GB/s (target >= 1x),
  and beside blake2b of the same bytes (informational);
- miss cost (compute + store) with the default durability (``"sync"``: an
  fsync per entry) and with ``"process"``, beside a raw lmdb put + commit of
  the same durability (informational);
- a joblib.Memory hit, when joblib is installed (informational);
- ``combinators archive ls`` and ``stats`` on an archive of N entries
  (``--archive-entries N``, 200,000 by default, 2,000 with ``--quick``): wall
  time of the whole command (a fresh interpreter) against the 1 s budget and
  its peak memory against the 100 MB budget (targets <= 1x), beside a full
  scan of the entries (what ``ls`` did before the summaries; informational).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time

import lmdb
import numpy as np

from combinators.bench import Figure, best_time
from combinators.memo import LMDBArchive, LRU, NoCache, hashmap, memoize
from combinators.memo.calls import CodeVersion

US = 1e-6


def _f(x: int) -> np.ndarray:
    return np.full(100, float(x))


def _offset(x: int) -> float:
    return float(x) + 0.0


def _scaled(x: int) -> float:
    return _offset(x) * 1.0


def _g(x: int) -> np.ndarray:
    """``_f`` through two helpers: its version follows them, and each call checks they are the same."""
    return np.full(100, _scaled(x))


def _raw_reader(path: str, xs: list[int]):
    """A raw LMDB store of ``_f`` keyed by blake2b(pickle(args)), and its reader."""
    env = lmdb.open(path, map_size=1 << 26)
    with env.begin(write=True) as txn:
        for x in xs:
            txn.put(hashlib.blake2b(pickle.dumps((x,), 5), digest_size=16).digest(), pickle.dumps(_f(x), 5))

    def read(x: int) -> np.ndarray:
        key = hashlib.blake2b(pickle.dumps((x,), 5), digest_size=16).digest()
        with env.begin() as txn:
            return pickle.loads(txn.get(key))

    return env, read


def _cycler(fn, xs: list[int]):
    it = itertools.cycle(xs)
    return lambda: fn(next(it))


def _hit_figures(root: str, xs: list[int], number: int) -> list[Figure]:
    archive = LMDBArchive(f"{root}/memo.lmdb")
    f = memoize(_f, archive=archive, cache=NoCache(), name="bench.f")
    g = memoize(_g, archive=archive, cache=NoCache(), name="bench.g")
    for x in xs:
        f(x), g(x)
    env, raw = _raw_reader(f"{root}/raw.lmdb", xs)
    assert all(np.array_equal(f(x), raw(x)) and np.array_equal(g(x), raw(x)) for x in xs[:10])
    ours, helpers, reference = (float("inf"),) * 3
    for _ in range(8):  # short turns, interleaved: each sees the same load on a shared machine
        ours = min(ours, best_time(_cycler(f, xs), number // 4, repeat=2))
        helpers = min(helpers, best_time(_cycler(g, xs), number // 4, repeat=2))
        reference = min(reference, best_time(_cycler(raw, xs), number // 4, repeat=2))
    env.close()
    archive.close()
    watched = CodeVersion(_g).watched
    return [
        Figure("LMDB hit via memoize (no memory cache)", ours / US, reference / US, "us",
               higher_is_better=False, target=1.2, note="reference: raw lmdb get + pickle.loads"),
        Figure("LMDB hit via memoize, a function calling two helpers", helpers / US, reference / US, "us",
               higher_is_better=False, target=1.2,
               note=f"reference: raw lmdb get + pickle.loads; each hit checks {watched} global bindings"),
    ]


def _memory_figures(number: int) -> list[Figure]:
    f = memoize(_f, cache=LRU(128), name="bench.f")
    g = functools.lru_cache(128)(_f)
    f(1), g(1)
    ours = best_time(lambda: f(1), number)
    reference = best_time(lambda: g(1), number)
    return [
        Figure("memory-cache hit", ours / US, 2.0, "us", higher_is_better=False, target=1.0,
               note="reference: the 2 us budget"),
        Figure("memory-cache hit vs functools.lru_cache", ours / US, reference / US, "us",
               higher_is_better=False, note="informational: lru_cache keys by hash(), not pure bytes"),
    ]


def _keying_figures(megabytes: int) -> list[Figure]:
    array = np.random.default_rng(0).random(megabytes * (1 << 20) // 8)
    key = hashmap()
    seconds = best_time(lambda: key(array), 3)
    blake = best_time(lambda: hashlib.blake2b(memoryview(array).cast("B")).digest(), 2, repeat=3)
    rate = array.nbytes / seconds / 1e9
    return [
        Figure(f"keying a {megabytes} MB array (hashmap, xxh3_128)", rate, 5.0, "GB/s", target=1.0,
               note="reference: the 5 GB/s budget"),
        Figure("keying vs blake2b of the same bytes", rate, array.nbytes / blake / 1e9, "GB/s",
               note="informational: hashmap(algorithm='blake2b') is the cryptographic option"),
    ]


def _miss_figures(root: str, n: int, durability: str) -> list[Figure]:
    archive = LMDBArchive(f"{root}/miss-{durability}.lmdb", durability=durability)
    f = memoize(_f, archive=archive, cache=NoCache(), name="bench.f")
    counter = itertools.count()
    env = lmdb.open(f"{root}/raw-miss-{durability}.lmdb", map_size=1 << 26, sync=durability == "sync",
                    metasync=durability == "sync")
    raw_counter = itertools.count()

    def raw_put() -> None:
        x = next(raw_counter)
        with env.begin(write=True) as txn:
            txn.put(hashlib.blake2b(pickle.dumps((x,), 5), digest_size=16).digest(), pickle.dumps(_f(x), 5))

    ours = reference = float("inf")
    for _ in range(3):  # in turns, so both see the same load
        ours = min(ours, best_time(lambda: f(next(counter)), n, repeat=1))
        reference = min(reference, best_time(raw_put, n, repeat=1))
    env.close()
    archive.close()
    return [Figure(f"miss (compute + store), durability={durability!r}", ours / US, reference / US, "us",
                   higher_is_better=False, note="informational; reference: raw lmdb put + commit, same durability")]


def _joblib_figures(root: str, xs: list[int], number: int) -> list[Figure]:
    try:
        import joblib
    except ImportError:
        return []
    memory = joblib.Memory(f"{root}/joblib", verbose=0)
    g = memory.cache(_f)
    f = memoize(_f, archive=LMDBArchive(f"{root}/memo-j.lmdb"), cache=NoCache(), name="bench.f")
    for x in xs:
        g(x), f(x)
    theirs = best_time(_cycler(g, xs), max(number // 20, 10), repeat=3)
    ours = best_time(_cycler(f, xs), number)
    return [Figure("LMDB hit via memoize vs joblib.Memory hit", ours / US, theirs / US, "us",
                   higher_is_better=False, note="informational")]


#: run in a fresh interpreter: one archive command (or the full scan); prints its seconds and the peak kB.
#: The peak is VmHWM (this process image); ru_maxrss would keep the forking parent's peak across exec on Linux.
_CHILD = """
import resource, sys, time
from combinators.cli import main
start = time.perf_counter()
if sys.argv[1] == "scan":
    from combinators.memo import LMDBArchive
    names, groups = None, {}
    with LMDBArchive(sys.argv[2], readonly=True) as archive:
        names = archive.registered()
        for key, info in archive.iter_info():
            groups.setdefault(names.get(key[:16], ("?", info.version)), []).append((key, info))
else:
    sys.stdout = open("/dev/null", "w")
    assert main(["archive", sys.argv[1], sys.argv[2]]) == 0
peak = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(time.perf_counter() - start, peak[0] if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
      file=sys.stderr)
"""


def _fill(path: str, n: int) -> None:
    """An archive of ``n`` entries of one function (8 floats each), written as memoize writes them."""
    archive = LMDBArchive(path, durability="process", map_size=1 << 28)
    view = archive.namespace("bench.f", "1")
    value = np.arange(8.0)
    for i in range(n):
        view.put(i.to_bytes(16, "little"), value, compute_seconds=1e-3, args=f"{i}")
    archive.close()


def _command(action: str, path: str) -> tuple[float, float, float, float]:
    """``combinators archive ACTION PATH`` in a fresh interpreter ("import": only import combinators.cli).

    Returns the seconds inside the command, the wall and CPU seconds of the whole process, its peak MB.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    script = "import combinators.cli" if action == "import" else _CHILD
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, action, path], env=env, capture_output=True, text=True,
                          check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if action == "import":
        return 0.0, wall, cpu, 0.0
    inside, kilobytes = done.stderr.split()[-2:]
    return float(inside), wall, cpu, int(kilobytes) / 1024


def _archive_command_figures(root: str, n: int) -> list[Figure]:
    path = f"{root}/big.lmdb"
    _fill(path, n)
    figures = []
    runs: dict[str, list] = {action: [] for action in ("import", "ls", "stats", "scan")}
    for _ in range(3):  # in turns, so all see the same load
        for action, results in runs.items():
            results.append(_command(action, path))
    best = {action: [min(column) for column in zip(*results)] for action, results in runs.items()}
    for action in ("ls", "stats"):
        inside, wall, cpu, megabytes = best[action]
        figures += [
            Figure(f"archive {action} on {n:,} entries", inside, 1.0, "s", higher_is_better=False, target=1.0,
                   note="reference: the 1 s budget (the command, after the interpreter started)"),
            Figure(f"archive {action} on {n:,} entries (peak memory of the process)", megabytes, 100.0, "MB",
                   higher_is_better=False, target=1.0, note="reference: the 100 MB budget"),
            Figure(f"archive {action} on {n:,} entries, whole process (wall)", wall, best["import"][1], "s",
                   higher_is_better=False, note=f"informational; reference: python -c 'import combinators.cli'; "
                                                f"CPU {cpu:.2f} s vs {best['import'][2]:.2f} s"),
        ]
    figures.append(Figure(f"archive ls vs a full scan of {n:,} entries", best["ls"][0], best["scan"][0], "s",
                          higher_is_better=False,
                          note=f"informational: the scan (ls before summaries) peaks at {best['scan'][3]:.0f} MB"))
    return figures


def run(args: argparse.Namespace) -> list[Figure]:
    quick = getattr(args, "quick", False)
    xs = list(range(100 if quick else 1000))
    number = 2_000 if quick else 20_000
    figures = []
    with tempfile.TemporaryDirectory() as root:
        figures += _hit_figures(root, xs, number)
        figures += _memory_figures(number)
        figures += _keying_figures(1 if quick else 10)
        figures += _miss_figures(root, 20 if quick else 200, "sync")
        figures += _miss_figures(root, 20 if quick else 200, "process")
        figures += _joblib_figures(root, xs[:50], number)
        n = getattr(args, "archive_entries", None) or (2_000 if quick else 200_000)
        figures += _archive_command_figures(root, n)
    return figures
