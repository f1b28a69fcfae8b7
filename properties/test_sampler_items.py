"""No item silently dropped, repeated or invented: the sampler's bookkeeping, on random plans.

What is checked, for plans drawn by `combinators.strategies` (any weights, the
extreme ones included, any ``n_active``, ``rate``, ``dist``, mode and
``prune_empty``, empty chains):

- exhaustive: a plan whose mixes are all exhaustive (`ending_plans` with
  ``modes=["exhaustive"]``) yields every item of every source reachable
  through positive weights exactly once, each source in order, and ends;
- ending modes: a plan whose mixes are exhaustive or first_exhausted yields
  each item at most once, each source a prefix of itself in order, and ends;
- all modes: every item of any plan (`streams`, every mode and transform)
  is an item some source of the plan yields;
- weights: `Mix.probabilities` of any valid weights is finite, sums to 1,
  is positive exactly where the weight is, and keeps the weights' ratios;
- cache: ``cache(n_cache, prob)`` over a finite input yields every input
  item, new ones in input order, and ends with its input (pescador 3).

The false-alarm budget: none of these is statistical. Each asserts an exact
fact about one run, so a correct sampler passes them always; they add
nothing to the budget of properties/test_invariants.py (whose one
statistical property keeps the whole suite under 1 false alarm in 10,000).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import combinators as c
from combinators.strategies import (
    counting, counting_random, ending_plans, origin, seeds, streams, weights,
)
from combinators.plan.mixes import Mix
from combinators.plan.sources import FromIterable, Source

#: more items than any drawn plan may yield: a run that reaches it did not end
LIMIT = 20_000


def source_sizes(node, reachable=True, sizes=None):
    """``{name: (size or None for endless, reachable through positive weights)}`` for every source under ``node``."""
    sizes = {} if sizes is None else sizes
    if isinstance(node, Source):
        name = node.args[0]
        endless = node.fn in (counting, counting_random)
        sizes[name] = (None if endless else node.args[1], reachable)
    elif isinstance(node, FromIterable):
        if len(node.items):
            sizes[node.items[0][0]] = (len(node.items), reachable)
    else:
        shares = node.probabilities if isinstance(node, Mix) else [1.0] * len(node.children)
        for child, share in zip(node.children, shares):
            source_sizes(child, reachable and share > 0, sizes)
    return sizes


def positions(plan, seed, limit=LIMIT):
    """``{name: [positions in the order yielded]}`` and whether the run ended before ``limit``."""
    seen, count = {}, 0
    for item in c.iterate(plan, seed=seed, max_iter=limit):
        name, position = origin(item)
        seen.setdefault(name, []).append(position)
        count += 1
    return seen, count < limit


@given(ending_plans(max_depth=3, modes=["exhaustive"]), seeds())
def test_exhaustive_plans_yield_every_reachable_item_exactly_once_in_order(plan, seed):
    seen, ended = positions(plan, seed)
    assert ended
    expected = {name: list(range(size)) for name, (size, reachable) in source_sizes(plan).items() if reachable and size}
    assert seen == expected


@given(ending_plans(max_depth=3), seeds())
def test_ending_plans_yield_each_item_at_most_once_and_end(plan, seed):
    seen, ended = positions(plan, seed)
    assert ended
    sizes = source_sizes(plan)
    for name, order in seen.items():
        size, reachable = sizes[name]
        assert reachable and order == list(range(len(order))) and len(order) <= size, (name, order, size)


@given(streams(max_depth=3), seeds())
def test_every_item_is_one_a_source_yields(plan, seed):
    sizes = source_sizes(plan)
    for item in c.iterate(plan, seed=seed, max_iter=2000):
        name, position = origin(item)
        assert name in sizes, (name, sorted(sizes))
        size, reachable = sizes[name]
        assert reachable and position >= 0 and (size is None or position < size), (item, size, reachable)
        assert len(item) == 2 or 0 <= int(item[2]) < 1 << 31


@given(st.integers(1, 5).flatmap(weights))
def test_normalized_weights_are_finite_shares_keeping_the_ratios(w):
    node = c.mix(*[c.from_iterable([i]) for i in range(len(w))], weights=w, mode="exhaustive")
    p = node.probabilities if isinstance(node, Mix) else np.ones(1)
    values = [float(v) for v in w]
    assert np.all(np.isfinite(p)) and math.isclose(p.sum(), 1.0, rel_tol=1e-9)
    assert ((p > 0) == (np.asarray(values) > 0)).all()
    top = max(values)
    for v, share in zip(values, p):
        if v > top * 1e-290:  # ratios above the least share are kept
            assert math.isclose(share / p.max(), v / top, rel_tol=1e-9), (w, p.tolist())
    # the exhaustive mix reaches every stream with a positive weight
    assert sorted(c.iterate(node, seed=0)) == [i for i, v in enumerate(values) if v > 0]


@given(st.lists(st.integers(), max_size=12), st.integers(1, 6), st.floats(0.01, 1), seeds())
def test_cache_yields_its_input_in_order_and_ends_with_it(items, n_cache, prob, seed):
    tagged = [(i, x) for i, x in enumerate(items)]
    out = list(c.iterate(c.from_iterable(tagged) >> c.cache(n_cache, prob=prob), seed=seed, max_iter=LIMIT))
    assert len(out) < LIMIT
    first_seen = list(dict.fromkeys(out))
    assert first_seen == tagged  # every input item, new ones in input order, nothing else
    if len(items) < n_cache:
        assert out == tagged  # the input ended while the cache was filling


@given(st.sampled_from(c.plan.MIX_MODES), st.sampled_from(c.plan.BUDGET_DISTS), st.floats(1, 1e30), st.integers(2, 4))
def test_rate_without_n_active_is_refused_in_every_mode(mode, dist, rate, n):
    parts = [c.from_iterable("ab") for _ in range(n)]
    try:
        c.mix(*parts, rate=rate, mode=mode, dist=dist)
    except c.errors.InvalidArgument as error:
        assert "needs n_active" in str(error) and f"n_active={n}" in str(error)
    else:
        raise AssertionError(f"mix(rate={rate!r}, mode={mode!r}) without n_active was accepted")
    assert isinstance(c.mix(*parts, rate=rate, n_active=n, mode=mode, dist=dist), Mix)

