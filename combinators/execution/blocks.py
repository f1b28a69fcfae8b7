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

import itertools
from typing import Any, Callable, Iterator

import numpy as np

from combinators.execution.block_stages import _cut, _length, filter_blocks, map_block, unbatch_blocks, wants_rng
from combinators.execution.gather import DeferredGather, _concatenate, gather
from combinators.sampling.mix import Decisions
from combinators.plan.sources import RowSource
from combinators.plan.transforms import Batch, Filter, Map, Shuffle, Take, Unbatch

__all__ = [
    "materialize", "row_blocks", "chain_blocks", "block_rows", "block_transforms", "skip_rows", "take_blocks",
    "BlockShuffle", "transforms_on_blocks", "reshapes", "tallied",
]

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


def materialize(decisions: Iterator[Decisions], schema: tuple, on_block: Callable[[], None] | None = None,
                keep: Callable[[int], np.ndarray] | None = None, deferred: DeferredGather | None = None,
                spread: int = 1) -> Iterator[Any]:
    """Blocks of the rows that ``decisions`` name, in order (each block a fresh array).

    ``on_block()`` is called when the first run of decisions of a block has
    come and is not yet gathered (a run state marks where the block starts).
    ``keep(n)``, given, tells which of the next run's ``n`` rows to read (a
    bool array); the others are left unread in the block (their values are
    undefined: a data-parallel rank drops the items they make). With
    ``deferred`` (and no ``keep``), the runs of a block are gathered with one
    read per activation (`DeferredGather`, whose ``retire`` the working set
    must call as it ends an activation); else each run as it comes.

    A block is handed on when it is full, or after `_MAX_RUNS` runs of
    decisions (when the working set changes often, runs are short: this
    bounds the latency of the first rows). The first blocks are small for
    the same reason; the size doubles up to `block_capacity`, times
    ``spread``: a data-parallel rank of ``spread`` ranks writes about one row
    in ``spread`` of a block, so its blocks touch as much memory as a single
    process's, and cut ``spread`` times fewer items in two (an item cut in
    two, a batch across two blocks, is copied whole, another rank's too).
    """
    capacity, size = block_capacity(schema) * spread, _MIN_ROWS
    deferred = deferred if keep is None else None

    def handed(out: Any, filled: int) -> Any:
        if deferred is not None:
            deferred.flush()
        return _cut(out, 0, filled)

    def fresh(rows: int) -> Any:
        if deferred is not None:
            deferred.out = _empty(schema, rows)
            return deferred.out
        return _empty(schema, rows)

    out, filled, runs = fresh(size), 0, 0
    for run in decisions:
        n = len(run.picks)
        if filled + n > size:
            if filled:
                yield handed(out, filled)
            size = min(2 * size, capacity)
            out, filled, runs = fresh(max(size, n)), 0, 0
        if not filled and on_block is not None:
            on_block()
        if deferred is not None:
            deferred.add(run, filled)
        else:
            gather(run, out, filled, None if keep is None else keep(n))
        filled, runs = filled + n, runs + 1
        if runs >= _MAX_RUNS:
            yield handed(out, filled)
            out, filled, runs = fresh(size), 0, 0
    if filled:
        yield handed(out, filled)


def row_blocks(source: RowSource, first: int = 0) -> Iterator[Any]:
    """The rows of one activation of ``source`` from row ``first`` on, as fresh blocks (copies), in order."""
    capacity = block_capacity(source.schema)
    rows = source.open()
    try:
        for start in range(first, len(rows), capacity):
            part = rows.rows(start, start + capacity)
            yield _copy(part)
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


def block_rows(blocks: Iterator[Any], reading: list | None = None) -> Iterator[Any]:
    """The rows of each block, one by one: arrays row by row, dicts as ``{key: column[i]}``.

    With ``reading`` (a list), ``reading[:] = [rows_iterator]`` as each block starts:
    ``operator.length_hint`` of it is the block's rows not yet handed out (no cost per row).

    >>> import operator
    >>> reading = []
    >>> rows = block_rows(iter([np.arange(3), np.arange(4)]), reading)
    >>> int(next(rows)), int(next(rows)), operator.length_hint(reading[0])
    (0, 1, 1)
    """
    for block in blocks:
        if isinstance(block, dict):
            for column in block.values():
                column.flags.writeable = False
            keys = list(block)
            columns = [iter(list(column)) for column in block.values()]
            if reading is not None:
                reading[:] = columns[:1]
            yield from (dict(zip(keys, values)) for values in zip(*columns))
        else:
            block.flags.writeable = False
            rows = iter(block)
            if reading is not None:
                reading[:] = [rows]
            yield from rows


