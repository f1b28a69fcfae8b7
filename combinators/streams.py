"""Stream descriptions: sources, chains, mixes, round-robins and applied transforms.

A stream is an immutable description (a frozen attrs value). Building one runs
nothing, opens nothing and draws no random number; an interpreter
(`combinators.iterate`) evaluates it. Descriptions compose with operators:
``a | b`` chains, ``s >> t`` applies a transform, and `mix` samples from
several streams with weights.

>>> s = from_iterable([1, 2]) | from_iterable([3])
>>> s
chain(from_iterable([1, 2]), from_iterable([3]))
>>> list(s)
[1, 2, 3]
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
from typing import Any, Callable, Iterable, Mapping, Sequence

import attrs
import numpy as np

from combinators import checks
from combinators.description import Description, call_repr
from combinators.errors import InvalidArgument, InvalidArgumentType

__all__ = [
    "Stream",
    "Source",
    "FromIterable",
    "FromArrays",
    "RowSource",
    "Chain",
    "Mix",
    "RoundRobin",
    "Apply",
    "stream",
    "streamable",
    "from_iterable",
    "from_arrays",
    "chain",
    "mix",
    "round_robin",
    "normalize_weights",
    "MIX_MODES",
    "ENDING_MODES",
    "MIN_SHARE",
    "BUDGET_DISTS",
    "ROUND_ROBIN_MODES",
]

#: the sampling modes of `mix`
MIX_MODES = ("with_replacement", "single_active", "exhaustive", "first_exhausted")
#: the modes in which a mix ends by itself; in them a stream is activated at most once
ENDING_MODES = ("exhaustive", "first_exhausted")
#: the distributions of an activation's sample budget (pescador 3's ``dist``)
BUDGET_DISTS = ("constant", "poisson", "binomial")
#: the modes of `round_robin` (pescador's RoundRobinMux)
ROUND_ROBIN_MODES = ("exhaustive", "cycle", "permuted_cycle")
#: the least share of a stream with a positive weight (a normal float64, so that
#: drawing by inverse CDF can still reach it; see `Mix.probabilities`)
MIN_SHARE = 1e-300


def _check_name(_: Any, __: Any, value: Any) -> None:
    if value is not None and not (isinstance(value, str) and value):
        msg = f"a stream's name must be a non-empty string or None, got {value!r} ({type(value).__name__})"
        raise InvalidArgumentType(msg)


@attrs.frozen(eq=False, repr=False)
class Stream(Description):
    """Base class of every stream description.

    Operators are aliases of named functions: ``a | b`` is ``chain(a, b)``,
    ``s >> t`` is ``apply(s, t)``; ``iter(s)`` is ``combinators.iterate(s)``.

    Every stream has a ``name`` (``None`` unless given by `named`): a label
    for people, shown by ``explain()``, ``run.stats()``, progress bars and
    errors. It changes neither the items nor the seeds.
    """

    name: str | None = attrs.field(default=None, kw_only=True, validator=_check_name)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # every node's repr rebuilds its expression, name included: wrap each
        # subclass's own __repr__ once so that a name adds ``.named('...')``
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__repr__")
        if own is not None and not getattr(own, "adds_name", False):
            cls.__repr__ = _with_name(own)  # type: ignore[method-assign]

    def named(self, name: str | None) -> "Stream":
        """This stream with a ``name`` for people (``None`` removes it): same items, same seeds.

        Raises `InvalidArgumentType` unless ``name`` is a non-empty string or None.

        >>> s = from_iterable([1, 2]).named("ones and twos")
        >>> s
        from_iterable([1, 2]).named('ones and twos')
        >>> s.name, list(s)
        ('ones and twos', [1, 2])
        """
        return attrs.evolve(self, name=name)

    def __or__(self, other: object) -> "Stream":
        return chain(self, other) if isinstance(other, Stream) else NotImplemented

    def __rshift__(self, transform: object) -> "Stream":
        from combinators.transforms import Transform

        return apply(self, transform) if isinstance(transform, Transform) else NotImplemented

    def cycle(self) -> "Stream":
        """Restart this stream forever; a pass that yields nothing ends it.

        >>> list(from_iterable([1, 2]).cycle().take(5))
        [1, 2, 1, 2, 1]
        """
        return chain(self, cycle=True)

    def take(self, n: int) -> "Stream":
        """The first ``n`` items: ``self >> take(n)``.

        >>> list(from_iterable(range(10)).take(3))
        [0, 1, 2]
        """
        from combinators.transforms import take

        return self >> take(n)

    def __len__(self) -> int:
        """The number of items, when known without running (see `combinators.length`).

        Raises `TypeError` (the Python convention for an unsized object) when
        the length depends on the items or the stream is infinite.

        >>> len(from_iterable("abc") | from_iterable("d"))
        4
        """
        from combinators.lengths import length

        n = length(self)
        if n is None:
            msg = f"the length of {self!r} is not known without running it (use combinators.length(s), which returns None)"
            raise TypeError(msg)
        return n

    def __bool__(self) -> bool:
        return True  # a description is a value, not a container: never falsy, even when unsized

    def __iter__(self):
        # descriptions import no executor at module level; this is the one
        # convenience that reaches the reference interpreter.
        from combinators.execution.inprocess import iterate

        return iterate(self)

    @property
    def children(self) -> tuple["Stream", ...]:
        """The streams this one draws from (empty for a source)."""
        return ()


def _with_name(expression: Callable[[Stream], str]) -> Callable[[Stream], str]:
    @functools.wraps(expression)
    def __repr__(self: Stream) -> str:
        text = expression(self)
        if self.name is None:
            return text
        return f"({text}).named({self.name!r})" if isinstance(self, Apply) else f"{text}.named({self.name!r})"

    __repr__.adds_name = True  # type: ignore[attr-defined]
    return __repr__


def is_source(node: Stream) -> bool:
    """Whether ``node`` is a source (a leaf that yields items of its own)."""
    return isinstance(node, (Source, FromIterable, RowSource))


# --------------------------------------------------------------------- sources


@functools.lru_cache(maxsize=4096)
def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


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


# ----------------------------------------------------------------- combinators


def _refuse_stream_list(value: Any, position: int, where: str) -> None:
    """Pescador's muxes take a list of streamers (``ChainMux([a, b])``); ours take them as arguments."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(x, Stream) for x in value):
        msg = (
            f"{where} got a {type(value).__name__} of {len(value)} streams as argument {position}; "
            f"pass streams as arguments: {where[:-2]}(*streams)"
        )
        raise InvalidArgumentType(msg)


