"""The consumer side of the parallel executors: a session that runs activations in worker processes.

`RemoteSession` binds a ZeroMQ ROUTER socket, starts its local worker
processes (`multiprocessing`, any start method) and accepts remote workers
that connect (``combinators worker``) when invited. Membership comes before
anything: local workers hold a per-run token (checked in the ZMTP PLAIN
handshake when there is no key, and in their HELLO), remote workers a CurveZMQ
key; no plan goes to, and nothing is unpickled from, a peer that has not
joined, and malformed messages are dropped and counted (`RemoteSession.stats`).
``submit`` ships ``(fn, args)`` with cloudpickle to the least-loaded worker
at once; items come back coalesced in messages, under per-activation credit
(`combinators.execution.remote.protocol`), and are decoded only when the consumer
reaches them.

The consumer thread does all socket work itself, inside ``next()``: there is
no background thread (only pyzmq's ZAP authenticator, which checks handshakes). While it waits it watches every local worker's process
sentinel, and probes remote workers every `PROBE_INTERVAL` seconds, so a dead
worker raises `WorkerError` within a second or so. `RemoteSession.close` (also
run by garbage collection and at interpreter exit) asks workers to quit, then
terminates and kills stragglers, closes the socket and removes the ``ipc``
directory, within about a second.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import multiprocessing
import multiprocessing.connection
import hmac
import os
import pickle
import secrets
import signal
import threading
import time
import weakref
from typing import Any, Callable, Iterable, Union

import attrs
import numpy as np
import zmq
from zmq.auth.thread import ThreadAuthenticator

from combinators.errors import InvalidArgument, TransportError, WorkerError
from combinators.execution.remote import lifetime as _lifetime, protocol
from combinators.execution.base import Activation, Session, ship_activation
from combinators.execution.leaf import activate_leaf, leaf_kind, probed_leaf, seeks
from combinators.execution.remote.wire import unpack_items
from combinators.execution.remote.worker import LocalWorker, local_worker_main

#: where a leaf's next activation runs (`RemoteSession.runs_inline`): False (started by the session), True (in
#: the consumer), or a probe: in the consumer, timed, the probe called with ``(items, seconds)`` at its end
Placement = Union[bool, Callable[[int, float], None]]

__all__ = ["SessionOptions", "RemoteSession", "RemoteActivation"]

#: seconds between liveness probes of remote workers while the consumer waits
PROBE_INTERVAL = 0.5
#: seconds given to workers to quit by themselves, then to die of SIGTERM, at close
QUIT_GRACE = 0.4
KILL_GRACE = 0.3
#: room above ``frame_bytes`` for the short frames of a message
_MAX_HEAD_BYTES = 4096
#: starts waiting in outboxes before the consumer sends them without having to wait for items
START_BATCH = 4
#: an activation's first credit window; it doubles with each credit, up to the prefetch limits
INITIAL_WINDOW_ITEMS = 16
INITIAL_WINDOW_BYTES = 1 << 20
#: a leaf runs in the consumer when its items take less than this many times as long to make (in the source)
#: as to move (starting, packing, sending: what receiving them costs the consumer, again), as its workers measured
INLINE_RATIO = 2.0
#: ... over at least this many of its items
INLINE_MIN_ITEMS = 16
#: a running activation of a leaf that does not seek moves to the consumer only while it has given at most
#: this many items (the consumer makes them again to skip them: cheap, since its leaf was found cheap)
MOVE_MAX_SKIP = 256


@attrs.frozen
class SessionOptions:
    """How a `RemoteSession` binds, secures and feeds its workers (built by the executors)."""

    bind: str
    workers: int
    start_method: str | None
    prefetch: int
    prefetch_bytes: int
    key: tuple[bytes, bytes] | None = attrs.field(default=None, repr=False)
    accept_remote: bool = False
    timeout: float = 60.0
    cleanup: Callable[[], None] | None = None
    frame_bytes: int = attrs.field(factory=lambda: protocol.FRAME_BYTES)
    inline: bool = False  # run cheap leaves in the consumer (`RemoteSession.runs_inline`)


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


class RemoteSession(Session):
    """A session whose activations run in worker processes; see the module docstring.

    Built by `Processes.open` and `ZMQ.open`; ``address`` is the bound endpoint.
    Raises `InvalidArgument` when ``options.bind`` cannot be bound, and
    `WorkerError` when local workers do not connect within ``options.timeout``.

    >>> options = SessionOptions("tcp://127.0.0.1:*", workers=1, start_method=None, prefetch=64, prefetch_bytes=1 << 20)
    >>> with RemoteSession(options) as session:
    ...     squares = session.submit(lambda n: (i * i for i in range(n)), 4)
    ...     list(squares)
    [0, 1, 4, 9]
    """

    def __init__(self, options: SessionOptions):
        self._options = options
        context = zmq.Context()
        sock = context.socket(zmq.ROUTER)
        self._resources = resources = _Resources(context, sock)
        self._finalizer = weakref.finalize(self, resources.release)
        _lifetime.on_sigterm(self._finalizer)
        resources.cleanup = options.cleanup
        protocol.configure(sock)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # no frame beyond the workers' own limit, from anyone (before a peer joins, this bounds what
        # its handshake or its messages can make libzmq allocate)
        sock.setsockopt(zmq.MAXMSGSIZE, options.frame_bytes + _MAX_HEAD_BYTES)
        # membership before anything: with a key, CurveZMQ; else, unless the session invites remote
        # workers over ipc, a per-run secret that only the local workers hold (ZAP checks it in the
        # handshake, so a stranger's connection is closed before any message of theirs is delivered)
        self._token = secrets.token_hex(32)  # local workers also show it in their HELLO
        self._plain = options.key is None and not options.accept_remote
        if options.key is not None:
            resources.auth = _curve_server(context, sock, options.key)
        elif self._plain:
            resources.auth = _plain_server(context, sock, self._token)
        try:
            sock.bind(options.bind)
        except zmq.ZMQError as error:
            self._finalizer()
            msg = f"cannot bind {options.bind!r}: {error}"
            raise InvalidArgument(msg) from None
        self.address: str = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        if self.address.startswith("ipc://"):  # only this user may connect (a directory can narrow it more)
            with contextlib.suppress(OSError):
                os.chmod(self.address.removeprefix("ipc://"), 0o600)
        self._socket = sock
        self._peers = resources.peers
        self._activations: weakref.WeakValueDictionary[int, RemoteActivation] = weakref.WeakValueDictionary()
        self._unassigned: collections.deque[tuple[int, list[bytes]]] = collections.deque()
        self._orphans: list[tuple[_Peer, int]] = []
        self._ids = itertools.count()
        self._remote_names = itertools.count()
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)
        self._sentinels: dict[int, _Peer] = {}
        #: messages dropped: ``malformed`` (bad frame count, head or kind), ``unjoined`` (from a peer that
        #: has not joined), ``rejected`` (HELLOs turned away); see `stats`
        self.counts: collections.Counter[str] = collections.Counter(malformed=0, unjoined=0, rejected=0)
        self._last_probe = time.monotonic()
        self._opened = time.monotonic()
        self._plans: dict[int, tuple[int, Any]] = {}  # id(plan): (number, plan)
        self._plan_pickles: list[bytes | None] = []  # by number (None: never started in a worker)
        self._outgoing: list[_Peer] = []  # peers with starts waiting to be sent
        self._waiting_starts = 0
        self._unsent: set[int] = set()  # activations whose start waits in an outbox
        #: per plan number, what its activations cost in workers: [activations, items, ns making, ns moving];
        #: ``kind_costs`` the same per kind of leaf (`leaf_kind`: same source function and transforms)
        self.costs: dict[int, list[int]] = {}
        self.kind_costs: dict[Any, list[int]] = {}
        self._kinds: dict[int, Any] = {}  # plan number: its leaf's kind (None: not a leaf's plan)
        self._inline: set[int] = set()  # plan numbers that run in the consumer, measured or probed
        self._probed_costs: dict[int, list[float]] = {}  # inline by their kind's costs: [items, seconds] probed
        self._refused: set[int] = set()  # probed too slow: placed by their own costs only
        self.flow = _Flow()
        self._start_local_workers()
        self._await_local_workers()

    def _start_local_workers(self) -> None:
        options = self._options
        context = multiprocessing.get_context(options.start_method)
        connect = _local_address(self.address)
        # the kernel ties PR_SET_PDEATHSIG to the thread that starts a worker: only the main thread (or
        # the forkserver) lives as long as the consumer; elsewhere workers check that the consumer lives
        main = threading.current_thread() is threading.main_thread()
        die_with_parent = main or context.get_start_method() == "forkserver"
        for index in range(options.workers):
            name = f"L{index}"
            spec = LocalWorker(connect, name, options.key, self._token, self._plain, os.getpid(), die_with_parent)
            process = context.Process(
                target=local_worker_main, args=(spec,),
                name=f"combinators-worker-{index}", daemon=True,
            )
            process.start()
            self._resources.processes.append(process)
            peer = _Peer(("local", name), name, process)  # keyed by its routing id once it joins
            peer.pid = process.pid
            self._peers[peer.identity] = peer
            self._sentinels[process.sentinel] = peer
            self._poller.register(process.sentinel, zmq.POLLIN)

    def _await_local_workers(self) -> None:
        """Wait until every local worker said HELLO (or died), so ``submit`` starts work at once."""
        deadline = time.monotonic() + self._options.timeout
        while any(not peer.ready for peer in self._peers.values() if peer.process is not None):
            if time.monotonic() > deadline:
                self.close()
                msg = f"local workers did not connect to {self.address} within {self._options.timeout:g} s"
                raise WorkerError(msg)
            self._receive(100)
        if self._options.workers and not self._peers:
            self.close()
            msg = f"all {self._options.workers} local workers died at startup (see their stderr)"
            raise WorkerError(msg)

    # -- submitting -----------------------------------------------------------------
    def submit(self, fn: Callable[..., Iterable[Any]], *args: Any) -> RemoteActivation:
        """Start ``fn(*args)`` in the least-loaded worker now; an iterator over its items."""
        if not self._finalizer.alive:
            msg = "submit() on a closed session"
            raise WorkerError(msg)
        return self._submit_pickled(ship_activation(fn, args, "a worker"), None)

    def _submit_pickled(self, plan: bytes, limit: int | None) -> RemoteActivation:
        activation = self._new_activation(limit)
        activation_id = activation._id
        window_items, window_bytes = activation._window_items, activation._window_bytes
        frame_bytes = self._options.frame_bytes
        head = protocol.flow_head(protocol.START, activation_id, frame_bytes, limit or 0, window_items, window_bytes)
        message = [head, plan]
        peer = self._least_loaded()
        if peer is None:
            if not self._accepts_remote():
                activation._fail(WorkerError("every worker of this session has died; no worker can run the activation"))
                return activation
            self._unassigned.append((activation_id, message))
        else:
            self._assign(peer, activation, message)
        return activation

    def _new_activation(self, limit: int | None) -> RemoteActivation:
        activation = RemoteActivation(self, next(self._ids), limit)
        self._activations[activation._id] = activation
        self.flow.started += 1
        return activation

    def start(self, plan: tuple[Callable[..., Iterable[Any]], tuple[Any, ...]], extra: tuple[Any, ...],
              limit: int | None = None) -> RemoteActivation:
        """Start ``fn(*args, *extra)`` (``plan = (fn, args)``) in the least-loaded worker, producing at most
        ``limit`` items. ``plan`` is pickled once per session and sent once per worker; the start itself
        waits in the worker's outbox until `START_BATCH` starts wait or the consumer waits for its
        items (`flush`), so that several starts travel in one message."""
        if not self._finalizer.alive:
            msg = "start() on a closed session"
            raise WorkerError(msg)
        number = self._number(plan)
        if self._plan_pickles[number] is None:
            self._plan_pickles[number] = ship_activation(*plan, "a worker")
        peer = self._least_loaded()
        if peer is None or not peer.ready:  # no worker has joined yet: a whole START, sent when one does
            fn, args = plan
            return self._submit_pickled(ship_activation(fn, (*args, *extra), "a worker"), limit)
        activation = self._new_activation(limit)
        activation._peer = peer
        if plan[0] is activate_leaf and self._options.inline:  # it may move to the consumer (`RemoteActivation._move`)
            activation._leaf = (number, plan[1], extra)
            activation._skip_limit = MOVE_MAX_SKIP if not seeks(plan[1][0]) else 1 << 62
        peer.active.add(activation._id)
        if not peer.outbox:
            self._outgoing.append(peer)
        if number not in peer.plans:
            peer.plans.add(number)
            peer.outbox.append((b"", number))
        row = protocol.START_ROW.pack(
            activation._id, number, limit or 0, activation._window_items, activation._window_bytes,
            self._options.frame_bytes,
        )
        peer.outbox.append((row, extra))
        self._waiting_starts += 1
        self._unsent.add(activation._id)
        return activation

    def _number(self, plan: tuple[Callable[..., Iterable[Any]], tuple[Any, ...]]) -> int:
        """The number of ``plan`` in this session (given at first sight, with its leaf's kind; the plan is
        pickled only when first started in a worker)."""
        known = self._plans.get(id(plan))
        if known is None or known[1] is not plan:
            known = self._plans[id(plan)] = (len(self._plan_pickles), plan)
            self._plan_pickles.append(None)
            self._kinds[known[0]] = _kind(plan) if self._options.inline else None
        return known[0]

    def runs_here(
        self, plan: tuple[Callable[..., Iterable[Any]], tuple[Any, ...]], args: tuple[Any, ...],
    ) -> tuple[Callable[..., Iterable[Any]], tuple[Any, ...]] | None:
        """`Session.runs_here`: as `runs_inline` says, `activate_leaf` in the consumer, or `probed_leaf`
        timing the source for a probe; None to start it in a worker."""
        placement = self.runs_inline(plan)
        if not placement:
            return None
        return (activate_leaf, args) if placement is True else (probed_leaf, (placement, *args))

    def runs_inline(self, plan: tuple[Callable[..., Iterable[Any]], tuple[Any, ...]]) -> Placement:
        """Whether the next activation of ``plan`` (a leaf's, as for `start`) should run in the consumer.

        With ``options.inline``, a leaf whose items take its workers less than
        `INLINE_RATIO` times as long to make as to move (over at least
        `INLINE_MIN_ITEMS` of its items, from `protocol.COSTS` reports; making
        on the wall clock, moving in CPU time) is cheaper to run in the consumer
        than to receive: from then
        on, its activations run there (True; counted in ``activations_inline``).
        A leaf not measured yet whose kind (`leaf_kind`: the same source function
        and transforms, other arguments) measured so runs there too, but its
        activations are *probes* (a callable is returned) until they gave
        `INLINE_MIN_ITEMS` items: the consumer times the source (`probed_leaf`)
        and calls the probe with ``(items, seconds)``; a leaf that took
        `INLINE_RATIO` times its kind's moving cost or more goes back to
        workers. Otherwise False: start it here. Where a leaf runs never changes
        its items.
        """
        if not self._options.inline:
            return False
        number = self._number(plan)
        if self.moves_inline(number):
            self.flow.inline += 1
            return True
        if _cheap(self.costs.get(number)) is False or number in self._refused:  # measured (or probed): not cheap
            return False
        kind = self.kind_costs.get(self._kinds.get(number))
        if not _cheap(kind):
            return False
        self.flow.inline += 1
        return functools.partial(self._probed, number, kind)  # each activation a probe, until they tell

    def moves_inline(self, number: int) -> bool:
        """Whether activations of plan ``number`` run in the consumer, running ones included: its own costs (in
        workers) or its probes said so (see `runs_inline`)."""
        if number not in self._inline:
            if not (self._options.inline and _cheap(self.costs.get(number))):
                return False
            self._inline.add(number)
        return True

    def _probed(self, number: int, kind: list[int], items: int, seconds: float) -> None:
        """The outcome of a probe (see `runs_inline`): once its probes gave enough items, the leaf stays in
        the consumer or goes back to workers (a probe closed before its first item adds nothing)."""
        if number in self._inline or number in self._refused:
            return  # told by an earlier probe
        probed = self._probed_costs.setdefault(number, [0, 0.0])
        probed[0] += items
        probed[1] += seconds
        items, seconds = probed
        if items < INLINE_MIN_ITEMS:
            return  # too few to tell: its next activation probes again
        if seconds * 1e9 * kind[1] < INLINE_RATIO * kind[3] * items:  # making per item < ratio x moving per item
            self._inline.add(number)
        else:
            self._refused.add(number)

    def flush(self) -> None:
        """Send the waiting starts: each worker's new plans, then one STARTS message per worker."""
        outgoing, self._outgoing = self._outgoing, []
        self._waiting_starts = 0
        self._unsent.clear()
        for peer in outgoing:
            waiting, peer.outbox = peer.outbox, []
            if self._peers.get(peer.identity) is not peer:
                continue  # lost meanwhile: its activations have failed
            rows, extras = [], []
            for row, extra in waiting:
                if row:
                    rows.append(row)
                    extras.append(extra)
                else:
                    self._send(peer, [protocol.head(protocol.PLAN, extra), self._plan_pickles[extra]])
            if rows:
                head = protocol.head(protocol.STARTS, len(rows))
                self._send(peer, [head, b"".join(rows), pickle.dumps(extras, protocol=pickle.HIGHEST_PROTOCOL)])

    def _accepts_remote(self) -> bool:
        return self._options.accept_remote

    def _least_loaded(self) -> _Peer | None:
        return min(self._peers.values(), key=lambda peer: (len(peer.active), not peer.ready), default=None)

    def _assign(self, peer: _Peer, activation: RemoteActivation, message: list[bytes]) -> None:
        activation._peer = peer
        peer.active.add(activation._id)
        if peer.ready:
            self._send(peer, message)
        else:
            peer.pending.append(message)

    def _send(self, peer: _Peer, message: list[Any]) -> None:
        try:
            protocol.send(self._socket, [peer.identity, *message])
        except zmq.ZMQError as error:
            if error.errno != zmq.EHOSTUNREACH:
                raise
            silence = protocol.HEARTBEAT_TIMEOUT_MS / 1000
            self._peer_lost(peer, f"its connection dropped (it exited, or sent no heartbeat for {silence:g} s)")

    # -- receiving ------------------------------------------------------------------
    def _wait_for(self, activation: RemoteActivation) -> None:
        """Receive until ``activation`` has a message or has ended; watches worker liveness.

        Waiting starts leave first if ``activation`` is one of them (the others are ahead of need).
        """
        if self._outgoing and activation._id in self._unsent:
            self.flush()
        self._send_orphan_cancels()
        self._drain()
        while not activation._messages and not activation._finished:
            self._receive(int(PROBE_INTERVAL * 1000))
            now = time.monotonic()
            if now - self._last_probe >= PROBE_INTERVAL:
                self._last_probe = now
                self._probe(now)

    def _receive(self, timeout_ms: int) -> None:
        """Wait up to ``timeout_ms`` for messages or worker deaths, and handle them."""
        events = self._poller.poll(timeout_ms)
        self._drain()
        for fd, _ in events:
            peer = self._sentinels.get(fd)
            if peer is not None:
                self._drain(linger_ms=50)  # what the worker sent before dying comes first
                self._peer_lost(peer, _exit_description(peer.process))

    def _drain(self, linger_ms: int = 0) -> None:
        """Dispatch every message already received, then those arriving within ``linger_ms``."""
        sock = self._socket
        deadline = time.monotonic() + linger_ms / 1000
        while True:
            if protocol.readable(sock):
                self._dispatch(protocol.recv(sock))
                continue
            remaining = int((deadline - time.monotonic()) * 1000)
            if remaining <= 0 or not sock.poll(remaining):
                return

    def _dispatch(self, frames: list[zmq.Frame]) -> None:
        kind, number = _parse(frames)
        counts = self.counts
        if kind is None:  # wrong frame count, short head or unknown kind: dropped, whoever sent it
            counts["malformed"] += 1
            return
        identity = frames[0].bytes
        if kind == protocol.HELLO:
            self._hello(identity, number, [frame.bytes for frame in frames[3:5]])
            return
        peer = self._peers.get(identity)
        if peer is None or not peer.ready:  # only workers that joined may speak (never unpickle a stranger's)
            counts["unjoined"] += 1
            return
        if kind == protocol.COSTS:
            if not self._add_costs(number, frames[2].bytes):
                counts["malformed"] += 1
            return
        if kind in _ENDINGS:
            peer.active.discard(number)
        activation = self._activations.get(number)
        if activation is None or activation._peer is not peer:
            return
        if activation._submitted:
            self.flow.latencies.append(time.perf_counter() - activation._submitted)
            activation._submitted = 0.0
        if kind in _WITH_ITEMS and activation._finished:  # arrived after it was closed
            self.flow.left_over((), [frames[2:]])
        elif kind in _WITH_ITEMS:
            activation._messages.append(frames[2:])
            activation._finished = kind == protocol.LAST
        elif kind == protocol.CHUNK:
            activation._parts.add(frames[2])
        elif kind == protocol.PARTS:
            joined = activation._parts.frames(frames[2], frames[3:])
            if joined is None:
                counts["malformed"] += 1
                activation._fail(TransportError(f"{peer.describe()} sent pieces that do not match their layout"))
            else:
                activation._messages.append(joined)
        elif kind == protocol.END:
            activation._finished = True
        elif kind == protocol.FAULT:
            activation._fail(_remote_exception([frame.bytes for frame in frames[2:]], peer))

    def _add_costs(self, count: int, table: bytes) -> bool:
        """Add a worker's COSTS rows to the session's; False (nothing added) if the table is not ``count`` rows."""
        if len(table) != count * protocol.COST_ROW.size:
            return False
        for number, *figures in protocol.COST_ROW.iter_unpack(table):
            totals = [self.costs.setdefault(number, [0, 0, 0, 0])]
            kind = self._kinds.get(number)
            if kind is not None:
                totals.append(self.kind_costs.setdefault(kind, [0, 0, 0, 0]))
            for costs in totals:
                for index, figure in enumerate(figures):
                    costs[index] += figure
        return True

    def _hello(self, identity: bytes, pid: int, credentials: list[bytes]) -> None:
        """Admit a local worker that names itself and holds the run's token, or a remote worker if invited."""
        name, token = (*credentials, b"", b"")[:2]
        peer = self._peers.get(("local", name.decode(errors="replace")))
        if identity in self._peers:  # said twice
            peer = None
        elif peer is not None and not (peer.pid == pid and hmac.compare_digest(token, self._token.encode())):
            peer = None  # not the local process it claims to be
        elif peer is None and self._accepts_remote() and not name:  # a remote worker joins
            peer = _Peer(identity, f"R{next(self._remote_names)}", None)
        if peer is None:  # turn it away rather than leave it waiting
            self.counts["rejected"] += 1
            with contextlib.suppress(zmq.ZMQError):
                protocol.send(self._socket, [identity, protocol.head(protocol.QUIT)])
            return
        self._peers.pop(peer.identity, None)
        peer.identity = identity
        self._peers[identity] = peer
        peer.pid = pid
        peer.ready = True
        pending, peer.pending = peer.pending, []
        for message in pending:
            self._send(peer, message)
        while self._unassigned:
            activation_id, message = self._unassigned.popleft()
            activation = self._activations.get(activation_id)
            if activation is not None:
                self._assign(self._least_loaded(), activation, message)

    def _probe(self, now: float) -> None:
        """Ping workers that hold activations: a peer whose connection dropped (it died, or missed
        heartbeats for `protocol.HEARTBEAT_TIMEOUT_MS`) raises EHOSTUNREACH."""
        for peer in list(self._peers.values()):
            if peer.active:
                self._send(peer, [protocol.head(protocol.PING)])
        if self._unassigned and now - self._opened > self._options.timeout:
            error = WorkerError(f"no worker connected to {self.address} within {self._options.timeout:g} s")
            while self._unassigned:
                activation = self._activations.get(self._unassigned.popleft()[0])
                if activation is not None:
                    activation._fail(error)

    def _peer_lost(self, peer: _Peer, how: str) -> None:
        if self._peers.pop(peer.identity, None) is None:
            return
        if peer.process is not None:
            self._poller.unregister(peer.process.sentinel)
            del self._sentinels[peer.process.sentinel]
            peer.process.join(timeout=0)
        for activation_id in peer.active:
            activation = self._activations.get(activation_id)
            if activation is not None and not activation._finished:
                activation._fail(WorkerError(f"{peer.describe()} died: {how}"))
        peer.active.clear()

    # -- cancelling and closing -------------------------------------------------------
    def _cancel(self, activation: RemoteActivation) -> None:
        peer = activation._peer
        if activation._left == 0:  # it produced its limit: its worker has closed it (its END is on the way)
            return
        if peer is not None and activation._id in peer.active:
            peer.active.discard(activation._id)
            if self._finalizer.alive and peer.identity in self._peers:
                self._send(peer, [protocol.head(protocol.CANCEL, activation._id)])

    def _send_orphan_cancels(self) -> None:
        while self._orphans:
            peer, activation_id = self._orphans.pop()
            if self._peers.get(peer.identity) is peer and activation_id in peer.active:
                peer.active.discard(activation_id)
                self._send(peer, [protocol.head(protocol.CANCEL, activation_id)])

    def close(self) -> None:
        """Stop every activation and every worker; release the socket and any ``ipc`` files."""
        for activation in list(self._activations.values()):
            if activation._local is not None:  # moved to the consumer: its source is closed here
                activation.close()
            activation._finished = True
            activation._messages.clear()
            activation._items.clear()
            activation._parts.pieces.clear()
        self._finalizer()

    def flow_stats(self) -> dict[str, float]:
        """What the workers produced for nothing, and how fast activations start (see `_Flow.figures`)."""
        if self._finalizer.alive:
            self._drain()  # what has arrived counts, used or not
        return self.flow.figures()

    def stats(self) -> dict[str, int]:
        """Counts of messages the session dropped: ``malformed``, ``unjoined`` and ``rejected``.

        A message with a wrong frame count, a short head or an unknown kind is
        dropped and counted, whoever sent it; so are messages from peers that
        have not joined, and HELLOs that were turned away. None ever raises.
        """
        return dict(self.counts)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._peers)} workers"
        return f"<RemoteSession {self.address} {state}>"


