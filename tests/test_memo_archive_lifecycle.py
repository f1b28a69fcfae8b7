"""Archives whose files change under them: a folder deleted while open, files ending before their
free pages, a corrupted catalog; and a copied MRU cache. Real LMDB files, real processes."""

from __future__ import annotations

import copy
import multiprocessing
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import lmdb
import numpy as np

from combinators.cli import main
from combinators.memo import LMDBArchive, memoize
from combinators.memo.caches import MRUCache

ROOT = Path(__file__).resolve().parents[1]
FORK = multiprocessing.get_context("fork")


def _square(x):
    return x * x


def test_a_deleted_folder_is_not_served_nor_written_through_the_old_environment(tmp_path):
    path = tmp_path / "a.lmdb"
    calls = []

    def square(x):
        calls.append(x)
        return x * x

    f = memoize(square, archive=LMDBArchive(path), name="square", version="1")
    assert (f(2), f(3)) == (4, 9)
    shutil.rmtree(path)  # clearing the cache from a notebook
    fresh = LMDBArchive(path)
    assert len(fresh) == 0 and (path / "data.mdb").exists()  # not the deleted environment
    g = memoize(square, archive=fresh, name="square", version="1")
    assert g(2) == 4 and calls == [2, 3, 2]  # computed again, not served from the deleted files
    f.cache_clear()
    assert f(3) == 9 and calls == [2, 3, 2, 3]  # the old archive follows the new folder
    fresh.close()
    with LMDBArchive(path) as again:  # what was written since is in the new files
        assert len(again) == 2


def test_a_deleted_folder_is_recreated_on_the_next_write_of_the_old_archive(tmp_path):
    path = tmp_path / "a.lmdb"
    archive = LMDBArchive(path)
    archive[b"old"] = 1
    shutil.rmtree(path)
    archive[b"new"] = 2  # not into the deleted file
    archive.close()
    with LMDBArchive(path) as again:
        assert dict(again) == {b"new": 2}


def _free_pages_past_the_end(path: Path) -> None:
    """One transaction allocates pages at the end of the file and frees them before committing."""
    env = lmdb.open(str(path), max_dbs=4)
    with env.begin(write=True, db=env.open_db(b"scratch")) as txn:
        txn.put(b"big", b"x" * 400_000)
        txn.delete(b"big")
        txn.put(b"small", b"1")
    env.close()


def test_a_file_ending_before_its_free_pages_opens(tmp_path):
    path = tmp_path / "a.lmdb"
    with LMDBArchive(path, durability="process") as archive:
        for i in range(50):
            archive[b"%d" % i] = np.full(100, i)
    _free_pages_past_the_end(path)
    env = lmdb.open(str(path), readonly=True, max_dbs=4, lock=False)
    assert os.path.getsize(path / "data.mdb") < (env.info()["last_pgno"] + 1) * 4096  # the situation of item 15
    env.close()
    with LMDBArchive(path) as archive:
        assert len(archive) == 50 and all(int(archive[b"%d" % i][0]) == i for i in range(50))


def _writer(path: str, worker: int) -> None:
    archive = LMDBArchive(path, map_size=64 * 1024, durability="process")
    f = memoize(_square, archive=archive, name="square", version="V")
    g = memoize(_square, archive=archive, name="square", version="W")
    for i in range(300):
        f(np.full(i % 50 + 1, float(i + 1000 * worker)))
        if i % 4 == 0:
            g(float(i))


def test_two_writers_then_rm_by_version_leave_an_archive_that_opens(tmp_path):
    """Issue 23 item 15's recipe, with real processes and the command line."""
    path = str(tmp_path / "a.lmdb")
    for _ in range(2):
        procs = [FORK.Process(target=_writer, args=(path, w)) for w in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
            assert p.exitcode == 0
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cli = "import sys; from combinators.cli import main; sys.exit(main(sys.argv[1:]))"
        removed = subprocess.run([sys.executable, "-c", cli, "archive", "rm", path, "--version", "V"], env=env,
                                 capture_output=True, text=True, timeout=120)
        assert removed.returncode == 0 and removed.stdout.startswith("removed"), removed.stderr
        listed = subprocess.run([sys.executable, "-c", cli, "archive", "ls", path], env=env, capture_output=True,
                                text=True, timeout=120)
        assert listed.returncode == 0, listed.stderr
        with LMDBArchive(path) as archive:
            assert len(archive) == 75 and {info.version for _, info in archive.iter_info()} == {"W"}


def test_a_copied_mru_cache_keeps_its_own_recency_order():
    cache = MRUCache(maxsize=2)
    cache[1], cache[2] = "a", "b"
    other = copy.copy(cache)
    other[1]  # most recent in the copy only
    other[3] = "c"  # evicts the copy's most recent: 1
    cache[4] = "d"  # evicts the original's most recent: 2
    assert sorted(other) == [2, 3] and sorted(cache) == [1, 4]


def _fill_memoized(path: Path, n: int = 50) -> LMDBArchive:
    archive = LMDBArchive(path)
    f = memoize(_square, archive=archive, name="square", version="1")
    for i in range(n):
        f(i)
    return archive


def _damage(path: Path, db: bytes, how) -> None:
    """Change the catalog sub-database ``db`` with plain lmdb, as a crash or another tool might."""
    env = lmdb.open(str(path), max_dbs=4)
    with env.begin(write=True, db=env.open_db(db)) as txn:
        how(txn)
    env.close()


def _first_summary(txn, value) -> None:
    key = next(iter(txn.cursor()))[0]
    txn.put(key, value)


def test_a_three_byte_summary_is_rebuilt_from_the_entries(tmp_path, capsys):
    path = tmp_path / "a.lmdb"
    _fill_memoized(path).close()
    _damage(path, b"summaries", lambda txn: _first_summary(txn, b"abc"))
    code, out = main(["archive", "ls", str(path)]), capsys.readouterr().out
    assert code == 0 and "square" in out and " 50 " in out, out
    with LMDBArchive(path) as archive:
        assert archive.catalog_current() and [s.entries for s in archive.summaries()] == [50]


def test_a_huge_summary_count_neither_breaks_writes_nor_lies(tmp_path):
    path = tmp_path / "a.lmdb"
    _fill_memoized(path).close()
    _damage(path, b"summaries", lambda txn: _first_summary(txn, struct.pack("<qqd", 2**63 - 1, 10, 1.0) + b"1"))
    with LMDBArchive(path) as archive:
        g = memoize(_square, archive=archive, name="square", version="1")
        assert g(1000) == 1000_000  # the write goes through
        del g.archive[g.key(3)]
        assert [s.entries for s in archive.summaries()] == [50] and archive.catalog_current()


def test_dropped_catalog_rows_do_not_hide_entries_from_rm(tmp_path, capsys):
    path = tmp_path / "a.lmdb"
    _fill_memoized(path).close()

    def drop_rows(txn) -> None:
        for key in [bytes(k) for k, _ in txn.cursor()][:41]:
            txn.delete(key)

    _damage(path, b"catalog", drop_rows)
    code, out = main(["archive", "rm", str(path), "--older-than", "0s"]), capsys.readouterr().out
    assert code == 0 and out.strip() == "removed 50 entries", out
    with LMDBArchive(path) as archive:
        assert len(archive) == 0
