"""One source activation: a source with the transforms directly above it.

`activate_leaf` is what executors run, in-process or in a worker: it derives
its Generators from the run's entropy, the leaf's path and the activation
number, so its items are the same wherever it runs.
"""

from __future__ import annotations

import collections.abc
import itertools
from typing import Any, Iterable, Iterator

import numpy as np

from combinators import seeding
from combinators.execution.apply import run_transforms
from combinators.execution.blocks import block_rows, row_blocks
from combinators.streams import Apply, FromArrays, FromIterable, RowSource, Source, Stream, is_source

__all__ = ["is_leaf", "activate_leaf"]


def is_leaf(node: Stream) -> bool:
    """A source, or a source with transforms applied (``source >> t1 >> t2``)."""
    return is_source(node) or (isinstance(node, Apply) and is_source(node.stream))


def _source_items(
    source: Stream, entropy: int, path: tuple[int, ...], activation: tuple[int, ...], start: int = 0
) -> Iterable[Any]:
    """The items of one activation of ``source``, from item ``start`` on (seeking where the source can)."""
    if isinstance(source, Source):
        rng = {"rng": seeding.generator(entropy, path, activation, seeding.SOURCE)} if source.wants_rng else {}
        if source.seeks:
            return source.fn(*source.args, **source.kwargs, **rng, start=start)
        items = source.fn(*source.args, **source.kwargs, **rng)
        return itertools.islice(items, start, None) if start else items
    if isinstance(source, FromIterable):
        items = source.items
        if not start:
            return items
        if isinstance(items, np.ndarray):
            return items[start:]
        if isinstance(items, collections.abc.Sequence):
            return map(items.__getitem__, range(start, len(items)))
        return itertools.islice(items, start, None)
    if isinstance(source, FromArrays):
        if isinstance(source.data, dict):
            return (source[i] for i in range(start, len(source)))
        return iter(source.data[start:])
    if isinstance(source, RowSource):  # shard files: read a block at a time, closed at the end
        return block_rows(row_blocks(source, start))
    msg = f"not a source: {source!r}"
    raise TypeError(msg)


def activate_leaf(
    leaf: Stream, entropy: int, path: tuple[int, ...], activation: tuple[int, ...], start: int = 0
) -> Iterator[Any]:
    """The items of one activation of ``leaf`` at ``path``, identified by ``activation``, from item ``start`` on.

    A resumed run starts a leaf activation at the number of items its
    consumer had received: a source seeks there (`from_arrays`,
    `from_iterable` over a sequence, a ``stream(fn)`` whose ``fn`` takes
    ``start``) or skips that many items; a source with transforms runs them
    from the activation's first item and skips ``start`` of their outputs.

    >>> from combinators.streams import from_iterable
    >>> from combinators.transforms import take
    >>> list(activate_leaf(from_iterable("abc") >> take(2), 0, (), (0,)))
    ['a', 'b']
    >>> list(activate_leaf(from_iterable("abcd"), 0, (), (0,), start=2))
    ['c', 'd']
    """
    if isinstance(leaf, Apply):
        items = iter(_source_items(leaf.stream, entropy, (*path, 0), (*activation, 0)))
        output = run_transforms(items, leaf.transforms, entropy, path, activation)
        return _Pipeline(items, itertools.islice(output, start, None) if start else output)
    return iter(_source_items(leaf, entropy, path, activation, start))


class _Pipeline:
    """The output of a leaf's transforms; ``close()`` also closes the source."""

    __slots__ = ("source", "output", "__weakref__")

    def __init__(self, source: Iterator[Any], output: Iterator[Any]):
        self.source, self.output = source, output

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self.output)

    def iterator(self) -> Iterator[Any]:
        """The transforms' output itself (skips this wrapper on the hot path)."""
        return self.output

    def close(self) -> None:
        for part in (self.output, self.source):
            close = getattr(part, "close", None)
            if close is not None:
                close()
