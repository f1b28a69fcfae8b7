"""Where each leaf of a remote session runs: in a worker, or in the consumer when that costs less.

Workers report what each plan's activations cost them (`protocol.COSTS`:
activations, items made, nanoseconds making and moving them); a `Placer` adds
the reports up per plan and per kind of leaf (`leaf_kind`), and tells
`combinators.execution.remote.session.RemoteSession` where the next
activation of a leaf runs (`Placer.runs_inline`, probes included) and whether
a running one moves to the consumer (`Placer.moves_inline`). Where a leaf
runs never changes its items. A block mix's shard sources are placed the same
way (`combinators.execution.placed_rows`: their plans are
``(shipped_rows, (source, rows per block))``, their items blocks of rows, a kind of their own).

`Costs` tells the placer what leaves' items cost instead of the clocks saying it
(``Processes(inline=Costs(...))``): the same rules then place them the same way
on any machine, however loaded.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Iterable, Union

import attrs

from combinators.errors import InvalidArgument, InvalidArgumentType
from combinators.execution.leaf import activate_leaf, leaf_kind, maps_file
from combinators.execution.placed_rows import shipped_rows
from combinators.execution.remote import protocol

__all__ = ["Costs", "Placement", "Placer", "INLINE_RATIO", "INLINE_MIN_ITEMS", "MOVE_MAX_SKIP"]

#: where a leaf's next activation runs (`Placer.runs_inline`): False (started by the session), True (in
#: the consumer), or a probe: in the consumer, timed, the probe called with ``(items, seconds)`` at its end
Placement = Union[bool, Callable[[int, float], None]]

#: a leaf runs in the consumer when its items take less than this many times as long to make (in the source)
#: as to move (starting, packing, sending: what receiving them costs the consumer, again), as its workers measured
INLINE_RATIO = 2.0
#: ... over at least this many of its items
INLINE_MIN_ITEMS = 16
#: a running activation of a leaf that does not seek moves to the consumer only while it has given at most
#: this many items (the consumer makes them again to skip them: cheap, since its leaf was found cheap)
MOVE_MAX_SKIP = 256


@attrs.frozen
class Costs:
    """What a leaf's items cost, told rather than measured: ``per_item(leaf)`` gives ``(making, moving)``,
    the nanoseconds one item of ``leaf`` takes to make and to move (non-negative numbers), or None to
    measure that leaf as usual.

    Given as ``Processes(inline=Costs(...))`` (or ``ZMQ``), it replaces the clocks only: the time
    workers report for a told leaf's items, and the time its probes take in the consumer, become
    its items times these costs. Everything else is as measured: the items and activations workers
    report, the kinds (`leaf_kind`), probes and moves (`Placer.runs_inline`). So a leaf is placed
    as it would be on a machine where its items cost exactly that, the same on any machine however
    loaded: for tests, or for a source whose cost its first items misjudge. ``leaf`` is the stream
    a worker runs: a leaf with its transforms, or a block mix's row source (then an item is a block
    of rows). ``per_item`` is called once per leaf, in the consumer.

    Raises `InvalidArgumentType` when ``per_item`` is not callable, and `InvalidArgument` (from the
    run) when it gives anything but None or two non-negative finite numbers.

    >>> from combinators.plan.sources import stream
    >>> told = Costs(lambda leaf: (100, 2000) if leaf.fn is range else None)
    >>> told.of(stream(range, 3)), told.of(stream(iter, "ab"))
    ((100.0, 2000.0), None)
    """

    per_item: Callable[[Any], tuple[float, float] | None] = attrs.field()

    @per_item.validator
    def _callable(self, attribute: attrs.Attribute, value: Any) -> None:
        if not callable(value):
            msg = f"Costs.per_item must be callable, not {value!r} ({type(value).__name__})"
            raise InvalidArgumentType(msg)

    def of(self, leaf: Any) -> tuple[float, float] | None:
        """``per_item(leaf)``, checked: ``(making, moving)`` in ns per item as floats, or None."""
        told = self.per_item(leaf)
        if told is None:
            return None
        try:
            making, moving = (float(cost) for cost in told)
        except (TypeError, ValueError):
            making = moving = math.nan
        if not (0 <= making < math.inf and 0 <= moving < math.inf):
            msg = f"Costs.per_item must give None or (making, moving): two non-negative ns, not {told!r} for {leaf!r}"
            raise InvalidArgument(msg)
        return making, moving


class Placer:
    """Where a session's leaves run: the costs its workers reported, per plan number and per kind of leaf,
    and the leaves that run in the consumer (see `runs_inline`).

    ``inline`` is the session's ``options.inline``: False runs every activation in a worker; a `Costs`
    is True with the costs it tells in place of those measured.
    """

    def __init__(self, inline: bool | Costs):
        self.enabled = inline is not False
        self.told = inline if isinstance(inline, Costs) else None
        self._per_item: dict[int, tuple[float, float]] = {}  # plan number: ns making, moving an item (`Costs`)
        #: per plan number, what its activations cost in workers: [activations, items, ns making, ns moving];
        #: ``kind_costs`` the same per kind of leaf (`leaf_kind`: same source function and transforms)
        self.costs: dict[int, list[int]] = {}
        self.kind_costs: dict[Any, list[int]] = {}
        self.kinds: dict[int, Any] = {}  # plan number: its leaf's kind (None: not a leaf's plan)
        self.inline: set[int] = set()  # plan numbers that run in the consumer, measured or probed
        self._probed_costs: dict[int, list[float]] = {}  # inline by their kind's costs: [items, seconds] probed
        self.refused: set[int] = set()  # probed too slow: placed by their own costs only
        self.pinned: set[int] = set()  # leaves that map a file (`maps_file`): never in the consumer

    def add_plan(self, number: int, plan: tuple[Callable[..., Iterable[Any]], tuple[Any, ...]]) -> None:
        """Note the kind of plan ``number``'s leaf, when enabled (`_kind`; else None: no leaf runs inline).

        A leaf that maps a file (`maps_file`: ``from_npy(path, mmap_mode="r")``) is pinned to workers: a file
        truncated while mapped kills the process reading it with SIGBUS, which must never be the consumer.
        With `Costs`, what they tell of its leaf (raising `InvalidArgument` for a bad answer) is kept for it.
        """
        if plan[0] is activate_leaf and maps_file(plan[1][0]):
            self.pinned.add(number)
        self.kinds[number] = _kind(plan) if self.enabled and number not in self.pinned else None
        if self.told is not None and plan[0] in (activate_leaf, shipped_rows):
            told = self.told.of(plan[1][0])
            if told is not None:
                self._per_item[number] = told

    def runs_inline(self, number: int) -> Placement:
        """Whether the next activation of plan ``number`` (a leaf's) should run in the consumer.

        With ``options.inline`` (`RemoteSession.runs_inline` asks only then, and counts what runs in the
        consumer), a leaf whose items take its workers less than
        `INLINE_RATIO` times as long to make as to move (over at least
        `INLINE_MIN_ITEMS` of its items, from `protocol.COSTS` reports; making
        on the wall clock, moving in CPU time) is cheaper to run in the consumer
        than to receive: from then
        on, its activations run there (True; counted in ``activations_inline``).
        A leaf not measured yet whose kind (`leaf_kind`: the same source function
        and transforms, other arguments) measured so runs there too, but its
        activations are *probes* (a callable is returned) until they gave
        `INLINE_MIN_ITEMS` items: the consumer times the source (`probed_leaf`)
        and calls the probe with ``(items, seconds)``; a leaf that took
        `INLINE_RATIO` times its kind's moving cost or more goes back to
        workers. Otherwise False: start it here. Where a leaf runs never changes
        its items.
        """
        if number in self.pinned:
            return False
        if self.moves_inline(number):
            return True
        if _cheap(self.costs.get(number)) is False or number in self.refused:  # measured (or probed): not cheap
            return False
        kind = self.kind_costs.get(self.kinds.get(number))
        if not _cheap(kind):
            return False
        return functools.partial(self._probed, number, kind)  # each activation a probe, until they tell

    def moves_inline(self, number: int) -> bool:
        """Whether activations of plan ``number`` run in the consumer, running ones included: its own costs (in
        workers) or its probes said so (see `runs_inline`)."""
        if number not in self.inline:
            if number in self.pinned or not (self.enabled and _cheap(self.costs.get(number))):
                return False
            self.inline.add(number)
        return True

    def _probed(self, number: int, kind: list[int], items: int, seconds: float) -> None:
        """The outcome of a probe (see `runs_inline`): once its probes gave enough items, the leaf stays in
        the consumer or goes back to workers (a probe closed before its first item adds nothing)."""
        if number in self.inline or number in self.refused:
            return  # told by an earlier probe
        if number in self._per_item:
            seconds = items * self._per_item[number][0] / 1e9
        probed = self._probed_costs.setdefault(number, [0, 0.0])
        probed[0] += items
        probed[1] += seconds
        items, seconds = probed
        if items < INLINE_MIN_ITEMS:
            return  # too few to tell: its next activation probes again
        if seconds * 1e9 * kind[1] < INLINE_RATIO * kind[3] * items:  # making per item < ratio x moving per item
            self.inline.add(number)
        else:
            self.refused.add(number)

    def add_costs(self, count: int, table: bytes) -> bool:
        """Add a worker's COSTS rows to the session's; False (nothing added) if the table is not ``count`` rows,
        or names a plan this session never registered (`add_plan`).

        So what a member sends here is bounded: at most one row per plan of the session, kept per plan (a
        flood of rows for made-up plan numbers used to grow the consumer without bound).
        """
        if count > len(self.kinds) or len(table) != count * protocol.COST_ROW.size:
            return False
        rows = list(protocol.COST_ROW.iter_unpack(table))
        if not all(row[0] in self.kinds for row in rows):
            return False
        for number, *figures in rows:
            if number in self._per_item:  # told: the items reported, at the costs told
                figures[2:] = (round(figures[1] * cost) for cost in self._per_item[number])
            totals = [self.costs.setdefault(number, [0, 0, 0, 0])]
            kind = self.kinds.get(number)
            if kind is not None:
                totals.append(self.kind_costs.setdefault(kind, [0, 0, 0, 0]))
            for costs in totals:
                for index, figure in enumerate(figures):
                    costs[index] += figure
        return True


def _cheap(costs: list[Any] | None) -> bool | None:
    """Whether ``[activations, items, ns making, ns moving]`` say items cost less than `INLINE_RATIO` times as
    much to make as to move; None when they cover fewer than `INLINE_MIN_ITEMS` items (too few to tell)."""
    if costs is None or costs[1] < INLINE_MIN_ITEMS:
        return None
    return costs[2] < INLINE_RATIO * costs[3]


def _kind(plan: tuple[Callable[..., Iterable[Any]], tuple[Any, ...]]) -> Any:
    """The kind of a leaf's plan (`leaf_kind`), or of a block mix's row source (``("rows", its kind)``: its items
    are blocks, not rows), or None: neither, or a kind that cannot be told."""
    if plan[0] is shipped_rows:
        return ("rows", leaf_kind(plan[1][0]))
    if plan[0] is not activate_leaf:
        return None
    try:
        return leaf_kind(plan[1][0])
    except Exception:  # an unusual transform: this leaf is only placed by its own costs
        return None
