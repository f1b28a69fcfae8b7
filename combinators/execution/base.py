"""What an executor is: where source activations run.

The interpreter (``combinators.execution.interpreter``) walks a stream
description and makes every sampling decision itself. Each *source
activation* (a leaf with the transforms directly above it) is handed to a
`Session` as ``session.submit(fn, *args)``, where ``fn(*args)`` returns the
activation's items. The in-process executor calls it right there; parallel
executors ship ``fn`` and ``args`` with cloudpickle to a worker, start it at
once (so the interpreter can submit ahead of need) and stream the items back.
Because the decisions and the seeds stay in the consumer, every executor
yields the same items for the same seed.
"""

from __future__ import annotations

import abc
import itertools
from typing import Any, Callable, Iterable, Iterator

import cloudpickle

from combinators.errors import InvalidArgument, InvalidArgumentType, TransportError

__all__ = [
    "Executor", "Session", "Activation", "LocalActivation", "InProcess", "resolve_executor", "first_items",
]


class Activation(abc.ABC):
    """An iterator over one submitted activation's items, in order.

    ``next()`` raises what the activation raised, after the items it yielded
    before; ``close()`` stops it early and releases what it holds.
    """

    def __iter__(self) -> Iterator[Any]:
        return self

    @abc.abstractmethod
    def __next__(self) -> Any: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def iterator(self) -> Iterator[Any]:
        """The fastest iterator over the remaining items (the interpreter's hot path)."""
        return self

    def next_function(self) -> Callable[[], Any]:
        """The fastest callable equivalent to ``next(self)``."""
        return self.iterator().__next__


