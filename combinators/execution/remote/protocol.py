"""The messages between a consumer session and its workers, and socket settings both sides share.

The consumer binds a ROUTER socket; each worker connects a DEALER socket.
Every message starts with a *head* frame: one kind byte and a 64-bit
number (the activation id, or the worker's pid in HELLO), followed, for
START and CREDIT, by four 64-bit flow figures: items and bytes taken by the
consumer, and the window in items and bytes.

Consumer to worker:

- ``START(id, frame_bytes, limit, window_items, window_bytes) plan``: run ``fn(*args)``
  (``plan`` is ``cloudpickle.dumps((fn, args))``) within that window, sending no
  frame larger than ``frame_bytes`` and no more than ``limit`` items (0: no limit);
- ``PLAN(number) plan``: ``cloudpickle.dumps((fn, args))``, kept by the worker
  for the whole run under ``number`` (a leaf of the stream: shipped once per
  worker, however many activations it has);
- ``STARTS(count) table extras``: ``count`` activations at once; ``table``
  holds one row of six little-endian 64-bit numbers per activation (`START_ROW`:
  id, plan number, limit, window items, window bytes, frame bytes) and
  ``extras`` the pickled list of each activation's own arguments: activation
  ``k`` runs ``fn(*args, *extras[k])`` of its plan;
- ``CREDIT(id, items, bytes, window_items, window_bytes)``: the consumer took
  that much of the activation; the window is now that large;
- ``CANCEL(id)``: close the activation's generator;
- ``PING``: liveness probe (ignored); ``QUIT``: close everything and exit.

Worker to consumer:

- ``HELLO(pid) host [name token]``: the worker is connected and ready; a local
  worker adds its name (``L0``...) and the run's token, which the session
  checks (with the pid) before it sends it anything or reads anything from it;
- ``ITEMS(id) header *buffers``: coalesced items (see `combinators.execution.remote.wire`);
- ``CHUNK(id) piece`` then ``PARTS(id) layout *frames``: an ITEMS message with a
  frame larger than ``frame_bytes``, sent as pieces of at most that size, each in
  a message of its own (so heartbeats flow during a long transfer); ``layout``
  holds one little-endian 64-bit count per frame: 0 for the next of ``frames``,
  n for the next n pieces joined (`send_items`, `Reassembler`);
- ``END(id)``: the activation is exhausted (or produced its limit);
- ``LAST(id) header *buffers``: ITEMS then END in one message (the last items
  of an activation, when no frame needs pieces);
- ``FAULT(id) exception type_name message traceback``: it raised (``exception``
  is its cloudpickle, or empty when it cannot be pickled);
- ``COSTS(count) table``: what its activations cost since its last report,
  per plan: ``table`` holds ``count`` rows of five little-endian 64-bit
  numbers (`COST_ROW`: plan number, activations ended, items made,
  nanoseconds spent making them in the source, nanoseconds spent moving
  them: starting, packing, sending). A plan's first report goes out as soon
  as it made 16 items or one of its activations ended, later ones every 32
  messages of items or when the worker is idle; the session uses them to run
  cheap leaves in the consumer
  (`combinators.execution.remote.placement.Placer.runs_inline`).

Flow control is credit-based: a worker keeps at most ``window_items`` items
and ``window_bytes`` bytes of an activation in flight (sent, not yet credited
back), except that one message may always be in flight, whatever its size.
The window starts small and doubles with each credit, up to the executor's
``prefetch`` and ``prefetch_bytes``: a long activation streams at full speed,
while one the consumer closes early has wasted little work (at most about
twice what it consumed, plus the first window). The consumer credits back in
batches of a quarter window, which cannot deadlock: a worker blocked on credit
has a full window in flight, so either messages or a larger window are on
their way, or the consumer owes more than a quarter window.
"""

from __future__ import annotations

import collections
import ipaddress
import struct
from typing import Any, Sequence
from urllib.parse import urlsplit

import numpy as np
import zmq

