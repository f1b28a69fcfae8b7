"""The algebra's laws, checked with hypothesis on random plans from `combinators.strategies`."""

from __future__ import annotations

import pickle

import cloudpickle
from hypothesis import given
from hypothesis import strategies as st

import combinators as c
from combinators.strategies import origin, seeds, sources, streams, transforms, weights
from combinators.testing import assert_working_set

FINITE = ("items", "generator", "rng")


def run(plan, seed=0, n=None):
    return list(c.iterate(plan, seed=seed, max_iter=n))


def outcome(plan, seed=0, n=None):
    """The items as text, or the error's type: two plans agree when their outcomes do."""
    try:
        return repr(run(plan, seed, n))
    except c.CombinatorsError as error:
        return type(error).__name__


def origins(items):
    return [origin(item) for item in items]


@given(sources("a", kinds=FINITE), sources("b", kinds=FINITE), sources("d", kinds=FINITE), seeds())
def test_chain_is_associative(a, b, d, seed):
    assert (a | b) | d == a | (b | d)
    assert run((a | b) | d, seed) == run(a | (b | d), seed)
    # random payloads depend on a source's place in the tree; where items come from does not
    assert origins(run(a | (b | d), seed)) == origins(run(a) + run(b) + run(d))


@given(streams(), transforms(), transforms(), seeds())
def test_transform_composition_is_associative(s, t1, t2, seed):
    assert (s >> t1) >> t2 == s >> (t1 >> t2)
    assert outcome((s >> t1) >> t2, seed) == outcome(s >> (t1 >> t2), seed)


@given(sources(kinds=("items", "generator")), seeds())
def test_mix_of_one_stream_is_that_stream(s, seed):
    assert run(c.mix(s, mode="exhaustive"), seed) == run(s, seed)
    assert run(c.mix(s), seed, 20) == run(s.cycle(), seed, 20)


@given(st.integers(1, 5).flatmap(lambda n: st.tuples(
    st.tuples(*[sources(f"s{i}", kinds=FINITE) for i in range(n)]), weights(n), st.none() | st.integers(1, n + 1), seeds(),
)))
def test_exhaustive_mix_is_an_order_keeping_permutation(case):
    streams_, w, n_active, seed = case
    out = origins(run(c.mix(*streams_, weights=w, n_active=n_active, mode="exhaustive"), seed))
    expected = [origins(run(s)) for s, weight in zip(streams_, w) if weight > 0]  # weight 0: never drawn
    assert sorted(out) == sorted(item for part in expected for item in part)
    for part in expected:
        if part:
            assert [x for x in out if x[0] == part[0][0]] == part


@given(st.lists(st.integers(), max_size=30), st.integers(1, 7))
def test_batch_then_unbatch_is_identity(items, size):
    assert [int(x) for x in c.from_iterable(items) >> c.batch(size, partial=True) >> c.unbatch()] == items


@given(streams(), seeds())
def test_same_seed_same_output(plan, seed):
    assert outcome(plan, seed, 50) == outcome(plan, seed, 50)


@given(st.integers(2, 12).flatmap(lambda n: st.tuples(
    st.tuples(*[sources(f"s{i}", kinds=FINITE) for i in range(n)]), st.integers(1, 4), st.integers(1, 6), seeds(),
)))
def test_working_set_bound(case):
    streams_, n_active, rate, seed = case
    assert_working_set(c.mix(*streams_, n_active=n_active, rate=rate), n_active, n=200, seed=seed)


@given(streams(max_depth=3))
def test_every_description_pickles(plan):
    assert pickle.loads(pickle.dumps(plan)) == plan
    assert cloudpickle.loads(cloudpickle.dumps(plan)) == plan
    assert eval(repr(plan), {**vars(c), **vars(c.strategies)}) == plan  # noqa: S307 - repr rebuilds it
