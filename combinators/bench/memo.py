"""``combinators bench memo``: memoize hit, miss and keying costs against same-run references.

The function is ``f(x: int) -> 100 float64``. Figures:

- LMDB hit through `memoize` with no memory cache, against a raw lmdb get +
  ``pickle.loads`` keyed by blake2b of the pickled arguments (target <= 1.2x);
- memory-cache hit, against a 2 us budget (target <= 1x), and beside
  ``functools.lru_cache`` (informational);
- keying a 10 MB float64 array with `hashmap`, against 5 GB/s (target >= 1x),
  and beside blake2b of the same bytes (informational);
- miss cost (compute + store) with the default durability (``"sync"``: an
  fsync per entry) and with ``"process"``, beside a raw lmdb put + commit of
  the same durability (informational);
- a joblib.Memory hit, when joblib is installed (informational).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import pickle
import tempfile

import lmdb
import numpy as np

from combinators.bench import Figure, best_time
from combinators.memo import LMDBArchive, LRU, NoCache, hashmap, memoize

US = 1e-6


def _f(x: int) -> np.ndarray:
    return np.full(100, float(x))


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
    for x in xs:
        f(x)
    env, raw = _raw_reader(f"{root}/raw.lmdb", xs)
    assert all(np.array_equal(f(x), raw(x)) for x in xs[:10])
    ours = best_time(_cycler(f, xs), number)
    reference = best_time(_cycler(raw, xs), number)
    ours = min(ours, best_time(_cycler(f, xs), number))  # interleaved, against drift on a shared machine
    env.close()
    archive.close()
    return [Figure("LMDB hit via memoize (no memory cache)", ours / US, reference / US, "us",
                   higher_is_better=False, target=1.2, note="reference: raw lmdb get + pickle.loads")]


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
    ours = best_time(lambda: f(next(counter)), n, repeat=3)
    env = lmdb.open(f"{root}/raw-miss-{durability}.lmdb", map_size=1 << 26, sync=durability == "sync",
                    metasync=durability == "sync")
    raw_counter = itertools.count()

    def raw_put() -> None:
        x = next(raw_counter)
        with env.begin(write=True) as txn:
            txn.put(hashlib.blake2b(pickle.dumps((x,), 5), digest_size=16).digest(), pickle.dumps(_f(x), 5))

    reference = best_time(raw_put, n, repeat=3)
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
    return figures
