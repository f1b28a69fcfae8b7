"""Activations on the block path: row sources and what is made of them alone, read a block of rows at a time.

A node whose description has a block schema (`combinators.plan.block_path.block_schema`)
runs here instead of item by item (`open_blocks`): a row source is read a block at a
time, a mix draws its decisions in runs and gathers the rows of each run at once (the
materializer, `combinators.execution.blocks`), a chain concatenates its children's
blocks, ``take`` cuts them. The interpreter (`combinators.execution.interpreter`) opens
these activations and passes its context (``ctx``).
"""

from __future__ import annotations

import functools
import itertools
import operator
from typing import Any, Callable, Iterator

import numpy as np

from combinators.sampling import seeding
from combinators.execution.base import Activation
from combinators.execution.gather import DeferredGather
from combinators.execution.blocks import (
    _length, block_rows, chain_blocks, materialize, row_blocks, skip_rows, take_blocks, tallied,
)
from combinators.execution.chain_rows import ChainRows, PulledRows
from combinators.execution.placed_rows import open_placed
from combinators.sampling.mix import ResumedRows, mix_decisions
from combinators.plan.block_path import random_access_chain
from combinators.plan.mixes import Mix
from combinators.plan.sources import RowSource
from combinators.plan.stream import Apply, Chain, Stream

__all__ = ["BlockActivation", "open_blocks", "name_note"]


class BlockActivation(Activation):
    """An activation on the block path: ``blocks()`` gives its rows a block at a time.

    Started lazily, like `LocalActivation`. Iterated, it yields the rows one by
    one (`block_rows`); a consumer uses either the blocks or the rows. A
    resumed one leaves out its first ``skip`` rows: a mix starts again from
    the state its working set had at the start of the block being read
    (``saved``); a chain replays its children from their first rows.
    """

    __slots__ = ("_fn", "_args", "_blocks", "_rows", "_skip", "_saved", "marks", "named", "reader", "_first", "_read")

    def __init__(self, fn: Callable[..., Iterator[Any]], args: tuple[Any, ...], skip: int = 0,
                 saved: dict | None = None):
        self._fn, self._args, self._blocks, self._rows, self._skip = fn, args, None, None, skip
        self._saved, self.named = saved, None  # named: (node, path) of a named stream, for its errors' note
        self.marks = _BlockMarks(saved, self.position) if fn is _mix_blocks else None
        # reader: set by whoever reads the blocks (a transform, a chain, a take), the rows of them it passed on
        self.reader: Callable[[], int] | None = None
        self._first = skip + (0 if saved is None else saved["before"])  # the number of its first row given
        self._read: list | None = None  # read row by row: [rows of the blocks started, the rows iterator]

    def position(self) -> int:
        """Rows of this activation (those skipped by a resumed one included) its consumer took so far: what its
        reader says (`reader`), or those `iterator` handed out. A block mix counts its stats by it, and passes
        it to the nodes whose blocks it reads (a chain's child, a take's), so that wherever a mix is read, its
        stats count what its consumer took, as item by item."""
        if self.reader is not None:
            return self.reader()
        read = self._read
        if read is None:
            return self._first
        return self._first + read[0] - (operator.length_hint(read[1][0]) if read[1] else 0)

    def blocks(self) -> Iterator[Any]:
        """The blocks: arrays of rows, or dicts of arrays of rows (after the first ``skip`` rows)."""
        if self._blocks is None:
            extra = (self.marks,) if self.marks is not None else (self.position,) if self._fn in _READERS else ()
            self._blocks = self._fn(*self._args, *extra)
            if self._skip:
                self._blocks = skip_rows(self._blocks, self._skip)
            if self.named is not None:
                self._blocks = _named_blocks(self._blocks, *self.named)
            self._fn = self._args = None
        return self._blocks

    def iterator(self) -> Iterator[Any]:
        if self._rows is None:
            read = self._read = [0, []]
            self._rows = block_rows(tallied(self.blocks(), read), read[1])
        return self._rows

    def __next__(self) -> Any:
        return next(self.iterator())

    def state(self, received: int) -> dict[str, Any]:
        """The state when the consumer received ``received`` rows (see `_BlockMarks`)."""
        if self.marks is not None and self.marks.mark is not None:
            return self.marks.state(received)
        if self._saved is not None:
            return self._saved  # resumed, no block started since
        return {"received": received}

    def close(self) -> None:
        for part in (self._rows, self._blocks):
            if part is not None:
                part.close()
        self._fn = self._args = self._rows = self._blocks = None


