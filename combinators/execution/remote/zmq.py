"""`ZMQ`: run source activations in workers reached over ZeroMQ, on this host or others.

By default the session binds ``tcp://127.0.0.1`` on a free port, so nothing
beyond this host can reach it. Binding any other address serves remote
workers (``combinators worker --connect tcp://HOST:PORT --key FILE``) and
requires a CurveZMQ key pair: every connection is encrypted, and only
processes holding the secret key file may serve or use the session (workers
run the plans they receive, and the session unpickles what workers send).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs

from combinators.errors import InvalidArgument, InvalidArgumentType
from combinators.execution import base
from combinators.execution.remote import protocol
from combinators.execution.remote.options import (
    default_workers, non_negative_int, placement, positive_int, positive_number,
)
from combinators.execution.remote.options import inline as _inline, start_method as _start_method
from combinators.execution.remote.placement import Costs
from combinators.execution.remote.session import RemoteSession, SessionOptions
from combinators.execution.remote.worker import load_key

__all__ = ["ZMQ"]

_HOW_TO_MAKE_KEYS = (
    "make a key pair with `combinators worker --make-key PATH` (or "
    "combinators.execution.remote.worker.make_key(PATH)), then pass ZMQ(..., key='PATH.key_secret') "
    "and run each remote worker as `combinators worker --connect tcp://HOST:PORT --key PATH.key_secret`"
)


def _address(owner: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        msg = f"ZMQ.address must be a str such as 'tcp://127.0.0.1:5555', not {value!r} ({type(value).__name__})"
        raise InvalidArgumentType(msg)
    if not value.startswith(("tcp://", "ipc://")):
        msg = f"ZMQ.address must start with tcp:// or ipc://, not {value!r}"
        raise InvalidArgument(msg)
    if not protocol.is_loopback(value) and owner.key is None:
        msg = f"binding {value!r} would serve workers beyond this host, which requires CurveZMQ keys: "
        msg += _HOW_TO_MAKE_KEYS
        raise InvalidArgument(msg)


def _key(owner: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, (str, os.PathLike)):
        msg = f"ZMQ.key must be the path of a .key_secret file, not {value!r} ({type(value).__name__})"
        raise InvalidArgumentType(msg)
    if not Path(value).is_file():
        msg = f"ZMQ.key {str(value)!r} is not a file: {_HOW_TO_MAKE_KEYS}"
        raise InvalidArgument(msg)


@attrs.frozen
class ZMQ(base.Executor):
    """Run each source activation in a worker connected over ZeroMQ; items stream back.

    - ``workers``: local worker processes to start (default: the CPUs this
      process may use); ``0`` relies on remote workers only. Remote workers
      (``combinators worker``) may join a session that has a ``key`` or an
      ``ipc://`` address.
    - ``address``: where the session binds: ``None`` for ``tcp://127.0.0.1``
      on a free port, an ``ipc://`` path, or a ``tcp://`` address. Anything
      but loopback or ``ipc`` requires ``key``.
    - ``key``: path of a ``.key_secret`` file made by ``combinators worker
      --make-key PATH``; turns on CurveZMQ encryption and authentication.
    - ``start_method``, ``prefetch``, ``prefetch_bytes``: as for `Processes`.
    - ``timeout``: seconds to wait for a first worker before an activation
      raises `WorkerError` (only matters when no local worker is alive).
    - ``inline``: as for `Processes`, but off by default: remote workers may
      read data the consumer cannot reach.

    Raises `InvalidArgument` for a non-loopback address without a key (the
    message says how to make one) and for any other bad field.

    >>> ZMQ(workers=1)  # doctest: +NORMALIZE_WHITESPACE
    ZMQ(workers=1, address=None, key=None, start_method=None, prefetch=1024, prefetch_bytes=33554432, timeout=60.0,
    inline=False)
    >>> with ZMQ(workers=1).open() as session:
    ...     list(session.submit(range, 3))
    [0, 1, 2]
    """

    workers: int = attrs.field(factory=default_workers, validator=non_negative_int)
    address: str | None = attrs.field(default=None)
    key: str | None = attrs.field(default=None, validator=_key)
    start_method: str | None = attrs.field(default=None, validator=_start_method)
    prefetch: int = attrs.field(default=1024, validator=positive_int)
    prefetch_bytes: int = attrs.field(default=32 << 20, validator=positive_int)
    timeout: float = attrs.field(default=60.0, validator=positive_number)
    inline: bool | Costs = attrs.field(default=False, validator=_inline)

    def __attrs_post_init__(self) -> None:
        _address(self, attrs.fields(ZMQ).address, self.address)
        if self.workers == 0 and not self.accepts_remote_workers:
            msg = (
                "ZMQ(workers=0) relies on remote workers, which join only a session with a key or an ipc:// "
                f"address: {_HOW_TO_MAKE_KEYS}"
            )
            raise InvalidArgument(msg)

    @property
    def accepts_remote_workers(self) -> bool:
        """Whether workers other than the local ones may join: with a key, or over ``ipc://``.

        Without a key, a loopback TCP port is open to every local user, so only
        the workers the session started are served: they prove it with the run's
        token in the handshake (docs/execution.md, "Security model").
        """
        return self.key is not None or (self.address or "").startswith("ipc://")

    def describe_placement(self, part: Any, nested: bool = False) -> str:
        """Where ``part`` runs, for ``explain(plan, executor=...)`` (`options.placement`)."""
        return placement(part, nested, "ZMQ workers", self.inline)

    def open(self) -> RemoteSession:
        """Bind the address and start the local workers; a session to submit activations to."""
        options = SessionOptions(
            bind=self.address or "tcp://127.0.0.1:*",
            workers=self.workers,
            start_method=self.start_method,
            prefetch=self.prefetch,
            prefetch_bytes=self.prefetch_bytes,
            key=load_key(self.key) if self.key is not None else None,
            timeout=float(self.timeout),
            accept_remote=self.accepts_remote_workers,
            inline=self.inline,
        )
        return RemoteSession(options)


base.EXECUTOR_NAMES["zmq"] = ZMQ
