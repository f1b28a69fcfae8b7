"""The ZMQ executor's security: loopback by default, Curve keys for anything else, remote workers."""

import os
import stat
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

from combinators.errors import InvalidArgument, WorkerError
from combinators.execution.remote.processes import Processes
from combinators.execution.remote.worker import load_key, make_key
from combinators.execution.remote.zmq import ZMQ

ROOT = Path(__file__).resolve().parents[1]

# Remote workers cannot import this test module: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _listening_sockets() -> dict[int, str]:
    """Inode -> "address:port" of every TCP socket in LISTEN state on this host."""
    listening = {}
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state == "0A":
                address, port = local.split(":")
                listening[inode] = f"{_ip(address, width)}:{int(port, 16)}"
    return listening


def _ip(hex_address: str, width: int) -> str:
    raw = bytes.fromhex(hex_address)
    if width == 8:
        return ".".join(str(b) for b in raw[::-1])
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]  # host-order 32-bit words
    import ipaddress

    return str(ipaddress.IPv6Address(b"".join(words)))


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _listeners_of(pids) -> list[str]:
    listening = _listening_sockets()
    return [listening[inode] for pid in pids for inode in _socket_inodes(pid) if inode in listening]


def _worker_pids(session):
    return [process.pid for process in session._resources.processes]


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0]
    return host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1")


def test_nothing_listens_beyond_loopback():
    with ZMQ(workers=2).open() as zmq_session, Processes(workers=2).open() as pool:
        assert zmq_session.address.startswith("tcp://127.0.0.1:")
        assert pool.address.startswith("ipc://")
        assert list(zmq_session.submit(range, 3)) == list(pool.submit(range, 3)) == [0, 1, 2]
        pids = [os.getpid(), *_worker_pids(zmq_session), *_worker_pids(pool)]
        listeners = _listeners_of(pids)
        port = zmq_session.address.rsplit(":", 1)[1]
        assert any(address.endswith(f":{port}") for address in listeners)  # the check sees the session
        assert all(_is_loopback(address) for address in listeners), listeners
    assert not any(address.endswith(f":{port}") for address in _listening_sockets().values())  # closed


