"""The side of the `Ray` executor that runs in Ray workers: `SourceActor`, which makes items ahead of the consumer.

`combinators.execution.remote.ray.RaySession` creates its actors as
``ray.remote(SourceActor)`` and calls them; each actor makes items for its
activations in a producer thread, the most starved first, within each one's
budget and window (`INITIAL_WINDOW` items at first, doubling with each sweep
up to ``prefetch``), and returns them in sweeps, which wait up to
`FLUSH_INTERVAL` seconds for a full batch (see the `ray` module's docstring).
A source's exception travels as a `fault_report`, which the consumer raises
again with `raise_fault`.
"""

from __future__ import annotations

import collections
import os
import pickle
import socket
import sys
import threading
import time
import traceback
from typing import Any, Iterator

import cloudpickle
import numpy as np

from combinators.errors import TransportError, WorkerError

__all__ = ["SourceActor", "item_bytes", "fault_report", "raise_fault"]

#: items an activation without a budget may first run ahead of the consumer; doubles with each sweep, up to ``prefetch``
INITIAL_WINDOW = 32
#: seconds a sweep may wait for a full batch of the activation the consumer needs (it has one item at least)
FLUSH_INTERVAL = 0.04
#: the size counted for an item part that is not an array, bytes or str
_SMALL = 64


class _Running:
    """One activation inside an actor: its plan or generator, the items made ahead, its budget and window."""

    __slots__ = ("plan", "iterator", "buffer", "nbytes", "made", "taken", "left", "ahead", "window", "ended",
                 "fault", "waiting", "busy", "cancelled")

    def __init__(self, plan: tuple[Any, tuple[Any, ...]], limit: int, window: tuple[int, int]):
        self.plan: tuple[Any, tuple[Any, ...]] | None = plan
        self.iterator: Iterator[Any] | None = None
        self.buffer: collections.deque[tuple[Any, int]] = collections.deque()  # (item, its size) made, not sent
        self.nbytes = 0  # the buffered items' size
        self.made = self.taken = 0  # items made; items the consumer had taken at its last sweep
        self.left = limit or -1  # items it may still make (its budget; -1: no limit)
        # items it may make ahead of the consumer: its whole budget when that fits the prefetch window
        # (all of it will be taken unless the run stops), else a window that doubles with each sweep
        self.ahead = limit if 0 < limit <= window[0] else min(INITIAL_WINDOW, window[0])
        self.window = window  # (most items ahead of the consumer, most bytes buffered)
        self.ended = False
        self.fault: tuple[bytes, str, str, str] | None = None
        self.waiting: tuple[int, int] | None = None  # (items, bytes) of the batch a sweep waits for
        self.busy = self.cancelled = False

    def stopped(self) -> bool:
        """Whether it will make no item before the consumer takes some: at its end, budget or window."""
        return (
            self.ended or self.left == 0 or self.made - self.taken >= self.ahead or self.nbytes >= self.window[1]
        )

    def has_room(self) -> bool:
        """Whether the producer may make its next item: budget left, within the window (or a sweep waits for it)."""
        if self.ended or self.busy or self.left == 0:
            return False
        if self.waiting and not self.buffer:
            return True
        return self.made - self.taken < self.ahead and self.nbytes < self.window[1]


