"""Archives on disk: truncated files, read-only opens without write access, missing folders,
the bounded array-layout cache."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from combinators.errors import ArchiveError, ReadOnlyArchive, UnstorableValue
from combinators.memo import LMDBArchive, memoize
from combinators.memo import serializers

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534


def fill(path: Path, n: int = 300) -> None:
    with LMDBArchive(path, durability="process") as archive:
        for i in range(n):
            archive[b"%d" % i] = np.full(500, i)


READ_ALL = """
import sys
from combinators.errors import ArchiveError
from combinators.memo import LMDBArchive
try:
    archive = LMDBArchive(sys.argv[1], readonly=sys.argv[2] == "ro")
    print(sum(int(archive[b"%d" % i][0]) for i in range(300)))
except ArchiveError as error:
    print("ArchiveError:", error)
"""


@pytest.mark.parametrize("mode", ["ro", "rw"])
def test_a_truncated_file_raises_at_open_instead_of_sigbus(tmp_path, mode):
    path = tmp_path / "a.lmdb"
    fill(path)
    data = path / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", READ_ALL, str(path), mode], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, (result.returncode, result.stderr)  # -7 would be SIGBUS
    assert result.stdout.startswith("ArchiveError:") and "truncated" in result.stdout and str(path) in result.stdout


def read_as_another_user(directory: Path, name: str) -> tuple[int, str]:
    """Open ``directory/name`` read-only in a forked child that cannot write ``directory``.

    As root (who may write anywhere), the child first becomes nobody; it works
    from inside ``directory`` (its cwd), so the folders above need no access.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        code = 1
        try:
            os.close(read)
            os.chdir(directory)
            if os.geteuid() == 0:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            archive = LMDBArchive(name, readonly=True)
            text = f"{sum(int(archive[b'%d' % i][0]) for i in range(300))} {len(archive)}"
            archive.close()
            code = 0
        except BaseException as error:  # noqa: BLE001 - reported to the parent
            text = f"{type(error).__name__}: {error}"
        os.write(write, text.encode())
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), text


@pytest.mark.parametrize("keep_lock_file", [True, False])
def test_read_only_opens_without_write_access(tmp_path, keep_lock_file):
    path = tmp_path / "a.lmdb"
    fill(path)
    if not keep_lock_file:
        (path / "lock.mdb").unlink()
    files = sorted(p.name for p in path.iterdir())
    for file in path.iterdir():
        file.chmod(0o444)
    path.chmod(0o555)
    tmp_path.chmod(0o755)
    try:
        code, text = read_as_another_user(tmp_path, "a.lmdb")
    finally:
        path.chmod(0o755)
    assert (code, text) == (0, f"{sum(range(300))} 300")
    assert sorted(p.name for p in path.iterdir()) == files  # no lock file written


def test_a_missing_folder_is_created_at_construction(tmp_path):
    archive = LMDBArchive(tmp_path / "missing" / "dir" / "a.lmdb")
    assert (tmp_path / "missing" / "dir").is_dir()
    f = memoize(lambda x: x + 1, archive=archive, name="inc")
    assert f(1) == 2 and f.lookup(1) == 2


def test_an_impossible_place_raises_at_construction_naming_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ArchiveError, match=str(blocker / "dir")):
        LMDBArchive(blocker / "dir" / "a.lmdb")
    with pytest.raises(ArchiveError, match="no LMDB archive at .*ro.lmdb"):
        LMDBArchive(tmp_path / "ro.lmdb", readonly=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_folder_raises_at_construction(tmp_path):
    (tmp_path / "locked").mkdir(mode=stat.S_IRUSR | stat.S_IXUSR)
    with pytest.raises(ReadOnlyArchive, match="locked"):
        LMDBArchive(tmp_path / "locked" / "a.lmdb")


def test_the_array_layout_cache_is_bounded(tmp_path):
    with LMDBArchive(tmp_path / "a.lmdb", durability="process") as archive:
        for n in range(serializers._MAX_LAYOUTS + 100):
            archive[b"k"] = np.zeros(n)
            assert archive[b"k"].shape == (n,)
            assert len(serializers._LAYOUTS) <= serializers._MAX_LAYOUTS


def test_the_numpy_serializer_takes_nested_containers_and_gives_types_back(tmp_path):
    archive = LMDBArchive(tmp_path / "a.lmdb", serializer="numpy")
    arr, arr2 = np.arange(6.0).reshape(2, 3), np.array(["2020-01-01"], dtype="M8[D]")
    values = [{"a": arr, "b": [arr2]}, (arr, 1.5, "x"), {"n": None, "t": (True, b"b", np.int16(3), 2**63)}]
    f = memoize(lambda i: values[i], archive=archive, name="values")
    for i, value in enumerate(values):
        f(i)
    g = memoize(lambda i: values[i], archive=LMDBArchive(tmp_path / "a.lmdb", serializer="numpy"), name="values")
    out = [g(i) for i in range(3)]
    assert g.cache_info().loads == 3 and type(out[1]) is tuple and type(out[2]["t"][2]) is np.int16
    assert out[0]["a"].dtype == arr.dtype and np.array_equal(out[0]["a"], arr) and out[0]["b"][0].dtype == arr2.dtype
    assert out[1][1:] == (1.5, "x") and out[2]["t"][3] == 2**63 and out[2]["n"] is None
    with pytest.raises(UnstorableValue, match=r"return value of .*set"):
        memoize(lambda: {1, 2}, archive=archive, name="a set")()
