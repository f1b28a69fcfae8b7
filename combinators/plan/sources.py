"""Sources: generator functions (`stream`), collections (`from_iterable`) and arrays (`from_arrays`).

A source is a leaf of a plan: it yields items of its own. `RowSource` is the
base of the sources with random access to their rows (`from_arrays`, and the
shard files of `combinators.sources.shards`), which the block path gathers a
block at a time.

>>> from combinators import from_iterable
>>> is_source(from_iterable([1])), is_leaf(from_iterable([1]).take(1)), is_source(from_iterable([1]).cycle())
(True, True, False)
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
from typing import Any, Callable, Iterable, Mapping

import attrs
import numpy as np

from combinators.errors import InvalidArgument, InvalidArgumentType
from combinators.plan import checks
from combinators.plan.description import call_repr
from combinators.plan.stream import Apply, Stream

__all__ = [
    "Source", "FromIterable", "RowSource", "FromArrays", "OpenArrays",
    "stream", "streamable", "from_iterable", "from_arrays", "row_schema", "is_source", "is_leaf",
]


def is_source(node: Stream) -> bool:
    """Whether ``node`` is a source (a leaf that yields items of its own)."""
    return isinstance(node, (Source, FromIterable, RowSource))


def is_leaf(node: Stream) -> bool:
    """A source, or a source with transforms applied (``source >> t1 >> t2``)."""
    return is_source(node) or (isinstance(node, Apply) and is_source(node.stream))




_accepts = checks.accepts


def _accepts_rng(fn: Callable[..., Any]) -> bool:
    return _accepts(fn, "rng")


@attrs.frozen(eq=False, repr=False)
class Source(Stream):
    """A source: ``fn(*args, **kwargs)`` called afresh at every activation.

    ``fn`` is a generator function or any callable returning an iterable. If
    it has a parameter named ``rng`` that ``kwargs`` does not bind, each
    activation passes a `numpy.random.Generator` derived from the run's seed.
    """

    fn: Callable[..., Iterable[Any]]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)

    @property
    def wants_rng(self) -> bool:
        """Whether an activation passes ``rng=`` to ``fn``."""
        return "rng" not in self.kwargs and _accepts_rng(self.fn)

    @property
    def seeks(self) -> bool:
        """Whether an activation passes ``start=`` to ``fn`` (a resumed activation seeks; see `stream`)."""
        if not _accepts(self.fn, "start"):
            return False
        try:
            return "start" not in inspect.signature(self.fn).bind_partial(*self.args, **self.kwargs).arguments
        except TypeError:
            return False

    def __repr__(self) -> str:
        return call_repr("stream", (self.fn, *self.args), self.kwargs)


def stream(fn: Callable[..., Iterable[Any]], *args: Any, **kwargs: Any) -> Source:
    """A stream whose every activation iterates ``fn(*args, **kwargs)``.

    This is pescador's ``Streamer``. If ``fn`` has a parameter ``rng`` not
    bound here, each activation receives a `numpy.random.Generator` derived
    from the run's seed, the stream's position and the activation number.

    If ``fn`` has a parameter ``start`` not bound here, each activation
    passes ``start=`` the number of items to leave out: 0 normally, and the
    items the consumer had received when a run resumes from a state
    (`Run.state`). ``fn`` must then yield its items from that one on (the
    same items, for the same ``rng``), which lets a resumed run seek in
    O(1). Without it, a resumed activation calls ``fn`` again and skips the
    items already received.

    Raises `InvalidArgumentType` if ``fn`` is not callable or the arguments
    do not fit its signature.

    >>> def noise(n, rng):
    ...     yield from rng.integers(0, 100, size=n).tolist()
    >>> s = stream(noise, 3)
    >>> list(combinators.iterate(s, seed=0)) == list(combinators.iterate(s, seed=0))
    True
    """
    checks.a_callable("the function of stream()", fn)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        try:
            bound = signature.bind_partial(*args, **kwargs).arguments
        except TypeError:
            bound = {}
        extra = {"rng": None} if "rng" in signature.parameters and "rng" not in kwargs else {}
        if "start" in signature.parameters and "start" not in bound:
            extra["start"] = None
        try:
            signature.bind(*args, **kwargs, **extra)
        except TypeError as error:
            msg = f"stream({fn.__qualname__}, ...): arguments {args!r}, {kwargs!r} do not fit {signature}: {error}"
            raise InvalidArgumentType(msg) from None
    return Source(fn, tuple(args), kwargs)


def streamable(fn: Callable[..., Iterable[Any]]) -> Callable[..., Source]:
    """Decorator: ``f(*a, **k)`` returns ``stream(f, *a, **k)`` instead of running.

    >>> @streamable
    ... def count(n):
    ...     yield from range(n)
    >>> list(count(3))
    [0, 1, 2]
    """
    @functools.wraps(fn)
    def build(*args: Any, **kwargs: Any) -> Source:
        return stream(fn, *args, **kwargs)

    build.__wrapped__ = fn
    return build


def _freeze_collection(items: Any) -> Any:
    if isinstance(items, Stream):
        msg = f"from_iterable() takes a collection, not a stream ({items!r}); use the stream itself"
        raise InvalidArgumentType(msg)  # not instance_of: the advice differs
    if isinstance(items, (set, frozenset, collections.abc.KeysView, collections.abc.ItemsView)):
        msg = f"from_iterable() needs an ordered collection; {type(items).__name__} order is not reproducible (pass sorted(...))"
        raise InvalidArgumentType(msg)
    if isinstance(items, np.ndarray):
        frozen = np.array(items, copy=True)
        frozen.flags.writeable = False
        return frozen
    if isinstance(items, list):
        return list(items)  # a private copy: the user's list may change later
    try:
        is_iterator = iter(items) is items
    except TypeError:
        msg = f"from_iterable() needs an iterable collection, got {items!r} ({type(items).__name__})"
        raise InvalidArgumentType(msg) from None
    if is_iterator:
        msg = (
            f"from_iterable() needs a re-iterable collection, got a one-shot {type(items).__name__}; "
            "its second epoch would be silently empty: pass list(...) or use stream(fn)"
        )
        raise InvalidArgumentType(msg)
    return items


@attrs.frozen(eq=False, repr=False)
class FromIterable(Stream):
    """A source that iterates a re-iterable collection at every activation."""

    items: Any = attrs.field(converter=_freeze_collection)

    def _size(self) -> int | None:
        return len(self.items) if isinstance(self.items, collections.abc.Sized) else None

    def __repr__(self) -> str:
        return call_repr("from_iterable", (self.items,))


def from_iterable(items: Iterable[Any]) -> FromIterable:
    """A stream over a re-iterable collection (list, tuple, range, str, ndarray...).

    Raises `InvalidArgumentType` for a one-shot iterator or generator object
    (its second epoch would silently be empty) and for unordered sets.

    >>> list(from_iterable(range(3)).cycle().take(4))
    [0, 1, 2, 0]
    """
    return FromIterable(items)


#: array kinds whose rows batch back to the same dtype (bool, ints, floats, complex)
_BLOCK_KINDS = frozenset("biufc")


def row_schema(data: Any) -> tuple[tuple[Any, np.dtype, tuple[int, ...]], ...] | None:
    """``((key, dtype, row shape), ...)`` of an array (key None) or a dict of arrays.

    None when a dtype is not numeric: such rows (strings, objects) may batch
    to another dtype than their array's, so they take the per-item path.
    """
    arrays = data.items() if isinstance(data, Mapping) else [(None, data)]
    schema = tuple((key, value.dtype, tuple(value.shape[1:])) for key, value in arrays)
    return schema if all(dtype.kind in _BLOCK_KINDS for _, dtype, _ in schema) else None


class RowSource(Stream):
    """A source with random access to its rows: its length is known without reading it.

    Subclasses define ``__len__`` (rows), ``schema`` (`row_schema` of their
    arrays, or None) and ``open()``, which returns an open activation: an
    object with ``len()``, ``rows(start, stop)`` (an array, or a dict of
    arrays, of those rows; views that are valid until ``close()``) and
    ``close()``. Mixes and chains of row sources with the same schema run on
    the block path (see docs/guide/decisions.md).
    """

    __slots__ = ()

    @property
    def schema(self) -> tuple[tuple[Any, np.dtype, tuple[int, ...]], ...] | None:
        raise NotImplementedError

    @property
    def maps_file(self) -> bool:
        """Whether its activations map a file into memory (a file truncated meanwhile kills the reader with
        SIGBUS): such a source never runs in the consumer of a parallel executor, nor on the block path."""
        return False

    @property
    def in_memory(self) -> bool:
        """Whether its rows are already in the consumer's memory (`from_arrays`): opening an activation makes
        nothing, so a parallel executor never places it in a worker (it would only pickle the arrays there and
        back). Other row sources read or decompress a file when an activation opens: see
        `combinators.plan.block_path.placed_row_sources`."""
        return False

    def open(self) -> Any:
        raise NotImplementedError


class OpenArrays:
    """An open row-source activation over arrays (in memory, memory-mapped or read from a file).

    ``close()`` drops the arrays: a memory map is unmapped, and its file
    descriptor closed, with its last reference.
    """

    __slots__ = ("data", "length")

    def __init__(self, data: Any, length: int):
        self.data, self.length = data, length

    def __len__(self) -> int:
        return self.length

    def rows(self, start: int, stop: int) -> Any:
        if isinstance(self.data, dict):
            return {key: value[start:stop] for key, value in self.data.items()}
        return self.data[start:stop]

    def take(self, indices: np.ndarray) -> Any:
        """The rows at ``indices`` (int array, ascending), copied: only those are read (a memory map's pages)."""
        if isinstance(self.data, dict):
            return {key: value[indices] for key, value in self.data.items()}
        return self.data[indices]

    def close(self) -> None:
        self.data = None


def _readonly(array: Any, what: str) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        msg = f"from_arrays() takes numpy arrays; {what} is {type(array).__name__}"
        raise InvalidArgumentType(msg)
    if array.ndim == 0:
        msg = f"from_arrays() needs arrays of at least one dimension; {what} has shape ()"
        raise InvalidArgument(msg)
    view = array.view()
    view.flags.writeable = False
    return view


def _check_arrays(data: Any) -> Any:
    if isinstance(data, Mapping):
        arrays = {key: _readonly(value, f"key {key!r}") for key, value in data.items()}
        if not arrays:
            msg = "from_arrays() needs at least one array, got an empty mapping"
            raise InvalidArgument(msg)
        lengths = {key: len(value) for key, value in arrays.items()}
        if len(set(lengths.values())) > 1:
            msg = f"from_arrays() needs arrays of equal length, got lengths {lengths}"
            raise InvalidArgument(msg)
        return arrays
    return _readonly(data, "the data")


@attrs.frozen(eq=False, repr=False)
class FromArrays(RowSource):
    """A source yielding the rows of an array, or dict rows of a mapping of arrays."""

    data: Any = attrs.field(converter=_check_arrays)

    @property
    def schema(self) -> tuple[tuple[Any, np.dtype, tuple[int, ...]], ...] | None:
        return row_schema(self.data)

    def open(self) -> OpenArrays:
        return OpenArrays(self.data, len(self))

    @property
    def in_memory(self) -> bool:
        return True

    def __len__(self) -> int:
        if isinstance(self.data, dict):
            return len(next(iter(self.data.values())))
        return len(self.data)

    def __getitem__(self, index: int) -> Any:
        if isinstance(self.data, dict):
            return {key: value[index] for key, value in self.data.items()}
        return self.data[index]

    def __repr__(self) -> str:
        return call_repr("from_arrays", (self.data,))


def from_arrays(data: np.ndarray | Mapping[str, np.ndarray]) -> FromArrays:
    """A stream over the rows of ``data``: an array, or a mapping of equal-length arrays.

    A mapping yields dict rows ``{key: array[i]}``. Rows are views into the
    arrays, which are kept read-only (not copied): do not mutate them.
    ``len(s)`` and ``s[i]`` give random access.

    Raises `InvalidArgument` for 0-d arrays or unequal lengths.

    >>> s = from_arrays({"x": np.arange(6).reshape(3, 2), "y": np.array([0, 1, 0])})
    >>> len(s), s[1]["x"].tolist(), int(s[1]["y"])
    (3, [2, 3], 1)
    """
    return FromArrays(data)


