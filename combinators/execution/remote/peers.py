"""The workers of a remote session: who may join, each as the session sees it, and their release.

Membership comes before anything: with a key, the session's socket is a
CurveZMQ server that admits only clients holding the same key pair
(`_curve_server`); without one, a ZMTP PLAIN server that admits only clients
holding the run's token (`_plain_server`), which only its local workers get.
Each worker that joined is a `_Peer`; `_Resources` holds what the session must
release (socket, authenticator, local processes), kept apart from the session
so that a finalizer can reap without it (see
`combinators.execution.remote.session.RemoteSession.close`): workers are asked to quit, then
terminated and killed (`_reap`), within about a second.
"""

from __future__ import annotations

import contextlib
import hmac
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from typing import Any, Callable

import zmq
from zmq.auth.thread import ThreadAuthenticator

from combinators.execution.remote import protocol

#: seconds given to workers to quit by themselves, then to die of SIGTERM, at close
QUIT_GRACE = 0.4
KILL_GRACE = 0.3


class _Peer:
    """One worker as the session sees it."""

    __slots__ = ("identity", "process", "pid", "ready", "pending", "active", "name", "plans", "outbox")

    def __init__(self, identity: Any, name: str, process: multiprocessing.process.BaseProcess | None):
        self.identity = identity  # its key in the session's peers: the routing id once it joined
        self.process = process
        self.pid: int | None = None
        self.ready = False
        self.pending: list[list[bytes]] = []  # messages waiting for its HELLO
        self.active: set[int] = set()
        self.name = name
        self.plans: set[int] = set()  # plan numbers sent to it (or in its outbox)
        self.outbox: list[tuple[bytes, Any]] = []  # PLAN messages and starts not sent yet: (row or b"", extra)

    def describe(self) -> str:
        where = "local" if self.process is not None else "remote"
        return f"{where} worker {self.name} (pid {self.pid})"


class _Resources:
    """What a session must release; kept apart from it so a finalizer can reap without it."""

    def __init__(self, context: zmq.Context, sock: zmq.Socket):
        self.context = context
        self.socket = sock
        self.auth: ThreadAuthenticator | None = None
        self.peers: dict[bytes, _Peer] = {}  # the live workers, told to quit at release
        self.processes: list[multiprocessing.process.BaseProcess] = []  # every local worker started
        self.cleanup: Callable[[], None] | None = None
        self.owner = os.getpid()

    def release(self) -> None:
        if os.getpid() != self.owner:  # a forked child exiting must not reap its parent's workers
            return
        for peer in self.peers.values():
            if peer.ready:
                try:
                    protocol.send(self.socket, [peer.identity, protocol.head(protocol.QUIT)])
                except zmq.ZMQError:
                    pass
        _reap(self.processes)
        endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.socket.close(linger=0)
        if self.auth is not None:
            self.auth.stop()
        self.context.term()
        if endpoint.startswith("ipc://"):  # libzmq leaves the socket file behind
            with contextlib.suppress(FileNotFoundError):
                os.unlink(endpoint.removeprefix("ipc://"))
        if self.cleanup is not None:
            self.cleanup()


def _reap(processes: list[multiprocessing.process.BaseProcess]) -> None:
    """Wait for ``processes`` to exit, then SIGTERM, then SIGKILL the stragglers (about a second at most)."""
    for stop in ("terminate", "kill"):
        for process in _wait_all(processes, QUIT_GRACE if stop == "terminate" else KILL_GRACE):
            getattr(process, stop)()
    _wait_all(processes, KILL_GRACE)
    for process in processes:
        if process.exitcode is not None:
            process.close()


def _wait_all(processes: list[multiprocessing.process.BaseProcess], timeout: float) -> list:
    """Wait up to ``timeout`` seconds for every process to exit; those still running."""
    deadline = time.monotonic() + timeout
    while True:
        running = [process for process in processes if process._popen is not None and process.exitcode is None]
        remaining = deadline - time.monotonic()
        if not running or remaining <= 0:
            return running
        multiprocessing.connection.wait([process.sentinel for process in running], remaining)



def _exit_description(process: multiprocessing.process.BaseProcess | None) -> str:
    if process is None:
        return "its connection dropped"
    process.join(timeout=0.1)
    code = process.exitcode
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    if code == 0:  # workers exit by themselves only when told to, or when their connection drops
        silence = protocol.HEARTBEAT_TIMEOUT_MS / 1000
        return f"exited with status 0: its connection dropped (it sent no heartbeat for {silence:g} s)"
    return f"exited with status {code}"



def _curve_server(context: zmq.Context, sock: zmq.Socket, key: tuple[bytes, bytes]) -> ThreadAuthenticator:
    """Make ``sock`` a CurveZMQ server that admits only clients holding the same key pair."""
    public, secret = key
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve_callback("*", credentials_provider=_SameKey(public))
    sock.curve_server = True
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    return auth


def _plain_server(context: zmq.Context, sock: zmq.Socket, token: str) -> ThreadAuthenticator:
    """Make ``sock`` a ZMTP PLAIN server that admits only clients whose password is ``token``.

    The token reaches local workers as an argument of their process (in memory under fork, over
    multiprocessing's pipe under spawn and forkserver), never on a command line or in the environment.
    """
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_plain("*", {protocol.PLAIN_USER: _Secret(token)})
    sock.plain_server = True
    return auth


class _Secret(str):
    """A password compared in constant time."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and hmac.compare_digest(self.encode(), other.encode())

    __hash__ = str.__hash__


class _SameKey:
    """ZAP credentials provider: a client is admitted when its public key is the session's."""

    def __init__(self, public: bytes):
        self._public = public

    def callback(self, domain: str, key: bytes) -> bool:
        return key == self._public
