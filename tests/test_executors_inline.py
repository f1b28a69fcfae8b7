"""Leaves cheaper to make than to move run in the consumer (``Processes(inline=True)``); the items never change.

Each item carries the pid of the process that made it, so the tests see where every
activation ran; the items without it must equal the in-process ones. Where the placement is the point, the
costs are told (``inline=Costs(...)``: each leaf's items cost what the test says, not what the clocks of a
loaded machine measure), so the same leaves run in the same places on any machine.
"""

from __future__ import annotations

import itertools
import os
import time
from unittest import mock

import pytest

import combinators as c
from combinators.errors import InvalidArgument, InvalidArgumentType
from combinators.execution.remote import protocol
from combinators.execution.remote.processes import Processes
from combinators.execution.remote.placement import INLINE_MIN_ITEMS, MOVE_MAX_SKIP, Costs
from combinators.execution.remote.session import RemoteSession
from combinators.execution.remote.zmq import ZMQ


def cheap(name, n):
    for i in range(n):
        yield (name, i, os.getpid())


def slow(name, n):
    for i in range(n):
        time.sleep(0.001)  # keeps its worker busy (its costs are told: `_told`)
        yield (name, i, os.getpid())


#: nanoseconds to make and to move an item, as told (`_told`): cheap leaves make theirs in 1/100 of the time
#: it takes to move them, slow ones in 1000 times as long
CHEAP, SLOW = (100, 10_000), (10_000_000, 10_000)


def _told(*slow_names):
    """Costs that tell the items of the leaves named ``slow_names`` (their source's first argument) slow to make,
    and all others cheap."""
    return Costs(lambda leaf: SLOW if leaf.args[0] in slow_names else CHEAP)


def _as_told(cost, told):
    """Whether a plan's costs ``[activations, items, ns making, ns moving]`` are its items at the ``told`` costs."""
    return cost[1] >= INLINE_MIN_ITEMS and cost[2:] == [cost[1] * told[0], cost[1] * told[1]]


def _plan(*sources, consumed=600):
    return c.mix(*sources, n_active=2, rate=6, dist="constant") >> c.take(consumed)


def _run(plan, executor):
    """The items without their pid, the pids of each source's items, the session's costs and executor stats."""
    with c.iterate(plan, seed=3, executor=executor) as run:
        items = list(run)
        session = run._session
        costs = {name: session.costs.get(number) for name, number in _plan_numbers(session).items()}
        stats = run.executor_stats()
    pids: dict[str, set[int]] = {}
    for name, _, pid in items:
        pids.setdefault(name, set()).add(pid)
    return [(name, i) for name, i, _ in items], pids, costs, stats


def _placed(plan, executor):
    """The items (with the pid that made each) and executor stats of a run, checked against in process."""
    expected = [(name, i) for name, i, _ in c.iterate(plan, seed=3)]
    with c.iterate(plan, seed=3, executor=executor) as run:
        items = list(run)
        stats = run.executor_stats()
    assert [(name, i) for name, i, _ in items] == expected
    return items, stats


def _plan_numbers(session):
    """Each leaf's name -> its plan number in the session (the first argument of the leaf's source)."""
    return {plan[1][0].args[0]: number for number, plan in session._plans.values()}


def test_cheap_leaves_run_in_the_consumer_once_their_kind_is_measured():
    # a first mix measures the kind (one source function) in workers: cheap to make, so the 20 leaves of the
    # second mix run here (their first activations timed by probes) without ever going to a worker
    warm = _plan(*[c.stream(cheap, f"w{k}", 10_000) for k in range(3)])
    plan = c.chain(warm, _plan(*[c.stream(cheap, f"s{k}", 10_000) for k in range(20)], consumed=1500))
    expected = [(name, i) for name, i, _ in c.iterate(plan, seed=3)]
    items, pids, costs, stats = _run(plan, Processes(workers=2, inline=_told()))
    assert items == expected
    here = os.getpid()
    assert all(pids[f"s{k}"] == {here} for k in range(20)), pids
    assert all(here in pids[f"w{k}"] and pids[f"w{k}"] - {here} for k in range(3)), pids  # measured, then here
    assert all(_as_told(costs[f"w{k}"], CHEAP) for k in range(3)), costs  # as the workers counted them
    assert all(costs[f"s{k}"] is None for k in range(20)), costs  # never in a worker
    assert stats["activations_inline"] > 10 * stats["activations"] > 0, stats
    assert stats["items_received"] - stats["items_wasted"] < len(items)  # the rest were made here