class _BlockMarks:
    """Where the block being read started: the working set's snapshot, the mix's counts, rows before it; and
    what the consumer received of it, for the mix's stats (`received_counts`)."""

    __slots__ = ("saved", "decided", "mark", "working_set", "counts", "live", "children", "size", "handed")

    def __init__(self, saved: dict | None, handed: Callable[[], int]):
        self.saved, self.decided, self.mark = saved, 0 if saved is None else saved["before"], None
        self.working_set: Any = None
        self.counts: list[int] = []
        self.live: list[int] | None = None  # items per child received before the block being read
        self.children: list[np.ndarray] = []  # the child of each row of that block, a run of decisions at a time
        self.size = 0  # rows in that block (0: none handed out yet)
        # rows its consumer took, counted as `decided` is (`BlockActivation.position`); None once past its end
        self.handed: Callable[[], int] | None = handed

    def decisions(self, runs: Iterator[Any]) -> Iterator[Any]:
        """``runs`` of decisions, counting the rows they decide (after each is used)."""
        try:
            for run in runs:
                stream = self.working_set.stream
                self.children.append(list(map(stream.__getitem__, run.picks)) if run.order is None
                                     else np.asarray(stream)[run.picks])
                yield run
                self.decided += len(run.picks)
        finally:
            runs.close()

    def on_block(self) -> None:
        self.mark = (self.working_set.snapshot(), list(self.counts), self.decided)
        # the run that starts the block is the last one decided; nothing of the block is handed out yet
        self.live, self.children, self.size = self.working_set.live_counts(), self.children[-1:], 0

    def blocks(self, blocks: Iterator[Any]) -> Iterator[Any]:
        """``blocks``, noting the size of each as it is handed out."""
        for block in blocks:
            self.size = _length(block)
            yield block
        self.handed = None  # asked past its last block: its consumer took every row

    def received_counts(self) -> list[int]:
        """Items per child the consumer received: those before the block being read, and of it the rows
        its consumer took (``handed``; all of it once asked past the last block)."""
        if self.live is None:
            return list(self.counts) if self.working_set is None else self.working_set.live_counts()
        rows = self.size if self.handed is None else min(self.handed() - self.mark[2], self.size)
        got = np.bincount(np.concatenate(self.children)[:rows], minlength=len(self.live)) if rows > 0 else ()
        return [int(a + b) for a, b in itertools.zip_longest(self.live, got, fillvalue=0)]

    def state(self, received: int) -> dict[str, Any]:
        snapshot, counts, before = self.mark
        return {"block_mix": self.working_set.snapshot_state(snapshot), "counts": counts, "before": before,
                "rows": received}


class _LiveMixes:
    """A block mix's counts while it runs (`_Context.current_counts` asks ``live_counts()``): the items its ended
    activations handed out, and what the consumer received so far of each running one (`_BlockMarks`)."""

    __slots__ = ("ended", "running", "last")

    def __init__(self, ended: list[int]):
        self.ended, self.running = ended, {}  # running: id(marks) -> (marks, its baseline)
        self.last: Any = None  # the working set of the activation started last

    @property
    def segment_starts(self) -> list:
        """Where the segments of a scheduled mix started (`MixStats`), from the working set started last."""
        return [] if self.last is None else self.last.segment_starts

    def live_counts(self) -> list[int]:
        counts = list(self.ended)
        for marks, baseline in self.running.values():
            for child, (got, before) in enumerate(zip(marks.received_counts(), baseline)):
                counts[child] += got - before
        return counts


def _live(running: list, ended: list[int]) -> _LiveMixes:
    if not running or not isinstance(running[-1], _LiveMixes):
        running[:] = [_LiveMixes(ended)]
    return running[-1]


