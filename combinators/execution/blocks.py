"""The block materializer: rows of random-access sources gathered a block at a time.

A mix whose children are all row sources (`~combinators.plan.sources.RowSource`)
of one schema takes its decisions from `~combinators.sampling.mix.mix_decisions`
and gathers the rows of each decided run with one copy per child activation
and key, into a block: an array of rows, or a dict of arrays of rows. A chain
of such streams hands on its children's blocks. ``batch`` above a block
stream hands out slices of the blocks, ``take`` cuts them; every other
consumer sees the rows one by one, equal to the items of the per-item path
(same values, dtypes and shapes; rows are read-only, like the views the
per-item path yields). See docs/guide/decisions.md.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np

from combinators.sampling.mix import Decisions, ResumedRows
from combinators.plan.sources import RowSource
from combinators.plan.transforms import Batch, Take

__all__ = ["materialize", "row_blocks", "chain_blocks", "block_rows", "block_transforms", "skip_rows"]

#: bytes of one block at most (rows of at least 64 and at most 4096 items)
_BLOCK_BYTES, _MIN_ROWS, _MAX_ROWS = 1 << 21, 64, 4096
#: runs of decisions gathered into one block at most
_MAX_RUNS = 32


def block_capacity(schema: tuple) -> int:
    """Rows per block for ``schema``: about 2 MiB, within [64, 4096]."""
    row_bytes = sum(dtype.itemsize * int(np.prod(shape)) for _, dtype, shape in schema)
    return int(np.clip(_BLOCK_BYTES // max(row_bytes, 1), _MIN_ROWS, _MAX_ROWS))


def _empty(schema: tuple, n: int) -> Any:
    if schema[0][0] is None:
        return np.empty((n, *schema[0][2]), dtype=schema[0][1])
    return {key: np.empty((n, *shape), dtype=dtype) for key, dtype, shape in schema}


def _length(block: Any) -> int:
    return len(next(iter(block.values()))) if isinstance(block, dict) else len(block)


def _cut(block: Any, start: int, stop: int) -> Any:
    if isinstance(block, dict):
        return {key: value[start:stop] for key, value in block.items()}
    return block[start:stop]


def _concatenate(parts: list[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], dict):
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return np.concatenate(parts)


def _read_kept(activation: Any, start: int, kept: np.ndarray) -> Any:
    """Rows ``start + kept`` of an activation (``kept`` ascending): with its ``take``, else run by contiguous run."""
    if isinstance(activation, ResumedRows):
        activation, start = activation.activation, start + activation.offset
    take = getattr(activation, "take", None)
    if take is not None:
        return take(kept + start)
    breaks = np.flatnonzero(np.diff(kept) != 1) + 1
    firsts = kept[np.concatenate(([0], breaks))].tolist()
    lasts = kept[np.concatenate((breaks - 1, [len(kept) - 1]))].tolist()
    return _concatenate([activation.rows(start + a, start + b + 1) for a, b in zip(firsts, lasts)])


def _gather(decisions: Decisions, out: Any, offset: int, keep: np.ndarray | None = None) -> None:
    """Write the rows of ``decisions`` into ``out[offset : offset + len(picks)]``.

    With ``keep`` (bool, shape ``(len(picks),)``), only the rows it marks are
    read and written (a data-parallel rank's own); the others are left as they
    were, and no activation is asked for them.
    """
    if keep is not None:
        _gather_kept(decisions, out, offset, keep)
        return
    picks, order, counts, first_row, activations = decisions
    ends = np.cumsum(counts)
    for slot in np.flatnonzero(counts).tolist():
        positions = order[ends[slot] - counts[slot] : ends[slot]]
        start = int(first_row[slot])
        if offset:
            positions = positions + offset
        rows = activations[slot].rows(start, start + int(counts[slot]))
        _write(out, positions, rows)


def _gather_kept(decisions: Decisions, out: Any, offset: int, keep: np.ndarray) -> None:
    """`_gather` of the rows ``keep`` marks only: one read per slot of the rows it holds (ascending)."""
    picks, order, counts, first_row, activations = decisions
    starts = np.cumsum(counts) - counts  # where each slot's group starts in the grouped order
    places = np.flatnonzero(keep[order])  # the kept rows' places in the grouped order
    slots = picks[order[places]]
    rows = places - starts[slots]  # each kept row's place in its slot's rows of this run
    positions = order[places] + offset
    bounds = np.searchsorted(slots, np.arange(len(counts) + 1)).tolist()  # slots ascend in the grouped order
    for slot in np.flatnonzero(np.diff(bounds)).tolist():
        a, b = bounds[slot], bounds[slot + 1]
        _write(out, positions[a:b], _read_kept(activations[slot], int(first_row[slot]), rows[a:b]))


def _write(out: Any, positions: np.ndarray, rows: Any) -> None:
    if isinstance(out, dict):
        for key, column in out.items():
            column[positions] = rows[key]
    else:
        out[positions] = rows


def materialize(decisions: Iterator[Decisions], schema: tuple, on_block: Callable[[], None] | None = None,
                keep: Callable[[int], np.ndarray] | None = None) -> Iterator[Any]:
    """Blocks of the rows that ``decisions`` name, in order (each block a fresh array).

    ``on_block()`` is called when the first run of decisions of a block has
    come and is not yet gathered (a run state marks where the block starts).
    ``keep(n)``, given, tells which of the next run's ``n`` rows to read (a
    bool array); the others are left unread in the block (their values are
    undefined: a data-parallel rank drops the items they make).

    A block is handed on when it is full, or after `_MAX_RUNS` runs of
    decisions (when the working set changes often, runs are short: this
    bounds the latency of the first rows). The first blocks are small for
    the same reason; the size doubles up to `block_capacity`.
    """
    capacity, size = block_capacity(schema), _MIN_ROWS
    out, filled, runs = _empty(schema, size), 0, 0
    for run in decisions:
        n = len(run.picks)
        if filled + n > size:
            if filled:
                yield _cut(out, 0, filled)
            size = min(2 * size, capacity)
            out, filled, runs = _empty(schema, max(size, n)), 0, 0
        if not filled and on_block is not None:
            on_block()
        _gather(run, out, filled, None if keep is None else keep(n))
        filled, runs = filled + n, runs + 1
        if runs >= _MAX_RUNS:
            yield _cut(out, 0, filled)
            out, filled, runs = _empty(schema, size), 0, 0
    if filled:
        yield _cut(out, 0, filled)


def row_blocks(source: RowSource, first: int = 0) -> Iterator[Any]:
    """The rows of one activation of ``source`` from row ``first`` on, as fresh blocks (copies), in order."""
    capacity = block_capacity(source.schema)
    rows = source.open()
    try:
        for start in range(first, len(rows), capacity):
            part = rows.rows(start, start + capacity)
            yield {k: np.array(v) for k, v in part.items()} if isinstance(part, dict) else np.array(part)
    finally:
        rows.close()


def chain_blocks(open_child: Callable[[int], Iterator[Any]], n_children: int, cycle: bool) -> Iterator[Any]:
    """`~combinators.sampling.mix.chain_items` over blocks: each child's blocks in order."""
    while True:
        produced = False
        for index in range(n_children):
            blocks = open_child(index)
            try:
                for block in blocks:
                    produced = True
                    yield block
            finally:
                blocks.close()
        if not (cycle and produced):
            return


