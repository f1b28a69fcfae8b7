"""The reference interpreter: walks a description and makes every sampling decision.

Composite nodes (chains, mixes, round-robins, transforms over them) run here,
in the consumer. Each source activation is handed to the executor's session,
which runs it in-process or in a worker; the items are the same either way.
"""

from __future__ import annotations

import inspect
import itertools
from typing import Any, Callable, Iterator

import attrs
import numpy as np

from combinators.plan import checks
from combinators.sampling import seeding
from combinators.execution.apply import cell_state, restore_cell, run_transforms
from combinators.execution.base import Activation, Executor, LocalActivation, Session, resolve_executor
from combinators.plan.block_path import block_schema
from combinators.execution.blocks import (block_rows, block_transforms, chain_blocks, materialize, row_blocks, skip_rows)
from combinators.plan.sources import is_leaf
from combinators.execution.leaf import activate_leaf, unpicklable_part, where
from combinators.errors import RunStateError, TransportError
from combinators.execution.runstate import FORMAT, check_resume, plan_fingerprint
from combinators.sampling.mix import (
    ChainCursor, ResumedRows, RoundRobinCursor, chain_items, mix_decisions, mix_items, round_robin_items,
)
from combinators.plan.mixes import Mix, RoundRobin
from combinators.plan.sources import RowSource
from combinators.plan.stream import set_interpreter, Apply, Chain, Stream
from combinators.plan.transforms import Batch

__all__ = ["iterate", "Run", "MixStats", "Stats"]

#: the running share is recorded each time the run's item count grows by this factor
CHECKPOINT_GROWTH = 1.1
#: counts a mix's history keeps at most (checkpoints x children, but at least 8 checkpoints): when
#: it is full, the checkpoint closest to its neighbours is dropped, so memory does not grow with the
#: number of sources
HISTORY_VALUES = 4096