class RemoteActivation(Activation):
    """The items of one activation running in a worker, decoded as the consumer reaches them."""

    __slots__ = (
        "_session", "_id", "_peer", "_items", "_messages", "_finished", "_error",
        "_owed_items", "_owed_bytes", "_window_items", "_window_bytes", "_parts", "_submitted",
        "_left", "_item_credit", "_leaf", "_moving", "_local", "_decoded", "_skip_limit",
    )

    def __init__(self, session: RemoteSession, activation_id: int, limit: int | None = None):
        self._session = session
        self._id = activation_id
        self._peer: _Peer | None = None
        self._items: collections.deque[Any] = collections.deque()
        self._messages: collections.deque[list[zmq.Frame]] = collections.deque()
        self._parts = protocol.Reassembler()  # pieces of a message bigger than a frame
        self._finished = False
        self._error: BaseException | None = None
        self._owed_items = 0  # taken by the consumer, not yet credited back to the worker
        self._owed_bytes = 0
        options = session._options
        # an activation with a limit (a budget: all of it will be consumed unless the run stops) may have
        # its whole limit in flight, so its items never wait for credit; otherwise the window starts small
        self._window_items = min(limit, options.prefetch) if limit else min(INITIAL_WINDOW_ITEMS, options.prefetch)
        self._window_bytes = min(INITIAL_WINDOW_BYTES, options.prefetch_bytes)
        self._submitted = time.perf_counter()  # until its first message arrives (then 0.0)
        self._left = limit if limit else -1  # items still to come of its limit (-1: no limit)
        self._item_credit = not limit or limit > self._window_items  # whether its worker may wait for item credit
        # a leaf's activation may move to the consumer once its leaf is found cheap (`_move`): its plan
        # number, plan arguments and start arguments; while ``_moving`` it gets no more credit
        self._leaf: tuple[int, tuple[Any, ...], tuple[Any, ...]] | None = None
        self._moving = False
        self._local: Any = None  # its items in the consumer, once moved
        self._decoded = 0  # items received and decoded
        self._skip_limit = 0  # it may start moving while it has given at most this many items

    def __next__(self) -> Any:
        if self._items:
            return self._items.popleft()
        return self._refill()

    def _refill(self) -> Any:
        if self._local is not None:
            return next(self._local)
        session = self._session
        if session._waiting_starts >= START_BATCH:  # else they leave when the consumer must wait (_wait_for)
            session.flush()
            session._drain()  # and what has arrived is taken in now (so start latencies tell when it came)
        while True:
            if self._messages:
                frames = self._messages.popleft()
                try:
                    items = collections.deque(unpack_items(frames))
                except TransportError as error:  # a joined worker's message that is not one: the activation fails
                    session.counts["malformed"] += 1
                    self.close()
                    where = self._peer.describe() if self._peer is not None else "a worker"
                    raise TransportError(f"{where} sent {error}") from error
                except Exception:  # an item that cannot be unpickled here: raised as it is, and, as a source's
                    self.close()  # error ends its activation, this one ends (the message's other items never show)
                    raise
                session.flow.received += len(items)
                self._decoded += len(items)
                self._left -= len(items) if self._left > 0 else 0
                self._owed_items += len(items)
                self._owed_bytes += sum(len(frame) for frame in frames)
                if self._leaf is not None and not self._moving and self._decoded - len(items) <= self._skip_limit:
                    self._moving = session.moves_inline(self._leaf[0])
                if not self._moving and ((4 * self._owed_items >= self._window_items and self._item_credit) or (
                    4 * self._owed_bytes >= self._window_bytes
                )):
                    self._return_credit()  # in batches of a quarter window (items: none when it covers the limit)
                if items:
                    self._items = items
                    return items.popleft()
            elif self._finished:
                error, self._error = self._error, None
                if error is not None:
                    raise error
                raise StopIteration
            elif self._moving and (self._owed_items >= self._window_items or self._owed_bytes >= self._window_bytes):
                return self._move()  # its worker has spent its credit: nothing more is on the way
            else:
                session._wait_for(self)

    def _move(self) -> Any:
        """Continue in the consumer, as in process: the same leaf activation after the items received.

        Called once its leaf is found cheap (`RemoteSession.moves_inline`) and its worker, given no more
        credit since, has sent all it may: nothing is wasted. A leaf that seeks starts at the next item;
        another makes the items received again to skip them, which is why it moves only while they are
        few (`MOVE_MAX_SKIP`, plus the credit window its worker still had).
        """
        _, (leaf, entropy, path), (identity, *start) = self._leaf
        self.close()  # cancels its worker's part
        self._local = iter(activate_leaf(leaf, entropy, path, identity, (start[0] if start else 0) + self._decoded))
        self._session.flow.moved += 1
        return next(self._local)

    def _return_credit(self) -> None:
        """Tell the worker what the consumer took, and double the window (up to the prefetch limits)."""
        options = self._session._options
        self._window_items = min(2 * self._window_items, options.prefetch)
        self._window_bytes = min(2 * self._window_bytes, options.prefetch_bytes)
        if self._peer is not None and not self._finished:
            head = protocol.flow_head(
                protocol.CREDIT, self._id, self._owed_items, self._owed_bytes, self._window_items, self._window_bytes
            )
            self._session._send(self._peer, [head])
        self._owed_items = self._owed_bytes = 0

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._finished = True

    def close(self) -> None:
        """Cancel the activation: its worker closes the generator; later ``next()`` raises StopIteration."""
        local, self._local = self._local, None
        if local is not None:  # moved to the consumer: its worker's part was closed then
            close = getattr(local, "close", None)
            if close is not None:
                close()
            return
        if not self._finished:
            self._finished = True
            self._session._cancel(self)
        self._session.flow.left_over(self._items, self._messages)
        self._items.clear()
        self._messages.clear()
        self._parts.pieces.clear()
        self._error = None

    def __del__(self) -> None:
        try:
            if not self._finished and self._peer is not None:
                self._session._orphans.append((self._peer, self._id))
        except Exception:  # at interpreter exit, the session may be gone already
            pass

    def __repr__(self) -> str:
        return f"<RemoteActivation {self._id} {'finished' if self._finished else 'running'}>"


