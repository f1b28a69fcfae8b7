"""What a function computes from besides its arguments, and the name it is stored under.

A memoized function's result depends on more than its arguments:

- the values its closure captured (``def make(k): def add(x): return x + k``)
  and the object a bound method is bound to (``obj.method``): `Captured`
  encodes them like arguments, and their digest joins the function's version,
  so ``make(1)`` and ``make(2)`` never share an entry;
- the arguments a ``functools.partial`` binds: part of its version;
- the plain-data module globals its code reads (numbers, strings, bytes,
  tuples of them, numpy arrays and scalars) and the code of the functions,
  classes and modules it calls, transitively: part of its version
  (`combinators.memo.calls.code_version`, re-exported here).

Captured values are read when `memoize` is applied, not at each call (which
keeps the hit path as fast as for any function, and lets a closure append to
a captured list): a closure that later rebinds a captured variable
(``nonlocal``) or mutates a captured container it reads must pass
``version=``. A global rebound to another object (a helper redefined) is
noticed at the next call (`combinators.memo.calls.CodeVersion.stale`);
one mutated in place is not.

`default_name` derives the name a callable's entries are stored under.
"""

from __future__ import annotations

import functools
import inspect
import types
from typing import Any, Callable

import xxhash

from combinators.errors import InvalidArgumentType, KeyingError
from combinators.memo.calls import code_version, global_constants
from combinators.memo.encoding import Encoder

__all__ = ["Captured", "code_version", "default_name", "global_constants", "signature"]

def signature(fn: Callable) -> inspect.Signature:
    """``inspect.signature(fn)``, or ``(*args, **kwargs)`` for builtins without one (``min``).

    >>> str(signature(min)), str(signature(pow))
    ('(*args, **kwargs)', '(base, exp, mod=None)')
    """
    try:
        return inspect.signature(fn)
    except ValueError:  # "no signature found for builtin"
        kinds = inspect.Parameter
        return inspect.Signature([kinds("args", kinds.VAR_POSITIONAL), kinds("kwargs", kinds.VAR_KEYWORD)])


def default_name(fn: Callable) -> str:
    """The name ``fn``'s entries are stored under: its module and qualified name.

    A ``functools.partial`` is named after the function it wraps (its bound
    arguments go into its version). Raises `InvalidArgumentType`, asking for
    ``name=``, for a callable without a qualified name (an instance with
    ``__call__``).

    >>> default_name(min), default_name(functools.partial(divmod, 7))
    ('builtins.min', 'functools.partial(builtins.divmod)')
    """
    if isinstance(fn, functools.partial):
        return f"functools.partial({default_name(fn.func)})"
    qualname, module = getattr(fn, "__qualname__", None), getattr(fn, "__module__", None)
    if not isinstance(qualname, str) or not isinstance(module, str):
        msg = (f"cannot derive a name for {type(fn).__qualname__} {fn!r:.60}: it has no __qualname__ and "
               f"__module__; pass name= (and version= if its state matters) to memoize it")
        raise InvalidArgumentType(msg)
    return f"{module}.{qualname}"


class Captured:
    """The values a callable captured (closure cells, bound ``self``), as a digest for its version.

    ``lenient`` (memoize with ``version=``) leaves values that cannot be keyed
    out instead of raising. A captured local function contributes its name,
    code and, in turn, what it captures; a module its name. `digest` raises
    `KeyingError` naming the variable and the function.

    >>> def make(k):
    ...     return lambda x: x + k
    >>> c = Captured(make(1), lenient=False)
    >>> c.labels, c.digest() == Captured(make(1), False).digest() != Captured(make(2), False).digest()
    (('k',), True)
    """

    def __init__(self, fn: Callable, lenient: bool) -> None:
        self.name, self.lenient = getattr(fn, "__qualname__", None) or repr(fn), lenient
        self.sources = _sources(fn)
        self.labels = tuple(label for label, _ in self.sources)

    def digest(self) -> str:
        """16 hex digits of the canonical encoding of every captured value now; ``""`` if none."""
        if not self.sources:
            return ""
        parts: list = []
        encoder = Encoder(typed=True)
        for label, read in self.sources:
            parts.append(b"|" + label.encode() + b"=")
            self._encode_value(encoder, read(), parts, label, set())
        return xxhash.xxh3_128(b"".join(bytes(p) for p in parts)).hexdigest()[:16]

    def _encode_value(self, encoder: Encoder, value: Any, parts: list, label: str, seen: set) -> None:
        try:
            if value is _EMPTY:
                parts.append(b"E")
            elif isinstance(value, types.ModuleType):
                parts.append(b"M" + value.__name__.encode() + b";")
            elif _is_function(value):
                self._encode_function(encoder, value, parts, label, seen)
            else:
                encoder.encode(value, parts, f"{label!r}")
        except KeyingError as error:
            if self.lenient:
                parts.append(b"?" + type(value).__qualname__.encode() + b";")
                return
            if isinstance(error, _Uncapturable):  # already names the innermost captured value
                raise
            msg = (f"cannot key {type(value).__qualname__} {value!r:.60}, which {self.name} captures in "
                   f"{label!r}: memoize keys captured values like arguments; capture a keyable value, or "
                   f"pass version= to vouch for it (it is then left out of the key)")
            raise _Uncapturable(msg) from error

    def _encode_function(self, encoder: Encoder, fn: Callable, parts: list, label: str, seen: set) -> None:
        """A captured function: its name, its code and, in turn, what it captures."""
        inner = inspect.unwrap(fn)
        parts.append(b"F" + default_name(inner).encode() + b";")
        if id(inner) in seen:  # a function that captures itself
            return
        seen.add(id(inner))
        parts.append(code_version(inner).encode())
        for sub, read in _sources(inner):
            parts.append(b"/" + sub.encode() + b"=")
            self._encode_value(encoder, read(), parts, f"{label}.{sub}", seen)


_EMPTY: Any = object()


class _Uncapturable(KeyingError):
    """A captured value that cannot be keyed (the message names it and the function)."""


def _sources(fn: Callable) -> list[tuple[str, Callable[[], Any]]]:
    """``(label, reader)`` for each captured value of ``fn`` (a partial's function included)."""
    out = []
    if isinstance(fn, functools.partial):
        return [(f"partial {label}", read) for label, read in _sources(fn.func)]
    bound = getattr(fn, "__self__", None)
    if bound is not None and not isinstance(bound, (types.ModuleType, type)):
        out.append(("self", lambda: bound))
    inner = inspect.unwrap(fn) if callable(fn) else fn
    closure = getattr(inner, "__closure__", None) or ()
    names = getattr(getattr(inner, "__code__", None), "co_freevars", ())
    for name, cell in zip(names, closure):
        if name == "__class__":  # the implicit cell of zero-argument super(): the defining class
            continue
        out.append((name, functools.partial(_read_cell, cell)))
    return out


def _read_cell(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # not yet assigned (a closure that refers to itself)
        return _EMPTY


def _is_function(value: Any) -> bool:
    return isinstance(value, (types.FunctionType, functools.partial)) or (
        callable(value) and hasattr(value, "__wrapped__") and not isinstance(value, type))
