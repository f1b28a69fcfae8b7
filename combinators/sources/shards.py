"""Shard sources: the rows of ``.npy`` and ``.npz`` files, with random access.

A shard source reads its file's header when it is built (to know its length,
dtype and row shape) and opens the file only while an activation runs: a mix
of 10,000 shards holds no more files open than its working set (plus the
activation chosen ahead). They are row sources, so mixes and chains of shards
with one schema run on the block path.

>>> import tempfile, os
>>> folder = tempfile.mkdtemp()
>>> np.save(os.path.join(folder, "a.npy"), np.arange(6, dtype=np.float32).reshape(3, 2))
>>> s = from_npy(os.path.join(folder, "a.npy"))
>>> len(s), [row.tolist() for row in s]
(3, [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
>>> os.remove(os.path.join(folder, "a.npy")); os.rmdir(folder)
"""

from __future__ import annotations

import io
import math
import os
import weakref
import zipfile
from typing import Any, BinaryIO

import attrs
import numpy as np

from combinators.plan.description import call_repr
from combinators.errors import DataError, InvalidArgument
from combinators.plan.sources import OpenArrays, RowSource, row_schema

__all__ = ["FromNpy", "FromNpz", "ReadRows", "from_npy", "from_npz"]

#: how a shard opens its ``.npy`` file: None reads rows with ``pread`` as they are gathered (the default),
#: ``"r"``/``"c"`` map it (numpy.memmap's modes; an explicit opt-in: see `from_npy`)
MMAP_MODES = (None, "r", "c")
#: the header bytes of each live `FromNpy` (by id, with a weak reference to it) when an activation last found
#: them unchanged: the next activations compare bytes instead of parsing the header again (a description's
#: hash is structural, so the objects themselves are not keys)
_HEADERS: dict[int, tuple[weakref.ref, bytes]] = {}
#: buffers one ``os.preadv`` takes at most (a longer run of rows is read in several calls)
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") and "SC_IOV_MAX" in os.sysconf_names else 1024


def _read_header(file: BinaryIO, where: str) -> tuple[tuple[int, ...], np.dtype, bool]:
    """The shape, dtype and Fortran order in a ``.npy`` header (versions 1 to 3; 3 differs from 2 only in encoding)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(file)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran_order, dtype = read(file)
    except ValueError as error:
        msg = f"{where} is not a .npy array: {error}"
        raise DataError(msg) from None
    if dtype.hasobject:
        msg = f"{where} holds Python objects (dtype {dtype}); shard sources read numeric arrays only"
        raise DataError(msg)
    if not shape:
        msg = f"{where} holds a 0-d array; shard sources need rows"
        raise DataError(msg)
    return shape, dtype, fortran_order


def _fake(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A zero-stride array with the given shape and dtype (for `row_schema`), no memory."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype=dtype), shape=shape, strides=(0,) * len(shape))


def _existing(path: Any, what: str) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        msg = f"{what}: no such file {path!r}"
        raise InvalidArgument(msg)
    return path


@attrs.frozen(eq=False, repr=False)
class FromNpy(RowSource):
    """A source over the rows of one ``.npy`` file; see `from_npy`."""

    path: str = attrs.field(converter=lambda p: _existing(p, "from_npy()"))
    mmap_mode: str | None = attrs.field(default=None)
    shape: tuple[int, ...] = attrs.field(init=False)
    dtype: np.dtype = attrs.field(init=False)
    fortran_order: bool = attrs.field(init=False)
    offset: int = attrs.field(init=False)  # where the data starts in the file

    def __attrs_post_init__(self) -> None:
        if self.mmap_mode not in MMAP_MODES:
            msg = f"from_npy() mmap_mode must be one of {MMAP_MODES}, got {self.mmap_mode!r}"
            raise InvalidArgument(msg)
        with open(self.path, "rb") as file:
            shape, dtype, fortran_order = _read_header(file, repr(self.path))
            offset = file.tell()
        for name, value in (("shape", shape), ("dtype", dtype), ("fortran_order", fortran_order), ("offset", offset)):
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def schema(self) -> Any:
        return row_schema(_fake(self.shape, self.dtype))

    @property
    def maps_file(self) -> bool:
        """Whether an activation maps the file (``mmap_mode`` given): reading it may then raise SIGBUS."""
        return self.mmap_mode is not None

    def _check_unchanged(self, fd: int) -> None:
        """Raise `DataError` when the header of the file open as ``fd`` no longer says what it said when the plan
        was built: rows read with the plan's dtype, shape and offset would be wrong, silently."""
        header = os.pread(fd, self.offset, 0)
        known = _HEADERS.get(id(self))
        if known is not None and known[0]() is self and known[1] == header:  # as when last checked
            return
        file = io.BytesIO(header)
        shape, dtype, fortran_order = _read_header(file, repr(self.path))
        now = (shape, dtype, fortran_order, file.tell())
        then = (self.shape, self.dtype, self.fortran_order, self.offset)
        if now != then:
            names = ("shape", "dtype", "fortran_order", "data offset")
            msg = (f"{self.path!r} changed since the plan was built: its header now says "
                   f"{', '.join(f'{n} {v!r}' for n, v in zip(names, now))}; the plan has "
                   f"{', '.join(f'{n} {v!r}' for n, v in zip(names, then))}. Build the plan again")
            raise DataError(msg)
        _HEADERS[id(self)] = (weakref.ref(self, lambda _, key=id(self), known=_HEADERS: known.pop(key, None)), header)

    def open(self) -> OpenArrays | ReadRows:
        rows = ReadRows(self.path, self.dtype, self.shape, self.offset)  # the file, opened once: checked, then read
        try:
            self._check_unchanged(rows.fd)
            opened = self._rows(rows)
        except BaseException:
            rows.close()
            raise
        if opened is not rows:  # the rows are in memory (or mapped): the file is not needed open
            rows.close()
        return opened

    def _rows(self, rows: ReadRows) -> OpenArrays | ReadRows:
        """The activation's rows: ``rows`` (read as asked), or all of them in memory or mapped."""
        if not len(self):  # an empty file cannot be mapped, and has no rows to read
            return OpenArrays(np.empty(self.shape, self.dtype), 0)
        if self.mmap_mode is not None:
            order = "F" if self.fortran_order else "C"
            mapped = np.memmap(self.path, self.dtype, self.mmap_mode, self.offset, self.shape, order)
            return OpenArrays(mapped.view(np.ndarray), len(self))  # the map lives on as the view's base
        if self.fortran_order and len(self.shape) > 1:  # a row is not contiguous in the file: read it whole
            return OpenArrays(rows.read(0, len(self), flat=True).reshape(self.shape, order="F"), len(self))
        return rows

    def __repr__(self) -> str:
        return call_repr("from_npy", (self.path,), {} if self.mmap_mode is None else {"mmap_mode": self.mmap_mode})