@pytest.mark.parametrize("address", ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://10.1.2.3:5555", "tcp://eth0:1"])
def test_binding_beyond_loopback_without_keys_is_refused(address):
    with pytest.raises(InvalidArgument, match="requires CurveZMQ keys") as info:
        ZMQ(address=address)
    assert "combinators worker --make-key" in str(info.value)
    assert address in str(info.value)


def test_make_key_writes_a_pair_that_loads(tmp_path):
    public, secret = make_key(tmp_path / "keys" / "cluster")
    assert public.name == "cluster.key" and secret.name == "cluster.key_secret"
    assert load_key(secret)[0] == load_key(public.with_suffix(".key_secret"))[0]
    with pytest.raises(InvalidArgument, match="no secret key"):
        load_key(public)
    with pytest.raises(InvalidArgument, match="cannot read"):
        load_key(tmp_path / "missing")


def test_a_secret_key_is_written_0600_and_refused_when_others_may_read_it(tmp_path):
    public, secret = make_key(tmp_path / "cluster")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.key", "cluster.key_secret"]  # no temp left
    for mode in (0o640, 0o604, 0o660):
        secret.chmod(mode)
        with pytest.raises(InvalidArgument, match=f"permissions {mode:04o}.*chmod 600"):
            load_key(secret)
    secret.chmod(0o400)
    assert load_key(secret)[0] == load_key(public.with_suffix(".key_secret"))[0]


def _start_worker(address: str, key: Path | None) -> subprocess.Popen:
    command = [sys.executable, "-m", "combinators.cli", "worker", "--connect", address]
    if key is not None:
        command += ["--key", str(key)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _source(seed, count):
    rng = np.random.default_rng(seed)
    return ({"i": i, "x": rng.random(i + 1)} for i in range(count))


def test_a_remote_worker_serves_with_curve_keys_on_loopback(tmp_path):
    _, secret = make_key(tmp_path / "cluster")
    executor = ZMQ(workers=0, address="tcp://127.0.0.1:*", key=str(secret), timeout=20)
    with executor.open() as session:
        worker = _start_worker(session.address, secret)
        try:
            received = list(session.submit(lambda: _source(3, 20)))
            (peer,) = session._peers.values()
            assert peer.pid == worker.pid and peer.process is None
        finally:
            session.close()
            assert worker.wait(timeout=10) == 0  # QUIT ends the worker
    expected = list(_source(3, 20))
    assert [item["i"] for item in received] == [item["i"] for item in expected]
    assert all(np.array_equal(a["x"], b["x"]) for a, b in zip(received, expected))


def test_a_worker_with_the_wrong_key_is_refused(tmp_path):
    _, secret = make_key(tmp_path / "cluster")
    _, other = make_key(tmp_path / "intruder")
    executor = ZMQ(workers=0, address="tcp://127.0.0.1:*", key=str(secret), timeout=1.5)
    with executor.open() as session:
        intruder = _start_worker(session.address, other)
        keyless = _start_worker(session.address, None)
        try:
            activation = session.submit(range, 3)
            with pytest.raises(WorkerError, match="no worker connected"):
                next(activation)
            assert not session._peers
            for process in (intruder, keyless):  # they give up by themselves
                assert process.wait(timeout=10) == 1
                assert b"handshake failed" in process.stderr.read()
        finally:
            for process in (intruder, keyless):
                process.kill()
                process.wait(timeout=10)


def test_a_remote_worker_killed_mid_stream_raises_worker_error(tmp_path):
    _, secret = make_key(tmp_path / "cluster")
    executor = ZMQ(workers=0, address="tcp://127.0.0.1:*", key=str(secret), timeout=20)
    with executor.open() as session:
        worker = _start_worker(session.address, secret)
        try:
            activation = session.submit(lambda: iter(lambda: (time.sleep(0.01), os.getpid())[1], None))
            assert next(activation) == worker.pid
            worker.send_signal(signal.SIGKILL)
            start = time.monotonic()
            with pytest.raises(WorkerError, match="remote worker"):
                for _ in range(10**6):
                    next(activation)
            assert time.monotonic() - start < 5
        finally:
            worker.kill()
            worker.wait(timeout=10)


def test_local_and_remote_workers_share_a_session(tmp_path):
    _, secret = make_key(tmp_path / "cluster")
    executor = ZMQ(workers=1, address="tcp://127.0.0.1:*", key=str(secret), timeout=20)
    with executor.open() as session:
        worker = _start_worker(session.address, secret)
        try:
            deadline = time.monotonic() + 20
            while len(session._peers) < 2 and time.monotonic() < deadline:
                session._receive(50)
            activations = [session.submit(lambda k=k: _source(k, 5)) for k in range(4)]
            assert {peer.process is None for peer in session._peers.values()} == {True, False}
            results = [list(activation) for activation in activations]
            assert [[item["i"] for item in result] for result in results] == [list(range(5))] * 4
        finally:
            session.close()
            worker.wait(timeout=10)


def test_a_session_without_remote_workers_turns_them_away():
    with ZMQ(workers=1).open() as session:
        stranger = _start_worker(session.address, None)
        try:
            deadline = time.monotonic() + 30  # a loaded machine may take seconds to start Python
            while stranger.poll() is None and time.monotonic() < deadline:
                session._receive(50)  # what waiting for items does
            assert stranger.returncode == 1  # its handshake failed: it lacks the run's token
            assert b"handshake failed" in stranger.stderr.read()
            assert list(session.submit(range, 2)) == [0, 1]
            assert all(peer.process is not None for peer in session._peers.values())
        finally:
            stranger.kill()
            stranger.wait(timeout=10)


def test_an_address_in_use_is_a_clear_error():
    with ZMQ(workers=1).open() as session:
        with pytest.raises(InvalidArgument, match="cannot bind 'tcp://127.0.0.1:.*in use"):
            ZMQ(workers=1, address=session.address).open()


class _Trap:
    """Unpickling this creates a file: what an attacker's pickle would do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_a_stranger_on_the_loopback_port_is_never_heard(tmp_path):
    import pickle

    import zmq

    from combinators.execution.remote import protocol

    trap = tmp_path / "unpickled"
    with ZMQ(workers=1).open() as session:
        activation = session.submit(lambda: iter(range(3)))
        context = zmq.Context()
        stranger = context.socket(zmq.DEALER)
        stranger.setsockopt(zmq.IDENTITY, b"intruder")
        stranger.connect(session.address)
        try:
            payload = pickle.dumps(_Trap(str(trap)))
            fault = [protocol.head(protocol.FAULT, 0), payload, b"x", b"y", b"z"]
            protocol.send(stranger, [protocol.head(protocol.HELLO, os.getpid()), b"host"])
            protocol.send(stranger, fault)
            deadline = time.monotonic() + 1
            while time.monotonic() < deadline:
                session._receive(50)  # what waiting for items does
            assert not stranger.poll(0)  # not even told to quit: its handshake never succeeded
            assert list(activation) == [0, 1, 2]
            assert not trap.exists()
            assert session.stats() == {"malformed": 0, "unjoined": 0, "rejected": 0}
        finally:
            stranger.close(linger=0)
            context.term()


def test_remote_workers_need_a_key_or_an_ipc_address():
    with pytest.raises(InvalidArgument, match="workers=0"):
        ZMQ(workers=0)
    assert not ZMQ(workers=1).accepts_remote_workers
    assert ZMQ(workers=0, address="ipc:///tmp/private/socket").accepts_remote_workers


def test_a_remote_worker_gives_up_without_a_session_but_not_once_joined(tmp_path):
    _, secret = make_key(tmp_path / "cluster")
    command = [sys.executable, "-m", "combinators.cli", "worker", "--key", str(secret), "--timeout", "0.5"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    lonely = subprocess.run([*command, "--connect", "tcp://127.0.0.1:9"], env=env, capture_output=True, timeout=30)
    assert lonely.returncode == 1 and b"no session answered" in lonely.stderr
    executor = ZMQ(workers=0, address="tcp://127.0.0.1:*", key=str(secret), timeout=20)
    with executor.open() as session:
        worker = subprocess.Popen([*command, "--connect", session.address], env=env)
        try:
            deadline = time.monotonic() + 20
            while not session._peers and time.monotonic() < deadline:
                session._receive(50)
            time.sleep(1.0)  # longer than its --timeout: joined workers stay
            assert worker.poll() is None
            assert list(session.submit(range, 3)) == [0, 1, 2]
        finally:
            session.close()
            assert worker.wait(timeout=10) == 0
