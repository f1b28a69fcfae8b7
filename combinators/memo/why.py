"""Why did a memoized call miss: the nearest stored entry of the function, and what differs.

`memoize` stores with each entry a digest of each argument (its name ->
16 hex digits of the keymap's key of that value alone), and with each
function version what it is made of: the digest of its code and of each
value it captures (`describe`). `explain` compares a call with the entries
of every version of the function in the archive and reports the nearest
(fewest differences, the newer on a tie): its version if it differs (its
code, which captured value), and which arguments differ.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import attrs
import xxhash

from combinators.errors import KeyingError
from combinators.memo.archives import Archive, EntryInfo, Namespace
from combinators.memo.capture import Captured, code_version
from combinators.memo.encoding import Encoder

__all__ = ["Why", "describe", "argument_digests", "explain"]

#: entries compared per version at most (the newest first are not known: the first stored)
SCAN_LIMIT = 10_000


@attrs.frozen
class Why:
    """The answer of ``f.why(...)``: ``hit``, or the nearest entry (``None`` if the function has none) and
    ``differences`` (lines such as ``"argument 'x'"``, ``"captured value 'k'"``, ``"code"``)."""

    function: str
    version: str
    hit: bool
    nearest: EntryInfo | None = None
    differences: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.hit:
            return f"{self.function}: a hit (version {self.version})"
        if self.nearest is None:
            return f"{self.function}: a miss; the archive holds no entry of it (version {self.version})"
        near = self.nearest
        return (f"{self.function}: a miss (version {self.version}); nearest entry: version {near.version}, "
                f"arguments ({near.args or '?'}), stored {near.created:%Y-%m-%d %H:%M:%S} UTC; differs in: "
                f"{', '.join(self.differences) or 'nothing recorded (stored without argument digests)'}")


def _digest(value: Any) -> str:
    parts: list = []
    try:
        if callable(value) and hasattr(value, "__code__"):
            parts.append(code_version(value).encode())
        else:
            Encoder(typed=True).encode(value, parts, "captured")
    except KeyingError:
        return "?" + type(value).__qualname__
    return xxhash.xxh3_64_hexdigest(b"".join(bytes(p) for p in parts))


def describe(fn: Callable) -> dict:
    """What ``fn``'s version is made of: ``{"code": digest, "captured": {label: digest}}`` (never raising)."""
    try:
        code = code_version(fn)
    except KeyingError:
        code = "?"
    sources = Captured(fn, lenient=True).sources
    return {"code": code, "captured": {label: _digest(read()) for label, read in sources}}


def argument_digests(fn: Callable, keymap: Any) -> Callable[[tuple, dict], dict[str, str]]:
    """A function of (args, kwargs) -> {parameter name: 16 hex digits of its key}, defaults applied."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None
    ignored = {i for i in keymap.ignore if isinstance(i, str)}

    def digests(args: tuple, kwargs: dict) -> dict[str, str]:
        if signature is None:
            named = {**{str(i): v for i, v in enumerate(args)}, **kwargs}
        else:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return {}
            bound.apply_defaults()
            named = bound.arguments
        out = {}
        for name, value in named.items():
            if name in ignored:
                continue
            try:
                out[name] = xxhash.xxh3_64_hexdigest(bytes(keymap(value)))
            except (KeyingError, TypeError):
                out[name] = "?"
        return out

    return digests


def _version_differences(mine: dict | None, theirs: dict | None) -> list[str]:
    if not mine or not theirs:
        return ["version"]
    out = ["code"] if mine.get("code") != theirs.get("code") else []
    a, b = mine.get("captured", {}), theirs.get("captured", {})
    out += [f"captured value {label!r}" for label in sorted(set(a) | set(b)) if a.get(label) != b.get(label)]
    return out or ["version (called code or an explicit version=)"]


def explain(view: Namespace, key: bytes, digests: dict[str, str]) -> Why:
    """Compare a call (its ``key`` and argument ``digests``) with the entries of every version of ``view``'s function."""
    archive: Archive = view.archive
    if archive.get(view.prefix + key, _ABSENT) is not _ABSENT:
        return Why(view.name, view.version, True)
    descriptions = archive.descriptions()
    best: tuple | None = None
    for prefix, (name, version) in archive.registered().items():
        if name != view.name:
            continue
        changed = [] if prefix == view.prefix else _version_differences(view.parts, descriptions.get(prefix))
        for count, (stored_key, info) in enumerate(archive.iter_info(prefix)):
            if count >= SCAN_LIMIT:
                break
            theirs = archive.digests(stored_key)  # {} when stored without digests: arguments unknown
            args = [] if not theirs else [f"argument {n!r}" for n in sorted(set(digests) | set(theirs)) if digests.get(n) != theirs.get(n)]
            score = (len(changed) + len(args), -info.created.timestamp())
            if best is None or score < best[0]:
                best = (score, stored_key, tuple(changed + args))
    if best is None:
        return Why(view.name, view.version, False)
    return Why(view.name, view.version, False, archive.info(best[1]), best[2])


_ABSENT: Any = object()


def moved(view: Namespace, archive: Archive) -> Namespace:
    """``view``'s function and version in another archive (``combinators archive why`` reads the one it names)."""
    other = archive.namespace(view.name, view.version)
    other.parts = view.parts
    return other