class Session(abc.ABC):
    """An open executor: runs activations until closed (also a context manager)."""

    #: activations run lazily in the consumer's thread, as `InProcess` runs them: the interpreter
    #: may then start a leaf's activation itself, without going through `start`
    in_process = False
    #: a block mix opens its row sources that read files through this session (`runs_here`, then `start`:
    #: `combinators.execution.placed_rows`) rather than in the consumer; sessions that place by measured costs
    places_rows = False

    @abc.abstractmethod
    def submit(self, fn: Callable[..., Iterable[Any]], *args: Any) -> Activation:
        """Start ``fn(*args)`` and return an `Activation` over its items."""

    def start(
        self, plan: tuple[Callable[..., Iterable[Any]], tuple[Any, ...]], extra: tuple[Any, ...], limit: int | None = None
    ) -> Activation:
        """Start ``fn(*args, *extra)`` where ``plan = (fn, args)``; at most ``limit`` items will be asked of it.

        ``plan`` is one object shared by many activations of a run (a leaf of
        the stream): a parallel session ships it to each worker once, and each
        start names it; its worker never produces more than ``limit`` items.
        A session that implements only `submit` runs it under `first_items`,
        so it too stops at ``limit``. In process,
        activations are lazy: nothing is produced ahead.

        >>> list(InProcess().open().start((range, (1,)), (4,)))
        [1, 2, 3]
        """
        fn, args = plan
        if limit is None:
            return self.submit(fn, *args, *extra)
        return self.submit(first_items, limit, fn, *args, *extra)

    def runs_here(
        self, plan: tuple[Callable[..., Iterable[Any]], tuple[Any, ...]], args: tuple[Any, ...],
    ) -> tuple[Callable[..., Iterable[Any]], tuple[Any, ...]] | None:
        """Where the next activation of ``plan`` (a leaf's, as for `start`, with the full arguments ``args``)
        runs: ``(fn, args)`` for the interpreter to iterate in the consumer itself, lazily, or None to `start`
        it in this session. This is the executor's placement decision; the interpreter only asks it. Where a
        leaf runs never changes its items. Sessions that run everything they are given return None.

        >>> InProcess().open().runs_here((range, ()), (3,)) is None
        True
        """
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Stop every activation and release workers, sockets and files."""

    def stats(self) -> dict[str, int]:
        """Counters the session keeps (messages a parallel session dropped); empty in-process."""
        return {}

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Executor(abc.ABC):
    """A description of where activations run; `open` starts a `Session`."""

    @abc.abstractmethod
    def open(self) -> Session: ...

    def describe_placement(self, part: Any, nested: bool = False) -> str:
        """Where this executor runs ``part`` of a plan, in words, for ``explain(plan, executor=...)``.

        ``part`` is a block node or a leaf (`~combinators.plan.explain.placed_parts`), ``nested`` when a mix,
        chain or round-robin that runs item by item opens it. Executors that run everything in the consumer
        say so.

        >>> from combinators import from_iterable
        >>> InProcess().describe_placement(from_iterable("ab"))
        'consumer'
        """
        return "consumer"


class LocalActivation(Activation):
    """Runs ``fn(*args)`` lazily, on the first item asked for (nothing opens before)."""

    __slots__ = ("_fn", "_args", "_iterator")

    def __init__(self, fn: Callable[..., Iterable[Any]], args: tuple[Any, ...]):
        self._fn, self._args, self._iterator = fn, args, None

    def _start(self) -> Iterator[Any]:
        if self._iterator is None:
            self._iterator = iter(self._fn(*self._args))
            self._fn = self._args = None
        return self._iterator

    def __next__(self) -> Any:
        return next(self._start())

    def iterator(self) -> Iterator[Any]:
        iterator = self._start()
        inner = getattr(iterator, "iterator", None)
        return inner() if inner is not None else iterator

    def close(self) -> None:
        close = getattr(self._iterator, "close", None)
        self._iterator = self._fn = self._args = None
        if close is not None:
            close()


def first_items(limit: int, fn: Callable[..., Iterable[Any]], *args: Any) -> Iterator[Any]:
    """The first ``limit`` items of ``fn(*args)``, which is closed after them (or when this is closed).

    >>> list(first_items(2, range, 5))
    [0, 1]
    """
    items = iter(fn(*args))
    try:
        yield from itertools.islice(items, limit)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


class _LocalSession(Session):
    in_process = True

    def submit(self, fn: Callable[..., Iterable[Any]], *args: Any) -> Activation:
        return LocalActivation(fn, args)

    def start(
        self, plan: tuple[Callable[..., Iterable[Any]], tuple[Any, ...]], extra: tuple[Any, ...], limit: int | None = None
    ) -> Activation:
        fn, args = plan  # lazy: a mix never asks past the limit, so nothing needs stopping here
        return LocalActivation(fn, (*args, *extra))

    def close(self) -> None:
        pass


class InProcess(Executor):
    """Run every activation lazily in the calling thread (the reference executor).

    >>> InProcess()
    InProcess()
    """

    def open(self) -> Session:
        return _LocalSession()

    def __repr__(self) -> str:
        return "InProcess()"

    def __eq__(self, other: object) -> bool:
        return type(other) is InProcess

    def __hash__(self) -> int:
        return hash(InProcess)


#: names accepted by `resolve_executor`, mapped to a factory of default instances; the
#: parallel executors add theirs when `combinators.execution` imports them
EXECUTOR_NAMES: dict[str, Callable[[], Executor]] = {"inprocess": InProcess}


def resolve_executor(spec: str | Executor) -> Executor:
    """Turn an executor name or instance into an `Executor`.

    >>> resolve_executor("inprocess")
    InProcess()

    Raises `InvalidArgument` for an unknown name and `InvalidArgumentType`
    for anything that is neither a name nor an `Executor`.
    """
    if isinstance(spec, Executor):
        return spec
    if isinstance(spec, str):
        try:
            return EXECUTOR_NAMES[spec]()
        except KeyError:
            msg = f"unknown executor {spec!r}; expected one of {sorted(EXECUTOR_NAMES)} or an Executor"
            raise InvalidArgument(msg) from None
    msg = f"executor must be a name or an Executor instance, not {spec!r} ({type(spec).__name__})"
    raise InvalidArgumentType(msg)


def ship_activation(fn: Callable[..., Iterable[Any]], args: tuple[Any, ...], where: str) -> bytes:
    """``(fn, args)`` pickled with cloudpickle for a worker; `TransportError` naming ``fn`` and ``where`` if it cannot be.

    >>> len(ship_activation(range, (3,), "a worker")) > 0
    True
    """
    try:
        return cloudpickle.dumps((fn, args))
    except Exception as error:
        msg = f"cannot ship activation {fn!r} to {where}: {error}"
        raise TransportError(msg) from error
