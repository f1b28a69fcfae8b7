"""Strangers on this host against a session: they get no plan, nothing of theirs is unpickled, junk is counted."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle

from combinators import chain, iterate, stream
from combinators.execution.zmq import ZMQ

STRANGER = Path(__file__).with_name("stranger.py")

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _count(n):
    yield from range(n)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _impersonate(address, tmp_path, seconds):
    marker, out = tmp_path / "unpickled", tmp_path / "received"
    command = [sys.executable, str(STRANGER), "impersonate", address, str(os.getpid()), str(marker), str(out), str(seconds)]
    return subprocess.Popen(command), marker, out


def test_a_stranger_who_connects_first_as_a_local_worker_gets_nothing(tmp_path):
    # it connects before the session binds (ZeroMQ retries), so it wins the race against the spawned
    # workers, and it knows their identities and pids; it lacks the run's secret
    address = f"tcp://127.0.0.1:{_free_port()}"
    stranger, marker, out = _impersonate(address, tmp_path, 3.0)
    try:
        time.sleep(0.3)
        executor = ZMQ(workers=2, address=address, start_method="spawn")
        with iterate(chain(stream(_count, 200), stream(_count, 100)), seed=0, executor=executor) as run:
            items = list(run)
            time.sleep(1.0)  # while the stranger keeps trying
    finally:
        stranger.wait(timeout=30)
    assert items == [*range(200), *range(100)]
    assert out.read_text() == "0"  # no plan, no QUIT: the connection never got past the handshake
    assert not marker.exists()


def test_junk_from_anyone_is_dropped_and_counted(tmp_path):
    # an ipc:// session invites remote workers, so the stranger's messages do reach the session
    address = f"ipc://{tmp_path}/session"
    stranger, marker, out = _impersonate(address, tmp_path, 1.5)
    try:
        time.sleep(0.3)
        executor = ZMQ(workers=2, address=address, start_method="fork")
        with iterate(stream(_count, 200), seed=0, executor=executor) as run:
            items = list(run)
            deadline = time.monotonic() + 10
            while run.executor_stats()["malformed"] < 8 and time.monotonic() < deadline:
                run._session._receive(50)  # what waiting for items does
            stats = run.executor_stats()
    finally:
        stranger.wait(timeout=30)
    assert items == list(range(200))
    assert stats["malformed"] >= 8 and stats["unjoined"] >= 8 and stats["rejected"] >= 1, stats
    assert not marker.exists()
