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

Beside this module: each activation's side (its items, credit and move to the
consumer) is `combinators.execution.remote.activation`; where each leaf runs,
from the costs workers report, `combinators.execution.remote.placement`; the
workers as the session sees them, who may join and their release,
`combinators.execution.remote.peers`.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import multiprocessing
import hmac
import os
import pickle
import secrets
import threading
import time
import weakref
from typing import Any, Callable, Iterable

import attrs
import zmq

from combinators.errors import InvalidArgument, TransportError, WorkerError
from combinators.execution.remote import lifetime as _lifetime, protocol
from combinators.execution.base import Session, ship_activation
from combinators.execution.leaf import activate_leaf, probed_items, seeks
from combinators.execution.placed_rows import shipped_rows
from combinators.execution.remote.activation import RemoteActivation, _Flow
from combinators.execution.remote.peers import _curve_server, _exit_description, _Peer, _plain_server, _Resources
from combinators.execution.remote.placement import MOVE_MAX_SKIP, Costs, Placement, Placer
from combinators.execution.remote.worker import LocalWorker, local_worker_main

__all__ = ["SessionOptions", "RemoteSession"]

#: seconds between liveness probes of remote workers while the consumer waits
PROBE_INTERVAL = 0.5
#: room above ``frame_bytes`` for the short frames of a message
_MAX_HEAD_BYTES = 4096


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
    inline: bool | Costs = False  # run cheap leaves in the consumer (`RemoteSession.runs_inline`; `Costs`: told)


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

    places_rows = True  # block mixes open their file-reading row sources here, placed like leaves

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
        #: where each leaf runs, from the costs workers report (`Placer`); ``costs`` and ``kind_costs`` are its
        #: tables: per plan number, and per kind of leaf, [activations, items, ns making, ns moving]
        self.placer = Placer(options.inline)
        self.costs, self.kind_costs = self.placer.costs, self.placer.kind_costs
        self._inline, self._refused = self.placer.inline, self.placer.refused  # run in the consumer; refused by probes
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
        waits in the worker's outbox until `activation.START_BATCH` starts wait or the consumer waits for its
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
        self.flow.rows += plan[0] is shipped_rows
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
            self.placer.add_plan(known[0], plan)
        return known[0]

    def runs_here(
        self, plan: tuple[Callable[..., Iterable[Any]], tuple[Any, ...]], args: tuple[Any, ...],
    ) -> tuple[Callable[..., Iterable[Any]], tuple[Any, ...]] | None:
        """`Session.runs_here`: as `runs_inline` says, the plan's function in the consumer (`activate_leaf`, or
        `shipped_rows` for a block mix's row source), or under `probed_items` timing it for a probe; None to
        start it in a worker."""
        placement = self.runs_inline(plan)
        if not placement:
            return None
        return (plan[0], args) if placement is True else (probed_items, (placement, plan[0], *args))

    def runs_inline(self, plan: tuple[Callable[..., Iterable[Any]], tuple[Any, ...]]) -> Placement:
        """Whether the next activation of ``plan`` (a leaf's, as for `start`) should run in the consumer: with
        ``options.inline``, what the session's `Placer.runs_inline` says for its plan number (True or a probe:
        counted in ``activations_inline``); otherwise False."""
        if not self._options.inline:
            return False
        placement = self.placer.runs_inline(self._number(plan))
        if placement:
            self.flow.inline += 1
            self.flow.rows_inline += plan[0] is shipped_rows
        return placement

    def moves_inline(self, number: int) -> bool:
        """Whether activations of plan ``number`` run in the consumer, running ones included: what the session's
        `Placer.moves_inline` says."""
        return self.placer.moves_inline(number)

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
            if not self.placer.add_costs(number, frames[2].bytes):
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


def _local_address(bound: str) -> str:
    """Where a local worker connects to reach ``bound`` (a wildcard host becomes loopback)."""
    return bound.replace("tcp://0.0.0.0:", "tcp://127.0.0.1:").replace("tcp://[::]:", "tcp://[::1]:")
