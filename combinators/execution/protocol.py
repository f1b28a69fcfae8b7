"""The messages between a consumer session and its workers, and socket settings both sides share.

The consumer binds a ROUTER socket; each worker connects a DEALER socket.
Every message is a multipart message whose first frame is one of the kind
bytes below, and whose second frame (where there is one) is an activation id
packed with `pack_id`.

Consumer to worker:

- ``START id window_items window_bytes plan``: run ``fn(*args)`` (``plan`` is
  ``cloudpickle.dumps((fn, args))``) with that much credit;
- ``CREDIT id items bytes``: the consumer took a message of that size;
- ``CANCEL id``: close the activation's generator;
- ``PING``: liveness probe (ignored); ``QUIT``: close everything and exit.

Worker to consumer:

- ``HELLO pid host``: the worker is connected and ready;
- ``ITEMS id header *buffers``: coalesced items (see `combinators.execution.wire`);
- ``END id``: the activation is exhausted;
- ``FAULT id exception type_name message traceback``: it raised (``exception``
  is its cloudpickle, or empty when it cannot be pickled).

Flow control is credit-based: a worker keeps at most ``window_items`` items
and ``window_bytes`` bytes of an activation in flight (sent, not yet taken by
the consumer), except that one message may always be in flight, whatever its
size.
"""

from __future__ import annotations

import ipaddress
import struct
from urllib.parse import urlsplit

import zmq

START, CREDIT, CANCEL, PING, QUIT = b"S", b"C", b"X", b"P", b"Q"
HELLO, ITEMS, END, FAULT = b"H", b"I", b"E", b"F"

_ID = struct.Struct("<Q")
_CREDIT = struct.Struct("<QQ")
pack_id = _ID.pack


def unpack_id(frame: bytes | memoryview) -> int:
    return _ID.unpack(frame)[0]


def pack_credit(items: int, nbytes: int) -> bytes:
    return _CREDIT.pack(items, nbytes)


def unpack_credit(frame: bytes | memoryview) -> tuple[int, int]:
    return _CREDIT.unpack(frame)


def configure(socket: zmq.Socket) -> None:
    """Settings common to both ends: no high-water marks (credit bounds memory), no linger."""
    socket.setsockopt(zmq.SNDHWM, 0)
    socket.setsockopt(zmq.RCVHWM, 0)
    socket.setsockopt(zmq.LINGER, 0)


def set_curve_client(socket: zmq.Socket, public: bytes, secret: bytes) -> None:
    """Make ``socket`` a CurveZMQ client of a server holding the same key pair."""
    socket.curve_serverkey = public
    socket.curve_publickey = public
    socket.curve_secretkey = secret


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
