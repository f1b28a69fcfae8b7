"""Hypothesis strategies for stream descriptions: sources, weights, whole plans, seeds.

Every item a generated source yields says where it came from: a tuple
``(name, position)`` such as ``("s3", 7)``, or ``(name, position, draw)``
for a source that takes an ``rng`` (``draw`` is an int drawn from the
activation's Generator, so a seeding bug shows up as different items). The
names are unique within one plan drawn by `streams`, so tests can check
exhaustiveness (every ``(name, position)`` once) and order (positions of one
name increasing) on any plan. Use `origin` to read ``(name, position)``
back from an item.

Plans shrink towards small ones: a single short source first, then fewer
children, shallower trees, default modes and no transforms.

Requires ``hypothesis`` (the ``testing`` extra: ``pip install combinators[testing]``).

>>> from hypothesis import given
>>> @given(streams(max_depth=2, modes=["exhaustive"]), seeds())
... def test_items_identify_their_source(s, seed):
...     seen = [origin(item) for item in combinators.iterate(s, seed=seed, max_iter=1000)]
...     assert all(name.startswith("s") and position >= 0 for name, position in seen)
>>> test_items_identify_their_source()
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator, Sequence

import numpy as np
from hypothesis import strategies as st

from combinators.plan import checks
from combinators.errors import InvalidArgument
from combinators.plan.mixes import ENDING_MODES, MIN_SHARE, MIX_MODES, ROUND_ROBIN_MODES, Mix, mix, normalize_weights, round_robin
from combinators.plan.sources import from_arrays, from_iterable, is_source, stream
from combinators.plan.stream import Apply, Stream, chain
from combinators.plan.transforms import Batch, Take, Transform, Unbatch, batch, cache, filter, map, shuffle, take, unbatch
from combinators.sampling.working_set import UNDRAWN_SHARE

__all__ = [
    "SOURCE_KINDS", "ALL_SOURCE_KINDS", "TRANSFORM_KINDS", "ALL_TRANSFORM_KINDS", "labelled", "labelled_from",
    "labelled_random", "counting", "counting_random", "origin", "is_infinite_source", "sources", "weights",
    "transforms", "streams", "ending_plans", "every_plan", "nested_mixes", "KEEPING_TRANSFORMS", "seeds",
]

#: the kinds of source `sources` draws: finite or infinite, with or without ``rng``
SOURCE_KINDS = ("items", "generator", "rng", "infinite", "infinite_rng")
#: every kind `sources` can draw: also ``"seeking"`` (`labelled_from`, which seeks) and ``"arrays"``
#: (``from_arrays`` of int64 ``[name, position]`` rows: random access, the block path, items are arrays)
ALL_SOURCE_KINDS = (*SOURCE_KINDS, "seeking", "arrays")
#: the transforms `transforms` draws; ``"batch_unbatch"`` is ``batch(k, partial=True) >> unbatch()``
TRANSFORM_KINDS = ("map", "filter", "take", "shuffle", "batch_unbatch")
#: every kind `transforms` can draw: also ``"cache"`` (pescador's reservoir), ``"map_rng"`` (a map whose
#: function takes ``rng``) and ``"batch"`` (``batch(k)``, partial or not, with or without ``unbatch()`` after)
ALL_TRANSFORM_KINDS = (*TRANSFORM_KINDS, "cache", "map_rng", "batch")
#: ``take`` bound put on top of plans that would not end by themselves
_BOUND = 60


# ------------------------------------------------- the source functions (picklable)


def labelled(name: str, n: int) -> Iterator[tuple[str, int]]:
    """``(name, 0), (name, 1), ..., (name, n - 1)``: a finite source without randomness.

    >>> list(labelled("s0", 2))
    [('s0', 0), ('s0', 1)]
    """
    for position in range(n):
        yield (name, position)


def labelled_random(name: str, n: int, rng: np.random.Generator) -> Iterator[tuple[str, int, int]]:
    """``(name, i, draw)`` for ``i < n``, ``draw`` an int in [0, 2**31) drawn from ``rng``.

    >>> [item[:2] for item in labelled_random("s1", 2, np.random.default_rng(0))]
    [('s1', 0), ('s1', 1)]
    """
    for position in range(n):
        yield (name, position, int(rng.integers(1 << 31)))


def labelled_from(name: str, n: int, start: int = 0) -> Iterator[tuple[str, int]]:
    """`labelled` from position ``start`` on: a source that seeks (a resumed run starts it there).

    >>> list(labelled_from("s4", 3, start=1))
    [('s4', 1), ('s4', 2)]
    """
    for position in range(start, n):
        yield (name, position)


def counting(name: str) -> Iterator[tuple[str, int]]:
    """``(name, 0), (name, 1), ...`` forever: an infinite source.

    >>> list(itertools.islice(counting("s2"), 3))
    [('s2', 0), ('s2', 1), ('s2', 2)]
    """
    for position in itertools.count():
        yield (name, position)


def counting_random(name: str, rng: np.random.Generator) -> Iterator[tuple[str, int, int]]:
    """``(name, i, draw)`` forever, ``draw`` drawn from ``rng``.

    >>> next(counting_random("s3", np.random.default_rng(0)))[:2]
    ('s3', 0)
    """
    for position in itertools.count():
        yield (name, position, int(rng.integers(1 << 31)))


def origin(item: Any) -> tuple[str, int]:
    """``(name, position)`` of a generated source's item (numpy scalars unwrapped, an ``"arrays"`` name decoded).

    >>> origin((np.str_("s3"), np.int64(7), 12345)), origin(_name_rows("s0", 3)[2])
    (('s3', 7), ('s0', 2))
    """
    name = item[0]
    name = int(name).to_bytes(8, "little").rstrip(b"\0").decode() if isinstance(name, (np.integer, int)) else name
    return (str(name), int(item[1]))


def _name_rows(name: str, n: int) -> np.ndarray:
    """int64 rows ``[name as an integer, position]``: one numeric schema, so ``"arrays"`` sources take the block path."""
    if len(name.encode()) > 7:
        msg = f"an \"arrays\" source's name must be at most 7 bytes, got {name!r}"
        raise InvalidArgument(msg)
    return np.stack([np.full(n, int.from_bytes(name.encode(), "little")), np.arange(n)], axis=1).astype(np.int64)


def _keep_even(item: Any) -> bool:
    """A filter predicate: keep the items at even positions."""
    return int(item[1]) % 2 == 0


def _same(item: Any) -> Any:  # a map that returns its item (exercises the map path, keeps items identifiable)
    return item


def _tagged(item: Any, rng: np.random.Generator) -> tuple[Any, Any, int]:
    """A map function with ``rng``: ``(name, position, draw)``, the draw from the item's own Generator."""
    return (item[0], item[1], int(rng.integers(1 << 31)))


