"""Which plans run on the block path: row sources, and what is made of them alone.

Their decisions are drawn as index arrays and their rows gathered a block at
a time (`combinators.execution.blocks`); every other node runs per item. The
path never changes the items.
"""

from __future__ import annotations

from typing import Iterator

from combinators.plan.mixes import Mix
from combinators.plan.sources import RowSource, is_leaf
from combinators.plan.stream import Apply, Chain, Stream
from combinators.plan.transforms import Batch, Take

__all__ = [
    "block_schema", "block_leaf", "consumer_leaf", "gathered_in_consumer", "random_access_chain", "placed_row_sources",
    "node_paths", "rank_rows",
]


def block_schema(node: Stream) -> tuple | None:
    """The row schema if ``node`` gives its rows a block at a time, else None.

    Block nodes: a row source (`~combinators.plan.sources.RowSource`) whose
    schema is numeric; a mix or a chain whose children are all block nodes
    of one schema; ``take`` over a block node. A block mix reads its row-source
    children at random (the rows of a run of decisions are one slice per
    activation) and pulls the blocks of any other child as its picks need
    them. A mix with a mix below it is not (each inner mix runs on its own
    block path, the outer one per item): a pulled inner mix decides rows
    ahead of what its parent hands out, and its stats must count what the
    consumer received. Row sources that map a file (``RowSource.maps_file``)
    are not: the block path gathers in the consumer, which a truncated mapped
    file would kill.

    >>> import numpy as np
    >>> from combinators.plan.mixes import mix
    >>> from combinators.plan.sources import from_arrays, from_iterable
    >>> block_schema(mix(from_arrays(np.zeros(3)), from_arrays(np.ones(2)).cycle()))
    ((None, dtype('float64'), ()),)
    >>> block_schema(mix(from_arrays(np.zeros(3)), from_iterable([1.0]))) is None
    True
    """
    if isinstance(node, RowSource):
        return None if node.maps_file else node.schema
    if isinstance(node, Apply):
        return block_schema(node.stream) if all(isinstance(t, Take) for t in node.transforms) else None
    if not isinstance(node, (Mix, Chain)):
        return None
    if isinstance(node, Mix) and any(map(_has_mix, node.streams)):
        return None
    schemas = [block_schema(c) for c in node.streams]
    first = schemas[0] if schemas else None  # chain() of no streams runs per item
    return first if first is not None and all(s == first for s in schemas) else None


def _has_mix(node: Stream) -> bool:
    return isinstance(node, Mix) or any(map(_has_mix, node.children))


def block_leaf(node: Stream, in_process: bool) -> bool:
    """Whether a leaf over a row source runs on the block path (in the consumer) rather than as a leaf
    activation of the executor's session.

    A bare row source, or one under ``take`` and ``batch`` only, always does (there
    is nothing for a worker to do but move rows); one under other transforms
    (maps, filters, shuffles) does ``in_process``, and under a parallel executor
    runs in its workers, like any leaf.

    >>> import numpy as np
    >>> from combinators.plan.sources import from_arrays
    >>> from combinators.plan.transforms import batch, shuffle
    >>> s = from_arrays(np.zeros(3))
    >>> block_leaf(s >> batch(2), False), block_leaf(s >> shuffle(2), False), block_leaf(s >> shuffle(2), True)
    (True, False, True)
    """
    if isinstance(node, Apply):
        if block_schema(node.stream) is None or not isinstance(node.stream, RowSource):
            return False
        return in_process or all(isinstance(t, (Take, Batch)) for t in node.transforms)
    return isinstance(node, RowSource) and block_schema(node) is not None


def consumer_leaf(leaf: Stream, nested: bool) -> bool:
    """Whether a parallel executor runs ``leaf`` in its consumer, on the block path, rather than through its
    session (in a worker, or in the consumer once measured cheap).

    A leaf `block_leaf` puts on the block path out of process (a row source,
    under ``take`` and ``batch`` only) does, when it is the plan's own leaf
    (not ``nested``: opened by a mix, chain or round-robin that runs item by
    item), or when its rows are in memory (`RowSource.in_memory`: a worker
    would only pickle the arrays there and back). A shard under a per-item
    mix is placed like any leaf: several are read at once, in workers.

    >>> import numpy as np
    >>> from combinators.plan.sources import from_arrays
    >>> consumer_leaf(from_arrays(np.zeros(3)), True), consumer_leaf(from_arrays(np.zeros(3)), False)
    (True, True)
    """
    if not block_leaf(leaf, False):
        return False
    source = leaf.stream if isinstance(leaf, Apply) else leaf
    return not nested or source.in_memory


