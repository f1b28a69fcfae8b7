"""Archives: ``MutableMapping[bytes, object]`` stores for memoized results.

`Archive` is the interface every archive implements. `LMDBArchive`
(`combinators.memo.lmdb_archive`) persists to an embedded LMDB environment
(one directory: two LMDB files and the key locks) that many processes may read and write at once;
`DictArchive` keeps entries in memory; `NullArchive` keeps nothing. Every
entry carries an `EntryInfo` (created time in UTC, compute seconds, size in
bytes, function version, a short repr of the call's arguments). `Namespace`
is a view of one function's entries, which `memoize` uses to keep functions
and versions apart. An `LMDBArchive` keeps per-function summaries current at
write time (`combinators.memo.catalog`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, MutableMapping
from datetime import datetime, timezone
from typing import Any

import attrs

from combinators.memo import catalog as _catalog

__all__ = ["Archive", "EntryInfo", "DictArchive", "NullArchive", "Namespace", "namespace_prefix"]

_MISSING: Any = object()


@attrs.frozen
class EntryInfo:
    """Metadata of one archive entry.

    ``created`` is a timezone-aware UTC datetime; ``compute_seconds`` the time
    the function took (0.0 when the value was stored directly); ``size`` the
    stored value's length in bytes; ``version`` the function version; ``args``
    a short repr of the call's arguments recorded by `memoize` (at most
    ``catalog.ARGS_LIMIT`` = 200 characters, ``""`` when not recorded).
    """

    created: datetime
    compute_seconds: float = 0.0
    size: int = 0
    version: str = ""
    args: str = ""


def namespace_prefix(name: str, version: str) -> bytes:
    """The 16-byte key prefix of a function name and version (blake2b).

    >>> namespace_prefix("f", "1").hex()
    '175c9d27a56a1f4b4e069725a84fa56b'
    """
    return hashlib.blake2b(f"{name}\0{version}".encode(), digest_size=16).digest()


class Archive(MutableMapping):
    """Base of the archives: a mapping with entry metadata and namespaces.

    Subclasses implement `put`, `get`, `info`, `iter_info`, ``__delitem__``,
    ``__len__``, `register` and `registered`; the rest derives from them.
    """

    def put(self, key: Any, value: Any, *, compute_seconds: float = 0.0, version: str = "", args: str = "",
            digests: dict[str, str] | None = None) -> None:
        """Store ``value`` under ``key`` with its metadata (``args``: a short repr of the call; ``digests``:
        argument name -> digest of its key, which `memoize`'s ``why`` compares)."""
        raise NotImplementedError

    def digests(self, key: Any) -> dict[str, str]:
        """The argument digests stored with ``key`` (``{}`` when none were)."""
        return {}

    def descriptions(self) -> dict[bytes, dict]:
        """Registered prefix -> what its version is made of (``{"code": ..., "captured": {label: digest}}``)."""
        return {}

    def get(self, key: Any, default: Any = None) -> Any:
        raise NotImplementedError

    def info(self, key: Any) -> EntryInfo:
        """The `EntryInfo` of ``key``; raises ``KeyError`` when absent."""
        raise NotImplementedError

    def iter_info(self, prefix: bytes = b"") -> Iterator[tuple[Any, EntryInfo]]:
        """Every ``(key, EntryInfo)`` pair whose key starts with ``prefix``, without decoding values."""
        raise NotImplementedError

    def register(self, prefix: bytes, name: str, version: str, parts: dict | None = None) -> None:
        """Record that keys starting with ``prefix`` belong to function ``name`` at ``version`` (made of ``parts``)."""
        raise NotImplementedError

    def registered(self) -> dict[bytes, tuple[str, str]]:
        """Registered namespaces: prefix -> (function name, version)."""
        raise NotImplementedError

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def __iter__(self) -> Iterator[Any]:
        return iter([key for key, _ in self.iter_info()])

    def namespace(self, name: str, version: str = "") -> Namespace:
        """A view of the entries of function ``name`` at ``version``."""
        return Namespace(self, name, version)

    def computing(self, key: Any) -> contextlib.AbstractContextManager[bool]:
        """A context held while ``key`` is computed and stored: other processes asking for it wait.

        Yields whether a lock is held; the base archive (in memory, one
        process) holds none. `LMDBArchive` locks the key across processes
        (`combinators.memo.key_locks`).
        """
        return contextlib.nullcontext(False)

    def close(self) -> None:
        """Release resources; the archive reopens on next use."""

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DictArchive(Archive):
    """An in-memory archive: values are kept as they are (no serializer, no copy).

    >>> a = DictArchive()
    >>> a[b"k"] = [1, 2]
    >>> a[b"k"], len(a), a.info(b"k").size
    ([1, 2], 1, 0)
    """

    def __init__(self) -> None:
        self._data: dict[Any, tuple[Any, EntryInfo]] = {}
        self._names: dict[bytes, tuple[str, str]] = {}
        self._digests: dict[Any, dict[str, str]] = {}
        self._parts: dict[bytes, dict] = {}

    def put(self, key: Any, value: Any, *, compute_seconds: float = 0.0, version: str = "", args: str = "",
            digests: dict[str, str] | None = None) -> None:
        info = EntryInfo(datetime.now(timezone.utc), compute_seconds, 0, version, args[:_catalog.ARGS_LIMIT])
        self._data[key] = (value, info)
        self._digests[key] = dict(digests or {})

    def digests(self, key: Any) -> dict[str, str]:
        return dict(self._digests.get(key, {}))

    def descriptions(self) -> dict[bytes, dict]:
        return dict(self._parts)

    def get(self, key: Any, default: Any = None) -> Any:
        entry = self._data.get(key)
        return default if entry is None else entry[0]

    def info(self, key: Any) -> EntryInfo:
        return self._data[key][1]

    def iter_info(self, prefix: bytes = b"") -> Iterator[tuple[Any, EntryInfo]]:
        n = len(prefix)
        return iter([(key, info) for key, (_, info) in self._data.items() if not n or key[:n] == prefix])

    def __delitem__(self, key: Any) -> None:
        del self._data[key]
        self._digests.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)

    def register(self, prefix: bytes, name: str, version: str, parts: dict | None = None) -> None:
        self._names[prefix] = (name, version)
        if parts:
            self._parts[prefix] = parts

    def registered(self) -> dict[bytes, tuple[str, str]]:
        return dict(self._names)

    def __repr__(self) -> str:
        return "DictArchive()"


