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

from combinators.plan.stream import INFINITE, Stream
from combinators.plan.transforms import COUNT_KEEPING, Transform, count_after

__all__ = ["length", "size", "size_after", "INFINITE", "COUNT_KEEPING"]


def size(stream: Stream) -> int | float | None:
    """The number of items of ``stream``: an int, `INFINITE` (``math.inf``), or ``None`` if unknown.

    Each kind of node gives its own from its fields and its children's sizes.

    >>> from combinators import from_iterable, stream
    >>> size(from_iterable("ab")), size(from_iterable("ab").cycle()), size(stream(iter, "ab"))
    (2, inf, None)
    """
    return stream._size()


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


def size_after(stream: Stream, transforms: tuple[Transform, ...]) -> int | float | None:
    """`size` of ``stream`` with ``transforms`` applied in order."""
    n = size(stream)
    for transform in transforms:
        n = count_after(transform, n)
    return n
