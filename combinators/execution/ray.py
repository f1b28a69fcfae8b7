"""`Ray`: run source activations in Ray actors, on a local Ray or an existing Ray cluster.

A session creates ``workers`` actors of `SourceActor` (each asks Ray for the
executor's ``resources``, one CPU by default) and kills them at close. The
placement rule is the one of `Processes` and `ZMQ`: each source activation
(a leaf with the transforms directly above it) is shipped with cloudpickle to
the least-loaded actor, and every sampling decision stays in the consumer, so
the same seed gives the same items as in process, for any worker count.

In an actor, a producer thread gives each of its activations a turn of up
to `TURN_SECONDS` in round-robin, and buffers what it makes, up to a quarter
of the executor's ``prefetch`` items and ``prefetch_bytes`` bytes per
activation; an activation whose buffer is full waits for the consumer
(backpressure). Items come back in *pulls*: one actor method call returns
every item buffered (at least one, at most those quarter limits), so small
items are coalesced into one round trip while a slow source's first item
comes at once. Each activation keeps `PULLS_AHEAD` pulls queued at its
actor, answered in order; so it runs ahead of the consumer by at most
``prefetch`` items (or ``prefetch_bytes`` bytes, one item more).
Ray stores a pull's result in its object store; numpy arrays come back as
zero-copy, read-only views of it (copy one with ``np.array(x)`` before
writing in place).

Faults: a source's exception ends its pull with the items made before it,
and reaches the consumer after them, as the same type where it unpickles,
with the remote traceback attached (``remote_traceback``, and a `WorkerError`
as ``__cause__``). A dead actor (``ray.kill``, a lost node) makes its
activations raise `WorkerError` naming the actor, as soon as Ray reports it.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import math
import os
import pickle
import socket
import threading
import time
import traceback
import weakref
from typing import Any, Callable, Iterable, Iterator, Mapping

import attrs
import cloudpickle
import numpy as np

from combinators.errors import CombinatorsError, InvalidArgument, InvalidArgumentType, TransportError, WorkerError
from combinators.execution import base
from combinators.execution._options import default_workers, positive_int, positive_number

__all__ = ["Ray", "RaySession", "RayActivation", "SourceActor"]

#: pulls each activation keeps queued at its actor
PULLS_AHEAD = 2
#: seconds of one activation's turn in an actor's producer thread (at least one item)
TURN_SECONDS = 0.002
_EXHAUSTED = object()  # the outcome of an activation that ran dry
#: the size counted for an item part that is not an array, bytes or str
_SMALL = 64

_INSTALL = 'pip install "combinators[ray]"'


def import_ray() -> Any:
    """The ``ray`` module; `CombinatorsError` naming the ``ray`` extra when it is not installed."""
    try:
        import ray
    except ImportError as error:
        msg = f"the Ray executor needs the ray package, which is not installed ({error}); install it with {_INSTALL}"
        raise CombinatorsError(msg) from None
    return ray


def _address(owner: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        msg = f"{type(owner).__name__}.{attribute.name} must be None, 'auto' or 'ray://host:port', not {value!r}"
        raise InvalidArgumentType(msg)


def _resources(value: Any) -> tuple[tuple[str, float], ...] | None:
    """``Ray.resources`` checked and frozen: sorted ``(name, amount)`` pairs, or None."""
    if value is None:
        return None
    pairs = value.items() if isinstance(value, Mapping) else value
    try:
        pairs = [(key, amount) for key, amount in pairs]
    except (TypeError, ValueError):
        msg = f"Ray.resources must be None or a mapping of Ray resource names to amounts, not {value!r}"
        raise InvalidArgumentType(msg) from None
    for key, amount in pairs:
        if not isinstance(key, str) or isinstance(amount, bool) or not isinstance(amount, (int, float)):
            msg = f"Ray.resources maps resource names (str) to amounts (numbers), not {key!r}: {amount!r}"
            raise InvalidArgumentType(msg)
        if not amount >= 0:
            msg = f"Ray.resources[{key!r}] must be >= 0, not {amount!r}"
            raise InvalidArgument(msg)
    return tuple(sorted(pairs))


@attrs.frozen
class Ray(base.Executor):
    """Run each source activation in one of ``workers`` Ray actors; items stream back.

    - ``workers``: actors to create for each run (default: the CPUs this
      process may use). Each asks Ray for ``resources``.
    - ``address``: ``None`` uses the Ray this process already joined
      (``ray.init()``), else starts a local Ray with as many CPUs as this
      process may use (at least ``workers``); ``"auto"`` joins the cluster
      started on this host with ``ray start``, and ``"ray://host:port"`` one
      elsewhere through Ray Client. A process joins one Ray: once it has,
      every `Ray` executor uses that one, whatever its ``address``.
    - ``resources``: what each actor asks of Ray, as Ray names them
      (``{"CPU": 1, "GPU": 0, "memory": bytes, "my_label": 1}``); default one
      CPU. Stored as sorted ``(name, amount)`` pairs.
    - ``prefetch``, ``prefetch_bytes``: how far one activation may run ahead
      of the consumer, in items and bytes (see the module docstring).
    - ``timeout``: seconds to wait for Ray to place and start the actors.

    Raises `CombinatorsError` naming the ``ray`` extra when ray is not
    installed, `InvalidArgumentType`/`InvalidArgument` for a field of the
    wrong type or value; opening raises `WorkerError` when Ray cannot start
    the actors within ``timeout``; running activations raise what the
    source raised (after the items before it), or `WorkerError` if an actor dies.

    >>> Ray(workers=2, resources={"CPU": 1})  # doctest: +SKIP
    Ray(workers=2, address=None, resources=(('CPU', 1),), prefetch=1024, prefetch_bytes=33554432, timeout=60.0)
    """

    workers: int = attrs.field(factory=default_workers, validator=positive_int)
    address: str | None = attrs.field(default=None, validator=_address)
    resources: tuple[tuple[str, float], ...] | None = attrs.field(
        default=None, converter=_resources
    )
    prefetch: int = attrs.field(default=1024, validator=positive_int)
    prefetch_bytes: int = attrs.field(default=32 << 20, validator=positive_int)
    timeout: float = attrs.field(default=60.0, validator=positive_number)

    def __attrs_post_init__(self) -> None:
        import_ray()

    def open(self) -> RaySession:
        """Join or start Ray, create the actors; a session to submit activations to (close it, or use ``with``)."""
        return RaySession(self)

    def pull_limits(self) -> tuple[int, int]:
        """What one pull returns at most, and an actor holds for one activation: a quarter of the prefetch limits."""
        return max(1, self.prefetch // 4), max(1, self.prefetch_bytes // 4)

    def actor_options(self) -> dict[str, Any]:
        """The options each actor is created with (``ray.remote(...).options(**these)``)."""
        wanted = dict(self.resources) if self.resources is not None else {"CPU": 1}
        options: dict[str, Any] = {"num_cpus": wanted.pop("CPU", 0), "max_restarts": 0, "max_task_retries": 0}
        if "GPU" in wanted:
            options["num_gpus"] = wanted.pop("GPU")
        if "memory" in wanted:
            options["memory"] = wanted.pop("memory")
        if wanted:
            options["resources"] = wanted
        return options


def connect(ray: Any, executor: Ray) -> None:
    """Join the Ray ``executor`` names, unless this process joined one already; `WorkerError` if that fails."""
    if ray.is_initialized():
        return
    try:
        if executor.address is None:
            cpus = max(default_workers(), math.ceil(executor.workers * executor.actor_options()["num_cpus"]))
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING)
        else:
            ray.init(address=executor.address, logging_level=logging.WARNING)
    except Exception as error:  # no cluster at that address, a version mismatch, ...
        where = "a local Ray" if executor.address is None else f"the Ray cluster at {executor.address!r}"
        msg = f"cannot start or join {where}: {type(error).__name__}: {error}"
        raise WorkerError(msg) from error


class _Buffer:
    """One activation in an actor: its generator and the items made but not yet pulled."""

    __slots__ = ("plan", "iterator", "items", "nbytes", "ended", "fault", "cancelled", "queued", "served", "last",
                 "changed")

    def __init__(self, changed: asyncio.Event):
        self.plan: bytes | None = None
        self.iterator: Iterator[Any] | None = None
        self.items: collections.deque[tuple[Any, int]] = collections.deque()  # (item, its size)
        self.nbytes = 0
        self.ended = False
        self.fault: tuple[bytes, str, str, str] | None = None
        self.cancelled = False
        self.queued = False  # in the producer's turns, or in its hands
        self.served = 0  # pulls answered: pull number k waits for this to reach k
        self.last: int | None = None  # the number of the last pull the consumer sends, once known
        self.changed = changed  # set (in the event loop) whenever items, or the turn to be served, change


class SourceActor:
    """A Ray actor (asyncio) that runs activations in a producer thread and answers pulls from their buffers.

    The producer thread gives each activation with room in its buffer a turn
    of up to `TURN_SECONDS` in round-robin, so every activation advances
    (a new one's first item comes after one turn of each other) and the actor
    never idles while one has room. A pull returns the items buffered (at
    least one, at most its limits), in the order the consumer numbered the
    pulls; Ray may deliver ``start``, ``pull`` and ``cancel`` calls out of
    order, so each creates the activation's buffer if it comes first. A
    buffer is dropped once the last pull the consumer sent is answered.
    """

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self._limits = (max_items, max_bytes)  # what one activation may hold made but not pulled
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._buffers: dict[int, _Buffer] = {}
        self._turns: collections.deque[_Buffer] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def where(self) -> tuple[int, str]:
        """This actor's process id and host name (also tells the consumer the actor is up)."""
        return os.getpid(), socket.gethostname()

    def _buffer(self, activation_id: int) -> _Buffer:
        """The activation's buffer, made if this is the first call about it (the lock held)."""
        buffer = self._buffers.get(activation_id)
        if buffer is None:
            buffer = self._buffers[activation_id] = _Buffer(asyncio.Event())
        return buffer

    def _queue(self, buffer: _Buffer) -> None:
        """Give ``buffer`` a turn of the producer (the lock held)."""
        if not buffer.queued:
            buffer.queued = True
            self._turns.append(buffer)
            self._wake.notify()

    async def start(self, activation_id: int, plan: bytes) -> None:
        """Queue ``(fn, args)`` (cloudpickled) for the producer, which calls ``fn(*args)`` and iterates it."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            threading.Thread(target=self._produce, name="combinators-producer", daemon=True).start()
        with self._lock:
            buffer = self._buffer(activation_id)
            if not buffer.cancelled:
                buffer.plan = plan
                self._queue(buffer)

    async def pull(
        self, activation_id: int, number: int, max_items: int, max_bytes: int
    ) -> tuple[list[Any], bool, tuple[bytes, str, str, str] | None]:
        """Pull ``number`` of the activation: ``(items, ended, fault)``, once its turn came and items are there."""
        while True:
            with self._lock:
                buffer = self._buffer(activation_id)
                if buffer.served == number and (buffer.items or buffer.ended or buffer.cancelled):
                    answer = self._take(activation_id, buffer, number, max_items, max_bytes)
                    buffer.changed.set()  # the next pull's turn
                    return answer
                buffer.changed.clear()
            await buffer.changed.wait()

    def _take(self, activation_id: int, buffer: _Buffer, number: int, max_items: int, max_bytes: int) -> tuple:
        """Answer pull ``number`` from ``buffer`` (the lock held); the producer gets a turn if it has room now."""
        items, nbytes = [], 0
        while buffer.items and len(items) < max_items and (not items or nbytes < max_bytes):
            item, size = buffer.items.popleft()
            items.append(item)
            nbytes += size
        buffer.nbytes -= nbytes
        buffer.served += 1
        if not (buffer.cancelled or (buffer.ended and not buffer.items)):
            if not buffer.ended and buffer.iterator is not None:
                self._queue(buffer)
            return items, False, None
        if buffer.last is None:  # this answer ends it: the consumer has sent this pull's followers already
            buffer.last = number + PULLS_AHEAD - 1
        if number >= buffer.last:
            self._buffers.pop(activation_id, None)
        fault, buffer.fault = buffer.fault, None
        return items, True, fault

    async def cancel(self, activation_id: int, last: int) -> None:
        """Stop the activation, whose last pull is number ``last``; the producer closes its generator."""
        with self._lock:
            buffer = self._buffer(activation_id)
            buffer.cancelled, buffer.last = True, last
            if buffer.served > last:
                self._buffers.pop(activation_id, None)
            if buffer.iterator is not None or buffer.plan is not None:
                self._queue(buffer)  # to close it
            buffer.changed.set()

    def _produce(self) -> None:
        """The producer thread: a turn for each activation with room, in round-robin, forever."""
        while True:
            with self._lock:
                while not self._turns:
                    self._wake.wait()
                buffer = self._turns.popleft()
            deadline = time.perf_counter() + TURN_SECONDS
            while self._step(buffer) and time.perf_counter() < deadline:
                pass
            with self._lock:
                has_room = len(buffer.items) < self._limits[0] and buffer.nbytes < self._limits[1]
                buffer.queued = not buffer.ended and (buffer.cancelled or has_room)  # a cancelled one: to close it
                if buffer.queued:
                    self._turns.append(buffer)

    def _step(self, buffer: _Buffer) -> bool:
        """Make one item of ``buffer`` and hand it to waiting pulls; whether the activation has room for more."""
        item, size, outcome = None, 0, None
        if buffer.cancelled:
            _close(buffer.iterator)
            outcome = _EXHAUSTED
        else:
            try:
                if buffer.iterator is None:
                    fn, args = cloudpickle.loads(buffer.plan)
                    buffer.plan = None
                    buffer.iterator = iter(fn(*args))
                item = next(buffer.iterator)
                size = item_bytes(item)
            except StopIteration:
                outcome = _EXHAUSTED
            except BaseException as error:  # noqa: BLE001 - reported to the consumer
                _close(buffer.iterator)
                outcome = fault_report(error)
        with self._lock:
            if outcome is None:
                buffer.items.append((item, size))
                buffer.nbytes += size
            else:
                buffer.ended, buffer.fault = True, None if outcome is _EXHAUSTED else outcome
            waited = not buffer.changed.is_set()  # a pull cleared it and waits
            more = outcome is None and len(buffer.items) < self._limits[0] and buffer.nbytes < self._limits[1]
        if waited:
            self._loop.call_soon_threadsafe(buffer.changed.set)
        return more


def _close(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # a generator whose cleanup fails must not take the actor down
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


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class _Worker:
    """One actor as the session sees it."""

    __slots__ = ("handle", "name", "pid", "host", "active", "death")

    def __init__(self, handle: Any, name: str):
        self.handle, self.name = handle, name
        self.pid: int | None = None
        self.host = "?"
        self.active = 0
        self.death: WorkerError | None = None  # why it died, once the session knows

    def describe(self) -> str:
        return f"Ray actor {self.name} (pid {self.pid} on {self.host})"


def _kill(ray: Any, handles: list[Any], owner: int) -> None:
    """Kill the session's actors (and nothing else); quiet when Ray has shut down already."""
    if os.getpid() != owner:  # a forked child exiting must not kill its parent's actors
        return
    for handle in handles:
        try:
            ray.kill(handle, no_restart=True)
        except Exception:  # Ray shut down (interpreter exit), or the actor is gone already
            pass
    handles.clear()


class RaySession(base.Session):
    """A session whose activations run in Ray actors it created; see the module docstring.

    Built by `Ray.open`. Raises `WorkerError` when Ray cannot place and start
    the actors within the executor's ``timeout``.
    """

    def __init__(self, executor: Ray):
        ray = self._ray = import_ray()
        connect(ray, executor)
        self._executor = executor
        self._ids = itertools.count()
        self._orphans: list[tuple[_Worker, int, int]] = []
        self._activations: weakref.WeakSet[RayActivation] = weakref.WeakSet()
        handles: list[Any] = []
        self._finalizer = weakref.finalize(self, _kill, ray, handles, os.getpid())
        actor_class, options = ray.remote(SourceActor), executor.actor_options()
        token = os.urandom(4).hex()
        self._workers = [_Worker(None, f"combinators-{token}-{i}") for i in range(executor.workers)]
        for worker in self._workers:
            worker.handle = actor_class.options(name=worker.name, **options).remote(*executor.pull_limits())
            handles.append(worker.handle)
        self._wait_ready()

    def _wait_ready(self) -> None:
        ray = self._ray
        refs = [worker.handle.where.remote() for worker in self._workers]
        try:
            places = ray.get(refs, timeout=self._executor.timeout)
        except ray.exceptions.GetTimeoutError:
            self.close()
            msg = (
                f"Ray did not start {self._executor.workers} actors asking {self._executor.actor_options()} "
                f"within {self._executor.timeout:g} s; the cluster has {ray.cluster_resources()}, "
                f"{ray.available_resources()} free"
            )
            raise WorkerError(msg) from None
        except ray.exceptions.RayError as error:
            self.close()
            msg = f"Ray could not start the actors of {self._executor!r}: {error}"
            raise WorkerError(msg) from None
        for worker, (pid, host) in zip(self._workers, places):
            worker.pid, worker.host = pid, host

    @property
    def actors(self) -> list[Any]:
        """The handles of the actors this session created (empty once closed)."""
        return [worker.handle for worker in self._workers] if self._finalizer.alive else []

    def submit(self, fn: Callable[..., Iterable[Any]], *args: Any) -> RayActivation:
        """Start ``fn(*args)`` in the least-loaded actor now; an iterator over its items."""
        if not self._finalizer.alive:
            msg = "submit() on a closed session"
            raise WorkerError(msg)
        try:
            plan = cloudpickle.dumps((fn, args))
        except Exception as error:
            msg = f"cannot ship activation {fn!r} to a Ray actor: {error}"
            raise TransportError(msg) from error
        self._send_orphan_cancels()
        worker = min(self._workers, key=lambda worker: (worker.death is not None, worker.active))
        activation = RayActivation(self, worker, next(self._ids))
        self._activations.add(activation)
        worker.active += 1
        if worker.death is not None:
            activation._fail(WorkerError(f"every actor of this session has died; the last: {worker.death}"))
            return activation
        try:
            worker.handle.start.remote(activation._id, plan)
        except Exception as error:
            activation._fail(self._lost(worker, error))
            return activation
        activation._pull_ahead()
        return activation

    def _get(self, ref: Any, worker: _Worker) -> tuple[list[Any], bool, tuple[bytes, str, str, str] | None]:
        """A pull's result; `WorkerError` naming the actor if it died."""
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as error:
            raise self._lost(worker, error) from None
        except ray.exceptions.RayError as error:  # the actor lives, but this pull failed (e.g. an item Ray cannot pickle)
            msg = f"a pull from {worker.describe()} failed: {_first_line(error)}"
            raise WorkerError(msg, remote_traceback=str(error)) from None

    def _lost(self, worker: _Worker, error: BaseException) -> WorkerError:
        if not self._finalizer.alive:
            return WorkerError(f"{worker.describe()} was released: the session is closed")
        if worker.death is None:
            worker.death = WorkerError(f"{worker.describe()} died: {_first_line(error)}")
        return WorkerError(str(worker.death))

    def _send_orphan_cancels(self) -> None:
        while self._orphans:
            self._cancel(*self._orphans.pop())

    def _cancel(self, worker: _Worker, activation_id: int, last: int) -> None:
        """Tell the actor to stop the activation, whose last pull sent is number ``last``."""
        worker.active -= 1
        if self._finalizer.alive:
            try:
                worker.handle.cancel.remote(activation_id, last)
            except Exception:  # the actor is gone: nothing to cancel
                pass

    def close(self) -> None:
        """Kill every actor this session created (nothing else); later ``next()`` raises StopIteration."""
        for activation in list(self._activations):
            activation._finished = True
            activation._pulls.clear()
            activation._items.clear()
        self._orphans.clear()
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._workers)} actors"
        return f"<RaySession {state}>"


