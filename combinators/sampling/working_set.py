"""A mix's working set: budgets, entries drawn ahead, and the state machine over them.

Integer work on numpy Generators, no I/O: `_WorkingSet` holds which stream
each slot holds, what is left of each activation's budget, the pool streams
are drawn from and the queue of entries drawn ahead;
`combinators.sampling.slot_map._SlotMap` maps uniforms to slots by weight. The pick loops that drive them are
`combinators.sampling.mix.mix_items` and `combinators.sampling.mix.mix_decisions`.
"""

from __future__ import annotations

import array
import bisect
import collections
import contextlib
import math
from operator import length_hint
from typing import Any, Callable, NamedTuple

import numpy as np

from combinators.plan.mixes import ENDING_MODES
from combinators.sampling.slot_map import _BELOW_ONE

__all__ = ["draw_budget", "expected_shares", "UNLIMITED", "AHEAD", "UNDRAWN_SHARE"]


#: the budget of an activation that runs until exhausted
UNLIMITED = 1 << 62
#: uniforms drawn at once, and bounds on how many are mapped to slots at once
_BLOCK, _MIN_CHUNK, _MAX_CHUNK = 4096, 16, 1024


def draw_budget(rng: np.random.Generator, rate: float | None, dist: str, share: float) -> int:
    """The number of items an activation may yield (pescador 3's ``dist``).

    ``share`` is the stream's expected share of the working set
    (`expected_shares`); it only matters for ``"binomial"``, where the budget is
    ``1 + Binomial((rate - 1) / (1 - share), 1 - share)`` so that a stream is
    replaced every ``rate / share`` items on average; at ``share == 1`` it
    falls back to ``1 + Poisson(rate - 1)``.

    >>> draw_budget(np.random.default_rng(0), 4, "constant", 0.5)
    4
    >>> draw_budget(np.random.default_rng(0), None, "binomial", 0.5) == UNLIMITED
    True
    """
    fixed = _fixed_budget(rate, dist)
    if fixed is not None:
        return fixed
    miss = _miss(dist, share)
    return _budget(rng, rate, miss, _trials(rate, miss))


def _fixed_budget(rate: float | None, dist: str) -> int | None:
    """The budget of every activation when budgets draw nothing (no ``rate``, one too large to draw, or
    ``"constant"``); None when each activation's is drawn."""
    if rate is None or rate >= UNLIMITED:  # numpy's poisson refuses lam > ~9e18
        return UNLIMITED
    if dist == "constant":
        return max(1, math.ceil(rate))
    return None


def _miss(dist: str, share: float) -> float:
    """A stream's ``1 - share`` for a binomial budget, or 0.0 for ``1 + Poisson(rate - 1)`` (a working set works
    it out once per stream: `_budget` is all that is left to each activation)."""
    return 1.0 - share if dist == "binomial" and share < 1 else 0.0


def _trials(rate: float, miss: float) -> int:
    """The trials of a binomial budget for a stream of `_miss` ``miss`` (0 when its budget is a Poisson one)."""
    return min(int((rate - 1) / miss + 0.5), UNLIMITED) if miss > 0 else 0


def _budget(rng: np.random.Generator, rate: float, miss: float, trials: int) -> int:
    """A budget drawn from ``rng`` for a stream of `_miss` ``miss`` and `_trials` ``trials``."""
    if miss > 0:
        return 1 + int(rng.binomial(trials, miss))
    return 1 + int(rng.poisson(rate - 1))


def _close(slot: int, activation: Any) -> None:
    activation.close()


def _true_indices(flags: list[bool]) -> list[int]:
    """Where ``flags`` is true (``any`` first: usually nothing is, and it is the fast check)."""
    return [i for i, flag in enumerate(flags) if flag] if any(flags) else []

def _suspension_state(opened: int, suspended: dict[int, tuple[int, int]], earlier: dict[int, int]) -> dict[str, Any]:
    """The ending modes' suspensions as JSON values: activations opened, suspended streams, items of earlier turns."""
    return {"opened": opened, "suspended": [[i, *suspended[i]] for i in sorted(suspended)],
            "earlier": [[i, earlier[i]] for i in sorted(earlier)]}