def _streams_tuple(streams: Iterable[Any], where: str, allow_empty: bool = False) -> tuple[Stream, ...]:
    streams = tuple(streams)
    for position, s in enumerate(streams):
        _refuse_stream_list(s, position, where)
        if not isinstance(s, Stream):
            msg = f"{where} takes streams; argument {position} is {s!r} ({type(s).__name__})"
            raise InvalidArgumentType(msg)
    if not streams and not allow_empty:
        msg = f"{where} needs at least one stream"
        raise InvalidArgument(msg)
    return streams


@attrs.frozen(eq=False, repr=False)
class Chain(Stream):
    """Each stream to exhaustion, in order; with ``cycle``, again and again."""

    streams: tuple[Stream, ...] = attrs.field(converter=lambda s: _streams_tuple(s, "chain()", allow_empty=True))
    repeat: bool = False  # chain(..., cycle=True); not named cycle, which is the method

    @property
    def children(self) -> tuple[Stream, ...]:
        return self.streams

    def __repr__(self) -> str:
        return call_repr("chain", self.streams, {"cycle": True} if self.repeat else {})


def chain(*streams: Stream, cycle: bool = False) -> Stream:
    """Each stream in turn, to exhaustion (pescador's ChainMux); ``a | b`` is ``chain(a, b)``.

    Nested non-cycling chains flatten, so ``(a | b) | c == a | (b | c)``
    (a named chain stays a node of its own, so its name is kept).
    With ``cycle=True`` the whole chain restarts forever, with fresh
    activations; a pass that yields nothing ends it instead of spinning.
    ``chain()`` of no streams is an empty stream (as pescador's
    ``ChainMux([])``), cycled or not.

    Raises `InvalidArgumentType` for an argument that is not a stream (a
    list of streams says to pass them as ``chain(*streams)``).

    >>> list(chain())
    []
    >>> a, b = from_iterable("ab"), from_iterable("c")
    >>> "".join(chain(a, b, cycle=True).take(7))
    'abcabca'
    """
    flat: list[Stream] = []
    for s in _streams_tuple(streams, "chain()", allow_empty=True):
        flat.extend(s.streams if isinstance(s, Chain) and not s.repeat and s.name is None else (s,))
    return Chain(tuple(flat), repeat=bool(cycle))


