"""`Ray`: run source activations in Ray actors, on a local Ray or an existing Ray cluster.

A session creates ``workers`` actors of `SourceActor` (each asks Ray for the
executor's ``resources``, one CPU by default) and kills them at close. The
placement rule is the one of `Processes` and `ZMQ`: each source activation
(a leaf with the transforms directly above it) is shipped with cloudpickle to
the least-loaded actor, and every sampling decision stays in the consumer, so
the same seed gives the same items as in process, for any worker count.

Items come back in *pulls*: one actor method call returns a list of items,
at most a quarter of the executor's ``prefetch`` items and ``prefetch_bytes``
bytes, or what the actor made in `FLUSH_INTERVAL` seconds (at least one
item). The first pull of an activation asks for one item, so the first item
comes fast; later ones are coalesced. An actor answers calls in the order
they came, so the short flush interval also bounds how long a new
activation's first pull waits behind the others' queued pulls. Each
activation keeps `PULLS_AHEAD` pulls queued at its actor: it runs ahead of
the consumer by at most ``prefetch`` items (or ``prefetch_bytes`` bytes, one
item more), and stops there until the consumer takes items (backpressure).
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

import collections
import itertools
import logging
import math
import os
import pickle
import socket
import time
import traceback
import weakref
from typing import Any, Callable, Iterable, Iterator, Mapping

import attrs
import cloudpickle
import numpy as np

from combinators.errors import CombinatorsError, InvalidArgument, InvalidArgumentType, WorkerError
from combinators.execution import base
from combinators.execution._options import default_workers, positive_int, positive_number

__all__ = ["Ray", "RaySession", "RayActivation", "SourceActor"]

#: pulls each activation keeps queued at its actor (its run-ahead window is this many, plus the one being read)
PULLS_AHEAD = 3
#: seconds an actor spends filling one pull before returning what it has (at least one item)
FLUSH_INTERVAL = 0.005
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


class SourceActor:
    """A Ray actor that runs activations and returns their items in pulls (see the module docstring)."""

    def __init__(self) -> None:
        self._running: dict[int, Iterator[Any]] = {}
        self._faults: dict[int, tuple[bytes, str, str, str]] = {}

    def where(self) -> tuple[int, str]:
        """This actor's process id and host name (also tells the consumer the actor is up)."""
        return os.getpid(), socket.gethostname()

    def start(self, activation_id: int, plan: bytes) -> None:
        """Unpickle ``(fn, args)`` and start ``fn(*args)``; a failure is reported at the next pull."""
        try:
            fn, args = cloudpickle.loads(plan)
            self._running[activation_id] = iter(fn(*args))
        except BaseException as error:  # noqa: BLE001 - reported to the consumer
            self._faults[activation_id] = fault_report(error)

    def pull(
        self, activation_id: int, max_items: int, max_bytes: int
    ) -> tuple[list[Any], bool, tuple[bytes, str, str, str] | None]:
        """Up to ``max_items`` items (``max_bytes`` bytes, `FLUSH_INTERVAL` s): ``(items, ended, fault)``."""
        iterator = self._running.get(activation_id)
        if iterator is None:
            return [], True, self._faults.pop(activation_id, None)
        items: list[Any] = []
        nbytes, deadline = 0, time.perf_counter() + FLUSH_INTERVAL
        try:
            while len(items) < max_items:
                item = next(iterator)
                items.append(item)
                nbytes += item_bytes(item)
                if nbytes >= max_bytes or time.perf_counter() >= deadline:
                    break
        except StopIteration:
            del self._running[activation_id]
            return items, True, None
        except BaseException as error:  # noqa: BLE001 - reported to the consumer
            self.cancel(activation_id)
            return items, True, fault_report(error)
        return items, False, None

    def cancel(self, activation_id: int) -> None:
        """Close the activation's generator (its ``finally`` blocks run here)."""
        self._faults.pop(activation_id, None)
        close = getattr(self._running.pop(activation_id, None), "close", None)
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
        self._orphans: list[tuple[_Worker, int]] = []
        self._activations: weakref.WeakSet[RayActivation] = weakref.WeakSet()
        handles: list[Any] = []
        self._finalizer = weakref.finalize(self, _kill, ray, handles, os.getpid())
        actor_class, options = ray.remote(SourceActor), executor.actor_options()
        token = os.urandom(4).hex()
        self._workers = [_Worker(None, f"combinators-{token}-{i}") for i in range(executor.workers)]
        for worker in self._workers:
            worker.handle = actor_class.options(name=worker.name, **options).remote()
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
        plan = base.ship_activation(fn, args, "a Ray actor")
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
            worker, activation_id = self._orphans.pop()
            self._cancel(worker, activation_id)

    def _cancel(self, worker: _Worker, activation_id: int) -> None:
        worker.active -= 1
        if self._finalizer.alive:
            try:
                worker.handle.cancel.remote(activation_id)
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

    __slots__ = ("_session", "_worker", "_id", "_pulls", "_items", "_finished", "_error", "_ask")

    def __init__(self, session: RaySession, worker: _Worker, activation_id: int):
        self._session, self._worker, self._id = session, worker, activation_id
        self._pulls: collections.deque[Any] = collections.deque()
        self._items: collections.deque[Any] = collections.deque()
        self._finished = False
        self._error: BaseException | None = None
        self._ask = 1  # items asked of the next pull: 1 (the first item comes fast), then a quarter of prefetch

    def _pull_ahead(self) -> None:
        """Queue pulls at the actor until `PULLS_AHEAD` are outstanding."""
        executor = self._session._executor
        pull = self._worker.handle.pull.remote
        limit, max_bytes = max(1, executor.prefetch // 4), max(1, executor.prefetch_bytes // 4)
        while len(self._pulls) < PULLS_AHEAD:
            self._pulls.append(pull(self._id, self._ask, max_bytes))
            self._ask = limit

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
            self._session._cancel(self._worker, self._id)
        self._items.clear()
        self._error = None

    def __del__(self) -> None:
        try:
            if not self._finished:
                self._finished = True
                self._session._orphans.append((self._worker, self._id))
        except Exception:  # at interpreter exit, the session may be gone already
            pass

    def __repr__(self) -> str:
        return f"<RayActivation {self._id} on {self._worker.name} {'finished' if self._finished else 'running'}>"


base.EXECUTOR_NAMES["ray"] = Ray