START, CREDIT, CANCEL, PING, QUIT, PLAN, STARTS = b"S", b"C", b"X", b"P", b"Q", b"L", b"M"
HELLO, ITEMS, END, FAULT, CHUNK, PARTS, LAST, COSTS = b"H", b"I", b"E", b"F", b"K", b"T", b"D", b"O"

_HEAD = struct.Struct("<cQ")
_FLOW_HEAD = struct.Struct("<cQQQQQ")
#: one activation of a STARTS message: id, plan number, limit (0: none), window items and bytes, frame bytes
START_ROW = struct.Struct("<QQQQQQ")
#: one plan of a COSTS message: plan number, activations, items, nanoseconds making, nanoseconds moving
COST_ROW = struct.Struct("<QQQQQ")
#: the length of a head frame from a worker
HEAD_BYTES = _HEAD.size
_SNDMORE = int(zmq.SNDMORE)
_POLLIN = int(zmq.POLLIN)
#: ZMTP heartbeat period, and the silence after which a connection is dropped (milliseconds)
HEARTBEAT_INTERVAL_MS = 500
HEARTBEAT_TIMEOUT_MS = 3000
_ZERO_COPY_BYTES = 65536
#: the largest frame a worker sends (bigger ones travel in pieces); the session refuses larger
#: frames from anyone (``ZMQ_MAXMSGSIZE``), which bounds what a peer can make it buffer per message
FRAME_BYTES = 16 << 20
#: the ZMTP PLAIN user name of local workers (their password is the session's token)
PLAIN_USER = "combinators-worker"  # below this, copying is cheaper (pyzmq's own copy_threshold)


def head(kind: bytes, number: int = 0) -> bytes:
    """A head frame: ``kind`` and an activation id (or pid)."""
    return _HEAD.pack(kind, number)


def flow_head(kind: bytes, activation_id: int, items: int, nbytes: int, window_items: int, window_bytes: int) -> bytes:
    """A START or CREDIT head frame: what the consumer took, and the window."""
    return _FLOW_HEAD.pack(kind, activation_id, items, nbytes, window_items, window_bytes)


def read_head(frame: bytes) -> tuple[bytes, int]:
    """(kind, number) of a head frame."""
    return _HEAD.unpack_from(frame)


def read_flow(frame: bytes) -> tuple[int, int, int, int, int]:
    """(activation id, items, bytes, window items, window bytes) of a START or CREDIT head frame."""
    return _FLOW_HEAD.unpack(frame)[1:]


def send(sock: zmq.Socket, frames: Sequence[Any]) -> None:
    """Send a multipart message; frames of 64 KiB or more go zero-copy, smaller ones are copied.

    (pyzmq's ``send_multipart`` costs several times more per frame.)
    """
    last = len(frames) - 1
    for index, frame in enumerate(frames):
        sock.send(frame, 0 if index == last else _SNDMORE, copy=len(frame) < _ZERO_COPY_BYTES)


def send_items(sock: zmq.Socket, activation_id: int, frames: Sequence[Any], frame_bytes: int, last: bool = False) -> bool:
    """Send an ITEMS message, in CHUNK pieces and a PARTS message if a frame exceeds ``frame_bytes``.

    With ``last``, the activation's END travels in the same message (LAST) when no frame needs
    pieces; returns whether it did (else the caller sends END).
    """
    if all(len(frame) <= frame_bytes for frame in frames):
        send(sock, [head(LAST if last else ITEMS, activation_id), *frames])
        return last
    layout, inline = [], []
    for frame in frames:
        if len(frame) <= frame_bytes:
            layout.append(0)
            inline.append(frame)
            continue
        view = memoryview(frame).cast("B")
        starts = range(0, len(view), frame_bytes)
        for start in starts:
            send(sock, [head(CHUNK, activation_id), view[start : start + frame_bytes]])
        layout.append(len(starts))
    send(sock, [head(PARTS, activation_id), struct.pack(f"<{len(layout)}Q", *layout), *inline])
    return False