def _check_weights(weights: Any, n_streams: int) -> tuple[float, ...] | None:
    if weights is None:
        return None
    if isinstance(weights, (str, bytes, Mapping)) or not isinstance(weights, (collections.abc.Sequence, np.ndarray)):
        msg = f"mix() weights must be a sequence of numbers, got {weights!r} ({type(weights).__name__})"
        raise InvalidArgumentType(msg)
    values = list(np.asarray(weights, dtype=object).ravel()) if isinstance(weights, np.ndarray) else list(weights)
    if len(values) != n_streams:
        msg = f"mix() needs one weight per stream: {n_streams} streams, {len(values)} weights {tuple(values)!r}"
        raise InvalidArgument(msg)
    floats = []
    for position, w in enumerate(values):
        value = checks.real_number(f"mix() weight {position}", w)
        if value < 0:
            msg = f"mix() weight {position} must be finite and >= 0, got {w!r}"
            raise InvalidArgument(msg)
        floats.append(value)
    if not any(floats):
        msg = f"mix() weights must not all be zero, got {tuple(values)!r}"
        raise InvalidArgument(msg)
    return tuple(floats)


def normalize_weights(weights: Sequence[float] | np.ndarray, min_share: float = 0.0) -> np.ndarray:
    """Finite, non-negative weights (not all zero) as shares summing to 1, without overflow.

    The weights are divided by their maximum before they are summed, so
    ``(1e308, 1e308)`` gives ``[0.5, 0.5]`` (not ``inf / inf``) and
    subnormal weights such as ``(1e-320, 3e-320)`` keep their ratio. A
    positive share below ``min_share`` is raised to it; zeros stay zero.
    Returns float64, shape ``(len(weights),)``. Validation is the caller's.

    >>> normalize_weights((1e308, 1e308)).tolist(), normalize_weights((1e308, 5e-324), 1e-300).tolist()
    ([0.5, 0.5], [1.0, 1e-300])
    """
    shares = np.array(weights, dtype=float)  # a copy, divided in place (no temporaries for 10**4 streams)
    positive = shares > 0
    shares /= shares.max()
    shares /= shares.sum()
    np.maximum(shares, min_share, out=shares, where=positive)
    return shares


