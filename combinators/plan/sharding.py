"""``shard_plan(plan, index, count)``: one part of a plan, split by its sources.

A *leaf* is a source with the transforms directly above it (``source >>
t1 >> t2``). Number the plan's leaves ``0, 1, 2, ...`` in depth-first order
(children left to right). Part ``index`` of ``count`` keeps the leaves whose
number ``i`` has ``i % count == index`` and removes the others, with their
weights, from the mixes, chains and round-robins above them; a combinator
left without children is removed from its own parent in turn. Every mix keeps
its fields (``n_active``, ``rate``, mode...) and the weights of the children
it keeps, so within a part each kept child is drawn in the same proportion
to its kept siblings as in the whole plan. Transforms above combinators stay
where they are: in each part they see that part's items.

The parts together hold every leaf exactly once. Proportions across the
parts match the plan's when every mix has at least ``count`` leaves under
each of its children (each child then has leaves in every part).

Compare ``iterate(plan, seed=s, rank=r, world_size=w)``: one global order
whatever the world size (a state resumes on another one), every rank drawing
every decision; a part of ``shard_plan`` draws only its own, in an order that
depends on ``count`` (see docs/guide/data-parallel.md).

>>> from combinators import chain, from_iterable, mix
>>> plan = mix(chain(from_iterable("a"), from_iterable("b")), from_iterable("c"), (1, 3))
>>> shard_plan(plan, 0, 2)
mix(chain(from_iterable('a')), from_iterable('c'), weights=(1.0, 3.0))
>>> shard_plan(plan, 1, 2)
mix(chain(from_iterable('b')), weights=(1.0,))
>>> print(shard_plan(from_iterable("a"), 1, 2))
None
"""

from __future__ import annotations

import itertools
from typing import Iterator

import attrs

from combinators.plan import checks
from combinators.errors import InvalidArgument
from combinators.plan.sources import is_leaf as _is_leaf
from combinators.plan.mixes import Mix
from combinators.plan.schedule import Schedule
from combinators.plan.stream import Apply, Stream

__all__ = ["shard_plan", "leaves"]


def leaves(plan: Stream) -> Iterator[Stream]:
    """The plan's leaves (sources with the transforms directly above them), depth-first.

    >>> from combinators import from_iterable, take
    >>> len(list(leaves((from_iterable("a") >> take(1)) | from_iterable("b"))))
    2
    """
    if _is_leaf(plan):
        yield plan
        return
    for child in plan.children:
        yield from leaves(child)


def _part(node: Stream, keep: Iterator[bool]) -> Stream | None:
    """``node`` with only the leaves ``keep`` says yes to (None if none is left)."""
    if _is_leaf(node):
        return node if next(keep) else None
    if isinstance(node, Apply):
        inner = _part(node.stream, keep)
        return None if inner is None else attrs.evolve(node, stream=inner)
    parts = [_part(child, keep) for child in node.children]
    kept = [i for i, part in enumerate(parts) if part is not None]
    if not kept:
        return None
    changes = {"streams": tuple(parts[i] for i in kept)}
    if isinstance(node, Mix) and node.weights is not None:
        if isinstance(node.weights, Schedule):
            first = node.weights.points[0][1]
            if not any(first[i] for i in kept):
                return None  # only weight-0 children left (a schedule keeps zeros where they are)
            points = {start: tuple(w[i] for i in kept) for start, w in node.weights.points}
            changes["weights"] = attrs.evolve(node.weights, points=points)
        else:
            changes["weights"] = tuple(node.weights[i] for i in kept)
            if not any(changes["weights"]):
                return None  # only weight-0 children left: this part of the mix never yields
    return attrs.evolve(node, **changes)


def shard_plan(plan: Stream, index: int, count: int) -> Stream | None:
    """Part ``index`` of ``count`` of ``plan``: the leaves numbered ``index, index + count, ...``.

    ``None`` when that part has no leaf. See the module docstring for the
    rule. Raises `InvalidArgument` unless ``0 <= index < count``.
    """
    checks.instance_of("the plan of shard_plan()", plan, Stream, "a stream")
    count = checks.positive_int("shard_plan() count", count)
    index = checks.non_negative_int("shard_plan() index", index)
    if index >= count:
        msg = f"shard_plan() index must be < count={count}, got {index}"
        raise InvalidArgument(msg)
    keep = (i % count == index for i in itertools.count())
    return _part(plan, keep)
