"""LMDBArchive behaves exactly like a dict under random put, get, delete and reopen.

Its per-function summaries (the catalog kept at write time) agree at every
step with a recount of the entries, for raw keys and keys of registered
namespaces, through overwrites, deletes, batch deletes and reopening.

Each archive is checked against the reference `dict` (as Hypothesis checks its
database backends against each other in ``tests/nocover/test_database_agreement.py``).
Keys include long ones, beyond LMDB's 511-byte key limit, and keys sharing
long prefixes; the map starts tiny, so growth happens along the way.
"""

from __future__ import annotations

import shutil
import tempfile

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule

from combinators.memo import LMDBArchive
from combinators.memo.catalog import UNNAMED

short_keys = st.binary(min_size=0, max_size=24)
long_keys = st.builds(lambda prefix, tail: b"L" * 500 + prefix + tail, st.binary(max_size=40), st.binary(max_size=4))
values = st.one_of(
    st.integers(),
    st.text(max_size=20),
    st.lists(st.floats(allow_nan=False), max_size=5),
    st.builds(lambda n, seed: np.random.default_rng(seed).random(n), st.integers(0, 3000), st.integers(0, 9)),
)


def same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


class ArchiveAgreesWithDict(RuleBasedStateMachine):
    keys = Bundle("keys")

    @initialize()
    def open_archive(self) -> None:
        self.root = tempfile.mkdtemp(prefix="archive-machine-")
        self.path = f"{self.root}/a.lmdb"
        self.archive = LMDBArchive(self.path, map_size=32 * 1024, durability="process")
        self.model: dict[bytes, object] = {}
        self.versions: dict[bytes, str] = {}  # namespaced keys -> their version

    @rule(target=keys, key=st.one_of(short_keys, long_keys))
    def new_key(self, key: bytes) -> bytes:
        return key

    @rule(target=keys, name=st.sampled_from(["f", "g"]), version=st.sampled_from(["1", "2"]), key=short_keys)
    def new_namespaced_key(self, name: str, version: str, key: bytes) -> bytes:
        view = self.archive.namespace(name, version)
        self.archive.register(view.prefix, name, version)
        self.versions[view.prefix + key] = version
        return view.prefix + key

    @rule(key=keys, value=values, args=st.text(max_size=300))
    def put(self, key: bytes, value: object, args: str) -> None:
        self.archive.put(key, value, version=self.versions.get(key, ""), args=args)
        self.model[key] = value
        assert self.archive.info(key).args == args[:200]

    @rule(doomed=st.lists(keys, max_size=4, unique=True))
    def delete_many(self, doomed: list) -> None:
        assert self.archive.delete_many(doomed) == sum(key in self.model for key in doomed)
        for key in doomed:
            self.model.pop(key, None)

    @rule(key=keys)
    def get(self, key: bytes) -> None:
        if key in self.model:
            assert same(self.archive[key], self.model[key])
        else:
            assert self.archive.get(key, "absent") == "absent"

    @rule(key=keys)
    def delete(self, key: bytes) -> None:
        present = key in self.model
        try:
            del self.archive[key]
            deleted = True
        except KeyError:
            deleted = False
        assert deleted == present
        self.model.pop(key, None)

    @precondition(lambda self: hasattr(self, "archive"))
    @rule()
    def reopen(self) -> None:
        self.archive.close()
        self.archive = LMDBArchive(self.path, map_size=32 * 1024, durability="process")

    @invariant()
    def same_keys_and_length(self) -> None:
        if hasattr(self, "archive"):
            assert len(self.archive) == len(self.model)
            assert sorted(self.archive) == sorted(self.model)

    @invariant()
    def summaries_agree_with_a_recount(self) -> None:
        if not hasattr(self, "archive"):
            return
        names, recount = self.archive.registered(), {}
        for key, info in self.archive.iter_info():
            group = names.get(key[:16], (UNNAMED, info.version))
            n, size, first, last = recount.get(group, (0, 0, info.created, info.created))
            recount[group] = (n + 1, size + info.size, min(first, info.created), max(last, info.created))
        assert self.archive.catalog_current()
        kept = {(s.function, s.version): (s.entries, s.size, s.first, s.last) for s in self.archive.summaries()}
        assert kept == recount

    def teardown(self) -> None:
        if hasattr(self, "archive"):
            self.archive.close()
            shutil.rmtree(self.root, ignore_errors=True)


TestArchiveAgreesWithDict = ArchiveAgreesWithDict.TestCase