# ------------------------------------------------------------------ strategies


def _source(kind: str, name: str, n: int) -> Stream:
    if kind == "items":
        return from_iterable(list(labelled(name, n)))
    if kind == "generator":
        return stream(labelled, name, n)
    if kind == "rng":
        return stream(labelled_random, name, n)
    if kind == "infinite":
        return stream(counting, name)
    if kind == "seeking":
        return stream(labelled_from, name, n)
    if kind == "arrays":
        return from_arrays(_name_rows(name, n))
    return stream(counting_random, name)


def _check_kinds(what: str, kinds: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    kinds = tuple(kinds)
    if not kinds:
        msg = f"{what} needs at least one kind, got {kinds!r}"
        raise InvalidArgument(msg)
    for kind in kinds:
        checks.one_of(what, kind, allowed)
    return kinds


@st.composite
def _sources(draw: Any, name: str, kinds: tuple[str, ...], max_size: int) -> Stream:
    kind = draw(st.sampled_from(kinds))  # shrinks towards the first kind, "items"
    size = draw(st.integers(0, max_size)) if kind in _FINITE_KINDS else 0
    return _source(kind, name, size)


_FINITE_KINDS = ("items", "generator", "rng", "seeking", "arrays")


def sources(name: str = "s0", *, kinds: Sequence[str] = SOURCE_KINDS, max_size: int = 8) -> st.SearchStrategy[Stream]:
    """Strategy: a source named ``name`` whose items are ``(name, position[, draw])``.

    ``kinds`` picks among `SOURCE_KINDS`: ``"items"`` (``from_iterable`` of a
    list), ``"generator"`` (`labelled`), ``"rng"`` (`labelled_random`),
    ``"infinite"`` (`counting`), ``"infinite_rng"`` (`counting_random`); and,
    among `ALL_SOURCE_KINDS` only, ``"seeking"`` (`labelled_from`) and
    ``"arrays"`` (``from_arrays`` of int64 rows ``[name, position]``, the name
    as an integer that `origin` reads back: all of one numeric schema, so
    mixes, chains, cycles and takes of them run on the block path). Finite sources hold 0 to ``max_size`` items (empty ones included: muxes
    must end on them). Shrinks towards an empty ``from_iterable``.

    Raises `InvalidArgument` for an unknown kind or ``max_size < 0``.

    >>> from hypothesis import given
    >>> @given(sources("a", kinds=["generator", "infinite"]))
    ... def test_named(s):
    ...     assert all(origin(item)[0] == "a" for item in s.take(5))
    >>> test_named()
    """
    kinds = _check_kinds("source kind", kinds, ALL_SOURCE_KINDS)
    return _sources(name, kinds, checks.non_negative_int("sources() max_size", max_size))


def is_infinite_source(node: Stream) -> bool:
    """Whether ``node`` is one of the endless sources `sources` draws.

    >>> is_infinite_source(stream(counting, "s0")), is_infinite_source(stream(labelled, "s0", 3))
    (True, False)
    """
    return getattr(node, "fn", None) in (counting, counting_random)


_WEIGHT_VALUES = st.one_of(
    st.integers(0, 10),
    st.floats(0, 10, allow_subnormal=False),
    st.integers(0, 10).map(np.int32),
    st.floats(0, 10, width=32, allow_subnormal=False).map(np.float32),
    st.fractions(0, 10, max_denominator=7),
)
#: how `weights` may make its values extreme: as drawn, all scaled by one factor, or some replaced
_EXTREMES = ("none", "none", "none", "scaled", "mixed")
#: factors that push weights to the edges of float64: near overflow, tiny normal, subnormal
_SCALES = (1e307, 1e-300, 2.0**-1070)
#: values that replace weights in a "mixed" tuple: the largest float, subnormals
_EXTREME_VALUES = (1.7976931348623157e308, 1e-320, 5e-324)


@st.composite
def _weights(draw: Any, n: int, extreme: bool) -> tuple[Any, ...]:
    values = draw(st.tuples(*[_WEIGHT_VALUES] * n))
    how = draw(st.sampled_from(_EXTREMES)) if extreme else "none"
    if how == "scaled":
        factor = draw(st.sampled_from(_SCALES))
        return tuple(float(v) * factor for v in values)
    if how == "mixed":
        return tuple(draw(st.sampled_from((v, *_EXTREME_VALUES))) for v in values)
    return values


def weights(n: int, *, extreme: bool = True) -> st.SearchStrategy[tuple[Any, ...]]:
    """Strategy: ``n`` valid mix weights: finite, >= 0, not all zero, of mixed numeric types.

    Values are ints, floats, ``numpy.int32``, ``numpy.float32`` and
    ``fractions.Fraction`` in [0, 10]; zeros are included. With ``extreme``
    (the default), about one tuple in five is pushed to the edges of
    float64: all values scaled by ``1e307`` (their sum overflows), ``1e-300``
    or ``2**-1070`` (subnormal), or some values replaced by the largest
    float, ``1e-320`` or ``5e-324`` (huge and tiny in one mix). Shrinks
    towards ``(0, ..., 0, 1)``-like tuples of small ints.

    Raises `InvalidArgument` if ``n < 1``.

    >>> from hypothesis import given
    >>> @given(weights(3))
    ... def test_valid(w):
    ...     assert len(w) == 3 and max(float(v) for v in w) > 0
    >>> test_valid()
    """
    n = checks.positive_int("weights() n", n)
    return _weights(n, bool(extreme)).filter(lambda w: any(float(v) > 0 for v in w))


@st.composite
def _transform(draw: Any, kinds: tuple[str, ...]) -> Transform:
    kind = draw(st.sampled_from(kinds))
    if kind == "map":
        return map(_same)
    if kind == "filter":
        return filter(_keep_even)
    if kind == "take":
        return take(draw(st.integers(0, 10)))
    if kind == "shuffle":
        return shuffle(draw(st.integers(1, 4)))
    if kind == "cache":
        return cache(draw(st.integers(1, 3)), prob=draw(st.sampled_from((0.5, 1.0, 0.1))))
    if kind == "map_rng":
        return map(_tagged)
    if kind == "batch":
        batched = batch(draw(st.integers(1, 4)), partial=draw(st.booleans()))
        return batched >> unbatch() if draw(st.booleans()) else batched
    return batch(draw(st.integers(1, 4)), partial=True) >> unbatch()


def transforms(kinds: Sequence[str] = TRANSFORM_KINDS) -> st.SearchStrategy[Transform]:
    """Strategy: one transform that keeps items identifiable by `origin`.

    ``kinds`` picks among `TRANSFORM_KINDS`: ``map(_same)``,
    ``filter(_keep_even)`` (keeps even positions), ``take(k)``,
    ``shuffle(k)``, and ``batch(k, partial=True) >> unbatch()``; among
    `ALL_TRANSFORM_KINDS` only, ``cache(k, prob)``, ``map(_tagged)`` (its
    function takes ``rng``) and ``batch(k, partial)`` with or without
    ``unbatch()`` (items become batches). Only ``map`` and ``batch_unbatch``
    keep every item in order.

    Raises `InvalidArgument` for an unknown kind.
    """
    return _transform(_check_kinds("transform kind", kinds, ALL_TRANSFORM_KINDS))


class _Names:
    """Hands out unique source names ``s0, s1, ...`` within one plan."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.count = prefix, itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.count)}"


# A plan node is drawn with whether it ends by itself (``finite``); the top of
# an infinite plan gets ``take`` so that every drawn plan can be listed.


def _draw_children(draw, depth, names, options) -> tuple[list[Stream], list[bool]]:
    n = draw(st.integers(options["min_children"], options["max_children"]))
    drawn = [_draw_plan(draw, depth - 1, names, options) for _ in range(n)]
    return [s for s, _ in drawn], [f for _, f in drawn]


#: a mix that keeps its empty streams and draws them again may wait ~1/share empty activations for a stream
#: of this share or less; above `UNDRAWN_SHARE` (below it, the mix counts it as found empty) that is no hang,
#: but no run to test either: such a mix is drawn with ``prune_empty=True``
_FEW_DRAWS = 2.0**-12


def _draw_mix(draw, children, finite, options) -> tuple[Stream, bool]:
    n = len(children)
    mode = draw(st.sampled_from(options["modes"]))
    w = draw(st.none() | weights(n))
    n_active = draw(st.none() | st.integers(1, n + 1))
    # a budget needs a working set (mix() refuses rate without n_active)
    rate = None if n_active is None else draw(st.none() | st.floats(1, 8, allow_subnormal=False))
    dist = draw(st.sampled_from(("binomial", "constant", "poisson")))
    shares = normalize_weights(w, MIN_SHARE) if w is not None and mode not in ENDING_MODES else np.ones(1)
    prune_empty = draw(st.booleans()) or bool(np.any((shares >= UNDRAWN_SHARE) & (shares < _FEW_DRAWS)))
    node = mix(*children, weights=w, n_active=n_active, rate=rate, mode=mode, dist=dist, prune_empty=prune_empty)
    p = node.probabilities if isinstance(node, Mix) else np.ones(1)
    if mode == "exhaustive":  # ends when every stream that may be drawn has ended
        return node, all(f for f, share in zip(finite, p) if share > 0)
    # first_exhausted ends once a finite stream runs dry, if it is drawn often enough to be soon
    # (weights may be 1e-300); in a working set an endless stream could hold the only slots
    ends = any(f and share >= 0.01 for f, share in zip(finite, p)) if n_active is None else all(finite)
    return node, mode == "first_exhausted" and ends


#: the transforms that do not read their items (a batch is not a ``(name, position)`` item)
_BLIND_KINDS = ("map", "take", "shuffle", "cache")


def _batched(node: Stream) -> bool:
    """Whether some of ``node``'s items are batches (a ``batch`` not undone by an ``unbatch``)."""
    if isinstance(node, Apply):
        batched = _batched(node.stream)
        for t in node.transforms:
            batched = isinstance(t, Batch) or (batched and not isinstance(t, Unbatch))
        return batched
    return any(_batched(child) for child in node.children)


def _draw_plan(draw, depth, names, options) -> tuple[Stream, bool]:
    kinds = ["source"]
    if depth > 0:
        kinds += ["chain", "mix", "round_robin"] + (["apply"] if options["transform_kinds"] else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "source":
        node = draw(_sources(names(), options["source_kinds"], options["max_size"]))
        return node, not is_infinite_source(node)
    if kind == "apply":
        child, finite = _draw_plan(draw, depth - 1, names, options)
        kinds = options["transform_kinds"]
        if not is_source(child):  # batching needs items of one shape: (name, i) and (name, i, draw) differ
            kinds = tuple(k for k in kinds if k not in ("batch_unbatch", "batch")) or ("map",)
        if _batched(child):  # batches are not (name, position) items: only what does not read them
            kinds = tuple(k for k in kinds if k in _BLIND_KINDS) or ("map",)
        transform = draw(_transform(kinds))
        return child >> transform, finite or isinstance(transform, Take)
    if kind == "chain" and options["empty_chains"] and draw(st.integers(0, 7)) == 7:
        return chain(cycle=options["cycles"] and draw(st.booleans())), True  # an empty stream, like pescador's ChainMux([])
    children, finite = _draw_children(draw, depth, names, options)
    if kind == "chain":
        cycle = options["cycles"] and draw(st.booleans())
        return chain(*children, cycle=cycle), all(finite) and not cycle
    if kind == "round_robin":
        mode = draw(st.sampled_from(ROUND_ROBIN_MODES if options["cycles"] else ("exhaustive",)))
        return round_robin(*children, mode=mode), all(finite) and mode == "exhaustive"
    return _draw_mix(draw, children, finite, options)


@st.composite
def _streams(draw: Any, options: dict[str, Any]) -> Stream:
    plan, finite = _draw_plan(draw, options["max_depth"], _Names(options["prefix"]), options)
    return plan if finite or not options["finite"] else plan.take(draw(st.integers(0, _BOUND)))


def streams(
    max_depth: int = 2,
    *,
    source_kinds: Sequence[str] = SOURCE_KINDS,
    transform_kinds: Sequence[str] = TRANSFORM_KINDS,
    modes: Sequence[str] = MIX_MODES,
    min_children: int = 1,
    max_children: int = 3,
    max_size: int = 8,
    finite: bool = True,
    prefix: str = "s",
    empty_chains: bool = True,
) -> st.SearchStrategy[Stream]:
    """Strategy: random plans of chains, mixes in every mode, round-robins and transforms.

    Each leaf is a `sources` source with a unique name (``s0``, ``s1``, ...
    in drawing order; ``prefix`` replaces the ``s``, so that plans drawn
    separately and then combined keep distinct names), so every item
    identifies its source and position.
    Nodes nest up to ``max_depth`` combinators deep, each with
    ``min_children`` to ``max_children`` children; mixes draw their weights (`weights`,
    extreme ones included), ``n_active``, ``rate`` (only with ``n_active``,
    as `combinators.mix` requires), ``dist``, ``prune_empty`` and a mode
    among ``modes`` (``prune_empty=False`` is not drawn where a mix that draws
    streams again has a stream of share between ``2**-48`` and ``2**-12``: it
    could wait millions of empty activations per item). With ``empty_chains`` (the default), about one chain in
    eight is ``chain()`` of no streams (an empty stream), cycled or not. With ``finite`` (the default) a plan that would not end by
    itself (infinite sources, cycles, the infinite mix modes) gets a
    ``take(k)`` on top, so ``list(plan)`` always ends. Restrict
    ``source_kinds`` / ``transform_kinds`` (an empty ``transform_kinds``
    means no transforms) to the ones a law needs, e.g. only ``"map"`` and
    ``"batch_unbatch"`` keep every item.

    Plans shrink towards a single empty source, then fewer and shallower
    nodes with earlier-listed options.

    Raises `InvalidArgument` for ``max_depth < 0``, ``min_children < 1``,
    ``max_children < min_children``,
    ``max_size < 0``, an unknown kind or mode.

    >>> from hypothesis import given
    >>> @given(streams(max_depth=1, source_kinds=["items"], modes=["exhaustive"]))
    ... def test_positions_in_range(s):
    ...     assert all(0 <= origin(item)[1] < 8 for item in s)
    >>> test_positions_in_range()
    """
    return _streams(_plan_options(
        max_depth, source_kinds, transform_kinds, modes, min_children, max_children, max_size, finite, prefix,
        empty_chains, cycles=True,
    ))


def _plan_options(
    max_depth, source_kinds, transform_kinds, modes, min_children, max_children, max_size, finite, prefix, empty_chains,
    cycles,
) -> dict[str, Any]:
    """The validated options of `streams` and `ending_plans`."""
    options = {
        "max_depth": checks.non_negative_int("streams() max_depth", max_depth),
        "source_kinds": _check_kinds("source kind", source_kinds, ALL_SOURCE_KINDS),
        "transform_kinds": tuple(transform_kinds) and _check_kinds("transform kind", transform_kinds,
                                                                   ALL_TRANSFORM_KINDS),
        "modes": _check_kinds("mix mode", modes, MIX_MODES),
        "min_children": checks.positive_int("streams() min_children", min_children),
        "max_children": checks.positive_int("streams() max_children", max_children),
        "max_size": checks.non_negative_int("streams() max_size", max_size),
        "finite": bool(finite),
        "prefix": str(prefix),
        "empty_chains": bool(empty_chains),
        "cycles": bool(cycles),
    }
    if options["max_children"] < options["min_children"]:
        msg = f"streams() needs min_children <= max_children, got {min_children!r} > {max_children!r}"
        raise InvalidArgument(msg)
    return options


#: the transforms that keep every item, in order
KEEPING_TRANSFORMS = ("map", "batch_unbatch")


def ending_plans(
    max_depth: int = 2,
    *,
    modes: Sequence[str] = ENDING_MODES,
    transform_kinds: Sequence[str] = KEEPING_TRANSFORMS,
    max_children: int = 3,
    max_size: int = 8,
    prefix: str = "s",
    empty_chains: bool = True,
) -> st.SearchStrategy[Stream]:
    """Strategy: plans that end by themselves, with no cycle and no ``take`` on top.

    Like `streams`, over finite sources only (``"items"``, ``"generator"``,
    ``"rng"``), chains that do not cycle (empty ones included), exhaustive
    round-robins, and mixes in ``modes`` (among ``"exhaustive"`` and
    ``"first_exhausted"``) with any weights (extreme ones included),
    ``n_active``, ``rate`` (with ``n_active``), ``dist`` and ``prune_empty``.
    By default only the transforms that keep every item in order are drawn.

    What such a plan must yield: with only exhaustive mixes, every item of
    every source reachable through positive weights exactly once, each
    source in order; in either mode, each item at most once, every source a
    prefix of itself in order.

    Raises `InvalidArgument` for an unknown mode or kind, or a bound out of range.

    >>> from hypothesis import given
    >>> @given(ending_plans(modes=["exhaustive"]))
    ... def test_each_item_at_most_once(plan):
    ...     items = [origin(item) for item in combinators.iterate(plan, seed=0, max_iter=10_000)]
    ...     assert len(items) == len(set(items))
    >>> test_each_item_at_most_once()
    """
    modes = _check_kinds("ending mode", modes, ENDING_MODES)
    return _streams(_plan_options(
        max_depth, ("items", "generator", "rng"), transform_kinds, modes, 1, max_children, max_size, True, prefix,
        empty_chains, cycles=False,
    ))


@st.composite
def _nested_mixes(draw: Any, options: dict[str, Any]) -> Stream:
    names, drawn = _Names(options["prefix"]), []
    for _ in range(draw(st.integers(1, options["max_children"]))):
        if draw(st.booleans()):  # a mix of sources (with transforms), in any mode, as a child of the outer mix
            inner = [_draw_plan(draw, 1, names, options) for _ in range(draw(st.integers(1, options["max_children"])))]
            drawn.append(_draw_mix(draw, [s for s, _ in inner], [f for _, f in inner], options))
        else:
            drawn.append(_draw_plan(draw, 1, names, options))
    plan, finite = _draw_mix(draw, [s for s, _ in drawn], [f for _, f in drawn], options)
    return plan if finite else plan.take(draw(st.integers(0, _BOUND)))


def nested_mixes(
    *, source_kinds: Sequence[str] = ALL_SOURCE_KINDS, transform_kinds: Sequence[str] = ALL_TRANSFORM_KINDS,
    modes: Sequence[str] = MIX_MODES, max_children: int = 3, max_size: int = 6, prefix: str = "s",
) -> st.SearchStrategy[Stream]:
    """Strategy: a mix whose children are mixes (or sources, with transforms), each in any of ``modes``.

    Both levels draw weights, ``n_active`` (None or 1 to one more than their
    children), ``rate`` (with ``n_active``), ``dist`` and ``prune_empty``: a
    with-replacement mix with ``n_active >= 2`` holds several activations of
    one child mix at once, an ending mode suspends and resumes them. A plan
    that would not end gets a ``take(k)`` on top, as in `streams`.

    Raises `InvalidArgument` for an unknown kind or mode, or a bound out of range.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10)
    ... @given(nested_mixes(source_kinds=["items"], transform_kinds=["map"]))
    ... def test_a_mix_of_mixes(plan): assert len(list(combinators.iterate(plan, seed=0, max_iter=9))) <= 9
    >>> test_a_mix_of_mixes()
    """
    return _nested_mixes(_plan_options(
        1, source_kinds, transform_kinds, modes, 1, max_children, max_size, True, prefix, True, cycles=True,
    ))


def every_plan(max_depth: int = 2, *, max_children: int = 3, max_size: int = 6) -> st.SearchStrategy[Stream]:
    """Strategy: the whole plan space, for laws every plan must keep (such as exact resume).

    `streams` with every source kind (`ALL_SOURCE_KINDS`: generators,
    seeking streams, ``from_iterable``, ``from_arrays``, endless ones) and
    every transform (`ALL_TRANSFORM_KINDS`), or `ending_plans` with them
    (mixes whose budgets suspend and resume their streams): mixes in every
    mode, with and without ``n_active`` and ``rate``, every ``dist``, nested
    in mixes of every mode (`nested_mixes`); chains, cycles, round-robins.
    Items are those of the sources, or batches of them; `origin` reads the
    unbatched ones.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=20)
    ... @given(every_plan(max_depth=1), seeds())
    ... def test_the_same_seed_gives_the_same_items(plan, seed):
    ...     items = lambda: repr(list(combinators.iterate(plan, seed=seed, max_iter=30)))
    ...     assert items() == items()
    >>> test_the_same_seed_gives_the_same_items()
    """
    finite = tuple(k for k in ALL_SOURCE_KINDS if k in _FINITE_KINDS)
    return streams(
        max_depth, source_kinds=ALL_SOURCE_KINDS, transform_kinds=ALL_TRANSFORM_KINDS, max_children=max_children,
        max_size=max_size,
    ) | _streams(_plan_options(
        max_depth, finite, ALL_TRANSFORM_KINDS, ENDING_MODES, 1, max_children, max_size, True, "s", True, cycles=False,
    )) | nested_mixes(max_children=max_children, max_size=max_size)


def seeds() -> st.SearchStrategy[int]:
    """Strategy: run seeds, integers in [0, 2**64); shrinks towards 0.

    >>> from hypothesis import given
    >>> @given(seeds())
    ... def test_seed(seed):
    ...     assert 0 <= seed < 2**64
    >>> test_seed()
    """
    return st.integers(0, 2**64 - 1)
