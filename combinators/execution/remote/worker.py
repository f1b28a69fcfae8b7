"""A worker: runs the activations a session sends it and streams their items back.

One worker process serves one session. It connects a DEALER socket to the
session's address, says HELLO, then interleaves its activations one message
at a time, each within the credit the consumer grants (see
`combinators.execution.remote.protocol`). It exits when the session says QUIT or its
connection drops, closing every generator it holds.

Local workers are started by `combinators.execution.remote.processes.Processes` and
`combinators.execution.remote.zmq.ZMQ`; a remote worker is the command
``combinators worker --connect tcp://HOST:PORT --key FILE`` (make the key pair
with ``combinators worker --make-key FILE``, which writes ``FILE.key`` and
``FILE.key_secret``; both ends use the secret file).
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import socket as socket_module
import stat
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import cloudpickle
import zmq
import zmq.auth
import zmq.utils.monitor

from combinators.errors import InvalidArgument, TransportError
from combinators.execution.remote import lifetime as _lifetime, protocol
from combinators.execution.leaf import activate_leaf, where
from combinators.execution.remote.wire import ItemPacker

__all__ = ["serve", "LocalWorker", "local_worker_main", "make_key", "load_key", "add_arguments", "run"]

#: a message holds at most this fraction of an activation's credit, so several are in flight
_MESSAGES_IN_FLIGHT = 4
#: seconds a worker spends filling one message before sending what it has
FLUSH_INTERVAL = 0.005
#: a message stops growing at this many bytes (bigger items travel one per message)
MESSAGE_BYTES = 1 << 20
#: a worker reports its costs (`protocol.COSTS`) after this many messages of items (and when idle), and a
#: plan's first costs as soon as it made this many items (or an activation of it ended)
COSTS_EVERY = 32
FIRST_COSTS_ITEMS = 16

_MAKE_KEY = "`combinators worker --make-key PATH`"
_EXHAUSTED = object()  # the outcome of an activation that ran dry
_SPENT = object()  # the outcome of an activation that produced its limit
_NO_LIMIT = 1 << 62

_EXIT_EVENTS = (
    zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
)


class _Running:
    """One activation held by a worker, with its credit and message size."""

    __slots__ = (
        "id", "iterator", "next", "window_items", "window_bytes", "items", "nbytes", "cap", "queued", "frame_bytes",
        "plan", "left", "number", "made", "making", "moving",
    )

    def __init__(
        self, activation_id: int, iterator: Iterator[Any], window_items: int, window_bytes: int, frame_bytes: int,
        plan: tuple[Any, tuple[Any, ...]] = (None, ()), limit: int = 0, number: int = -1,
    ):
        self.id = activation_id
        self.number = number  # its plan's number (-1: started whole, by START)
        # not yet added to its plan's costs: items produced, seconds spent in the source (starting
        # it, then in its next()), seconds spent moving its items (starting, packing, sending)
        self.made = 0
        self.making = 0.0
        self.moving = 0.0
        self.left = limit or _NO_LIMIT  # items it may still produce (its budget)
        self.plan = plan
        self.frame_bytes = frame_bytes
        self.iterator = iterator
        self.next = iterator.__next__
        self.window_items = window_items
        self.window_bytes = window_bytes
        self.items = 0  # in flight
        self.nbytes = 0
        # items per message: an activation with a limit (started ahead, short) fills one message with its
        # budget; otherwise 1 first (fast start), doubling up to the credit's share
        self.cap = min(limit, window_items) if limit else 1
        self.queued = False

    def can_send(self) -> bool:
        return self.items == 0 or (self.items < self.window_items and self.nbytes < self.window_bytes)

    def close(self) -> None:
        close = getattr(self.iterator, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # a generator whose cleanup fails must not take the worker down
                pass


class _Worker:
    """The worker loop's state: running activations and the round-robin queue of those with credit."""

    def __init__(self, sock: zmq.Socket):
        self.socket = sock
        self.running: dict[int, _Running] = {}
        self.ready: collections.deque[_Running] = collections.deque()
        self.packer = ItemPacker(freeze=True)
        self.plans: dict[int, tuple[Any, tuple[Any, ...]] | BaseException] = {}  # PLAN number: (fn, args)
        # per plan number, what its ended activations cost, not reported yet: [activations, items,
        # seconds making, seconds moving]; plans never reported go out at once (the consumer decides on them)
        self.costs: dict[int, list[float]] = {}
        self.first: dict[int, int] = {}  # plans not reported yet: the items they made
        self.unreported = 0  # steps (messages of items) in costs

    def handle(self, frames: list[zmq.Frame]) -> bool:
        """Apply one consumer message; False once told to quit."""
        head = frames[0].bytes
        kind = head[:1]
        if kind == protocol.CREDIT:
            activation_id, items, nbytes, window_items, window_bytes = protocol.read_flow(head)
            run = self.running.get(activation_id)
            if run is not None:
                run.items -= items
                run.nbytes -= nbytes
                run.window_items, run.window_bytes = window_items, window_bytes
                self._enqueue(run)
        elif kind == protocol.STARTS:
            self._starts(frames[1].bytes, frames[2].bytes)
        elif kind == protocol.PLAN:
            self._plan(protocol.read_head(head)[1], frames[1].bytes)
        elif kind == protocol.START:
            activation_id, frame_bytes, limit, window_items, window_bytes = protocol.read_flow(head)
            try:
                fn, args = cloudpickle.loads(frames[1].bytes)
            except BaseException as error:  # noqa: BLE001 - reported to the consumer
                self._fault(activation_id, error, frame_bytes)
            else:
                self._start(activation_id, (fn, args), limit, window_items, window_bytes, frame_bytes)
        elif kind == protocol.CANCEL:
            run = self.running.pop(protocol.read_head(head)[1], None)
            if run is not None:
                run.close()
        elif kind == protocol.QUIT:
            return False
        return True

    def _plan(self, number: int, pickled: bytes) -> None:
        """Keep a plan for the run; one that cannot be loaded faults every activation that names it."""
        try:
            self.plans[number] = cloudpickle.loads(pickled)
        except BaseException as error:  # noqa: BLE001 - reported with each start
            self.plans[number] = error
        self.first[number] = 0

    def _starts(self, table: bytes, extras: bytes) -> None:
        """Start every activation of a STARTS message, in order (each is charged its share of reading it)."""
        began = time.thread_time()  # moving: CPU time (time the worker is not running is no one's cost)
        rows = list(protocol.START_ROW.iter_unpack(table))
        extra_args = cloudpickle.loads(extras)
        share = (time.thread_time() - began) / max(1, len(rows))
        for (activation_id, number, limit, window_items, window_bytes, frame_bytes), extra in zip(rows, extra_args):
            plan = self.plans.get(number)
            if not isinstance(plan, tuple):
                error = plan or TransportError(f"activation {activation_id} names plan {number}, never sent")
                self._fault(activation_id, error, frame_bytes)
                continue
            fn, args = plan
            run = self._start(activation_id, (fn, (*args, *extra)), limit, window_items, window_bytes, frame_bytes,
                              number)
            if run is not None:
                run.moving += share

    def _start(
        self, activation_id: int, plan: tuple[Any, tuple[Any, ...]], limit: int, window_items: int,
        window_bytes: int, frame_bytes: int, number: int = -1,
    ) -> _Running | None:
        fn, args = plan
        began = time.perf_counter()
        try:
            iterator = iter(fn(*args))
        except BaseException as error:  # noqa: BLE001 - reported to the consumer
            self._fault(activation_id, error, frame_bytes)
            return None
        run = _Running(activation_id, iterator, window_items, window_bytes, frame_bytes, plan, limit, number)
        run.making = time.perf_counter() - began
        self.running[activation_id] = run
        self._enqueue(run)
        return run

    def _enqueue(self, run: _Running) -> None:
        if not run.queued and run.id in self.running and run.can_send():
            run.queued = True
            self.ready.append(run)

    def step(self) -> None:
        """Produce and send one message of the next activation with credit."""
        run = self.ready.popleft()
        run.queued = False
        if run.id not in self.running:
            return
        # making is timed on the wall clock (a source waiting for its disk makes slowly), moving as this
        # thread's CPU time less that: time the worker is descheduled never counts as moving, so an expensive
        # source never looks cheap to move (it may look dearer to make: then it stays in a worker)
        began = time.thread_time()
        making = run.making
        outcome = self._fill(run)
        packer = self.packer
        ended = outcome is _EXHAUSTED or outcome is _SPENT
        ended_sent = False
        if packer.count:
            run.items += packer.count
            frames = packer.frames()
            # in flight: the bytes the consumer will count and credit back (packer.nbytes only estimates them)
            run.nbytes += sum(len(frame) for frame in frames)
            ended_sent = protocol.send_items(self.socket, run.id, frames, run.frame_bytes, last=ended)
            run.cap = min(2 * run.cap, max(1, run.window_items // _MESSAGES_IN_FLIGHT))
        if outcome is None:
            self._cost(run, began, making, ended=False)
            self._enqueue(run)
            return
        del self.running[run.id]
        if outcome is _SPENT:  # its budget: closed now, nothing more is produced
            run.close()
        if not ended:
            run.close()
            self._fault(run.id, outcome, run.frame_bytes)
        elif not ended_sent:
            protocol.send(self.socket, [protocol.head(protocol.END, run.id)])
        if ended:
            self._cost(run, began, making, ended=True)

    def _fill(self, run: _Running) -> BaseException | object | None:
        """Pack items of ``run`` until a message is full; the outcome if the activation ended.

        The time spent in the source's ``next()`` is added to ``run.making``.
        """
        packer = self.packer
        cap = max(1, min(run.cap, run.window_items - run.items, run.left))
        limit = max(1, min(MESSAGE_BYTES, run.window_bytes // _MESSAGES_IN_FLIGHT, run.window_bytes - run.nbytes))
        next_item, clock = run.next, time.perf_counter
        now = clock()
        deadline, making = now + FLUSH_INTERVAL, 0.0
        try:
            while packer.count < cap:
                try:
                    item = next_item()
                    made = clock()
                    packer.add(item)
                except StopIteration:
                    making += clock() - now
                    return _EXHAUSTED
                except BaseException as error:  # noqa: BLE001 - reported to the consumer
                    return _reused(error, run)
                making += made - now
                now = clock()
                if packer.nbytes >= limit or now >= deadline:
                    break
        finally:
            run.left -= packer.count
            run.made += packer.count
            run.making += making
        return _SPENT if run.left <= 0 else None

    def _cost(self, run: _Running, began: float, making: float, ended: bool) -> None:
        """Add what a step of ``run`` cost to its plan's costs (the step began at CPU time ``began``, when it
        had spent ``making`` seconds making); report at once a plan never reported that made
        `FIRST_COSTS_ITEMS` items or ended an activation, else every `COSTS_EVERY` steps (a worker kept busy
        by long activations is never idle)."""
        if run.number < 0:
            return
        run.moving += max(0.0, time.thread_time() - began - (run.making - making))
        costs = self.costs.setdefault(run.number, [0, 0, 0.0, 0.0])
        costs[0] += ended
        costs[1] += run.made
        costs[2] += run.making
        costs[3] += run.moving
        first = run.number in self.first
        if first:  # not reported yet: at once, when it has enough to tell
            made = self.first[run.number] = self.first[run.number] + run.made
            first = ended or made >= FIRST_COSTS_ITEMS
            if first:
                del self.first[run.number]
        run.made, run.making, run.moving = 0, 0.0, 0.0
        self.unreported += 1
        if first or self.unreported >= COSTS_EVERY:
            self.report_costs()

    def report_costs(self) -> None:
        """Send what its activations cost since the last report, per plan (`protocol.COSTS`)."""
        if not self.costs:
            return
        rows = [
            protocol.COST_ROW.pack(number, activations, items, round(making * 1e9), round(moving * 1e9))
            for number, (activations, items, making, moving) in self.costs.items()
        ]
        protocol.send(self.socket, [protocol.head(protocol.COSTS, len(rows)), b"".join(rows)])
        self.costs.clear()
        self.unreported = 0

    def _fault(self, activation_id: int, error: BaseException, frame_bytes: int) -> None:
        """Report ``error``; each frame within ``frame_bytes`` (a bigger pickle is left out, texts are cut)."""
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        try:
            pickled = cloudpickle.dumps(error) if isinstance(error, Exception) else b""
        except Exception:
            pickled = b""
        if len(pickled) > frame_bytes:
            pickled = b""
        name = f"{type(error).__module__}.{type(error).__qualname__}"
        texts = [part.encode(errors="backslashreplace")[:frame_bytes] for part in (name, str(error), text)]
        protocol.send(self.socket, [protocol.head(protocol.FAULT, activation_id), pickled, *texts])

    def close(self) -> None:
        for run in self.running.values():
            run.close()
        self.running.clear()
        self.ready.clear()


def _reused(error: BaseException, run: _Running) -> BaseException:
    """``error``, or a `TransportError` naming the stream if it is numpy refusing a write into a sent array."""
    if not (isinstance(error, ValueError) and "read-only" in str(error)):
        return error
    fn, args = run.plan
    what = where(args[0], args[2]) if fn is activate_leaf else repr(fn)
    msg = (
        f"{what} wrote into an array it had already yielded ({error}): Processes and ZMQ send yielded arrays "
        "without copying, after the source has moved on, so a source must yield a new array for each item "
        "(e.g. `yield buffer.copy()`)"
    )
    transport = TransportError(msg)
    transport.__cause__ = error
    return transport


def serve(sock: zmq.Socket, connect_timeout: float | None = None, credentials: tuple[bytes, ...] = ()) -> int:
    """Serve the session ``sock`` is connected to until QUIT or disconnection; the exit status.

    ``sock`` is a connected DEALER socket; `serve` sends HELLO first (with
    ``credentials``: a local worker's name and the run's token). Returns
    0 after QUIT or a dropped connection, 1 when the CurveZMQ handshake fails
    or no session answered within ``connect_timeout`` seconds.
    """
    monitor = sock.get_monitor_socket(_EXIT_EVENTS | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    give_up = None if connect_timeout is None else time.monotonic() + connect_timeout
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    hello = [protocol.head(protocol.HELLO, os.getpid()), socket_module.gethostname().encode(), *credentials]
    protocol.send(sock, hello)
    worker = _Worker(sock)
    try:
        while True:
            if worker.ready:  # busy: look at the sockets without blocking
                incoming = protocol.readable(sock)
                lost = protocol.readable(monitor)
            else:
                worker.report_costs()  # idle: what it measured is worth telling now
                events = dict(poller.poll(1000))
                incoming, lost = sock in events, monitor in events
            if incoming and not _drain(sock, worker):
                return 0
            if lost:
                status = _monitor_event(monitor)
                if status is not None:
                    return status
                give_up = None  # connected
            if give_up is not None and time.monotonic() > give_up:
                print(f"combinators worker: no session answered within {connect_timeout:g} s", file=sys.stderr)
                return 1
            if worker.ready:
                worker.step()
    finally:
        worker.close()
        sock.disable_monitor()
        monitor.close(linger=0)


def _monitor_event(monitor: zmq.Socket) -> int | None:
    """The exit status a connection event calls for, or None (the handshake succeeded)."""
    event = zmq.utils.monitor.recv_monitor_message(monitor)["event"]
    if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
        return None
    if event != zmq.EVENT_DISCONNECTED:
        why = "the session admits only its own workers and holders of its key; check the key file"
        print(f"combinators worker: handshake failed ({event!r}): {why}", file=sys.stderr)
        return 1
    return 0


def _drain(sock: zmq.Socket, worker: _Worker) -> bool:
    """Apply every pending consumer message; False once told to quit."""
    while protocol.readable(sock):
        if not worker.handle(protocol.recv(sock)):
            return False
    return True


def connect(context: zmq.Context, address: str, key: tuple[bytes, bytes] | None, token: str | None = None) -> zmq.Socket:
    """A DEALER socket connected to ``address`` (the session names it: workers choose no identity).

    A CurveZMQ client if ``key``, else a PLAIN client proving membership with ``token`` if given.
    """
    sock = context.socket(zmq.DEALER)
    protocol.configure(sock)
    if key is not None:
        protocol.set_curve_client(sock, *key)
    elif token is not None:
        protocol.set_plain_client(sock, token)
    sock.connect(address)
    return sock


class LocalWorker(NamedTuple):
    """What a local worker process is told at start (as its argument: never on a command line)."""

    address: str
    name: str
    key: tuple[bytes, bytes] | None
    token: str  # the run's membership secret, shown in HELLO
    plain: bool  # whether the session also checks the token in the ZMTP PLAIN handshake
    owner: int  # the consumer's pid
    die_with_parent: bool  # whether the process that starts it lives as long as the consumer


def local_worker_main(spec: LocalWorker) -> None:
    """Entry point of a worker process started by a local pool (SIGINT is left to the consumer).

    It dies with the consumer (`combinators.execution.remote.lifetime`) and first closes
    the consumer's sockets that ``fork`` copied into it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # whatever handler the consumer had, SIGTERM ends us
    if spec.die_with_parent:
        _lifetime.die_with_parent()
    _lifetime.watch_owner(spec.owner)
    _lifetime.close_inherited_sockets(spec.address)
    context = zmq.Context()
    sock = connect(context, spec.address, spec.key, spec.token if spec.plain else None)
    try:
        serve(sock, credentials=(spec.name.encode(), spec.token.encode()))
    finally:
        sock.close(linger=0)
        context.term()


def make_key(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write a CurveZMQ key pair: ``PATH.key`` (public) and ``PATH.key_secret``; their paths.

    Give ``PATH.key_secret`` to the session (``ZMQ(key=...)``) and to every
    remote worker (``combinators worker --key``): holding it is what lets a
    process serve or use the session, so keep it private. Keys are Z85 text
    (40 characters), as `zmq.auth.create_certificates` writes them.

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> public, secret = make_key(os.path.join(folder.name, "cluster"))
    >>> public.name, secret.name
    ('cluster.key', 'cluster.key_secret')
    >>> [len(key) for key in load_key(secret)]
    [40, 40]
    >>> folder.cleanup()
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # written in a private folder (0700), made 0600, then moved in place: never readable by others, not even
    # for an instant (zmq.auth writes with the umask, 0644 usually)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".keys-") as private:
        made = [Path(p) for p in zmq.auth.create_certificates(private, path.name)]
        os.chmod(made[1], 0o600)
        public, secret = path.with_name(made[0].name), path.with_name(made[1].name)
        os.replace(made[1], secret)
        os.replace(made[0], public)
    return public, secret


def load_key(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """The (public, secret) CurveZMQ keys in a ``.key_secret`` file written by `make_key`.

    Raises `InvalidArgument` when the file is missing, holds no secret key,
    or may be read or written by its group or others (as ssh refuses such a
    private key: ``chmod 600 FILE``).
    """
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as error:
        msg = f"cannot read a CurveZMQ key from {str(path)!r}: {error}; make one with {_MAKE_KEY}"
        raise InvalidArgument(msg) from None
    if secret is None:
        msg = f"{str(path)!r} holds no secret key; pass the PATH.key_secret file written by {_MAKE_KEY}"
        raise InvalidArgument(msg)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        msg = (f"the secret key {str(path)!r} has permissions {mode:04o}: it must not be accessible by its group "
               f"or others (whoever reads it may serve or use the session); run chmod 600 {str(path)!r}")
        raise InvalidArgument(msg)
    return public, secret


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--connect", metavar="tcp://HOST:PORT", help="address of the ZMQ session to serve")
    group.add_argument("--make-key", metavar="PATH", help="write a key pair PATH.key, PATH.key_secret and exit")
    parser.add_argument("--key", metavar="FILE", help="the session's PATH.key_secret file (CurveZMQ)")
    parser.add_argument(
        "--timeout", metavar="SECONDS", type=float, default=60.0,
        help="give up when no session answers within this time (default: 60)",
    )


def run(args: argparse.Namespace) -> int:
    """Serve one session (``--connect``), or write a key pair (``--make-key``)."""
    if args.make_key:
        public, secret = make_key(args.make_key)
        print(f"wrote {public} and {secret}; pass {secret} to ZMQ(key=...) and to `combinators worker --key`")
        return 0
    if not protocol.is_loopback(args.connect) and args.key is None:
        print(f"combinators worker: {args.connect} is not a loopback address; pass --key FILE", file=sys.stderr)
        return 2
    key = load_key(args.key) if args.key else None
    context = zmq.Context()
    sock = connect(context, args.connect, key)
    try:
        return serve(sock, connect_timeout=args.timeout)
    finally:
        sock.close(linger=0)
        context.term()