class ReadRows:
    """An open ``.npy`` activation whose rows are read with ``os.preadv`` when asked for (a fresh array each time).

    A file cut short (truncated while it is read, or before) gives a
    `DataError` naming the file and the first row missing, never a signal.
    """

    __slots__ = ("path", "dtype", "row_shape", "row_items", "row_bytes", "offset", "length", "fd")

    def __init__(self, path: str, dtype: np.dtype, shape: tuple[int, ...], offset: int):
        self.path, self.dtype, self.row_shape, self.offset, self.length = path, dtype, shape[1:], offset, shape[0]
        self.row_items = math.prod(self.row_shape)
        self.row_bytes = self.row_items * dtype.itemsize
        self.fd: int | None = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def __len__(self) -> int:
        return self.length

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (clipped to the file's rows), read now: shape ``(count, *row_shape)``."""
        return self.read(start, stop)

    def read(self, start: int, stop: int, flat: bool = False) -> np.ndarray:
        start, stop = min(start, self.length), min(max(start, stop), self.length)
        count = stop - start
        array = np.empty(count * self.row_items, self.dtype)
        self._fill(memoryview(array.view(np.uint8)), self.offset + start * self.row_bytes, start)
        return array if flat else array.reshape((count, *self.row_shape))

    def read_runs(self, starts: list[int], counts: list[int], out: np.ndarray, places: list[int]) -> None:
        """Rows ``starts[i] : starts[i] + counts[i]`` of each run ``i``: the ``j``-th of all of them (run after
        run) is read into ``out[places[j]]``.

        ``starts`` ascend, the runs within the file's rows; ``out`` is
        C-contiguous, of dtype ``dtype`` and rows of shape ``row_shape``;
        ``places`` (``sum(counts)`` rows of ``out``) are distinct. Each run is
        one ``os.preadv`` that scatters its rows to their places (more only
        where the system returns less, or a run holds more rows than one call
        takes buffers, ``SC_IOV_MAX``): no byte outside the runs is read (a
        data-parallel rank reads no row of another's), and no array is made
        or copied per run.

        Raises `InvalidArgument` for runs outside the rows or places outside
        ``out``, or an ``out`` of another dtype, row shape or layout;
        `DataError` for a file cut short (naming the file and the first row
        missing) or closed.

        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "a.npy")
        >>> np.save(path, np.arange(12, dtype=np.int16).reshape(6, 2))
        >>> rows, out = from_npy(path).open(), np.zeros((4, 2), np.int16)
        >>> rows.read_runs([1, 4], [1, 2], out, [3, 0, 1])  # rows 1, 4, 5 to places 3, 0, 1
        >>> out.tolist()
        [[8, 9], [10, 11], [0, 0], [2, 3]]
        >>> rows.close(); os.remove(path); os.rmdir(os.path.dirname(path))
        """
        self._check_runs(starts, counts, out, places)
        if counts and max(counts) > _IOV_MAX:
            starts, counts = _split_runs(starts, counts)
        fd, size, base, preadv = self.fd, self.row_bytes, self.offset, os.preadv
        flat, j = memoryview(out).cast("B"), 0
        for start, count in zip(starts, counts):
            if count == 1:  # most runs of a rank's rows (no list of places to make)
                at = places[j] * size
                views = [flat[at : at + size]]
            else:
                views = [flat[p * size : p * size + size] for p in places[j : j + count]]
            if preadv(fd, views, base + start * size) != count * size:  # short: the rest, or a file cut short
                self._fill_rows(views, start)
            j += count

    def _fill_rows(self, views: list[memoryview], start: int) -> None:
        """Read again rows ``start, start + 1, ...`` into ``views`` (one row each), those of a short read of a
        run (`DataError` for a file cut short)."""
        for i, view in enumerate(views):
            self._fill(view, self.offset + (start + i) * self.row_bytes, start + i)

    def _check_runs(self, starts: list[int], counts: list[int], out: np.ndarray, places: list[int]) -> None:
        """`read_runs`' arguments checked (`InvalidArgument`), and the file open (`DataError`)."""
        fits = out.dtype == self.dtype and out.shape[1:] == self.row_shape and out.flags.c_contiguous
        inside = not starts or (starts[0] >= 0 and starts[-1] + counts[-1] <= self.length)
        placed = len(places) == sum(counts) and (not places or (min(places) >= 0 and max(places) < len(out)))
        if not (fits and inside and placed):
            msg = (f"read_runs() of {self.path!r} ({self.length} rows of shape {self.row_shape}, {self.dtype}): runs "
                   f"of {sum(counts)} rows from row {starts[:1]} to {starts[-1:]}, to {len(places)} places from "
                   f"{min(places, default=None)} to {max(places, default=None)} of an out of shape {out.shape}, "
                   f"{out.dtype}{'' if out.flags.c_contiguous else ', not C-contiguous'}")
            raise InvalidArgument(msg)
        if self.fd is None:
            msg = f"{self.path!r} was closed"
            raise DataError(msg)

    def _fill(self, view: memoryview, where: int, start: int, done: int = 0) -> None:
        """Read ``len(view)`` bytes from file offset ``where`` into ``view`` (row ``start`` is the first, ``done``
        of its bytes read already); a file cut short raises `DataError` naming the first row missing."""
        if self.fd is None:
            msg = f"{self.path!r} was closed"
            raise DataError(msg)
        size, got = len(view), 0
        while got < size:
            step = os.preadv(self.fd, [view[got:]], where + got)
            if not step:
                row = start + (done + got) // max(self.row_bytes, 1)
                msg = (f"{self.path!r} was cut short: row {row} of its {self.length} rows ends past its last byte "
                       f"({os.fstat(self.fd).st_size} bytes; the header promises "
                       f"{self.offset + self.length * self.row_bytes})")
                raise DataError(msg)
            got += step

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        self.close()


def _split_runs(starts: list[int], counts: list[int]) -> tuple[list[int], list[int]]:
    """The runs ``(starts, counts)`` cut into runs of at most `_IOV_MAX` rows."""
    cut = [(start + at, min(_IOV_MAX, count - at)) for start, count in zip(starts, counts)
           for at in range(0, count, _IOV_MAX)]
    return [start for start, _ in cut], [count for _, count in cut]


def from_npy(path: str | os.PathLike, mmap_mode: str | None = None) -> FromNpy:
    """A stream over the rows of a ``.npy`` file, opened only while an activation runs.

    By default rows are read with ``pread`` when they are gathered (a block
    of about 2 MiB at a time), into fresh arrays: a file truncated while it
    is read raises `DataError` naming the file and the row. Rows are those of
    ``np.load(path)``: ``(n, *row_shape)`` gives rows of shape ``row_shape``.

    ``mmap_mode="r"`` (or ``"c"``) maps the file instead, an explicit opt-in:
    the operating system then reads the rows, and a file truncated while it is
    mapped kills the process that touches the lost pages with SIGBUS (Python
    cannot catch it). Mapped shards therefore never run in the consumer of a
    parallel executor (placement never moves them there, and they stay off the
    block path, whose gathers run in the consumer); in process, the risk is
    the caller's.

    Raises `InvalidArgument` for a missing file or an unknown ``mmap_mode``,
    `DataError` for a file that is not a numeric ``.npy`` array with rows,
    (when its rows are read) a file cut short, or (when an activation opens
    it) a file whose header changed since the plan was built (another
    dtype, shape or layout: the rows would be read wrong).

    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "a.npy")
    >>> np.save(path, np.arange(8, dtype=np.int16).reshape(4, 2))
    >>> [row.tolist() for row in from_npy(path)]
    [[0, 1], [2, 3], [4, 5], [6, 7]]
    >>> os.truncate(path, os.path.getsize(path) - 4)  # the last row is lost
    >>> list(from_npy(path))
    Traceback (most recent call last):
    ...
    combinators.errors.DataError: '...a.npy' was cut short: row 3 of its 4 rows ends past its last byte (140 bytes; the header promises 144)
    >>> os.remove(path); os.rmdir(folder)
    """
    return FromNpy(path, mmap_mode)


def _npz_headers(path: str, keys: tuple[str, ...] | None) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        msg = f"from_npz(): {path!r} is not an .npz file: {error}"
        raise DataError(msg) from None
    with archive:
        members = [name[: -len(".npy")] for name in archive.namelist() if name.endswith(".npy")]
        missing = sorted(set(keys or ()) - set(members))
        if missing:
            msg = f"from_npz(): {path!r} has no arrays {missing}; it has {members}"
            raise InvalidArgument(msg)
        headers = {}
        for key in keys or members:
            with archive.open(f"{key}.npy") as file:
                headers[key] = _read_header(file, f"array {key!r} of {path!r}")[:2]
    lengths = {key: shape[0] for key, (shape, _) in headers.items()}
    if len(set(lengths.values())) > 1:
        msg = f"from_npz(): the arrays of {path!r} have unequal lengths {lengths}"
        raise DataError(msg)
    if not headers:
        msg = f"from_npz(): {path!r} holds no arrays"
        raise DataError(msg)
    return headers


def _keys(keys: Any) -> tuple[str, ...] | None:
    if keys is None:
        return None
    keys = (keys,) if isinstance(keys, str) else tuple(keys)
    if not keys or not all(isinstance(k, str) for k in keys):
        msg = f"from_npz() keys must be a non-empty sequence of names, got {keys!r}"
        raise InvalidArgument(msg)
    return keys


@attrs.frozen(eq=False, repr=False)
class FromNpz(RowSource):
    """A source over dict rows of the arrays of one ``.npz`` file; see `from_npz`."""

    path: str = attrs.field(converter=lambda p: _existing(p, "from_npz()"))
    keys: tuple[str, ...] | None = attrs.field(default=None, converter=_keys)
    headers: dict = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "headers", _npz_headers(self.path, self.keys))

    def __len__(self) -> int:
        return next(iter(self.headers.values()))[0][0]

    @property
    def schema(self) -> Any:
        return row_schema({key: _fake(shape, dtype) for key, (shape, dtype) in self.headers.items()})

    def open(self) -> OpenArrays:
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in self.headers}
        except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
            msg = f"{self.path!r} could not be read as the .npz the plan was built on: {error}"
            raise DataError(msg) from None
        changed = {key: (a.shape, a.dtype) for key, a in arrays.items() if (a.shape, a.dtype) != self.headers[key]}
        if changed:
            msg = (f"{self.path!r} changed since the plan was built: arrays {changed} (shape, dtype) were "
                   f"{ {key: self.headers[key] for key in changed} }. Build the plan again")
            raise DataError(msg)
        return OpenArrays(arrays, len(self))

    def __repr__(self) -> str:
        return call_repr("from_npz", (self.path,), {} if self.keys is None else {"keys": self.keys})


def from_npz(path: str | os.PathLike, keys: str | tuple[str, ...] | None = None) -> FromNpz:
    """A stream of dict rows ``{key: array[i]}`` over the arrays of a ``.npz`` file.

    ``keys`` names the arrays to read (all of them, in file order, by
    default). An activation reads those arrays whole (``.npz`` members cannot
    be memory-mapped; compressed files work) and closes the file at once, so
    a working set holds the rows of its activations in memory and no file
    open. For out-of-core shards, use `from_npy`.

    Raises `InvalidArgument` for a missing file or key, `DataError` for a
    file that is not an ``.npz`` of numeric arrays of equal length, or (when
    an activation opens it) one that is gone or whose arrays changed shape
    or dtype since the plan was built.
    """
    return FromNpz(path, keys)