class NullArchive(DictArchive):
    """An archive that keeps nothing: every lookup misses.

    >>> a = NullArchive()
    >>> a[b"k"] = 1
    >>> b"k" in a, len(a)
    (False, 0)
    """

    def put(self, key: Any, value: Any, *, compute_seconds: float = 0.0, version: str = "", args: str = "",
            digests: dict[str, str] | None = None) -> None:
        return None

    def __repr__(self) -> str:
        return "NullArchive()"


class Namespace(MutableMapping):
    """The entries of one function and version: keys are prefixed, others hidden.

    >>> view = DictArchive().namespace("f", "v1")
    >>> view[b"k"] = 3
    >>> dict(view), len(view.archive)
    ({b'k': 3}, 1)
    """

    def __init__(self, archive: Archive, name: str, version: str = "") -> None:
        self.archive, self.name, self.version = archive, name, version
        self.prefix = namespace_prefix(name, version)
        self._registered = False
        self.parts: dict | None = None  # what the version is made of (set by memoize)

    def put(self, key: Any, value: Any, *, compute_seconds: float = 0.0, args: str = "",
            digests: dict[str, str] | None = None) -> None:
        """Store ``value`` under ``key`` with the compute time and arguments' repr; registers the namespace once."""
        if not self._registered:
            self.archive.register(self.prefix, self.name, self.version, self.parts)
            self._registered = True
        self.archive.put(self.prefix + key, value, compute_seconds=compute_seconds, version=self.version, args=args,
                         digests=digests)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __getitem__(self, key: Any) -> Any:
        return self.archive[self.prefix + key]

    def get(self, key: Any, default: Any = None) -> Any:
        return self.archive.get(self.prefix + key, default)

    def info(self, key: Any) -> EntryInfo:
        return self.archive.info(self.prefix + key)

    def __delitem__(self, key: Any) -> None:
        del self.archive[self.prefix + key]

    def __iter__(self) -> Iterator[Any]:
        n = len(self.prefix)
        return iter([k[n:] for k, _ in self.archive.iter_info(self.prefix)])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"Namespace({self.archive!r}, {self.name!r}, {self.version!r})"
