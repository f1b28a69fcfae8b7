"""Whether an LMDB file is whole: the pages past its end that a reader could touch.

LMDB's meta page records the environment's last page number, but not every
page up to it is written: a page a write transaction allocated at the end of
the file and freed before committing goes straight to the free list without
ever reaching the disk. Two processes writing at once followed by a large
delete leave such pages (issue 23, item 15), so ``data.mdb`` may legitimately
end before the last page. A page past the end is harmful only when it is in
use: reading it through the memory map kills the process with SIGBUS.

`missing_pages` reads the file with ``pread`` (never through a map): the
newest meta page, then the free-list B-tree, and returns the pages past the
end of the file that the free list does not hold. The on-disk layout is
LMDB 0.9's (``mdb.c``: ``MDB_page``, ``MDB_meta``, ``MDB_db``, ``MDB_node``;
64-bit page numbers), the one py-lmdb bundles.
"""

from __future__ import annotations

import os
import struct

__all__ = ["missing_pages"]

_MAGIC = 0xBEEFC0DE
_HEADER = 16  # MDB_page: pgno (8), pad (2), flags (2), lower/upper (2 + 2) or overflow page count (4)
_DB = struct.Struct("<IHHQQQQQ")  # MDB_db: pad (psize in the free db), flags, depth, 3 page counts, entries, root
_META = struct.Struct("<IIQQ")  # magic, version, address, map size; then two MDB_db, last page, txnid
_BRANCH, _LEAF, _OVERFLOW = 0x01, 0x02, 0x04
_BIGDATA = 0x01
_NONE = (1 << 64) - 1


class _Unreadable(Exception):
    """A page lies past the end of the file or does not parse: the file is not whole."""


def _meta(data: bytes) -> tuple[int, int, int, int]:
    """(txnid, last page, free-db root, page size) of one meta page; txnid -1 when it is not one."""
    magic, _, _, _ = _META.unpack_from(data, _HEADER)
    if magic != _MAGIC:
        return -1, 0, _NONE, 0
    free = _DB.unpack_from(data, _HEADER + _META.size)
    last, txnid = struct.unpack_from("<QQ", data, _HEADER + _META.size + 2 * _DB.size)
    return txnid, last, free[7], free[0]


def _read(fd: int, pgno: int, psize: int, pages: int, count: int = 1) -> bytes:
    if pgno + count > pages:
        raise _Unreadable(pgno)
    return os.pread(fd, psize * count, pgno * psize)


def _free_pages(fd: int, root: int, psize: int, pages: int) -> set[int]:
    """Every page number the free list holds (walking its B-tree depth first)."""
    free: set[int] = set()
    stack = [] if root == _NONE else [root]
    while stack:
        page = _read(fd, stack.pop(), psize, pages)
        flags, lower = struct.unpack_from("<HH", page, 10)
        for i in range((lower - _HEADER) // 2):
            (offset,) = struct.unpack_from("<H", page, _HEADER + 2 * i)
            lo, hi, node_flags, ksize = struct.unpack_from("<HHHH", page, offset)
            if flags & _BRANCH:
                stack.append(lo | hi << 16 | node_flags << 32)
            elif flags & _LEAF:
                free.update(_idl(fd, page, offset + 8 + ksize, lo | hi << 16, node_flags, psize, pages))
            else:
                raise _Unreadable(page)
    return free


def _idl(fd: int, page: bytes, start: int, size: int, node_flags: int, psize: int, pages: int) -> tuple[int, ...]:
    """The page numbers of one free-list record (an IDL: count, then numbers), inline or on overflow pages."""
    if node_flags & _BIGDATA:
        (first,) = struct.unpack_from("<Q", page, start)
        (count,) = struct.unpack_from("<I", _read(fd, first, psize, pages), 12)
        data = _read(fd, first, psize, pages, count)[_HEADER:_HEADER + size]
    else:
        data = page[start:start + size]
    (n,) = struct.unpack_from("<Q", data, 0)
    return struct.unpack_from(f"<{n}Q", data, 8)


def missing_pages(path: str) -> tuple[int, int]:
    """(pages in use past the end of ``path``'s data.mdb, size it needs in bytes); (0, size) when whole.

    Reads the two meta pages and, only when the file ends before the last
    page, the free list. Raises ``OSError`` when the file cannot be read.
    """
    name = os.path.join(path, "data.mdb")
    fd = os.open(name, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        first = os.pread(fd, _HEADER + _META.size + 2 * _DB.size + 16, 0)
        if len(first) < _HEADER + _META.size + 2 * _DB.size + 16:
            return 1, 2 * 4096
        _, _, _, psize = _meta(first)
        psize = psize or 4096
        metas = [_meta(first), _meta(os.pread(fd, psize, psize).ljust(psize, b"\0"))]
        txnid, last, root, _ = max(metas)
        if txnid < 0:
            return 1, 2 * psize
        pages, needed = size // psize, (last + 1) * psize
        if last < pages:
            return 0, needed
        try:
            beyond = set(range(pages, last + 1)) - _free_pages(fd, root, psize, pages)
        except (_Unreadable, struct.error):
            return last + 1 - pages, needed
        return len(beyond), needed
    finally:
        os.close(fd)