class SourceActor:
    """A Ray actor that runs activations ahead of the consumer in a producer thread; calls drain them.

    One thread (Ray's) answers the calls in order; the producer thread makes
    items for the actor's activations, the most starved first (one a sweep waits for,
    then the fewest items ahead), each within its window and budget.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running: dict[int, _Running] = {}
        self._plans: dict[int, tuple[Any, tuple[Any, ...]]] = {}
        threading.Thread(target=self._produce, name="combinators-producer", daemon=True).start()

    def where(self) -> tuple[int, str]:
        """This actor's process id and host name (also tells the consumer the actor is up)."""
        return os.getpid(), socket.gethostname()

    def start(
        self, activation_id: int, plan: tuple[int, bytes | None], extra: tuple[Any, ...], limit: int,
        window: tuple[int, int],
    ) -> list[tuple[int, list[Any], int, tuple[bytes, str, str, str] | None]]:
        """Start ``fn(*args, *extra)`` (``plan``: its number, and its pickle the first time), making at most
        ``limit`` items (0: no limit); its first item, as `sweep` returns it."""
        number, pickled = plan
        try:
            if pickled is None:
                fn, args = self._plans[number]
            else:
                fn, args = cloudpickle.loads(pickled)
                if number >= 0:  # a plan of the run's, kept for its next activations (-1: a one-off submit)
                    self._plans[number] = (fn, args)
        except ModuleNotFoundError as error:  # the plan's code lives in a module this worker cannot import
            failure = TransportError(f"a Ray worker cannot import module {error.name!r}: {error}")
            failure.module = error.name  # type: ignore[attr-defined]  # the consumer adds how to ship it
            return [(activation_id, [], -1, fault_report(failure))]
        except BaseException as error:  # noqa: BLE001 - reported to the consumer
            return [(activation_id, [], -1, fault_report(error))]
        with self._changed:
            self._running[activation_id] = _Running((fn, (*args, *extra)), limit, window)
            self._changed.notify_all()
        return self.sweep(activation_id, [(activation_id, 0)], 1, 1)

    def sweep(
        self, wanted: int, taken: list[tuple[int, int]], max_items: int, max_bytes: int
    ) -> list[tuple[int, list[Any], int, tuple[bytes, str, str, str] | None]]:
        """The items made so far of each activation ``(id, items the consumer had taken)`` in ``taken``:
        ``(id, items, left, fault)`` for those with items or at their end.

        ``left`` counts the items still made ahead here, or is -1 once the
        activation has ended (then ``fault`` describes its exception, if
        any); each batch holds at most ``max_items`` items and ``max_bytes``
        bytes. Waits for the first item of ``wanted``, then up to
        `FLUSH_INTERVAL` s from its arrival for a full batch of it (see
        `_wait_for_items`).
        """
        with self._changed:
            for activation_id, count in taken:
                running = self._running.get(activation_id)
                if running is not None:
                    running.taken = max(running.taken, count)
                    running.ahead = min(2 * running.ahead, max(running.ahead, running.window[0]))
            self._changed.notify_all()
            running = self._running.get(wanted)
            if running is not None and not running.ended:
                self._wait_for_items(running, max_items, max_bytes)
            batches = [(activation_id, *self._batch(activation_id, max_items, max_bytes)) for activation_id, _ in taken]
            self._changed.notify_all()
        return [batch for batch in batches if batch[1] or batch[2] < 0]

    def _batch(self, activation_id: int, max_items: int, max_bytes: int) -> tuple[list[Any], int, Any]:
        """Take the next batch of an activation (under the lock): ``(items, left, fault)`` as `sweep` says."""
        running = self._running.get(activation_id)
        if running is None:  # ended and sent, or cancelled
            return [], -1, None
        items: list[Any] = []
        nbytes = 0
        while running.buffer and len(items) < max_items and nbytes < max_bytes:
            item, size = running.buffer.popleft()
            items.append(item)
            nbytes += size
        running.nbytes -= nbytes
        if running.ended and not running.buffer:
            del self._running[activation_id]
            return items, -1, running.fault
        return items, len(running.buffer), None

    def _wait_for_items(self, running: _Running, max_items: int, max_bytes: int) -> None:
        """Wait for ``running``'s first item, then until `FLUSH_INTERVAL` s after the call came for a full
        batch, unless it cannot make more (its end, budget or window)."""
        deadline = time.monotonic() + FLUSH_INTERVAL
        running.waiting = (max_items, max_bytes)
        self._changed.notify_all()
        self._changed.wait_for(lambda: running.buffer or running.ended)
        while len(running.buffer) < max_items and running.nbytes < max_bytes and not running.stopped():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._changed.wait(remaining)
        running.waiting = None

    def cancel(self, activation_id: int) -> int:
        """Stop the activation: its generator is closed (its ``finally`` blocks run here); how many items it
        made (0 if it had ended)."""
        with self._changed:
            running = self._running.pop(activation_id, None)
            if running is None:
                return 0
            running.cancelled = True
            if running.busy:  # the producer is making its item: it closes the generator after
                return running.made
        _close(running.iterator)
        return running.made

    def _produce(self) -> None:
        """The producer thread: make the next item of the most starved activation with room, forever."""
        while True:
            with self._changed:
                running = self._changed.wait_for(self._pick)
                running.busy = True
            item, size, ended, fault = self._make(running)
            if size >= 0 and running.left == 1:  # the last of its budget: closed while no one else may close it
                _close(running.iterator)
            with self._changed:
                running.busy = False
                cancelled = running.cancelled  # then `cancel` left closing it to this thread
                if size >= 0 and not cancelled:
                    running.buffer.append((item, size))
                    running.nbytes += size
                    running.made += 1
                    running.left -= 1
                    ended = running.left == 0
                if ended or cancelled:
                    running.ended, running.fault = True, fault
                if running.ended or self._wakes(running):
                    self._changed.notify_all()
            if cancelled:
                _close(running.iterator)

    @staticmethod
    def _wakes(running: _Running) -> bool:
        """Whether the sweep waiting for ``running`` (if any) may stop waiting now (only then is it woken)."""
        if running.waiting is None:
            return False
        items, nbytes = running.waiting
        return len(running.buffer) in (1, items) or running.nbytes >= nbytes or running.stopped()

    def _pick(self) -> _Running | None:
        """The activation to make an item for next: one a sweep waits for, else the fewest ahead; None if none may."""
        best, best_key = None, None
        for running in self._running.values():
            if running.has_room():
                key = (not running.waiting, running.made - running.taken)
                if best_key is None or key < best_key:
                    best, best_key = running, key
        return best

    @staticmethod
    def _make(running: _Running) -> tuple[Any, int, bool, tuple[bytes, str, str, str] | None]:
        """``running``'s next item: ``(item, size, False, None)``, or ``(None, -1, True, fault or None)`` at its end."""
        try:
            if running.iterator is None:
                fn, args = running.plan
                running.plan = None
                running.iterator = iter(fn(*args))
            item = next(running.iterator)
            return item, item_bytes(item), False, None
        except StopIteration:
            return None, -1, True, None
        except BaseException as error:  # noqa: BLE001 - reported to the consumer
            return None, -1, True, fault_report(error)


