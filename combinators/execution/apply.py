"""How each transform runs: one generator function per transform description.

``run_transforms`` chains them over an upstream iterator. Random transforms
(shuffle, cache) get their own Generator; a map or filter function with an
``rng`` parameter gets one per item, from the seed and the item's position.
"""

from __future__ import annotations

import builtins
import itertools
from typing import Any, Callable, Iterator

import numpy as np
from tqdm.auto import tqdm

from combinators.execution import runstate
from combinators.sampling import seeding
from combinators.execution.collate import split, stack
from combinators.execution.block_stages import map_one_row, wants_rng
from combinators.errors import DataError
from combinators.plan.transforms import (
    Batch, Cache, Filter, KerasTuples, Map, Progress, Shuffle, Take, Transform, Tuples, Unbatch,
)

__all__ = ["run_transforms", "cell_state", "restore_cell"]


class _Place:
    """Where a transform sits: run entropy, node path, activation, transform index."""

    __slots__ = ("entropy", "path", "activation", "index")

    def __init__(self, entropy: int, path: tuple[int, ...], activation: tuple[int, ...], index: int):
        self.entropy, self.path, self.activation, self.index = entropy, path, activation, index

    def generator(self):
        return seeding.generator(self.entropy, self.path, self.activation, seeding.TRANSFORM, self.index)

    def item_generator(self, position: int):
        return seeding.generator(self.entropy, self.path, self.activation, seeding.ITEM, self.index, position)


def _batch(items: Iterator[Any], t: Batch, place: _Place, cell: dict) -> Iterator[Any]:
    # between two batches a batch holds no rows: its state is empty
    while True:
        chunk = list(itertools.islice(items, t.size))
        if len(chunk) == t.size or (chunk and t.partial):
            yield stack(chunk, t.axis)
        if len(chunk) < t.size:
            return


def _unbatch(items: Iterator[Any], t: Unbatch, place: _Place, cell: dict) -> Iterator[Any]:
    rows = cell.setdefault("items", [])  # the current batch's rows not yet passed on, last first
    while True:
        while rows:
            yield rows.pop()
        batch = next(items, _END)
        if batch is _END:
            return
        rows.extend(reversed(list(split(batch))))


def _map(items: Iterator[Any], t: Map, place: _Place, cell: dict) -> Iterator[Any]:
    if t.batched:  # item by item: a block of one row (the block path maps whole blocks, `block_transforms`)
        return (map_one_row(t.fn, item) for item in items)
    if not wants_rng(t.fn):
        return builtins.map(t.fn, items)
    return (out for _, out in _with_rng(items, t.fn, place, cell))


def _filter(items: Iterator[Any], t: Filter, place: _Place, cell: dict) -> Iterator[Any]:
    if not wants_rng(t.predicate):
        return builtins.filter(t.predicate, items)
    return (item for item, keep in _with_rng(items, t.predicate, place, cell) if keep)


def _with_rng(items: Iterator[Any], fn: Callable[..., Any], place: _Place, cell: dict) -> Iterator[tuple[Any, Any]]:
    """``(item, fn(item, rng=...))`` with the item's own Generator; ``cell["position"]`` counts the items."""
    position = cell.setdefault("position", 0)
    for item in items:
        out = fn(item, rng=place.item_generator(position))
        position = cell["position"] = position + 1
        yield item, out


def _take(items: Iterator[Any], t: Take, place: _Place, cell: dict) -> Iterator[Any]:
    passed = cell.setdefault("passed", 0)
    for item in itertools.islice(items, t.n - passed):
        passed = cell["passed"] = passed + 1
        yield item


def _shuffle(items: Iterator[Any], t: Shuffle, place: _Place, cell: dict) -> Iterator[Any]:
    if "rng" not in cell:
        cell.update(rng=place.generator(), items=list(itertools.islice(items, t.buffer_size)), order=None)
    rng, buffer = cell["rng"], cell["items"]
    if cell["order"] is None:
        for item in items:
            slot = int(rng.integers(len(buffer)))
            buffer[slot], item = item, buffer[slot]
            yield item
        cell["order"] = rng.permutation(len(buffer)).tolist()[::-1]  # the drain order, as a stack
    order = cell["order"]
    while order:
        yield buffer[order.pop()]