@attrs.frozen(eq=False, repr=False)
class Mix(Stream):
    """A weighted mux over streams; see `mix` for the meaning of each field."""

    streams: tuple[Stream, ...]
    weights: tuple[float, ...] | None = None
    n_active: int | None = None
    rate: float | None = None
    mode: str = "with_replacement"
    dist: str = "binomial"
    prune_empty: bool = True

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "streams", _streams_tuple(self.streams, "mix()"))
        object.__setattr__(self, "weights", _check_weights(self.weights, len(self.streams)))
        if self.n_active is not None:
            object.__setattr__(self, "n_active", checks.positive_int("mix() n_active", self.n_active))
        checks.one_of("mix() mode", self.mode, MIX_MODES)
        checks.one_of("mix() dist", self.dist, BUDGET_DISTS)
        if self.rate is not None:
            rate = checks.positive_number("mix() rate", self.rate)
            if self.dist in ("poisson", "binomial") and rate < 1:
                msg = (
                    f"mix() rate must be >= 1 with dist={self.dist!r} (each activation yields "
                    f"1 + {self.dist}(rate - 1) items), got rate={self.rate!r}; use dist='constant' for fewer"
                )
                raise InvalidArgument(msg)
            if self.n_active is None:
                msg = (
                    f"mix() rate={self.rate!r} needs n_active: a budget says how many items an activation yields "
                    "before it leaves a working set of n_active streams (pescador's StochasticMux); with every "
                    "stream active (n_active=None, pescador's ShuffledMux) there is no working set to leave. "
                    "Pass n_active=k, or drop rate; to restart every stream after its budget, pass "
                    f"n_active={len(self.streams)}, mode='single_active'"
                )
                raise InvalidArgument(msg)
            object.__setattr__(self, "rate", rate)

    @property
    def children(self) -> tuple[Stream, ...]:
        return self.streams

    @property
    def probabilities(self) -> np.ndarray:
        """The normalized weights, shape ``(len(streams),)``, float64, summing to 1.

        Weights are scaled by their maximum before they are summed, so huge
        weights (``1e308``) cannot overflow and subnormal ones (``1e-320``)
        keep their ratios. A positive weight more than ``1 / MIN_SHARE``
        times smaller than the sum is raised to `MIN_SHARE`, so its stream
        is still drawn (an exhaustive mix must reach every item); a zero
        weight stays zero (that stream is never drawn).

        >>> mix(from_iterable("a"), from_iterable("b"), weights=(1e308, 1e308)).probabilities.tolist()
        [0.5, 0.5]
        """
        if self.weights is None:
            return np.full(len(self.streams), 1.0 / len(self.streams))
        return normalize_weights(self.weights, MIN_SHARE)

    def __repr__(self) -> str:
        defaults = {"n_active": None, "rate": None, "mode": "with_replacement", "dist": "binomial", "prune_empty": True}
        options = {"weights": self.weights} if self.weights is not None else {}
        options.update({k: getattr(self, k) for k, v in defaults.items() if getattr(self, k) != v})
        return call_repr("mix", self.streams, options)


