"""shard_plan: the parts of a plan hold each of its leaves at most once, and together every item once."""

from __future__ import annotations

from collections import Counter

from hypothesis import assume, given
from hypothesis import strategies as st

import combinators as c
from combinators.plan.sharding import leaves, shard_plan
from combinators.strategies import origin, seeds, streams


def cuts_or_cycles(node):
    """Whether ``node`` holds a restarting chain or round-robin (a take above it takes in every part)
    or a budgeted mix (which cuts an activation after ``rate`` items, wherever its leaves are)."""
    restarts = getattr(node, "repeat", False) or getattr(node, "mode", "exhaustive") in ("cycle", "permuted_cycle")
    budget = getattr(node, "rate", None) is not None
    return restarts or budget or any(cuts_or_cycles(child) for child in node.children)


@given(streams(max_depth=2, source_kinds=["items", "generator"], modes=["exhaustive"], transform_kinds=["map"]),
       st.integers(1, 4), seeds())
def test_parts_hold_every_item_once(plan, count, seed):
    assume(not cuts_or_cycles(plan))
    parts = [shard_plan(plan, k, count) for k in range(count)]
    kept = Counter(repr(leaf) for part in parts if part is not None for leaf in leaves(part))
    assert not kept - Counter(map(repr, leaves(plan)))  # no leaf twice, none invented (weight-0 ones may go)
    whole = sorted(origin(item) for item in c.iterate(plan, seed=seed))
    split = sorted(origin(item) for part in parts if part is not None for item in c.iterate(part, seed=seed))
    assert split == whole
