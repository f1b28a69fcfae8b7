"""The messages between a consumer session and its workers, and socket settings both sides share.

The consumer binds a ROUTER socket; each worker connects a DEALER socket.
Every message starts with a *head* frame: one kind byte and a 64-bit
number (the activation id, or the worker's pid in HELLO), followed, for
START and CREDIT, by four 64-bit flow figures: items and bytes taken by the
consumer, and the window in items and bytes.

Consumer to worker:

- ``START(id, 0, 0, window_items, window_bytes) plan``: run ``fn(*args)``
  (``plan`` is ``cloudpickle.dumps((fn, args))``) within that window;
- ``CREDIT(id, items, bytes, window_items, window_bytes)``: the consumer took
  that much of the activation; the window is now that large;
- ``CANCEL(id)``: close the activation's generator;
- ``PING``: liveness probe (ignored); ``QUIT``: close everything and exit.

Worker to consumer:

- ``HELLO(pid) host``: the worker is connected and ready;
- ``ITEMS(id) header *buffers``: coalesced items (see `combinators.execution.wire`);
- ``END(id)``: the activation is exhausted;
- ``FAULT(id) exception type_name message traceback``: it raised (``exception``
  is its cloudpickle, or empty when it cannot be pickled).

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

import ipaddress
import struct
from typing import Any, Sequence
from urllib.parse import urlsplit

import zmq

START, CREDIT, CANCEL, PING, QUIT = b"S", b"C", b"X", b"P", b"Q"
HELLO, ITEMS, END, FAULT = b"H", b"I", b"E", b"F"

_HEAD = struct.Struct("<cQ")
_FLOW_HEAD = struct.Struct("<cQQQQQ")
#: the length of a head frame from a worker
HEAD_BYTES = _HEAD.size
_SNDMORE = int(zmq.SNDMORE)
_POLLIN = int(zmq.POLLIN)
#: ZMTP heartbeat period, and the silence after which a connection is dropped (milliseconds)
HEARTBEAT_INTERVAL_MS = 500
HEARTBEAT_TIMEOUT_MS = 3000
_ZERO_COPY_BYTES = 65536
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
