"""The catalog of an LMDB archive: per-function summaries kept current at write time.

Beside its ``entries``, an `LMDBArchive` keeps two sub-databases, updated in
the same write transaction as every put, overwrite and delete, so that they
agree with the entries whatever processes write at once:

- ``summaries``: one record per *group* (a memoized function and version, or
  the entries not written through `memoize`, per version): entry count, stored
  bytes, compute seconds;
- ``catalog``: one row per entry, ordered by group then creation time, holding
  the entry's size, compute seconds, a short repr of its arguments and its
  stored key. The first and last rows of a group give its dates; the rows
  list a function's entries without reading a value.

``combinators archive ls`` and ``stats`` read only the summaries and two
rows per group: their time and memory do not grow with the number of entries.
The group of an entry is decided by its key alone (its first 16 bytes are a
registered `namespace_prefix`, else its version), so a delete finds the
summary it must decrement. An archive written before the catalog existed (or
by an older version of combinators) has no marker or disagreeing counts;
`rebuild` recounts it once, in one write transaction.
"""

from __future__ import annotations

import hashlib
import json
import reprlib
import struct
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import attrs
import lmdb
import xxhash

__all__ = ["NamespaceSummary", "CatalogRow", "ARGS_LIMIT", "UNNAMED", "call_repr"]

#: the stored repr of a call's arguments is cut to this many characters
ARGS_LIMIT = 200
#: the function name shown for entries not written through `memoize`
UNNAMED = "(not memoized)"
#: meta key marking a catalog that was kept from the start or rebuilt (its format)
MARKER, FORMAT = b"catalog", b"1"

_SUMMARY = struct.Struct("<qqd")  # entries, bytes, compute seconds; then the version text
_ROW = struct.Struct("<qdH")  # size, compute seconds, args length; then args and stored key
_WHEN = struct.Struct(">d")  # creation time: positive doubles sort as big-endian bytes
_GROUP = 17  # b"n" + namespace prefix, or b"u" + digest of the version
_SANE = 1 << 48  # more entries (or bytes per entry) than a summary can honestly hold: it is damaged


class _ShortRepr(reprlib.Repr):
    """`reprlib` limits, with arrays shown as ``float32[1000, 3]``."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = self.maxother = 40
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = self.maxfrozenset = 4
        self.maxlevel = 3

    def repr_ndarray(self, x: Any, level: int) -> str:
        return f"{x.dtype}[{', '.join(map(str, x.shape))}]"


_SHORT = _ShortRepr()
_PLAIN = (int, float, bool, type(None))


def _short(value: Any) -> str:
    """One argument's short repr (plain scalars and short strings skip `reprlib`, ten times slower)."""
    kind = type(value)
    try:
        if kind in _PLAIN and (kind is not int or -10**30 < value < 10**30):
            return repr(value)
        if kind is str and len(value) <= 40:
            return repr(value)
        return _SHORT.repr(value)
    except Exception:  # a repr that raises (or an int too long to print) is not the call's failure
        return f"<{kind.__qualname__}>"


