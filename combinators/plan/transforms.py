"""Transform descriptions, applied with ``stream >> transform``.

A transform is a frozen value; ``t1 >> t2`` composes two into a flat
`Compose`. What each transform does to the items lives in
``combinators.execution.transforms`` (the interpreter side).

>>> from combinators.plan.sources import from_iterable
>>> s = from_iterable(range(6)) >> map(lambda x: x * 10) >> batch(4, partial=True)
>>> [b.tolist() for b in s]
[[0, 10, 20, 30], [40, 50]]
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import attrs

from combinators.plan import checks
from combinators.plan.description import Description, call_repr
from combinators.errors import InvalidArgument, InvalidArgumentType

__all__ = [
    "Transform",
    "Compose",
    "Batch",
    "Unbatch",
    "Map",
    "Filter",
    "Take",
    "Shuffle",
    "Tuples",
    "KerasTuples",
    "Cache",
    "Progress",
    "batch",
    "unbatch",
    "map",
    "filter",
    "take",
    "shuffle",
    "tuples",
    "keras_tuples",
    "cache",
    "progress",
]


class Transform(Description):
    """Base class of transform descriptions; ``t1 >> t2`` composes."""

    __slots__ = ()

    #: whether the transform draws random numbers (it then gets its own Generator)
    random = False

    def __rshift__(self, other: object) -> "Compose":
        return compose(self, other) if isinstance(other, Transform) else NotImplemented


def flatten_transforms(t: Transform) -> tuple[Transform, ...]:
    """The transforms ``t`` stands for, in order (a `Compose` unpacks)."""
    return t.transforms if isinstance(t, Compose) else (t,)


@attrs.frozen(eq=False, repr=False)
class Compose(Transform):
    """Several transforms applied in order."""

    transforms: tuple[Transform, ...]

    def __repr__(self) -> str:
        return " >> ".join(map(repr, self.transforms))


def compose(*transforms: Transform) -> Compose:
    """``t1 >> t2 >> ...`` as one flat transform.

    >>> compose(take(3), batch(2)) == take(3) >> batch(2)
    True
    """
    flat: list[Transform] = []
    for t in transforms:
        checks.instance_of("an argument of compose()", t, Transform, "a transform")
        flat.extend(flatten_transforms(t))
    return Compose(tuple(flat))


@attrs.frozen(eq=False, repr=False)
class Batch(Transform):
    size: int = attrs.field(converter=lambda v: checks.positive_int("batch size", v))
    partial: bool = False
    axis: int | None = None

    def __repr__(self) -> str:
        options = {k: getattr(self, k) for k, d in (("partial", False), ("axis", None)) if getattr(self, k) != d}
        return call_repr("batch", (self.size,), options)


def batch(size: int, partial: bool = False, axis: int | None = None) -> Batch:
    """Stack every ``size`` items into one batch (pescador's ``buffer_stream``).

    Items that are dicts of arrays or scalars give a dict of arrays with a new
    leading axis of length ``size``; tuples give tuples; arrays give an array
    of shape ``(size, *item.shape)``; scalars a 1-D array. With ``axis=k``
    arrays are concatenated along ``k`` instead of stacked. A final short
    batch is yielded only if ``partial``.

    Raises `InvalidArgument` if ``size < 1``; while running, `DataError`
    naming the key and the shapes when items do not match.

    >>> from combinators.plan.sources import from_iterable
    >>> [b["x"].shape for b in from_iterable([{"x": np.zeros(3)}] * 5) >> batch(2)]
    [(2, 3), (2, 3)]
    """
    if axis is not None and not isinstance(axis, int):
        msg = f"batch axis must be an int or None, got {axis!r}"
        raise InvalidArgumentType(msg)
    return Batch(size, bool(partial), axis)


@attrs.frozen(eq=False, repr=False)
class Unbatch(Transform):
    def __repr__(self) -> str:
        return "unbatch()"


def unbatch() -> Unbatch:
    """Split each batch back into items: the inverse of `batch` (stacking mode).

    Over rows of arrays on the block path, every column's rows must share
    one leading length ``k``: each block is reshaped to ``n * k`` rows (a
    view), the same items; otherwise `DataError` names the key and lengths,
    as item by item.

    >>> from combinators.plan.sources import from_iterable
    >>> [int(x) for x in from_iterable(range(4)) >> batch(2) >> unbatch()]
    [0, 1, 2, 3]
    """
    return Unbatch()


@attrs.frozen(eq=False, repr=False)
class Map(Transform):
    fn: Callable[..., Any] = attrs.field(validator=lambda _, __, v: checks.a_callable("the function of map()", v))
    batched: bool = False

    def __repr__(self) -> str:
        return call_repr("map", (self.fn,), {"batched": True} if self.batched else {})


def map(fn: Callable[..., Any], batched: bool = False) -> Map:  # noqa: A001 - the field's name
    """Apply ``fn`` to every item.

    If ``fn`` has a parameter ``rng``, it is called as ``fn(item, rng=g)`` with
    a Generator derived from the seed and the item's position.

    With ``batched=True`` (as grain's and datasets' batched maps), ``fn``
    receives a block of rows: an array of rows, or a dict of arrays of rows
    (shape ``(n, *row_shape)``), and returns a block of as many rows (an
    array, or a dict of arrays), row ``i`` made from row ``i`` alone. On the
    block path it is called once per block of rows; elsewhere once per item,
    on a block of one row (``item[None]``), and row 0 of its result is the
    item. The block sizes depend on the path, so ``fn`` may not take an
    ``rng`` (`InvalidArgument`); a result with another number of rows raises
    `DataError` naming ``fn``.

    >>> import numpy as np
    >>> from combinators.plan.sources import from_arrays, from_iterable
    >>> list(from_iterable([1, 2]) >> map(str))
    ['1', '2']
    >>> [int(x) for x in from_arrays(np.arange(3)) >> map(lambda rows: rows * 10, batched=True)]
    [0, 10, 20]
    """
    if batched and checks.accepts(fn, "rng"):
        msg = f"map(batched=True) cannot give {fn!r} an rng: its blocks of rows depend on the path"
        raise InvalidArgument(msg)
    return Map(fn, bool(batched))


@attrs.frozen(eq=False, repr=False)
class Filter(Transform):
    predicate: Callable[..., bool] = attrs.field(
        validator=lambda _, __, v: checks.a_callable("the predicate of filter()", v)
    )

    def __repr__(self) -> str:
        return call_repr("filter", (self.predicate,))


def filter(predicate: Callable[..., bool]) -> Filter:  # noqa: A001 - the field's name
    """Keep the items for which ``predicate(item)`` is true (``rng`` as in `map`).

    On the block path (a ``predicate`` without ``rng``), it is called once per
    row of a block, on the item the per-item path gives it, possibly ahead of
    the items handed out; the block is then compressed. The items are the same
    for a ``predicate`` that leaves its item as it is (there, the item it sees
    is a dict of read-only views made for it, not the one handed on).

    >>> from combinators.plan.sources import from_iterable
    >>> list(from_iterable(range(6)) >> filter(lambda x: x % 2))
    [1, 3, 5]
    """
    return Filter(predicate)


@attrs.frozen(eq=False, repr=False)
class Take(Transform):
    n: int = attrs.field(converter=lambda v: checks.non_negative_int("take n", v))

    def __repr__(self) -> str:
        return call_repr("take", (self.n,))


def take(n: int) -> Take:
    """The first ``n`` items (pescador's ``max_iter`` on one stream).

    >>> from combinators.plan.sources import from_iterable
    >>> list(from_iterable(range(9)) >> take(2))
    [0, 1]
    """
    return Take(n)


@attrs.frozen(eq=False, repr=False)
class Shuffle(Transform):
    buffer_size: int = attrs.field(converter=lambda v: checks.positive_int("shuffle buffer_size", v))
    random = True

    def __repr__(self) -> str:
        return call_repr("shuffle", (self.buffer_size,))


def shuffle(buffer_size: int) -> Shuffle:
    """Shuffle through a buffer of ``buffer_size`` items (each item is kept once).

    Each step yields a uniformly chosen item of the full buffer and puts the
    next input in its place; the end drains the buffer in random order
    (the shuffle buffer of tf.data and grain).

    >>> from combinators.plan.sources import from_iterable
    >>> sorted(combinators.iterate(from_iterable(range(5)) >> shuffle(3), seed=1))
    [0, 1, 2, 3, 4]
    """
    return Shuffle(buffer_size)


@attrs.frozen(eq=False, repr=False)
class Tuples(Transform):
    keys: tuple[Any, ...]

    def __repr__(self) -> str:
        return call_repr("tuples", self.keys)


def tuples(*keys: Any) -> Tuples:
    """Turn dict items into tuples ``(item[k1], item[k2], ...)`` (pescador ``tuples``).

    Raises `InvalidArgument` if no key is given.

    >>> from combinators.plan.sources import from_iterable
    >>> list(from_iterable([{"x": 1, "y": 2}]) >> tuples("y", "x"))
    [(2, 1)]
    """
    if not keys:
        msg = "tuples() needs at least one key"
        raise InvalidArgument(msg)
    return Tuples(keys)


def _key_spec(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return tuple(value)


@attrs.frozen(eq=False, repr=False)
class KerasTuples(Transform):
    inputs: str | tuple[str, ...] | None = attrs.field(default=None, converter=_key_spec)
    outputs: str | tuple[str, ...] | None = attrs.field(default=None, converter=_key_spec)

    def __repr__(self) -> str:
        options = {k: getattr(self, k) for k in ("inputs", "outputs") if getattr(self, k) is not None}
        return call_repr("keras_tuples", (), options)


def keras_tuples(inputs: str | Sequence[str] | None = None, outputs: str | Sequence[str] | None = None) -> KerasTuples:
    """Turn dict items into ``(x, y)`` pairs for Keras ``model.fit`` (pescador ``keras_tuples``).

    A string key gives the array itself, a sequence of keys a list of arrays,
    ``None`` gives ``None`` in that place.

    Raises `InvalidArgument` if neither ``inputs`` nor ``outputs`` names a key.

    >>> from combinators.plan.sources import from_iterable
    >>> list(from_iterable([{"x": 1, "y": 2}]) >> keras_tuples("x", ["y"]))
    [(1, [2])]
    """
    spec = KerasTuples(inputs, outputs)
    if not spec.inputs and not spec.outputs:
        msg = f"keras_tuples() needs a key in inputs or outputs, got inputs={inputs!r}, outputs={outputs!r}"
        raise InvalidArgument(msg)
    return spec


@attrs.frozen(eq=False, repr=False)
class Cache(Transform):
    n_cache: int = attrs.field(converter=lambda v: checks.positive_int("cache n_cache", v))
    prob: float = attrs.field(default=0.5, converter=lambda v: checks.probability("cache prob", v))
    random = True

    def __repr__(self) -> str:
        return call_repr("cache", (self.n_cache,), {"prob": self.prob} if self.prob != 0.5 else {})


def cache(n_cache: int, prob: float = 0.5) -> Cache:
    """Pescador's stochastic cache: reuse items to stretch a slow stream.

    The first ``n_cache`` items fill the cache and pass through; an input
    that ends before the cache is full ends the stream there, so
    ``from_iterable(range(3)) >> cache(8)`` yields ``0, 1, 2``. After that,
    each step picks a random cache slot and, with probability ``prob``,
    replaces it with a new item from the input; then it yields that slot.
    The stream ends at the first step that finds the input ended, so it
    yields every input item at least once (new items in input order) and
    ends whenever the input does.

    Raises `InvalidArgument` if ``n_cache < 1`` or ``prob`` is not in (0, 1].

    Source: ``pescador.maps.cache`` (pescador 3), the same steps (a uniform
    slot, then a ``random() <= prob`` coin) on the run's Generator.

    >>> from combinators.plan.sources import from_iterable
    >>> out = list(combinators.iterate(from_iterable(range(4)) >> cache(2, prob=0.5), seed=0))
    >>> out[:2], set(out) <= {0, 1, 2, 3}
    ([0, 1], True)
    >>> list(from_iterable(range(3)) >> cache(8, prob=0.1))  # ends with its input
    [0, 1, 2]
    """
    return Cache(n_cache, prob)


@attrs.frozen(eq=False, repr=False)
class Progress(Transform):
    total: int | None = None
    desc: str | None = None

    def __repr__(self) -> str:
        options = {k: getattr(self, k) for k in ("total", "desc") if getattr(self, k) is not None}
        return call_repr("progress", (), options)


def progress(total: int | None = None, desc: str | None = None) -> Progress:
    """Show a tqdm progress bar over the items passing through.

    Applied with ``s >> progress()``, a missing ``total`` becomes the length
    of what it counts when that is known (`combinators.length`), and a
    missing ``desc`` the stream's name.

    >>> from combinators.plan.sources import from_iterable
    >>> progress(total=3, desc="items")
    progress(total=3, desc='items')
    >>> from_iterable("abcd").named("letters") >> take(3) >> progress()
    from_iterable('abcd').named('letters') >> take(3) >> progress(total=3, desc='letters')
    """
    if total is not None:
        total = checks.non_negative_int("progress total", total)
    return Progress(total, desc)



#: the transforms that yield one item per item
COUNT_KEEPING = (Map, Tuples, KerasTuples, Progress, Shuffle)


def count_after(transform: Transform, n: int | float | None) -> int | float | None:
    """The number of items out of ``transform`` given ``n`` in (``None``: unknown; ``inf``: infinite).

    >>> count_after(batch(3, partial=True), 7), count_after(take(5), float("inf")), count_after(unbatch(), 4)
    (3, 5, None)
    """
    if n is None:
        return None
    if isinstance(transform, COUNT_KEEPING):
        return n
    if isinstance(transform, Take):
        return min(transform.n, n)
    if isinstance(transform, Batch):
        if n == float("inf"):
            return n
        return -(-n // transform.size) if transform.partial else n // transform.size
    return None  # filter, unbatch, cache and any other: depends on the items
