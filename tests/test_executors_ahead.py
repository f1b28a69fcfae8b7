"""Activations started ahead with their budgets: limits, plans shipped once, wasted items, start latency."""

from __future__ import annotations

import numpy as np
import pytest

import combinators as c
from combinators.execution.base import InProcess, Session
from combinators.execution.remote.processes import Processes
from combinators.execution.remote.zmq import ZMQ
from combinators.sampling.working_set import AHEAD


def forever(name, rng=None):
    i = 0
    while True:
        yield (name, i)
        i += 1


def test_a_worker_never_produces_past_an_activation_limit():
    with Processes(workers=1).open() as session:
        # an endless source: only the worker stopping at the limit ends this list
        assert list(session.start((forever, ("a",)), (), limit=5)) == [("a", i) for i in range(5)]
        # without a limit, the consumer closes it when done
        unlimited = session.start((forever, ("b",)), ())
        assert [next(unlimited) for _ in range(3)] == [("b", 0), ("b", 1), ("b", 2)]
        unlimited.close()
        assert session.flow_stats()["activations"] == 2


# inline=False: every activation runs in a worker (cheap leaves would otherwise run in the consumer once measured)
@pytest.mark.parametrize("executor", [Processes(workers=2, inline=False), ZMQ(workers=2)], ids=["processes", "zmq"])
def test_a_working_set_with_budgets_wastes_only_the_queue(executor):
    rate, n_active, consumed = 6, 8, 1500
    plan = c.mix(*[c.stream(forever, f"s{k}") for k in range(30)], n_active=n_active, rate=rate, dist="constant")
    plan = plan >> c.take(consumed)
    expected = list(c.iterate(plan, seed=5))
    with c.iterate(plan, seed=5, executor=executor) as run:
        assert list(run) == expected
        stats = run.executor_stats()
    # every activation was submitted with its budget: what the workers made beyond the items consumed
    # is at most the budgets of the working set and of the entries drawn ahead when the run stopped
    assert stats["items_wasted"] <= (n_active + AHEAD) * rate, stats
    assert stats["items_received"] - stats["items_wasted"] == consumed, stats
    assert stats["activations"] >= consumed // rate
    assert 0 < stats["start_latency_median_ms"] <= stats["start_latency_p99_ms"], stats


def test_each_leaf_plan_is_pickled_once_per_run():
    sources = [c.stream(forever, f"s{k}") >> c.map(lambda item: item[1]) for k in range(5)]
    plan = c.mix(*sources, n_active=2, rate=2, dist="constant") >> c.take(400)
    with c.iterate(plan, seed=1, executor=Processes(workers=2, inline=False)) as run:
        items = list(run)
        session = run._session
        assert len(session._plan_pickles) == 5  # one per leaf, however many activations
        assert run.executor_stats()["activations"] >= 200
    assert items == list(c.iterate(plan, seed=1))


def test_binomial_budgets_use_the_expected_share():
    # budget = 1 + Binomial(m, 1 - p_i) with m (1 - p_i) = rate - 1: mean rate, variance (rate - 1) p_i,
    # p_i = w_i / (w_i + (n_active - 1) mean(w)); with single_active a stream's activations do not overlap
    weights, n_active, rate = np.array([1.0, 1.0, 2.0, 4.0]), 2, 5.0
    plan = c.mix(*[c.stream(forever, k) for k in range(4)], weights=weights, n_active=n_active, rate=rate,
                 mode="single_active")
    budgets = [[] for _ in weights]
    for name, i in c.iterate(plan >> c.take(40_000), seed=3):
        if i == 0:
            budgets[name].append(0)
        budgets[name][-1] += 1
    shares = weights / (weights + (n_active - 1) * weights.mean())
    for stream_budgets, share in zip(budgets, shares):
        observed = np.array(stream_budgets[:-1])  # the last one may have been cut by take
        assert abs(observed.mean() - rate) < 0.15, observed.mean()
        np.testing.assert_allclose(observed.var(), (rate - 1) * share, rtol=0.2)


def counting(name, n):
    for i in range(n):
        yield (name, i)


@pytest.mark.parametrize("executor", [Processes(workers=2, inline=False), ZMQ(workers=2)], ids=["processes", "zmq"])
@pytest.mark.parametrize("mode", ["exhaustive", "first_exhausted"])
def test_a_suspended_stream_resumes_in_the_worker_after_what_it_yielded(executor, mode):
    # rate=2 suspends each activation after about 2 items; its stream re-enters through the queue and
    # its worker skips the items already yielded: they never travel, and the limit counts the rest
    plan = c.mix(*[c.stream(counting, k, 3 + 2 * k) for k in range(6)], n_active=2, rate=2, dist="constant", mode=mode)
    expected = list(c.iterate(plan, seed=4))
    if mode == "exhaustive":
        assert sorted(expected) == sorted((k, i) for k in range(6) for i in range(3 + 2 * k))
    with c.iterate(plan, seed=4, executor=executor) as run:
        assert list(run) == expected
        stats = run.executor_stats()
    assert stats["activations"] > 6  # streams were resumed
    if mode == "exhaustive":  # every drawn entry is used: nothing produced twice, nothing wasted
        assert stats["items_received"] == len(expected), stats
        assert stats["items_wasted"] == 0, stats


def test_a_session_with_only_submit_stops_an_activation_at_its_limit():
    class SubmitOnly(Session):  # a session with only submit(): start() falls back to it
        def __init__(self):
            self.inner = InProcess().open()

        def submit(self, fn, *args):
            return self.inner.submit(fn, *args)

        def close(self):
            self.inner.close()

    session = SubmitOnly()
    assert list(session.start((forever, ("a",)), (), limit=3)) == [("a", 0), ("a", 1), ("a", 2)]
    assert list(session.start((counting, ("b",)), (2,))) == [("b", 0), ("b", 1)]
