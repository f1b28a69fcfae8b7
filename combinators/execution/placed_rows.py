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

import numpy as np

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
    raises `DataError` naming it. Each block received is checked against ``schema`` (the block mix's, a
    `row_schema`) before it is held: a block that is not an array (or a dict of arrays, with the schema's keys),
    whose dtype or row shape differs, whose arrays differ in length, or with more rows than are left to ship
    raises `DataError` naming the source and what differs (a worker's rows are never cast or cut to fit).

    >>> import numpy as np
    >>> schema = ((None, np.dtype(int), ()),)
    >>> placed = PlacedRows(iter([np.arange(3), np.arange(3, 5)]), 9, 5, "a source", schema)
    >>> len(placed), placed.rows(2, 4).tolist()
    (9, [2, 3])
    >>> PlacedRows(iter([np.arange(3.0)]), 3, 3, "a source", schema).rows(0, 3)
    Traceback (most recent call last):
    ...
    combinators.errors.DataError: a source sent rows of dtype float64 where its schema has int64
    """

    __slots__ = ("length", "shipped", "named", "schema")

    def __init__(self, activation: Any, length: int, shipped: int, named: str, schema: Any):
        super().__init__(activation)
        self.length, self.shipped, self.named, self.schema = length, shipped, named, schema

    def __len__(self) -> int:
        return self.length

    def received(self, block: Any) -> None:
        _check_block(block, self.schema, self.shipped - self.known, self.named)

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


def _check_block(block: Any, schema: Any, left: int, named: str) -> None:
    """Raise `DataError` naming ``named`` unless ``block`` fits ``schema`` (``((key, dtype, row shape), ...)``,
    key None for a bare array) exactly, with at most ``left`` rows."""
    if schema[0][0] is None:
        fields = {None: block}
    elif type(block) is dict and set(block) == {key for key, _, _ in schema}:
        fields = block
    else:
        got = sorted(block, key=repr) if type(block) is dict else type(block).__name__
        msg = f"{named} sent a block of {got} where its schema has keys {[key for key, _, _ in schema]}"
        raise DataError(msg)
    lengths = set()
    for key, dtype, shape in schema:
        value, field = fields[key], "rows" if key is None else f"key {key!r}"
        if not isinstance(value, np.ndarray) or value.ndim == 0:
            msg = f"{named} sent {field} of type {type(value).__name__} where its schema has an array of rows"
            raise DataError(msg)
        if value.dtype != dtype:
            msg = f"{named} sent {field} of dtype {value.dtype} where its schema has {dtype}"
            raise DataError(msg)
        if value.shape[1:] != shape:
            msg = f"{named} sent {field} of row shape {value.shape[1:]} where its schema has {shape}"
            raise DataError(msg)
        lengths.add(len(value))
    if len(lengths) > 1 or max(lengths) > left:
        msg = f"{named} sent a block of {sorted(lengths)} rows where at most {left} were left to send"
        raise DataError(msg)


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
        return PlacedRows(LocalActivation(*here), length, stop - skip, named, schema)
    blocks = -(-(stop - skip) // plan[1][1])
    try:
        started = session.start(plan, (skip, stop), blocks)
    except TransportError as error:
        raise TransportError(f"cannot send {named} to a worker: {error.__cause__ or error}") from error
    return PlacedRows(started, length, stop - skip, named, schema)
