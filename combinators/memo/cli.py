"""``combinators archive ls|stats|rm|prune|why PATH``: inspect and prune an LMDB memo archive.

``ls`` lists each function and version with its entry count, bytes, compute
seconds and first/last dates; ``ls --entries FUNCTION`` lists that function's
entries (arguments, size, date, compute seconds); ``stats`` summarizes the
whole archive; ``rm`` removes entries by function (a glob), version or age
(``--older-than 7d``); ``prune`` evicts the least recently used entries
down to a size or count (``--max-bytes 2GB``, ``--max-entries``) and those
unused for an age (``--unused-for 30d``); ``why PATH module:function ARGS``
tells why a call misses (`combinators.memo.why`). ``ls`` and ``stats`` read the summaries the archive
keeps at write time (`combinators.memo.catalog`), so they answer in constant
time and memory whatever the number of entries; an archive written before
summaries existed is recounted once, on first use, when the command may write
to it. The same operations are available as `summarize` and `prune`.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Iterator

from combinators.errors import ArchiveError, CombinatorsError, InvalidArgument
from combinators.memo.archives import Archive
from combinators.memo.lmdb_archive import LMDBArchive
from combinators.memo.lmdb_env import recorded_serializer
from combinators.memo.catalog import UNNAMED, NamespaceSummary

__all__ = ["NamespaceSummary", "summarize", "prune", "parse_age", "parse_size", "add_arguments", "run"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_BATCH = 10_000  # entries deleted per write transaction by prune
_NO_FILTER = ("rm needs at least one filter: --function GLOB, --version V or --older-than AGE "
              "(refusing to delete everything)")


def _scan(archive: Archive) -> Iterator[tuple[str, str, object, object]]:
    """(function, version, key, info) of every entry of a non-LMDB archive."""
    names = archive.registered()
    for key, info in archive.iter_info():
        function, version = names.get(key[:16], (UNNAMED, info.version))
        yield function, version, key, info


def summarize(archive: Archive) -> list[NamespaceSummary]:
    """One `NamespaceSummary` per function and version, sorted by function then version.

    Entries not written through `memoize` are grouped as ``"(not memoized)"``.
    An `LMDBArchive` answers from its summaries (`LMDBArchive.summaries`).

    >>> from combinators.memo import DictArchive, memoize
    >>> f = memoize(lambda x: x, archive=DictArchive(), name="identity", version="1")
    >>> f(1), f(2)
    (1, 2)
    >>> [(s.function, s.version, s.entries) for s in summarize(f.archive.archive)]
    [('identity', '1', 2)]
    """
    if isinstance(archive, LMDBArchive):
        return archive.summaries()
    totals: dict[tuple[str, str], list] = {}
    for function, version, _, info in _scan(archive):
        total = totals.setdefault((function, version), [0, 0, 0.0, info.created, info.created])
        total[0] += 1
        total[1] += info.size
        total[2] += info.compute_seconds
        total[3], total[4] = min(total[3], info.created), max(total[4], info.created)
    return sorted((NamespaceSummary(f, v, *total) for (f, v), total in totals.items()),
                  key=lambda s: (s.function, s.version))


_SIZES = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20,
          "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """``"500MB"``, ``"2GiB"``, ``"1000"`` as bytes; `InvalidArgument` otherwise.

    >>> parse_size("1.5kB"), parse_size("2GiB")
    (1500, 2147483648)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _SIZES or float(match.group(1)) * _SIZES[match.group(2).lower()] < 1:
        msg = f"size must be a positive number of bytes with an optional unit among kB, MB, GB, TB, KiB, MiB, GiB, TiB, got {text!r}"
        raise InvalidArgument(msg)
    return int(float(match.group(1)) * _SIZES[match.group(2).lower()])