class _Context:
    """What one run shares across its nodes: entropy, session, counters, statistics."""

    def __init__(self, entropy: int, session: Session, saved_counts: list | None = None):
        self.entropy, self.session = entropy, session
        # counts of a resumed run, per mix path (block-path mixes replay theirs)
        self.saved_counts = {tuple(path): counts for path, counts in saved_counts or ()}
        # per mix path: the node, counts of ended activations, the running working sets
        self.mix_counts: dict[tuple[int, ...], tuple[Mix, list[int], list[Any]]] = {}
        # per mix path: its counts per child at each checkpoint (geometric in the run's items)
        self.history: dict[tuple[int, ...], list[np.ndarray]] = {}
        self.schemas: dict[int, Any] = {}  # block schema per node (by id; nodes outlive the run)
        self.leaf_plans: dict[tuple[int, ...], tuple[Any, tuple[Any, ...]]] = {}  # per leaf path, shipped once

    def leaf_plan(self, node: Stream, path: tuple[int, ...]) -> tuple[Any, tuple[Any, ...]]:
        """``(activate_leaf, (leaf, entropy, path))``: one object per leaf for the whole run."""
        plan = self.leaf_plans.get(path)
        if plan is None:
            plan = self.leaf_plans[path] = (activate_leaf, (node, self.entropy, path))
        return plan

    def submit_leaf(
        self, node: Stream, path: tuple[int, ...], activation: tuple[int, ...], limit: int | None = None,
        start: int = 0,
    ) -> Activation:
        """Submit an activation of a leaf: its items from item ``start`` on (`activate_leaf` seeks or skips
        there, where it runs), at most ``limit`` of them; a value that cannot travel raises `TransportError`
        naming it. It runs here, lazily, when the session says so (`Session.runs_here`)."""
        plan = self.leaf_plan(node, path)
        here = self.session.runs_here(plan, (*plan[1], activation, start))
        if here is not None:
            return LocalActivation(*here)
        return self.start_leaf(plan, node, path, activation, limit, start)

    def start_leaf(
        self, plan: tuple[Any, tuple[Any, ...]], node: Stream, path: tuple[int, ...], activation: tuple[int, ...],
        limit: int | None, start: int,
    ) -> Activation:
        """`submit_leaf` in the session, wherever it runs its activations."""
        try:
            return self.session.start(plan, (activation, start) if start else (activation,), limit)
        except TransportError as error:
            why = unpicklable_part(node) or str(error.__cause__ or error)
            raise TransportError(f"cannot send {where(node, path)} to a worker: {why}") from error

    def record(self) -> None:
        """Add every mix's current counts to its history (skipping an unchanged total), thinned to `HISTORY_VALUES`."""
        for path in self.mix_counts:
            counts, past = self.current_counts(path), self.history.setdefault(path, [])
            if not past or past[-1].sum() != counts.sum():
                past.append(counts)
                if len(past) > max(8, HISTORY_VALUES // max(1, len(counts))):
                    _thin(past)

    def schema(self, node: Stream) -> Any:
        """The node's block schema (None off the block path), computed once per run."""
        key = id(node)
        if key not in self.schemas:
            self.schemas[key] = block_schema(node)
        return self.schemas[key]

    def mix_record(self, node: Mix, path: tuple[int, ...]) -> tuple[Mix, list[int], list[Any]]:
        if path not in self.mix_counts:
            saved = self.saved_counts.get(path) if self.schema(node) is None else None
            self.mix_counts[path] = (node, list(saved) if saved else [0] * len(node.streams), [])
        return self.mix_counts[path]

    def counts_state(self) -> list[Any]:
        """Counts of ended activations per mix path, as JSON values."""
        return [[list(path), list(counts)] for path, (_, counts, _) in sorted(self.mix_counts.items())]

    def current_counts(self, path: tuple[int, ...]) -> np.ndarray:
        _, ended, running = self.mix_counts[path]
        if running:
            return np.asarray(running[-1].live_counts(), dtype=np.int64)
        return np.asarray(ended, dtype=np.int64)


def _thin(history: list[np.ndarray]) -> None:
    """Drop the inner checkpoint closest to its neighbours on a log scale (keeps the spread of a log plot).

    >>> history = [np.array([n]) for n in (1, 10, 11, 100, 1000)]
    >>> _thin(history); [int(h[0]) for h in history]
    [1, 10, 100, 1000]
    """
    totals = [int(counts.sum()) for counts in history]
    gaps = [totals[i + 1] / max(1, totals[i - 1]) for i in range(1, len(totals) - 1)]
    del history[1 + gaps.index(min(gaps))]


def open_node(
    node: Stream, path: tuple[int, ...], activation: tuple[int, ...], ctx: _Context, saved: dict | None = None,
    limit: int | None = None,
) -> Activation:
    """Start an activation of ``node`` (at ``path``, identified by ``activation``).

    ``saved`` (from `activation_state`) resumes it: a node state, or
    ``{"received": n}``, the items its consumer had received (a leaf seeks
    or skips to item n where it runs; any other node is replayed and skips n
    items). A leaf's session is told that at most ``limit`` items (after
    those) will be asked of it.
    """
    received = saved.get("received", 0) if saved is not None else 0
    if is_leaf(node):
        opened = ctx.submit_leaf(node, path, activation, limit, received)
    elif ctx.schema(node) is not None:
        if saved is not None and "block_mix" in saved:
            opened = BlockActivation(_mix_blocks, (node, path, activation, ctx), saved["rows"] - saved["before"], saved)
        else:
            opened = BlockActivation(_BLOCK_OPENERS[type(node)], (node, path, activation, ctx), received)
    else:
        opened = NodeActivation(_OPENERS[type(node)], (node, path, activation, ctx), saved)
    return opened if node.name is None else NamedActivation(opened, node, path)


class NamedActivation(LocalActivation):
    """The activation of a named stream: an error it raises gets a note naming the stream; its state is the inner one's."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Activation, node: Stream, path: tuple[int, ...]):
        super().__init__(_named_items, (inner, node, path))
        self._inner = inner

    def state(self, received: int) -> dict[str, Any]:
        return activation_state(self._inner, received)

    def close(self) -> None:
        super().close()
        self._inner.close()


def _named_items(opened: Activation, node: Stream, path: tuple[int, ...]) -> Iterator[Any]:
    """The items of a named stream's activation; an error it raises names the stream."""
    try:
        yield from opened.iterator()
    except Exception as error:
        if hasattr(error, "add_note"):  # Python >= 3.11
            error.add_note(f"in stream {node.name!r} at {path or 'the root'}: {node!r}")
        raise
    finally:
        opened.close()


def activation_state(activation: Activation, received: int) -> dict[str, Any]:
    """The state of an open activation whose consumer received ``received`` items from it."""
    if type(activation) in _WITH_STATE:  # not isinstance: Activation is an ABC, and this runs per slot
        return activation.state(received)
    return {"received": received}


class NodeActivation(LocalActivation):
    """An activation of a composite node, started lazily, that can tell its state.

    ``fn(*args, saved)`` returns ``(items, state)`` where ``state()`` gives
    the node's state between items, or None when the node is replayed
    (``{"received": n}``).
    """

    __slots__ = ("_saved", "_state")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], saved: dict | None):
        super().__init__(fn, args)
        self._saved, self._state = saved, None

    def _start(self) -> Iterator[Any]:
        if self._iterator is None:
            saved, skip = self._saved, 0
            if saved is not None and "received" in saved:
                saved, skip = None, saved["received"]
            items, self._state = self._fn(*self._args, saved)
            self._iterator = iter(items)
            self._fn = self._args = None
            if skip:  # replayed: its own state() counts the items skipped, as the whole activation's
                next(itertools.islice(self._iterator, skip, skip), None)
        return self._iterator

    def state(self, received: int) -> dict[str, Any]:
        if self._state is not None and inspect.getgeneratorstate(self._iterator) != inspect.GEN_CREATED:
            return self._state()
        if self._saved is not None and "received" not in self._saved:
            return self._saved  # resumed, not pulled from since
        return {"received": received}


