"""The mux algorithms, as generator functions of Generators (no I/O of their own).

Each takes ``open_child(i)`` (the mixes: ``open_child(i, limit, number=None,
skip=0)``), which starts a new activation of child ``i`` and returns an
`~combinators.execution.base.Activation`, and the Generators it draws from.
A mix asks at most ``limit`` items of an activation (None: no limit); the
k-th call without ``number`` starts the activation numbered k (its identity,
which fixes its seeds), and ``open_child(i, limit, number=k, skip=s)`` starts
activation k of child ``i`` afresh, with the same items, and returns those
after its first ``s`` (how the ending modes of a mix resume a stream after
its budget without holding it open; a parallel executor skips them in the
worker). Children are closed as soon as they leave the working set and
when the generator is closed. These functions are the single definition of
what a mux does; every executor runs them in the consumer.

A mix's working set (budgets, the slot map, entries drawn ahead) is the
state machine of `combinators.sampling.working_set`; the loops here drive it.
"""

from __future__ import annotations

import bisect
from operator import length_hint
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

from combinators.sampling.slot_map import _PYTHON_CHUNK, _SlotMap
from combinators.sampling.working_set import _BLOCK, _MAX_CHUNK, _MIN_CHUNK, _WorkingSet

__all__ = [
    "as_arrays",
    "chain_items", "ChainCursor", "round_robin_items", "RoundRobinCursor", "mix_items", "mix_decisions", "Decisions",
    "ResumedRows",
]


class ChainCursor:
    """Where a chain is: its pass, the child running, its activation and the items it gave."""

    __slots__ = ("index", "activation", "received", "produced")

    def __init__(self, index: int = 0, activation: Any = None, received: int = 0, produced: bool = False):
        self.index, self.activation, self.received, self.produced = index, activation, received, produced


def chain_items(
    open_child: Callable[[int], Any], n_children: int, cycle: bool, cursor: ChainCursor | None = None
) -> Iterator[Any]:
    """Each child to exhaustion in order; with ``cycle``, again until a pass yields nothing.

    ``cursor`` is kept current (a run state reads it) and, given, is where
    the chain starts (a resumed run).

    Source: pescador's ChainMux (modes "exhaustive" and "cycle").
    """
    cursor = cursor if cursor is not None else ChainCursor()
    while True:
        while cursor.index < n_children:  # past a child's end, the cursor is at the next (a state resumes there)
            if cursor.activation is None:
                cursor.activation, cursor.received = open_child(cursor.index), 0
            activation = cursor.activation
            try:
                for item in activation.iterator():
                    cursor.produced = True
                    cursor.received += 1
                    yield item
            finally:
                activation.close()
            cursor.activation, cursor.index = None, cursor.index + 1
        if not (cycle and cursor.produced):
            return
        cursor.index, cursor.produced = 0, False


class RoundRobinCursor:
    """Where a round-robin is: the pass's order, its activations (None once exhausted), items each gave, the turn."""

    __slots__ = ("order", "activations", "received", "turn", "produced")

    def __init__(self, order: list[int], activations: list[Any] | None = None, received: list[int] | None = None,
                 turn: int = 0, produced: bool = False):
        self.order, self.activations, self.received = order, activations, received
        self.turn, self.produced = turn, produced


