"""LMDB archives on real files: growth, processes, fork, faults, serializers, metadata."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import lmdb
import numpy as np
import pytest

from combinators.errors import ArchiveError, CorruptEntry, InvalidArgumentType, ReadOnlyArchive, SerializerMismatch
from combinators.memo import DictArchive, LMDBArchive, NullArchive
from combinators.memo.lmdb_archive import _HEAD

ROOT = Path(__file__).resolve().parents[1]
FORK = multiprocessing.get_context("fork")


def run_python(script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_round_trip_metadata_and_mapping_protocol(tmp_path):
    a = LMDBArchive(tmp_path / "a.lmdb")
    before = datetime.now(timezone.utc)
    a.put(b"x", np.arange(5.0), compute_seconds=1.5, version="v1")
    a[b"y"] = {"z": [1, 2]}
    assert np.array_equal(a[b"x"], np.arange(5.0)) and a[b"y"] == {"z": [1, 2]}
    info = a.info(b"x")
    assert before - timedelta(seconds=1) <= info.created <= datetime.now(timezone.utc)
    assert (info.compute_seconds, info.version) == (1.5, "v1") and info.size > 40
    assert sorted(a) == [b"x", b"y"] and len(a) == 2 and b"x" in a and b"q" not in a
    del a[b"x"]
    with pytest.raises(KeyError):
        del a[b"x"]
    with pytest.raises(KeyError):
        a[b"x"]
    with pytest.raises(InvalidArgumentType, match="keys are bytes, got str"):
        a["x"] = 1
    a.close()
    assert LMDBArchive(tmp_path / "a.lmdb")[b"y"] == {"z": [1, 2]}  # persisted


def test_returned_arrays_are_writable_copies(tmp_path):
    a = LMDBArchive(tmp_path / "a.lmdb")
    a[b"x"] = np.arange(6, dtype=np.int16).reshape(2, 3)
    first = a[b"x"]
    first[0, 0] = 99
    assert a[b"x"][0, 0] == 0 and a[b"x"].dtype == np.int16 and a[b"x"].shape == (2, 3)


def test_long_keys_beyond_the_lmdb_limit(tmp_path):
    a = LMDBArchive(tmp_path / "a.lmdb")
    long1, long2 = b"p" * 600 + b"1", b"p" * 600 + b"2"
    huge, edge = os.urandom(100_000), os.urandom(0xFFFF)
    a[long1], a[long2], a[huge], a[edge] = 1, 2, 3, 4
    assert (a[long1], a[long2], a[huge], a[edge]) == (1, 2, 3, 4)
    assert sorted(a) == sorted([long1, long2, huge, edge])
    del a[long1]
    assert long1 not in a and a[long2] == 2


def test_the_map_grows_by_itself(tmp_path):
    a = LMDBArchive(tmp_path / "a.lmdb", map_size=64 * 1024)
    for i in range(40):
        a[b"%d" % i] = np.full(4096, i, dtype=np.float64)  # 32 kB each, 1.3 MB in all
    assert all(a[b"%d" % i][0] == i for i in range(40))
    assert a.stat()["map_size"] >= 40 * 32 * 1024


def test_full_at_max_map_size_is_a_clear_error(tmp_path):
    a = LMDBArchive(tmp_path / "a.lmdb", map_size=64 * 1024, max_map_size=256 * 1024)
    with pytest.raises(ArchiveError, match="full at max_map_size"):
        for i in range(100):
            a[b"%d" % i] = np.zeros(4096)


GROW_SCRIPT = """
import sys, numpy as np
from combinators.memo import LMDBArchive
a = LMDBArchive(sys.argv[1], map_size=64 * 1024)
for i in range(50):
    a[b"other%d" % i] = np.full(4096, i)