class Child(Activation):
    """A child activation as its parent node holds it: the activation, its ordinal among the parent's, and
    its ``offset``, the items of the activation before the first it gives (a stream an ending-mode mix
    resumes after its budget starts after the items of its earlier turns)."""

    __slots__ = ("inner", "ordinal", "offset")

    def __init__(self, inner: Activation, ordinal: int, offset: int = 0):
        self.inner, self.ordinal, self.offset = inner, ordinal, offset

    def __next__(self) -> Any:
        return next(self.inner)

    def iterator(self) -> Iterator[Any]:
        return self.inner.iterator()

    def next_function(self) -> Callable[[], Any]:
        return self.inner.next_function()

    def close(self) -> None:
        self.inner.close()

    def state(self, received: int) -> dict[str, Any]:
        """The state of the whole activation when its parent received ``received`` items from this child."""
        return activation_state(self.inner, self.offset + received)


class LeafChild(LocalActivation):
    """An in-process leaf activation as its parent holds it: a `Child` of a `LocalActivation` of
    `activate_leaf`, in one object (a working set's replacements start one each)."""

    __slots__ = ("ordinal", "offset")

    def __init__(self, fn: Callable[..., Iterator[Any]], args: tuple[Any, ...], ordinal: int, offset: int):
        self._fn, self._args, self._iterator, self.ordinal, self.offset = fn, args, None, ordinal, offset

    def state(self, received: int) -> dict[str, Any]:
        return {"received": self.offset + received}


class _Children:
    """Opens a node's children: ``children(i)`` starts child ``i``; its k-th activation is ``(*activation, k)``."""

    __slots__ = ("node", "path", "leaves", "activation", "ctx", "next")

    def __init__(self, node: Stream, path: tuple[int, ...], activation: tuple[int, ...], ctx: _Context):
        self.node, self.path, self.activation, self.ctx, self.next = node, path, activation, ctx, 0
        # a named leaf goes through open_node, so that its errors get a note
        self.leaves = bytes(is_leaf(child) and child.name is None for child in node.children)

    def __call__(self, index: int, limit: int | None = None, number: int | None = None, skip: int = 0) -> Child:
        """Child ``index``'s next activation, of which at most ``limit`` items will be asked.

        With ``number``, its activation ``number`` afresh, giving its items
        after the first ``skip``: the same number is the same identity, so
        the same items (how the ending modes of a mix resume a suspended
        activation without keeping it open). A leaf skips them where it runs
        (in the worker: they never travel), any other child is replayed.
        """
        if number is None:
            number = self.next
            self.next += 1
        if self.leaves[index]:  # the replacement's hot path: straight to the session
            identity, node, path = (*self.activation, number), self.node.children[index], (*self.path, index)
            ctx = self.ctx
            if ctx.session.in_process:
                return LeafChild(activate_leaf, (node, ctx.entropy, path, identity, skip), number, skip)
            plan = ctx.leaf_plan(node, path)
            here = ctx.session.runs_here(plan, (*plan[1], identity, skip))
            if here is not None:
                return LeafChild(*here, number, skip)
            return Child(ctx.start_leaf(plan, node, path, identity, limit, skip), number, skip)
        return self.reopen(index, number, {"received": skip} if skip else None, limit, skip)

    def reopen(self, index: int, ordinal: int, saved: dict | None, limit: int | None = None, offset: int = 0) -> Child:
        """Child ``index``'s activation number ``ordinal``, resumed from ``saved`` (whose ``received``,
        if any, counts the ``offset`` items before this child's first)."""
        identity = (*self.activation, ordinal)
        node = self.node.children[index]
        return Child(open_node(node, (*self.path, index), identity, self.ctx, saved, limit), ordinal, offset)


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


