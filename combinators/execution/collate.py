"""Stacking items into batches and splitting batches back into items.

>>> b = stack([{"x": np.zeros(2), "y": 1}, {"x": np.ones(2), "y": 0}])
>>> b["x"].shape, b["y"].tolist()
((2, 2), [1, 0])
>>> [int(item["y"]) for item in split(b)]
[1, 0]
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any, Iterator, Sequence

import numpy as np

from combinators.errors import DataError

__all__ = ["stack", "split"]


_dtype = operator.attrgetter("dtype")


def _stack_uniform(values: Sequence[Any], first: np.ndarray) -> np.ndarray | None:
    """``np.stack(values)`` for plain ndarrays of one (non-object) dtype, without its checks; None for others.

    The shapes are not compared beforehand: numpy refuses ragged arrays of a
    non-object dtype (``ValueError``, as ``np.stack`` does), and the result's
    shape is checked after. The checks run in C (map, set).
    """
    dtype = first.dtype
    if dtype.hasobject or set(map(type, values)) != {np.ndarray} or len(set(map(_dtype, values))) != 1:
        return None
    stacked = np.array(values, dtype=dtype)
    return stacked if stacked.shape[1:] == first.shape else None


def _shapes(values: Sequence[Any]) -> list[tuple[int, ...]]:
    return [np.shape(v) for v in values]


def _stack_leaf(values: Sequence[Any], axis: int | None, where: str) -> np.ndarray:
    try:
        if axis is None:
            first = values[0]
            if isinstance(first, np.ndarray):
                stacked = _stack_uniform(values, first)
                return stacked if stacked is not None else np.stack(values)
            stacked = np.asarray(values)
            if stacked.dtype.kind == "f" and all(type(v) is int for v in values):
                # ints beyond int64 would be rounded to float64: keep them exact
                stacked = np.array(values, dtype=object)
            return stacked
        return np.concatenate(values, axis=axis)
    except (ValueError, TypeError) as error:
        shapes = sorted(set(_shapes(values)))
        msg = f"cannot batch {where}: shapes {shapes} do not match ({error})"
        raise DataError(msg) from None


def _is_leaf(value: Any) -> bool:
    """Neither a mapping nor a tuple: stacked by `_stack_leaf` (arrays, numbers, strings...)."""
    return type(value) in _LEAF_TYPES or not isinstance(value, (Mapping, tuple))


#: common leaf types, recognized without the (slow) abstract-class check
_LEAF_TYPES = frozenset({np.ndarray, int, float, bool, str, bytes})


def _dict_columns(items: Sequence[Any], first: dict) -> dict[Any, list[Any]] | None:
    """Plain dicts with the keys of ``first``: their values key by key; None for others (`stack` then says why).

    As many keys as ``first`` and each of its keys found is the same set of
    keys (cheaper than comparing key views, item by item).
    """
    if set(map(type, items)) != {dict} or set(map(len, items)) != {len(first)}:
        return None
    try:
        return {k: [item[k] for item in items] for k in first}
    except KeyError:
        return None


def stack(items: Sequence[Any], axis: int | None = None, where: str = "items") -> Any:
    """Combine items into one batch: dicts key by key, tuples position by position.

    Arrays are stacked along a new leading axis (or concatenated along
    ``axis``); scalars become a 1-D array. Raises `DataError` naming the key
    (or position) and the shapes when the items do not match.
    """
    first = items[0]
    columns = _dict_columns(items, first) if type(first) is dict else None
    if columns is not None:
        return {k: _stack_leaf(column, axis, f"key {k!r}") if _is_leaf(first[k]) else stack(column, axis, f"key {k!r}")
                for k, column in columns.items()}
    if isinstance(first, dict) or (not isinstance(first, tuple) and isinstance(first, Mapping)):
        keys = first.keys()
        for item in items:
            if (type(item) is not dict and not isinstance(item, Mapping)) or item.keys() != keys:
                found = sorted(item) if isinstance(item, Mapping) else type(item).__name__
                msg = f"cannot batch {where}: keys {sorted(keys)} and {found} differ"
                raise DataError(msg)
        return {k: stack([item[k] for item in items], axis, f"key {k!r}") for k in keys}
    if isinstance(first, tuple):
        width = len(first)
        for item in items:
            if not isinstance(item, tuple) or len(item) != width:
                msg = f"cannot batch {where}: a tuple of length {width} and {item!r} differ"
                raise DataError(msg)
        return tuple(stack(list(column), axis, f"position {i}") for i, column in enumerate(zip(*items)))
    return _stack_leaf(items, axis, where)


def _length(batch: Any, where: str = "batch") -> int:
    if isinstance(batch, Mapping):
        lengths = {k: _length(v, f"key {k!r}") for k, v in batch.items()}
        if len(set(lengths.values())) != 1:
            msg = f"cannot unbatch: lengths differ across keys {lengths}"
            raise DataError(msg)
        return next(iter(lengths.values()))
    if isinstance(batch, tuple):
        lengths = [_length(v, f"position {i}") for i, v in enumerate(batch)]
        if len(set(lengths)) != 1:
            msg = f"cannot unbatch: lengths differ across positions {lengths}"
            raise DataError(msg)
        return lengths[0]
    if np.ndim(batch) == 0:
        msg = f"cannot unbatch {where}: {batch!r} has no leading axis"
        raise DataError(msg)
    return len(batch)


def _row(batch: Any, index: int) -> Any:
    if isinstance(batch, Mapping):
        return {k: _row(v, index) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(_row(v, index) for v in batch)
    return batch[index]


def split(batch: Any) -> Iterator[Any]:
    """The items of a batch along its leading axis: the inverse of `stack`.

    Raises `DataError` when the parts of the batch have different lengths.
    """
    for index in range(_length(batch)):
        yield _row(batch, index)
