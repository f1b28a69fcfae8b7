"""What a run's mixes yielded: `MixStats` per mix node, `Stats` for the run (drawn by `combinators.execution.plot`).

The counts behind them are kept by the interpreter's context
(`combinators.execution.interpreter`), checkpointed as `CHECKPOINT_GROWTH`
and `HISTORY_VALUES` say.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from combinators.plan.mixes import Mix

__all__ = ["MixStats", "Stats"]

#: the running share is recorded each time the run's item count grows by this factor
CHECKPOINT_GROWTH = 1.1
#: counts a mix's history keeps at most (checkpoints x children, but at least 8 checkpoints): when
#: it is full, the checkpoint closest to its neighbours is dropped, so memory does not grow with the
#: number of sources
HISTORY_VALUES = 4096


def _thin(history: list[np.ndarray]) -> None:
    """Drop the inner checkpoint closest to its neighbours on a log scale (keeps the spread of a log plot).

    >>> history = [np.array([n]) for n in (1, 10, 11, 100, 1000)]
    >>> _thin(history); [int(h[0]) for h in history]
    [1, 10, 100, 1000]
    """
    totals = [int(counts.sum()) for counts in history]
    gaps = [totals[i + 1] / max(1, totals[i - 1]) for i in range(1, len(totals) - 1)]
    del history[1 + gaps.index(min(gaps))]


@attrs.frozen
class MixStats:
    """What one mix node yielded in a run: counts per child, realized vs target proportions.

    ``counts``, ``realized`` and ``target`` have shape ``(n_children,)``;
    ``realized`` is ``counts / counts.sum()`` (NaN before any item).
    ``counts`` are the items the mix yielded, over all its activations: those
    its consumer received, not those decided ahead (a mix on the block path
    decides a block of rows at a time; the rows of a block not yet handed
    out, or never handed out because the parent closed it, do not count). A mix
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
    ``segments`` gives, for weights on a schedule, each segment's target and counts.
    """

    path: tuple[int, ...]
    node: Mix
    counts: np.ndarray
    target: np.ndarray
    history: np.ndarray = attrs.field(default=None, eq=False)
    segment_starts: tuple = attrs.field(default=(), eq=False)

    def __attrs_post_init__(self) -> None:
        past = [] if self.history is None else list(self.history)
        if past and past[-1].sum() == self.counts.sum():
            past.pop()  # the last checkpoint is the final count
        object.__setattr__(self, "history", np.array([*past, self.counts], dtype=np.int64).reshape(-1, len(self.counts)))

    @property
    def segments(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """For weights on a schedule: ``(start, target, counts)`` of each segment the mix has reached.

        ``target`` (float64) and ``counts`` (int64, the items of that segment)
        have shape ``(n_children,)``. Counted in the mix's running activation
        (a resumed run counts its segment from where it resumed). Empty
        without a schedule.

        >>> from combinators import from_iterable, iterate, mix
        >>> from combinators.plan.schedule import schedule
        >>> plan = mix(from_iterable("a").cycle(), from_iterable("b").cycle(), weights=schedule({0: (1, 1), 6: (1, 3)}))
        >>> with iterate(plan, seed=0, max_iter=10) as run:
        ...     items = list(run)
        ...     [(start, t.tolist(), int(n.sum())) for start, t, n in run.stats()[0].segments]
        [(0, [0.5, 0.5], 6), (6, [0.25, 0.75], 4)]
        """
        if not self.segment_starts:
            return []
        targets = dict((start, p) for start, p in self.node.segments)
        # a segment shows once one of its items is counted: the block path decides rows ahead of the
        # consumer, and its working set may have crossed boundaries the consumer has not reached
        received = int(self.counts.sum())
        starts = self.segment_starts[:1] + tuple(s for s in self.segment_starts[1:] if sum(s[1]) < received)
        ends = [np.asarray(c, dtype=np.int64) for _, c in starts[1:]] + [self.counts]
        return [(start, targets[start], end - np.asarray(begin, dtype=np.int64))
                for (start, begin), end in zip(starts, ends)]

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

    def summary(self) -> str:
        """One line: the items, the children, and the child whose realized share is farthest from its target.

        >>> import combinators as c
        >>> plan = c.mix(c.from_iterable("a" * 90), c.from_iterable("b" * 90), (3, 1), names=["a", "b"])
        >>> with c.iterate(plan, seed=0, max_iter=20) as run:
        ...     items = list(run)
        ...     print(run.stats()[0].summary())
        mix at root: 20 items over 2 children; worst deviation 0.1500 ('a': realized 0.6000, target 0.7500)
        """
        total = int(self.counts.sum())
        head = f"{self.label}: {total} items over {len(self.counts)} children"
        if not total:
            return head
        deviation = np.abs(self.realized - self.target)
        worst = int(np.argmax(deviation))
        return (f"{head}; worst deviation {deviation[worst]:.4f} ({self.names[worst]!r}: realized "
                f"{self.realized[worst]:.4f}, target {self.target[worst]:.4f})")

    def __str__(self) -> str:
        rows = [f"{self.label}: {int(self.counts.sum())} items"]
        width = max(map(len, self.names))
        for label, c, r, t in zip(self.names, self.counts, self.realized, self.target):
            rows.append(f"  {label:<{width}}  {int(c):>8} items  realized {r:.4f}  target {t:.4f}")
        for start, target, counts in self.segments:
            shares = " ".join(f"{t:.4f}" for t in target)
            rows.append(f"  segment from item {start}: {int(counts.sum())} items {counts.tolist()}, target {shares}")
        return "\n".join(rows)


class Stats(list):
    """The `MixStats` of a run's mixes, in path order: a list, with a picture.

    ``str(stats)`` (what ``print`` shows) is a summary, a line per mix
    (`MixStats.summary`: its worst deviation from the target);
    ``stats.table()`` is every mix's table, a line per child;
    ``stats.plot()`` draws, per mix, realized against target proportions and
    each child's running share.

    >>> import combinators as c
    >>> plan = c.mix(c.mix(c.from_iterable("ab"), c.from_iterable("c")).named("inner"), c.from_iterable("d"))
    >>> with c.iterate(plan, seed=0, max_iter=100) as run:
    ...     items = list(run)
    ...     stats = run.stats()
    >>> print(stats)
    mix at root: 100 items over 2 children; worst deviation 0.0500 ('child 1': realized 0.5500, target 0.5000)
    mix 'inner' at (0,): 45 items over 2 children; worst deviation 0.0778 ('child 1': realized 0.4222, target 0.5000)
    2 mixes; stats.table() shows every child
    >>> len(stats.table().splitlines())
    6
    """

    def __str__(self) -> str:
        mixes = f"{len(self)} mix" if len(self) == 1 else f"{len(self)} mixes"
        return "\n".join([*(mix.summary() for mix in self), f"{mixes}; stats.table() shows every child"])

    def table(self) -> str:
        """Every mix's table: a line per child with its items, realized and target shares."""
        return "\n".join(map(str, self))

    def plot(self, path: str | None = None, **options: Any) -> Any:
        """A matplotlib ``Figure``: one row per mix (see `combinators.execution.plot.plot_stats`); saved to ``path`` if given.

        Needs matplotlib (``pip install "combinators[plot]"``); raises
        `ImportError` naming that extra without it.
        """
        from combinators.execution.plot import plot_stats

        return plot_stats(self, path, **options)
