"""An activation running in a worker, as the consumer sees it: its items, its credit, its move to the consumer.

A `RemoteActivation` is made by its session
(`combinators.execution.remote.session.RemoteSession`), which reads the
socket and hands each activation its messages; the activation decodes them
only when the consumer reaches them, returns credit to its worker as the
consumer takes items (its window starts at `INITIAL_WINDOW_ITEMS` and
`INITIAL_WINDOW_BYTES` and doubles with each credit, up to the prefetch
limits), and may move to the consumer once its leaf is found cheap
(`combinators.execution.remote.placement`). `_Flow` counts a session's
activity: activations started, items received and left over, start latencies.
"""

from __future__ import annotations

import collections
import time
from typing import Any, Iterable

import numpy as np
import zmq

from combinators.errors import TransportError
from combinators.execution.base import Activation
from combinators.execution.leaf import activate_leaf
from combinators.execution.remote import protocol
from combinators.execution.remote.peers import _Peer
from combinators.execution.remote.wire import unpack_items

__all__ = ["RemoteActivation", "START_BATCH", "INITIAL_WINDOW_ITEMS", "INITIAL_WINDOW_BYTES"]

#: starts waiting in outboxes before the consumer sends them without having to wait for items
START_BATCH = 4
#: an activation's first credit window; it doubles with each credit, up to the prefetch limits
INITIAL_WINDOW_ITEMS = 16
INITIAL_WINDOW_BYTES = 1 << 20


class RemoteActivation(Activation):
    """The items of one activation running in a worker, decoded as the consumer reaches them.

    ``session`` is the `combinators.execution.remote.session.RemoteSession` that started it (typed `Any`:
    this module is below the session's, which imports it).
    """

    __slots__ = (
        "_session", "_id", "_peer", "_items", "_messages", "_finished", "_error",
        "_owed_items", "_owed_bytes", "_window_items", "_window_bytes", "_parts", "_submitted",
        "_left", "_item_credit", "_leaf", "_moving", "_local", "_decoded", "_skip_limit",
    )

    def __init__(self, session: Any, activation_id: int, limit: int | None = None):
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
        few (`combinators.execution.remote.placement.MOVE_MAX_SKIP`, plus the credit window its worker
        still had).
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
        # of ``started`` and ``inline``: activations of a block mix's row sources (`placed_rows`)
        self.rows = self.rows_inline = 0

    def left_over(self, items: Any, messages: Iterable[list[Any]]) -> None:
        """Count the items of a closed activation that the consumer never took."""
        counted = len(items) + sum(map(_count_items, messages))
        self.wasted += counted
        self.received += counted - len(items)

    def figures(self) -> dict[str, float]:
        """``activations`` (started in workers), ``activations_inline`` (run in the consumer), ``activations_moved``
        (started in workers, finished in the consumer), ``items_received``,
        ``items_wasted`` (received, never taken: produced for nothing) and the median and 99th percentile of
        ``start_latency_ms`` (submit to first message). ``row_activations`` and ``row_activations_inline`` count
        those of ``activations`` and ``activations_inline`` that opened a block mix's row source (its rows
        read in a worker and shipped as blocks, or read in the consumer)."""
        latency = np.percentile(self.latencies, [50, 99]) * 1000 if self.latencies else [np.nan, np.nan]
        return {
            "activations": self.started, "activations_inline": self.inline, "activations_moved": self.moved,
            "row_activations": self.rows, "row_activations_inline": self.rows_inline,
            "items_received": self.received, "items_wasted": self.wasted,
            "start_latency_median_ms": float(latency[0]), "start_latency_p99_ms": float(latency[1]),
        }

