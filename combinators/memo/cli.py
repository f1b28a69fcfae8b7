"""``combinators archive ls|stats|rm PATH``: inspect and prune an LMDB memo archive.

``ls`` lists each function and version with its entry count, bytes, compute
seconds and first/last dates; ``stats`` summarizes the whole archive; ``rm``
removes entries by function (a glob), version or age (``--older-than 7d``).
The same operations are available as `summarize` and `prune`.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import sys
from datetime import datetime, timedelta, timezone

import attrs

from combinators.errors import CombinatorsError, InvalidArgument
from combinators.memo.archives import Archive, LMDBArchive, recorded_serializer

__all__ = ["NamespaceSummary", "summarize", "prune", "parse_age", "add_arguments", "run"]

_UNNAMED = "(not memoized)"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


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


def _groups(archive: Archive) -> dict[tuple[str, str], list]:
    names = archive.registered()
    groups: dict[tuple[str, str], list] = {}
    for key, info in archive.iter_info():
        function, version = names.get(key[:16], (_UNNAMED, info.version))
        groups.setdefault((function, version), []).append((key, info))
    return groups


def summarize(archive: Archive) -> list[NamespaceSummary]:
    """One `NamespaceSummary` per function and version, sorted by function then version.

    Entries not written through `memoize` are grouped as ``"(not memoized)"``.

    >>> from combinators.memo import DictArchive, memoize
    >>> f = memoize(lambda x: x, archive=DictArchive(), name="identity", version="1")
    >>> f(1), f(2)
    (1, 2)
    >>> [(s.function, s.version, s.entries) for s in summarize(f.archive.archive)]
    [('identity', '1', 2)]
    """
    out = []
    for (function, version), entries in _groups(archive).items():
        infos = [info for _, info in entries]
        out.append(NamespaceSummary(function, version, len(infos), sum(i.size for i in infos),
                                    sum(i.compute_seconds for i in infos), min(i.created for i in infos),
                                    max(i.created for i in infos)))
    return sorted(out, key=lambda s: (s.function, s.version))


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
    """
    if function is None and version is None and older_than is None:
        msg = "prune needs at least one of function, version or older_than (refusing to delete everything)"
        raise InvalidArgument(msg)
    cutoff = None if older_than is None else datetime.now(timezone.utc) - older_than
    doomed = []
    for (name, ver), entries in _groups(archive).items():
        if (function is not None and not fnmatch.fnmatchcase(name, function)) or (version is not None and ver != version):
            continue
        doomed += [key for key, info in entries if cutoff is None or info.created < cutoff]
    if not dry_run and doomed:
        if isinstance(archive, LMDBArchive):
            archive.delete_many(doomed)
        else:
            for key in doomed:
                del archive[key]
    return len(doomed)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _ls(archive: LMDBArchive) -> int:
    rows = [("function", "version", "entries", "size", "compute s", "first (UTC)", "last (UTC)")]
    rows += [(s.function, s.version, str(s.entries), _size(s.size), f"{s.compute_seconds:.3g}", _when(s.first),
              _when(s.last)) for s in summarize(archive)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``ls``, ``stats`` and ``rm`` sub-commands."""
    sub = parser.add_subparsers(dest="action", required=True)
    for action, text in (("ls", "list functions and versions"), ("stats", "summarize the archive"),
                         ("rm", "remove entries by function, version or age")):
        p = sub.add_parser(action, help=text, description=text)
        p.add_argument("path", help="the archive directory")
        if action == "rm":
            p.add_argument("--function", help="function name, or a glob such as 'mypkg.*'")
            p.add_argument("--version", help="exact function version")
            p.add_argument("--older-than", type=parse_age, help="age such as 30m, 12h, 7d")
            p.add_argument("--dry-run", action="store_true", help="count, do not delete")


def run(args: argparse.Namespace) -> int:
    """Run ``combinators archive``; prints errors to stderr and returns 2 on bad input."""
    try:
        serializer = recorded_serializer(args.path)  # values are not decoded: any serializer will do
        archive = LMDBArchive(args.path, serializer=serializer, readonly=args.action != "rm")
        with archive:
            if args.action == "ls":
                return _ls(archive)
            if args.action == "stats":
                return _stats(archive)
            count = prune(archive, function=args.function, version=args.version, older_than=args.older_than,
                          dry_run=args.dry_run)
            print(f"{'would remove' if args.dry_run else 'removed'} {count} entries")
            return 0
    except CombinatorsError as error:
        print(f"combinators archive: error: {error}", file=sys.stderr)
        return 2