print(a.stat()["map_size"])
"""


def test_a_map_grown_by_another_process_is_picked_up(tmp_path):
    path = str(tmp_path / "a.lmdb")
    a = LMDBArchive(path, map_size=64 * 1024)
    a[b"mine"] = 1  # this process's environment is open with the small map
    result = run_python(GROW_SCRIPT, path)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 64 * 1024
    assert a[b"other49"][0] == 49 and a[b"mine"] == 1
    for i in range(50):
        a[b"mine%d" % i] = np.zeros(4096)
    assert len(a) == 101


def _child_uses_archive(archive, queue):
    env_before = archive._env
    archive[b"child"] = os.getpid()
    queue.put((archive[b"parent"], archive._env is not env_before and archive._env is not None))


def test_an_environment_opened_before_fork_is_reopened_in_the_child(tmp_path):
    a = LMDBArchive(tmp_path / "a.lmdb")
    a[b"parent"] = "p"
    queue = FORK.Queue()
    child = FORK.Process(target=_child_uses_archive, args=(a, queue))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == ("p", True)
    assert a[b"child"] == child.pid and a[b"parent"] == "p"  # the parent's environment still works


def test_archives_pickle_by_path(tmp_path):
    a = LMDBArchive(tmp_path / "a.lmdb", serializer="json")
    a[b"k"] = [1]
    b = pickle.loads(pickle.dumps(a))
    assert b[b"k"] == [1] and b.serializer.name == "json"


def test_writing_to_a_read_only_archive_is_a_clear_error(tmp_path):
    LMDBArchive(tmp_path / "a.lmdb")[b"k"] = 1
    ro = LMDBArchive(tmp_path / "a.lmdb", readonly=True)
    assert ro[b"k"] == 1
    with pytest.raises(ReadOnlyArchive, match="read-only"):
        ro[b"k"] = 2
    with pytest.raises(ReadOnlyArchive):
        del ro[b"k"]
    with pytest.raises(ArchiveError, match="no LMDB archive"):
        LMDBArchive(tmp_path / "missing.lmdb", readonly=True)[b"k"]


def _raw_entries(path):
    env = lmdb.open(str(path), max_dbs=2)
    return env, env.open_db(b"entries")


def test_a_corrupted_value_raises_an_error_naming_the_key(tmp_path):
    path = tmp_path / "a.lmdb"
    a = LMDBArchive(path)
    a[b"good"], a[b"flipped"], a[b"garbled"] = 1, np.arange(10.0), {"x": 1}
    a.close()
    env, db = _raw_entries(path)
    with env.begin(write=True, db=db) as txn:
        record = bytearray(txn.get(b"kflipped"))
        record[-3] ^= 0xFF  # one bit-flipped byte in the payload
        txn.put(b"kflipped", bytes(record))
        record = bytearray(txn.get(b"kgarbled"))  # garbage that passes the checksum
        payload = b"P\x80\x05garbage"
        head = list(_HEAD.unpack_from(record, 0))
        import xxhash
        head[4], head[5] = len(payload), xxhash.xxh64_intdigest(payload)
        txn.put(b"kgarbled", _HEAD.pack(*head) + bytes(record[_HEAD.size:_HEAD.size + head[6]]) + payload)
    env.close()
    a = LMDBArchive(path)
    with pytest.raises(CorruptEntry, match=b"flipped".hex()):
        a[b"flipped"]
    with pytest.raises(CorruptEntry, match=b"garbled".hex() + ".*pickle cannot decode"):
        a[b"garbled"]
    assert a[b"good"] == 1  # the process and the other entries are fine


def test_the_serializer_is_recorded_and_enforced(tmp_path):
    LMDBArchive(tmp_path / "a.lmdb", serializer="json")[b"k"] = {"a": [1, 2.5, None]}
    with pytest.raises(SerializerMismatch, match="'json'.*'pickle'"):
        LMDBArchive(tmp_path / "a.lmdb")[b"k"]
    assert LMDBArchive(tmp_path / "a.lmdb", serializer="json")[b"k"] == {"a": [1, 2.5, None]}


class Boom:
    def __reduce__(self):
        return (os.mkdir, (BOOM_DIR,))


BOOM_DIR = ""


@pytest.mark.parametrize("name", ["json", "numpy"])
def test_no_pickle_serializers_never_unpickle(tmp_path, name):
    global BOOM_DIR
    BOOM_DIR = str(tmp_path / "pwned")
    path = tmp_path / f"{name}.lmdb"
    a = LMDBArchive(path, serializer=name)
    value = {"x": [1, 2]} if name == "json" else {"w": np.eye(2), "b": np.zeros(3, np.int8)}
    a[b"ok"] = value
    stored = a[b"ok"]
    assert stored == value if name == "json" else all(np.array_equal(stored[k], value[k]) for k in value)
    with pytest.raises(InvalidArgumentType, match=f'"{name}" serializer'):
        a[b"bad"] = object()
    # an entry holding a pickle (valid checksum): read with the no-pickle serializer, it never runs
    pickled = LMDBArchive(tmp_path / "evil.lmdb")
    pickled[b"evil"] = Boom()
    pickled.close()
    env, db = _raw_entries(tmp_path / "evil.lmdb")
    record = env.begin(db=db).get(b"kevil")
    env.close()
    a.close()
    env, db = _raw_entries(path)
    with env.begin(write=True, db=db) as txn:
        txn.put(b"kevil", record)
    env.close()
    with pytest.raises(CorruptEntry, match=f"{name} cannot decode"):
        LMDBArchive(path, serializer=name)[b"evil"]
    assert not os.path.exists(BOOM_DIR)


def test_numpy_serializer_round_trips_arrays(tmp_path):
    a = LMDBArchive(tmp_path / "a.lmdb", serializer="numpy")
    for i, array in enumerate([np.arange(6).reshape(2, 3), np.array(3.5), np.array(["a", "bc"]), np.zeros((0, 4))]):
        a[b"%d" % i] = array
        out = a[b"%d" % i]
        assert out.dtype == array.dtype and out.shape == array.shape and np.array_equal(out, array)


WRITER_SCRIPT = """
import sys, numpy as np
from combinators.memo import LMDBArchive
a = LMDBArchive(sys.argv[1])
i = 0
while True:
    a[b"%06d" % i] = np.full(2000, i, dtype=np.int64)
    print(i, flush=True)
    i += 1