def mix(
    *streams: Any,
    weights: Sequence[float] | np.ndarray | None = None,
    n_active: int | None = None,
    rate: float | None = None,
    mode: str = "with_replacement",
    dist: str = "binomial",
    prune_empty: bool = True,
    names: Sequence[str | None] | None = None,
) -> Stream:
    """Sample items from several streams with weights: pescador's muxes in one.

    - ``n_active=None``: every stream is active at once (pescador ShuffledMux);
      each item comes from stream ``i`` with probability ``weights[i] / sum``.
    - ``n_active=k``: a working set of ``k`` activations (pescador
      StochasticMux). A stream enters the working set with probability
      proportional to its weight, and each item comes from a slot with
      probability proportional to its stream's weight. Each activation gets
      a sample budget: ``rate`` items (``dist="constant"``, rounded up),
      ``1 + Poisson(rate - 1)`` (``"poisson"``), or ``1 + Binomial(m, 1 - p)``
      with ``m = (rate - 1) / (1 - p)`` and ``p = w / (w + (k - 1) * mean(weights))``
      the stream's expected share of the working set's weight
      (``"binomial"``, pescador 3's default, which gives a replacement every
      ``rate / p`` items on average; ``p = 1`` falls back to Poisson).
      ``rate=None`` runs each activation until it is exhausted. Entries and
      budgets are drawn together, 8 ahead of need (``"single_active"``: when
      the slot empties), so parallel executors start activations early
      (a suspended stream of the ending modes re-enters through that queue);
      since 0.2 (expected share, entries ahead) a seed gives other items
      than in 0.1 for working sets, the same on every executor.
    - ``rate`` needs ``n_active`` (as in pescador, where ShuffledMux has no
      rate and StochasticMux needs n_active): a budget says when an
      activation leaves the working set, and with every stream active there
      is none. ``mix(a, b, rate=4)`` raises `InvalidArgument`; to restart
      every stream after its budget, pass ``n_active=len(streams),
      mode="single_active"``.

    Modes: ``"with_replacement"`` (a stream may fill several slots; runs
    forever, ended activations are replaced by new ones, which start their
    stream afresh), ``"single_active"`` (at most one slot per stream; ended
    streams return to the pool; runs forever), ``"exhaustive"`` (ends when
    all streams are done: every item exactly once, each source's order
    kept), ``"first_exhausted"`` (ends as soon as any stream runs dry: each
    item at most once, each source a prefix of itself). In these two ending
    modes a spent budget suspends the activation: it is closed, its stream
    returns to the pool, and when drawn again the stream starts with the
    same identity (same items, same ``rng`` draws) and skips what it already
    yielded, so nothing is dropped or repeated and at most ``n_active``
    activations are in the working set (re-reading the skipped items costs about
    ``L**2 / (2 * rate)`` reads for a stream of ``L`` items). With ``prune_empty``, a stream whose
    activation yielded nothing is never activated again; a mix whose
    streams are all empty ends, it never spins.

    ``names`` (one string or None per stream) names the streams, as
    ``s.named(name)`` would: same items, and ``explain()``, ``run.stats()``
    and errors show the names instead of positions.

    ``weights`` may also be passed as a final positional sequence:
    ``mix(a, b, (1, 3))``. Weights are finite, non-negative, not all zero,
    of any real numeric type; they are copied, never mutated, and
    normalized without overflow (see `Mix.probabilities`: ``(1e308, 1e308)``
    is an even mix). A stream of weight 0 is never drawn, so in exhaustive
    mode its items are not yielded. A mix of one stream without a budget is
    that stream (cycled unless the mode ends).

    Raises `InvalidArgument` / `InvalidArgumentType` naming the bad value:
    weights of the wrong length, negative, NaN, infinite, too large for a
    float64, all zero or not numbers; ``n_active < 1``; ``rate <= 0`` (or
    ``< 1`` for poisson and binomial); ``rate`` without ``n_active``; an
    unknown mode or dist; a non-stream among ``streams``; a list of streams
    (pescador's habit: pass them as arguments, ``mix(*streams)``).

    Source: the algorithms of pescador 3's StochasticMux and ShuffledMux
    (pescador.readthedocs.io, "Analysis of Stochastic Mux"); suspending
    budgeted activations in the ending modes is ours (pescador's exhaustive
    StochasticMux drops what is left of an activation past its budget).

    >>> a, b = from_iterable("aaaa"), from_iterable("bb")
    >>> "".join(combinators.iterate(mix(a, b, (1, 3), mode="exhaustive"), seed=0))
    'bbaaaa'
    >>> out = "".join(combinators.iterate(mix(a, b, n_active=1, rate=1, mode="exhaustive"), seed=0))
    >>> sorted(out) == sorted("aaaabb")
    True
    """
    if streams and not isinstance(streams[-1], Stream):
        _refuse_stream_list(streams[-1], len(streams) - 1, "mix()")
        if weights is not None:
            msg = f"mix() got weights twice: positional {streams[-1]!r} and weights={weights!r}"
            raise InvalidArgument(msg)
        *streams, weights = streams  # type: ignore[assignment]
    if names is not None:
        streams = _named_streams(streams, names)
    node = Mix(tuple(streams), weights, n_active, rate, mode, dist, prune_empty)
    if len(node.streams) == 1 and node.rate is None:
        only = node.streams[0]
        return only if node.mode in ("exhaustive", "first_exhausted") else only.cycle()
    return node