def _close(iterator: Any) -> None:
    """Close a generator; one whose cleanup fails must not take the actor down."""
    close = getattr(iterator, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            pass


def item_bytes(item: Any) -> int:
    """About how many bytes ``item`` takes: its arrays', bytes' and strings' sizes, `_SMALL` for the rest.

    >>> item_bytes({"x": np.zeros(256, np.float32), "label": 3})
    1152
    """
    if isinstance(item, np.ndarray):
        return item.nbytes
    if isinstance(item, (bytes, str, bytearray)):
        return len(item)
    if isinstance(item, dict):
        return _SMALL + sum(item_bytes(value) for value in item.values())
    if isinstance(item, (list, tuple)):
        return _SMALL + sum(item_bytes(value) for value in item)
    return _SMALL


def fault_report(error: BaseException) -> tuple[bytes, str, str, str]:
    """What the consumer needs to raise ``error`` again: (its pickle or b"", type name, message, traceback)."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    try:
        pickled = cloudpickle.dumps(error) if isinstance(error, Exception) else b""
    except Exception:
        pickled = b""
    return pickled, f"{type(error).__module__}.{type(error).__qualname__}", str(error), text


def raise_fault(report: tuple[bytes, str, str, str], where: str) -> BaseException:
    """The exception a `fault_report` describes: its own type where it unpickles, else `WorkerError`."""
    pickled, type_name, message, text = report
    try:
        error = pickle.loads(pickled) if pickled else None
    except Exception:
        error = None
    if not isinstance(error, BaseException):
        return WorkerError(f"{type_name}: {message} (raised in {where})", remote_traceback=text)
    error.__cause__ = WorkerError(f"{type_name} raised in {where}", remote_traceback=text)
    try:
        error.remote_traceback = text  # type: ignore[attr-defined]
    except AttributeError:
        pass
    return error


def with_shipping_advice(error: BaseException, where: str) -> BaseException:
    """``error``, or for a plan whose module a Ray worker cannot import (a `TransportError` with ``module``),
    a `TransportError` that says which module, where it is here, and how to ship it to Ray's workers.

    cloudpickle sends a module-level function by reference (its module and name), so a worker must be able
    to import its module; a module found only through this process's ``sys.path`` (a script's folder, a
    notebook's) is not on the workers'. Three ways: Ray's ``runtime_env`` given to ``ray.init`` before the
    first run (``working_dir`` for a module file's folder, ``py_modules`` for a package; Ray uploads local
    folders for a whole job only), installing it where the workers run, or
    ``cloudpickle.register_pickle_by_value(module)`` to send its code with the plan.
    """
    name = getattr(error, "module", None)
    if not isinstance(error, TransportError) or not name:
        return error
    path = getattr(sys.modules.get(name), "__file__", None)
    if path is None:
        ship = f"install {name!r} where Ray's workers run"
    elif os.path.basename(path) == "__init__.py":  # a package: py_modules takes its folder
        ship = f"ray.init(runtime_env={{'py_modules': [{os.path.dirname(path)!r}]}}) before the first run"
    else:  # a module file: its folder becomes the workers' working directory, on their import path
        ship = f"ray.init(runtime_env={{'working_dir': {os.path.dirname(path)!r}}}) before the first run"
    msg = (f"{where} cannot import module {name!r} ({path or 'not a file'}), which a source of this plan comes "
           f"from (cloudpickle sends module-level functions by reference). Ship it with Ray's runtime_env: {ship} "
           f"(Ray takes local folders only for the whole job), install it where the workers run, or call "
           f"cloudpickle.register_pickle_by_value({name}) to send its code with the plan")
    advice = TransportError(msg)
    advice.__cause__ = error
    return advice