def call_repr(args: tuple, kwargs: dict) -> str:
    """A short repr of a call's arguments, cut to `ARGS_LIMIT` characters (``...`` marks a cut).

    Strings and other values are cut at 40 characters, containers at 4 items
    and 3 levels (`reprlib`), arrays show dtype and shape.

    >>> import numpy as np
    >>> call_repr((np.zeros((1000, 3), np.float32), "x" * 50), {"k": list(range(10))})
    "float32[1000, 3], 'xxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxx', k=[0, 1, 2, 3, ...]"
    """
    parts = [_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= ARGS_LIMIT else text[:ARGS_LIMIT - 3] + "..."


@attrs.frozen
class NamespaceSummary:
    """The entries of one function and version: count, bytes, compute seconds, UTC dates."""

    function: str
    version: str
    entries: int
    size: int
    compute_seconds: float
    first: datetime
    last: datetime


@attrs.frozen
class CatalogRow:
    """One entry as the catalog lists it: stored key, UTC date, size (bytes), compute seconds, arguments.

    ``row`` is the catalog key: it names this version of the entry (an overwrite makes a new one).
    """

    stored: bytes
    created: datetime
    size: int
    compute_seconds: float
    args: str
    row: bytes = b""


@attrs.frozen
class Databases:
    """The handles a catalog update needs (``summaries`` and ``catalog`` may be ``None`` read-only)."""

    entries: Any
    meta: Any
    summaries: Any
    catalog: Any
    access: Any = None  # stored key -> last access (big-endian double, s since epoch)
    recency: Any = None  # last access + digest of the stored key -> stored key: by last access, least recent first
    calls: Any = None  # stored key -> JSON of the call's argument digests (what `why` compares)


def register(txn: lmdb.Transaction, dbs: Databases, prefix: bytes, name: str, version: str,
             parts: dict | None = None) -> None:
    """Record that keys starting with ``prefix`` are function ``name`` at ``version`` made of ``parts`` (in ``meta``)."""
    if txn.get(b"ns:" + prefix, db=dbs.meta) is None:
        cursor = txn.cursor(db=dbs.entries)
        if any(cursor.set_range(tag + prefix) and bytes(cursor.key()).startswith(tag + prefix) for tag in (b"k", b"h")):
            txn.delete(MARKER, db=dbs.meta)  # entries already there change group: recount them
    entry = {"name": name, "version": version, **({"parts": parts} if parts else {})}
    txn.put(b"ns:" + prefix, json.dumps(entry).encode(), db=dbs.meta)


def registered(txn: lmdb.Transaction, dbs: Databases, field: str | None = None) -> dict[bytes, Any]:
    """Every registered prefix -> (function name, version), or the recorded ``field`` (``"parts"``) if any."""
    out = {}
    cursor = txn.cursor(db=dbs.meta)
    if not cursor.set_range(b"ns:"):
        return out
    for key, value in cursor:
        if bytes(key[:3]) != b"ns:":
            break
        entry = json.loads(bytes(value))
        if field is None:
            out[bytes(key[3:])] = (entry["name"], entry["version"])
        elif field in entry:
            out[bytes(key[3:])] = entry[field]
    return out


def group_of(txn: lmdb.Transaction, dbs: Databases, stored: bytes, version: str) -> bytes:
    """The 17-byte group of a stored key: its namespace when registered, else its version."""
    prefix = stored[1:17]
    if len(prefix) == 16 and txn.get(b"ns:" + prefix, db=dbs.meta) is not None:
        return b"n" + prefix
    return b"u" + hashlib.blake2b(version.encode(), digest_size=16).digest()


def _row_key(group: bytes, created: float, stored: bytes) -> bytes:
    return group + _WHEN.pack(created) + xxhash.xxh3_128_digest(stored)


def _summary(value: Any) -> tuple[int, int, float] | None:
    """(entries, bytes, compute seconds) of a summary record, ``None`` when it does not check out."""
    if value is None or len(value) < _SUMMARY.size:
        return None
    n, total, spent = _SUMMARY.unpack_from(value, 0)
    if not (0 < n <= _SANE and 0 <= total <= _SANE * n and 0.0 <= spent < float("inf")):
        return None
    return n, total, spent


def _bump(txn: lmdb.Transaction, dbs: Databases, group: bytes, version: str, count: int, size: int,
          seconds: float) -> None:
    old = txn.get(group, db=dbs.summaries)
    known = (0, 0, 0.0) if old is None else _summary(old)
    if known is None:  # a damaged summary: the catalog is recounted from the entries when next read
        txn.delete(MARKER, db=dbs.meta)
        known = (0, 0, 0.0)
    n, total, spent = known[0] + count, known[1] + size, known[2] + seconds
    if n <= 0:
        txn.delete(group, db=dbs.summaries)
    else:
        txn.put(group, _SUMMARY.pack(n, max(total, 0), max(spent, 0.0)) + version.encode(), db=dbs.summaries)


def add(txn: lmdb.Transaction, dbs: Databases, stored: bytes, fields: tuple, args: str,
        digests: dict[str, str] | None = None) -> None:
    """Catalog a new entry; ``fields`` are its (created, compute seconds, size, version), ``digests`` its arguments'."""
    if digests and dbs.calls is not None:
        txn.put(stored, json.dumps(digests).encode(), db=dbs.calls)
    created, seconds, size, version = fields
    group = group_of(txn, dbs, stored, version)
    args_bytes = args[:ARGS_LIMIT].encode("utf-8", "backslashreplace")[:4 * ARGS_LIMIT]
    row = _ROW.pack(size, seconds, len(args_bytes)) + args_bytes + stored
    txn.put(_row_key(group, created, stored), row, db=dbs.catalog)
    _bump(txn, dbs, group, version, 1, size, seconds)
    touch(txn, dbs, stored, created)


def remove(txn: lmdb.Transaction, dbs: Databases, stored: bytes, fields: tuple) -> None:
    """Uncatalog an entry about to be deleted or overwritten; ``fields`` as in `add`."""
    created, seconds, size, version = fields
    group = group_of(txn, dbs, stored, version)
    txn.delete(_row_key(group, created, stored), db=dbs.catalog)
    _bump(txn, dbs, group, version, -1, -size, -seconds)
    _untouch(txn, dbs, stored)
    if dbs.calls is not None:
        txn.delete(stored, db=dbs.calls)


def touch(txn: lmdb.Transaction, dbs: Databases, stored: bytes, when: float) -> None:
    """Record that the entry at ``stored`` was written or read at ``when`` (only ever later)."""
    if dbs.access is None:
        return
    old = txn.get(stored, db=dbs.access)
    if old is not None:
        if _WHEN.unpack(old)[0] >= when:
            return
        txn.delete(_recency_key(bytes(old), stored), db=dbs.recency)
    txn.put(stored, _WHEN.pack(when), db=dbs.access)
    txn.put(_recency_key(_WHEN.pack(when), stored), stored, db=dbs.recency)


def _recency_key(when: bytes, stored: bytes) -> bytes:
    """The recency key of an entry: its last access, then a digest of its stored key (a stored key of the
    longest length LMDB allows leaves no room for the time in front of it)."""
    return when + xxhash.xxh3_128_digest(stored)


def _untouch(txn: lmdb.Transaction, dbs: Databases, stored: bytes) -> None:
    if dbs.access is None:
        return
    old = txn.get(stored, db=dbs.access)
    if old is not None:
        txn.delete(_recency_key(bytes(old), stored), db=dbs.recency)
        txn.delete(stored, db=dbs.access)


def stored_bytes(txn: lmdb.Transaction, dbs: Databases) -> int:
    """The bytes of every entry, from the summaries (time per group)."""
    return sum(summary[1] for summary in map(_summary, (v for _, v in txn.cursor(db=dbs.summaries))) if summary)


def least_recent(txn: lmdb.Transaction, dbs: Databases) -> Iterator[tuple[float, bytes]]:
    """(last access, stored key) of every entry, least recent first (change nothing while reading them)."""
    if dbs.recency is None:
        return
    for key, stored in txn.cursor(db=dbs.recency):
        yield _WHEN.unpack(bytes(key[:8]))[0], bytes(stored)


def args_of(txn: lmdb.Transaction, dbs: Databases, stored: bytes, fields: tuple) -> str:
    """The stored repr of an entry's arguments (``""`` when not recorded)."""
    if dbs.catalog is None:
        return ""
    row = txn.get(_row_key(group_of(txn, dbs, stored, fields[3]), fields[0], stored), db=dbs.catalog)
    return "" if row is None else _parse_row(b"", row).args


def is_current(txn: lmdb.Transaction, dbs: Databases) -> bool:
    """Whether the catalog checks out: its marker, well-formed summaries counting every entry, one row per entry.

    Time per group, not per entry. A catalog that does not check out is
    derived data: `rebuild` recounts it from the entries.
    """
    if dbs.summaries is None or dbs.catalog is None or txn.get(MARKER, db=dbs.meta) != FORMAT:
        return False
    entries = txn.stat(dbs.entries)["entries"]
    if txn.stat(dbs.catalog)["entries"] != entries:  # rows dropped or left over
        return False
    if dbs.access is not None and not txn.stat(dbs.access)["entries"] == txn.stat(dbs.recency)["entries"] == entries:
        return False
    counted = 0
    for _, value in txn.cursor(db=dbs.summaries):
        summary = _summary(value)
        if summary is None:
            return False
        counted += summary[0]
    return counted == entries


def mark_new(txn: lmdb.Transaction, dbs: Databases) -> None:
    """Mark the catalog of an archive with no entries yet as current."""
    if txn.get(MARKER, db=dbs.meta) is None and txn.stat(dbs.entries)["entries"] == 0:
        txn.put(MARKER, FORMAT, db=dbs.meta)


def tally(txn: lmdb.Transaction, dbs: Databases, fields_of: Callable[[Any], tuple],
          on_entry: Callable[[bytes, bytes, tuple], None] | None = None) -> dict[bytes, list]:
    """Scan every entry once: group -> [entries, bytes, compute seconds, version, first, last] (memory per group)."""
    totals: dict[bytes, list] = {}
    for stored, buf in txn.cursor(db=dbs.entries):
        stored = bytes(stored)
        fields = created, seconds, size, version = fields_of(buf)
        group = group_of(txn, dbs, stored, version)
        if on_entry is not None:
            on_entry(group, stored, fields)
        total = totals.get(group)
        if total is None:
            total = totals[group] = [0, 0, 0.0, version, created, created]
        total[0] += 1
        total[1] += size
        total[2] += seconds
        total[4], total[5] = min(total[4], created), max(total[5], created)
    return totals


def rebuild(txn: lmdb.Transaction, dbs: Databases, fields_of: Callable[[Any], tuple]) -> int:
    """Recount every entry into a fresh catalog (one pass, memory per group); returns the entry count.

    Entries cataloged this way have no recorded arguments.
    """
    known = {} if dbs.access is None else {bytes(k): _WHEN.unpack(v)[0] for k, v in txn.cursor(db=dbs.access)}
    for db in (dbs.catalog, dbs.summaries, dbs.access, dbs.recency):
        if db is not None:
            txn.drop(db, delete=False)

    def on_entry(group: bytes, stored: bytes, fields: tuple) -> None:
        created, seconds, size, _ = fields
        txn.put(_row_key(group, created, stored), _ROW.pack(size, seconds, 0) + stored, db=dbs.catalog)
        touch(txn, dbs, stored, max(created, known.get(stored, 0.0)))

    totals = tally(txn, dbs, fields_of, on_entry)
    for group, (n, size, seconds, version, _, _) in totals.items():
        txn.put(group, _SUMMARY.pack(n, size, seconds) + version.encode(), db=dbs.summaries)
    txn.put(MARKER, FORMAT, db=dbs.meta)
    return sum(total[0] for total in totals.values())


def scanned(txn: lmdb.Transaction, dbs: Databases, fields_of: Callable[[Any], tuple],
            names: dict[bytes, tuple[str, str]]) -> list[NamespaceSummary]:
    """The summaries recounted from the entries without writing (for a read-only archive due a rebuild)."""
    out = [NamespaceSummary(_function(group, version, names), version, n, size, seconds,
                            *(datetime.fromtimestamp(t, timezone.utc) for t in (first, last)))
           for group, (n, size, seconds, version, first, last) in tally(txn, dbs, fields_of).items()]
    return sorted(out, key=lambda s: (s.function, s.version))


def _function(group: bytes, version: str, names: dict[bytes, tuple[str, str]]) -> str:
    return names.get(group[1:], (UNNAMED, version))[0] if group[:1] == b"n" else UNNAMED


def _when(raw: bytes) -> datetime:
    return datetime.fromtimestamp(_WHEN.unpack(raw)[0], timezone.utc)


def _edge_dates(txn: lmdb.Transaction, dbs: Databases, group: bytes) -> tuple[datetime, datetime]:
    cursor = txn.cursor(db=dbs.catalog)
    if not cursor.set_range(group) or not bytes(cursor.key()).startswith(group):
        epoch = datetime.fromtimestamp(0, timezone.utc)  # only while a rebuild is due
        return epoch, epoch
    first = bytes(cursor.key())
    if cursor.set_range(group + b"\xff" * 24):
        cursor.prev()
    else:
        cursor.last()
    last = bytes(cursor.key())
    return _when(first[_GROUP:_GROUP + 8]), _when(last[_GROUP:_GROUP + 8])


def summaries(txn: lmdb.Transaction, dbs: Databases, names: dict[bytes, tuple[str, str]]) -> list[NamespaceSummary]:
    """One `NamespaceSummary` per group, sorted by function then version (damaged records are left out)."""
    out = []
    for group, value in txn.cursor(db=dbs.summaries):
        group, summary = bytes(group), _summary(value)
        if summary is None:
            continue
        n, size, seconds = summary
        version = bytes(value[_SUMMARY.size:]).decode(errors="replace")
        out.append(NamespaceSummary(_function(group, version, names), version, n, size, seconds, *_edge_dates(txn, dbs, group)))
    return sorted(out, key=lambda s: (s.function, s.version))


def groups(txn: lmdb.Transaction, dbs: Databases, names: dict[bytes, tuple[str, str]]) -> list[tuple[bytes, str, str]]:
    """Every ``(group, function, version)`` the summaries hold."""
    out = []
    for group, value in txn.cursor(db=dbs.summaries):
        group, version = bytes(group), bytes(value[_SUMMARY.size:]).decode(errors="replace")
        out.append((group, _function(group, version, names), version))
    return out


def _parse_row(key: bytes, row: Any) -> CatalogRow:
    """The `CatalogRow` of a catalog record (a damaged one lists no stored key: nothing to delete)."""
    if len(row) < _ROW.size:
        return CatalogRow(b"", datetime.fromtimestamp(0, timezone.utc), 0, 0.0, "", key)
    size, seconds, n_args = _ROW.unpack_from(row, 0)
    start = _ROW.size
    args = bytes(row[start:start + n_args]).decode("utf-8", "backslashreplace")
    created = _when(key[_GROUP:_GROUP + 8]) if key else datetime.fromtimestamp(0, timezone.utc)
    return CatalogRow(bytes(row[start + n_args:]), created, size, seconds, args, key)


def rows(txn: lmdb.Transaction, dbs: Databases, group: bytes, after: bytes, limit: int,
         before: float | None = None) -> tuple[list[CatalogRow], bytes]:
    """Up to ``limit`` rows of ``group`` after row key ``after`` (created before ``before``), and the last key."""
    cursor = txn.cursor(db=dbs.catalog)
    out: list[CatalogRow] = []
    if not cursor.set_range(after or group):
        return out, after
    if after and bytes(cursor.key()) == after:
        cursor.next()
    last = after
    for key, row in cursor:
        key = bytes(key)
        if not key.startswith(group) or (before is not None and _WHEN.unpack(key[_GROUP:_GROUP + 8])[0] >= before):
            break
        out.append(_parse_row(key, row))
        last = key
        if len(out) >= limit:
            break
    return out, last


def iter_rows(read: Callable[[Callable], Any], dbs: Callable[[], Databases], group: bytes, *, chunk: int = 1000,
              before: float | None = None) -> Iterator[CatalogRow]:
    """Stream the rows of ``group`` in date order, ``chunk`` per read transaction (constant memory)."""
    after = b""
    while True:
        batch, after = read(lambda txn: rows(txn, dbs(), group, after, chunk, before))
        yield from batch
        if len(batch) < chunk:
            return