def _mix_blocks(node: Mix, path, activation, ctx, marks: _BlockMarks) -> Iterator[Any]:
    # the working set counts in its own list (from the mix's counts so far, or those of the saved state), so
    # that at the end the mix's counts grow by the rows the consumer received, not by those decided ahead
    _, ended, running = ctx.mix_record(node, path)
    saved, live = marks.saved, _live(running, ended)
    baseline = list(ended) if saved is None else [0] * len(ended)
    counts = marks.counts = list(ended) if saved is None else list(saved["counts"])
    live.running[id(marks)] = (marks, baseline)
    children = _BlockChildren(node, path, activation, ctx)
    if saved is not None:
        children.next = saved["block_mix"]["opened"]
    keep = _own_rows(ctx, path, marks)
    # pulled children drop the rows before their last pull: their rows are gathered run by run
    deferred = DeferredGather() if keep is None and not children.pulls else None
    decisions = mix_decisions(
        children, node.probabilities, node.n_active, node.rate, node.dist, node.mode,
        node.prune_empty,
        select_rng=seeding.generator(ctx.entropy, path, activation, seeding.SELECT),
        activate_rng=seeding.generator(ctx.entropy, path, activation, seeding.ACTIVATE),
        counts=counts,
        on_start=lambda state: (setattr(marks, "working_set", state), setattr(live, "last", state)),
        resume=None if saved is None else saved["block_mix"],
        segments=node.segments,
        retire=None if deferred is None else deferred.retire,
    )
    try:
        spread = 1 if keep is None else ctx.rank_rows[3]  # a rank's blocks: its world size times longer
        yield from marks.blocks(materialize(marks.decisions(decisions), ctx.schema(node), marks.on_block, keep,
                                            deferred, spread))
    finally:
        received = marks.received_counts()
        if deferred is not None:
            deferred.done = True  # no block is read any more: retiring only closes
        decisions.close()
        del live.running[id(marks)]
        for child, (got, before) in enumerate(zip(received, baseline)):
            ended[child] += got - before  # rows decided ahead and never handed out do not count


