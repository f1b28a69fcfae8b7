"""A known length is the number of items every run yields."""

from __future__ import annotations

from hypothesis import given

import combinators as c
from combinators.strategies import seeds, streams


@given(streams(max_depth=2) | streams(max_depth=2, source_kinds=["items"]), seeds())
def test_a_known_length_is_the_count_of_items(plan, seed):
    n = c.length(plan)
    if n is not None:
        assert len(plan) == n == len(list(c.iterate(plan, seed=seed)))
