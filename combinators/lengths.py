"""``length(stream)``: how many items a description yields, when that is known without running it.

The length is read from the description alone: a sized collection, the rows
of arrays, and the combinators and transforms whose count follows from their
inputs' counts. Anything that depends on the items (a generator function,
``filter``, ``unbatch``, a ``first_exhausted`` mix) has no known length. ``len(s)``
raises `TypeError` there (the Python convention for an unsized object);
``length(s)`` returns ``None``.

Some streams are known to be infinite (a cycle, or an infinite mix mode,
over streams that are all known to be non-empty); they have no length, but
``take(n)`` over them has length ``n``.

>>> from combinators import from_iterable, mix, batch
>>> a, b = from_iterable(range(5)), from_iterable("xyz")
>>> length(mix(a, b, mode="exhaustive") >> batch(3, partial=True)), length(mix(a, b).take(10))
(3, 10)
>>> length(mix(a, b)) is None  # infinite
True
"""

from __future__ import annotations

import collections.abc
import math
from typing import Any, Callable

from combinators.streams import Apply, Chain, FromArrays, FromIterable, Mix, RoundRobin, Stream
from combinators.transforms import Batch, KerasTuples, Map, Progress, Shuffle, Take, Transform, Tuples

__all__ = ["length", "size", "size_after", "INFINITE", "COUNT_KEEPING"]

#: what `size` returns for a stream known to be infinite
INFINITE = math.inf
#: the transforms that yield one item per item
COUNT_KEEPING = (Map, Tuples, KerasTuples, Progress, Shuffle)


def size(stream: Stream) -> int | float | None:
    """The number of items of ``stream``: an int, `INFINITE` (``math.inf``), or ``None`` if unknown.

    >>> from combinators import from_iterable, stream
    >>> size(from_iterable("ab")), size(from_iterable("ab").cycle()), size(stream(iter, "ab"))
    (2, inf, None)
    """
    sizer = _SIZERS.get(type(stream))
    if sizer is not None:
        return sizer(stream)
    own_len = getattr(type(stream), "__len__", None)
    if own_len is not None and own_len is not Stream.__len__:  # a source that knows its length
        return own_len(stream)
    return None


def length(stream: Stream) -> int | None:
    """The number of items ``stream`` yields if known without running it, else ``None``.

    ``None`` also for an infinite stream. ``len(stream)`` is the same number
    but raises `TypeError` where this returns ``None``.

    >>> from combinators import from_iterable, stream, take
    >>> length(from_iterable(range(7)) >> take(3)), length(stream(range, 7))
    (3, None)
    """
    n = size(stream)
    return n if isinstance(n, int) else None


def _known(sizes: list[int | float | None]) -> bool:
    return all(n is not None for n in sizes)


def _sum_or_cycle(sizes: list[Any], ends: bool) -> int | float | None:
    """A pass over every child: its total; forever (``not ends``): infinite if a pass yields an item."""
    if not _known(sizes):
        return None
    total = sum(sizes)
    if ends:
        return total
    return INFINITE if total > 0 else 0 if total == 0 else None


def _chain(node: Chain) -> int | float | None:
    return _sum_or_cycle([size(s) for s in node.streams], ends=not node.repeat)


def _round_robin(node: RoundRobin) -> int | float | None:
    return _sum_or_cycle([size(s) for s in node.streams], ends=node.mode == "exhaustive")


def _mix(node: Mix) -> int | float | None:
    drawn = node.probabilities > 0  # a stream of weight 0 is never drawn: its items never come
    sizes = [size(s) for s, weighted in zip(node.streams, drawn) if weighted]
    if not _known(sizes):
        return None
    if node.mode == "exhaustive":
        return sum(sizes)  # every item exactly once (a spent budget suspends an activation, it drops nothing)
    if node.mode in ("with_replacement", "single_active") and all(n > 0 for n in sizes):
        return INFINITE  # every activation yields at least one item, and activations never run out
    return None


def _after(transform: Transform, n: int | float | None) -> int | float | None:
    """The number of items out of ``transform`` given ``n`` in (``None``: unknown)."""
    if n is None:
        return None
    if isinstance(transform, COUNT_KEEPING):
        return n
    if isinstance(transform, Take):
        return min(transform.n, n)
    if isinstance(transform, Batch):
        if n == INFINITE:
            return n
        return -(-n // transform.size) if transform.partial else n // transform.size
    return None  # filter, unbatch, cache and any other: depends on the items


def size_after(stream: Stream, transforms: tuple[Transform, ...]) -> int | float | None:
    """`size` of ``stream`` with ``transforms`` applied in order."""
    n = size(stream)
    for transform in transforms:
        n = _after(transform, n)
    return n


def _apply(node: Apply) -> int | float | None:
    return size_after(node.stream, node.transforms)


def _from_iterable(node: FromIterable) -> int | None:
    return len(node.items) if isinstance(node.items, collections.abc.Sized) else None


_SIZERS: dict[type, Callable[[Any], int | float | None]] = {
    FromIterable: _from_iterable,
    FromArrays: len,
    Chain: _chain,
    RoundRobin: _round_robin,
    Mix: _mix,
    Apply: _apply,
}
