"""Activations on the block path: chains and mixes over row sources, read a block of rows at a time.

A node whose description has a block schema (`combinators.plan.block_path.block_schema`)
runs here instead of item by item: a mix draws its decisions in runs and gathers the
rows of each run at once (the materializer, `combinators.execution.blocks`), a chain
concatenates its children's blocks. The interpreter (`combinators.execution.interpreter`)
opens these activations and passes its context (``ctx``), which opens a chain's children.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator

import numpy as np

from combinators.sampling import seeding
from combinators.execution.base import Activation
from combinators.execution.blocks import block_rows, chain_blocks, materialize, row_blocks, skip_rows
from combinators.sampling.mix import ResumedRows, mix_decisions
from combinators.plan.mixes import Mix
from combinators.plan.sources import RowSource
from combinators.plan.stream import Chain, Stream


class BlockActivation(Activation):
    """An activation on the block path: ``blocks()`` gives its rows a block at a time.

    Started lazily, like `LocalActivation`. Iterated, it yields the rows one by
    one (`block_rows`); a consumer uses either the blocks or the rows. A
    resumed one leaves out its first ``skip`` rows: a mix starts again from
    the state its working set had at the start of the block being read
    (``saved``); a chain replays its children from their first rows.
    """

    __slots__ = ("_fn", "_args", "_blocks", "_rows", "_skip", "_saved", "marks")

    def __init__(self, fn: Callable[..., Iterator[Any]], args: tuple[Any, ...], skip: int = 0,
                 saved: dict | None = None):
        self._fn, self._args, self._blocks, self._rows, self._skip = fn, args, None, None, skip
        self._saved = saved
        self.marks = _BlockMarks(saved) if fn is _mix_blocks else None

    def blocks(self) -> Iterator[Any]:
        """The blocks: arrays of rows, or dicts of arrays of rows (after the first ``skip`` rows)."""
        if self._blocks is None:
            extra = () if self.marks is None else (self.marks,)
            self._blocks = self._fn(*self._args, *extra)
            if self._skip:
                self._blocks = skip_rows(self._blocks, self._skip)
            self._fn = self._args = None
        return self._blocks

    def iterator(self) -> Iterator[Any]:
        if self._rows is None:
            self._rows = block_rows(self.blocks())
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
    """Where the block being read started: the working set's snapshot, the mix's counts, rows before it."""

    __slots__ = ("saved", "decided", "mark", "working_set", "counts")

    def __init__(self, saved: dict | None):
        self.saved, self.decided, self.mark = saved, 0 if saved is None else saved["before"], None
        self.working_set: Any = None
        self.counts: list[int] = []

    def decisions(self, runs: Iterator[Any]) -> Iterator[Any]:
        """``runs`` of decisions, counting the rows they decide (after each is used)."""
        try:
            for run in runs:
                yield run
                self.decided += len(run.picks)
        finally:
            runs.close()

    def on_block(self) -> None:
        self.mark = (self.working_set.snapshot(), list(self.counts), self.decided)

    def state(self, received: int) -> dict[str, Any]:
        snapshot, counts, before = self.mark
        return {"block_mix": self.working_set.snapshot_state(snapshot), "counts": counts, "before": before,
                "rows": received}


def _mix_blocks(node: Mix, path, activation, ctx, marks: _BlockMarks) -> Iterator[Any]:
    _, counts, running = ctx.mix_record(node, path)
    marks.counts, saved = counts, marks.saved
    if saved is not None:
        counts[:] = saved["counts"]
    children = node.streams
    decisions = mix_decisions(
        _RowChildren(children), node.probabilities, node.n_active, node.rate, node.dist, node.mode,
        node.prune_empty,
        select_rng=seeding.generator(ctx.entropy, path, activation, seeding.SELECT),
        activate_rng=seeding.generator(ctx.entropy, path, activation, seeding.ACTIVATE),
        counts=counts,
        on_start=lambda state: (running.__setitem__(slice(None), [state]), setattr(marks, "working_set", state)),
        resume=None if saved is None else saved["block_mix"],
        segments=node.segments,
    )
    try:
        yield from materialize(marks.decisions(decisions), ctx.schema(node), marks.on_block, _own_rows(ctx, path, marks))
    finally:
        decisions.close()


def _own_rows(ctx, path: tuple[int, ...], marks: _BlockMarks) -> Callable[[int], Any] | None:
    """For the root mix of a data-parallel rank (``ctx.rank_rows``): which rows of the next run its items hold."""
    ranks = ctx.rank_rows
    if ranks is None or ranks[0] != path:
        return None
    _, per, rank, world, first = ranks

    def keep(n: int) -> Any:
        return (np.arange(marks.decided, marks.decided + n) // per - first) % world == rank

    return keep


class _RowChildren:
    """Opens a block mix's row sources, after the rows of earlier turns (`ResumedRows`); ``reopen`` for a
    resumed working set: row sources have no state."""

    __slots__ = ("children",)

    def __init__(self, children: tuple[Stream, ...]):
        self.children = children

    def __call__(self, index: int, limit: int | None = None, number: int | None = None, skip: int = 0) -> Any:
        rows = self.children[index].open()
        return ResumedRows(rows, skip) if skip else rows

    def reopen(self, index: int, ordinal: Any, saved: Any, limit: int | None = None, offset: int = 0) -> Any:
        return self(index, limit, ordinal, offset)


def _chain_blocks(node: Chain, path, activation, ctx) -> Iterator[Any]:
    children, started = node.streams, itertools.count()

    def open_child(i: int) -> Iterator[Any]:
        identity = (*activation, next(started))
        if isinstance(children[i], RowSource):
            return row_blocks(children[i])
        return ctx.open(children[i], (*path, i), identity).blocks()

    return chain_blocks(open_child, len(children), node.repeat)
