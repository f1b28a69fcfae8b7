"""``explain(stream)``: the plan of a description as an indented tree.

One line per node: its name (if it has one), its kind and every field that
differs from its default; a mix's children carry their normalized weight in
brackets. Values are shown short: an array as ``float32[1000, 3]``, a long
collection by its type and length, never their whole repr.

>>> import numpy as np
>>> from combinators import mix, from_arrays, from_iterable, batch
>>> ones = from_arrays(np.ones((1000, 3), dtype=np.float32)).named("ones")
>>> plan = mix(ones, from_iterable("c"), (1, 3), n_active=1, rate=4, dist="poisson") >> batch(2)
>>> print(explain(plan))
apply: batch(2)
└── mix n_active=1 rate=4.0 dist=poisson mode=with_replacement
    ├── [0.250] 'ones': from_arrays(float32[1000, 3])
    └── [0.750] from_iterable('c')
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, NamedTuple

import attrs
import numpy as np

from combinators.errors import InvalidArgumentType
from combinators.plan import checks
from combinators.plan.description import callable_repr
from combinators.plan.block_path import block_schema, node_paths
from combinators.plan.mixes import Mix, RoundRobin
from combinators.plan.sources import FromArrays, FromIterable, RowSource, Source, is_leaf, is_source
from combinators.plan.stream import Apply, Chain, Stream

__all__ = ["explain", "short_repr", "placed_parts", "set_executor_resolver"]

#: collections longer than this are shown by type and length
_SHORT_ITEMS = 6
#: reprs longer than this are cut
_SHORT_CHARS = 60
#: a run of more than this many alike children shows its first `_SHOWN` and a count of the rest
_ELIDE_OVER, _SHOWN = 12, 10
#: an executor name to its instance: the execution layer registers ``resolve_executor`` here (the plan layer
#: cannot import it), as it registers its interpreter with `combinators.plan.stream.set_interpreter`
_RESOLVER: list[Callable[[Any], Any]] = []


def set_executor_resolver(resolve: Callable[[Any], Any]) -> None:
    """Register the function that turns ``explain(plan, executor="processes")``'s name into an executor."""
    _RESOLVER[:] = [resolve]


def short_repr(value: Any) -> str:
    """A one-line, bounded rendering of ``value`` for people.

    Arrays show dtype and shape, long collections their type and length,
    mappings their keys with short values, callables their name.

    >>> short_repr(np.zeros((1000, 3), dtype=np.float32))
    'float32[1000, 3]'
    >>> short_repr(list(range(100))), short_repr([1, 2]), short_repr({"x": np.arange(4)})
    ('list[100]', '[1, 2]', "{'x': int64[4]}")
    """
    if isinstance(value, np.ndarray):
        return f"{value.dtype}[{', '.join(map(str, value.shape))}]"
    if isinstance(value, Mapping):
        parts = [f"{k!r}: {short_repr(v)}" for k, v in list(value.items())[:_SHORT_ITEMS]]
        more = ", ..." if len(value) > _SHORT_ITEMS else ""
        return "{" + ", ".join(parts) + more + "}"
    if isinstance(value, (list, tuple)) and (len(value) > _SHORT_ITEMS or any(map(_is_big, value))):
        return f"{type(value).__name__}[{len(value)}]"
    if callable(value):
        return callable_repr(value)
    text = repr(value)
    return text if len(text) <= _SHORT_CHARS else text[: _SHORT_CHARS - 3] + "..."


def _is_big(value: Any) -> bool:
    return isinstance(value, (np.ndarray, Mapping, list, tuple))


def _call(name: str, args: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None) -> str:
    parts = [short_repr(a) for a in args] + [f"{k}={short_repr(v)}" for k, v in (kwargs or {}).items()]
    return f"{name}({', '.join(parts)})"


