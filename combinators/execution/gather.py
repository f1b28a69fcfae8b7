"""Gathering the rows a mix decided into a block: one read and one copy per activation and key.

`gather` writes the rows of one run of decisions (`~combinators.sampling.mix.Decisions`)
into a block at once; `DeferredGather` holds the runs of a block and reads
each activation once for all of them, when the working set retires it or
when the block is handed on. See docs/guide/decisions.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from combinators.sampling.mix import Decisions, ResumedRows, as_arrays

__all__ = ["gather", "DeferredGather"]


def _concatenate(parts: list[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], dict):
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return np.concatenate(parts)


def _unwrap(activation: Any, start: int) -> tuple[Any, int]:
    """The activation under a `ResumedRows`, and ``start`` counted in its rows."""
    if isinstance(activation, ResumedRows):
        return activation.activation, start + activation.offset
    return activation, start


def _read_kept(activation: Any, start: int, kept: np.ndarray) -> Any:
    """Rows ``start + kept`` of an activation (``kept`` ascending): with its ``take``, else run by contiguous run
    (a data-parallel rank reads no row of another's)."""
    activation, start = _unwrap(activation, start)
    take = getattr(activation, "take", None)
    if take is not None:
        return take(kept + start)
    breaks = np.flatnonzero(np.diff(kept) != 1) + 1
    firsts = kept[np.concatenate(([0], breaks))].tolist()
    lasts = kept[np.concatenate((breaks - 1, [len(kept) - 1]))].tolist()
    return _concatenate([activation.rows(start + a, start + b + 1) for a, b in zip(firsts, lasts)])


def gather(decisions: Decisions, out: Any, offset: int, keep: np.ndarray | None = None) -> None:
    """Write the rows of ``decisions`` into ``out[offset : offset + len(picks)]``.

    With ``keep`` (bool, shape ``(len(picks),)``), only the rows it marks are
    read and written (a data-parallel rank's own); the others are left as they
    were, and no activation is asked for them.
    """
    decisions = as_arrays(decisions)
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
    """`gather` of the rows ``keep`` marks only: one read per slot of the rows it holds (ascending), or, where an
    activation offers ``read_runs`` (``from_npy``), `_gather_runs`: one read per run, straight into ``out``."""
    picks, order, counts, first_row, activations = decisions
    starts = np.cumsum(counts) - counts  # where each slot's group starts in the grouped order
    places = np.flatnonzero(keep[order])  # the kept rows' places in the grouped order
    slots = picks[order[places]]
    rows = places - starts[slots]  # each kept row's place in its slot's rows of this run
    positions = order[places] + offset
    bounds = np.searchsorted(slots, np.arange(len(counts) + 1)).tolist()  # slots ascend in the grouped order
    held = np.flatnonzero(np.diff(bounds)).tolist()
    if isinstance(out, np.ndarray) and any(hasattr(_unwrap(activations[s], 0)[0], "read_runs") for s in held):
        _gather_runs(decisions, out, positions, slots, rows, bounds, held)
        return
    for slot in held:
        a, b = bounds[slot], bounds[slot + 1]
        _write(out, positions[a:b], _read_kept(activations[slot], int(first_row[slot]), rows[a:b]))


def _gather_runs(decisions: Decisions, out: np.ndarray, positions: np.ndarray, slots: np.ndarray, rows: np.ndarray,
                 bounds: list[int], held: list[int]) -> None:
    """`_gather_kept` where activations offer ``read_runs``: each reads its runs of contiguous kept rows straight
    into their places in ``out`` (one read per run, the runs of every slot found at once, no copy); any other
    activation its rows as `_read_kept` gives them."""
    activations = decisions.activations
    rows = rows + decisions.first_row[slots]  # each kept row in its activation's rows
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (np.diff(rows) != 1) | (np.diff(slots) != 0)  # where a run of contiguous rows of one slot starts
    at = np.flatnonzero(new)
    run_starts, run_counts = rows[at].tolist(), np.diff(at, append=len(rows)).tolist()
    run_bounds, places = np.searchsorted(at, bounds).tolist(), positions.tolist()
    for slot in held:
        a, b = bounds[slot], bounds[slot + 1]
        activation, shift = _unwrap(activations[slot], 0)
        read_runs = getattr(activation, "read_runs", None)
        if read_runs is None:
            _write(out, positions[a:b], _read_kept(activations[slot], 0, rows[a:b]))
            continue
        r, s = run_bounds[slot], run_bounds[slot + 1]
        read_runs(run_starts[r:s] if not shift else [start + shift for start in run_starts[r:s]], run_counts[r:s],
                  out, places[a:b])


def _write(out: Any, positions: np.ndarray, rows: Any) -> None:
    if isinstance(out, dict):
        for key, column in out.items():
            column[positions] = rows[key]
    else:
        out[positions] = rows


class DeferredGather:
    """The runs of decisions of the block being filled, gathered with one read per activation.

    An activation's rows across consecutive runs are consecutive (each run
    starts where the last one stopped), so the rows it gives the whole block
    are one ``rows(first, first + count)``, written with one copy per key:
    where runs are short (a working set that changes every few rows), this
    makes one read per activation instead of one per activation and run.
    The working set hands an activation it ends to `retire`, which gathers
    its rows before closing it; `flush` gathers the rest before the block is
    handed on. ``done`` (the block stream was closed) makes `retire` only close.

    >>> from combinators.plan.sources import from_arrays
    >>> a, b = from_arrays(np.arange(10, 20)).open(), from_arrays(np.arange(20, 30)).open()
    >>> def run(picks, first_row):
    ...     picks = np.array(picks)
    ...     counts = np.bincount(picks, minlength=2)
    ...     return Decisions(picks, np.argsort(picks, kind="stable"), counts, np.array(first_row), [a, b])
    >>> pending = DeferredGather(np.zeros(6, dtype=np.int64))
    >>> pending.add(run([0, 1, 0], [0, 0]), 0)
    >>> pending.add(run([1, 1, 0], [2, 1]), 3)
    >>> pending.retire(1, b)
    >>> pending.flush()
    >>> pending.out.tolist()
    [10, 20, 11, 21, 22, 12]
    """

    __slots__ = ("out", "held", "done")

    def __init__(self, out: Any = None):
        self.out, self.done = out, False
        self.held: dict[int, list] = {}  # id(activation) -> [activation, first row, rows, [positions, ...]]

    def add(self, run: Decisions, offset: int) -> None:
        """Hold ``run``, whose rows go to ``out[offset : offset + len(run.picks)]``."""
        if run.order is None:
            self._add_listed(run, offset)
            return
        order = run.order + offset if offset else run.order  # a run's own array: its slices can be held
        first_row, start = run.first_row.tolist(), 0
        for slot, end in enumerate(np.cumsum(run.counts).tolist()):
            if end > start:
                self._hold(run.activations[slot], first_row[slot], order[start:end])
                start = end

    def _add_listed(self, run: Decisions, offset: int) -> None:
        """`add` of a short run (lists): its positions grouped by slot in Python."""
        groups: dict[int, list[int]] = {}
        for position, slot in enumerate(run.picks, offset):
            group = groups.get(slot)
            if group is None:
                groups[slot] = [position]
            else:
                group.append(position)
        for slot, positions in groups.items():
            self._hold(run.activations[slot], int(run.first_row[slot]), positions)

    def _hold(self, activation: Any, first: int, positions: Any) -> None:
        """Hold the rows of ``activation`` from row ``first`` (when it is not held yet) for ``positions``: its
        rows in consecutive runs follow one another, so they add up to one read."""
        entry = self.held.get(id(activation))
        if entry is None:
            self.held[id(activation)] = [activation, first, len(positions), [positions]]
        else:
            entry[2] += len(positions)
            entry[3].append(positions)

    def retire(self, slot: int, activation: Any) -> None:
        """Gather the rows the held runs take of ``activation`` (in ``slot``), then close it."""
        try:
            entry = None if self.done else self.held.pop(id(activation), None)
            if entry is not None:
                self._write(entry)
        finally:
            activation.close()

    def flush(self) -> None:
        """Gather the rows of every held run, and hold none."""
        held, self.held = self.held, {}
        for entry in held.values():
            self._write(entry)

    def _write(self, entry: list) -> None:
        activation, first, count, parts = entry
        positions = np.asarray(parts[0]) if len(parts) == 1 else np.concatenate(parts)
        _write(self.out, positions, activation.rows(first, first + count))
