"""The reference interpreter: walks a description and makes every sampling decision.

Composite nodes (chains, mixes, round-robins, transforms over them) run here,
in the consumer. Each source activation is handed to the executor's session,
which runs it in-process or in a worker; the items are the same either way.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator

import attrs
import numpy as np

from combinators import checks, seeding
from combinators.execution.apply import run_transforms
from combinators.execution.base import Activation, Executor, LocalActivation, Session, resolve_executor
from combinators.errors import TransportError
from combinators.execution.blocks import (
    block_rows, block_schema, block_transforms, chain_blocks, materialize, row_blocks,
)
from combinators.execution.leaf import activate_leaf, is_leaf, unpicklable_part, where
from combinators.sampling import chain_items, mix_decisions, mix_items, round_robin_items
from combinators.streams import Apply, Chain, Mix, RoundRobin, RowSource, Stream

__all__ = ["iterate", "Run", "MixStats", "Stats"]

#: the running share is recorded each time the run's item count grows by this factor
CHECKPOINT_GROWTH = 1.1


class _Context:
    """What one run shares across its nodes: entropy, session, counters, statistics."""

    def __init__(self, entropy: int, session: Session):
        self.entropy, self.session = entropy, session
        # per mix path: the node, counts of ended activations, the running working sets
        self.mix_counts: dict[tuple[int, ...], tuple[Mix, list[int], list[Any]]] = {}
        # per mix path: its counts per child at each checkpoint (geometric in the run's items)
        self.history: dict[tuple[int, ...], list[np.ndarray]] = {}
        self.schemas: dict[int, Any] = {}  # block schema per node (by id; nodes outlive the run)

    def record(self) -> None:
        """Add every mix's current counts to its history (skipping an unchanged total)."""
        for path in self.mix_counts:
            counts, past = self.current_counts(path), self.history.setdefault(path, [])
            if not past or past[-1].sum() != counts.sum():
                past.append(counts)

    def schema(self, node: Stream) -> Any:
        """The node's block schema (None off the block path), computed once per run."""
        key = id(node)
        if key not in self.schemas:
            self.schemas[key] = block_schema(node)
        return self.schemas[key]

    def mix_record(self, node: Mix, path: tuple[int, ...]) -> tuple[Mix, list[int], list[Any]]:
        if path not in self.mix_counts:
            self.mix_counts[path] = (node, [0] * len(node.streams), [])
        return self.mix_counts[path]

    def current_counts(self, path: tuple[int, ...]) -> np.ndarray:
        _, ended, running = self.mix_counts[path]
        if running:
            return np.asarray(running[-1].live_counts(), dtype=np.int64)
        return np.asarray(ended, dtype=np.int64)


def open_node(node: Stream, path: tuple[int, ...], activation: tuple[int, ...], ctx: _Context) -> Activation:
    """Start an activation of ``node`` (at ``path``, identified by ``activation``)."""
    if is_leaf(node):
        opened = _submit_leaf(node, path, activation, ctx)
    elif ctx.schema(node) is not None:
        opened = BlockActivation(_BLOCK_OPENERS[type(node)], (node, path, activation, ctx))
    else:
        opened = LocalActivation(_OPENERS[type(node)], (node, path, activation, ctx))
    return opened if node.name is None else LocalActivation(_named_items, (opened, node, path))


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


class BlockActivation(Activation):
    """An activation on the block path: ``blocks()`` gives its rows a block at a time.

    Started lazily, like `LocalActivation`. Iterated, it yields the rows one by
    one (`block_rows`); a consumer uses either the blocks or the rows.
    """

    __slots__ = ("_fn", "_args", "_blocks", "_rows")

    def __init__(self, fn: Callable[..., Iterator[Any]], args: tuple[Any, ...]):
        self._fn, self._args, self._blocks, self._rows = fn, args, None, None

    def blocks(self) -> Iterator[Any]:
        """The blocks: arrays of rows, or dicts of arrays of rows."""
        if self._blocks is None:
            self._blocks = self._fn(*self._args)
            self._fn = self._args = None
        return self._blocks

    def iterator(self) -> Iterator[Any]:
        if self._rows is None:
            self._rows = block_rows(self.blocks())
        return self._rows

    def __next__(self) -> Any:
        return next(self.iterator())

    def close(self) -> None:
        for part in (self._rows, self._blocks):
            if part is not None:
                part.close()
        self._fn = self._args = self._rows = self._blocks = None


