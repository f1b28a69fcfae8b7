"""The algebra's laws, checked with hypothesis on random plans."""

from __future__ import annotations

import itertools
import pickle

import cloudpickle
from hypothesis import given
from hypothesis import strategies as st

import combinators as c


def tagged(name, n):
    for i in range(n):
        yield (name, i)


def noisy(name, n, rng):
    for i in range(n):
        yield (name, i, int(rng.integers(1000)))


_names = itertools.count()


@st.composite
def finite_sources(draw, with_rng=st.booleans()):
    """A finite source whose items ``(name, i, ...)`` say where they come from."""
    name, n = f"s{next(_names)}", draw(st.integers(0, 5))
    if draw(with_rng):
        return c.stream(noisy, name, n)
    return c.stream(tagged, name, n)


weights = st.integers(1, 5)
transforms = st.sampled_from([c.take(3), c.map(tuple), c.batch(2, partial=True), c.shuffle(2), c.filter(bool)])


def _plans(children):
    many = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        many.map(lambda s: c.chain(*s)),
        many.map(lambda s: c.round_robin(*s)),
        st.tuples(many, st.integers(1, 3), st.sampled_from(["exhaustive", "first_exhausted"])).map(
            lambda a: c.mix(*a[0], n_active=a[1], mode=a[2])
        ),
        st.tuples(children, transforms).map(lambda a: a[0] >> a[1]),
    )


plans = st.recursive(finite_sources(), _plans, max_leaves=6)


def run(plan, seed=0, n=None):
    return list(c.iterate(plan, seed=seed, max_iter=n))


def outcome(plan, seed=0, n=None):
    """The items as text, or the error's type: two plans agree when their outcomes do."""
    try:
        return repr(run(plan, seed, n))
    except c.CombinatorsError as error:
        return type(error).__name__


def identities(items):
    """What each item says of its origin: ``(name, i)`` without any random payload."""
    return [tuple(item[:2]) for item in items]


@given(finite_sources(), finite_sources(), finite_sources())
def test_chain_is_associative(a, b, d):
    assert (a | b) | d == a | (b | d)
    assert run((a | b) | d) == run(a | (b | d))
    assert identities(run(a | (b | d))) == identities(run(a) + run(b) + run(d))


@given(plans, transforms, transforms, st.integers(0, 2**32 - 1))
def test_transform_composition_is_associative(s, t1, t2, seed):
    assert (s >> t1) >> t2 == s >> (t1 >> t2)
    assert outcome((s >> t1) >> t2, seed) == outcome(s >> (t1 >> t2), seed)


@given(finite_sources(with_rng=st.just(False)), st.integers(0, 2**32 - 1))
def test_mix_of_one_stream_is_that_stream(s, seed):
    assert run(c.mix(s, mode="exhaustive"), seed) == run(s, seed)
    assert run(c.mix(s), seed, 20) == run(s.cycle(), seed, 20)


@given(st.lists(finite_sources(), min_size=1, max_size=5), st.data())
def test_exhaustive_mix_is_an_order_keeping_permutation(streams, data):
    n = len(streams)
    w = data.draw(st.lists(weights, min_size=n, max_size=n))
    n_active = data.draw(st.none() | st.integers(1, n + 1))
    seed = data.draw(st.integers(0, 2**32 - 1))
    out = run(c.mix(*streams, weights=w, n_active=n_active, mode="exhaustive"), seed)
    parts = [run(s, seed) for s in streams]
    assert sorted(identities(out)) == sorted(identities(item for part in parts for item in part))
    for part in parts:
        if part:
            name = part[0][0]
            assert [x[1] for x in out if x[0] == name] == [x[1] for x in part]


@given(st.lists(st.integers(), max_size=30), st.integers(1, 7))
def test_batch_then_unbatch_is_identity(items, size):
    assert [int(x) for x in c.from_iterable(items) >> c.batch(size, partial=True) >> c.unbatch()] == items


@given(plans, st.integers(0, 2**32 - 1))
def test_same_seed_same_output(plan, seed):
    assert outcome(plan, seed, 50) == outcome(plan, seed, 50)


@given(st.integers(2, 12), st.integers(1, 4), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_working_set_bound(n_streams, n_active, rate, seed):
    open_now, most = set(), [0]

    def watched(k):
        open_now.add(k)
        most[0] = max(most[0], len(open_now))
        try:
            yield from range(3)
        finally:
            open_now.discard(k)

    plan = c.mix(*[c.stream(watched, k) for k in range(n_streams)], n_active=n_active, rate=rate)
    run(plan, seed, 200)
    assert most[0] <= n_active and not open_now


@given(plans)
def test_every_description_pickles(plan):
    assert pickle.loads(pickle.dumps(plan)) == plan
    assert cloudpickle.loads(cloudpickle.dumps(plan)) == plan