def _cheap(costs: list[Any] | None) -> bool | None:
    """Whether ``[activations, items, ns making, ns moving]`` say items cost less than `INLINE_RATIO` times as
    much to make as to move; None when they cover fewer than `INLINE_MIN_ITEMS` items (too few to tell)."""
    if costs is None or costs[1] < INLINE_MIN_ITEMS:
        return None
    return costs[2] < INLINE_RATIO * costs[3]


def _kind(plan: tuple[Callable[..., Iterable[Any]], tuple[Any, ...]]) -> Any:
    """The kind of a leaf's plan (`leaf_kind`), or None: not a leaf's, or a kind that cannot be told."""
    if plan[0] is not activate_leaf:
        return None
    try:
        return leaf_kind(plan[1][0])
    except Exception:  # an unusual transform: this leaf is only placed by its own costs
        return None


def _count_items(frames: list[Any]) -> int:
    """The items a message holds (0 if it is malformed, or an item fails to unpickle: counting what was left
    over never raises)."""
    try:
        return len(unpack_items(frames))
    except Exception:
        return 0


class _Flow:
    """A session's activity: activations started, items received and left over, start latencies."""

    def __init__(self) -> None:
        self.started = 0
        self.received = 0  # items decoded by activations
        self.wasted = 0  # items that reached the consumer and were never taken
        self.latencies: list[float] = []  # seconds from submit to the first message of each activation
        self.inline = 0  # leaf activations run in the consumer instead (`RemoteSession.runs_inline`)
        self.moved = 0  # activations moved from a worker to the consumer (`RemoteActivation._move`)

    def left_over(self, items: Any, messages: Iterable[list[Any]]) -> None:
        """Count the items of a closed activation that the consumer never took."""
        counted = len(items) + sum(map(_count_items, messages))
        self.wasted += counted
        self.received += counted - len(items)

    def figures(self) -> dict[str, float]:
        """``activations`` (started in workers), ``activations_inline`` (run in the consumer), ``activations_moved``
        (started in workers, finished in the consumer), ``items_received``,
        ``items_wasted`` (received, never taken: produced for nothing) and the median and 99th percentile of
        ``start_latency_ms`` (submit to first message)."""
        latency = np.percentile(self.latencies, [50, 99]) * 1000 if self.latencies else [np.nan, np.nan]
        return {
            "activations": self.started, "activations_inline": self.inline, "activations_moved": self.moved,
            "items_received": self.received, "items_wasted": self.wasted,
            "start_latency_median_ms": float(latency[0]), "start_latency_p99_ms": float(latency[1]),
        }