def _submit_leaf(node: Stream, path: tuple[int, ...], activation: tuple[int, ...], ctx: _Context) -> Activation:
    """Submit a leaf activation to the session; a leaf that cannot be shipped is named as `explain` shows it."""
    try:
        return ctx.session.submit(activate_leaf, node, ctx.entropy, path, activation)
    except TransportError as error:
        why = unpicklable_part(node) or str(error.__cause__ or error)
        raise TransportError(f"cannot send {where(node, path)} to a worker: {why}") from error


def _child_opener(
    node: Stream, path: tuple[int, ...], activation: tuple[int, ...], ctx: _Context
) -> Callable[[int], Activation]:
    """``open(i)`` starts child ``i``; the k-th child activation is identified by ``(*activation, k)``.

    ``open(i, number=k)`` starts child ``i``'s activation ``k`` afresh, with
    the same identity, so it yields the same items (how the ending modes of
    a mix resume a suspended activation without keeping it open).
    """
    children, started = node.children, itertools.count()
    paths = [(*path, i) for i in range(len(children))]
    leaves = [is_leaf(child) and child.name is None for child in children]  # a named leaf's errors get a note

    def open_child(i: int, number: int | None = None) -> Activation:
        identity = (*activation, next(started) if number is None else number)
        if leaves[i]:  # the replacement's hot path: straight to the session
            return _submit_leaf(children[i], paths[i], identity, ctx)
        return open_node(children[i], paths[i], identity, ctx)

    return open_child


def _open_chain(node: Chain, path, activation, ctx) -> Iterator[Any]:
    return chain_items(_child_opener(node, path, activation, ctx), len(node.streams), node.repeat)


def _open_round_robin(node: RoundRobin, path, activation, ctx) -> Iterator[Any]:
    rng = seeding.generator(ctx.entropy, path, activation, seeding.ACTIVATE)
    return round_robin_items(_child_opener(node, path, activation, ctx), len(node.streams), node.mode, rng)


def _open_mix(node: Mix, path, activation, ctx) -> Iterator[Any]:
    _, counts, running = ctx.mix_record(node, path)
    return mix_items(
        _child_opener(node, path, activation, ctx), node.probabilities, node.n_active, node.rate, node.dist, node.mode,
        node.prune_empty,
        select_rng=seeding.generator(ctx.entropy, path, activation, seeding.SELECT),
        activate_rng=seeding.generator(ctx.entropy, path, activation, seeding.ACTIVATE),
        counts=counts,
        on_start=lambda state: running.__setitem__(slice(None), [state]),
    )


def _open_apply(node: Apply, path, activation, ctx) -> Iterator[Any]:
    child = open_node(node.stream, (*path, 0), (*activation, 0), ctx)
    try:
        if isinstance(child, BlockActivation):
            items, done = block_transforms(child.blocks(), node.transforms)
            yield from run_transforms(items, node.transforms[done:], ctx.entropy, path, activation, first=done)
        else:
            yield from run_transforms(child.iterator(), node.transforms, ctx.entropy, path, activation)
    finally:
        child.close()


