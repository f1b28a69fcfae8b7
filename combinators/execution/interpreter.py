"""The reference interpreter: walks a description and makes every sampling decision.

Composite nodes (chains, mixes, round-robins, transforms over them) run here,
in the consumer. Each source activation is handed to the executor's session,
which runs it in-process or in a worker; the items are the same either way.
"""

from __future__ import annotations

import collections
import inspect
import itertools
from typing import Any, Callable, Iterator

import numpy as np

from combinators.sampling import seeding
from combinators.execution.apply import cell_state, restore_cell, run_transforms
from combinators.execution.base import Activation, LocalActivation, Session
from combinators.execution.block_activations import BlockActivation, name_note, open_blocks
from combinators.plan.block_path import block_leaf, block_schema, consumer_leaf
from combinators.execution.blocks import (
    BlockShuffle, _length, block_capacity, block_transforms, reshapes, skip_rows, transforms_on_blocks,
)
from combinators.plan.sources import is_leaf
from combinators.execution.leaf import activate_leaf, open_plain, plain_source, unpicklable_part, where
from combinators.execution.placed_rows import shipped_rows
from combinators.errors import ResumeError, TransportError
from combinators.execution.stats import HISTORY_VALUES, _thin
from combinators.sampling.mix import ChainCursor, RoundRobinCursor, chain_items, mix_items, round_robin_items
from combinators.plan.mixes import Mix, RoundRobin
from combinators.plan.stream import Apply, Chain, Stream
from combinators.plan.transforms import Batch, Shuffle, Take


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
        self.row_plans: dict[tuple[int, ...], tuple[Any, tuple[Any, ...]]] = {}  # per placed row source's path
        # a data-parallel rank: (root mix path, rows per item, rank, world size, the global position its
        # positions count from) where it gathers its rows only
        self.rank_rows: tuple[tuple[int, ...], int, int, int, int] | None = None

    def leaf_plan(self, node: Stream, path: tuple[int, ...]) -> tuple[Any, tuple[Any, ...]]:
        """``(activate_leaf, (leaf, entropy, path))``: one object per leaf for the whole run."""
        plan = self.leaf_plans.get(path)
        if plan is None:
            plan = self.leaf_plans[path] = (activate_leaf, (node, self.entropy, path))
        return plan

    def rows_plan(self, node: Stream, path: tuple[int, ...], schema: Any) -> tuple[Any, tuple[Any, ...]]:
        """``(shipped_rows, (source, rows per block))`` for a row source of block ``schema`` (its mix's) that a
        block mix opens through the session (`combinators.execution.placed_rows`): one object per source and run."""
        plan = self.row_plans.get(path)
        if plan is None:
            plan = self.row_plans[path] = (shipped_rows, (node, block_capacity(schema)))
        return plan

    def open(self, node: Stream, path: tuple[int, ...], activation: tuple[int, ...]) -> Activation:
        """`open_node` in this run: how a chain on the block path
        (`combinators.execution.block_activations`) opens a child."""
        return open_node(node, path, activation, self)

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
        ended = np.asarray(ended, dtype=np.int64)
        counts = ended.copy()
        for live in running:  # each adds the items of its running activations to the ended ones
            counts += np.asarray(live.live_counts(), dtype=np.int64) - ended
        return counts