class RayActivation(base.Activation):
    """The items of one activation running in a Ray actor, pulled ahead of the consumer."""

    __slots__ = ("_session", "_worker", "_id", "_pulls", "_items", "_finished", "_error", "_sent")

    def __init__(self, session: RaySession, worker: _Worker, activation_id: int):
        self._session, self._worker, self._id = session, worker, activation_id
        self._pulls: collections.deque[Any] = collections.deque()
        self._items: collections.deque[Any] = collections.deque()
        self._finished = False
        self._error: BaseException | None = None
        self._sent = 0  # pulls sent; the actor answers them in the order of their numbers

    def _pull_ahead(self) -> None:
        """Queue pulls at the actor until `PULLS_AHEAD` are outstanding."""
        pull, (max_items, max_bytes) = self._worker.handle.pull.remote, self._session._executor.pull_limits()
        while len(self._pulls) < PULLS_AHEAD:
            self._pulls.append(pull(self._id, self._sent, max_items, max_bytes))
            self._sent += 1

    def __next__(self) -> Any:
        if self._items:
            return self._items.popleft()
        return self._refill()

    def _refill(self) -> Any:
        while True:
            if self._finished:
                error, self._error = self._error, None
                if error is not None:
                    raise error
                raise StopIteration
            if self._session.closed:
                self._finish()
                continue
            ref = self._pulls.popleft()
            try:
                items, ended, fault = self._session._get(ref, self._worker)
            except WorkerError as error:
                self._fail(error)
                continue
            if ended:
                self._finish()
                if fault is not None:
                    self._error = raise_fault(fault, self._worker.describe())
            else:
                self._pull_ahead()
            if items:
                self._items = collections.deque(items)
                return self._items.popleft()

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._pulls.clear()
            self._worker.active -= 1

    def _fail(self, error: BaseException) -> None:
        self._finish()
        self._error = error

    def close(self) -> None:
        """Stop the activation: its actor closes the generator; later ``next()`` raises StopIteration."""
        if not self._finished:
            self._finished = True
            self._pulls.clear()
            self._session._cancel(self._worker, self._id, self._sent - 1)
        self._items.clear()
        self._error = None

    def __del__(self) -> None:
        try:
            if not self._finished:
                self._finished = True
                self._session._orphans.append((self._worker, self._id, self._sent - 1))
        except Exception:  # at interpreter exit, the session may be gone already
            pass

    def __repr__(self) -> str:
        return f"<RayActivation {self._id} on {self._worker.name} {'finished' if self._finished else 'running'}>"


base.EXECUTOR_NAMES["ray"] = Ray