def _named_streams(streams: Sequence[Any], names: Any) -> tuple[Any, ...]:
    if isinstance(names, (str, bytes, Mapping)) or not isinstance(names, collections.abc.Sequence):
        msg = f"mix() names must be a sequence of strings (or None), one per stream, got {names!r}"
        raise InvalidArgumentType(msg)
    if len(names) != len(streams):
        msg = f"mix() needs one name per stream: {len(streams)} streams, {len(names)} names {tuple(names)!r}"
        raise InvalidArgument(msg)
    return tuple(
        s.named(name) if isinstance(s, Stream) and name is not None else s for s, name in zip(streams, names)
    )


@attrs.frozen(eq=False, repr=False)
class RoundRobin(Stream):
    """One item from each stream in turn; see `round_robin`."""

    streams: tuple[Stream, ...] = attrs.field(converter=lambda s: _streams_tuple(s, "round_robin()"))
    mode: str = attrs.field(default="exhaustive", validator=lambda _, __, v: checks.one_of("round_robin() mode", v, ROUND_ROBIN_MODES))

    @property
    def children(self) -> tuple[Stream, ...]:
        return self.streams

    def __repr__(self) -> str:
        return call_repr("round_robin", self.streams, {"mode": self.mode} if self.mode != "exhaustive" else {})


def round_robin(*streams: Stream, mode: str = "exhaustive") -> RoundRobin:
    """One item from each stream in turn, skipping exhausted ones (pescador RoundRobinMux).

    ``"exhaustive"`` ends when all are exhausted; ``"cycle"`` then restarts
    them all in the same order; ``"permuted_cycle"`` restarts them in a new
    random order each pass. A pass that yields nothing ends the stream.

    >>> "".join(round_robin(from_iterable("ace"), from_iterable("bd")))
    'abcde'
    """
    return RoundRobin(streams, mode)


@attrs.frozen(eq=False, repr=False)
class Apply(Stream):
    """A stream with transforms applied in order (``stream >> t1 >> t2``)."""

    stream: Stream
    transforms: tuple[Any, ...]

    @property
    def children(self) -> tuple[Stream, ...]:
        return (self.stream,)

    def __repr__(self) -> str:
        return " >> ".join([_operand_repr(self.stream), *map(repr, self.transforms)])


def _operand_repr(s: Stream) -> str:
    text = repr(s)
    return f"({text})" if isinstance(s, Apply) else text


def apply(s: Stream, transform: Any) -> Apply:
    """``s >> transform``: the items of ``s`` passed through ``transform``.

    Nested applications flatten, so ``(s >> t1) >> t2 == s >> (t1 >> t2)``.

    >>> from combinators.transforms import batch
    >>> [b.tolist() for b in from_iterable(range(5)) >> batch(2, partial=True)]
    [[0, 1], [2, 3], [4]]
    """
    from combinators.transforms import Transform, flatten_transforms

    checks.instance_of("the stream of apply()", s, Stream, "a stream")
    checks.instance_of("the operand of a stream's >>", transform, Transform, "a transform")
    if isinstance(s, Apply):  # the flat node keeps the name: (s >> t1).named(n) >> t2 is still n
        base, before, name = s.stream, s.transforms, s.name
    else:
        base, before, name = s, (), None
    return Apply(base, _fill_progress(base, before, flatten_transforms(transform), name), name=name)


def _fill_progress(base: Stream, before: tuple[Any, ...], added: tuple[Any, ...], name: str | None) -> tuple[Any, ...]:
    """``before + added``, each added `progress()` given the length and name of what it counts."""
    from combinators.lengths import length
    from combinators.transforms import Progress

    transforms = list(before)
    for t in added:
        if isinstance(t, Progress) and (t.total is None or t.desc is None):
            total = t.total if t.total is not None else length(Apply(base, tuple(transforms)) if transforms else base)
            desc = t.desc if t.desc is not None else (name or base.name)
            t = attrs.evolve(t, total=total, desc=desc)
        transforms.append(t)
    return tuple(transforms)