def _own_rows(ctx, path: tuple[int, ...], marks: _BlockMarks) -> Callable[[int], Any] | None:
    """For the root mix of a data-parallel rank (``ctx.rank_rows``): which rows of the next run its items hold."""
    ranks = ctx.rank_rows
    if ranks is None or ranks[0] != path:
        return None
    _, per, rank, world, first = ranks

    def keep(n: int) -> Any:
        return (np.arange(marks.decided, marks.decided + n) // per - first) % world == rank

    return keep


class _BlockChildren:
    """Opens a block mix's children: a row source, or a chain of them (`ChainRows`), at random (after the
    rows of earlier turns, `ResumedRows`; each source that reads a file through the session when it places
    rows, `open_placed`), any other block node as `PulledRows`, its k-th activation ``(*activation, k)`` as the
    per-item path numbers it; ``reopen`` for a resumed working set (its children are replayed)."""

    __slots__ = ("node", "path", "activation", "ctx", "next", "pulls", "places")

    def __init__(self, node: Mix, path: tuple[int, ...], activation: tuple[int, ...], ctx: Any):
        self.node, self.path, self.activation, self.ctx, self.next = node, path, activation, ctx, 0
        self.pulls = not all(isinstance(child, RowSource) or random_access_chain(child) for child in node.streams)
        self.places = ctx.session.places_rows  # row sources that read files are opened where the session says

    def __call__(self, index: int, limit: int | None = None, number: int | None = None, skip: int = 0) -> Any:
        if number is None:
            number, self.next = self.next, self.next + 1
        child = self.node.streams[index]
        if isinstance(child, RowSource):
            if self.places and not child.in_memory:
                return open_placed(self.ctx, child, (*self.path, index), self.ctx.schema(self.node), limit, skip)
            rows = child.open()
            return ResumedRows(rows, skip) if skip else rows
        if random_access_chain(child):
            placed = functools.partial(self._placed, index) if self.places else None
            rows = ChainRows(child.streams, child.repeat, placed, skip, None if limit is None else skip + limit)
            return ResumedRows(rows, skip) if skip else rows
        opened = open_blocks(child, (*self.path, index), (*self.activation, number), self.ctx,
                             {"received": skip} if skip else None)
        return PulledRows(opened)

    def reopen(self, index: int, ordinal: Any, saved: Any, limit: int | None = None, offset: int = 0) -> Any:
        return self(index, limit, ordinal, offset)

    def _placed(self, index: int, member: int, first: int, count: int) -> Any:
        """``count`` rows from row ``first`` of source ``member`` of the chain that is child ``index`` (going on
        from its first row after its last, for a source cycled alone), opened by the session."""
        source, path = self.node.streams[index].streams[member], (*self.path, index, member)
        cycle = first + count > len(source)
        return open_placed(self.ctx, source, path, self.ctx.schema(self.node), count, first, cycle)


def _chain_blocks(node: Chain, path, activation, ctx, position: Callable[[], int]) -> Iterator[Any]:
    """A chain's blocks: each child's in turn; a child that is not a row source is told its position, the
    chain's (``position()``) less the rows of the children before it."""
    children, started, rows = node.streams, itertools.count(), [0]

    def open_child(i: int) -> Iterator[Any]:
        identity = (*activation, next(started))
        if isinstance(children[i], RowSource) and children[i].name is None:
            return row_blocks(children[i])
        child, before = open_blocks(children[i], (*path, i), identity, ctx), rows[0]
        child.reader = lambda: max(0, position() - before)
        return child.blocks()

    return tallied(chain_blocks(open_child, len(children), node.repeat), rows)


def _source_blocks(source: RowSource, first: int) -> Iterator[Any]:
    return row_blocks(source, first)


def _take_node_blocks(node: Apply, path, activation, ctx, position: Callable[[], int]) -> Iterator[Any]:
    """``take`` over a block node: its child's blocks, cut (its position the take's, ``position()``)."""
    child = open_blocks(node.stream, (*path, 0), (*activation, 0), ctx)
    child.reader = position
    blocks = child.blocks()
    for t in node.transforms:
        blocks = take_blocks(blocks, t.n)
    try:
        yield from blocks
    finally:
        child.close()


def _named_blocks(blocks: Iterator[Any], node: Stream, path: tuple[int, ...]) -> Iterator[Any]:
    try:
        yield from blocks
    except Exception as error:
        name_note(error, node, path)
        raise
    finally:
        blocks.close()


def name_note(error: Exception, node: Stream, path: tuple[int, ...]) -> None:
    """Add a note naming the stream ``node`` (at ``path``) to ``error`` (Python >= 3.11)."""
    if hasattr(error, "add_note"):
        error.add_note(f"in stream {node.name!r} at {path or 'the root'}: {node!r}")


def open_blocks(node: Stream, path: tuple[int, ...], activation: tuple[int, ...], ctx: Any,
                saved: dict | None = None) -> BlockActivation:
    """An activation of a block node (see `combinators.plan.block_path.block_schema`), resumed from ``saved``:
    a block mix's state, or ``{"received": n}`` (a row source seeks to row n, any other node is replayed)."""
    if saved is not None and "block_mix" in saved:
        opened = BlockActivation(_mix_blocks, (node, path, activation, ctx), saved["rows"] - saved["before"], saved)
    elif isinstance(node, RowSource):
        opened = BlockActivation(_source_blocks, (node, 0 if saved is None else saved["received"]))
    else:
        received = 0 if saved is None else saved["received"]
        opened = BlockActivation(_OPENERS[type(node)], (node, path, activation, ctx), received)
    if node.name is not None:
        opened.named = (node, path)
    return opened


_OPENERS: dict[type, Callable[..., Iterator[Any]]] = {Chain: _chain_blocks, Mix: _mix_blocks, Apply: _take_node_blocks}
#: the openers that read other block nodes' blocks: given the position of their activation, to pass on
_READERS = frozenset({_chain_blocks, _take_node_blocks})
