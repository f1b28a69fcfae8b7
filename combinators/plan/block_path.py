"""Which plans run on the block path: mixes and chains of row sources of one schema.

Their decisions are drawn as index arrays and their rows gathered a block at
a time (`combinators.execution.blocks`); every other node runs per item. The
path never changes the items.
"""

from __future__ import annotations


from combinators.plan.mixes import Mix
from combinators.plan.sources import RowSource
from combinators.plan.stream import Apply, Chain, Stream
from combinators.plan.transforms import Batch

__all__ = ["block_schema", "rank_rows"]


def block_schema(node: Stream) -> tuple | None:
    """The row schema if ``node`` runs on the block path, else None.

    Block nodes: a mix whose children are all row sources of one schema, and
    a chain whose children are all row sources or block nodes of one schema.

    >>> from combinators.plan.mixes import mix
    >>> from combinators.plan.sources import from_arrays, from_iterable
    >>> block_schema(mix(from_arrays(np.zeros(3)), from_arrays(np.ones(2))))
    ((None, dtype('float64'), ()),)
    >>> block_schema(mix(from_arrays(np.zeros(3)), from_iterable([1.0]))) is None
    True
    """
    if isinstance(node, Mix):
        schemas = [c.schema if isinstance(c, RowSource) else None for c in node.streams]
    elif isinstance(node, Chain):
        schemas = [c.schema if isinstance(c, RowSource) else block_schema(c) for c in node.streams]
    else:
        return None
    first = schemas[0] if schemas else None  # chain() of no streams runs per item
    return first if first is not None and all(s == first for s in schemas) else None


def rank_rows(plan: Stream) -> tuple[tuple[int, ...], int] | None:
    """Where a data-parallel rank can leave out the rows of other ranks' items: ``(mix path, rows per item)``.

    That is a plan whose root is a block mix (`block_schema`), alone (an
    item is a row) or under one ``batch(k)`` (an item is ``k`` rows): its
    items' rows are known from the decisions alone, so a rank gathers only
    those of its own items. None for any other plan, whose ranks make every
    item and keep their own (the same items, at the cost of making the others').

    >>> from combinators.plan.mixes import mix
    >>> from combinators.plan.sources import from_arrays
    >>> from combinators.plan.transforms import batch, map
    >>> m = mix(from_arrays(np.zeros(3)), from_arrays(np.ones(2)))
    >>> rank_rows(m), rank_rows(m >> batch(4)), rank_rows(m >> map(abs))
    (((), 1), ((0,), 4), None)
    """
    node, path, per = plan, (), 1
    if isinstance(node, Apply):
        first = node.transforms[0]
        if len(node.transforms) != 1 or not isinstance(first, Batch) or first.axis is not None:
            return None
        node, path, per = node.stream, (0,), first.size
    if isinstance(node, Mix) and block_schema(node) is not None:
        return path, per
    return None
