"""Mixes (pescador's muxes in one: weights, working sets, budgets, modes) and round-robins.

>>> from combinators import from_iterable
>>> mix(from_iterable("ab"), from_iterable("c"), (1, 3), mode="exhaustive")
mix(from_iterable('ab'), from_iterable('c'), weights=(1.0, 3.0), mode='exhaustive')
"""

from __future__ import annotations

import collections.abc
from typing import Any, Mapping, Sequence

import attrs
import numpy as np

from combinators.errors import InvalidArgument, InvalidArgumentType
from combinators.plan import checks
from combinators.plan.description import call_repr
from combinators.plan.schedule import Schedule
from combinators.plan.stream import INFINITE, Stream, _refuse_stream_list, _streams_tuple, sum_or_cycle

__all__ = [
    "Mix", "RoundRobin", "mix", "round_robin", "normalize_weights",
    "MIX_MODES", "ENDING_MODES", "MIN_SHARE", "BUDGET_DISTS", "ROUND_ROBIN_MODES",
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



def _check_weights(weights: Any, n_streams: int) -> tuple[float, ...] | Schedule | None:
    if weights is None:
        return None
    if isinstance(weights, Schedule):
        if len(weights) != n_streams:
            msg = f"mix() needs one weight per stream: {n_streams} streams, a schedule of {len(weights)}: {weights!r}"
            raise InvalidArgument(msg)
        return weights
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
    weights: tuple[float, ...] | Schedule | None = None
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

        >>> from combinators import from_iterable
        >>> mix(from_iterable("a"), from_iterable("b"), weights=(1e308, 1e308)).probabilities.tolist()
        [0.5, 0.5]
        """
        if self.weights is None:
            return np.full(len(self.streams), 1.0 / len(self.streams))
        if isinstance(self.weights, Schedule):
            return normalize_weights(self.weights.points[0][1], MIN_SHARE)
        return normalize_weights(self.weights, MIN_SHARE)

    @property
    def segments(self) -> tuple[tuple[int, np.ndarray], ...] | None:
        """The weights on a schedule: ``(start, probabilities)`` per segment (see `schedule`); None without one.

        Each ``probabilities`` is normalized as `probabilities` is; the first
        segment starts at 0 and has `probabilities`.

        >>> from combinators import from_iterable
        >>> from combinators.plan.schedule import schedule
        >>> m = mix(from_iterable("a"), from_iterable("b"), weights=schedule({0: (1, 1), 10: (1, 3)}))
        >>> [(start, p.tolist()) for start, p in m.segments]
        [(0, [0.5, 0.5]), (10, [0.25, 0.75])]
        """
        if not isinstance(self.weights, Schedule):
            return None
        return tuple((start, normalize_weights(w, MIN_SHARE)) for start, w in self.weights.segments())

    def _size(self) -> int | float | None:
        drawn = self.probabilities > 0  # a stream of weight 0 is never drawn: its items never come
        sizes = [s._size() for s, weighted in zip(self.streams, drawn) if weighted]
        if any(n is None for n in sizes):
            return None
        if self.mode == "exhaustive":
            return sum(sizes)  # every item exactly once (a spent budget suspends an activation, it drops nothing)
        if self.mode in ("with_replacement", "single_active") and all(n > 0 for n in sizes):
            return INFINITE  # every activation yields at least one item, and activations never run out
        return None

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
      since 0.2.0 (expected share, entries ahead) a seed gives other items
      than in 0.1.0 for working sets, the same on every executor.
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
    streams are all empty ends, it never spins. Without it, a
    ``"with_replacement"`` or ``"single_active"`` mix also ends when every
    stream it draws was found empty since its last item and the others have
    shares under ``2**-48`` of the weights (its picks practically never
    reach them: with weights ``(1e308, 1)`` and an empty first stream).

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

    >>> from combinators import from_iterable
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

    def _size(self) -> int | float | None:
        return sum_or_cycle([s._size() for s in self.streams], ends=self.mode == "exhaustive")

    def __repr__(self) -> str:
        return call_repr("round_robin", self.streams, {"mode": self.mode} if self.mode != "exhaustive" else {})


def round_robin(*streams: Stream, mode: str = "exhaustive") -> RoundRobin:
    """One item from each stream in turn, skipping exhausted ones (pescador RoundRobinMux).

    ``"exhaustive"`` ends when all are exhausted; ``"cycle"`` then restarts
    them all in the same order; ``"permuted_cycle"`` restarts them in a new
    random order each pass. A pass that yields nothing ends the stream.

    >>> from combinators import from_iterable
    >>> "".join(round_robin(from_iterable("ace"), from_iterable("bd")))
    'abcde'
    """
    return RoundRobin(streams, mode)