def test_a_slow_leaf_of_a_cheap_kind_goes_back_to_workers_after_its_probe():
    # one function: its kind is measured cheap in workers; the leaf told slow is probed in the consumer (its
    # probes' time, as told), found slow, and its later activations run in workers
    fast = [c.stream(cheap, f"fast{k}", 10_000) for k in range(6)]
    plan = c.chain(_plan(*fast[:3]), _plan(*fast[3:], c.stream(cheap, "slow", 10_000), consumed=400))
    expected = [(name, i) for name, i, _ in c.iterate(plan, seed=3)]
    with c.iterate(plan, seed=3, executor=Processes(workers=2, inline=_told("slow"))) as run:
        items = list(run)
        session = run._session
        numbers = _plan_numbers(session)
        refused, inline = set(session._refused), set(session._inline)
    assert [(name, i) for name, i, _ in items] == expected
    slow = [pid for name, _, pid in items if name == "slow"]
    here = os.getpid()
    assert here in slow and slow[-1] != here, slow  # probed here, then back in workers
    assert numbers["slow"] in refused and numbers["slow"] not in inline
    assert any(numbers[f"fast{k}"] in inline for k in range(6))


def test_a_leaf_that_is_slow_to_make_stays_in_workers_beside_cheap_ones():
    # two kinds (two functions): each measured on its own, in workers
    plan = _plan(c.stream(cheap, "cheap", 10_000), c.stream(slow, "slow", 10_000), consumed=300)
    expected = [(name, i) for name, i, _ in c.iterate(plan, seed=3)]
    items, pids, costs, stats = _run(plan, Processes(workers=2, inline=_told("slow")))
    assert items == expected
    assert os.getpid() not in pids["slow"], pids
    assert _as_told(costs["slow"], SLOW) and _as_told(costs["cheap"], CHEAP), costs
    assert os.getpid() in pids["cheap"] and pids["cheap"] - {os.getpid()}, pids  # measured in workers, then here
    assert stats["activations_inline"] > 0, stats


def test_a_long_activation_of_a_cheap_leaf_moves_to_the_consumer_without_waste():
    # one long activation per leaf (a chain of files): the first is measured while it runs, gets no more
    # credit, and once its worker has sent all it may, goes on in the consumer after the items received
    plan = c.chain(*[c.stream(cheap, f"s{k}", 5000) for k in range(3)])
    items, stats = _placed(plan, Processes(workers=2, inline=_told()))
    here = os.getpid()
    first = [pid for name, _, pid in items if name == "s0"]
    moved_at = first.index(here)
    assert 0 < moved_at < 5000 and set(first[moved_at:]) == {here} and here not in first[:moved_at], moved_at
    assert stats["activations_moved"] >= 1 and stats["items_wasted"] == 0, stats
    assert stats["items_received"] == moved_at + sum(  # the later leaves: measured by kind, or moved too
        1 for name, _, pid in items if name != "s0" and pid != here
    ), stats


@pytest.mark.parametrize(
    "executor", [Processes(workers=2, inline=False), ZMQ(workers=2)], ids=["processes-inline-false", "zmq"]
)
def test_without_inline_every_activation_runs_in_a_worker(executor):
    plan = _plan(*[c.stream(cheap, f"s{k}", 10_000) for k in range(3)])
    items, pids, costs, stats = _run(plan, executor)
    assert items == [(name, i) for name, i, _ in c.iterate(plan, seed=3)]
    assert all(os.getpid() not in where for where in pids.values()), pids
    assert stats["activations_inline"] == 0, stats
    # behaviour only: each leaf's costs were measured (it ran in a worker), yet with inline off (or under ZMQ)
    # none ran here, whatever the measured times say (comparing them failed under load: a test asserts no timing)
    assert all(cost is not None and cost[0] >= 1 and cost[1] > 0 for cost in costs.values()), costs