def _mix_blocks(node: Mix, path, activation, ctx) -> Iterator[Any]:
    _, counts, running = ctx.mix_record(node, path)
    children = node.streams
    decisions = mix_decisions(
        lambda i, number=None: children[i].open(), node.probabilities, node.n_active, node.rate, node.dist, node.mode,
        node.prune_empty,
        select_rng=seeding.generator(ctx.entropy, path, activation, seeding.SELECT),
        activate_rng=seeding.generator(ctx.entropy, path, activation, seeding.ACTIVATE),
        counts=counts,
        on_start=lambda state: running.__setitem__(slice(None), [state]),
    )
    try:
        yield from materialize(decisions, ctx.schema(node))
    finally:
        decisions.close()


def _chain_blocks(node: Chain, path, activation, ctx) -> Iterator[Any]:
    children, started = node.streams, itertools.count()

    def open_child(i: int) -> Iterator[Any]:
        identity = (*activation, next(started))
        if isinstance(children[i], RowSource):
            return row_blocks(children[i])
        return open_node(children[i], (*path, i), identity, ctx).blocks()

    return chain_blocks(open_child, len(children), node.repeat)


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
    `CHECKPOINT_GROWTH` (about 25 per tenfold growth, so memory grows with
    the logarithm of the run's length), ending with ``counts``: the running
    share of each child is ``history / history.sum(axis=1, keepdims=True)``.
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
        """A matplotlib ``Figure``: one row per mix (see `combinators.plot.plot_stats`); saved to ``path`` if given.

        Needs matplotlib (``pip install "combinators[plot]"``); raises
        `ImportError` naming that extra without it.
        """
        from combinators.plot import plot_stats

        return plot_stats(self, path, **options)


class Run:
    """A running stream: an iterator and a context manager; ``close()`` releases everything.

    Created by `iterate`. ``seed`` is the run's entropy (drawn fresh when
    `iterate` got ``seed=None``, so a run can be replayed), ``stats()`` gives
    per-mix counts and realized vs target proportions.
    """

    def __init__(self, stream: Stream, entropy: int, executor: Executor, max_iter: int | None):
        self.stream, self.seed, self.executor = stream, entropy, executor
        self._session = executor.open()
        self._ctx = _Context(entropy, self._session)
        self._root: Activation | None = open_node(stream, (), (0,), self._ctx)
        self._next: Callable[[], Any] | None = None
        self._max_iter = max_iter
        self.items = 0
        self._checkpoint = 1

    def __iter__(self) -> "Run":
        return self

    def _start(self) -> Callable[[], Any]:
        if self._root is None:
            raise StopIteration
        items: Iterator[Any] = self._root.iterator()
        if self._max_iter is not None:
            items = itertools.islice(items, self._max_iter)
        self._next = items.__next__
        return self._next

    def __next__(self) -> Any:
        try:
            item = (self._next or self._start())()
        except BaseException:
            self.close()
            raise
        self.items += 1
        if self.items >= self._checkpoint:
            self._ctx.record()
            self._checkpoint = max(self.items + 1, int(self.items * CHECKPOINT_GROWTH))
        return item

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

    def executor_stats(self) -> dict[str, int]:
        """The executor session's counters: for `Processes` and `ZMQ`, the messages it dropped
        (``malformed``, ``unjoined``, ``rejected``; see `RemoteSession.stats`); empty in-process.

        >>> from combinators import from_iterable
        >>> with iterate(from_iterable("ab"), seed=0) as run:
        ...     run.executor_stats()
        {}
        """
        return self._session.stats()

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
    max_iter: int | None = None,
) -> Run:
    """Evaluate ``stream``: a `Run`, an iterator over its items that is also a context manager.

    The same ``seed`` gives the same items whatever the executor
    (``"inprocess"``, ``"processes"``, ``"zmq"``, ``"ray"`` or an `Executor` instance);
    ``seed=None`` draws fresh entropy (kept as ``run.seed``). ``max_iter``
    stops after that many items.

    Raises `InvalidArgumentType` if ``stream`` is not a stream.

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
    return Run(stream, seeding.run_entropy(seed), resolve_executor(executor), max_iter)