def round_robin_items(
    open_child: Callable[[int], Any], n_children: int, mode: str, rng: np.random.Generator,
    cursor: RoundRobinCursor | None = None,
) -> Iterator[Any]:
    """One item from each live child in turn (pescador's RoundRobinMux).

    ``mode`` is "exhaustive" (one pass), "cycle" (restart all in the same
    order) or "permuted_cycle" (restart in a new order drawn from ``rng``;
    the first pass keeps the given order). A pass yielding nothing ends it.
    ``cursor`` is kept current (a run state reads it) and, given, is where
    the round-robin starts (a resumed run).
    """
    cursor = cursor if cursor is not None else RoundRobinCursor(list(range(n_children)))
    while True:
        if cursor.activations is None:
            cursor.activations = [open_child(index) for index in cursor.order]
            cursor.received, cursor.turn, cursor.produced = [0] * len(cursor.order), 0, False
        activations, received = cursor.activations, cursor.received
        nexts = [None if a is None else a.next_function() for a in activations]
        try:
            while any(nexts):
                for turn in range(cursor.turn, len(nexts)):
                    next_item = nexts[turn]
                    if next_item is None:
                        continue
                    try:
                        item = next_item()
                    except StopIteration:
                        nexts[turn] = None
                        activations[turn].close()
                        activations[turn] = None
                        continue
                    cursor.produced = True
                    received[turn] += 1
                    cursor.turn = turn + 1
                    yield item
                cursor.turn = 0
        finally:
            for activation in activations:
                if activation is not None:
                    activation.close()
        cursor.activations = None
        if mode == "exhaustive" or not cursor.produced:
            cursor.activations = []  # ended: a pass with nothing live, so that a resumed run ends too
            return
        if mode == "permuted_cycle":
            cursor.order = rng.permutation(n_children).tolist()


_NOTHING = iter(())


class ResumedRows:
    """A suspended random-access activation resumed by seeking: its rows after the first ``offset``.

    >>> class Rows:
    ...     def __len__(self): return 5
    ...     def rows(self, start, stop): return list(range(start, stop))
    ...     def close(self): pass
    >>> resumed = ResumedRows(Rows(), 3)
    >>> len(resumed), resumed.rows(0, 2)
    (2, [3, 4])
    """

    __slots__ = ("activation", "offset")

    def __init__(self, activation: Any, offset: int):
        self.activation, self.offset = activation, offset

    def __len__(self) -> int:
        return max(0, len(self.activation) - self.offset)

    def rows(self, start: int, stop: int) -> Any:
        return self.activation.rows(start + self.offset, stop + self.offset)

    def close(self) -> None:
        self.activation.close()


def mix_items(
    open_child: Callable[[int], Any],
    weights: np.ndarray,
    n_active: int | None,
    rate: float | None,
    dist: str,
    mode: str,
    prune_empty: bool,
    select_rng: np.random.Generator,
    activate_rng: np.random.Generator,
    counts: list[int] | None = None,
    on_start: Callable[[_WorkingSet], None] = lambda state: None,
    resume: dict[str, Any] | None = None,
    segments: tuple[tuple[int, np.ndarray], ...] | None = None,
) -> Iterator[Any]:
    """Sample items from children by weight, over a working set (see `combinators.mix`).

    Slots are picked by inverse-CDF lookup of uniforms drawn from
    ``select_rng`` in blocks of 4096; when the working set changes, the
    remaining uniforms are mapped again, so the items depend only on the
    seed. How many uniforms are mapped at once adapts to how often the
    working set changes (it affects speed, never the items).
    Activation choices and budgets draw from ``activate_rng``, together, in
    entry order: a working set keeps `~combinators.sampling.working_set.AHEAD`
    entries drawn ahead of need (except ``"single_active"``), each submitted
    at once with its budget as its limit, so that executors start activations
    before their slots empty. ``resume`` (a
    `~combinators.sampling.working_set._WorkingSet.state`) starts the mix
    where that state was taken. ``segments`` (`~combinators.plan.mixes.Mix.segments`)
    puts weights on a schedule: the picks of a run never cross the start of
    a segment, where the working set takes its weights (``weights`` are the
    first segment's).
    ``counts[i]`` accumulates the items taken from child ``i`` by activations
    that ended; ``on_start(state)`` receives the working set, whose
    ``live_counts()`` includes the running ones.

    Source: pescador 3's StochasticMux (``n_active`` given) and ShuffledMux
    (``n_active=None``), with activation chosen by weight.
    """
    counts = counts if counts is not None else [0] * len(weights)
    state = _WorkingSet(open_child, weights, n_active, rate, dist, mode, prune_empty, activate_rng, counts,
                        segments=segments)
    on_start(state)
    scheduled = segments is not None
    next_item, taken, limit, empty_run = state.next_item, state.taken, state.limit, state.empty_run
    try:
        if resume is None:
            state.fill()
            uniforms, used, chunk = np.empty(0), 0, _MAX_CHUNK
        else:
            (uniforms, used), chunk = state.restore(resume, select_rng), _MIN_CHUNK
            if not state.settle():
                return
        slots, carried = _SlotMap(uniforms), None  # carried: a lazy run's uniforms left after a budget was spent
        while True:
            if carried is None:
                if used >= len(uniforms):
                    state.uniforms_from = select_rng.bit_generator.state
                    uniforms, used = select_rng.random(_BLOCK), 0
                    slots.uniforms = uniforms
                left = state.to_boundary() if scheduled else chunk  # a segment of the schedule may start
            if state.changed:
                state.changed = False
                if not slots.weights(state.slot_weight):
                    return
            if carried is not None:  # the rest of the run, within its block and segment, over the new weights
                picks, carried = slots.mapped(carried), None
            else:
                stop = min(used + min(chunk, left), len(uniforms))
                if stop - used <= _PYTHON_CHUNK:  # working-set events are near: map each pick when it is taken
                    picks, remaining = slots.lazy_picks(used, stop)
                else:
                    picks = remaining = iter(slots.picks(used, stop))
                used = stop  # minus what is left of picks when the working set changes
                state.loop = (used, remaining)
                chunk = min(2 * chunk, _MAX_CHUNK)
            for slot in picks:
                try:
                    item = next_item[slot]()
                except StopIteration:
                    # the pick goes to whatever takes the slot's place; a pick that met
                    # an empty activation is spent instead, so empty streams cannot spin
                    retry = taken[slot] > state.start_at[slot]
                    used -= length_hint(remaining) + retry
                    chunk = _PYTHON_CHUNK
                    if not state.end(slot, exhausted=True):
                        return
                    break
                taken[slot] += 1
                if empty_run:
                    empty_run.clear()
                yield item
                if taken[slot] == limit[slot]:
                    chunk = _PYTHON_CHUNK  # mapped as taken: a chunk cut short by the next event costs nothing
                    if not state.end(slot, exhausted=False):
                        return
                    if picks is remaining or not length_hint(remaining):
                        used -= length_hint(remaining)
                    else:  # a lazy run goes on (its uniforms are taken in order): `used` and `state.loop` stand
                        carried = remaining
                    break
    finally:
        state.close()


