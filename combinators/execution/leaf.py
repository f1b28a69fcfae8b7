"""One source activation: a source with the transforms directly above it.

`activate_leaf` is what executors run, in-process or in a worker: it derives
its Generators from the run's entropy, the leaf's path and the activation
number, so its items are the same wherever it runs.
"""

from __future__ import annotations

import collections.abc
import itertools
import time
from typing import Any, Callable, Hashable, Iterable, Iterator

import attrs
import cloudpickle
import numpy as np

from combinators.sampling import seeding
from combinators.errors import InvalidArgumentType
from combinators.execution.apply import run_transforms
from combinators.execution.blocks import block_rows, block_transforms, reshapes, row_blocks
from combinators.execution.leaf_seek import Seek, seek
from combinators.plan.sources import FromArrays, FromIterable, RowSource, Source
from combinators.plan.stream import Apply, Stream
from combinators.plan.transforms import Batch, Take

__all__ = ["activate_leaf", "plain_source", "open_plain", "seeks", "probed_leaf", "probed_items", "leaf_kind", "where", "unpicklable_part"]


def _source_items(
    source: Stream, entropy: int, path: tuple[int, ...], activation: tuple[int, ...], start: int = 0
) -> Iterable[Any]:
    """The items of one activation of ``source``, from item ``start`` on (seeking where the source can)."""
    if isinstance(source, Source):
        rng = {"rng": seeding.generator(entropy, path, activation, seeding.SOURCE)} if source.wants_rng else {}
        if source.seeks:
            return source.fn(*source.args, **source.kwargs, **rng, start=start)
        items = source.fn(*source.args, **source.kwargs, **rng)
        return itertools.islice(_iterable(items, source, path), start, None) if start else items
    if isinstance(source, FromIterable):
        items = source.items
        if not start:
            return items
        if isinstance(items, np.ndarray):
            return items[start:]
        if isinstance(items, collections.abc.Sequence):
            return map(items.__getitem__, range(start, len(items)))
        return itertools.islice(items, start, None)
    if isinstance(source, FromArrays):
        if isinstance(source.data, dict):
            return (source[i] for i in range(start, len(source)))
        return iter(source.data[start:])
    if isinstance(source, RowSource):  # shard files: read a block at a time, closed at the end
        return block_rows(row_blocks(source, start))
    msg = f"not a source: {source!r}"
    raise TypeError(msg)


def seeks(leaf: Stream) -> bool:
    """Whether `activate_leaf` reaches item ``start`` of ``leaf`` without making the items before it: a
    ``stream(fn)`` whose ``fn`` takes ``start``, `from_arrays`, `from_iterable` over a sequence, shard files;
    and such a source under transforms that say how many items they took (``batch``, ``take``, ``map``,
    ``unbatch``...: `combinators.execution.leaf_seek`). Other sources, and leaves with a ``filter``,
    ``shuffle`` or ``cache``, make those items and skip them.

    >>> from combinators.plan.sources import from_iterable, stream
    >>> from combinators.plan.transforms import batch, filter
    >>> seeks(from_iterable([1, 2])), seeks(stream(range, 3)), seeks(from_iterable([1, 2]) >> batch(2))
    (True, False, True)
    >>> seeks(from_iterable([1, 2]) >> filter(bool))
    False
    """
    if isinstance(leaf, Apply):
        return seeks(leaf.stream) and seek(leaf.stream, leaf.transforms, 1) is not None
    if isinstance(leaf, Source):
        return leaf.seeks
    if isinstance(leaf, FromIterable):
        return isinstance(leaf.items, (np.ndarray, collections.abc.Sequence))
    return isinstance(leaf, (FromArrays, RowSource))


def probed_leaf(probe: Callable[[int, float], None], *args: Any) -> Iterator[Any]:
    """The items of ``activate_leaf(*args)``, timing the source: ``probe(items, seconds)`` is called when the
    activation ends (exhausted, closed early or raising) with the items it gave and the seconds spent
    starting it and in its ``next()`` calls (`probed_items`).

    >>> from combinators.plan.sources import stream
    >>> seen = []
    >>> list(probed_leaf(lambda items, seconds: seen.append(items), stream(range, 3), 0, (0,), (0,)))
    [0, 1, 2]
    >>> seen
    [3]
    """
    return probed_items(probe, activate_leaf, *args)


def probed_items(probe: Callable[[int, float], None], fn: Callable[..., Iterable[Any]], *args: Any) -> Iterator[Any]:
    """The items of ``fn(*args)``, timed: ``probe(items, seconds)`` is called when it ends (exhausted, closed
    early or raising) with the items it gave and the seconds spent starting it and in its ``next()`` calls.

    >>> seen = []
    >>> list(probed_items(lambda items, seconds: seen.append(items), range, 2)), seen
    ([0, 1], [2])
    """
    clock = time.perf_counter
    count, spent, items = 0, 0.0, None
    try:
        began = clock()
        items = iter(fn(*args))
        spent = clock() - began
        while True:
            began = clock()
            try:
                item = next(items)
            except StopIteration:
                spent += clock() - began
                return
            spent += clock() - began
            count += 1
            yield item
    finally:
        try:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        finally:
            probe(count, spent)