def open_node(
    node: Stream, path: tuple[int, ...], activation: tuple[int, ...], ctx: _Context, saved: dict | None = None,
    limit: int | None = None, nested: bool = False,
) -> Activation:
    """Start an activation of ``node`` (at ``path``, identified by ``activation``).

    ``saved`` (from `activation_state`) resumes it: a node state, or
    ``{"received": n}``, the items its consumer had received (a leaf seeks
    or skips to item n where it runs; any other node is replayed and skips n
    items). A leaf's session is told that at most ``limit`` items (after
    those) will be asked of it. ``nested``: a mix, chain or round-robin that
    runs item by item opens it (a leaf is then placed as `consumer_leaf` says).
    """
    leaf = is_leaf(node)
    # a leaf over a row source runs here, on the block path, when block_leaf (in process) or consumer_leaf (out of
    # process) says so, or its state says it did
    here = leaf and ((block_leaf(node, True) if ctx.session.in_process else consumer_leaf(node, nested))
                     or (saved is not None and "apply" in saved))
    if ctx.schema(node) is not None and (here or not leaf):
        return open_blocks(node, path, activation, ctx, saved)  # names its errors itself
    if leaf and not here:
        received = saved.get("received", 0) if saved is not None else 0
        opened = ctx.submit_leaf(node, path, activation, limit, received)
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
        name_note(error, node, path)
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
    `activate_leaf` (or `open_plain`), in one object (a working set's replacements start one each)."""

    __slots__ = ("ordinal", "offset")

    def __init__(self, fn: Callable[..., Iterator[Any]], args: tuple[Any, ...], ordinal: int, offset: int):
        self._fn, self._args, self._iterator, self.ordinal, self.offset = fn, args, None, ordinal, offset

    def next_function(self) -> Callable[[], Any]:
        """`LocalActivation.iterator`'s ``__next__``, started here in one step (a working set's slot asks it
        at each replacement)."""
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = iter(self._fn(*self._args))
            self._fn = self._args = None
        inner = getattr(iterator, "iterator", None)  # a leaf with transforms: their output itself
        return (inner() if inner is not None else iterator).__next__

    def state(self, received: int) -> dict[str, Any]:
        return {"received": self.offset + received}


class _Children:
    """Opens a node's children: ``children(i)`` starts child ``i``; its k-th activation is ``(*activation, k)``."""

    __slots__ = ("node", "path", "leaves", "activation", "ctx", "next", "plain")

    def __init__(self, node: Stream, path: tuple[int, ...], activation: tuple[int, ...], ctx: _Context):
        self.node, self.path, self.activation, self.ctx, self.next = node, path, activation, ctx, 0
        # per child: 1 once known a `plain_source` leaf started in process (`open_plain`), 2 once known not to be
        self.plain = bytearray(len(node.children))
        # a named leaf goes through open_node, so that its errors get a note; so does one a parallel executor's
        # consumer reads on the block path (`consumer_leaf`: rows in memory)
        inline = ctx.session.in_process
        self.leaves = bytes(is_leaf(child) and child.name is None and (inline or not consumer_leaf(child, True))
                            for child in node.children)

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
        plain = self.plain[index]
        if not plain and self.leaves[index]:  # what the leaf is, worked out once per child
            plain = self.plain[index] = 1 if self.ctx.session.in_process and plain_source(self.node.children[index]) else 2
        if plain == 1 and not skip:  # the replacement's hot path: a plain source, in process
            return LeafChild(open_plain, (self.node.children[index], self.path, index), number, 0)
        if self.leaves[index]:  # straight to the session
            ctx, node = self.ctx, self.node.children[index]
            identity, path = (*self.activation, number), (*self.path, index)
            if ctx.session.in_process:
                return LeafChild(activate_leaf, (node, ctx.entropy, path, identity, skip), number, skip)
            plan = ctx.leaf_plan(node, path)
            here = ctx.session.runs_here(plan, (*plan[1], identity, skip))
            if here is not None:  # in the consumer: a plain source started straight away, unless timed for a probe
                if here[0] is activate_leaf and not skip and plain_source(node):
                    return LeafChild(open_plain, (node, self.path, index), number, 0)
                return LeafChild(*here, number, skip)
            return Child(ctx.start_leaf(plan, node, path, identity, limit, skip), number, skip)
        return self.reopen(index, number, {"received": skip} if skip else None, limit, skip)

    def reopen(self, index: int, ordinal: int, saved: dict | None, limit: int | None = None, offset: int = 0) -> Child:
        """Child ``index``'s activation number ``ordinal``, resumed from ``saved`` (whose ``received``,
        if any, counts the ``offset`` items before this child's first)."""
        identity = (*self.activation, ordinal)
        node = self.node.children[index]
        return Child(open_node(node, (*self.path, index), identity, self.ctx, saved, limit, True), ordinal, offset)


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
    own: list[Any] = []  # this activation's working set: the path's `running` holds those of its live activations

    def started(state: Any) -> None:  # a parent's working set may run several activations of this mix at once
        own.append(state)
        running[:] = [*(s for s in running if max(s.stream) >= 0), state]  # closed ones hold no slot

    items = mix_items(
        children, node.probabilities, node.n_active, node.rate, node.dist, node.mode,
        node.prune_empty,
        select_rng=seeding.generator(ctx.entropy, path, activation, seeding.SELECT),
        activate_rng=seeding.generator(ctx.entropy, path, activation, seeding.ACTIVATE),
        counts=counts,
        on_start=started,
        resume=None if saved is None else saved["mix"]["working_set"],
        segments=node.segments,
    )
    return items, lambda: {"mix": {"next": children.next, "working_set": own[-1].state()}}


def _open_apply(node: Apply, path, activation, ctx, saved) -> tuple[Iterator[Any], Callable[[], dict] | None]:
    """Transforms over a composite node, item by item (or on blocks: `_apply_blocks`), or over a leaf
    (``Apply(Apply(source, t1), t2)``, built by hand: ``>>`` flattens), whose state is the items taken from it."""
    child_saved = None if saved is None else saved["apply"]["child"]
    child = open_node(node.stream, (*path, 0), (*activation, 0), ctx, child_saved)
    if isinstance(child, BlockActivation) and (saved is None or "rows" in saved["apply"]):
        return _apply_blocks(node, path, activation, ctx, saved, child)
    cells = [{} for _ in node.transforms] if saved is None else [restore_cell(c) for c in saved["apply"]["cells"]]
    items, taken = child.iterator(), [0]
    if is_leaf(node.stream):  # only a composite child's state says itself; a leaf's is the items taken from it
        taken[0] = child_saved.get("received", 0) if child_saved is not None else 0
        items = _counted(items, taken)
    items = run_transforms(items, node.transforms, ctx.entropy, path, activation, cells=cells)

    def state() -> dict[str, Any]:
        return {"apply": {"child": activation_state(child, taken[0]), "cells": [cell_state(c) for c in cells]}}

    return _closing(items, child), state


def _apply_blocks(node: Apply, path, activation, ctx, saved, child: BlockActivation) -> tuple[Iterator[Any], Callable]:
    """Transforms over a block child: leading ``take``, ``shuffle`` and ``batch`` on blocks, the rest item by item.

    A ``shuffle`` on blocks (`BlockShuffle`) keeps the state before the chunk being read: the child's state
    then, and the rows of its output read since (a state without it, from a version that shuffled item by
    item, resumes item by item)."""
    saved = None if saved is None else saved["apply"]
    reshape = saved is None or "counts" in saved  # a state of a version that unbatched and filtered item by item
    if reshape and any(map(reshapes, node.transforms[:transforms_on_blocks(node.transforms, True)])):
        return _apply_reshaped(node, path, activation, ctx, saved, child)
    rows = [0 if saved is None else saved["rows"]]  # rows through the block transforms
    shuffled: list[tuple[BlockShuffle, dict]] = []

    def shuffler(index: int, t: Shuffle) -> Callable[[Iterator[Any]], Iterator[Any]]:
        marks: dict[str, Any] = {}
        resumed = None if saved is None else saved["shuffle"]
        stage = BlockShuffle(seeding.generator(ctx.entropy, path, activation, seeding.TRANSFORM, index), t.buffer_size,
                             lambda n: marks.__setitem__("child", activation_state(child, n)), resumed)
        shuffled.append((stage, marks))
        return stage if resumed is None else lambda blocks: skip_rows(stage(blocks), rows[0] - resumed["output"])

    on_blocks = saved is None or "shuffle" in saved
    passed = saved["shuffle"]["input"] if saved is not None and "shuffle" in saved else rows[0]
    taken = [0, False]  # rows the block batch took, whether it is asking for more (or its input ended)
    items, done = block_transforms(child.blocks(), node.transforms, passed, shuffler if on_blocks else None, taken,
                                   reshape=False, handed=rows)
    batched = done > 0 and isinstance(node.transforms[done - 1], Batch)
    # a block mix's stats (wherever it is below): the rows taken from it, as item by item
    child.reader = _reader(rows, taken, node.transforms[:done], shuffled[0][0] if shuffled else None)
    rest = node.transforms[done:]
    cells = [{} for _ in rest] if saved is None else [restore_cell(c) for c in saved["cells"]]
    items = run_transforms(_count_rows(items, rows, batched, child), rest, ctx.entropy, path, activation, first=done,
                           cells=cells)

    def state() -> dict[str, Any]:
        cell_states = [cell_state(c) for c in cells]
        if not shuffled:
            return {"apply": {"child": activation_state(child, rows[0]), "rows": rows[0], "cells": cell_states}}
        stage, marks = shuffled[0]
        if stage.mark is None:
            return {"received": 0}  # nothing read yet
        return {"apply": {"child": marks["child"], "rows": rows[0], "shuffle": stage.state(), "cells": cell_states}}

    return (items if not rest else _closing(items, child)), state  # a generator: NodeActivation.state asks


def _reader(rows: list[int], taken: list, on_blocks: tuple, stage: BlockShuffle | None) -> Callable[[], int]:
    """The rows of its block child that `_apply_blocks` took, as the per-item transforms would have pulled them
    (`BlockActivation.reader`): those passed on (``rows[0]``), or while the block ``batch`` asks for more (and
    once its input ended), every row of the blocks it took (``taken``). Under a block ``shuffle`` (``stage``),
    the per-item one pulls its buffer then a row per row it gives: that many, within the ``take`` before it."""
    start = rows[0]

    def passed() -> int:
        return start + taken[0] if taken[1] else rows[0]

    if stage is None:
        return passed
    size = stage.size
    limit = min((t.n for t in on_blocks if isinstance(t, Take)), default=None)

    def shuffled() -> int:
        out = passed()
        pulled = size + out if out or stage.started else 0
        return pulled if limit is None else min(pulled, limit)

    return shuffled


def _apply_reshaped(node: Apply, path, activation, ctx, saved, child: BlockActivation) -> tuple[Iterator[Any], Callable]:
    """`_apply_blocks` when the transforms on blocks include an ``unbatch`` or a ``filter``: they hand on other
    rows than they take, and read their input a block ahead. The state is taken where a block of the child
    started (a mark per block: the child's state there, its rows before it, the rows each transform had handed
    on), with the rows received since; resumed, the transforms run again from there and the rows already
    received are left out."""
    done = transforms_on_blocks(node.transforms, True)
    stages = done - isinstance(node.transforms[done - 1], Batch)  # the transforms before the batch
    rows = [0 if saved is None else saved["rows"]]  # rows through the block transforms
    counts = [0] * stages if saved is None else list(saved["counts"])
    if rows[0] < counts[-1]:
        msg = f"the run state's field $.apply.rows ({rows[0]}) is below the rows handed on before its mark ({counts[-1]})"
        raise ResumeError(msg)
    pulled = [0 if saved is None else saved["input"]]  # rows of the child read
    marks = collections.deque([(activation_state(child, 0) if saved is None else saved["child"], pulled[0], list(counts))])

    def marked(blocks: Iterator[Any]) -> Iterator[Any]:
        for block in blocks:
            marks.append((activation_state(child, pulled[0]), pulled[0], list(counts)))
            while len(marks) > 1 and marks[1][2][-1] <= rows[0]:  # a later mark is before the rows received
                marks.popleft()
            pulled[0] += _length(block)
            yield block

    skips = [0] * (stages - 1) + [rows[0] - counts[-1]]
    batched = done > stages
    items, _ = block_transforms(marked(child.blocks()), node.transforms, [*counts, 0], counts=counts, skips=skips,
                                handed=rows)
    rest = node.transforms[done:]
    cells = [{} for _ in rest] if saved is None else [restore_cell(c) for c in saved["cells"]]
    items = run_transforms(_count_rows(items, rows, batched, child), rest, ctx.entropy, path, activation,
                           first=done, cells=cells)

    def state() -> dict[str, Any]:
        child_state, before, at = next(mark for mark in reversed(marks) if mark[2][-1] <= rows[0])
        return {"apply": {"child": child_state, "input": before, "counts": at, "rows": rows[0],
                          "cells": [cell_state(c) for c in cells]}}

    return (items if not rest else _closing(items, child)), state


def _count_rows(items: Iterator[Any], rows: list[int], batched: bool, child: Activation) -> Iterator[Any]:
    """``items``, rows (adding each passed on to ``rows[0]``) or batches (which the block ``batch`` counts as it
    hands them on); closes ``child`` at the end."""
    try:
        if batched:
            yield from items
        else:
            for item in items:
                rows[0] += 1
                yield item
    finally:
        child.close()


def _counted(items: Iterator[Any], taken: list[int]) -> Iterator[Any]:
    """``items``, adding each one taken to ``taken[0]``."""
    for item in items:
        taken[0] += 1
        yield item


def _closing(items: Iterator[Any], child: Activation) -> Iterator[Any]:
    try:
        yield from items
    finally:
        child.close()


_WITH_STATE = frozenset({NodeActivation, Child, LeafChild, BlockActivation, NamedActivation})

_OPENERS: dict[type, Callable[..., Iterator[Any]]] = {
    Chain: _open_chain, RoundRobin: _open_round_robin, Mix: _open_mix, Apply: _open_apply,
}
