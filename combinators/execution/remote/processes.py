"""`Processes`: run source activations in a pool of local worker processes.

The pool talks to the consumer over ZeroMQ ``ipc://`` sockets in a private
temporary directory (removed at close; loopback TCP where libzmq has no
``ipc``), with the credit-based flow control and
zero-copy framing of `combinators.execution.remote.session` and
`combinators.execution.remote.wire`.
"""

from __future__ import annotations

import functools
import shutil
from typing import Any, Callable

import attrs
import zmq

from combinators.execution import base
from combinators.execution.remote import lifetime as _lifetime
from combinators.execution.remote.options import default_workers, placement, positive_int, start_method
from combinators.execution.remote.options import inline as _inline
from combinators.execution.remote.placement import Costs
from combinators.execution.remote.session import RemoteSession, SessionOptions

__all__ = ["Processes"]


@attrs.frozen
class Processes(base.Executor):
    """Run each source activation in one of ``workers`` local processes; items stream back.

    - ``workers``: processes to start (default: the CPUs this process may use).
    - ``start_method``: ``None`` (the platform's default), ``"fork"``,
      ``"spawn"`` or ``"forkserver"``; plans travel with cloudpickle, so
      lambdas and closures work under every method.
    - ``prefetch``: items of one activation a worker may have in flight
      (produced, not yet taken by the consumer); with ``prefetch_bytes`` (bytes
      in flight) it bounds the memory of a slow consumer, and the work wasted
      on an activation closed early.
    - ``inline``: run in the consumer the leaves whose items cost less to
      make than to move (as measured by the workers on the leaf's first
      activations, or on leaves of the same kind and then checked in the
      consumer: less than `placement.INLINE_RATIO` times the time spent
      starting, packing and sending them; see `placement.Placer.runs_inline`).
      Receiving such an item costs the consumer about as much as making it,
      so a worker would add nothing but contention. ``activations_inline`` of
      `Run.executor_stats` counts them; where a leaf runs never changes the
      items. ``False`` runs every activation in a worker. A
      `placement.Costs` is ``True`` with the costs it tells for each leaf's
      items in place of those the clocks measure (the same placement on any
      machine, however loaded).

    Raises `InvalidArgumentType`/`InvalidArgument` for a field of the wrong
    type or value; running activations raise what the worker raised (after
    the items yielded before it), or `WorkerError` if a worker dies.

    >>> Processes(workers=2)
    Processes(workers=2, start_method=None, prefetch=1024, prefetch_bytes=33554432, inline=True)
    >>> with Processes(workers=1).open() as session:
    ...     list(session.submit(range, 3))
    [0, 1, 2]
    """

    workers: int = attrs.field(factory=default_workers, validator=positive_int)
    start_method: str | None = attrs.field(default=None, validator=start_method)
    prefetch: int = attrs.field(default=1024, validator=positive_int)
    prefetch_bytes: int = attrs.field(default=32 << 20, validator=positive_int)
    inline: bool | Costs = attrs.field(default=True, validator=_inline)

    def describe_placement(self, part: Any, nested: bool = False) -> str:
        """Where ``part`` runs, for ``explain(plan, executor=...)`` (`options.placement`)."""
        return placement(part, nested, "worker processes", self.inline)

    def open(self) -> RemoteSession:
        """Start the workers; a session to submit activations to (close it, or use ``with``)."""
        if not zmq.has("ipc"):  # Windows builds of libzmq without ipc: loopback TCP
            return RemoteSession(self._options("tcp://127.0.0.1:*", None))
        directory = _lifetime.run_folder()  # private (0700); a later run removes it if we are SIGKILLed
        cleanup = functools.partial(shutil.rmtree, directory, ignore_errors=True)
        try:
            return RemoteSession(self._options(f"ipc://{directory}/session", cleanup))
        except BaseException:
            cleanup()
            raise

    def _options(self, bind: str, cleanup: Callable[[], None] | None) -> SessionOptions:
        return SessionOptions(
            bind=bind,
            workers=self.workers,
            start_method=self.start_method,
            prefetch=self.prefetch,
            prefetch_bytes=self.prefetch_bytes,
            cleanup=cleanup,
            inline=self.inline,
        )


base.EXECUTOR_NAMES["processes"] = Processes
