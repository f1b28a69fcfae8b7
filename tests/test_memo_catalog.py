"""The archive, readable: summaries kept at write time, entry listings, clear CLI errors, method keys.

Every check runs against real LMDB files; the summaries are compared with a
recount of the entries themselves (`recount`), after concurrent writers in
several real processes, overwrites, deletes, ``rm`` and a rebuild.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import re
import time
from datetime import datetime, timedelta, timezone

import attrs
import lmdb
import numpy as np
import pytest

from combinators.cli import main
from combinators.errors import InvalidArgument, KeyingError
from combinators.memo import LMDBArchive, hashmap, keymap, memoize, stringmap
from combinators.memo.catalog import ARGS_LIMIT, UNNAMED, call_repr
from combinators.memo.cli import prune

FORK = multiprocessing.get_context("fork")


def recount(archive: LMDBArchive) -> dict:
    """(function, version) -> (entries, bytes, first, last), from the entries alone."""
    names = archive.registered()
    out: dict = {}
    for key, info in archive.iter_info():
        group = names.get(key[:16], (UNNAMED, info.version))
        n, size, first, last = out.get(group, (0, 0, info.created, info.created))
        out[group] = (n + 1, size + info.size, min(first, info.created), max(last, info.created))
    return out


def kept(archive: LMDBArchive) -> dict:
    assert archive.catalog_current()
    return {(s.function, s.version): (s.entries, s.size, s.first, s.last) for s in archive.summaries()}


def _block(x, scale=1.0):
    return np.full(int(x) % 7 + 1, x * scale)


def _writer(path: str, worker: int, n: int) -> None:
    archive = LMDBArchive(path, map_size=64 * 1024, durability="process")
    f = memoize(_block, archive=archive, name="block", version="1")
    g = memoize(_block, archive=archive, name="block", version="2")
    for i in range(n):
        x = (i * (worker + 2)) % n  # overlapping keys, in different orders
        f(x)
        if i % 3 == worker % 3:
            f.recompute(x)  # an overwrite of the same key, racing the others
        if i % 5 == 0:
            g(x, scale=2.0)
        if i % 7 == worker:
            archive.put(b"raw-%d" % x, x, version="raw")
        if i % 11 == 0:
            try:
                del f.archive[f.key(x)]
            except KeyError:
                pass  # another process deleted it first


def test_summaries_stay_right_under_concurrent_writers_from_several_processes(tmp_path):
    path = str(tmp_path / "a.lmdb")
    procs = [FORK.Process(target=_writer, args=(path, w, 120)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with LMDBArchive(path) as archive:
        truth = recount(archive)
        assert kept(archive) == truth
        assert {("block", "1"), ("block", "2"), (UNNAMED, "raw")} <= set(truth)


def test_summaries_follow_overwrite_delete_and_rm(tmp_path):
    archive = LMDBArchive(tmp_path / "a.lmdb")
    f = memoize(_block, archive=archive, name="block", version="1")
    for x in range(30):
        f(x)
    f.recompute(3)  # overwrite: same count, new date and compute time
    assert kept(archive) == recount(archive) and kept(archive)[("block", "1")][0] == 30
    del f.archive[f.key(4)]
    archive.put(b"raw", 1)
    archive.put(b"raw", [1, 2, 3])  # overwrite of a raw entry, other size
    assert kept(archive) == recount(archive)
    assert prune(archive, function="blo*", dry_run=True) == 29 and kept(archive) == recount(archive)
    assert prune(archive, function="block") == 29
    assert kept(archive) == recount(archive) and set(kept(archive)) == {(UNNAMED, "")}
    assert prune(archive, older_than=timedelta(0)) == 1 and kept(archive) == {} and len(archive) == 0


def test_prune_by_age_keeps_the_recent_entries_and_their_dates(tmp_path):
    archive = LMDBArchive(tmp_path / "a.lmdb")
    f = memoize(_block, archive=archive, name="block", version="1")
    for x in range(5):
        f(x)
    before = kept(archive)[("block", "1")]
    middle = datetime.now(timezone.utc)
    time.sleep(0.5)  # the cutoff falls in this gap even if prune starts a little late
    for x in range(5, 8):
        f(x)
    assert prune(archive, older_than=datetime.now(timezone.utc) - middle) == 5
    after = kept(archive)[("block", "1")]
    assert after[0] == 3 and after[2] > before[3]  # the first date moved to the oldest kept entry
    assert kept(archive) == recount(archive)


def _strip_catalog(path: str) -> None:
    """Make the archive look written by a combinators without summaries."""
    env = lmdb.open(path, max_dbs=4)
    with env.begin(write=True) as txn:
        for name in (b"summaries", b"catalog"):
            txn.drop(env.open_db(name, txn=txn), delete=True)
        txn.delete(b"catalog", db=env.open_db(b"meta", txn=txn))
    env.close()


def test_an_archive_without_summaries_is_recounted_once(tmp_path, capsys):
    path = str(tmp_path / "a.lmdb")
    with LMDBArchive(path) as archive:
        f = memoize(_block, archive=archive, name="block", version="1")
        for x in range(20):
            f(x)
        archive.put(b"raw", 1, version="r")
        truth = recount(archive)
    _strip_catalog(path)
    with LMDBArchive(path, readonly=True) as archive:  # read-only: recounted without storing
        assert not archive.catalog_current()
        assert {(s.function, s.version): (s.entries, s.size, s.first, s.last) for s in archive.summaries()} == truth
    assert main(["archive", "ls", path]) == 0
    first = capsys.readouterr()
    assert "counting its entries once" in first.err and "block" in first.out
    assert main(["archive", "stats", path]) == 0
    second = capsys.readouterr()
    assert second.err == "" and re.search(r"entries:\s+21", second.out)
    with LMDBArchive(path) as archive:
        assert kept(archive) == truth


def test_entries_written_before_their_namespace_was_registered_are_regrouped(tmp_path):
    archive = LMDBArchive(tmp_path / "a.lmdb")
    view = archive.namespace("late", "1")
    archive.put(view.prefix + b"k", 1, version="1")  # a raw put under a prefix nobody registered yet
    assert kept(archive) == recount(archive) and (UNNAMED, "1") in kept(archive)
    view.put(b"j", 2)  # registers the namespace: the first entry now belongs to it
    assert not archive.catalog_current()
    assert {(s.function, s.entries) for s in archive.summaries()} == {("late", 2)}
    assert kept(archive) == recount(archive)


def _features(x, label, scale=None):
    return np.full(3, float(x))


def test_ls_entries_lists_arguments_size_date_and_compute_seconds(tmp_path, capsys):
    path = str(tmp_path / "a.lmdb")
    f = memoize(_features, archive=LMDBArchive(path), name="feat", version="1")
    f(1, "a" * 500, scale=np.zeros((1000, 3), np.float32))
    f(2, "b")
    f.archive.archive.close()  # the command opens the archive itself
    assert main(["archive", "ls", path, "--entries", "fe*"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if re.match(r"  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line)]
    assert len(lines) == 2 and "feat  version 1" in out
    assert "1, 'aaaaaaaaaaaaaaaaa...aaaaaaaaaaaaaaaaaa', scale=float32[1000, 3]" in lines[0]
    assert lines[1].endswith("2, 'b'") and re.search(r"\d+ B\s+[\d.e-]+\s+2, 'b'", lines[1])
    info = f.info(2, "b")
    assert info.args == "2, 'b'" and info.size > 0
    f.archive.archive.close()
    assert main(["archive", "ls", path, "--entries", "feat", "--limit", "1"]) == 0
    assert capsys.readouterr().out.count("'b'") == 0
    assert main(["archive", "ls", path, "--entries", "nothing"]) == 2
    assert "no function matches 'nothing'" in capsys.readouterr().err


def test_the_arguments_repr_is_bounded():
    text = call_repr(tuple(range(100)), {f"k{i}": "x" * 100 for i in range(100)})
    assert len(text) == ARGS_LIMIT and text.endswith("...")
    assert call_repr((np.ones((2, 5), np.int16),), {}) == "int16[2, 5]"


def test_rm_without_a_filter_names_the_flags(tmp_path, capsys):
    path = str(tmp_path / "a.lmdb")
    with LMDBArchive(path) as archive:
        archive[b"k"] = 1
    assert main(["archive", "rm", path]) == 2
    err = capsys.readouterr().err
    assert all(flag in err for flag in ("--function", "--version", "--older-than"))
    assert len(LMDBArchive(path)) == 1
    with pytest.raises(InvalidArgument, match="at least one"):
        prune(LMDBArchive(path))


class Plain:
    def __init__(self, w):
        self.w = w

    def predict(self, x):
        return self.w * x


class Unhashable(Plain):
    __hash__ = None


@pytest.mark.parametrize("make_keymap", [hashmap, stringmap, keymap])
def test_a_keying_error_on_self_suggests_values_not_ignore(make_keymap):
    cls = Unhashable if make_keymap is keymap else Plain
    method = memoize(cls.predict, keymap=make_keymap(), name="predict")
    with pytest.raises(KeyingError) as raised:
        method(cls(2), 3)
    message = str(raised.value)
    for hint in ("'self'", "attrs", "dataclass", "name=", "keymap=", cls.__qualname__):
        assert hint in message
    assert "(use ignore=" not in message and "Do not use ignore='self'" in message


def test_other_arguments_keep_the_ignore_hint():
    f = memoize(lambda self, x: x, name="f")  # a function whose first parameter is not an instance
    with pytest.raises(KeyingError, match="'x'.*use ignore="):
        f(1, object())


@attrs.frozen
class AttrsModel:
    w: float

    @memoize(name="attrs-predict")
    def predict(self, x):
        return self.w * x


@dataclasses.dataclass(frozen=True)
class DataModel:
    w: float

    @memoize(name="data-predict")
    def predict(self, x):
        return self.w * x


@pytest.mark.parametrize("model", [AttrsModel, DataModel])
def test_attrs_and_dataclass_instances_key_by_their_fields(model):
    assert model(2.0).predict(3) == 6.0 and model(5.0).predict(3) == 15.0  # instances kept apart
    assert model(2.0).predict(3) == 6.0 and model.predict.cache_info().hits == 1  # equal fields share


def test_an_entry_overwritten_after_it_was_listed_is_not_deleted(tmp_path):
    archive = LMDBArchive(tmp_path / "a.lmdb")
    f = memoize(_block, archive=archive, name="block", version="1")
    for x in range(3):
        f(x)
    (group, _, _), = archive.catalog_groups()
    rows = list(archive.iter_catalog(group))
    f.recompute(1)  # another writer, between the listing and the delete
    assert archive.delete_rows(rows) == 2
    assert [row.args for row in archive.iter_catalog(group)] == ["1"] and f.lookup(1).shape == (2,)
    assert kept(archive) == recount(archive)