def leaf_kind(leaf: Stream) -> Hashable:
    """What leaves whose items likely cost alike share: the source's function (its code, for functions) or
    type, and the transforms above it with their settings, without the source's arguments.

    >>> from combinators.plan.sources import stream
    >>> from combinators.plan.transforms import batch
    >>> leaf_kind(stream(range, 3)) == leaf_kind(stream(range, 5))
    True
    >>> leaf_kind(stream(range, 3) >> batch(2)) == leaf_kind(stream(range, 3) >> batch(4))
    False
    """
    if isinstance(leaf, Apply):
        return (leaf_kind(leaf.stream), tuple(map(_transform_kind, leaf.transforms)))
    if isinstance(leaf, Source):
        return ("source", _function_key(leaf.fn))
    return (type(leaf).__qualname__,)


def maps_file(leaf: Stream) -> bool:
    """Whether ``leaf``'s source maps a file into memory (`RowSource.maps_file`): it never runs in the consumer.

    >>> from combinators.plan.sources import from_arrays
    >>> maps_file(from_arrays(np.zeros(3)))
    False
    """
    while isinstance(leaf, Apply):
        leaf = leaf.stream
    return isinstance(leaf, RowSource) and leaf.maps_file


def _function_key(fn: Any) -> Hashable:
    """A function's code (the lambdas of one line share it), else the callable itself if hashable."""
    code = getattr(fn, "__code__", None)
    if code is not None:
        return code
    try:
        hash(fn)
    except TypeError:
        return type(fn).__qualname__
    return fn


def _transform_kind(transform: Any) -> Hashable:
    """A transform's type and its settings (functions by their code; unhashable values by their type)."""
    fields = attrs.fields(type(transform)) if attrs.has(type(transform)) else ()
    return (type(transform).__qualname__, *(_function_key(getattr(transform, field.name)) for field in fields))


def where(node: Stream, path: tuple[int, ...]) -> str:
    """``node`` as `explain` shows it, and its place in the plan: what error messages name.

    >>> from combinators.plan.sources import from_iterable
    >>> where(from_iterable("ab"), (0, 1))
    "from_iterable('ab') at path (0, 1)"
    """
    return f"{node!r} at path {path}" if path else f"{node!r} (the root)"


def _parts(node: Stream) -> Iterator[tuple[str, Any]]:
    """(what, value) for each part of a leaf that must be pickled to run it in a worker."""
    if isinstance(node, Apply):
        yield from _parts(node.stream)
        for transform in node.transforms:
            yield f"the transform {transform!r}", transform
    elif isinstance(node, Source):
        fn = node.fn
        code = getattr(fn, "__code__", None)
        if code is not None:
            name = getattr(fn, "__qualname__", repr(fn))
            for variable, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
                yield f"the variable {variable!r} that {name} closes over", cell.cell_contents
            globals_ = getattr(fn, "__globals__", {})
            for variable in code.co_names:
                if variable in globals_:
                    yield f"the global {variable!r} that {name} uses", globals_[variable]
        yield "its function", fn
        for index, arg in enumerate(node.args):
            yield f"its argument {index}", arg
        for keyword, arg in node.kwargs.items():
            yield f"its argument {keyword}=", arg
    elif isinstance(node, FromIterable):
        yield "its items", node.items
    elif isinstance(node, FromArrays):
        yield "its data", node.data


def unpicklable_part(leaf: Stream) -> str | None:
    """What in ``leaf`` cannot be pickled (its value and why), or None.

    >>> import threading
    >>> from combinators.plan.sources import stream
    >>> lock = threading.Lock()
    >>> print(unpicklable_part(stream(range, 3)))
    None
    >>> unpicklable_part(stream(lambda n, held: iter([n]), 3, lock)).split(",")[0]
    'its argument 1'
    """
    for what, value in _parts(leaf):
        try:
            cloudpickle.dumps(value)
        except Exception as error:
            return f"{what}, {_short(value)}: {error}"
    return None


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__qualname__}>"
    return text if len(text) <= 200 else text[:197] + "..."


