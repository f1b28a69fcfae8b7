"""Limits enforced on write (max_bytes, max_entries, evicting by last access) and ``archive prune``,
on real LMDB files, across real processes."""

from __future__ import annotations

import multiprocessing
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from combinators.cli import main
from combinators.errors import InvalidArgument
from combinators.memo import LMDBArchive, memoize

FORK = multiprocessing.get_context("fork")


def _cli(capsys, *args: str) -> tuple[int, str]:
    code, captured = main(list(args)), capsys.readouterr()
    return code, captured.out + captured.err


def test_max_entries_evicts_the_least_recently_used_on_write(tmp_path):
    with LMDBArchive(tmp_path / "a.lmdb", max_entries=3) as archive:
        for i in range(3):
            archive[b"%d" % i] = i
        assert archive[b"0"] == 0  # read: 0 is now more recent than 1 and 2
        archive[b"3"] = 3
        archive[b"4"] = 4
        assert sorted(archive) == [b"0", b"3", b"4"]
        assert [s.entries for s in archive.summaries()] == [3] and archive.catalog_current()


def test_keys_of_every_length_are_tracked_and_evicted_by_last_access(tmp_path):
    # the recency index once put the stored key behind the access time: a key of LMDB's longest length
    # then failed to store (MDB_BAD_VALSIZE), found by the archive state machine
    with LMDBArchive(tmp_path / "a.lmdb", max_entries=2) as archive:
        longest = archive._environment().max_key_size() - 1
        keys = [bytes([65 + i]) * n for i, n in enumerate((longest - 1, longest, 3 * longest))]
        for i, key in enumerate(keys):
            archive[key] = i
        assert sorted(archive) == sorted(keys[1:]) and [archive[k] for k in keys[1:]] == [1, 2]


def test_max_bytes_keeps_the_stored_bytes_under_the_limit(tmp_path):
    path = tmp_path / "a.lmdb"
    with LMDBArchive(path, max_bytes=50_000) as archive:
        f = memoize(lambda x: np.full(1000, x, np.float64), archive=archive, name="block", version="1")
        for x in range(30):
            f(x)
        stored = sum(info.size for _, info in archive.iter_info())
        assert stored <= 50_000 and len(archive) == stored // next(archive.iter_info())[1].size
        kept = sorted(int(archive[key][0]) for key in archive)
        assert kept == list(range(30 - len(kept), 30))  # the most recent ones


def test_a_value_larger_than_max_bytes_is_kept_alone(tmp_path):
    with LMDBArchive(tmp_path / "a.lmdb", max_bytes=1000) as archive:
        archive[b"small"] = b"x"
        archive[b"big"] = np.zeros(10_000)
        assert list(archive) == [b"big"]


def _reader(path: str, keys: list[bytes]) -> None:
    archive = LMDBArchive(path, max_entries=100)
    for key in keys:
        archive[key]
    archive.close()  # the reads' last accesses are written at close


def test_reads_in_another_process_count_as_use(tmp_path):
    path = str(tmp_path / "a.lmdb")
    with LMDBArchive(path) as archive:
        for i in range(6):
            archive[b"%d" % i] = i
    time.sleep(0.01)
    p = FORK.Process(target=_reader, args=(path, [b"0", b"1"]))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    with LMDBArchive(path, max_entries=4) as archive:
        archive[b"new"] = 1
        assert sorted(archive) == [b"0", b"1", b"5", b"new"]


def test_archive_prune_by_size_count_and_unused_age(tmp_path, capsys):
    path = tmp_path / "a.lmdb"
    with LMDBArchive(path) as archive:
        for i in range(20):
            archive[b"%02d" % i] = np.full(100, i)
    code, out = _cli(capsys, "archive", "prune", str(path), "--max-entries", "15", "--dry-run")
    assert code == 0 and out.startswith("would remove 5 entries")
    code, out = _cli(capsys, "archive", "prune", str(path), "--max-entries", "15")
    assert code == 0 and out.startswith("removed 5 entries")
    with LMDBArchive(path) as archive:
        assert sorted(archive) == [b"%02d" % i for i in range(5, 20)]
        one = next(archive.iter_info())[1].size
    code, out = _cli(capsys, "archive", "prune", str(path), "--max-bytes", str(10 * one))
    assert code == 0 and out.startswith("removed 5 entries")
    code, out = _cli(capsys, "archive", "prune", str(path), "--unused-for", "1h")
    assert code == 0 and out.startswith("removed 0 entries")
    with LMDBArchive(path) as archive:
        archive[b"fresh"] = 1
        assert archive.evict(unused_before=datetime.now(timezone.utc) - timedelta(seconds=3600))[0] == 0
        assert archive.evict(unused_before=datetime.now(timezone.utc) + timedelta(seconds=1))[0] == 11
        assert len(archive) == 0
    code, out = _cli(capsys, "archive", "prune", str(path))
    assert code == 2 and "--max-bytes" in out


def test_limits_are_checked(tmp_path):
    with pytest.raises(InvalidArgument, match="max_entries.*0"):
        LMDBArchive(tmp_path / "a.lmdb", max_entries=0)