def take_blocks(blocks: Iterator[Any], n: int) -> Iterator[Any]:
    """The first ``n`` rows of ``blocks``: the blocks, the last one cut."""
    left = n
    if left <= 0:
        return
    for block in blocks:
        size = _length(block)
        yield block if size <= left else _cut(block, 0, left)
        left -= size
        if left <= 0:
            return


def _batch_blocks(blocks: Iterator[Any], size: int, partial: bool, handed: list[int]) -> Iterator[Any]:
    """Batches of ``size`` rows: slices of a block, or a concatenation across blocks; ``handed[0]`` grows by
    each batch's rows as it is handed on."""
    parts, have = [], 0
    for block in blocks:
        n, start = _length(block), 0
        if have:
            start = min(size - have, n)
            parts.append(_cut(block, 0, start))
            have += start
            if have < size:
                continue
            handed[0] += size
            yield _concatenate(parts)
            parts, have = [], 0
        if n - start >= size and isinstance(block, dict):
            columns = list(block.items())
            while n - start >= size:
                stop = start + size
                handed[0] += size
                yield {key: column[start:stop] for key, column in columns}
                start = stop
        while n - start >= size:
            handed[0] += size
            yield _cut(block, start, start + size)
            start += size
        if start < n:
            parts, have = [_cut(block, start, n)], n - start
    if have and partial:
        handed[0] += have
        yield _concatenate(parts)


def block_transforms(
    blocks: Iterator[Any], transforms: tuple, passed: int | list[int] = 0,
    shuffler: Callable[[int, Shuffle], "BlockShuffle"] | None = None, batched: list[int] | None = None,
    reshape: bool = True, counts: list[int] | None = None, skips: list[int] | None = None,
    handed: list[int] | None = None,
) -> tuple[Iterator[Any], int]:
    """Run the leading transforms `transforms_on_blocks` names on blocks: ``take``, ``map(fn, batched=True)``
    (`map_block`), ``unbatch`` and ``filter`` (with ``reshape``: `unbatch_blocks`, `filter_blocks`), the
    first ``shuffle`` (with ``shuffler``) and the first ``batch``.

    Returns the items after them and the index of the first transform left
    to run item by item. ``passed`` rows went through the ``take``
    transforms before (a resumed run: each lets that many fewer through;
    a list gives them by transform index). ``shuffler(index, transform)``
    gives the ``shuffle``'s `BlockShuffle`. With ``batched`` (a list),
    ``batched[0]`` grows by the rows of each block the ``batch`` takes (a
    partial batch dropped at the end included), as it takes it, and
    ``batched[1]`` is True while it asks for the next block (and after the
    last). With ``handed`` (a list), ``handed[0]`` grows by the rows of each
    batch the ``batch`` hands on, as it hands it on (the caller need not look
    at the batches to count them: a loop over them costs as much as the
    slicing); without a ``batch`` on blocks, ``handed`` is left as it is. With
    ``counts`` (a list, one per transform), ``counts[i]`` grows by the rows
    transform ``i`` hands on (the ``batch`` aside); ``skips[i]`` of them are
    then left out (a resumed run).
    """
    done = transforms_on_blocks(transforms, shuffler is not None, reshape)
    for index, t in enumerate(transforms[:done]):
        if isinstance(t, Take):
            blocks = take_blocks(blocks, t.n - (passed if isinstance(passed, int) else passed[index]))
        elif isinstance(t, Map):
            blocks = _mapped(t.fn, blocks)
        elif isinstance(t, Unbatch):
            blocks = unbatch_blocks(blocks)
        elif isinstance(t, Filter):
            blocks = filter_blocks(t.predicate, blocks)
        elif isinstance(t, Shuffle):
            blocks = shuffler(index, t)(blocks)
        else:
            return _batch_blocks(blocks if batched is None else _counted(blocks, batched), t.size, t.partial,
                                 [0] if handed is None else handed), done
        if counts is not None:
            blocks = tallied(blocks, counts, index)
        if skips and skips[index]:
            blocks = skip_rows(blocks, skips[index])
    return block_rows(blocks), done