def activate_leaf(
    leaf: Stream, entropy: int, path: tuple[int, ...], activation: tuple[int, ...], start: int = 0
) -> Iterator[Any]:
    """The items of one activation of ``leaf`` at ``path``, identified by ``activation``, from item ``start`` on.

    A resumed run starts a leaf activation at the number of items its
    consumer had received: a source seeks there (`from_arrays`,
    `from_iterable` over a sequence, a ``stream(fn)`` whose ``fn`` takes
    ``start``) or skips that many items; a source with transforms starts
    at the item their counts give (``batch(b)``: b items per batch; ``take``,
    ``map``, ``unbatch``...: see `combinators.execution.leaf_seek`), or, with
    a ``filter``, ``shuffle`` or ``cache``, runs them from the activation's
    first item and skips ``start`` of their outputs.
    A stream that an ending-mode mix resumes after its budget starts at the
    items of its earlier turns the same way. This runs where the activation
    runs (in a worker under `Processes` and `ZMQ`), so the items before
    ``start`` never travel, and a worker's limit counts the items after them.

    >>> from combinators.plan.sources import from_iterable
    >>> from combinators.plan.transforms import take
    >>> list(activate_leaf(from_iterable("abc") >> take(2), 0, (), (0,)))
    ['a', 'b']
    >>> list(activate_leaf(from_iterable("abcd"), 0, (), (0,), start=2))
    ['c', 'd']
    """
    if isinstance(leaf, Apply):
        sought = seek(leaf.stream, leaf.transforms, start) if start else None
        if sought is None:  # from the first item, skipping ``start`` outputs
            sought, skip = Seek(0, [{} for _ in leaf.transforms], [0] * len(leaf.transforms)), start
        else:  # the source starts where the transforms' counts say (leaf_seek)
            skip = 0
        if _on_blocks(leaf):
            items = row_blocks(leaf.stream, sought.first)
            passed = [cell.get("passed", 0) for cell in sought.cells]
            rows, done = block_transforms(items, leaf.transforms, passed, skips=sought.skips)
        else:
            items, done = _iterate(leaf.stream, entropy, (*path, 0), (*activation, 0), sought.first), 0
            rows = items
        output = run_transforms(rows, leaf.transforms[done:], entropy, path, activation, done, sought.cells[done:],
                                sought.skips[done:])
        return _Pipeline(items, itertools.islice(output, skip, None) if skip else output)
    return _iterate(leaf, entropy, path, activation, start)


def plain_source(leaf: Stream) -> bool:
    """Whether ``leaf`` is a ``stream(fn, ...)`` whose ``fn`` takes neither ``rng`` nor ``start``: an activation of
    it from its first item is ``fn(*args, **kwargs)`` (`open_plain`), whatever its seeds.

    >>> from combinators.plan.sources import stream
    >>> plain_source(stream(range, 3)), plain_source(stream(lambda rng: iter([rng]))), plain_source(stream(range, 3).take(2))
    (True, False, False)
    """
    return isinstance(leaf, Source) and not leaf.wants_rng and not leaf.seeks


def open_plain(leaf: Source, parent: tuple[int, ...], index: int) -> Iterator[Any]:
    """``activate_leaf(leaf, entropy, (*parent, index), activation)`` for a `plain_source` leaf, child ``index`` of
    the node at ``parent``, from its first item: ``fn`` called straight away, nothing asked of the leaf (what a
    working set's replacement does in process). Raises `InvalidArgumentType` naming the source when ``fn``
    returns no iterable.

    >>> from combinators.plan.sources import stream
    >>> list(open_plain(stream(range, 3), (0,), 1))
    [0, 1, 2]
    """
    items = leaf.fn(*leaf.args, **leaf.kwargs)
    try:
        return iter(items)
    except TypeError:
        return _iterable(items, leaf, (*parent, index))  # raises, naming the source


def _on_blocks(leaf: Apply) -> bool:
    """Whether a leaf's first transform takes blocks of rows (`block_transforms`): a row source with a schema
    under a ``batch`` (stacking), ``take``, ``unbatch`` or ``filter`` (without ``rng``); the batches are slices
    of blocks, the same items as stacked rows."""
    first = leaf.transforms[0] if leaf.transforms else None
    on_rows = isinstance(first, Take) or (isinstance(first, Batch) and first.axis is None) or reshapes(first)
    return on_rows and isinstance(leaf.stream, RowSource) and leaf.stream.schema is not None


def _iterate(
    source: Stream, entropy: int, path: tuple[int, ...], activation: tuple[int, ...], start: int = 0
) -> Iterator[Any]:
    """An iterator over a source's items from item ``start`` on; raises `InvalidArgumentType` naming the source if it has none."""
    return _iterable(_source_items(source, entropy, path, activation, start), source, path)


def _iterable(items: Any, source: Stream, path: tuple[int, ...]) -> Iterator[Any]:
    """``iter(items)``, or `InvalidArgumentType` naming ``source`` when its function returned no iterable."""
    try:
        return iter(items)
    except TypeError:
        msg = f"{where(source, path)}: its function returned {_short(items)} ({type(items).__qualname__}), "
        msg += "which is not iterable; a source's function must return an iterable (or be a generator function)"
        raise InvalidArgumentType(msg) from None


class _Pipeline:
    """The output of a leaf's transforms; ``close()`` also closes the source."""

    __slots__ = ("source", "output", "__weakref__")

    def __init__(self, source: Iterator[Any], output: Iterator[Any]):
        self.source, self.output = source, output

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self.output)

    def iterator(self) -> Iterator[Any]:
        """The transforms' output itself (skips this wrapper on the hot path)."""
        return self.output

    def close(self) -> None:
        for part in (self.output, self.source):
            close = getattr(part, "close", None)
            if close is not None:
                close()