class Reassembler:
    """Joins the CHUNK pieces of one activation into the frames of its PARTS messages.

    >>> parts = Reassembler()
    >>> for piece in (b"ab", b"cd", b"e"):
    ...     parts.add(piece)
    >>> [bytes(frame) for frame in parts.frames(struct.pack("<3Q", 0, 3, 0), [b"x", b"y"])]
    [b'x', b'abcde', b'y']
    """

    __slots__ = ("pieces",)

    def __init__(self) -> None:
        self.pieces: collections.deque[Any] = collections.deque()

    def add(self, piece: Any) -> None:
        self.pieces.append(piece)

    def frames(self, layout: Any, inline: Sequence[Any]) -> list[Any] | None:
        """The frames a PARTS message describes, or None if it does not match what arrived."""
        layout = memoryview(layout).cast("B")
        if len(layout) % 8:
            return None
        counts = struct.unpack(f"<{len(layout) // 8}Q", layout)
        if counts.count(0) != len(inline) or sum(counts) > len(self.pieces):
            return None
        inline = iter(inline)
        return [next(inline) if count == 0 else self._join(count) for count in counts]

    def _join(self, count: int) -> np.ndarray:
        """One buffer from the next ``count`` pieces, each released once copied (peak: the buffer and one piece)."""
        pieces = collections.deque(self.pieces.popleft() for _ in range(count))
        joined = np.empty(sum(len(piece) for piece in pieces), np.uint8)
        position = 0
        while pieces:
            piece = np.frombuffer(pieces.popleft(), np.uint8)
            joined[position : position + len(piece)] = piece
            position += len(piece)
        return joined


def recv(sock: zmq.Socket) -> list[zmq.Frame]:
    """Receive one multipart message as ``zmq.Frame`` objects (blocking)."""
    frame = sock.recv(0, copy=False)
    frames = [frame]
    while frame.more:
        frame = sock.recv(0, copy=False)
        frames.append(frame)
    return frames


def readable(sock: zmq.Socket) -> bool:
    """Whether a message is waiting on ``sock``."""
    return bool(zmq.zmq_poll([(sock, _POLLIN)], 0))


def configure(socket: zmq.Socket) -> None:
    """Settings common to both ends: no high-water marks (credit bounds memory), no linger, heartbeats.

    ZMTP heartbeats run in libzmq's I/O threads, so a peer busy in Python
    still answers; one that hangs or whose host vanishes is disconnected after
    `HEARTBEAT_TIMEOUT_MS`.
    """
    socket.setsockopt(zmq.SNDHWM, 0)
    socket.setsockopt(zmq.RCVHWM, 0)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_INTERVAL_MS)
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)


def set_curve_client(socket: zmq.Socket, public: bytes, secret: bytes) -> None:
    """Make ``socket`` a CurveZMQ client of a server holding the same key pair."""
    socket.curve_serverkey = public
    socket.curve_publickey = public
    socket.curve_secretkey = secret


def set_plain_client(socket: zmq.Socket, token: str) -> None:
    """Make ``socket`` a ZMTP PLAIN client that proves membership of a session with its ``token``."""
    socket.plain_username = PLAIN_USER.encode()
    socket.plain_password = token.encode()


def is_loopback(address: str) -> bool:
    """Whether a ZeroMQ endpoint is reachable from this host only (``ipc://`` or a loopback ``tcp://``).

    >>> is_loopback("tcp://127.0.0.1:5555"), is_loopback("ipc:///tmp/x"), is_loopback("tcp://*:5555")
    (True, True, False)
    >>> is_loopback("tcp://[::1]:1"), is_loopback("tcp://localhost:1"), is_loopback("tcp://0.0.0.0:1")
    (True, True, False)
    """
    scheme, _, rest = address.partition("://")
    if scheme == "ipc":
        return True
    if scheme != "tcp":
        return False
    host = urlsplit(f"tcp://{rest}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