def parse_age(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` as a timedelta; `InvalidArgument` otherwise.

    >>> parse_age("36h")
    datetime.timedelta(days=1, seconds=43200)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not match:
        msg = f"age must be a number and a unit among s, m, h, d, w (as in 7d), got {text!r}"
        raise InvalidArgument(msg)
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def prune(archive: Archive, *, function: str | None = None, version: str | None = None,
          older_than: timedelta | None = None, dry_run: bool = False) -> int:
    """Delete the entries matching every given filter; returns how many matched.

    ``function`` is a glob over function names, ``version`` an exact version,
    ``older_than`` an age. At least one filter is required (`InvalidArgument`).
    An `LMDBArchive` is pruned from its catalog, oldest first, in batches of
    10,000 entries per write transaction (constant memory); an entry
    overwritten by another process meanwhile is kept.
    """
    if function is None and version is None and older_than is None:
        msg = "prune needs at least one of function, version or older_than (refusing to delete everything)"
        raise InvalidArgument(msg)
    cutoff = None if older_than is None else datetime.now(timezone.utc) - older_than

    def wanted(name: str, ver: str) -> bool:
        return (function is None or fnmatch.fnmatchcase(name, function)) and (version is None or ver == version)

    if isinstance(archive, LMDBArchive):
        return _prune_lmdb(archive, wanted, cutoff, dry_run)
    doomed = [key for name, ver, key, info in _scan(archive)
              if wanted(name, ver) and (cutoff is None or info.created < cutoff)]
    if not dry_run:
        for key in doomed:
            del archive[key]
    return len(doomed)


def _prune_lmdb(archive: LMDBArchive, wanted: object, cutoff: datetime | None, dry_run: bool) -> int:
    if not archive.catalog_current():
        archive.rebuild_catalog()
    count = 0
    for group, name, ver in archive.catalog_groups():
        if not wanted(name, ver):
            continue
        batch: list = []
        for row in archive.iter_catalog(group, before=cutoff, chunk=_BATCH):
            batch.append(row)
            if len(batch) >= _BATCH:
                count += len(batch) if dry_run else archive.delete_rows(batch)
                batch = []
        count += len(batch) if dry_run else archive.delete_rows(batch)
    return count


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _ls(archive: LMDBArchive) -> int:
    rows = [("function", "version", "entries", "size", "compute s", "first (UTC)", "last (UTC)")]
    rows += [(s.function, s.version, str(s.entries), _size(s.size), f"{s.compute_seconds:.3g}", _when(s.first),
              _when(s.last)) for s in summarize(archive)]
    _table(rows)
    return 0


def _ls_entries(archive: LMDBArchive, function: str, version: str | None, limit: int | None) -> int:
    """Stream the entries of the functions matching ``function`` (a glob), oldest first."""
    groups = archive.catalog_groups()
    chosen = [(g, f, v) for g, f, v in groups
              if fnmatch.fnmatchcase(f, function) and (version is None or v == version)]
    if not chosen:
        known = sorted({f"{f} (version {v})" for _, f, v in groups})
        msg = f"no function matches {function!r}{'' if version is None else f' at version {version!r}'}; " \
              f"the archive holds: {', '.join(known) or 'nothing'}"
        raise InvalidArgument(msg)
    shown = 0
    for group, name, ver in sorted(chosen, key=lambda c: (c[1], c[2])):
        print(f"{name}  version {ver}")
        print(f"  {'created (UTC)':<19}  {'size':>9}  {'compute s':>9}  arguments")
        for row in archive.iter_catalog(group):
            if limit is not None and shown >= limit:
                return 0
            print(f"  {_when(row.created)}  {_size(row.size):>9}  {row.compute_seconds:>9.3g}  {row.args or '-'}")
            shown += 1
    return 0


def _stats(archive: LMDBArchive) -> int:
    stat, summaries = archive.stat(), summarize(archive)
    lines = {
        "path": stat["path"], "serializer": stat["serializer"], "entries": stat["entries"],
        "functions": len({s.function for s in summaries}), "versions": len(summaries),
        "stored bytes": _size(sum(s.size for s in summaries)), "file size": _size(stat["file_size"]),
        "map size": _size(stat["map_size"]),
        "compute seconds stored": f"{sum(s.compute_seconds for s in summaries):.3g}",
        "oldest (UTC)": _when(min(s.first for s in summaries)) if summaries else "-",
        "newest (UTC)": _when(max(s.last for s in summaries)) if summaries else "-",
    }
    for name, value in lines.items():
        print(f"{name + ':':<24}{value}")
    return 0


def _json_value(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        msg = f"each argument is a JSON value (a string is quoted: '\"text\"'), got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _keyword(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        msg = f"a keyword argument is NAME=JSON, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return name, _json_value(value)


def _memoized(target: str) -> object:
    """The memoized function ``module:qualname``; `InvalidArgument` if it cannot be imported or is not one."""
    module, _, qualname = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: object = importlib.import_module(module)
        for part in qualname.split(".") if qualname else ():
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        msg = f"cannot import {target!r} (give module:qualname): {error}"
        raise InvalidArgument(msg) from None
    if not callable(getattr(found, "why_in", None)):
        msg = f"{target!r} is not a memoized function (decorate it with memoize)"
        raise InvalidArgument(msg)
    return found


def _prune_lru(archive: LMDBArchive, args: argparse.Namespace) -> int:
    unused = None if args.unused_for is None else datetime.now(timezone.utc) - args.unused_for
    count, size = archive.evict(max_bytes=args.max_bytes, max_entries=args.max_entries, unused_before=unused,
                                dry_run=args.dry_run)
    print(f"{'would remove' if args.dry_run else 'removed'} {count} entries ({_size(size)})")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``ls``, ``stats`` and ``rm`` sub-commands."""
    sub = parser.add_subparsers(dest="action", required=True)
    for action, text in (("ls", "list functions and versions, or one function's entries"),
                         ("stats", "summarize the archive"), ("rm", "remove entries by function, version or age"),
                         ("prune", "evict the least recently used entries down to a size or count, or unused for an age"),
                         ("why", "why a call of a memoized function misses: the nearest entry and what differs")):
        p = sub.add_parser(action, help=text, description=text)
        p.add_argument("path", help="the archive directory")
        if action == "ls":
            p.add_argument("--entries", metavar="FUNCTION",
                           help="list this function's entries (a name or a glob): arguments, size, date, compute s")
            p.add_argument("--version", help="with --entries: only this version")
            p.add_argument("--limit", type=int, help="with --entries: at most this many entries")
        if action == "rm":
            p.add_argument("--function", help="function name, or a glob such as 'mypkg.*'")
            p.add_argument("--version", help="exact function version")
            p.add_argument("--older-than", type=parse_age, help="age such as 30m, 12h, 7d")
            p.add_argument("--dry-run", action="store_true", help="count, do not delete")
        if action == "why":
            p.add_argument("function", help="the memoized function, as module:qualname (imported from here)")
            p.add_argument("args", nargs="*", type=_json_value, help="positional arguments, each a JSON value")
            p.add_argument("--kw", action="append", default=[], type=_keyword, metavar="NAME=JSON",
                           help="a keyword argument (repeatable)")
        if action == "prune":
            p.add_argument("--max-bytes", type=parse_size, help="keep at most this many stored bytes, as in 2GB")
            p.add_argument("--max-entries", type=int, help="keep at most this many entries")
            p.add_argument("--unused-for", type=parse_age, help="remove entries not used for this age, as in 30d")
            p.add_argument("--dry-run", action="store_true", help="count, do not delete")


def _open(path: str, action: str, entries: bool) -> LMDBArchive:
    """The archive, its summaries recounted first when they are due and the archive is writable."""
    serializer = recorded_serializer(path)  # values are not decoded: any serializer will do
    archive = LMDBArchive(path, serializer=serializer, readonly=action not in ("rm", "prune"))
    if action == "why":
        return archive
    if action in ("rm", "prune") or archive.catalog_current():
        return archive
    archive.close()
    if os.access(path, os.W_OK) and os.access(os.path.join(path, "data.mdb"), os.W_OK):
        print("combinators archive: this archive has no summaries yet (written by an older combinators); "
              "counting its entries once...", file=sys.stderr)
        with LMDBArchive(path, serializer=serializer) as writable:
            writable.rebuild_catalog()
    elif entries:
        msg = (f"archive {path!r} has no entry catalog yet and this user cannot write to it; run "
               f"'combinators archive ls {path}' once with write access")
        raise ArchiveError(msg)
    else:
        print("combinators archive: this archive has no summaries and is read-only here: counting every entry "
              "(slow on large archives; run once with write access to keep summaries)", file=sys.stderr)
    return LMDBArchive(path, serializer=serializer, readonly=True)


def run(args: argparse.Namespace) -> int:
    """Run ``combinators archive``; prints errors to stderr and returns 2 on bad input."""
    try:
        if args.action == "rm" and args.function is None and args.version is None and args.older_than is None:
            raise InvalidArgument(_NO_FILTER)
        if args.action == "prune" and args.max_bytes is None and args.max_entries is None and args.unused_for is None:
            raise InvalidArgument("prune needs --max-bytes SIZE, --max-entries N or --unused-for AGE")
        entries = getattr(args, "entries", None)
        with _open(args.path, args.action, entries is not None) as archive:
            if args.action == "ls":
                return _ls(archive) if entries is None else _ls_entries(archive, entries, args.version, args.limit)
            if args.action == "stats":
                return _stats(archive)
            if args.action == "prune":
                return _prune_lru(archive, args)
            if args.action == "why":
                print(_memoized(args.function).why_in(archive, tuple(args.args), dict(args.kw)))
                return 0
            count = prune(archive, function=args.function, version=args.version, older_than=args.older_than,
                          dry_run=args.dry_run)
            print(f"{'would remove' if args.dry_run else 'removed'} {count} entries")
            return 0
    except CombinatorsError as error:
        print(f"combinators archive: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # ls piped into head
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
