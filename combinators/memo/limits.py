"""Limits of an LMDB archive (entries, bytes, time unused), enforced by evicting the least recently used.

The catalog (`combinators.memo.catalog`) keeps each entry's last access:
set when it is written, and when an archive with limits reads it (recorded
in memory on the read, written with that archive's next write or at its
close: a hit stays a read transaction). `evict` runs inside a write
transaction: it deletes entries least recently used first until the
archive holds at most ``max_entries`` entries and ``max_bytes`` stored
bytes (values as serialized), and every entry unused since ``unused_before``.
`LMDBArchive` calls it after each write when it has limits; ``combinators
archive prune`` calls it once.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs
import lmdb

from combinators.memo import catalog as _catalog
from combinators.memo.caches import check_positive_int

__all__ = ["Limits", "evict"]


@attrs.frozen
class Limits:
    """At most ``max_entries`` entries and ``max_bytes`` stored bytes (``None``: no limit).

    >>> Limits(max_bytes=1 << 20).active, Limits().active
    (True, False)
    """

    max_bytes: int | None = attrs.field(default=None, validator=attrs.validators.optional(check_positive_int))
    max_entries: int | None = attrs.field(default=None, validator=attrs.validators.optional(check_positive_int))

    @property
    def active(self) -> bool:
        return self.max_bytes is not None or self.max_entries is not None


def record_reads(txn: lmdb.Transaction, dbs: _catalog.Databases, fields_of: Callable[[Any], tuple],
                 reads: dict[bytes, float]) -> None:
    """Write the last accesses an archive read (stored key -> time), and recount a catalog that does not check out."""
    for stored, when in reads.items():
        if txn.get(stored, db=dbs.entries) is not None:
            _catalog.touch(txn, dbs, stored, when)
    if not _catalog.is_current(txn, dbs):
        _catalog.rebuild(txn, dbs, fields_of)


def evict(txn: lmdb.Transaction, dbs: _catalog.Databases, fields_of: Callable[[Any], tuple], limits: Limits, *,
          unused_before: float | None = None, keep: bytes | None = None, dry_run: bool = False,
          reads: dict[bytes, float] | None = None) -> tuple[int, int]:
    """Delete least recently used entries until within ``limits`` (and none unused since ``unused_before``).

    ``reads`` are first recorded (`record_reads`). ``keep`` (the entry just
    written) is never evicted: a single value larger than ``max_bytes``
    stays alone. Returns (entries, bytes) removed, or that would be with
    ``dry_run``.
    """
    record_reads(txn, dbs, fields_of, reads or {})
    entries, total = txn.stat(dbs.entries)["entries"], _catalog.stored_bytes(txn, dbs)
    doomed: list[tuple[bytes, tuple]] = []
    for when, stored in _catalog.least_recent(txn, dbs):
        over = ((limits.max_entries is not None and entries > limits.max_entries)
                or (limits.max_bytes is not None and total > limits.max_bytes))
        if not over and (unused_before is None or when >= unused_before):
            break
        if stored == keep:
            continue
        buf = txn.get(stored, db=dbs.entries)
        if buf is None:  # an access record without its entry: the catalog is due a rebuild
            continue
        fields = fields_of(buf)
        doomed.append((stored, fields))
        entries, total = entries - 1, total - fields[2]
    if not dry_run:
        for stored, fields in doomed:
            _catalog.remove(txn, dbs, stored, fields)
            txn.delete(stored, db=dbs.entries)
    return len(doomed), sum(fields[2] for _, fields in doomed)