def _open_chain(node: Chain, path, activation, ctx, saved) -> tuple[Iterator[Any], Callable[[], dict]]:
    children, cursor = _Children(node, path, activation, ctx), ChainCursor()
    if saved is not None:
        s = saved["chain"]
        children.next, cursor.index, cursor.produced = s["next"], s["index"], s["produced"]
        if s["child"] is not None:
            ordinal, cursor.received, child = s["child"]
            cursor.activation = children.reopen(cursor.index, ordinal, child)

    def state() -> dict[str, Any]:
        child, received = cursor.activation, cursor.received
        running = None if child is None else [child.ordinal, received, child.state(received)]
        return {"chain": {"next": children.next, "index": cursor.index, "produced": cursor.produced, "child": running}}

    return chain_items(children, len(node.streams), node.repeat, cursor), state


def _open_round_robin(node: RoundRobin, path, activation, ctx, saved) -> tuple[Iterator[Any], Callable[[], dict]]:
    rng = seeding.generator(ctx.entropy, path, activation, seeding.ACTIVATE)
    children, cursor = _Children(node, path, activation, ctx), RoundRobinCursor(list(range(len(node.streams))))
    if saved is not None:
        s = saved["round_robin"]
        rng.bit_generator.state, children.next = s["rng"], s["next"]
        cursor.order, cursor.turn, cursor.produced = s["order"], s["turn"], s["produced"]
        if s["activations"] is not None:
            cursor.received = [0 if a is None else a[1] for a in s["activations"]]
            cursor.activations = [
                None if a is None else children.reopen(index, a[0], a[2]) for index, a in zip(cursor.order, s["activations"])
            ]

    def state() -> dict[str, Any]:
        running = cursor.activations and [
            None if a is None else [a.ordinal, r, a.state(r)] for a, r in zip(cursor.activations, cursor.received)
        ]
        return {"round_robin": {"rng": rng.bit_generator.state, "next": children.next, "order": list(cursor.order),
                                "turn": cursor.turn, "produced": cursor.produced, "activations": running}}

    return round_robin_items(children, len(node.streams), node.mode, rng, cursor), state


def _open_mix(node: Mix, path, activation, ctx, saved) -> tuple[Iterator[Any], Callable[[], dict]]:
    _, counts, running = ctx.mix_record(node, path)
    children = _Children(node, path, activation, ctx)
    if saved is not None:
        children.next = saved["mix"]["next"]
    items = mix_items(
        children, node.probabilities, node.n_active, node.rate, node.dist, node.mode,
        node.prune_empty,
        select_rng=seeding.generator(ctx.entropy, path, activation, seeding.SELECT),
        activate_rng=seeding.generator(ctx.entropy, path, activation, seeding.ACTIVATE),
        counts=counts,
        on_start=lambda state: running.__setitem__(slice(None), [state]),
        resume=None if saved is None else saved["mix"]["working_set"],
    )
    return items, lambda: {"mix": {"next": children.next, "working_set": running[-1].state()}}


def _open_apply(node: Apply, path, activation, ctx, saved) -> tuple[Iterator[Any], Callable[[], dict] | None]:
    child = open_node(node.stream, (*path, 0), (*activation, 0), ctx, None if saved is None else saved["apply"]["child"])
    if isinstance(child, BlockActivation):
        return _apply_blocks(node, path, activation, ctx, saved, child)
    cells = [{} for _ in node.transforms] if saved is None else [restore_cell(c) for c in saved["apply"]["cells"]]
    items = run_transforms(child.iterator(), node.transforms, ctx.entropy, path, activation, cells=cells)

    def state() -> dict[str, Any]:
        return {"apply": {"child": activation_state(child, 0), "cells": [cell_state(c) for c in cells]}}

    return _closing(items, child), state


