"""Row-source activations of a block mix that the executor places: opened in a worker, shipped back as blocks.

Under a parallel executor whose session places rows (`Session.places_rows`),
a block mix opens each child that reads or decompresses a file
(`combinators.plan.block_path.placed_row_sources`: ``from_npz``, ``from_npy``)
through the session, as any leaf: `open_placed` asks it where the activation
runs (`Session.runs_here`, from measured costs), and either starts
`shipped_rows` there (a worker opens the source and sends the rows the mix
may take, a block at a time, as items) or runs it in the consumer. The
consumer keeps every decision and gathers the rows from `PlacedRows`, whose
length is known from the source's header before any row arrives, so the
decider never waits for a worker; only a gather does, for rows not yet
received. Activations start when their entries are drawn (ahead of need), so
workers read the next shards while the consumer gathers. The rows are the
same wherever they were read.
"""

from __future__ import annotations

from typing import Any, Iterator

from combinators.errors import DataError, TransportError
from combinators.execution.base import LocalActivation
from combinators.execution.blocks import _cut
from combinators.execution.chain_rows import PulledRows
from combinators.execution.gather import _concatenate
from combinators.execution.leaf import where
from combinators.plan.sources import RowSource

__all__ = ["shipped_rows", "PlacedRows", "open_placed"]


def shipped_rows(source: RowSource, capacity: int, first: int, stop: int) -> Iterator[Any]:
    """Rows ``first:stop`` of one activation of ``source``, as blocks of at most ``capacity`` rows (its
    `block_capacity`): what a worker sends (each block one item: an array of rows, or a dict of arrays of rows),
    in order. Rows past the source's last go on from its first (a ``.cycle()``d source, read for a budget).

    >>> import numpy as np
    >>> from combinators.plan.sources import from_arrays
    >>> [block.tolist() for block in shipped_rows(from_arrays(np.arange(5)), 2, 1, 4)]
    [[1, 2], [3]]
    >>> [block.tolist() for block in shipped_rows(from_arrays(np.arange(3)), 4, 1, 8)]
    [[1, 2, 0, 1], [2, 0, 1]]
    """
    rows = source.open()
    try:
        n = len(rows)
        for start in range(first, stop if n else first, capacity):
            yield _cycled(rows, n, start, min(start + capacity, stop))
    finally:
        rows.close()


def _cycled(rows: Any, n: int, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of ``rows`` (``n`` of them) read again and again."""
    pieces = []
    while start < stop:
        offset = start - start % n
        end = min(stop, offset + n)
        pieces.append(rows.rows(start - offset, end - offset))
        start = end
    return pieces[0] if len(pieces) == 1 else _concatenate(pieces)


class PlacedRows(PulledRows):
    """A row-source activation read from the blocks of `shipped_rows`, wherever they are made: ``len()`` is its
    rows after those skipped (known from the source), ``rows(start, stop)`` waits for the blocks that hold them.

    Only the first ``shipped`` rows travel (the mix never asks past its budget); a source that gives fewer
    raises `DataError` naming it.

    >>> import numpy as np
    >>> placed = PlacedRows(iter([np.arange(3), np.arange(3, 5)]), 9, 5, "a source")
    >>> len(placed), placed.rows(2, 4).tolist()
    (9, [2, 3])
    """

    __slots__ = ("length", "shipped", "named")

    def __init__(self, activation: Any, length: int, shipped: int, named: str):
        super().__init__(activation)
        self.length, self.shipped, self.named = length, shipped, named

    def __len__(self) -> int:
        return self.length

    def rows(self, start: int, stop: int) -> Any:
        if self.known < stop:
            self.extend(start, stop)
            if self.known < min(stop, self.shipped):
                msg = f"{self.named} gave {self.known} rows of the {self.shipped} its header promised"
                raise DataError(msg)
        parts = self.parts
        if len(parts) == 1 and self.base <= start and stop <= self.known:  # the rows of one block (a shard's, mostly): a slice of it
            return _cut(parts[0], start - self.base, stop - self.base)
        return super().rows(start, stop)


def open_placed(ctx: Any, source: RowSource, path: tuple[int, ...], schema: Any, limit: int | None,
                skip: int, cycle: bool = False) -> PlacedRows:
    """An activation of ``source`` (at ``path``, a child of a block mix of ``schema``) after its first ``skip``
    rows, of which at most ``limit`` will be asked, placed by the run's session (``ctx.session``): `shipped_rows`
    in a worker, or in the consumer when the session says so (`Session.runs_here`: measured cheap, or a probe).
    With ``cycle`` (a ``.cycle()``d source, read by `ChainRows`), its rows go on from its first after its last:
    ``limit`` rows in all.

    Raises `TransportError` naming the source when it cannot be sent to a worker.
    """
    length = limit if cycle else max(0, len(source) - skip)
    stop = skip + (length if limit is None else min(length, limit))
    named = where(source, path)
    plan = ctx.rows_plan(source, path, schema)
    session = ctx.session
    here = session.runs_here(plan, (*plan[1], skip, stop)) if stop > skip else (iter, ((),))
    if here is not None:
        return PlacedRows(LocalActivation(*here), length, stop - skip, named)
    blocks = -(-(stop - skip) // plan[1][1])
    try:
        started = session.start(plan, (skip, stop), blocks)
    except TransportError as error:
        raise TransportError(f"cannot send {named} to a worker: {error.__cause__ or error}") from error
    return PlacedRows(started, length, stop - skip, named)
