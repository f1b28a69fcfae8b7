"""Row groups: consecutive items alike in structure, packed column-wise by `combinators.execution.remote.wire`.

Items alike in structure (a bare small array, a dict with the same str keys,
or a tuple of the same length; field by field an array of the same dtype and
shape under `OUT_OF_BAND_BYTES`, or a plain int, float or bool) join one
`_RowGroup` in the worker: the bytes of each array field are copied at once,
and the group's ``fields()`` are one array of rows per array field and one
list per plain field, which the wire packs as one msgpack extension. The
consumer turns the decoded fields back into items with `_rows_items`, one
call per column; its arrays are rows of one received array per field.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from combinators.errors import TransportError

#: arrays of at least this many bytes travel as their own zero-copy frame (so they are never in a row group)
OUT_OF_BAND_BYTES = 65536


#: the exact types a column of plain values holds (msgpack keeps each value's type)
_PLAIN = (int, float, bool)
#: what the items of a row group are: a bare array, a dict (str keys) or a tuple of fields
_BARE, _RECORD, _FIELDS = range(3)


class _Rows(list):
    """The items of a row group, as the wire's decoder returns them; `wire.unpack_items` splices them in."""

    __slots__ = ()


def _column_spec(value: Any) -> tuple[np.dtype, tuple[int, ...], bool] | None | bool:
    """What a column starting with ``value`` accepts: ``(dtype, shape, ordered)`` for a small C-contiguous
    array of a plain dtype (``ordered``: whether its order can differ, 2-d and up), None for a plain value
    (`_PLAIN`), False when ``value`` cannot be in a column."""
    kind = type(value)
    if kind is np.ndarray:
        dtype = value.dtype
        if (
            value.ndim and value.flags.c_contiguous and 0 < value.nbytes < OUT_OF_BAND_BYTES and not dtype.hasobject
            and dtype.metadata is None and dtype.fields is None and dtype.subdtype is None
        ):
            return dtype, value.shape, value.ndim > 1
        return False
    return None if kind in _PLAIN else False


def _fits(value: Any, dtype: np.dtype, shape: tuple[int, ...], ordered: bool) -> bool:
    """Whether ``value`` belongs in a column of ``dtype`` and ``shape`` (C order if ``ordered``; a 1-d
    array, contiguous or not, travels as its C-contiguous copy, as on its own)."""
    if type(value) is not np.ndarray or value.shape != shape:
        return False
    if value.dtype is not dtype and (value.dtype != dtype or value.dtype.metadata is not None):
        return False
    return not ordered or value.flags.c_contiguous


class _RowGroup:
    """Consecutive items alike in structure, packed column-wise: the bytes of each array field are copied
    at once (so a source may reuse its buffers) and sent as one array of rows; plain fields as one list.

    The receiver decodes a group with one call per column instead of one per array
    (`_rows_items`); its arrays are row views of one received array per field.
    """

    __slots__ = ("kind", "keys", "specs", "single", "columns", "count", "row_bytes")

    def __init__(self, kind: int, keys: tuple[str, ...], specs: tuple[Any, ...]):
        self.kind, self.keys, self.specs = kind, keys, specs
        self.single = specs[0] if len(specs) == 1 else None  # one array field: checked without a loop
        self.columns: list[list[Any]] = []
        self.count = 0
        self.row_bytes = sum(9 if spec is None else spec[0].itemsize * math.prod(spec[1]) for spec in specs)

    @classmethod
    def start(cls, item: Any) -> _RowGroup | None:
        """A group holding ``item``, or None when ``item`` is not a row (an array, or a dict with str
        keys or a tuple of small arrays and plain values)."""
        kind = type(item)
        if kind is dict:
            keys = tuple(item)
            if set(map(type, keys)) != {str}:  # str keys only (none: an empty dict is no row)
                return None
            values, shape = tuple(item.values()), _RECORD
        elif kind is np.ndarray:
            values, shape, keys = (item,), _BARE, ()
        elif kind is tuple:
            values, shape, keys = item, _FIELDS, ()
        else:
            return None
        specs = tuple(map(_column_spec, values))
        if not specs or False in specs:
            return None
        group = cls(shape, keys, specs)
        group.columns = [[value if spec is None else value.tobytes()] for value, spec in zip(values, specs)]
        group.count = 1
        return group

    def append(self, item: Any) -> bool:
        """Add ``item`` if it has the group's structure (keys, dtypes, shapes); whether it did."""
        kind = self.kind
        if kind == _RECORD:
            if type(item) is not dict or tuple(item) != self.keys:
                return False
            values: Any = item.values()
        elif kind == _FIELDS:
            if type(item) is not tuple or len(item) != len(self.specs):
                return False
            values = item
        else:
            values = (item,)
        if self.single is not None:
            (value,) = values
            if not _fits(value, *self.single):
                return False
            self.columns[0].append(value.tobytes())
            self.count += 1
            return True
        row = []
        for value, spec in zip(values, self.specs):
            if spec is None:
                if type(value) not in _PLAIN:
                    return False
                row.append(value)
            elif _fits(value, *spec):
                row.append(value.tobytes())
            else:
                return False
        for column, value in zip(self.columns, row):
            column.append(value)
        self.count += 1
        return True

    def fields(self) -> list[Any]:
        """The group as ``[kind, keys, count, *columns]``, which the wire packs (as its ext ``_ROWS``) and
        `_rows_items` turns back into items: each array field one array of rows, each plain field one list."""
        columns: list[Any] = []
        for spec, column in zip(self.specs, self.columns):
            if spec is None:
                columns.append(column)
            else:
                dtype, shape, _ = spec
                columns.append(np.frombuffer(b"".join(column), dtype).reshape(self.count, *shape))
        return [self.kind, list(self.keys), self.count, *columns]


def _rows_items(fields: list[Any]) -> list[Any]:
    """The items of a row group from its decoded ``[kind, keys, count, *columns]``.

    Raises `TransportError` when the columns do not hold ``count`` rows each.
    """
    kind, keys, count, *columns = fields
    width = len(keys) if kind == _RECORD else len(columns)
    if not columns or width != len(columns) or (kind == _BARE and width != 1) or any(
        len(column) != count for column in columns
    ):
        msg = f"a malformed row group (kind {kind!r}, {len(keys)} keys, {count!r} rows, {len(columns)} columns)"
        raise TransportError(msg)
    columns = [list(column) if type(column) is np.ndarray else column for column in columns]
    if kind == _BARE:
        return columns[0]
    if kind == _FIELDS:
        return list(zip(*columns))
    if width == 1:
        key = keys[0]
        return [{key: value} for value in columns[0]]
    return [dict(zip(keys, row)) for row in zip(*columns)]
