"""`Ray`: run source activations in Ray actors, on a local Ray or an existing Ray cluster.

A session creates ``workers`` actors of
`combinators.execution.remote.ray_actor.SourceActor` (each asks Ray for the
executor's ``resources``, one CPU by default) and kills them at close. The
placement rule is the one of `Processes` and `ZMQ`: each source activation
(a leaf with the transforms directly above it) is shipped with cloudpickle to
the least-loaded actor, and every sampling decision stays in the consumer, so
the same seed gives the same items as in process, for any worker count.

Each actor makes items *ahead* in a producer thread: it runs its
activations' generators, the most starved first (one the consumer waits for,
then the one fewest items ahead of the consumer), while Ray's thread answers
the consumer's calls from what is made. An activation started with a budget
(``Session.start(..., limit)``: every budget of a mix) may be made whole
ahead, and never past it; one without runs ahead of the consumer by at most
`ray_actor.INITIAL_WINDOW` items at first, doubling with each call up to ``prefetch``
items, and holds at most ``prefetch_bytes`` bytes (one item more) made and
not yet sent; then it waits (backpressure). Each leaf's plan is pickled once
per session and sent once per actor.

Items come back in *sweeps*: one actor method call returns, for each of
the actor's activations, the items made so far (at most a quarter of
``prefetch`` items and of ``prefetch_bytes`` bytes each), so one call serves
all the activations an actor runs. The consumer sends a sweep when it needs
an item of an activation that has none left here; the sweep waits for that
activation's first item, then up to `ray_actor.FLUSH_INTERVAL` seconds from its
arrival for a full batch, unless the activation can make no more (its end,
budget or window), so that items travel in batches: a Ray call costs about a
millisecond of CPU on each side, as much as a small item does. The
start itself returns the activation's first item, so it comes fast. While
an actor reports more items ready than a sweep carries (the consumer is then
the slower side), the consumer keeps `SWEEPS_AHEAD` sweeps in flight to it.
Ray stores a call's result in its object store; numpy arrays come back as
zero-copy, read-only views of it (copy one with ``np.array(x)`` before
writing in place).

Faults: a source's exception ends its activation after the items made before it,
and reaches the consumer after them, as the same type where it unpickles,
with the remote traceback attached (``remote_traceback``, and a `WorkerError`
as ``__cause__``). A dead actor (``ray.kill``, a lost node) makes its
activations raise `WorkerError` naming the actor, as soon as Ray reports it.
A call that fails while the actor lives (an item Ray cannot pickle) ends the
actor's activations with `WorkerError` in the consumer too: the items it
carried for them are lost.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import os
import time
import weakref
from typing import Any, Callable, Iterable, Mapping

import attrs
import numpy as np

from combinators.errors import CombinatorsError, InvalidArgument, InvalidArgumentType, WorkerError
from combinators.execution import base
from combinators.execution.remote.options import default_workers, placement, positive_int, positive_number
from combinators.execution.remote.ray_actor import SourceActor, raise_fault, with_shipping_advice

__all__ = ["Ray", "RaySession", "RayActivation"]

#: sweeps the consumer keeps in flight to an actor while it reports items ready (one otherwise)
SWEEPS_AHEAD = 2

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

    def describe_placement(self, part: Any, nested: bool = False) -> str:
        """Where ``part`` runs, for ``explain(plan, executor=...)`` (`options.placement`)."""
        return placement(part, nested, "Ray actors", False, places_rows=False)

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


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class _Worker:
    """One actor as the session sees it."""

    __slots__ = ("handle", "name", "pid", "host", "active", "death", "plans", "members", "sweeps")

    def __init__(self, handle: Any, name: str):
        self.handle, self.name = handle, name
        self.pid: int | None = None
        self.host = "?"
        self.active = 0
        self.death: WorkerError | None = None  # why it died, once the session knows
        self.plans: set[int] = set()  # the run's plans this actor has
        # its activations whose first item arrived and that have not finished: each sweep asks for all of them
        self.members: weakref.WeakValueDictionary[int, RayActivation] = weakref.WeakValueDictionary()
        self.sweeps: collections.deque[Any] = collections.deque()  # the refs of the sweeps in flight, in order

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


class _Flow:
    """A session's activity: activations started, items received and made for nothing, start latencies."""

    def __init__(self) -> None:
        self.started = 0
        self.received = 0  # items that reached the consumer (and those made for a closed activation, never sent)
        self.wasted = 0  # items made by actors that the consumer never took (of activations closed early)
        self.latencies: list[float] = []  # seconds from start to the first item of each activation
        # (a cancel's ref, which gives how many items the actor made; items received; items taken)
        self.cancels: list[tuple[Any, int, int]] = []

    def settle(self, ray: Any, timeout: float) -> None:
        """Count the waste of the cancels that answered within ``timeout`` s."""
        if not self.cancels:
            return
        refs = [cancel[0] for cancel in self.cancels]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        done = set(ready)
        for ref, received, taken in [cancel for cancel in self.cancels if cancel[0] in done]:
            try:
                made = ray.get(ref)
            except ray.exceptions.RayError:  # the actor died meanwhile
                made = 0
            self.received += max(made, received) - received  # made, never sent: counted as if received
            self.wasted += max(made, received) - taken
        self.cancels = [cancel for cancel in self.cancels if cancel[0] not in done]

    def figures(self) -> dict[str, float]:
        """``activations``, ``items_received``, ``items_wasted`` and the median and 99th percentile of
        ``start_latency_ms`` (start to the first item in the consumer's object store)."""
        latency = np.percentile(self.latencies, [50, 99]) * 1000 if self.latencies else [np.nan, np.nan]
        return {
            "activations": self.started, "activations_inline": 0, "activations_moved": 0,  # all in its actors
            "items_received": self.received, "items_wasted": self.wasted,
            "start_latency_median_ms": float(latency[0]), "start_latency_p99_ms": float(latency[1]),
        }


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
        self._plans: dict[int, tuple[int, Any, bytes]] = {}  # id(plan) -> (its number, plan, its pickle)
        self._orphans: list[tuple[_Worker, int, int, int]] = []
        self._activations: weakref.WeakSet[RayActivation] = weakref.WeakSet()
        self.flow = _Flow()
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
        self._check_open("submit")
        return self._launch(-1, base.ship_activation(fn, args, "a Ray actor"), (), None)

    def start(
        self, plan: tuple[Callable[..., Iterable[Any]], tuple[Any, ...]], extra: tuple[Any, ...], limit: int | None = None
    ) -> RayActivation:
        """Start ``fn(*args, *extra)`` (``plan = (fn, args)``) in the least-loaded actor, which makes at most
        ``limit`` items. ``plan`` is pickled once per session and sent once per actor."""
        self._check_open("start")
        known = self._plans.get(id(plan))
        if known is None:  # the dict keeps ``plan`` alive, so its id is not reused
            known = self._plans[id(plan)] = (len(self._plans), plan, base.ship_activation(*plan, "a Ray actor"))
        return self._launch(known[0], known[2], extra, limit)

    def _check_open(self, what: str) -> None:
        if not self._finalizer.alive:
            msg = f"{what}() on a closed session"
            raise WorkerError(msg)

    def _launch(self, number: int, pickled: bytes, extra: tuple[Any, ...], limit: int | None) -> RayActivation:
        """Start plan ``number`` (-1: a one-off, ``pickled``) with ``extra`` in the least-loaded actor."""
        self._send_orphan_cancels()
        worker = min(self._workers, key=lambda worker: (worker.death is not None, worker.active))
        activation = RayActivation(self, worker, next(self._ids))
        self._activations.add(activation)
        worker.active += 1
        self.flow.started += 1
        if worker.death is not None:
            activation._fail(WorkerError(f"every actor of this session has died; the last: {worker.death}"))
            return activation
        if number in worker.plans:
            shipped: tuple[int, bytes | None] = (number, None)
        else:
            shipped = (number, pickled)
            if number >= 0:
                worker.plans.add(number)
        window = (self._executor.prefetch, self._executor.prefetch_bytes)
        try:
            ref = worker.handle.start.remote(activation._id, shipped, extra, limit or 0, window)
        except Exception as error:
            activation._fail(self._lost(worker, error))
            return activation
        started = time.perf_counter()
        ref.future().add_done_callback(lambda _: self.flow.latencies.append(time.perf_counter() - started))
        activation._start = ref
        return activation

    def _fetch(self, activation: RayActivation) -> None:
        """Wait for the next batches from ``activation``'s actor (its first item, else a sweep's) and hand
        them out; on a dead actor or a failed call, its activations end with `WorkerError`."""
        worker = activation._worker
        try:
            if activation._start is not None:
                ref, activation._start = activation._start, None
                batches = self._get(ref, worker)
            else:
                if not worker.sweeps:
                    self._sweep(worker, activation)
                batches = self._get(worker.sweeps.popleft(), worker)
        except WorkerError as error:
            worker.sweeps.clear()
            activation._fail(error)
            for member in list(worker.members.values()):  # the lost batches leave gaps: they cannot go on
                member._fail(WorkerError(str(error), remote_traceback=error.remote_traceback))
            return
        if activation._id not in worker.members and not activation._finished:
            worker.members[activation._id] = activation  # its first item is here: sweeps ask for it from now on
        ahead = False
        for activation_id, items, left, fault in batches:
            member = worker.members.get(activation_id)
            if member is not None:
                member._receive(items, left, fault)
                ahead = ahead or left > 0
        if ahead and not activation._finished:  # the actor is ahead of the consumer: keep it sending
            for _ in range(SWEEPS_AHEAD - len(worker.sweeps)):
                self._sweep(worker, activation)

    def _sweep(self, worker: _Worker, wanted: RayActivation) -> None:
        """Ask ``worker`` for the batches of all its activations, waiting for ``wanted``'s."""
        taken = [(activation_id, member._taken()) for activation_id, member in list(worker.members.items())]
        executor = self._executor
        worker.sweeps.append(worker.handle.sweep.remote(
            wanted._id, taken, max(1, executor.prefetch // 4), max(1, executor.prefetch_bytes // 4)
        ))

    def _get(self, ref: Any, worker: _Worker) -> list[tuple[int, list[Any], int, tuple[bytes, str, str, str] | None]]:
        """A call's result; `WorkerError` naming the actor if it died."""
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as error:
            raise self._lost(worker, error) from None
        except ray.exceptions.RayError as error:  # the actor lives, but this call failed (an item Ray cannot pickle)
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

    def _cancel(self, worker: _Worker, activation_id: int, received: int, taken: int) -> None:
        """Stop an activation at its actor; what it made beyond the ``taken`` items counts as waste."""
        worker.active -= 1
        if not self._finalizer.alive or worker.death is not None:
            self.flow.wasted += received - taken
            return
        try:
            self.flow.cancels.append((worker.handle.cancel.remote(activation_id), received, taken))
        except Exception:  # the actor is gone: nothing to cancel
            self.flow.wasted += received - taken

    def flow_stats(self) -> dict[str, float]:
        """``activations``, ``items_received``, ``items_wasted`` (made by actors, never taken: the work of
        activations closed early) and the median and 99th percentile of ``start_latency_ms``; the keys of
        `RemoteSession.flow_stats`, with ``activations_inline`` and ``activations_moved`` 0 (every activation
        runs in an actor)."""
        if self._finalizer.alive:
            self.flow.settle(self._ray, 1.0)
        return self.flow.figures()

    def close(self) -> None:
        """Kill every actor this session created (nothing else); later ``next()`` raises StopIteration."""
        for activation in list(self._activations):
            activation.close()
        self._send_orphan_cancels()
        if self._finalizer.alive:
            self.flow.settle(self._ray, 0.5)  # the cancels just sent tell what was made for nothing
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._workers)} actors"
        return f"<RaySession {state}>"