def _options(node: Stream, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every field of ``node`` that differs from its default (name and ``skip`` left out)."""
    options = {}
    for field in attrs.fields(type(node)):
        if field.name == "name" or field.name in skip:
            continue
        value = getattr(node, field.name)
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory() if not default.takes_self else None
        if default is attrs.NOTHING or _differs(value, default):
            options[field.name] = value
    return options


def _differs(value: Any, default: Any) -> bool:
    try:
        return bool(value != default)
    except ValueError:  # arrays
        return True


def _words(options: Mapping[str, Any]) -> str:
    return "".join(f" {k}={v if isinstance(v, str) else short_repr(v)}" for k, v in options.items())


def _kind(node: Stream) -> str:
    if isinstance(node, Mix):
        options = _options(node, skip=("streams", "weights", "mode"))
        active = "" if node.n_active is not None else " all-active"  # n_active=None: every stream at once
        return f"mix{active}{_words(options)} mode={node.mode}"  # the mode always: it says when the mix ends
    if isinstance(node, Chain):
        return "chain cycle=True" if node.repeat else "chain"
    if isinstance(node, RoundRobin):
        return f"round_robin mode={node.mode}"
    if isinstance(node, Apply):
        return "apply: " + " >> ".join(map(repr, node.transforms))
    if isinstance(node, Source):
        return _call("stream", (node.fn, *node.args), node.kwargs)
    if isinstance(node, FromIterable):
        return _call("from_iterable", (node.items,))
    if isinstance(node, FromArrays):
        return _call("from_arrays", (node.data,))
    own = getattr(type(node).__repr__, "__wrapped__", None)  # a kind's own expression, without its name
    if own is not None:  # a node kind of a higher layer (from_npy, from_npz): the expression that built it
        return own(node)
    options = _options(node)  # a node kind this module does not know: its fields, short
    return _call(type(node).__name__, (), options)


def _label(node: Stream) -> str:
    return f"{node.name!r}: {_kind(node)}" if node.name is not None else _kind(node)


def placed_parts(node: Stream, nested: bool = False) -> Iterator[tuple[Stream, bool]]:
    """The parts of ``node`` an executor places, depth first, as ``(part, nested)``: each block node that is
    not inside another (its rows gathered as one part) and each leaf (a source with the transforms directly
    above it) outside them; ``nested`` when the part is a child of a mix, chain or round-robin that runs item
    by item (such a parent opens its leaves through the executor's session: `consumer_leaf`).

    >>> import numpy as np
    >>> from combinators import batch, chain, mix, from_arrays, from_iterable
    >>> rows = mix(from_arrays(np.zeros(2)), from_arrays(np.ones(3)))
    >>> [(type(part).__name__, nested) for part, nested in placed_parts(chain(rows, from_iterable("ab") >> batch(2)))]
    [('Mix', True), ('Apply', True)]
    """
    if is_leaf(node) or block_schema(node) is not None:
        yield node, nested
        return
    for child in node.children:
        yield from placed_parts(child, isinstance(node, (Mix, Chain, RoundRobin)))


def _placements(stream: Stream, executor: Any) -> dict[int, str]:
    """``id(part)``: where ``executor`` runs it (`placed_parts`), from its ``describe_placement(part, nested)``."""
    if executor is None:
        return {}
    if isinstance(executor, str) and _RESOLVER:
        executor = _RESOLVER[0](executor)
    describe = getattr(executor, "describe_placement", None)
    if describe is None:
        msg = f"explain()'s executor must be an executor or its name, got {executor!r} ({type(executor).__name__})"
        raise InvalidArgumentType(msg)
    return {id(part): describe(part, nested) for part, nested in placed_parts(stream)}


class _View(NamedTuple):
    """What `explain` shows beside the nodes: where each placed part runs, the paths marked block path."""

    where: Mapping[int, str]
    marked: set[tuple[int, ...]]
    full: bool
    shapes: dict  # a node's path -> its shape's number (`_shape`)
    numbers: dict  # a shape's parts -> its number

    def marks(self, node: Stream, path: tuple[int, ...]) -> str:
        block = " [block path]" if path in self.marked else ""
        return f"{block}  @ {self.where[id(node)]}" if id(node) in self.where else block


def _marked(root: Stream) -> set[tuple[int, ...]]:
    """The paths of the nodes to mark ``[block path]``."""
    paths = {path: (node, on_block) for path, node, on_block in node_paths(root)}
    return {path for path, (node, on_block) in paths.items()
            if on_block and not (isinstance(node, RowSource) and path and paths[path[:-1]][1])}


def _shape(node: Stream, path: tuple[int, ...], view: _View) -> int:
    """What makes two siblings alike (their kinds, a leaf's arguments aside, marks and children's shapes), as
    a number: alike subtrees get the same one (hash-consed in ``view.numbers``), so each node is shaped once
    and siblings compare in O(1) whatever their depth."""
    known = view.shapes.get(path)
    if known is not None:
        return known
    kind = type(node) if is_source(node) else _kind(node)
    children = tuple(_shape(child, (*path, i), view) for i, child in enumerate(node.children))
    shape = view.numbers.setdefault((kind, node.name is None, view.marks(node, path), children), len(view.numbers))
    view.shapes[path] = shape
    return shape


def _runs(node: Stream, path: tuple[int, ...], view: _View) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of each run of alike consecutive children."""
    start, children = 0, node.children
    shapes = [_shape(child, (*path, i), view) for i, child in enumerate(children)]
    for i in range(1, len(children) + 1):
        if i == len(children) or shapes[i] != shapes[start]:
            yield start, i
            start = i


def _lines(node: Stream, prefix: str, view: _View, path: tuple[int, ...] = ()) -> Iterator[str]:
    children = node.children
    weights = node.probabilities if isinstance(node, Mix) else None
    shown: list[int | tuple[int, int]] = []  # child indices, and (start, stop) of elided runs
    for start, stop in _runs(node, path, view):
        if view.full or stop - start <= _ELIDE_OVER:
            shown.extend(range(start, stop))
        else:
            shown.extend([*range(start, start + _SHOWN), (start + _SHOWN, stop)])
    for k, entry in enumerate(shown):
        last = k == len(shown) - 1
        branch = "└── " if last else "├── "
        if isinstance(entry, tuple):
            rest = f", weights {sum(weights[entry[0]:entry[1]]):.3f} in all" if weights is not None else ""
            yield f"{prefix}{branch}... {entry[1] - entry[0]} more like this{rest}"
            continue
        child, at = children[entry], (*path, entry)
        weight = f"[{weights[entry]:.3f}] " if weights is not None else ""
        yield f"{prefix}{branch}{weight}{_label(child)}{view.marks(child, at)}"
        yield from _lines(child, prefix + ("    " if last else "│   "), view, at)


def explain(stream: Stream, *, executor: Any = None, full: bool = False) -> str:
    """The plan of ``stream`` as text: one node per line, mix weights normalized.

    Runs nothing. Each line shows a node's name (quoted, if it has one), its
    kind and every field that differs from its default (a mix's mode always);
    a mix's children carry their normalized weight in brackets. Arrays and
    long collections are shown by dtype/type and shape/length (`short_repr`).
    Mixes and chains that run on the block path (rows of array or shard
    sources gathered in blocks) end with ``[block path]``. A run of more than
    12 alike siblings (same kinds, arguments aside) shows its first 10 and
    ``... N more like this``; ``full=True`` shows every node.

    ``executor`` (an executor or its name, as `~combinators.iterate` takes)
    marks each part it places (`placed_parts`: a block node, or a leaf with
    the transforms above it) with ``@`` and where it runs, as the executor's
    ``describe_placement(part, nested)`` says, and why: a parallel executor
    keeps a block node's decisions and gathers in the consumer and reads its
    shards in workers when measured costs say so, and runs other leaves in
    workers (in the consumer once measured cheap, or when their rows are in
    memory).

    Raises `InvalidArgumentType` if ``stream`` is not a stream or
    ``executor`` not an executor.

    >>> from combinators import chain, from_iterable, round_robin
    >>> print(explain(chain(from_iterable(range(100)), round_robin(from_iterable("ab"), from_iterable("c"),
    ...                                                             mode="cycle"), cycle=True)))
    chain cycle=True
    ├── from_iterable(range(0, 100))
    └── round_robin mode=cycle
        ├── from_iterable('ab')
        └── from_iterable('c')
    >>> print("\\n".join(explain(chain(*(from_iterable([k]) for k in range(13)))).splitlines()[-2:]))
    ├── from_iterable([9])
    └── ... 3 more like this
    """
    checks.instance_of("the plan of explain()", stream, Stream, "a stream description")
    view = _View(_placements(stream, executor), _marked(stream), full, {}, {})
    return "\n".join([_label(stream) + view.marks(stream, ()), *_lines(stream, "", view)])