def _apply_blocks(node: Apply, path, activation, ctx, saved, child: BlockActivation) -> tuple[Iterator[Any], Callable]:
    """Transforms over a block child: leading ``take``/``batch`` on blocks, the rest item by item."""
    rows = [0 if saved is None else saved["apply"]["rows"]]  # rows through the block transforms
    items, done = block_transforms(child.blocks(), node.transforms, rows[0])
    batched = done > 0 and isinstance(node.transforms[done - 1], Batch)
    rest = node.transforms[done:]
    cells = [{} for _ in rest] if saved is None else [restore_cell(c) for c in saved["apply"]["cells"]]
    items = run_transforms(_count_rows(items, rows, batched), rest, ctx.entropy, path, activation, first=done, cells=cells)

    def state() -> dict[str, Any]:
        return {"apply": {"child": activation_state(child, rows[0]), "rows": rows[0],
                          "cells": [cell_state(c) for c in cells]}}

    return _closing(items, child), state


def _count_rows(items: Iterator[Any], rows: list[int], batched: bool) -> Iterator[Any]:
    """``items`` (rows, or batches of rows), adding the rows passed on to ``rows[0]``."""
    for item in items:
        rows[0] += (len(next(iter(item.values()))) if isinstance(item, dict) else len(item)) if batched else 1
        yield item


def _closing(items: Iterator[Any], child: Activation) -> Iterator[Any]:
    try:
        yield from items
    finally:
        child.close()


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
    )
    try:
        yield from materialize(marks.decisions(decisions), ctx.schema(node), marks.on_block)
    finally:
        decisions.close()


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
        return open_node(children[i], (*path, i), identity, ctx).blocks()

    return chain_blocks(open_child, len(children), node.repeat)


_WITH_STATE = frozenset({NodeActivation, Child, LeafChild, BlockActivation, NamedActivation})

_OPENERS: dict[type, Callable[..., Iterator[Any]]] = {
    Chain: _open_chain, RoundRobin: _open_round_robin, Mix: _open_mix, Apply: _open_apply,
}
_BLOCK_OPENERS: dict[type, Callable[..., Iterator[Any]]] = {Chain: _chain_blocks, Mix: _mix_blocks}


@attrs.frozen
class MixStats:
    """What one mix node yielded in a run: counts per child, realized vs target proportions.

    ``counts``, ``realized`` and ``target`` have shape ``(n_children,)``;
    ``realized`` is ``counts / counts.sum()`` (NaN before any item).
    ``counts`` are the items the mix yielded, over all its activations: a mix
    nested under an exhaustive or first_exhausted mix with a budget is
    restarted when its turn resumes, and the items it yields again (to be
    skipped) are counted again; the top mix's counts are exactly its items.
    ``history`` (int64, shape ``(n_checkpoints, n_children)``) holds the
    counts at checkpoints taken each time the run's item count grew by
    `CHECKPOINT_GROWTH` (about 25 per tenfold growth), ending with
    ``counts``: the running share of each child is
    ``history / history.sum(axis=1, keepdims=True)``. A mix keeps at most
    `HISTORY_VALUES` counts (but 8 checkpoints at least): when full, the
    checkpoint closest to its neighbours (on a log scale) is dropped, so a mix
    of many streams keeps fewer checkpoints, still spread over the run.
    """

    path: tuple[int, ...]
    node: Mix
    counts: np.ndarray
    target: np.ndarray
    history: np.ndarray = attrs.field(default=None, eq=False)

    def __attrs_post_init__(self) -> None:
        past = [] if self.history is None else list(self.history)
        if past and past[-1].sum() == self.counts.sum():
            past.pop()  # the last checkpoint is the final count
        object.__setattr__(self, "history", np.array([*past, self.counts], dtype=np.int64).reshape(-1, len(self.counts)))

    @property
    def realized(self) -> np.ndarray:
        total = self.counts.sum()
        return self.counts / total if total else np.full(len(self.counts), np.nan)

    @property
    def name(self) -> str | None:
        """The mix's name (``None`` if it has none)."""
        return self.node.name

    @property
    def names(self) -> tuple[str, ...]:
        """Each child's label: its name, or ``"child i"`` for an unnamed child."""
        return tuple(s.name if s.name is not None else f"child {i}" for i, s in enumerate(self.node.streams))

    @property
    def label(self) -> str:
        """How the mix is called in text: its name and path (``"mix 'classes' at (0,)"``)."""
        name = f" {self.name!r}" if self.name is not None else ""
        return f"mix{name} at {self.path or 'root'}"

    def __str__(self) -> str:
        rows = [f"{self.label}: {int(self.counts.sum())} items"]
        width = max(map(len, self.names))
        for label, c, r, t in zip(self.names, self.counts, self.realized, self.target):
            rows.append(f"  {label:<{width}}  {int(c):>8} items  realized {r:.4f}  target {t:.4f}")
        return "\n".join(rows)


