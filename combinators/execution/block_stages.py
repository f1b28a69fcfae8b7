"""``unbatch`` and ``filter`` on blocks of rows: the items of the per-item path, a block at a time.

A block is an array of rows or a dict of arrays of rows (`combinators.execution.blocks`).
``unbatch`` of a block whose rows hold ``k`` sub-rows each (every column with a
leading axis of ``k``) is a reshape ``(n, k, ...) -> (n * k, ...)`` of each column:
a view. ``filter(pred)`` calls ``pred`` once per row, on the row the per-item path
gives it (a dict of read-only row views, or a read-only row), and compresses the
block with the mask. The block path reads its input a block ahead of what it
hands out; the interpreter marks where each input block starts, for the run state
(`combinators.execution.interpreter`).
"""

from __future__ import annotations

import inspect
import itertools
import operator
from typing import Any, Callable, Iterator

import numpy as np

from combinators.errors import DataError
from combinators.execution.collate import split

__all__ = ["wants_rng", "unbatch_blocks", "filter_blocks", "block_row_list", "map_block", "map_one_row"]


def wants_rng(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` has a parameter ``rng`` (a map or filter then gets a Generator per item).

    >>> wants_rng(lambda item, rng: item), wants_rng(len)
    (True, False)
    """
    try:
        return "rng" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def block_row_list(block: Any) -> Iterator[Any]:
    """The rows of ``block`` as the per-item path gives them: ``{key: column[i]}`` for a dict, ``block[i]``
    for an array, read-only views (the block itself is left writeable), made as they are read.

    >>> rows = list(block_row_list({"x": np.arange(2), "y": np.zeros((2, 3))}))
    >>> int(rows[1]["x"]), rows[1]["y"].shape, rows[1]["y"].flags.writeable
    (1, (3,), False)
    """
    if isinstance(block, dict):
        columns = [list(_read_only(column)) for column in block.values()]
        return map(dict, map(zip, itertools.repeat(list(block)), zip(*columns)))
    return iter(list(_read_only(block)))


def _length(block: Any) -> int:
    return len(next(iter(block.values()))) if isinstance(block, dict) else len(block)


def _read_only(column: np.ndarray) -> np.ndarray:
    view = column.view()
    view.flags.writeable = False
    return view


def _unbatched(column: np.ndarray) -> np.ndarray:
    return column.reshape(len(column) * column.shape[1], *column.shape[2:])


def unbatch_blocks(blocks: Iterator[Any]) -> Iterator[Any]:
    """``unbatch()`` over blocks: each block's rows, each split along its leading axis, as one block (views).

    Every column's rows must have one leading length ``k``: else the error of the per-item ``unbatch`` on the
    block's first row (`DataError`, naming the key and lengths) is raised.

    >>> [b.tolist() for b in unbatch_blocks(iter([np.arange(6).reshape(3, 2)]))]
    [[0, 1, 2, 3, 4, 5]]
    """
    for block in blocks:
        columns = list(block.values()) if isinstance(block, dict) else [block]
        if not len(columns[0]):
            continue
        if any(column.ndim < 2 for column in columns) or len({column.shape[1] for column in columns}) != 1:
            list(split(next(block_row_list(block))))  # raises the per-item path's error
            msg = f"cannot unbatch rows of shapes {[column.shape[1:] for column in columns]}"
            raise DataError(msg)
        if isinstance(block, dict):
            yield {key: _unbatched(column) for key, column in block.items()}
        else:
            yield _unbatched(block)


def filter_blocks(predicate: Callable[[Any], Any], blocks: Iterator[Any]) -> Iterator[Any]:
    """``filter(predicate)`` over blocks: each block's rows for which ``predicate(row)`` is true, as a block.

    ``predicate`` is called once per row, in order, on the row the per-item path gives it
    (`block_row_list`). When it raises, the rows kept before that one are handed on first, then the
    error propagates, as on the per-item path.

    >>> [b.tolist() for b in filter_blocks(lambda x: x % 2, iter([np.arange(5)]))]
    [[1, 3]]
    """
    for block in blocks:
        kept: list[bool] = []
        try:
            kept.extend(map(operator.truth, map(predicate, block_row_list(block))))  # one call per row, in C
        except Exception:
            if any(kept):  # the rows before the one that raised
                yield _compress(_cut(block, 0, len(kept)), np.array(kept, dtype=bool))
            raise
        if any(kept):
            yield _compress(block, np.array(kept, dtype=bool))


def _cut(block: Any, start: int, stop: int) -> Any:
    if isinstance(block, dict):
        return {key: value[start:stop] for key, value in block.items()}
    return block[start:stop]


def _compress(block: Any, mask: np.ndarray) -> Any:
    if isinstance(block, dict):
        return {key: column[mask] for key, column in block.items()}
    return block[mask]


def map_block(fn: Callable[[Any], Any], block: Any) -> Any:
    """``fn(block)`` for a ``map(fn, batched=True)``: a block of as many rows, or `DataError` naming ``fn``.

    >>> map_block(lambda rows: rows + 1, np.arange(3)).tolist()
    [1, 2, 3]
    """
    out = fn(block)
    n, got = _length(block), _length(out) if isinstance(out, (dict, np.ndarray)) else None
    if got != n:
        what = f"{got} rows" if got is not None else f"a {type(out).__name__}"
        msg = f"map({fn!r}, batched=True) returned {what} for a block of {n} rows (an array or a dict of arrays of {n})"
        raise DataError(msg)
    return out


def map_one_row(fn: Callable[[Any], Any], item: Any) -> Any:
    """A ``map(fn, batched=True)`` on one item: ``fn`` of a block of that one row, and row 0 of its result.

    >>> map_one_row(lambda rows: {"x": rows["x"] * 2}, {"x": np.float32(1.5)})
    {'x': np.float32(3.0)}
    """
    if isinstance(item, dict):
        out = map_block(fn, {key: np.asarray(value)[None] for key, value in item.items()})
    else:
        out = map_block(fn, np.asarray(item)[None])
    return {key: value[0] for key, value in out.items()} if isinstance(out, dict) else out[0]