def block_rows(blocks: Iterator[Any]) -> Iterator[Any]:
    """The rows of each block, one by one: arrays row by row, dicts as ``{key: column[i]}``."""
    for block in blocks:
        if isinstance(block, dict):
            for column in block.values():
                column.flags.writeable = False
            keys = list(block)
            columns = [list(column) for column in block.values()]
            yield from (dict(zip(keys, values)) for values in zip(*columns))
        else:
            block.flags.writeable = False
            yield from block


def _take_blocks(blocks: Iterator[Any], n: int) -> Iterator[Any]:
    left = n
    if left <= 0:
        return
    for block in blocks:
        size = _length(block)
        yield block if size <= left else _cut(block, 0, left)
        left -= size
        if left <= 0:
            return


def _batch_blocks(blocks: Iterator[Any], size: int, partial: bool) -> Iterator[Any]:
    """Batches of ``size`` rows: slices of a block, or a concatenation across blocks."""
    parts, have = [], 0
    for block in blocks:
        n, start = _length(block), 0
        if have:
            start = min(size - have, n)
            parts.append(_cut(block, 0, start))
            have += start
            if have < size:
                continue
            yield _concatenate(parts)
            parts, have = [], 0
        while n - start >= size:
            yield _cut(block, start, start + size)
            start += size
        if start < n:
            parts, have = [_cut(block, start, n)], n - start
    if have and partial:
        yield _concatenate(parts)


def block_transforms(blocks: Iterator[Any], transforms: tuple, passed: int = 0) -> tuple[Iterator[Any], int]:
    """Run the leading ``take`` and ``batch`` transforms on blocks.

    Returns the items after them and the index of the first transform left
    to run item by item. ``passed`` rows went through them before (a
    resumed run: each ``take`` lets that many fewer through).
    """
    for index, t in enumerate(transforms):
        if isinstance(t, Take):
            blocks = _take_blocks(blocks, t.n - passed)
        elif isinstance(t, Batch) and t.axis is None:
            return _batch_blocks(blocks, t.size, t.partial), index + 1
        else:
            return block_rows(blocks), index
    return block_rows(blocks), len(transforms)



def skip_rows(blocks: Iterator[Any], n: int) -> Iterator[Any]:
    """``blocks`` without their first ``n`` rows (a resumed block activation); closes ``blocks``."""
    try:
        for block in blocks:
            size = _length(block)
            if n >= size:
                n -= size
                continue
            yield _cut(block, n, size) if n else block
            n = 0
            yield from blocks
    finally:
        blocks.close()