_ARITY = {
    protocol.HELLO: (3, None), protocol.ITEMS: (3, None), protocol.LAST: (3, None), protocol.END: (2, 2),
    protocol.FAULT: (6, 6),
    protocol.CHUNK: (3, 3), protocol.PARTS: (3, None), protocol.COSTS: (3, 3),
}
_ENDINGS = (protocol.END, protocol.FAULT, protocol.LAST)
_WITH_ITEMS = (protocol.ITEMS, protocol.LAST)


def _parse(frames: list[zmq.Frame]) -> tuple[bytes | None, int]:
    """(kind, number) of a worker's message (frames after the routing id), or (None, 0) if malformed."""
    if len(frames) < 2:
        return None, 0
    head = frames[1].bytes
    if len(head) != protocol.HEAD_BYTES:
        return None, 0
    kind, number = protocol.read_head(head)
    arity = _ARITY.get(kind)
    if arity is None or len(frames) < arity[0] or (arity[1] is not None and len(frames) > arity[1]):
        return None, 0
    return kind, number


def _remote_exception(frames: list[bytes], peer: _Peer | None) -> BaseException:
    """The exception a worker reported: its own type where it unpickles, else `WorkerError`."""
    pickled, *texts = frames
    type_name, message, text = (frame.decode(errors="replace") for frame in texts)
    where = peer.describe() if peer is not None else "a worker"
    remote = WorkerError(f"{type_name} raised in {where}", remote_traceback=text)
    error: BaseException | None = None
    if pickled:
        try:
            error = pickle.loads(pickled)
        except Exception:
            error = None
    if not isinstance(error, BaseException):
        return WorkerError(f"{type_name}: {message} (raised in {where})", remote_traceback=text)
    error.__cause__ = remote
    try:
        error.remote_traceback = text  # type: ignore[attr-defined]
    except AttributeError:
        pass
    return error


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


def _local_address(bound: str) -> str:
    """Where a local worker connects to reach ``bound`` (a wildcard host becomes loopback)."""
    return bound.replace("tcp://0.0.0.0:", "tcp://127.0.0.1:").replace("tcp://[::]:", "tcp://[::1]:")


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