class Decisions(NamedTuple):
    """The decisions of a run of consecutive items of a mix over random-access children.

    ``picks[j]`` is the slot of item ``j`` (int, shape ``(n,)``); ``order``
    lists the positions grouped by slot, each group ascending (a stable
    argsort of ``picks``). A short run (at most `_PYTHON_CHUNK` picks) comes
    as lists: ``picks`` and ``counts`` are lists of ints and ``order`` is
    None (`as_arrays` gives the arrays). ``counts[s]`` is how many items slot ``s`` gives
    and ``first_row[s]`` the row of its activation where they start (an
    activation's rows are taken in order, so slot ``s`` gives rows
    ``first_row[s] : first_row[s] + counts[s]``). ``activations[s]`` is the
    activation in slot ``s``; it stays open until the next decisions are
    asked for, so a materializer reads its rows at the yield.
    """

    picks: np.ndarray
    order: np.ndarray
    counts: np.ndarray
    first_row: np.ndarray
    activations: list[Any]


def as_arrays(run: Decisions) -> Decisions:
    """``run`` with ``picks``, ``order`` and ``counts`` as arrays (a short run comes as lists)."""
    if run.order is not None:
        return run
    picks = np.array(run.picks, dtype=np.intp)
    return run._replace(picks=picks, order=np.argsort(picks, kind="stable"), counts=np.array(run.counts))


def _next_event(state: _WorkingSet, picks: np.ndarray) -> tuple[int, int, bool]:
    """The first working-set event among ``picks``: ``(position, slot, budget_spent)``.

    A slot's event is the pick that spends its budget (that pick yields an
    item) or the pick that meets its end (that pick yields nothing); position
    ``len(picks)`` means no event (slot -1).
    """
    budget = state.limit - state.taken
    rows_left = state.rows - (state.taken - state.start_at)
    threshold = np.where(budget <= rows_left, budget, rows_left + 1)
    counts = np.bincount(picks, minlength=len(threshold))
    hit = np.flatnonzero((counts >= threshold) & (counts > 0))
    if not len(hit):
        return len(picks), -1, False
    order = np.argsort(picks, kind="stable")
    firsts = np.cumsum(counts) - counts
    position = int(order[firsts[hit] + threshold[hit] - 1].min())
    slot = int(picks[position])
    return position, slot, bool(budget[slot] <= rows_left[slot])


