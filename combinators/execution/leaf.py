"""One source activation: a source with the transforms directly above it.

`activate_leaf` is what executors run, in-process or in a worker: it derives
its Generators from the run's entropy, the leaf's path and the activation
number, so its items are the same wherever it runs.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from combinators import seeding
from combinators.execution.apply import run_transforms
from combinators.execution.blocks import block_rows, row_blocks
from combinators.streams import Apply, FromArrays, FromIterable, RowSource, Source, Stream, is_source

__all__ = ["is_leaf", "activate_leaf"]


def is_leaf(node: Stream) -> bool:
    """A source, or a source with transforms applied (``source >> t1 >> t2``)."""
    return is_source(node) or (isinstance(node, Apply) and is_source(node.stream))


def _source_items(source: Stream, entropy: int, path: tuple[int, ...], activation: tuple[int, ...]) -> Iterable[Any]:
    if isinstance(source, Source):
        if source.wants_rng:
            rng = seeding.generator(entropy, path, activation, seeding.SOURCE)
            return source.fn(*source.args, **source.kwargs, rng=rng)
        return source.fn(*source.args, **source.kwargs)
    if isinstance(source, FromIterable):
        return source.items
    if isinstance(source, FromArrays):
        return (source[i] for i in range(len(source))) if isinstance(source.data, dict) else iter(source.data)
    if isinstance(source, RowSource):  # shard files: read a block at a time, closed at the end
        return block_rows(row_blocks(source))
    msg = f"not a source: {source!r}"
    raise TypeError(msg)


def activate_leaf(leaf: Stream, entropy: int, path: tuple[int, ...], activation: tuple[int, ...]) -> Iterator[Any]:
    """The items of one activation of ``leaf`` at ``path``, identified by ``activation``.

    >>> from combinators.streams import from_iterable
    >>> from combinators.transforms import take
    >>> list(activate_leaf(from_iterable("abc") >> take(2), 0, (), (0,)))
    ['a', 'b']
    """
    if isinstance(leaf, Apply):
        items = iter(_source_items(leaf.stream, entropy, (*path, 0), (*activation, 0)))
        return _Pipeline(items, run_transforms(items, leaf.transforms, entropy, path, activation))
    return iter(_source_items(leaf, entropy, path, activation))


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
