"""How each transform runs: one generator function per transform description.

``run_transforms`` chains them over an upstream iterator. Random transforms
(shuffle, cache) get their own Generator; a map or filter function with an
``rng`` parameter gets one per item, from the seed and the item's position.
"""

from __future__ import annotations

import builtins
import inspect
import itertools
from typing import Any, Callable, Iterator

from tqdm.auto import tqdm

from combinators import seeding
from combinators.collate import split, stack
from combinators.errors import DataError
from combinators.transforms import (
    Batch, Cache, Filter, KerasTuples, Map, Progress, Shuffle, Take, Transform, Tuples, Unbatch,
)

__all__ = ["run_transforms"]


class _Place:
    """Where a transform sits: run entropy, node path, activation, transform index."""

    __slots__ = ("entropy", "path", "activation", "index")

    def __init__(self, entropy: int, path: tuple[int, ...], activation: tuple[int, ...], index: int):
        self.entropy, self.path, self.activation, self.index = entropy, path, activation, index

    def generator(self):
        return seeding.generator(self.entropy, self.path, self.activation, seeding.TRANSFORM, self.index)

    def item_generator(self, position: int):
        return seeding.generator(self.entropy, self.path, self.activation, seeding.ITEM, self.index, position)


def _wants_rng(fn: Callable[..., Any]) -> bool:
    try:
        return "rng" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _batch(items: Iterator[Any], t: Batch, place: _Place) -> Iterator[Any]:
    while True:
        chunk = list(itertools.islice(items, t.size))
        if len(chunk) == t.size or (chunk and t.partial):
            yield stack(chunk, t.axis)
        if len(chunk) < t.size:
            return


def _unbatch(items: Iterator[Any], t: Unbatch, place: _Place) -> Iterator[Any]:
    for batch in items:
        yield from split(batch)


def _map(items: Iterator[Any], t: Map, place: _Place) -> Iterator[Any]:
    if not _wants_rng(t.fn):
        return builtins.map(t.fn, items)
    return (t.fn(item, rng=place.item_generator(i)) for i, item in enumerate(items))


def _filter(items: Iterator[Any], t: Filter, place: _Place) -> Iterator[Any]:
    if not _wants_rng(t.predicate):
        return builtins.filter(t.predicate, items)
    return (item for i, item in enumerate(items) if t.predicate(item, rng=place.item_generator(i)))


def _take(items: Iterator[Any], t: Take, place: _Place) -> Iterator[Any]:
    return itertools.islice(items, t.n)


def _shuffle(items: Iterator[Any], t: Shuffle, place: _Place) -> Iterator[Any]:
    rng = place.generator()
    buffer = list(itertools.islice(items, t.buffer_size))
    for item in items:
        slot = int(rng.integers(len(buffer)))
        buffer[slot], item = item, buffer[slot]
        yield item
    for slot in rng.permutation(len(buffer)).tolist():
        yield buffer[slot]


def _cache(items: Iterator[Any], t: Cache, place: _Place) -> Iterator[Any]:
    """pescador 3's ``maps.cache``, step for step: ends at its first read past the input's end."""
    rng = place.generator()
    cached = []
    for item in itertools.islice(items, t.n_cache):
        cached.append(item)
        yield item
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


def _tuples(items: Iterator[Any], t: Tuples, place: _Place) -> Iterator[Any]:
    for item in items:
        yield tuple(_select(item, key) for key in t.keys)


def _keras_part(item: Any, keys: Any) -> Any:
    if keys is None or keys == ():
        return None
    if isinstance(keys, str):
        return _select(item, keys)
    return [_select(item, key) for key in keys]


def _keras_tuples(items: Iterator[Any], t: KerasTuples, place: _Place) -> Iterator[Any]:
    for item in items:
        yield (_keras_part(item, t.inputs), _keras_part(item, t.outputs))


def _progress(items: Iterator[Any], t: Progress, place: _Place) -> Iterator[Any]:
    return iter(tqdm(items, total=t.total, desc=t.desc))


RUNNERS: dict[type, Callable[[Iterator[Any], Any, _Place], Iterator[Any]]] = {
    Batch: _batch, Unbatch: _unbatch, Map: _map, Filter: _filter, Take: _take, Shuffle: _shuffle,
    Cache: _cache, Tuples: _tuples, KerasTuples: _keras_tuples, Progress: _progress,
}


def run_transforms(
    items: Iterator[Any], transforms: tuple[Transform, ...], entropy: int, path: tuple[int, ...],
    activation: tuple[int, ...], first: int = 0,
) -> Iterator[Any]:
    """``items`` passed through each transform in order.

    ``first`` is the index of ``transforms[0]`` in its node (its seeds depend on it).

    >>> from combinators.transforms import take, batch
    >>> [b.tolist() for b in run_transforms(iter(range(5)), (take(4), batch(2)), 0, (), (0,))]
    [[0, 1], [2, 3]]
    """
    for index, t in enumerate(transforms, first):
        items = RUNNERS[type(t)](iter(items), t, _Place(entropy, path, activation, index))
    return items