class Stats(list):
    """The `MixStats` of a run's mixes, in path order: a list, with a picture.

    ``str(stats)`` is every mix's table; ``stats.plot()`` draws, per mix,
    realized against target proportions and each child's running share.
    """

    def __str__(self) -> str:
        return "\n".join(map(str, self))

    def plot(self, path: str | None = None, **options: Any) -> Any:
        """A matplotlib ``Figure``: one row per mix (see `combinators.execution.plot.plot_stats`); saved to ``path`` if given.

        Needs matplotlib (``pip install "combinators[plot]"``); raises
        `ImportError` naming that extra without it.
        """
        from combinators.execution.plot import plot_stats

        return plot_stats(self, path, **options)


class Run:
    """A running stream: an iterator and a context manager; ``close()`` releases everything.

    Created by `iterate`. ``seed`` is the run's entropy (drawn fresh when
    `iterate` got ``seed=None``, so a run can be replayed), ``stats()`` gives
    per-mix counts and realized vs target proportions.
    """

    def __init__(self, stream: Stream, entropy: int, executor: Executor, max_iter: int | None,
                 resume: dict[str, Any] | None = None, fingerprint: str | None = None):
        self.stream, self.seed, self.executor = stream, entropy, executor
        self._fingerprint = fingerprint
        self._session = executor.open()
        self._ctx = _Context(entropy, self._session, resume and resume.get("counts"))
        self._offset = resume["items"] if resume else 0  # items of the run before it was resumed
        saved = resume["root"] if resume else None
        self._final: dict[str, Any] | None = None  # the state once the run stopped
        self._root: Activation | None = None
        if saved is not None and saved.get("done"):
            self._final = resume
        else:
            self._root = open_node(stream, (), (0,), self._ctx, saved)
        self._next: Callable[[], Any] | None = None
        self._max_iter = max_iter
        self.items = 0
        self._checkpoint = 1

    def __iter__(self) -> "Run":
        return self

    def _start(self) -> Callable[[], Any]:
        if self._root is None:
            raise StopIteration
        self._next = self._root.iterator().__next__
        return self._next

    def __next__(self) -> Any:
        if self._max_iter is not None and self.items >= self._max_iter:
            if self._final is None and self._root is not None:
                self._final = self.state()
            self.close()
            raise StopIteration
        try:
            item = (self._next or self._start())()
        except StopIteration:
            if self._final is None and self._root is not None:
                self._final = self._state({"done": True})
            self.close()
            raise
        except BaseException:
            self.close()
            raise
        self.items += 1
        if self.items >= self._checkpoint:
            self._ctx.record()
            self._checkpoint = max(self.items + 1, int(self.items * CHECKPOINT_GROWTH))
        return item

    @property
    def fingerprint(self) -> str:
        """The plan's fingerprint (`~combinators.execution.runstate.plan_fingerprint`), computed once."""
        if self._fingerprint is None:
            self._fingerprint = plan_fingerprint(self.stream)
        return self._fingerprint

    def state(self) -> dict[str, Any]:
        """The run's position as a JSON-serializable dict: pass it to ``iterate(plan, resume=...)``.

        It reflects exactly the items this run has yielded: resuming from it,
        under any executor and worker count, yields the items this run would
        have yielded next. It holds the seed, the plan's fingerprint and, per
        open node activation, what it has decided and holds (mix working
        sets with their Generator states, chain and round-robin positions,
        the items received from each live source activation, transform
        buffers); see docs/guide/resume.md. Its size is bounded by working
        sets and buffers, not by the items yielded. A run that ended (or hit
        ``max_iter``) keeps its final state.

        Raises `RunStateError` when an item a transform holds (a shuffle
        buffer, a cache, an unbatched batch) cannot be encoded without pickle
        (its type is named), or when the run was closed before its end.

        >>> from combinators import from_iterable, iterate, shuffle
        >>> plan = from_iterable(range(10)) >> shuffle(4)
        >>> run = iterate(plan, seed=1)
        >>> first = [next(run) for _ in range(3)]
        >>> rest = list(iterate(plan, resume=run.state()))
        >>> first + rest == list(iterate(plan, seed=1))
        True
        """
        if self._final is not None:
            return self._final
        if self._root is None:
            msg = "the run was closed before its end; take state() before close()"
            raise RunStateError(msg)
        return self._state(activation_state(self._root, self._offset + self.items))

    def _state(self, root: dict[str, Any]) -> dict[str, Any]:
        return {"format": FORMAT, "seed": self.seed, "plan": self.fingerprint, "items": self._offset + self.items,
                "root": root, "counts": self._ctx.counts_state()}

    def close(self) -> None:
        """Stop the run: close every open activation, then the executor session."""
        root, self._root = self._root, None
        self._next = _exhausted
        try:
            if root is not None:
                root.close()
        finally:
            self._session.close()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def executor_stats(self) -> dict[str, float]:
        """The executor session's counters; empty in-process (nothing is produced ahead there).

        For `Processes` and `ZMQ`: the messages it dropped (``malformed``,
        ``unjoined``, ``rejected``; see `RemoteSession.stats`), and its flow
        (`RemoteSession.flow_stats`): ``activations`` started in workers,
        ``activations_inline`` run in the consumer and ``activations_moved``
        started in a worker and finished in the consumer (cheap leaves, see
        `RemoteSession.runs_here`), ``items_received``, ``items_wasted`` (produced by workers, reached the
        consumer, never consumed: the items of activations closed early,
        mostly those of the drawn-ahead queue when the run stops), and the
        activation start latency ``start_latency_median_ms`` and
        ``start_latency_p99_ms`` (from submit to its first items).

        >>> from combinators import from_iterable
        >>> with iterate(from_iterable("ab"), seed=0) as run:
        ...     run.executor_stats()
        {}
        """
        flow = getattr(self._session, "flow_stats", None)
        return {**self._session.stats(), **(flow() if flow is not None else {})}

    def stats(self) -> "Stats":
        """Per-mix statistics so far, in path order: a list of `MixStats` with a ``plot()``."""
        return Stats(
            MixStats(path, node, self._ctx.current_counts(path), node.probabilities, self._ctx.history.get(path))
            for path, (node, _, _) in sorted(self._ctx.mix_counts.items())
        )

    def __repr__(self) -> str:
        return f"<Run of {self.stream!r} seed={self.seed} executor={self.executor!r} items={self.items}>"