def _listed_run(state: _WorkingSet, slots: _SlotMap, start: int, stop: int) -> tuple[Decisions, int, int, bool]:
    """A short run of decisions as lists, from uniforms ``start:stop`` of the block, and its event.

    Each uniform is mapped to its slot (`bisect`, the float operations of
    `_SlotMap.mapped`, written out: 3%-4% faster than iterating its map here)
    and counted as it is taken, up to the first working-set event (a slot's
    pick that spends its budget, or meets its end: `_next_event`); none is
    mapped past it. Returns the run (``picks`` and ``counts`` as lists,
    ``order`` None, ``first_row`` an array), then ``(position, slot, budget_spent)`` of the event as
    `_next_event` gives it (position ``stop - start``, slot -1: no event). The
    run holds the picks before the event, and the event's own pick when it spends a budget.
    """
    received = state.taken - state.start_at
    budget, rows_left = state.limit - state.taken, state.rows - received
    # picks each slot may take before its event: its budget, or one more than its rows (the pick that meets its end)
    reach = np.minimum(budget, rows_left + 1).tolist()
    counts, picks = [0] * len(reach), []
    cumulative, scale, right = slots.cumulative, slots.scale, bisect.bisect_right
    for u in slots.uniforms[start:stop].tolist():
        slot = right(cumulative, u * scale)
        picks.append(slot)
        counts[slot] += 1
        if counts[slot] == reach[slot]:
            spent = bool(budget[slot] <= rows_left[slot])
            if not spent:  # the pick that meets an end yields nothing
                picks.pop()
                counts[slot] -= 1
            return Decisions(picks, None, counts, received, state.activation), len(picks) - spent, slot, spent
    return Decisions(picks, None, counts, received, state.activation), len(picks), -1, False


def _array_run(picks: np.ndarray, n_slots: int, state: _WorkingSet) -> Decisions:
    return Decisions(picks, np.argsort(picks, kind="stable"), np.bincount(picks, minlength=n_slots),
                     state.taken - state.start_at, state.activation)


def _pull(state: _WorkingSet, picks: np.ndarray) -> None:
    """Let the activations that learn their rows by reading them (``extend(low, high)``) read as many as
    ``picks`` may take of them (up to their budget), so that `_next_event` sees their ends exactly."""
    counts = np.bincount(picks, minlength=len(state.stream))
    received = state.taken - state.start_at
    need = received + np.minimum(counts, state.limit - state.taken)
    for slot in np.flatnonzero(need > state.rows).tolist():
        extend = getattr(state.activation[slot], "extend", None)
        if extend is not None:
            extend(int(received[slot]), int(need[slot]))
            state.rows[slot] = len(state.activation[slot])