def _counted(blocks: Iterator[Any], rows: list) -> Iterator[Any]:
    rows[1] = True
    for block in blocks:
        rows[0] += _length(block)
        rows[1] = False
        yield block
        rows[1] = True


def _mapped(fn: Callable[[Any], Any], blocks: Iterator[Any]) -> Iterator[Any]:
    for block in blocks:
        yield map_block(fn, block)


def tallied(blocks: Iterator[Any], rows: list[int], at: int = 0) -> Iterator[Any]:
    """``blocks``, adding the rows of each to ``rows[at]`` as it is taken."""
    for block in blocks:
        rows[at] += _length(block)
        yield block


def transforms_on_blocks(transforms: tuple, shuffles: bool, reshape: bool = True) -> int:
    """How many of the leading ``transforms`` `block_transforms` runs on blocks: ``take`` and
    ``map(fn, batched=True)``, ``unbatch`` and ``filter`` (without ``rng``; when ``reshape``), the first
    ``shuffle`` (when ``shuffles``, and before any ``unbatch`` or ``filter``; after it only a batched ``map``),
    up to and with the first ``batch`` without ``axis``. The run state's schema
    (`combinators.execution.statecheck`) follows it.

    >>> from combinators.plan.transforms import batch, filter, shuffle, take, unbatch
    >>> transforms_on_blocks((take(5), shuffle(4), batch(2), take(1)), True), transforms_on_blocks((shuffle(4),), False)
    (3, 0)
    >>> transforms_on_blocks((unbatch(), filter(bool), batch(2)), True), transforms_on_blocks((unbatch(),), True, False)
    (3, 0)
    """
    shuffled = reshaped = False
    for index, t in enumerate(transforms):
        if isinstance(t, Map) and t.batched:
            continue
        if not shuffled and (isinstance(t, Take) or reshape and reshapes(t)):
            reshaped = reshaped or reshapes(t)
            continue
        if isinstance(t, Shuffle) and shuffles and not shuffled and not reshaped:
            shuffled = True
            continue
        return index + 1 if isinstance(t, Batch) and t.axis is None else index
    return len(transforms)


def reshapes(t: Any) -> bool:
    """Whether ``t`` is an ``unbatch``, or a ``filter`` without ``rng``: a transform that `block_transforms`
    runs on blocks (with ``reshape``) and that hands on another number of rows than it takes.

    >>> from combinators.plan.transforms import filter, unbatch
    >>> reshapes(unbatch()), reshapes(filter(bool)), reshapes(filter(lambda x, rng: True))
    (True, True, False)
    """
    return isinstance(t, Unbatch) or isinstance(t, Filter) and not wants_rng(t.predicate)


