"""Which plans run on the block path: mixes and chains of row sources of one schema.

Their decisions are drawn as index arrays and their rows gathered a block at
a time (`combinators.execution.blocks`); every other node runs per item. The
path never changes the items.
"""

from __future__ import annotations


from combinators.plan.mixes import Mix
from combinators.plan.sources import RowSource
from combinators.plan.stream import Chain, Stream

__all__ = ["block_schema"]


def block_schema(node: Stream) -> tuple | None:
    """The row schema if ``node`` runs on the block path, else None.

    Block nodes: a mix whose children are all row sources of one schema, and
    a chain whose children are all row sources or block nodes of one schema.
    Row sources that map a file (``RowSource.maps_file``) are not: the block
    path gathers in the consumer, which a truncated mapped file would kill.

    >>> from combinators.plan.mixes import mix
    >>> from combinators.plan.sources import from_arrays, from_iterable
    >>> block_schema(mix(from_arrays(np.zeros(3)), from_arrays(np.ones(2))))
    ((None, dtype('float64'), ()),)
    >>> block_schema(mix(from_arrays(np.zeros(3)), from_iterable([1.0]))) is None
    True
    """
    if isinstance(node, Mix):
        schemas = [_row_schema(c) for c in node.streams]
    elif isinstance(node, Chain):
        schemas = [_row_schema(c) if isinstance(c, RowSource) else block_schema(c) for c in node.streams]
    else:
        return None
    first = schemas[0] if schemas else None  # chain() of no streams runs per item
    return first if first is not None and all(s == first for s in schemas) else None


def _row_schema(node: Stream) -> tuple | None:
    return node.schema if isinstance(node, RowSource) and not node.maps_file else None
