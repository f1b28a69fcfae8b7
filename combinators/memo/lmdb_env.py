"""LMDB environments on disk: where an archive may be, whether its file is whole, its sub-databases.

`recorded_serializer` reads the name of the serializer an existing archive
was written with. The rest serves `LMDBArchive`
(`combinators.memo.lmdb_archive`): the one environment a process keeps per
path (`_Shared`), opening sub-databases while another process grows the map
(`_resized`), checking the place before opening (`_check_place`) and the
file after (`_check_file`: reading past the end of a truncated file would
kill the process with SIGBUS).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import lmdb

from combinators.errors import ArchiveError, ReadOnlyArchive
from combinators.memo import catalog as _catalog
from combinators.memo.lmdb_pages import missing_pages

__all__ = ["recorded_serializer"]


class _Shared:
    """One process's environment at one path, shared by every `LMDBArchive` on it.

    LMDB forbids opening an environment twice in a process (its fcntl locks
    belong to the process), so archives on one path share it, and its lock:
    resizing the map needs every transaction of the process finished.
    """

    def __init__(self, env: lmdb.Environment, readonly: bool, path: str) -> None:
        self.env, self.readonly, self.refs = env, readonly, 0
        self.identity, self.stale = identity(path), False
        self.entries = _resized(lambda: env.open_db(b"entries", create=not readonly), env)
        self.meta = _resized(lambda: env.open_db(b"meta", create=not readonly), env)
        optional = (_optional_db(env, name, readonly) for name in (b"summaries", b"catalog", b"access", b"recency",
                                                                     b"calls"))
        self.dbs = _catalog.Databases(self.entries, self.meta, *optional)
        self.max_key = env.max_key_size() - 1
        self.lock = threading.RLock()

    def same_file(self, path: str) -> bool:
        """Whether ``path``'s data.mdb is still the file this environment opened (not deleted nor replaced)."""
        return not self.stale and identity(path) == self.identity


def identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of ``path``'s data.mdb, ``None`` when there is none."""
    try:
        found = os.stat(os.path.join(path, "data.mdb"))
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _resized(fn: Any, env: lmdb.Environment) -> Any:
    """``fn()``, adopting the map size after another process grew it (or doubling a tiny full map)."""
    while True:
        try:
            return fn()
        except lmdb.MapResizedError:
            env.set_mapsize(0)
        except lmdb.MapFullError:  # creating a sub-database in a map smaller than its pages
            env.set_mapsize(2 * env.info()["map_size"])


def open_env(path: str, **options: Any) -> lmdb.Environment:
    """``lmdb.open``, again when another process grew the map while this one opened it (MDB_MAP_RESIZED).

    py-lmdb begins a transaction inside ``lmdb.open``; a writer growing the
    map between LMDB reading the meta page and that transaction makes the
    open fail with `lmdb.MapResizedError`, which a second open (reading the
    new size) does not meet. Retried a few times, then raised.
    """
    for _ in range(16):
        try:
            return lmdb.open(path, **options)
        except lmdb.MapResizedError:
            continue
    return lmdb.open(path, **options)


def _optional_db(env: lmdb.Environment, name: bytes, readonly: bool) -> Any:
    """A sub-database, or ``None`` when read-only and an older archive lacks it."""
    try:
        return _resized(lambda: env.open_db(name, create=not readonly), env)
    except lmdb.NotFoundError:
        return None


def _check_place(path: str, readonly: bool) -> None:
    """At construction: a read-only archive must exist; a writable one gets its parent folders.

    Raises `ArchiveError` naming the path when the archive cannot be there.
    """
    if readonly:
        if not os.path.exists(os.path.join(path, "data.mdb")):
            msg = f"no LMDB archive at {path!r} to open read-only"
            raise ArchiveError(msg)
        return
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as error:
        msg = f"cannot create the folder {parent!r} for the LMDB archive at {path!r}: {error}"
        raise ArchiveError(msg) from None
    where = path if os.path.exists(path) else parent
    if not os.access(where, os.W_OK):
        msg = f"cannot write the LMDB archive at {path!r}: no write permission on {where!r} (open it with readonly=True)"
        raise ReadOnlyArchive(msg)


def _check_file(env: lmdb.Environment, path: str) -> None:
    """Raise `ArchiveError` (closing ``env``) when data.mdb lacks a page in use.

    Reading a page past the end of a truncated file would kill the process
    with SIGBUS. A file may end before its last page when the pages past its
    end are free (allocated and freed by one transaction, never written:
    `combinators.memo.lmdb_pages`), so only pages the free list does not
    hold count. A writer racing the check only grows the file: a shortfall is
    read twice before it is reported.
    """
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    if os.path.getsize(os.path.join(path, "data.mdb")) >= needed:
        return
    for _ in range(2):
        missing, needed = missing_pages(path)
        if not missing:
            return
    env.close()
    size = os.path.getsize(os.path.join(path, "data.mdb"))
    msg = (f"the LMDB archive at {path!r} is truncated: data.mdb has {size} bytes, but {missing} pages in use lie "
           f"past its end (it needs {needed}); restore it from a copy")
    raise ArchiveError(msg)


def recorded_serializer(path: str | os.PathLike) -> str:
    """The name of the serializer an existing archive at ``path`` was written with.

    Raises `ArchiveError` when there is no combinators archive at ``path``.
    """
    path = os.fspath(path)
    if not os.path.exists(os.path.join(path, "data.mdb")):
        msg = f"no LMDB archive at {path!r}"
        raise ArchiveError(msg)
    env = open_env(path, readonly=True, max_dbs=2, lock=False)
    _check_file(env, path)
    def read() -> bytes | None:
        with env.begin(db=env.open_db(b"meta", create=False)) as txn:
            return txn.get(b"serializer")

    try:
        name = _resized(read, env)  # another process may grow the map meanwhile (`archive rm` during writes)
    except lmdb.Error as error:
        msg = f"{path!r} is not a combinators archive: {error}"
        raise ArchiveError(msg) from None
    finally:
        env.close()
    return "pickle" if name is None else name.decode()