class RayActivation(base.Activation):
    """The items of one activation running in a Ray actor, fetched in batches (see the module docstring)."""

    __slots__ = ("_session", "_worker", "_id", "_start", "_items", "_received", "_finished", "_error")

    def __init__(self, session: RaySession, worker: _Worker, activation_id: int):
        self._session, self._worker, self._id = session, worker, activation_id
        self._start: Any = None  # the ref of its start (its first item) until it arrives
        self._items: collections.deque[Any] = collections.deque()
        self._received = 0  # items that reached the consumer
        self._finished = False
        self._error: BaseException | None = None

    def __next__(self) -> Any:
        if self._items:
            return self._items.popleft()
        return self._refill()

    def _refill(self) -> Any:
        while True:
            if self._items:  # a sweep for another activation brought some
                return self._items.popleft()
            if self._finished:
                error, self._error = self._error, None
                if error is not None:
                    raise error
                raise StopIteration
            if self._session.closed:
                self._finish()
                continue
            self._session._fetch(self)

    def _taken(self) -> int:
        return self._received - len(self._items)

    def _receive(self, items: list[Any], left: int, fault: tuple[bytes, str, str, str] | None) -> None:
        """Add a batch from the actor; ``left < 0``: the activation ended after it (with ``fault``, if any)."""
        self._items.extend(items)
        self._received += len(items)
        self._session.flow.received += len(items)
        if left < 0:
            self._finish()
            if fault is not None:
                where = self._worker.describe()
                self._error = with_shipping_advice(raise_fault(fault, where), where)

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._start = None
            self._worker.members.pop(self._id, None)
            self._worker.active -= 1

    def _fail(self, error: BaseException) -> None:
        self._finish()
        self._error = error

    def close(self) -> None:
        """Stop the activation: its actor closes the generator; later ``next()`` raises StopIteration."""
        if not self._finished:
            self._finished = True
            self._start = None
            self._worker.members.pop(self._id, None)
            self._session._cancel(self._worker, self._id, self._received, self._taken())
        else:  # its actor is done with it: what is left here was made for nothing
            self._session.flow.wasted += len(self._items)
        self._items.clear()
        self._error = None

    def __del__(self) -> None:
        try:
            if not self._finished:
                self._finished = True
                self._session._orphans.append((self._worker, self._id, self._received, self._taken()))
            else:
                self._session.flow.wasted += len(self._items)
        except Exception:  # at interpreter exit, the session may be gone already
            pass

    def __repr__(self) -> str:
        return f"<RayActivation {self._id} on {self._worker.name} {'finished' if self._finished else 'running'}>"


base.EXECUTOR_NAMES["ray"] = Ray