#: a stream whose weight is under this share of the live streams' total is practically never drawn
#: (under 2**-48: the float picks' resolution, with the 2**-50 that `_BELOW_ONE` shaves): when every
#: other stream was found empty since the last item, a mix that draws streams again ends (`_WorkingSet.end`)
UNDRAWN_SHARE = 2.0**-48



#: entries a working set draws ahead of need (its queue of drawn-ahead entries); a fixed
#: number, so that the items never depend on the executor
AHEAD = 8


def expected_shares(weights: np.ndarray, n_slots: int) -> np.ndarray:
    """Each stream's expected share of a working set of ``n_slots``: ``w_i / (w_i + (n_slots - 1) * mean(w))``.

    The share ``p`` of `draw_budget` for ``dist="binomial"``: a fixed number
    per stream, so a budget can be drawn when the entry is drawn, before the
    slot it will fill has emptied (see docs/guide/decisions.md, section 1).

    >>> expected_shares(np.array([1.0, 1.0, 2.0]), 2).round(3).tolist()
    [0.429, 0.429, 0.6]
    >>> expected_shares(np.array([1.0, 3.0]), 1).tolist()
    [1.0, 1.0]
    """
    others = (n_slots - 1) * float(np.mean(weights))
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = weights / (weights + others)
    return np.where(np.isfinite(shares) & (weights > 0), np.minimum(shares, 1.0), 1.0)


class Entry(NamedTuple):
    """An entry of a working set: the stream, its activation (submitted when drawn), budget and number."""

    index: int
    activation: Any
    budget: int
    number: int  # the activation's number among its mix's (a resumed one keeps its first number)


_new_entry = tuple.__new__  # an `Entry` without the Python call of its ``__new__`` (one per activation)