def _exhausted() -> Any:
    raise StopIteration


def iterate(
    stream: Stream, *, seed: int | np.random.SeedSequence | None = None, executor: str | Executor = "inprocess",
    max_iter: int | None = None, resume: dict[str, Any] | None = None,
) -> Run:
    """Evaluate ``stream``: a `Run`, an iterator over its items that is also a context manager.

    The same ``seed`` gives the same items whatever the executor
    (``"inprocess"``, ``"processes"``, ``"zmq"``, ``"ray"`` or an `Executor` instance);
    ``seed=None`` draws fresh entropy (kept as ``run.seed``). ``max_iter``
    stops after that many items (of this run, when resumed).

    ``resume`` (a `Run.state`, possibly through ``json.dumps``/``json.loads``)
    continues that run: the items are exactly those it would have yielded
    next, whichever executor took the state. ``seed`` may then be omitted.

    Raises `InvalidArgumentType` if ``stream`` is not a stream, and
    `ResumeError` if ``resume`` is not a run state of this format, of this
    plan (by fingerprint), or of ``seed`` when one is given.

    >>> from combinators import mix, from_iterable
    >>> s = mix(from_iterable("ab"), from_iterable("xyz"), mode="exhaustive")
    >>> with iterate(s, seed=3) as run:
    ...     out = "".join(run)
    >>> sorted(out) == sorted("abxyz"), out == "".join(iterate(s, seed=3))
    (True, True)
    """
    checks.instance_of("the stream of iterate()", stream, Stream, "a stream description")
    if max_iter is not None:
        max_iter = checks.non_negative_int("max_iter", max_iter)
    if resume is None:
        return Run(stream, seeding.run_entropy(seed), resolve_executor(executor), max_iter)
    fingerprint = plan_fingerprint(stream)
    check_resume(resume, fingerprint, None if seed is None else seeding.run_entropy(seed))
    return Run(stream, resume["seed"], resolve_executor(executor), max_iter, resume, fingerprint)


set_interpreter(iterate)  # iter(stream) runs here: the plan layer's one hook into execution
