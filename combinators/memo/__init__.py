"""Memoization of pure functions: keymaps, archives, cache policies, metrics.

See ``docs/memoization.md`` for the guide; the pieces are `keymaps`
(arguments to pure keys), `encoding` (the canonical encoders, and
`register_encoder`), `calls` (a function's version: its code and the code it
calls), `capture` (what else a function's result depends on: captured values
and names), `archives` (the interface, dict,
null), `lmdb_archive` (LMDB) and `lmdb_env` (its files), `serializers`,
`caches` (cache policies), `memoize` and `metrics`.
"""

from combinators.memo.archives import (
    Archive,
    DictArchive,
    EntryInfo,
    Namespace,
    NullArchive,
)
from combinators.memo.caches import LFU, LRU, MRU, RR, CachePolicy, NoCache, Unbounded
from combinators.memo.capture import code_version
from combinators.memo.keymaps import Keymap, hashmap, keymap, picklemap, stringmap
from combinators.memo.lmdb_archive import LMDBArchive
from combinators.memo.memoize import (
    CacheInfo,
    inf_cache,
    lfu_cache,
    lru_cache,
    memoize,
    mru_cache,
    no_cache,
    rr_cache,
)
from combinators.memo.metrics import Metric, Metrics
from combinators.memo.serializers import Serializer, serializer

__all__ = [
    "Keymap", "hashmap", "picklemap", "stringmap", "keymap",
    "Archive", "LMDBArchive", "DictArchive", "NullArchive", "Namespace", "EntryInfo",
    "Serializer", "serializer",
    "CachePolicy", "LRU", "LFU", "MRU", "RR", "Unbounded", "NoCache",
    "memoize", "CacheInfo", "code_version",
    "lru_cache", "lfu_cache", "mru_cache", "rr_cache", "inf_cache", "no_cache",
    "Metrics", "Metric",
]
