"""``explain(stream)``: the plan of a description as an indented tree.

>>> from combinators import mix, from_iterable, batch
>>> print(explain(mix(from_iterable("ab"), from_iterable("c"), (1, 3), n_active=1, rate=4) >> batch(2)))
apply: batch(2)
└── mix n_active=1 rate=4.0 mode=with_replacement dist=binomial
    ├── [0.250] from_iterable('ab')
    └── [0.750] from_iterable('c')
"""

from __future__ import annotations

from typing import Iterator

from combinators.execution.blocks import block_schema
from combinators.streams import Apply, Chain, Mix, RoundRobin, Stream

__all__ = ["explain"]


def _label(node: Stream) -> str:
    if isinstance(node, Mix):
        options = " ".join(
            f"{name}={getattr(node, name)}" for name in ("n_active", "rate", "mode", "dist")
            if getattr(node, name) is not None
        )
        prune = "" if node.prune_empty else " prune_empty=False"
        return f"mix {options}{prune}" if node.n_active is not None else f"mix all-active mode={node.mode}{prune}"
    if isinstance(node, Chain):
        return "chain (cycle)" if node.repeat else "chain"
    if isinstance(node, RoundRobin):
        return f"round_robin mode={node.mode}"
    if isinstance(node, Apply):
        return "apply: " + " >> ".join(map(repr, node.transforms))
    return repr(node)


def block_marker(node: Stream) -> str:
    """`` [block path]`` for a node whose rows are gathered in blocks, else empty.

    >>> import numpy as np
    >>> from combinators import mix, from_arrays
    >>> block_marker(mix(from_arrays(np.zeros(2)), from_arrays(np.ones(3))))
    ' [block path]'
    """
    return " [block path]" if block_schema(node) is not None else ""


def _lines(node: Stream, prefix: str) -> Iterator[str]:
    children = node.children
    weights = node.probabilities if isinstance(node, Mix) else None
    for i, child in enumerate(children):
        last = i == len(children) - 1
        weight = f"[{weights[i]:.3f}] " if weights is not None else ""
        yield f"{prefix}{'└── ' if last else '├── '}{weight}{_label(child)}{block_marker(child)}"
        yield from _lines(child, prefix + ("    " if last else "│   "))


def explain(stream: Stream) -> str:
    """The plan of ``stream`` as text: one node per line, mix weights normalized.

    Runs nothing; each line shows a node, a mix's children carry their
    normalized weight in brackets. Mixes and chains that run on the block
    path (rows of array or shard sources gathered in blocks) end with
    ``[block path]``.
    """
    return "\n".join([_label(stream) + block_marker(stream), *_lines(stream, "")])
