"""Names change neither items nor seeds, on any plan."""

from __future__ import annotations

import attrs
from hypothesis import given

import combinators as c
from combinators.strategies import seeds, streams


def name_every_node(node: c.Stream, path: tuple[int, ...] = ()) -> c.Stream:
    """``node`` with every node in its tree named after its path."""
    children = tuple(name_every_node(child, (*path, i)) for i, child in enumerate(node.children))
    changes = {"name": f"node {path}"}
    if hasattr(node, "streams"):
        changes["streams"] = children
    elif hasattr(node, "stream"):
        changes["stream"] = children[0]
    return attrs.evolve(node, **changes)


@given(streams(max_depth=2), seeds())
def test_naming_every_node_changes_no_item(plan, seed):
    named = name_every_node(plan)
    assert named.name == "node ()"
    first = list(c.iterate(plan, seed=seed))
    assert list(c.iterate(named, seed=seed)) == first
    assert c.explain(named).count("'node (") == c.explain(plan).count("\n") + 1