def gathered_in_consumer(part: Stream, nested: bool = False) -> bool:
    """Whether a part an executor places (a block node or a leaf) has its rows gathered in the consumer,
    whatever the executor: a block node, or a leaf that `consumer_leaf` keeps there (``nested``: the part is
    a child of a mix, chain or round-robin that runs item by item).

    >>> import numpy as np
    >>> from combinators.plan.sources import from_arrays, from_iterable
    >>> from combinators.plan.transforms import batch, shuffle
    >>> rows = from_arrays(np.zeros(3))
    >>> [gathered_in_consumer(p) for p in (rows >> batch(2), rows >> shuffle(2), from_iterable("ab"))]
    [True, False, False]
    """
    if is_leaf(part):
        return consumer_leaf(part, nested)
    return block_schema(part) is not None


def random_access_chain(node: Stream) -> bool:
    """An unnamed chain (cycled or not) of unnamed row sources: a block mix reads it at random, as it reads
    a row source (`combinators.execution.chain_rows.ChainRows`), and places its sources as it places its own.

    >>> import numpy as np
    >>> from combinators.plan.sources import from_arrays
    >>> random_access_chain(from_arrays(np.zeros(3)).cycle()), random_access_chain(from_arrays(np.zeros(3)).named("a").cycle())
    (True, False)
    """
    return (isinstance(node, Chain) and node.name is None
            and all(isinstance(s, RowSource) and s.name is None for s in node.streams))


def placed_row_sources(part: Stream) -> list[RowSource]:
    """The row sources of a block node whose activations a parallel executor may open in its workers.

    A block mix opens each row-source child's activation on its own (its
    rows read at random, a slice per run of decisions), and each source of a
    chain child read at random (`random_access_chain`: a ``.cycle()``d
    shard, a chain of shards) in turn: reading or decompressing those rows
    (`from_npy`, `from_npz`) may be done in a worker, which ships them back
    as blocks, while the consumer keeps every decision and gathers. Sources
    whose rows are already in memory (`RowSource.in_memory`: `from_arrays`)
    never are; nor are row sources a block node reads in order (a chain's
    that is not a mix's child, a lone source's, one under ``take``), which
    the consumer reads. Depth-first, each child once.

    >>> import numpy as np
    >>> from combinators.plan.mixes import mix
    >>> from combinators.plan.sources import from_arrays
    >>> placed_row_sources(mix(from_arrays(np.zeros(3)), from_arrays(np.ones(2))))
    []
    """
    found: list[RowSource] = []
    for child in part.children:
        if isinstance(part, Mix) and (isinstance(child, RowSource) or random_access_chain(child)):
            found.extend(s for s in ([child] if isinstance(child, RowSource) else child.streams) if not s.in_memory)
        elif not isinstance(child, RowSource):
            found.extend(placed_row_sources(child))
    return found


def node_paths(root: Stream, in_process: bool = True) -> Iterator[tuple[tuple[int, ...], Stream, bool]]:
    """``(path, node, on_block_path)`` for every node of ``root``, depth-first, as the interpreter runs it.

    A node is on the block path when it gives its rows a block at a time: a
    block node (`block_schema`) opened on its own, any child of one, or the
    row source of a leaf that `block_leaf` says runs there. A leaf that is
    the child of a mix, chain or round-robin running item by item runs item
    by item (``in_process`` False: under a parallel executor).

    >>> import numpy as np
    >>> from combinators.plan.mixes import mix
    >>> from combinators.plan.sources import from_arrays, from_iterable
    >>> [(p, b) for p, _, b in node_paths(mix(from_arrays(np.zeros(3)), from_iterable([1.0])))]
    [((), False), ((0,), False), ((1,), False)]
    """
    def walk(node: Stream, path: tuple[int, ...], parent_block: bool, per_item_parent: bool):
        if parent_block:
            on_block = True
        elif is_leaf(node):
            on_block = not per_item_parent and block_leaf(node, in_process) and block_schema(node) is not None
        else:
            on_block = block_schema(node) is not None
        yield path, node, on_block
        if isinstance(node, Apply):  # a leaf's source runs with the leaf
            per_item = per_item_parent or (is_leaf(node) and not block_leaf(node, in_process))
        else:
            per_item = not on_block
        for i, child in enumerate(node.children):
            yield from walk(child, (*path, i), on_block, per_item)

    yield from walk(root, (), False, False)


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