class _WorkingSet:
    """The state of one mix activation: which stream each slot holds, budgets, entries drawn ahead.

    ``open_child(i, limit)`` submits an activation of child ``i`` that will be
    asked for at most ``limit`` items (None: unlimited), at once;
    ``open_child(i, limit, number=k, skip=s)`` its activation ``k`` again,
    after its first ``s`` items (a suspended stream resumed). A resumed run
    calls ``open_child.reopen(i, k, child_state, limit, offset)``.
    """

    def __init__(self, open_child, weights, n_active, rate, dist, mode, prune_empty, activate_rng, counts, random_access=False,
                 segments=None):
        n = len(weights)
        self.random_access = random_access
        self.open_child, self.rate, self.dist, self.mode = open_child, rate, dist, mode
        self.prune_empty, self.rng, self.counts = prune_empty, activate_rng, counts
        weights = np.asarray(weights, dtype=np.float64)
        self.weight_list = array.array("d", weights.tobytes())  # compact: one double per stream
        self.weights = weights
        self.n_live = 0  # slots holding an activation
        self.changed = True  # slot weights changed since the mix last looked
        self.all_active = n_active is None
        n_slots = n if self.all_active else n_active
        self.pool = weights.copy()  # who may be activated next (working-set modes)
        self.cumulative: array.array | None = None  # cumsum of pool, None when stale
        self.pruned = bytearray(n)  # 1: found empty and out of the pool
        self.stream = [-1] * n_slots
        self.activation: list[Any] = [None] * n_slots
        self.next_item: list[Any] = [None] * n_slots
        # items taken from each slot since the mix started; an activation starts
        # at taken == start and ends at taken == limit (its budget). Random-access
        # activations also know their rows; the block decider reads these as arrays.
        counters = (lambda: np.zeros(n_slots, dtype=np.int64)) if random_access else (lambda: [0] * n_slots)
        self.taken, self.start_at, self.limit, self.rows = counters(), counters(), counters(), counters()
        self.slot_weight = np.zeros(n_slots) if random_access else [0.0] * n_slots
        # single_active returns a stream to the pool when it leaves a slot: drawing ahead would
        # change which streams may enter, so it draws each entry when its slot empties
        self.ahead = 0 if self.all_active or mode == "single_active" else AHEAD
        self.queue: collections.deque[Entry] = collections.deque()
        self.fixed_budget = _fixed_budget(rate, dist)
        self.miss = array.array("d")  # per stream: `_miss` (budgets drawn), one double each
        self.trials = array.array("q")  # per stream: `_trials`, one int64 each
        if self.fixed_budget is None:
            self._shares(weights)
        # ending modes: a stream whose activation spent its budget waits here with the
        # number of items it yielded, until it is drawn again and resumes after them
        self.suspended: dict[int, tuple[int, int]] = {}  # stream -> (activation number, items yielded)
        self.opened = 0  # activations opened so far: the next one's number
        self.number = [0] * n_slots  # the activation number in each slot
        self.earlier: dict[int, int] = {}  # items yielded by earlier turns of a suspended stream
        self.empty_run: set[int] = set()  # streams found empty since the last item
        # the mix loop's position, for a run state: the SELECT Generator's state the
        # current uniforms were drawn from, and (uniforms used, picks not yet taken)
        self.uniforms_from: dict | None = None
        self.loop: tuple[int, Any] = (0, iter(()))
        # weights on a schedule: the segments (start, weights), the one in force, the items decided
        # before the taken counters started (a resumed run), and each segment's counts at its start
        self.segments, self.segment, self.decided_before = segments, 0, 0
        self.next_start = segments[1][0] if segments is not None and len(segments) > 1 else None
        self.segment_starts: list[tuple[int, list[int]]] = [] if segments is None else [(0, list(counts))]
        # ends an activation instead of its close() (a block materializer first reads the rows it was asked for)
        self.retire: Callable[[int, Any], None] | None = None

    # -- weights on a schedule (combinators.plan.schedule)
    def decided(self) -> int:
        """The items this mix activation has decided (yielded) so far."""
        return self.decided_before + int(sum(self.taken))

    def to_boundary(self) -> int:
        """Items left before the next segment of the schedule starts (a huge number when none is left).

        At 0 the next segment's weights are put in force first (`_weigh`)."""
        if self.next_start is None:
            return UNLIMITED
        left = self.next_start - self.decided()
        if left <= 0:
            self._weigh(self.segment + 1)
            return self.to_boundary()
        return left

    def _weigh(self, segment: int) -> None:
        """Put the weights of ``segment`` in force: the pool, the slots' weights, the budgets' shares."""
        self.segment = segment
        self.next_start = self.segments[segment + 1][0] if segment + 1 < len(self.segments) else None
        weights = np.asarray(self.segments[segment][1], dtype=np.float64)
        self.weights, self.weight_list = weights, array.array("d", weights.tobytes())
        self.pool = np.where(self.pool > 0, weights, 0.0)  # the zero pattern never changes (Schedule checks it)
        self.cumulative = None
        if self.fixed_budget is None:
            self._shares(weights)
        for slot, index in enumerate(self.stream):
            self.slot_weight[slot] = self.weight_list[index] if index >= 0 else 0.0
        self.changed = True
        self.segment_starts.append((self.segments[segment][0], self.live_counts()))

    def _shares(self, weights: np.ndarray) -> None:
        """Work out each stream's budget draw (`_miss`) from its expected share of the working set."""
        shares = expected_shares(weights, len(self.stream))
        self.miss = array.array("d", (_miss(self.dist, share) for share in array.array("d", shares.tobytes())))
        self.trials = array.array("q", (_trials(self.rate, miss) for miss in self.miss))

    # -- choosing and starting activations
    def _set_pool(self, index: int, weight: float) -> None:
        self.pool[index] = weight
        self.cumulative = None

    def _entry(self, index: int | None = None) -> Entry | None:
        """Draw an activation of stream ``index`` (None: a stream chosen from the pool by weight; None is
        returned if the pool is empty), then its budget, and submit it with that limit.

        A suspended stream (ending modes) is started again with its activation
        number, skipping the items it yielded; its limit is its new budget.
        """
        if index is None:
            cumulative = self.cumulative
            if cumulative is None:
                cumulative = self.cumulative = array.array("d", np.cumsum(self.pool).tobytes())
            total = cumulative[-1]
            if total <= 0:
                return None
            index = bisect.bisect_right(cumulative, self.rng.random() * total * _BELOW_ONE)
            if self.mode != "with_replacement":
                self._set_pool(index, 0.0)
        budget = self.fixed_budget
        if budget is None:
            budget = _budget(self.rng, self.rate, self.miss[index], self.trials[index])
        limit = None if budget >= UNLIMITED else budget
        if self.suspended:
            resume = self.suspended.pop(index, None)
            if resume is not None:
                number, skip = resume
                return _new_entry(Entry, (index, self.open_child(index, limit, number=number, skip=skip), budget, number))
        number = self.opened
        self.opened = number + 1
        return _new_entry(Entry, (index, self.open_child(index, limit), budget, number))

    def _replacement(self, index: int, again: bool) -> Entry | None:
        """The entry that takes the place of stream ``index``'s activation: when all are active, the stream's
        next activation if ``again``; else the head of the queue of drawn-ahead entries (drawn now if empty),
        and the queue topped up. None when there is none."""
        if self.all_active:
            return self._entry(index) if again else None
        queue, pruned = self.queue, self.pruned
        while queue and pruned[queue[0][0]]:  # drawn before its stream was found empty
            queue.popleft().activation.close()
        chosen = queue.popleft() if queue else self._entry()
        while len(queue) < self.ahead:
            entry = self._entry()
            if entry is None:
                break
            queue.append(entry)
        return chosen

    def start(self, slot: int, entry: Entry) -> None:
        index, activation, budget, number = entry
        taken = self.taken[slot]
        self.start_at[slot] = taken  # first: a slot whose activation fails to start counts no items twice
        self.limit[slot] = taken + budget
        self.stream[slot], self.activation[slot], self.number[slot] = index, activation, number
        if self.random_access:
            self.rows[slot] = len(activation)
        else:
            self.next_item[slot] = activation.next_function()
        self.slot_weight[slot] = self.weight_list[index]
        self.changed = True
        self.n_live += 1

    def fill(self) -> None:
        for slot in range(len(self.stream)):
            entry = self._replacement(slot, self.all_active and self.weight_list[slot] > 0)  # all active: slot i, stream i
            if entry is not None:
                self.start(slot, entry)
            elif not self.all_active:
                break

    # -- ending activations
    def end(self, slot: int, exhausted: bool) -> bool:
        """Close the slot's activation and refill it; False when the whole mix ends."""
        index = self.stream[slot]
        produced = int(self.taken[slot] - self.start_at[slot])
        self.counts[index] += produced
        if self.retire is None:
            self.activation[slot].close()
        else:
            self.retire(slot, self.activation[slot])
        if exhausted or self.empty_run or self.mode != "with_replacement":
            self._vacate(slot)
            return self._after_end(slot, index, produced, exhausted)
        # a budget spent (the replacements' hot path): the next activation takes the slot at once
        entry = self._replacement(index, not self.pruned[index])
        if entry is None:
            self._vacate(slot)
            return self.n_live > 0
        self.n_live -= 1
        self.start(slot, entry)  # sets every field of the slot
        return True

    def _vacate(self, slot: int) -> None:
        """Empty the slot whose activation was retired."""
        self.start_at[slot] = self.taken[slot]
        self.stream[slot] = -1
        self.activation[slot] = self.next_item[slot] = None
        self.slot_weight[slot] = 0.0
        self.changed = True
        self.n_live -= 1

    def _after_end(self, slot: int, index: int, produced: int, exhausted: bool) -> bool:
        """`end` after the slot is emptied, when a stream may be suspended, pruned or the mix end."""
        suspend = not exhausted and self.mode in ENDING_MODES
        if suspend:
            self.earlier[index] = self.earlier.get(index, 0) + produced
            self.suspended[index] = (self.number[slot], self.earlier[index])
            self._set_pool(index, self.weight_list[index])
        else:
            produced += self.earlier.pop(index, 0)
        if exhausted and produced == 0:
            self.empty_run.add(index)
            if self.prune_empty:
                self.pruned[index] = 1
                self._set_pool(index, 0.0)
        if exhausted and self.mode == "first_exhausted":
            return False
        if self.mode == "single_active" and not self.pruned[index]:
            self._set_pool(index, self.weight_list[index])
        if self.empty_run and self._spinning():
            return False
        entry = self._replacement(index, suspend or (self.mode not in ENDING_MODES and not self.pruned[index]))
        if entry is not None:
            self.start(slot, entry)
        return self.n_live > 0

    def _spinning(self) -> bool:
        """Every stream that could still be drawn was found empty since the last item.

        In the modes that draw a stream again (``"with_replacement"``, ``"single_active"``), a stream whose
        share of the live streams' weight is under `UNDRAWN_SHARE` counts as found empty: the picks reach it
        less than once in 2**48 draws (never, at the top of the cumulative weights, which `_BELOW_ONE` shaves),
        so a mix whose other streams are all empty would keep drawing them instead of ending.
        """
        weights, pruned, empty = self.weight_list, self.pruned, self.empty_run
        live = [i for i, w in enumerate(weights) if w > 0 and not pruned[i]]
        if self.mode in ENDING_MODES:  # a stream found empty is never drawn again: the others will be
            return all(i in empty for i in live)
        floor = math.fsum(weights[i] for i in live) * UNDRAWN_SHARE
        return all(i in empty or weights[i] < floor for i in live)

    def live_counts(self) -> list[int]:
        """Items taken per child, including the activations still running."""
        counts = list(self.counts)
        for slot, index in enumerate(self.stream):
            if index >= 0:
                counts[index] += int(self.taken[slot] - self.start_at[slot])
        return counts

    def active_weight(self) -> float:
        """The sum of the running activations' weights, summed exactly (`math.fsum`) when asked: a running
        total kept with ``+=`` and ``-=`` drifts below zero (``2.0 - 2.0 + 3.0 - 3.0`` can give ``-1.1e-16``)."""
        return math.fsum(self.slot_weight)

    # -- run state (docs/guide/decisions.md, section 4)
    def state(self) -> dict[str, Any]:
        """The working set as JSON values: Generator states, uniforms used, slots, entry queue, pool, suspensions.

        Taken between items (the mix suspended at a yield). Each activation
        opened by ``open_child`` has a ``state(received)``; a resumed
        (suspended) one tells the state of its whole activation. The queue
        holds the entries drawn ahead: stream, activation number, budget and
        the activation's state (none of its items received yet); a resumed
        run submits them again with their budgets.
        """
        used, remaining = self.loop
        slots: list[Any] = []
        for slot, index in enumerate(self.stream):
            if index < 0:
                slots.append(None)
                continue
            received, activation = int(self.taken[slot] - self.start_at[slot]), self.activation[slot]
            left = int(self.limit[slot] - self.taken[slot])
            slots.append([index, self.number[slot], received, left, activation.state(received)])
        queue = [[entry.index, entry.number, entry.budget, entry.activation.state(0)] for entry in self.queue]
        changed = np.flatnonzero(self.pool != self.weights).tolist()
        pool = [[i, w] for i, w in zip(changed, self.pool[changed].tolist())]
        return {
            "activate": self.rng.bit_generator.state, "uniforms_from": self.uniforms_from,
            "used": used - length_hint(remaining), "slots": slots, "queue": queue, "pool": pool,
            "pruned": _true_indices(self.pruned), "active_weight": self.active_weight(),
            "empty_run": sorted(self.empty_run),
            **_suspension_state(self.opened, self.suspended, self.earlier),
            **({} if self.segments is None else {"schedule": [self.segment, self.decided()]}),
        }

    def snapshot(self) -> tuple[Any, ...]:
        """A cheap copy of a random-access working set (arrays and lists copied, no JSON yet).

        `~combinators.sampling.mix.mix_decisions` takes one at the start of
        each block; `snapshot_state` turns it into a `state`.
        """
        used, remaining = self.loop
        return (self.rng.bit_generator.state, self.uniforms_from, int(used - length_hint(remaining)), list(self.stream),
                self.taken - self.start_at, self.limit - self.taken,
                [(entry.index, entry.number, entry.budget) for entry in self.queue],
                self.pool.copy(), list(self.pruned), self.active_weight(), sorted(self.empty_run),
                list(self.number), (self.opened, dict(self.suspended), dict(self.earlier)),
                (self.weights, self.segment, self.decided()))

    def snapshot_state(self, snapshot: tuple[Any, ...]) -> dict[str, Any]:
        """The `state` of a random-access working set when `snapshot` was taken."""
        (activate, uniforms_from, used, stream, received, left, queue, pool, pruned, active_weight, empty,
         number, suspension, (weights, segment, decided)) = snapshot
        received, left = received.tolist(), left.tolist()
        slots = [None if index < 0 else [index, number[slot], received[slot], left[slot], None]
                 for slot, index in enumerate(stream)]
        changed = np.flatnonzero(pool != weights).tolist()
        return {
            "activate": activate, "uniforms_from": uniforms_from, "used": used, "slots": slots,
            "queue": [[index, number, budget, None] for index, number, budget in queue],
            "pool": [[i, w] for i, w in zip(changed, pool[changed].tolist())],
            "pruned": _true_indices(pruned), "active_weight": active_weight, "empty_run": empty,
            **_suspension_state(*suspension),
            **({} if self.segments is None else {"schedule": [segment, decided]}),
        }

    def restore(self, saved: dict[str, Any], select_rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Set the working set to ``saved`` (from `state`); the uniforms block and how many are used.

        Activations are reopened with ``open_child.reopen(index, number, child_state, limit, offset)``:
        a slot's with what is left of its budget, a queued entry's with its budget.
        """
        self.rng.bit_generator.state = saved["activate"]
        if self.segments is not None:
            segment, decided = saved["schedule"]
            self._weigh(segment)
            self.segment_starts[:] = [(self.segments[segment][0], list(self.counts))]  # counted from the resume on
            self.decided_before = decided - sum(entry[2] for entry in saved["slots"] if entry is not None)
        for index, weight in saved["pool"]:
            self._set_pool(index, weight)
        for index in saved["pruned"]:
            self.pruned[index] = 1
        self.opened = saved["opened"]
        self.suspended = {index: (number, offset) for index, number, offset in saved["suspended"]}
        self.earlier = {index: offset for index, offset in saved["earlier"]}
        for slot, entry in enumerate(saved["slots"]):
            if entry is not None:
                index, number, received, left, child = entry
                self.stream[slot], self.number[slot] = index, number
                # a random-access activation is reopened at its first row: the mix asks its rows up to received + left
                asked = left + received if self.random_access else left
                self.activation[slot] = self._reopen(index, number, child, None if left >= UNLIMITED >> 1 else asked)
                if self.random_access:
                    self.rows[slot] = len(self.activation[slot])
                else:
                    self.next_item[slot] = self.activation[slot].next_function()
                self.slot_weight[slot] = self.weight_list[index]
                self.n_live += 1
                self.taken[slot], self.start_at[slot], self.limit[slot] = received, 0, received + left
        self.empty_run.update(saved["empty_run"])
        for index, number, budget, child in saved["queue"]:
            activation = self._reopen(index, number, child, None if budget >= UNLIMITED else budget)
            self.queue.append(Entry(index, activation, budget, number))
        self.changed = True
        self.uniforms_from = select_rng.bit_generator.state = saved["uniforms_from"]
        return select_rng.random(_BLOCK), saved["used"]

    def _reopen(self, index: int, number: int, child: Any, limit: int | None) -> Any:
        """Activation ``number`` of stream ``index`` at its saved position, at most ``limit`` items asked.

        ``offset`` is the items of earlier turns of a stream resumed after
        suspension: a generator child's state counts them too (its position
        in the whole activation), a random-access child seeks past them again.
        """
        return self.open_child.reopen(index, number, child, limit, self.earlier.get(index, 0))

    def settle(self) -> bool:
        """After `restore`: end the activation whose budget the last item spent; False if the mix ends."""
        for slot, index in enumerate(self.stream):
            if index >= 0 and self.taken[slot] == self.limit[slot]:
                return self.end(slot, exhausted=False)
        return True

    def close(self) -> None:
        for slot, index in enumerate(self.stream):
            if index >= 0:
                self.counts[index] += int(self.taken[slot] - self.start_at[slot])
                self.start_at[slot] = self.taken[slot]
        self.stream = [-1] * len(self.stream)
        with contextlib.ExitStack() as closing:  # each is closed even if another raises
            for slot, activation in enumerate(self.activation):
                if activation is not None:
                    closing.callback(self.retire or _close, slot, activation)
            while self.queue:  # drawn ahead, never started: the mix ended
                closing.callback(self.queue.popleft().activation.close)