class BlockShuffle:
    """``shuffle(buffer_size)`` over blocks: the items of the per-item shuffle, a block at a time.

    The per-item shuffle fills a buffer of ``size`` items, then for each item
    draws ``slot = rng.integers(size)``, yields the buffer's item there and
    puts the new one in its place; at the input's end it yields the buffer in
    the order of ``rng.permutation``. ``rng.integers(size, size=n)`` draws the
    same integers as ``n`` such calls, and which row each output is follows
    from them alone: the latest earlier item of the chunk drawn to the same
    slot, or the buffer's row there. So each chunk of input is one draw, one
    stable argsort and two gathers (its output, the next buffer).

    ``mark`` is the state before the chunk whose output is being read: the
    Generator's state, the buffer, the input rows before it, the output rows
    before it and whether it is the final drain; ``on_chunk(input_rows)`` is
    called as a chunk starts (the caller takes its input's state there).

    >>> shuffle = BlockShuffle(np.random.default_rng(0), 3)
    >>> np.concatenate(list(shuffle(iter([np.arange(4), np.arange(4, 8)])))).tolist()
    [2, 1, 4, 0, 6, 7, 3, 5]
    """

    __slots__ = ("rng", "size", "buffer", "input", "output", "mark", "on_chunk", "resumed", "started")

    def __init__(self, rng: np.random.Generator, size: int, on_chunk: Callable[[int], None] = lambda n: None,
                 saved: dict | None = None):
        self.rng, self.size, self.on_chunk, self.buffer = rng, size, on_chunk, None
        self.input = self.output = 0
        self.mark: tuple | None = None
        self.resumed, self.started = saved, saved is not None  # started: its input is being read
        if saved is not None:
            from combinators.execution.runstate import decode  # noqa: PLC0415 - only a resumed run reads one

            self.rng.bit_generator.state, self.buffer = saved["rng"], decode(saved["items"])
            self.input, self.output = saved["input"], saved["output"]

    def state(self) -> dict[str, Any]:
        """The state before the chunk being read, as JSON values (the buffer's rows encoded)."""
        from combinators.execution.runstate import encode  # noqa: PLC0415

        rng, buffer, before_in, before_out, drain = self.mark
        return {"rng": rng, "items": encode(buffer), "input": before_in, "output": before_out, "drain": drain}

    def __call__(self, blocks: Iterator[Any]) -> Iterator[Any]:
        self.started = True
        try:
            if self.resumed is None:
                self.buffer, rest = self._fill(blocks)
                chunks = () if rest is None else itertools.chain([rest], blocks)
            else:  # the buffer is full, or the input had ended
                chunks = () if self.resumed["drain"] else blocks
            for block in chunks:
                if _length(block):
                    yield self._chunk(block)
            yield from self._drain()
        finally:
            if hasattr(blocks, "close"):
                blocks.close()

    def _fill(self, blocks: Iterator[Any]) -> tuple[Any, Any]:
        """The first ``size`` rows, and what is left of the block that completed them (None: input ended)."""
        parts, have = [], 0
        for block in blocks:
            n = _length(block)
            if have + n >= self.size:
                cut = self.size - have
                parts.append(_cut(block, 0, cut))
                self.input = self.size
                return _copy(_concatenate(parts)), _cut(block, cut, n)
            parts.append(block)
            have += n
        self.input = have
        return (_copy(_concatenate(parts)) if parts else None), None

    def _chunk(self, block: Any) -> Any:
        n, size = _length(block), self.size
        self.mark = (self.rng.bit_generator.state, self.buffer, self.input, self.output, False)
        self.on_chunk(self.input)
        slots = self.rng.integers(size, size=n).astype(np.uint16 if size <= 1 << 16 else np.intp)
        order = np.argsort(slots, kind="stable")
        ordered = slots[order]
        first = np.empty(n, dtype=bool)
        first[0], first[1:] = True, ordered[1:] != ordered[:-1]
        last = np.empty(n, dtype=bool)
        last[-1], last[:-1] = True, first[1:]
        previous = np.empty(n, dtype=np.intp)
        previous[0], previous[1:] = 0, order[:-1]
        ids = np.empty(n, dtype=np.intp)
        ids[order] = np.where(first, ordered, size + previous)  # combined rows: the buffer, then the block
        keep = np.arange(size)
        keep[ordered[last]] = size + order[last]
        combined = _concatenate([self.buffer, block])
        self.buffer = _take(combined, keep)
        self.input, self.output = self.input + n, self.output + n
        return _take(combined, ids)

    def _drain(self) -> Iterator[Any]:
        if self.buffer is None or not _length(self.buffer):
            return
        self.mark = (self.rng.bit_generator.state, self.buffer, self.input, self.output, True)
        self.on_chunk(self.input)
        order = self.rng.permutation(_length(self.buffer))
        self.output += len(order)
        yield _take(self.buffer, order)


def _take(block: Any, rows: np.ndarray) -> Any:
    if isinstance(block, dict):
        return {key: np.take(value, rows, axis=0) for key, value in block.items()}
    return np.take(block, rows, axis=0)


def _copy(block: Any) -> Any:
    return {key: np.array(value) for key, value in block.items()} if isinstance(block, dict) else np.array(block)


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
