"""Where a resumed leaf with transforms starts its source: item n of ``source >> t1 >> t2`` without making the rest.

A leaf activation resumed after ``start`` items (its outputs, what its consumer
received) runs its transforms from the source's first item and skips ``start``
outputs, unless every transform says how many items it took for the outputs
it gave: ``batch(b)`` took ``b`` per batch, ``take``, ``map``, ``tuples``,
``keras_tuples`` and ``progress`` one per item, ``unbatch`` the batches whose
rows it gave (when their length is known: a ``batch`` below it in the leaf, or
the rows of ``from_arrays``/shard files of 2-D or more). Then the source starts
at the item those counts give (a seekable source seeks there in O(1); see
`combinators.execution.leaf.seeks`), each transform's state is set as after
those items, and only the rows of a batch that ``unbatch`` had half passed on
are made again. ``filter``, ``shuffle`` and ``cache`` do not say: a leaf with
one of them runs from its first item, as before.
"""

from __future__ import annotations

from typing import NamedTuple

from combinators.plan.sources import FromArrays, RowSource
from combinators.plan.stream import Stream
from combinators.plan.transforms import Batch, KerasTuples, Map, Progress, Take, Transform, Tuples, Unbatch

__all__ = ["Seek", "seek"]

_ONE_FOR_ONE = (Map, Tuples, KerasTuples, Progress)


class Seek(NamedTuple):
    """How to start a leaf's transforms after ``start`` outputs: its source at item ``first``, transform ``i``
    from state ``cells[i]`` (as `combinators.execution.apply.run_transforms` takes them), with its first
    ``skips[i]`` outputs left out (the rows of a batch that an ``unbatch`` had partly passed on)."""

    first: int
    cells: list[dict]
    skips: list[int]


def seek(source: Stream, transforms: tuple[Transform, ...], start: int) -> Seek | None:
    """Where ``source >> transforms`` starts to give its outputs after the first ``start``, or None when a
    transform cannot say how many items it took (``filter``, ``shuffle``, ``cache``, an ``unbatch`` of
    batches of unknown length).

    >>> import numpy as np
    >>> from combinators.plan.sources import from_arrays
    >>> from combinators.plan.transforms import batch, take, unbatch
    >>> seek(from_arrays(np.zeros(100)), (batch(10), take(5)), 3)
    Seek(first=30, cells=[{}, {'passed': 3}], skips=[0, 0])
    >>> seek(from_arrays(np.zeros(100)), (batch(10), unbatch()), 25)
    Seek(first=20, cells=[{}, {}], skips=[0, 5])
    """
    lengths = _batch_lengths(source, transforms)
    if lengths is None:
        return None
    cells, skips, outputs = [{} for _ in transforms], [0] * len(transforms), start
    for index in reversed(range(len(transforms))):
        t = transforms[index]
        if isinstance(t, Batch):
            outputs *= t.size
        elif isinstance(t, Take):
            outputs = min(outputs, t.n)
            cells[index] = {"passed": outputs}
        elif isinstance(t, Map):
            cells[index] = {"position": outputs}  # a map with rng draws from its item's position
        elif isinstance(t, Unbatch):
            outputs, skips[index] = divmod(outputs, lengths[index])
        elif not isinstance(t, _ONE_FOR_ONE):
            return None
    return Seek(outputs, cells, skips)


def _batch_lengths(source: Stream, transforms: tuple[Transform, ...]) -> list[int] | None:
    """The length of the batches each ``unbatch`` splits (0 for the other transforms), or None if unknown."""
    stack = _row_lengths(source)  # the known leading lengths of an item, outermost first
    lengths = []
    for t in transforms:
        length = 0
        if isinstance(t, Batch):
            stack = [t.size, *stack] if t.axis is None else []
        elif isinstance(t, Unbatch):
            if not stack:
                return None
            length, stack = stack[0], stack[1:]
        elif not isinstance(t, (Take, Progress)):
            stack = []  # a function may change the items' shapes
        lengths.append(length)
    return lengths


def _row_lengths(source: Stream) -> list[int]:
    """The leading lengths of every row of a row source, outermost first: an array's shape after its rows (the
    same for every key of a mapping: their common prefix), or [] when unknown."""
    if isinstance(source, FromArrays):
        arrays = source.data.values() if isinstance(source.data, dict) else (source.data,)
        shapes = [array.shape[1:] for array in arrays]
    elif isinstance(source, RowSource) and source.schema is not None:
        shapes = [shape for _, _, shape in source.schema]
    else:
        return []
    common = []
    for lengths in zip(*shapes):
        if len(set(lengths)) != 1:
            break
        common.append(int(lengths[0]))
    return common
