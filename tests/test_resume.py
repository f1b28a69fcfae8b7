"""Run states: what they refuse, seeking sources, a resume in a new process, bounded size."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import combinators as c
from combinators.execution.statecheck import seal
from combinators import strategies
from combinators.errors import TransportError
from combinators.execution.remote.zmq import ZMQ


def _cut(plan, k, seed=5, **kwargs):
    run = c.iterate(plan, seed=seed, **kwargs)
    first = [next(run) for _ in range(k)]
    return first, run


def test_a_state_of_another_plan_is_refused():
    _, run = _cut(c.from_iterable(range(10)), 3)
    state = run.state()
    with pytest.raises(c.ResumeError, match="another plan"):
        c.iterate(c.from_iterable(range(11)), resume=state)


def test_a_plan_whose_function_changed_is_refused():
    def double(x):
        return 2 * x

    def triple(x):
        return 3 * x

    _, run = _cut(c.from_iterable(range(10)) >> c.map(double), 2)
    with pytest.raises(c.ResumeError, match="another plan"):
        c.iterate(c.from_iterable(range(10)) >> c.map(triple), resume=run.state())


def test_an_explicit_different_seed_is_refused_and_the_same_one_accepted():
    plan = c.from_iterable(range(10))
    _, run = _cut(plan, 3, seed=5)
    state = run.state()
    with pytest.raises(c.ResumeError, match="seed=6 differs"):
        c.iterate(plan, seed=6, resume=state)
    assert list(c.iterate(plan, seed=5, resume=state)) == list(range(3, 10))


def test_an_unknown_format_and_a_non_state_are_refused():
    _, run = _cut(c.from_iterable(range(10)), 3)
    state = dict(run.state(), format=99)
    with pytest.raises(c.ResumeError, match="format 99"):
        c.iterate(c.from_iterable(range(10)), resume=state)
    with pytest.raises(c.ResumeError, match="Run.state"):
        c.iterate(c.from_iterable(range(10)), resume={"items": 3})


def test_an_item_that_cannot_be_encoded_fails_at_state_time_naming_its_type():
    plan = c.mix(c.from_iterable([{1}, {2}, {3}, {4}]), c.from_iterable([{0}])) >> c.shuffle(3)
    _, run = _cut(plan, 1)
    with pytest.raises(c.RunStateError, match="type set"):
        run.state()


def test_a_closed_run_has_no_state_but_an_ended_one_has():
    _, run = _cut(c.from_iterable(range(10)), 3)
    run.close()
    with pytest.raises(c.RunStateError, match="closed before its end"):
        run.state()
    run = c.iterate(c.from_iterable(range(3)), seed=1)
    assert list(run) == [0, 1, 2]
    assert list(c.iterate(c.from_iterable(range(3)), resume=run.state())) == []


CALLS = []


def numbers(n, start):
    CALLS.append(start)
    yield from range(start, n)


def test_a_stream_fn_with_a_start_parameter_seeks():
    plan = c.stream(numbers, 10)
    CALLS.clear()
    first, run = _cut(plan, 4)
    assert CALLS == [0]
    rest = list(c.iterate(plan, resume=run.state()))
    assert first + rest == list(range(10)) and CALLS == [0, 4]


def test_from_arrays_resumes_at_its_row_without_reading_the_rows_before():
    data = np.arange(1_000_000)
    plan = c.from_arrays(data)
    state = seal({**_cut(plan, 0)[1].state(), "items": 999_998, "root": {"received": 999_998}})  # edited on purpose
    assert [int(x) for x in c.iterate(plan, resume=state)] == [999_998, 999_999]


def test_the_state_does_not_grow_with_the_items_consumed():
    plan = c.mix(*[c.stream(strategies.counting, f"s{i}") for i in range(20)], n_active=4, rate=8.0)
    sizes = []
    run = c.iterate(plan, seed=2)
    for _ in range(3):
        for _ in range(5000):
            next(run)
        sizes.append(len(json.dumps(run.state())))
    assert max(sizes) - min(sizes) < 200, sizes


def test_a_run_resumes_in_a_new_process(tmp_path):
    script = textwrap.dedent("""
        import json, sys
        import combinators as c
        from combinators import strategies
        plan = c.mix(c.stream(strategies.labelled_random, "a", 40), c.stream(strategies.labelled, "b", 30),
                     n_active=1, mode="exhaustive") >> c.shuffle(4)
        if sys.argv[1] == "take":
            run = c.iterate(plan, seed=11, executor="processes")
            first = [next(run) for _ in range(17)]
            json.dump({"first": first, "state": run.state()}, open(sys.argv[2], "w"))
        elif sys.argv[1] == "resume":
            state = json.load(open(sys.argv[2]))["state"]
            print(json.dumps(list(c.iterate(plan, resume=state))))
        else:
            print(json.dumps(list(c.iterate(plan, seed=11))))
    """)
    path = tmp_path / "state.json"
    run = lambda *args: subprocess.run([sys.executable, "-c", script, *args], check=True, capture_output=True,
                                       text=True).stdout
    run("take", str(path))
    first = json.loads(path.read_text())["first"]
    rest = json.loads(run("resume", str(path)))
    assert first + rest == json.loads(run("full"))


class CountingArrays(c.plan.FromArrays):
    """from_arrays that counts the rows read from it (to see what a resume gathers again)."""

    read = [0]

    def open(self):
        return _Counted(super().open())


class _Counted:
    def __init__(self, opened):
        self.opened = opened

    def __len__(self):
        return len(self.opened)

    def rows(self, start, stop):
        CountingArrays.read[0] += stop - start
        return self.opened.rows(start, stop)

    def close(self):
        self.opened.close()


def test_a_block_path_mix_resumes_from_its_block_not_from_its_start():
    data = [np.arange(i * 10**6, i * 10**6 + 100_000) for i in range(3)]
    plan = c.mix(*[c.from_arrays(d) for d in data], n_active=2, rate=2000.0) >> c.batch(64)
    first, run = _cut(plan, 1500)
    state = json.loads(json.dumps(run.state()))
    assert "block_mix" in state["root"]["apply"]["child"]
    expected = [b.tolist() for b in c.iterate(plan, seed=5, max_iter=1510)][1500:]
    CountingArrays.read[0] = 0
    counting = c.mix(*[CountingArrays(d) for d in data], n_active=2, rate=2000.0) >> c.batch(64)
    state["plan"] = c.execution.runstate.plan_fingerprint(counting)
    seal(state)  # edited on purpose
    resumed = [b.tolist() for b in c.iterate(counting, resume=state, max_iter=10)]
    assert resumed == expected
    assert CountingArrays.read[0] < 20_000  # a block or two, not the 96,000 rows before


def test_a_state_of_other_arrays_with_the_same_repr_is_refused():
    data = np.zeros(100_000)
    other = data.copy()
    other[3:-3] = 1.0  # another dataset whose summarized repr is the same
    assert repr(c.from_arrays(data)) == repr(c.from_arrays(other))
    _, run = _cut(c.from_arrays(data), 3)
    with pytest.raises(c.ResumeError, match="another plan"):
        c.iterate(c.from_arrays(other), resume=run.state())


def test_a_resumed_leaf_that_cannot_be_sent_is_named_with_the_value():
    """A live leaf re-submitted from item n (a resumed run) goes through the same naming as a first submission."""
    lock = threading.Lock()
    plan = c.chain(c.stream(lambda n, held: iter(range(n)), 5, lock), c.from_iterable("ab"))
    with c.iterate(plan, seed=0) as run:
        assert [next(run), next(run)] == [0, 1]
        state = json.loads(json.dumps(run.state()))
    with pytest.raises(TransportError) as caught:
        list(c.iterate(plan, resume=state, executor=ZMQ(workers=1)))
    message = str(caught.value)
    assert "stream(" in message and "at path (0,)" in message, message
    assert "_thread.lock" in message and "activate_leaf" not in message, message
    with c.iterate(plan, resume=state) as resumed:  # in-process, nothing is sent: it continues
        assert list(resumed) == [2, 3, 4, "a", "b"]


def counting(name, n):
    for i in range(n):
        yield (name, i)


def test_the_entry_queue_travels_in_the_state_and_is_submitted_again_with_its_budgets():
    from combinators.execution.remote.processes import Processes
    from combinators.sampling.working_set import AHEAD

    # rate=3 suspends each activation after 3 items; its stream re-enters through the queue of entries
    # drawn ahead, which the state carries (stream, activation number, budget, position)
    plan = c.mix(*[c.stream(counting, k, 12) for k in range(10)], n_active=2, rate=3, dist="constant",
                 mode="exhaustive")
    expected = list(c.iterate(plan, seed=2))
    with c.iterate(plan, seed=2, executor=Processes(workers=2)) as run:
        first = [next(run) for _ in range(40)]
        state = json.loads(json.dumps(run.state()))
    queue = state["root"]["mix"]["working_set"]["queue"]
    assert len(queue) == AHEAD
    assert all(budget == 3 for _, _, budget, _ in queue)
    assert any(child["received"] > 0 for _, _, _, child in queue)  # resumed streams wait there too
    with c.iterate(plan, resume=state, executor=ZMQ(workers=2)) as run:
        rest = list(run)
        stats = run.executor_stats()
    assert first + rest == expected
    # every entry was submitted again with its budget as its limit, starting after the items received
    # before (skipped in the worker): the workers produced exactly the items consumed
    assert stats["items_received"] == len(rest) and stats["items_wasted"] == 0, stats


def test_states_taken_after_resumes_of_suspended_streams_continue_the_run():
    # an ending-mode mix with budgets suspends its children and resumes them after their earlier items:
    # leaves skip them where they run, other nodes (here round-robins) are replayed; a state taken after a
    # resume must still count the items of the earlier turns, in the slots and in the queue drawn ahead
    children = [c.round_robin(c.stream(counting, f"{k}a", 4), c.stream(counting, f"{k}b", 3)) for k in range(3)]
    plan = c.mix(*children, c.stream(counting, "leaf", 9), n_active=1, rate=2, dist="constant", mode="exhaustive")
    expected = list(c.iterate(plan, seed=1))
    assert sorted(expected) == sorted(
        [(f"{k}{s}", i) for k in range(3) for s, n in (("a", 4), ("b", 3)) for i in range(n)]
        + [("leaf", i) for i in range(9)]
    )
    for first in range(0, len(expected), 3):
        for second in (1, 4):
            with c.iterate(plan, seed=1, max_iter=first) as run:
                items = list(run)
                state = json.loads(json.dumps(run.state()))
            with c.iterate(plan, resume=state, max_iter=second) as run:
                items += list(run)
                state = json.loads(json.dumps(run.state()))
            with c.iterate(plan, resume=state) as run:
                items += list(run)
            assert items == expected, (first, second)


def _resumed_after(plan, k, seed):
    """The first ``k`` items of a run, then the rest from its state (through JSON)."""
    with c.iterate(plan, seed=seed) as run:
        first = [next(run) for _ in range(k)]
        state = json.loads(json.dumps(run.state()))
    with c.iterate(plan, resume=state) as resumed:
        return first + list(resumed)


def _numbers(*bounds):
    return c.from_iterable(list(range(*bounds)))


def test_concurrent_activations_of_a_nested_mix_each_keep_their_own_state():
    # two slots of the outer mix hold activations of the inner mix at once: each slot's state is its own
    # working set's, not the state of the inner mix's latest activation (the repro)
    inner = c.mix(_numbers(40), _numbers(100, 140), mode="exhaustive", rate=3, n_active=1)
    plan = c.mix(inner, _numbers(200, 210), rate=4, n_active=2) >> c.take(60)
    expected = list(c.iterate(plan, seed=2))
    assert _resumed_after(plan, 3, seed=2) == expected
    for seed in range(4):
        expected = list(c.iterate(plan, seed=seed))
        for cut in range(0, 61, 7):
            assert _resumed_after(plan, cut, seed) == expected, (seed, cut)


def same(x):
    return x


@pytest.mark.parametrize("plan", [
    c.chain(c.from_iterable([(1, 0)])) >> c.map(same) >> c.batch(3, partial=True),
    c.chain(c.from_iterable([(1, 0)]), c.from_iterable([(2, 0)])) >> c.map(same) >> c.batch(3, partial=True),
    c.round_robin(c.from_iterable([1]), c.from_iterable([2])) >> c.batch(3, partial=True),
    c.round_robin(c.stream(range, 2), c.stream(range, 1), mode="cycle").take(5) >> c.batch(2, partial=True),
], ids=["chain-of-one", "chain-of-two", "round-robin", "round-robin-cycle"])
def test_a_state_taken_after_the_last_partial_batch_resumes_to_nothing(plan):
    # the batch pulled past its child's end: the chain or round-robin has ended, and so does the resumed run
    expected = [b.tolist() if hasattr(b, "tolist") else b for b in c.iterate(plan, seed=1)]
    with c.iterate(plan, seed=1) as run:
        first = [next(run) for _ in expected]
        state = json.loads(json.dumps(run.state()))
    assert len(first) == len(expected)
    assert list(c.iterate(plan, resume=state)) == []


@pytest.mark.parametrize("weights", [(2.0, 0.0, 3.0), (0.1, 0.2, 0.7), (1e-3, 1.0, 1e3)])
def test_a_state_taken_after_activations_of_unequal_weights_ended_resumes(weights):
    """The working set's ``active_weight`` was a running ``+=``/``-=`` total that drifted to ``-1.1e-16`` once
    every activation had ended, and the state schema (``minimum 0``) refused the run's own state."""
    plan = c.mix(c.from_iterable([]), c.chain(c.from_iterable([]), cycle=True),
                 c.round_robin(c.from_iterable([("s2", 0)])), weights=weights, mode="exhaustive",
                 prune_empty=False) >> c.batch(3, partial=True)
    whole = list(c.iterate(plan, seed=0))
    assert len(whole) == 1 and whole[0][0].tolist() == ["s2"] and whole[0][1].tolist() == [0]
    for k in range(len(whole) + 1):
        np.testing.assert_equal(_resumed_after(plan, k, 0), whole)