def test_inline_must_be_a_bool_or_costs():
    with pytest.raises(InvalidArgumentType, match=r"Processes.inline must be True, False or a placement.Costs, not 1"):
        Processes(inline=1)
    with pytest.raises(InvalidArgumentType, match=r"ZMQ.inline must be True, False or a placement.Costs, not 'no'"):
        ZMQ(inline="no")
    with pytest.raises(InvalidArgumentType, match=r"Costs.per_item must be callable, not \(1, 2\)"):
        Costs((1, 2))


@pytest.mark.parametrize("told", [(1, -2), (1,), "ab", (float("nan"), 1), 5])
def test_costs_told_wrong_are_refused_naming_them(told):
    plan = _plan(c.stream(cheap, "s", 100), consumed=20)
    with pytest.raises(InvalidArgument, match=r"Costs.per_item must give None or \(making, moving\).*not "):
        list(c.iterate(plan, seed=3, executor=Processes(workers=1, inline=Costs(lambda leaf: told))))


def test_costs_replace_the_reported_times_of_told_leaves_only():
    from combinators.execution.leaf import activate_leaf
    from combinators.execution.remote.placement import Placer

    placer = Placer(Costs(lambda leaf: None if leaf.args[0] == "measured" else CHEAP))
    for number, name in enumerate(["told", "measured"]):
        placer.add_plan(number, (activate_leaf, (c.stream(cheap, name, 100), 0, (number,))))
    table = protocol.COST_ROW.pack(0, 2, 40, 7, 9) + protocol.COST_ROW.pack(1, 3, 50, 11, 13)
    assert placer.add_costs(2, table)
    assert placer.costs == {0: [2, 40, 40 * CHEAP[0], 40 * CHEAP[1]], 1: [3, 50, 11, 13]}
    assert placer.kind_costs == {placer.kinds[0]: [5, 90, 40 * CHEAP[0] + 11, 40 * CHEAP[1] + 13]}  # one kind


def _garbling_source(n):
    """Items from a worker whose cost reports have a row cut short (a worker that has joined, gone wrong)."""
    from combinators.execution.remote import worker

    def garbled(self):
        if self.costs:
            protocol.send(self.socket, [protocol.head(protocol.COSTS, 1), b"\0" * (protocol.COST_ROW.size - 1)])
            self.costs.clear()

    worker._Worker.report_costs = garbled
    yield from range(n)


def test_a_malformed_cost_report_is_dropped_and_counted():
    with Processes(workers=1).open() as session:
        assert list(session.start((_garbling_source, (5,)), ())) == list(range(5))
        assert list(session.start((_garbling_source, (3,)), ())) == list(range(3))
        deadline = time.monotonic() + 5
        while session.stats()["malformed"] == 0 and time.monotonic() < deadline:
            session._receive(50)
        assert session.stats()["malformed"] >= 1
        assert session.costs == {}
        assert not session.runs_inline(next(iter(session._plans.values()))[1])


@pytest.mark.parametrize("mode", ["exhaustive", "first_exhausted"])
def test_a_resumed_stream_that_moves_to_the_consumer_goes_on_after_all_its_earlier_items(mode):
    # an ending-mode mix suspends each activation at its budget and resumes it after the items it yielded
    # (the start travels with it); moved after its first item, it must skip those and the ones received
    plan = c.mix(*[c.stream(cheap, f"s{k}", 9 + k) for k in range(4)], n_active=2, rate=3, dist="constant", mode=mode)
    expected = [(name, i) for name, i, _ in c.iterate(plan, seed=5)]
    with mock.patch.object(RemoteSession, "runs_inline", lambda session, leaf_plan: False), \
            mock.patch.object(RemoteSession, "moves_inline", lambda session, number: True):
        with c.iterate(plan, seed=5, executor=Processes(workers=2, prefetch=1)) as run:
            items = list(run)
            stats = run.executor_stats()
    assert [(name, i) for name, i, _ in items] == expected
    assert stats["activations_moved"] > 4, stats


def _raises_at_call(n):
    raise ValueError(f"no items for {n}")


