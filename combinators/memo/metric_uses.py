"""Which metrics a metric uses, and the version that follows them.

A metric that calls another through the `Metrics` object it captures
(``def metric_2(): return m.metric_1() * 2``) depends on that metric's
code. The `Metrics` object is not a value to key (it holds functions and
an archive): `version` keys the metric's code and its other captured values
(`combinators.memo.capture`), with each captured or global `Metrics`
object replaced by a placeholder, then adds the version of every metric of
those objects that the code names (an attribute such as ``m.metric_1`` or a
string such as ``m["metric_1"]``, nested functions included).
"""

from __future__ import annotations

import types
from typing import Any, Callable

import xxhash

from combinators.memo.capture import Captured, code_version

__all__ = ["version", "used"]


def _names(code: types.CodeType, out: set) -> None:
    out.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, str):
            out.add(const)
        elif isinstance(const, types.CodeType):
            _names(const, out)


def _holders(fn: Callable, kind: type) -> list[Any]:
    """The `Metrics` objects ``fn`` captures or reads as module globals."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    cells = [_content(cell) for cell in getattr(fn, "__closure__", None) or ()]
    names: set = set()
    _names(code, names)
    namespace = getattr(fn, "__globals__", {})
    found = [v for v in cells if isinstance(v, kind)] + [namespace[n] for n in sorted(names & set(namespace))
                                                    if isinstance(namespace[n], kind)]
    unique: dict[int, Any] = {id(m): m for m in found}
    return list(unique.values())


def _content(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:
        return None


def used(fn: Callable, kind: type) -> list[tuple[Any, str]]:
    """``(metrics, name)`` of each metric ``fn`` names through a ``kind`` (`Metrics`) object it captures or reads."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    names: set = set()
    _names(code, names)
    return [(m, name) for m in _holders(fn, kind) for name in sorted(names & set(m._metrics))]


def _without_metrics(fn: Callable, kind: type) -> Callable:
    """A copy of ``fn`` whose captured `Metrics` objects are ``None`` (what else it captures stays)."""
    closure = getattr(fn, "__closure__", None)
    if not isinstance(fn, types.FunctionType) or not closure:
        return fn
    cells = tuple(types.CellType(None) if isinstance(_content(c), kind) else c for c in closure)
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, cells)
    copy.__kwdefaults__, copy.__qualname__, copy.__module__ = fn.__kwdefaults__, fn.__qualname__, fn.__module__
    return copy


def version(fn: Callable, given: str | None, version_of: Callable[[Any, str], str], kind: type) -> str | None:
    """The version to memoize ``fn`` under: ``given`` (or ``None``: memoize's default) when it uses no metric.

    Otherwise a 16-hex-digit digest of its own version (``given``, or its
    code and captured values but the `Metrics` objects) and of
    ``version_of(metrics, name)`` for each metric it uses (``kind`` is the
    `Metrics` class, passed in: this module is below it). Raises
    `KeyingError` for another captured value that cannot be keyed.
    """
    holders, uses = _holders(fn, kind), used(fn, kind)
    if not holders:
        return given
    if given is None:
        bare = _without_metrics(fn, kind)
        given = f"{code_version(bare)}+{Captured(bare, lenient=False).digest()}"
    parts = [given] + [f"{name}={version_of(m, name)}" for m, name in uses]
    return xxhash.xxh3_128("\0".join(parts).encode()).hexdigest()[:16]