"""


def test_a_writer_killed_with_sigkill_loses_no_committed_entry(tmp_path):
    path = str(tmp_path / "a.lmdb")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, path], env=env, stdout=subprocess.PIPE,
                              text=True)
    committed = []
    deadline = time.monotonic() + 60
    while len(committed) < 30 and time.monotonic() < deadline:
        committed.append(int(writer.stdout.readline()))
    writer.send_signal(signal.SIGKILL)
    committed += [int(line) for line in writer.stdout.read().split()]
    writer.wait(30)
    assert writer.returncode == -signal.SIGKILL and len(committed) >= 30
    a = LMDBArchive(path)
    keys = sorted(a)
    assert len(keys) in (len(committed), len(committed) + 1)  # at most one commit not yet reported
    for key in keys:  # every entry is whole
        value = a[key]
        assert value.shape == (2000,) and (value == int(key)).all()
    assert all(b"%06d" % i in a for i in committed)


def _square_block(x):
    return np.full(64, x * x, dtype=np.int64)


def _hammer(path, worker, n, queue):
    from combinators.memo import memoize

    f = memoize(_square_block, archive=LMDBArchive(path, map_size=64 * 1024), name="square", version="1")
    for i in range(n):
        x = (i * (worker + 1)) % n  # overlapping keys, in different orders
        assert f(x)[0] == x * x
    queue.put(f.cache_info().misses)


def test_four_processes_memoize_into_one_archive_at_once(tmp_path):
    path = str(tmp_path / "a.lmdb")
    n = 150
    queue = FORK.Queue()
    procs = [FORK.Process(target=_hammer, args=(path, w, n, queue)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    misses = [queue.get(timeout=5) for _ in procs]
    a = LMDBArchive(path)
    assert len(a) == n and n <= sum(misses)
    from combinators.memo import memoize

    f = memoize(_square_block, archive=a, name="square", version="1")
    assert all((f.lookup(x) == x * x).all() for x in range(n))
    assert f.cache_info().misses == 0


def test_dict_and_null_archives():
    d = DictArchive()
    d.put(b"k", 1, compute_seconds=2.0, version="v")
    assert d[b"k"] == 1 and d.info(b"k").compute_seconds == 2.0 and list(d) == [b"k"]
    n = NullArchive()
    n[b"k"] = 1
    assert b"k" not in n and len(n) == 0 and n.get(b"k", 5) == 5


def test_threads_share_one_archive_while_the_map_grows(tmp_path):
    import threading

    from combinators.memo import NoCache, memoize

    f = memoize(_square_block, archive=LMDBArchive(tmp_path / "a.lmdb", map_size=64 * 1024,
                                                   durability="process"), cache=NoCache(), name="t")
    errors = []

    def work(offset):
        try:
            for i in range(300):
                x = (i * 7 + offset) % 300
                assert f(x)[0] == x * x
        except Exception as error:  # reported to the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(f.archive) == 300 and f.archive.archive.stat()["map_size"] > 64 * 1024