def test_probes_tell_only_what_ran_and_every_activation_probes_until_they_tell():
    from combinators.execution.leaf import activate_leaf, probed_leaf

    with Processes(workers=1, inline=_told()).open() as session:
        measured = (activate_leaf, (c.stream(cheap, "a", 40), 0, (0,)))
        assert len(list(session.start(measured, ((0, 0),)))) == 40  # its worker reports the kind's costs
        deadline = time.monotonic() + 5
        while not session.kind_costs and time.monotonic() < deadline:
            session._receive(50)
        unmeasured = (activate_leaf, (c.stream(cheap, "b", 40), 0, (1,)))
        first = session.runs_inline(unmeasured)
        assert callable(first)  # its kind vouches for it: in the consumer, timed
        second = session.runs_inline(unmeasured)  # the first probe never ran (closed before its first item)
        assert callable(second), second
        seen = []
        with pytest.raises(ValueError, match="no items for 3"):  # raising before its first item: told, as 0 items
            list(probed_leaf(lambda items, seconds: seen.append(items), c.stream(_raises_at_call, 3), 0, (2,), (0,)))
        assert seen == [0]
        assert list(probed_leaf(second, *unmeasured[1], (1, 0)))[-1][:2] == ("b", 39)
        assert session.runs_inline(unmeasured) is True  # 40 items timed: cheap, it stays in the consumer


def test_a_cheap_activation_beside_a_slow_one_in_a_busy_worker_still_moves():
    # the worker is never idle (a slow source keeps it busy), so the cheap leaf's first costs must go out
    # as soon as it made enough items, whatever went out before with the slow leaf's
    plan = c.mix(c.stream(slow, "slow", 10_000), c.stream(cheap, "cheap", 10_000), n_active=2, mode="exhaustive")
    items, stats = _placed(plan >> c.take(300), Processes(workers=1, inline=_told("slow")))
    here = os.getpid()
    assert here in {pid for name, _, pid in items if name == "cheap"}, stats
    assert here not in {pid for name, _, pid in items if name == "slow"}, stats
    assert stats["activations_moved"] >= 1, stats


def _busy(name, n):
    """Items that take about 5 ms of CPU each to make, from a worker descheduled for 30 ms at each send
    (its sends are patched to sleep: as a worker on a busy host loses its core). At 1 ms an item, the CPU a
    worker truly spends moving its first items (a message each, while its messages grow) was measured at up
    to half their making, and the leaf looked cheap without any descheduled time counted."""
    from combinators.execution.remote import worker

    send = worker.protocol.send_items
    if getattr(send, "__name__", "") != "descheduled":

        def descheduled(*args, **kwargs):
            time.sleep(0.03)
            return send(*args, **kwargs)

        worker.protocol.send_items = descheduled
    for i in range(n):
        end = time.thread_time() + 0.005
        while time.thread_time() < end:
            pass
        yield (name, i, os.getpid())


def test_time_a_worker_spends_descheduled_never_makes_its_items_look_cheap_to_move():
    plan = c.chain(*[c.stream(_busy, f"b{k}", 40) for k in range(3)])
    items, stats = _placed(plan, Processes(workers=1))
    assert os.getpid() not in {pid for _, _, pid in items}, stats
    assert stats["activations_inline"] == stats["activations_moved"] == 0, stats


def counted_from(name, n, start=0):
    """A source that seeks: it starts at item ``start`` without making the items before it."""
    for i in range(start, n):
        yield (name, i, os.getpid())


@pytest.mark.parametrize("source, moves", [(cheap, 0), (counted_from, 1)], ids=["generator", "seeking"])
def test_a_leaf_found_cheap_late_moves_only_if_it_seeks(source, moves):
    # a generator leaf moved after many items would make them all again in the consumer to skip them:
    # past MOVE_MAX_SKIP items it stays in its worker; a leaf that seeks moves at any point
    calls = itertools.count()
    with mock.patch.object(RemoteSession, "runs_inline", lambda session, leaf_plan: False), \
            mock.patch.object(RemoteSession, "moves_inline", lambda session, number: next(calls) >= 60):
        items, stats = _placed(c.stream(source, "s", 3000), Processes(workers=1, prefetch=64))
    here = os.getpid()
    made_here = [i for _, i, pid in items if pid == here]
    assert stats["activations_moved"] == moves, stats
    assert (made_here[0] > MOVE_MAX_SKIP) if moves else not made_here, made_here[:3]
    assert stats["items_wasted"] == 0, stats
