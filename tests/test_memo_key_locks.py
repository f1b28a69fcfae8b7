"""One computation per key across processes: real processes, a real LMDB archive, runs counted in a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from combinators.memo import LMDBArchive, memoize

ROOT = Path(__file__).resolve().parents[1]

CALLER = """
import os, sys, time
from combinators.memo import LMDBArchive, memoize
path, runs, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])

def slow(x):
    with open(runs, "a") as log:
        log.write(f"{os.getpid()}\\n")
    time.sleep(seconds)
    return x * 10

f = memoize(slow, archive=LMDBArchive(path), name="slow", version="1")
print(f(7), flush=True)
"""


def _start(path: Path, runs: Path, seconds: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", CALLER, str(path), str(runs), str(seconds)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _runs(runs: Path) -> list[str]:
    return runs.read_text().split() if runs.exists() else []


def _wait_for_run(runs: Path, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(_runs(runs)) < count:
        assert time.monotonic() < deadline, "the first process never started computing"
        time.sleep(0.02)


def test_two_processes_asking_for_one_key_compute_it_once(tmp_path):
    path, runs = tmp_path / "a.lmdb", tmp_path / "runs.txt"
    LMDBArchive(path).close()
    first = _start(path, runs, 1.0)
    _wait_for_run(runs, 1)  # the first holds the key: the second asks while it computes
    second = _start(path, runs, 1.0)
    outs = [p.communicate(timeout=60) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    assert [out.strip() for out, _ in outs] == ["70", "70"]
    assert _runs(runs) == [str(first.pid)]  # computed once, by the first


def test_a_sigkilled_holder_does_not_block_the_other(tmp_path):
    path, runs = tmp_path / "a.lmdb", tmp_path / "runs.txt"
    LMDBArchive(path).close()
    holder = _start(path, runs, 1.0)
    _wait_for_run(runs, 1)
    waiter = _start(path, runs, 1.0)
    time.sleep(0.2)  # let the waiter reach the lock (the outcome is the same if it has not yet)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    out, err = waiter.communicate(timeout=60)  # generous: it computes 1 s once the holder is gone
    assert waiter.returncode == 0 and out.strip() == "70", err
    assert _runs(runs) == [str(holder.pid), str(waiter.pid)]  # the waiter computed, once
    with LMDBArchive(path) as archive:
        f = memoize(lambda x: -1, archive=archive, name="slow", version="1")
        assert f(7) == 70  # stored by the waiter


def test_threads_of_one_process_compute_a_key_once(tmp_path):
    calls = []

    def slow(x):
        calls.append(x)
        time.sleep(0.3)
        return x + 1

    f = memoize(slow, archive=LMDBArchive(tmp_path / "a.lmdb"), name="slow", version="1")
    results = []
    threads = [threading.Thread(target=lambda: results.append(f(1))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [2, 2, 2, 2] and calls == [1]
