"""`LMDBArchive`: a persistent `Archive` in an LMDB environment (one directory: two LMDB files and the key locks).

Many processes may read and write at once. Each entry is one record: a
header (`_HEAD`: format, flags, created time, compute seconds, payload size
and checksum, lengths of the version and full key), the version, the full key
of a long key, and the serialized value. The per-function summaries are
kept in the same write transactions (`combinators.memo.catalog`); opening and
checking the environment's files is `combinators.memo.lmdb_env`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import threading
import time
import weakref
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import attrs
import lmdb
import xxhash

from combinators.errors import (
    ArchiveError,
    CorruptEntry,
    InvalidArgument,
    InvalidArgumentType,
    ReadOnlyArchive,
    SerializerMismatch,
)
from combinators.memo import catalog as _catalog
from combinators.memo import key_locks as _key_locks
from combinators.memo import limits as _limits
from combinators.memo.archives import _MISSING, Archive, EntryInfo
from combinators.memo.lmdb_env import _check_file, _check_place, _resized, _Shared, open_env
from combinators.memo.serializers import Serializer, serializer as _serializer

__all__ = ["LMDBArchive"]

#: entry header: format, flags, created (s since epoch, UTC), compute seconds,
#: payload size, payload xxh64, version length, full-key length
_HEAD = struct.Struct("<BBddQQHH")
_FORMAT = 1
_LONG = 1  # flag: the record holds the full key (stored under a digest)
_DURABILITY = {"sync": {"sync": True, "metasync": True}, "process": {"sync": False, "metasync": False}}
_OPEN: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # id -> archive
_SHARED: dict[str, _Shared] = {}  # real path -> the process's one environment there
_SHARED_LOCK = threading.RLock()  # re-entrant: a garbage-collected archive may close inside it


def _after_fork_in_child() -> None:
    """LMDB forbids using an environment opened before fork: the child closes them and reopens."""
    for archive in list(_OPEN.values()):
        archive._env, archive._locks = None, None
    global _SHARED_LOCK
    _SHARED_LOCK = threading.RLock()  # another thread may have held it at the fork
    for shared in _SHARED.values():
        shared.env.close()  # py-lmdb's close is fork-aware; the parent's environment is unaffected
    _SHARED.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _retire(key: str, shared: _Shared) -> None:
    """Stop handing out ``shared`` (its folder is gone, or its last archive closed); its archives reopen."""
    with _SHARED_LOCK:
        shared.stale = True
        if _SHARED.get(key) is shared:
            del _SHARED[key]


def _check_key(key: Any) -> bytes:
    if type(key) is not bytes:
        msg = f"LMDBArchive keys are bytes, got {type(key).__qualname__} {key!r:.60} (use a bytes keymap)"
        raise InvalidArgumentType(msg)
    return key


class LMDBArchive(Archive):
    """A persistent archive in an LMDB environment at ``path`` (a directory).

    Keys are bytes of any length (longer than LMDB's 511-byte limit are stored
    under a digest, the record keeping the full key); values go through
    ``serializer``. The map starts at ``map_size`` bytes and doubles when full,
    up to ``max_map_size``; another process's growth is picked up. Many
    processes may read and write at once; a process forked with the archive
    open reopens it on first use. ``durability="sync"`` (the default) flushes
    every write to disk (survives an OS crash); ``"process"`` leaves that to
    the OS (survives the writer's death, even by SIGKILL, not an OS crash).

    Raises `SerializerMismatch` if the archive was written with another
    serializer, `ReadOnlyArchive` on a write when ``readonly=True``,
    `CorruptEntry` (naming the key) for a value that fails its checksum or
    cannot be decoded, `ArchiveError` when full at ``max_map_size``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder, LMDBArchive(folder + "/a.lmdb") as a:
    ...     a[b"k"] = {"x": 1}
    ...     a[b"k"], len(a), a.info(b"k").size > 0
    ({'x': 1}, 1, True)
    """

    def __init__(self, path: str | os.PathLike, *, serializer: str | Serializer = "pickle", readonly: bool = False,
                 durability: str = "sync", map_size: int = 1 << 24, max_map_size: int = 1 << 40,
                 max_bytes: int | None = None, max_entries: int | None = None) -> None:
        if durability not in _DURABILITY:
            msg = f"durability must be one of {sorted(_DURABILITY)}, got {durability!r}"
            raise InvalidArgument(msg)
        if not 0 < map_size <= max_map_size:
            msg = f"need 0 < map_size <= max_map_size, got map_size={map_size!r}, max_map_size={max_map_size!r}"
            raise InvalidArgument(msg)
        self.path = os.fspath(path)
        _check_place(self.path, readonly)
        self.serializer = _serializer(serializer)
        self.readonly, self.durability = readonly, durability
        self.map_size, self.max_map_size = map_size, max_map_size
        self.limits = _limits.Limits(max_bytes, max_entries)
        self._track = self.limits.active and not readonly  # record reads, for eviction by last access
        self._accessed: dict[bytes, float] = {}
        self._locks: _key_locks.KeyLocks | None = None
        self._env: lmdb.Environment | None = None
        self._lock = threading.RLock()
        _OPEN[id(self)] = self

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __repr__(self) -> str:
        return f"LMDBArchive({self.path!r}, serializer={self.serializer.name!r}, readonly={self.readonly!r})"

    def __reduce__(self) -> tuple:
        return (_rebuild, (self.path, self.serializer, self.readonly, self.durability, self.map_size, self.max_map_size,
                           self.limits.max_bytes, self.limits.max_entries))

    # -- environment ---------------------------------------------------------

    def _environment(self) -> lmdb.Environment:
        """The shared environment, opened on first use (and again after fork or close)."""
        if self._env is not None:
            return self._env
        with _SHARED_LOCK:
            if self._env is not None:  # another thread opened it meanwhile
                return self._env
            key = os.path.realpath(self.path)
            shared = _SHARED.get(key)
            if shared is not None and not shared.same_file(self.path):  # the folder was deleted or replaced
                _retire(key, shared)
                shared = None
            if shared is None:
                shared = _SHARED[key] = _Shared(self._open(), self.readonly, self.path)
            elif shared.readonly and not self.readonly:
                msg = f"archive {self.path!r} is already open read-only in this process; close it first"
                raise ArchiveError(msg)
            shared.refs += 1
            self._shared, self._lock = shared, shared.lock
            self._entries, self._meta, self._max_key = shared.entries, shared.meta, shared.max_key
            self._dbs = shared.dbs
            self._env = shared.env
            try:
                self._check_serializer()
            except SerializerMismatch:
                self.close()
                raise
            if not self.readonly and self._read(lambda txn: txn.get(_catalog.MARKER, db=self._meta)) is None:
                self._write(lambda txn: _catalog.mark_new(txn, self._dbs))
            return self._env

    def _open(self) -> lmdb.Environment:
        _check_place(self.path, self.readonly)
        options = dict(map_size=self.map_size, max_dbs=7, readonly=self.readonly, create=not self.readonly,
                       **_DURABILITY[self.durability])
        try:
            env = open_env(self.path, **options)
        except lmdb.Error as error:
            env = self._open_without_lock(options, error)
        _check_file(env, self.path)
        try:
            _resized(lambda: env.open_db(b"entries", create=not self.readonly), env)
        except lmdb.Error as error:
            env.close()
            msg = f"{self.path!r} is not a combinators archive: {error}"
            raise ArchiveError(msg) from None
        return env

    def _open_without_lock(self, options: dict, error: lmdb.Error) -> lmdb.Environment:
        """A read-only open of an archive whose lock file this user cannot write: no reader table.

        Without it, a writer in another process may reuse pages a long read
        still uses; fine for the usual case, an archive another user wrote and
        nobody writes now.
        """
        denied = "ermission" in str(error) or "ead-only" in str(error)
        if self.readonly and denied:
            try:
                return lmdb.open(self.path, lock=False, **options)
            except lmdb.Error as second:
                error = second
        msg = f"cannot open the LMDB archive at {self.path!r}: {error}"
        raise (ReadOnlyArchive if denied else ArchiveError)(msg) from None

    def _check_serializer(self) -> None:
        recorded = self._read(lambda txn: txn.get(b"serializer"), db=self._meta)
        recorded = None if recorded is None else bytes(recorded).decode()
        if recorded is None and not self.readonly:
            def record(txn: lmdb.Transaction) -> str:
                if txn.get(b"serializer") is None:  # another process may have been first
                    txn.put(b"serializer", self.serializer.name.encode())
                return bytes(txn.get(b"serializer")).decode()

            recorded = self._write(record, db=self._meta)
        if recorded is not None and recorded != self.serializer.name:
            msg = (f"archive {self.path!r} was written with serializer {recorded!r}; "
                   f"it cannot be opened with {self.serializer.name!r}")
            raise SerializerMismatch(msg)

    def close(self) -> None:
        """Release this archive's hold on the environment (closed when no archive uses it)."""
        if self._env is None:
            return
        if self._accessed and not self.readonly:  # reads not yet recorded: their last access
            self._write(lambda txn: _limits.record_reads(txn, self._dbs, self._fields, self._take_reads()))
        self._env = None
        with _SHARED_LOCK:
            shared = self._shared
            shared.refs -= 1
            if shared.refs <= 0:
                with shared.lock:
                    shared.env.close()
                _retire(os.path.realpath(self.path), shared)

    def _live(self) -> lmdb.Environment:
        """The environment, reopened if the folder was deleted or replaced (a stat; `get` checks a flag only)."""
        env = self._env or self._environment()
        if not self._shared.same_file(self.path):
            with _SHARED_LOCK:
                _retire(os.path.realpath(self.path), self._shared)
                self.close()
                env = self._environment()
        return env

    def _read(self, fn: Any, db: Any = None) -> Any:
        """Run ``fn(txn)`` in a read transaction (buffers are valid only inside)."""
        while True:
            env = self._live()
            with self._lock:
                try:
                    with env.begin(db=db or self._entries, buffers=True) as txn:
                        return fn(txn)
                except lmdb.MapResizedError:  # another process grew the map
                    env.set_mapsize(0)

    def _write(self, fn: Any, db: Any = None) -> Any:
        """Run ``fn(txn)`` in a write transaction, growing the map when full."""
        if self.readonly:
            msg = f"archive {self.path!r} is open read-only; open it with readonly=False to write"
            raise ReadOnlyArchive(msg)
        while True:
            env = self._live()
            with self._lock:
                try:
                    with env.begin(db=db or self._entries, write=True, buffers=True) as txn:
                        return fn(txn)
                except lmdb.MapResizedError:
                    env.set_mapsize(0)
                except lmdb.MapFullError:
                    self._grow(env)

    def _grow(self, env: lmdb.Environment) -> None:
        size = env.info()["map_size"]
        if size >= self.max_map_size:
            msg = f"archive {self.path!r} is full at max_map_size={self.max_map_size} bytes"
            raise ArchiveError(msg)
        env.set_mapsize(min(2 * size, self.max_map_size))

    # -- records -------------------------------------------------------------

    def _stored_key(self, key: bytes) -> bytes:
        if len(key) <= self._max_key:
            return b"k" + key
        return b"h" + key[:64] + hashlib.blake2b(key, digest_size=32).digest()

    def _record(self, key: bytes, value: Any, compute_seconds: float, version: str) -> bytes:
        payload = self.serializer.dumps(value)
        version_bytes = version.encode()[:65535]
        full_key = key if len(key) > self._max_key else b""
        head = _HEAD.pack(_FORMAT, _LONG if full_key else 0, time.time(), compute_seconds, len(payload),
                          xxhash.xxh64_intdigest(payload), len(version_bytes), min(len(full_key), 0xFFFF))
        if len(full_key) >= 0xFFFF:  # 0xFFFF marks a length in the next 8 bytes
            head = head[:-2] + b"\xff\xff" + struct.pack("<Q", len(full_key))
        return head + version_bytes + full_key + payload

    def _split(self, key: bytes | None, buf: Any) -> tuple[tuple, str, bytes, memoryview]:
        """Header fields, version, full key and payload view of a record; CorruptEntry if malformed."""
        try:
            head = _HEAD.unpack_from(buf, 0)
            fmt, _, _, _, size, check, n_version, n_key = head
            start = _HEAD.size
            if n_key == 0xFFFF:
                (n_key,) = struct.unpack_from("<Q", buf, start)
                start += 8
            version = bytes(buf[start:start + n_version]).decode() if n_version else ""
            full_key = bytes(buf[start + n_version:start + n_version + n_key]) if n_key else b""
            payload = memoryview(buf)[start + n_version + n_key:]
        except (struct.error, UnicodeDecodeError) as error:
            raise self._corrupt(key, f"bad header: {error}") from None
        if fmt != _FORMAT or len(payload) != size or xxhash.xxh64_intdigest(payload) != check:
            raise self._corrupt(key or full_key, "the checksum or size does not match")
        return head, version, full_key, payload

    @staticmethod
    def _fields(buf: Any) -> tuple[float, float, int, str]:
        """(created, compute seconds, size, version) from a record's header alone, never raising.

        A record whose header cannot be read counts as created at the epoch, with its whole length as size.
        """
        try:
            _, _, created, seconds, size, _, n_version, n_key = _HEAD.unpack_from(buf, 0)
            start = _HEAD.size + (8 if n_key == 0xFFFF else 0)
            return created, seconds, size, bytes(buf[start:start + n_version]).decode() if n_version else ""
        except (struct.error, UnicodeDecodeError):
            return 0.0, 0.0, len(buf), ""

    def _uncatalog(self, txn: lmdb.Transaction, stored: bytes) -> bool:
        """Remove the present entry at ``stored`` from the catalog; whether there was one."""
        old = txn.get(stored, db=self._entries)
        if old is None:
            return False
        _catalog.remove(txn, self._dbs, stored, self._fields(old))
        return True

    def _parse(self, key: bytes | None, buf: Any) -> tuple[EntryInfo, bytes]:
        """The `EntryInfo` and full key of a record."""
        head, version, full_key, _ = self._split(key, buf)
        return EntryInfo(datetime.fromtimestamp(head[2], timezone.utc), head[3], head[4], version), full_key

    def _corrupt(self, key: bytes | None, why: str) -> CorruptEntry:
        shown = key.hex() if isinstance(key, bytes) else repr(key)
        return CorruptEntry(f"corrupt entry for key {shown} in archive {self.path!r}: {why}")

    def _decode(self, key: bytes, buf: Any) -> Any:
        """The value of a record (hot path: one header unpack, one checksum, one loads)."""
        try:
            fmt, flags, _, _, size, check, n_version, n_key = _HEAD.unpack_from(buf, 0)
        except struct.error as error:
            raise self._corrupt(key, f"bad header: {error}") from None
        if flags:  # a long key: compare the full key
            _, _, full_key, payload = self._split(key, buf)
            if full_key != key:
                return _MISSING  # a different long key with the same digest: never served
        else:
            payload = memoryview(buf)[_HEAD.size + n_version:]
            if fmt != _FORMAT or len(payload) != size or xxhash.xxh64_intdigest(payload) != check:
                raise self._corrupt(key, "the checksum or size does not match")
        try:
            return self.serializer.loads(payload)
        except Exception as error:  # a corrupt payload may raise anything while decoding
            raise self._corrupt(key, f"{self.serializer.name} cannot decode it: {type(error).__name__}: {error}") from None

    # -- mapping -------------------------------------------------------------

    def put(self, key: bytes, value: Any, *, compute_seconds: float = 0.0, version: str = "", args: str = "",
            digests: dict[str, str] | None = None) -> None:
        self._environment()
        stored = self._stored_key(_check_key(key))
        record = self._record(key, value, compute_seconds, version)
        fields = self._fields(record)

        def write(txn: lmdb.Transaction) -> None:  # the entry and its catalog change together
            self._uncatalog(txn, stored)
            txn.put(stored, record)
            _catalog.add(txn, self._dbs, stored, fields, args, digests)
            if self._track:  # the reads since the last write, then the limits (`combinators.memo.limits`)
                _limits.evict(txn, self._dbs, self._fields, self.limits, keep=stored, reads=self._take_reads())

        self._write(write)

    def _take_reads(self) -> dict[bytes, float]:
        accessed, self._accessed = self._accessed, {}
        return accessed

    def evict(self, *, max_bytes: int | None = None, max_entries: int | None = None,
              unused_before: datetime | None = None, dry_run: bool = False) -> tuple[int, int]:
        """Delete the least recently used entries until within these limits, and those unused since ``unused_before``.

        Returns (entries, bytes) removed (or that would be, with ``dry_run``),
        in one write transaction. Raises `InvalidArgument` for a limit that
        is not a positive int.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as root, LMDBArchive(root + "/a.lmdb", max_entries=9) as a:
        ...     for i in range(5):
        ...         a[b"%d" % i] = i
        ...     _ = a[b"0"]  # read: 0 is now the most recently used
        ...     a.evict(max_entries=2)[0], sorted(a)
        (3, [b'0', b'4'])
        """
        limits = _limits.Limits(max_bytes, max_entries)
        cutoff = None if unused_before is None else unused_before.timestamp()
        self._environment()
        return self._write(lambda txn: _limits.evict(txn, self._dbs, self._fields, limits, unused_before=cutoff,
                                                     dry_run=dry_run, reads=self._take_reads()))

    def get(self, key: bytes, default: Any = None) -> Any:
        env = self._env or self._environment()
        if self._shared.stale:  # another archive of this process found the folder deleted or replaced
            env = self._live()
        if type(key) is not bytes or len(key) > self._max_key:
            stored = self._stored_key(_check_key(key))
        else:
            stored = b"k" + key
        with self._lock:
            try:
                with env.begin(db=self._entries, buffers=True) as txn:
                    buf = txn.get(stored)
                    value = _MISSING if buf is None else self._decode(key, buf)
            except lmdb.MapResizedError:  # another process grew the map
                env.set_mapsize(0)
                return self.get(key, default)
        if self._track and value is not _MISSING:
            self._accessed[stored] = time.time()
        return default if value is _MISSING else value

    def info(self, key: bytes) -> EntryInfo:
        self._environment()
        stored = self._stored_key(_check_key(key))

        def read(txn: lmdb.Transaction) -> EntryInfo | None:
            buf = txn.get(stored)
            if buf is None:
                return None
            args = _catalog.args_of(txn, self._dbs, stored, self._fields(buf))
            return attrs.evolve(self._parse(key, buf)[0], args=args)

        info = self._read(read)
        if info is None:
            raise KeyError(key)
        return info

    def __delitem__(self, key: bytes) -> None:
        self._environment()
        stored = self._stored_key(_check_key(key))
        if not self._write(lambda txn: self._uncatalog(txn, stored) and txn.delete(stored)):
            raise KeyError(key)

    def __len__(self) -> int:
        self._environment()
        return self._read(lambda txn: txn.stat(self._entries)["entries"])

    def iter_info(self, prefix: bytes = b"") -> Iterator[tuple[bytes, EntryInfo]]:
        """Every ``(key, EntryInfo)`` with keys starting with ``prefix`` (a cursor range, up to 64 bytes)."""
        self._environment()
        if len(prefix) > 64:
            return iter([(k, i) for k, i in self.iter_info(prefix[:64]) if k.startswith(prefix)])

        def read(txn: lmdb.Transaction) -> list:
            out = []
            cursor = txn.cursor()
            for tag in (b"h", b"k"):  # long keys keep their first 64 bytes after the tag
                start = tag + prefix
                if not cursor.set_range(start):
                    continue
                for stored, buf in cursor:
                    stored = bytes(stored)
                    if not stored.startswith(start):
                        break
                    info, full_key = self._parse(stored[1:] if tag == b"k" else None, buf)
                    out.append((full_key or stored[1:], info))
            return out

        return iter(self._read(read))

    def delete_many(self, keys: list[bytes]) -> int:
        """Delete ``keys`` in one transaction; returns how many were present."""
        self._environment()
        stored = [self._stored_key(_check_key(k)) for k in keys]
        return self._write(lambda txn: sum(bool(self._uncatalog(txn, s) and txn.delete(s)) for s in stored))

    def delete_rows(self, rows: list[_catalog.CatalogRow]) -> int:
        """Delete the entries `iter_catalog` listed, in one transaction; returns how many were deleted.

        An entry overwritten since it was listed (a new row) is kept.
        """
        def delete(txn: lmdb.Transaction) -> int:
            listed = [row for row in rows if txn.get(row.row, db=self._dbs.catalog) is not None]
            return sum(bool(self._uncatalog(txn, row.stored) and txn.delete(row.stored)) for row in listed)

        return self._write(delete)

    def computing(self, key: bytes) -> contextlib.AbstractContextManager[bool]:
        """Hold ``key``'s lock across processes while it is computed and stored (waits; `key_locks`)."""
        if self.readonly:
            return contextlib.nullcontext(False)
        self._environment()  # the folder exists
        if self._locks is None:
            self._locks = _key_locks.for_folder(self.path)
        return self._locks.hold(_check_key(key))

    def register(self, prefix: bytes, name: str, version: str, parts: dict | None = None) -> None:
        self._environment()
        self._write(lambda txn: _catalog.register(txn, self._dbs, prefix, name, version, parts), db=self._meta)

    def registered(self) -> dict[bytes, tuple[str, str]]:
        self._environment()
        return self._read(lambda txn: _catalog.registered(txn, self._dbs), db=self._meta)

    def descriptions(self) -> dict[bytes, dict]:
        self._environment()
        return self._read(lambda txn: _catalog.registered(txn, self._dbs, "parts"), db=self._meta)

    def digests(self, key: bytes) -> dict[str, str]:
        self._environment()
        stored = self._stored_key(_check_key(key))
        found = None if self._dbs.calls is None else self._read(lambda txn: txn.get(stored), db=self._dbs.calls)
        return {} if found is None else json.loads(bytes(found))

    # -- catalog (summaries kept at write time) ---------------------------------

    def catalog_current(self) -> bool:
        """Whether the per-function summaries count every entry (else `rebuild_catalog` is due)."""
        self._environment()
        return self._read(lambda txn: _catalog.is_current(txn, self._dbs))

    def rebuild_catalog(self) -> int:
        """Recount every entry into the summaries, in one write transaction; returns the entry count.

        Needed once for an archive written before summaries existed; the
        ``combinators archive`` command does it on first use. Writers wait
        for it: one pass over the entries (200,000 took 7.7 s on a loaded
        2-core machine).
        """
        self._environment()
        return self._write(lambda txn: _catalog.rebuild(txn, self._dbs, self._fields))

    def summaries(self) -> list[_catalog.NamespaceSummary]:
        """One `NamespaceSummary` per function and version, from the summaries (not the entries).

        When the summaries are not current (`catalog_current`), a writable
        archive rebuilds them first; a read-only one recounts the entries
        without storing anything (constant memory, time per entry).

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as root, LMDBArchive(root + "/a.lmdb") as a:
        ...     a.namespace("f", "1").put(b"k", [1.0, 2.0], compute_seconds=0.5, args="x=3")
        ...     [(s.function, s.version, s.entries, s.compute_seconds) for s in a.summaries()]
        ...     [row.args for group, _, _ in a.catalog_groups() for row in a.iter_catalog(group)]
        [('f', '1', 1, 0.5)]
        ['x=3']
        """
        current, names = self.catalog_current(), self.registered()
        if not current and self.readonly:
            return self._read(lambda txn: _catalog.scanned(txn, self._dbs, self._fields, names))
        if not current:
            self.rebuild_catalog()
        return self._read(lambda txn: _catalog.summaries(txn, self._dbs, names))

    def catalog_groups(self) -> list[tuple[bytes, str, str]]:
        """Every ``(group, function, version)`` of the summaries (`iter_catalog` lists a group).

        Raises `ArchiveError` for a read-only archive written before summaries existed.
        """
        names = self.registered()
        if self._dbs.catalog is None:
            msg = f"archive {self.path!r} has no catalog yet: open it writable and call rebuild_catalog() once"
            raise ArchiveError(msg)
        return self._read(lambda txn: _catalog.groups(txn, self._dbs, names))

    def iter_catalog(self, group: bytes, *, before: datetime | None = None,
                     chunk: int = 1000) -> Iterator[_catalog.CatalogRow]:
        """Stream one group's `CatalogRow` by date (created before ``before``), ``chunk`` per transaction."""
        self._environment()
        cutoff = None if before is None else before.timestamp()
        return _catalog.iter_rows(lambda fn: self._read(fn, db=self._dbs.catalog), lambda: self._dbs, group,
                                  chunk=chunk, before=cutoff)

    def stat(self) -> dict[str, Any]:
        """Environment figures: entries, map size, file size (bytes), serializer."""
        env = self._environment()
        size = os.path.getsize(os.path.join(self.path, "data.mdb"))
        return {"path": self.path, "entries": len(self), "map_size": env.info()["map_size"],
                "file_size": size, "serializer": self.serializer.name}


def _rebuild(path: str, serializer: Serializer, readonly: bool, durability: str, map_size: int,
             max_map_size: int, max_bytes: int | None = None, max_entries: int | None = None) -> LMDBArchive:
    return LMDBArchive(path, serializer=serializer, readonly=readonly, durability=durability,
                       map_size=map_size, max_map_size=max_map_size, max_bytes=max_bytes, max_entries=max_entries)