def mix_decisions(
    open_child: Callable[[int], Any],
    weights: np.ndarray,
    n_active: int | None,
    rate: float | None,
    dist: str,
    mode: str,
    prune_empty: bool,
    select_rng: np.random.Generator,
    activate_rng: np.random.Generator,
    counts: list[int] | None = None,
    on_start: Callable[[_WorkingSet], None] = lambda state: None,
    max_items: int = _BLOCK,
    resume: dict[str, Any] | None = None,
    segments: tuple[tuple[int, np.ndarray], ...] | None = None,
    retire: Callable[[int, Any], None] | None = None,
) -> Iterator[Decisions]:
    """The decisions of `mix_items`, in runs of items, for children with random access.

    ``open_child(i, limit, number=None, skip=0)`` returns an activation
    whose ``len()`` is its number of rows (after the first ``skip``, see
    `ResumedRows`); nothing is pulled from it. If ``open_child.pulls`` is
    true, an activation with an ``extend(low, high)`` method knows only the
    rows it has read: it is asked to read those the next picks may take
    (``len()`` then counts them, and is short of ``high`` only at its end). The items are exactly those of
    `mix_items` over activations yielding those rows in order, for the same
    Generators: the same uniforms are mapped to slots over the same weights,
    and the working-set events (a budget spent, an end met) happen at the same
    items, handled by the same `~combinators.sampling.working_set._WorkingSet`.
    Between two events, the picks of up to ``max_items`` items are one
    ``searchsorted``; an event is found where a slot's count of picks reaches
    its budget left, or one more than its rows left (the pick that meets its
    end). While a run is yielded and not yet applied,
    `~combinators.sampling.working_set._WorkingSet.snapshot` is the state
    before it; ``resume`` (from
    `~combinators.sampling.working_set._WorkingSet.snapshot_state`) starts
    there again. ``retire(slot, activation)``, given, ends an activation
    instead of its ``close()`` (a materializer that gathers rows late reads
    them first), the live ones included when the decisions end.

    >>> rng = lambda k: np.random.default_rng(k)
    >>> class Rows:
    ...     def __init__(self, n): self.n = n
    ...     def __len__(self): return self.n
    ...     def close(self): pass
    >>> runs = mix_decisions(lambda i, limit: Rows(3), np.array([0.5, 0.5]), None, None, "binomial",
    ...                      "exhaustive", True, rng(0), rng(1))
    >>> [(d.picks.tolist(), d.first_row.tolist()) for d in runs]
    [([1, 0, 0, 0, 1, 1], [0, 0])]
    """
    counts = counts if counts is not None else [0] * len(weights)
    state = _WorkingSet(open_child, weights, n_active, rate, dist, mode, prune_empty, activate_rng, counts, True,
                        segments)
    if retire is not None:
        state.retire = retire
    on_start(state)
    n_slots, pulls = len(state.stream), getattr(open_child, "pulls", False)
    # picks as the smallest unsigned type: numpy's stable argsort of 8- and 16-bit integers is a radix sort
    small = np.uint8 if n_slots <= 1 << 8 else np.uint16 if n_slots <= 1 << 16 else np.intp
    scheduled = segments is not None
    try:
        if resume is None:
            state.fill()
            uniforms, used = np.empty(0), 0
        else:
            uniforms, used = state.restore(resume, select_rng)
        chunk, slots = max_items, _SlotMap(uniforms)
        while True:
            if used >= len(uniforms):
                state.uniforms_from = select_rng.bit_generator.state
                uniforms, used = select_rng.random(_BLOCK), 0
                slots.uniforms = uniforms
            left = state.to_boundary() if scheduled else chunk  # a segment of the schedule may start
            if state.changed:
                state.changed = False
                if not slots.weights(state.slot_weight.tolist()):
                    return
            n = min(chunk, left)
            listed = n <= _PYTHON_CHUNK and not pulls  # a short run: bisect, count and group in Python
            if listed:
                run, cut, slot, budget_spent = _listed_run(state, slots, used, used + n)
                event = slot >= 0
            else:
                picks = slots.array_picks(used, used + n).astype(small, copy=False)
                if pulls:
                    _pull(state, picks)
                cut, slot, budget_spent = _next_event(state, picks)
                event = cut < len(picks)
            if event and budget_spent:
                cut += 1  # the pick that spends a budget yields its item first
            if cut:
                if not listed:
                    run = _array_run(picks[:cut], n_slots, state)
                state.loop = (used, _NOTHING)  # a snapshot here is the state before this run
                yield run
                if listed:  # the slots it picked, one by one: cheaper than an array made of the list
                    taken, counts = state.taken, run.counts
                    for held in set(run.picks):
                        taken[held] += counts[held]
                else:
                    state.taken += run.counts
                state.empty_run.clear()
            if not event:
                used += cut
                chunk = min(2 * chunk, max_items)
                continue
            # a pick that met an end goes to the replacement if the activation gave items
            used += cut + (not budget_spent and state.taken[slot] == state.start_at[slot])
            chunk = min(max(_MIN_CHUNK, 2 * cut), max_items)  # about twice the run that ended here
            if not state.end(slot, exhausted=not budget_spent):
                return
    finally:
        state.close()