def _cache(items: Iterator[Any], t: Cache, place: _Place, cell: dict) -> Iterator[Any]:
    """pescador 3's ``maps.cache``, step for step: ends at its first read past the input's end."""
    if "rng" not in cell:
        cell.update(rng=place.generator(), items=[], filling=True)
    rng, cached = cell["rng"], cell["items"]
    if cell["filling"]:
        for item in itertools.islice(items, t.n_cache - len(cached)):
            cached.append(item)
            yield item
        cell["filling"] = False
    if len(cached) < t.n_cache:  # the input ended while the cache was filling
        return
    while True:
        slot = int(rng.integers(t.n_cache))
        if rng.random() <= t.prob:
            try:
                cached[slot] = next(items)
            except StopIteration:
                return
        yield cached[slot]


def _select(item: Any, key: Any) -> Any:
    try:
        return item[key]
    except (TypeError, IndexError) as error:
        msg = f"cannot take key {key!r} from item {item!r} ({type(item).__name__}): {error}"
        raise DataError(msg) from None


def _tuples(items: Iterator[Any], t: Tuples, place: _Place, cell: dict) -> Iterator[Any]:
    for item in items:
        yield tuple(_select(item, key) for key in t.keys)


def _keras_part(item: Any, keys: Any) -> Any:
    if keys is None or keys == ():
        return None
    if isinstance(keys, str):
        return _select(item, keys)
    return [_select(item, key) for key in keys]


def _keras_tuples(items: Iterator[Any], t: KerasTuples, place: _Place, cell: dict) -> Iterator[Any]:
    for item in items:
        yield (_keras_part(item, t.inputs), _keras_part(item, t.outputs))


def _progress(items: Iterator[Any], t: Progress, place: _Place, cell: dict) -> Iterator[Any]:
    return iter(tqdm(items, total=t.total, desc=t.desc))


_END = object()

RUNNERS: dict[type, Callable[[Iterator[Any], Any, _Place, dict], Iterator[Any]]] = {
    Batch: _batch, Unbatch: _unbatch, Map: _map, Filter: _filter, Take: _take, Shuffle: _shuffle,
    Cache: _cache, Tuples: _tuples, KerasTuples: _keras_tuples, Progress: _progress,
}


def run_transforms(
    items: Iterator[Any], transforms: tuple[Transform, ...], entropy: int, path: tuple[int, ...],
    activation: tuple[int, ...], first: int = 0, cells: list[dict] | None = None, skips: list[int] | None = None,
) -> Iterator[Any]:
    """``items`` passed through each transform in order.

    ``first`` is the index of ``transforms[0]`` in its node (its seeds depend on it).
    ``cells[i]`` (a dict per transform) is kept equal to transform ``i``'s
    state between items (see `cell_state`); given non-empty, from
    `restore_cell`, the transform starts from that state. ``skips[i]``
    outputs of transform ``i`` are left out (a resumed leaf, see
    `combinators.execution.leaf_seek`).

    >>> from combinators.plan.transforms import take, batch
    >>> [b.tolist() for b in run_transforms(iter(range(5)), (take(4), batch(2)), 0, (), (0,))]
    [[0, 1], [2, 3]]
    """
    cells = cells if cells is not None else [{} for _ in transforms]
    for index, (t, cell) in enumerate(zip(transforms, cells), first):
        items = RUNNERS[type(t)](iter(items), t, _Place(entropy, path, activation, index), cell)
        if skips and skips[index - first]:
            items = itertools.islice(items, skips[index - first], None)
    return items


def cell_state(cell: dict) -> dict:
    """A transform's state as JSON values: Generators by ``bit_generator.state``, items by `runstate.encode`.

    Raises `RunStateError` naming the type of an item that cannot be encoded.
    """
    out = dict(cell)
    if "rng" in out:
        out["rng"] = out["rng"].bit_generator.state
    if "items" in out:
        out["items"] = runstate.encode(out["items"])
    if out.get("order") is not None:
        out["order"] = list(out["order"])
    return out


def restore_cell(saved: dict) -> dict:
    """The live cell of a transform state taken by `cell_state`."""
    cell = dict(saved)
    if "rng" in cell:
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = cell["rng"]
        cell["rng"] = rng
    if "items" in cell:
        cell["items"] = runstate.decode(cell["items"])
    return cell
