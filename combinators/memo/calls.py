"""A function's version: its code, and the code of what it calls.

`code_version` digests a function's code (bytecode, constants, names,
defaults; not line numbers or the docstring), the plain-data module globals
it reads (`global_constants`) and, transitively, what it calls:

- functions, classes (their methods) and module attributes from the user's
  own code (any module not installed from a distribution, or installed in
  editable mode, and ``__main__``): by their code, in turn;
- library code (the standard library, installed distributions): by the
  Python version or the distribution's name and version
  (``importlib.metadata``), so upgrading numpy changes the version of the
  functions that call it;
- an object in a global offering ``__memo_calls__(name)`` (the callable its
  attribute ``name`` runs, as `combinators.memo.Metrics` could): that
  callable, followed in turn.

`CodeVersion` also keeps the bindings it read (a global's name in a module's
namespace and the object found there) so that a call can check cheaply
(`CodeVersion.stale`) that no helper was redefined since (a notebook cell run
again, a module reloaded), and compute the version again if one was.
"""

from __future__ import annotations

import dis
import functools
import importlib.metadata
import inspect
import json
import platform
import sys
import types
from typing import Any, Callable

import numpy as np
import xxhash

from combinators.errors import KeyingError
from combinators.memo.encoding import Encoder

__all__ = ["CodeVersion", "MISSING", "code_version", "global_constants", "library_version"]

_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_PLAIN = (type(None), bool, int, float, complex, str, bytes, np.generic)
#: the value `CodeVersion.bindings` holds for a name not bound (yet) in its namespace
MISSING: Any = object()
_BUILTINS = frozenset(vars(__import__("builtins")))


def global_constants(fn: Callable) -> list[tuple[str, Any]]:
    """The plain-data module globals ``fn``'s code reads, as ``(name, value)`` pairs sorted by name.

    Plain data is ``None``, bools, numbers, strings, bytes, numpy scalars and
    arrays (not of object dtype), and tuples and frozensets of plain data.
    Functions, classes, modules and mutable containers are left out. Nested
    functions and comprehensions are included.

    >>> SCALE = 3
    >>> def scale(x):
    ...     return SCALE * np.asarray(x)
    >>> global_constants(scale)
    [('SCALE', 3)]
    """
    fn = inspect.unwrap(fn)
    code, namespace = getattr(fn, "__code__", None), getattr(fn, "__globals__", None)
    if code is None or namespace is None:
        return []
    names, _ = _names(code)
    return [(name, namespace[name]) for name in sorted(names) if name in namespace and _plain(namespace[name])]


def _names(code: types.CodeType) -> tuple[set[str], set[str]]:
    """The global names ``code`` reads and every name it uses (attributes included), nested code too."""
    names: set[str] = set()
    everything: set[str] = set()
    _collect(code, names, everything)
    return names, everything


def _collect(code: types.CodeType, names: set, everything: set) -> None:
    everything.update(code.co_names)
    for instruction in dis.get_instructions(code):
        if instruction.opname in _GLOBAL_OPS:
            names.add(instruction.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _collect(const, names, everything)


def _plain(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return not value.dtype.hasobject
    if isinstance(value, (tuple, frozenset)):
        return all(_plain(item) for item in value)
    return isinstance(value, _PLAIN) and not (isinstance(value, np.generic) and value.dtype.hasobject)


def code_version(fn: Callable) -> str:
    """A 16-hex-digit digest of ``fn``'s code and of the code it calls (see the module docstring).

    Ignores line numbers and the docstring. For a ``functools.partial``, its
    function's version and its bound arguments. Returns ``""`` for a callable
    without Python code (a builtin). Raises `KeyingError` for a partial whose
    bound arguments cannot be keyed.

    >>> def f(x): return x + 1
    >>> def g(x):
    ...     '''Same code, other line numbers and a docstring.'''
    ...     return x + 1
    >>> code_version(f) == code_version(g) != code_version(lambda x: x + 2)
    True
    """
    return CodeVersion(fn).digest


class CodeVersion:
    """``fn``'s `code_version` and the global bindings it read, to tell when it must be computed again.

    ``digest`` is the version; ``bindings`` the ``(namespace, name, value)``
    triples read (``MISSING`` for a name not bound yet); `stale` is true once
    a global that ``fn`` or a function it calls reads is bound to another
    object (or bound at last: a helper defined below the decorated function);
    `refresh` computes both again.

    >>> def helper(x): return x + 1
    >>> def f(x): return helper(x)
    >>> version = CodeVersion(f)
    >>> version.stale()
    False
    >>> def helper(x): return x + 2
    >>> version.stale(), version.refresh() != code_version(lambda x: x), version.stale()
    (True, True, False)
    """

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.digest = self.refresh()

    def refresh(self) -> str:
        """Compute the version again (and the bindings it depends on); returns it."""
        walk = _Walk()
        if isinstance(self.fn, functools.partial) or getattr(inspect.unwrap(self.fn), "__code__", None) is not None:
            walk.visit(self.fn)
        self.bindings = tuple(walk.bindings.values())
        self.digest = walk.digest() if walk.parts else ""
        return self.digest

    def stale(self) -> bool:
        """Whether a global read when the version was computed is now bound to another object."""
        for namespace, name, value in self.bindings:
            if namespace.get(name, MISSING) is not value:
                return True
        return False

    @property
    def watched(self) -> int:
        """How many bindings `stale` checks."""
        return len(self.bindings)


class _Walk:
    """One traversal: the parts of the digest, the bindings read, the objects already visited."""

    def __init__(self) -> None:
        self.parts: list = []
        self.bindings: dict[tuple[int, str], tuple[dict, str, Any]] = {}
        self.seen: set[int] = set()

    def digest(self) -> str:
        hasher = xxhash.xxh3_128()
        for part in self.parts:
            hasher.update(part)
        return hasher.hexdigest()[:16]

    def visit(self, fn: Any, strict: bool = True) -> None:
        """Append ``fn``'s own code and follow what it calls.

        ``strict`` raises `KeyingError` for a partial's bound arguments that
        cannot be keyed; a partial that is only called leaves them out.
        """
        fn = inspect.unwrap(fn)
        if isinstance(fn, functools.partial):
            self.visit(fn.func, strict)
            bound = (fn.args, fn.keywords)
            if strict:
                Encoder(typed=True).encode(bound, self.parts, f"bound by {fn!r:.60}")
            else:
                _encode_loosely(bound, self.parts, "bound")
            return
        code = getattr(fn, "__code__", None)
        if code is None or id(fn) in self.seen:
            return
        self.seen.add(id(fn))
        _code_parts(code, self.parts, fn.__doc__ if isinstance(getattr(fn, "__doc__", None), str) else None)
        for label, value in (("defaults", fn.__defaults__), ("kwdefaults", fn.__kwdefaults__)):
            _encode_loosely(value, self.parts, label)
        namespace = fn.__globals__
        names, attributes = _names(code)
        constants = [(name, namespace[name]) for name in sorted(names) if _plain(namespace.get(name, MISSING))]
        if constants:
            Encoder(typed=True).encode(constants, self.parts, "module globals")
        for name in sorted(names):
            value = self.bind(namespace, name)
            if value is not MISSING and not _plain(value):
                self.follow(name, value, attributes)

    def bind(self, namespace: dict, name: str) -> Any:
        value = namespace.get(name, MISSING)
        if value is MISSING and name in _BUILTINS:  # a builtin (len): library code, not watched
            return MISSING
        self.bindings.setdefault((id(namespace), name), (namespace, name, value))
        return value

    def follow(self, label: str, value: Any, attributes: set[str]) -> None:
        """A global (or a module's attribute) the code reads: what it contributes to the version."""
        if isinstance(value, types.ModuleType):
            self.module(label, value, attributes)
            return
        calls = getattr(type(value), "__memo_calls__", None)
        if calls is not None and not isinstance(value, type):
            for name in sorted(attributes):
                target = calls(value, name)
                if target is not None:
                    self.parts.append(f"|{label}.{name}:".encode())
                    self.follow(f"{label}.{name}", target, attributes)
            return
        if isinstance(value, types.MethodType):
            value = value.__func__
        if not isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType, functools.partial)):
            value = type(value)  # an instance (a callable object, a ufunc): its class's code
        module = getattr(value, "__module__", None)
        library = library_version(module) if isinstance(module, str) else None
        if library is not None:
            self.parts.append(f"|{label}@{library}".encode())
        elif isinstance(value, type):
            self.klass(label, value)
        else:
            self.parts.append(f"|{label}:".encode())
            self.visit(value, strict=False)

    def module(self, label: str, module: types.ModuleType, attributes: set[str]) -> None:
        library = library_version(module.__name__)
        if library is not None:
            self.parts.append(f"|{label}@{library}".encode())
            return
        namespace = vars(module)
        for name in sorted(attributes):
            if name in namespace:
                value = self.bind(namespace, name)
                self.parts.append(f"|{label}.{name}".encode())
                if _plain(value):
                    Encoder(typed=True).encode(value, self.parts, f"{label}.{name}")
                else:
                    self.follow(f"{label}.{name}", value, attributes)

    def klass(self, label: str, cls: type) -> None:
        """A user class: the code of every function in it and in its user base classes."""
        if id(cls) in self.seen:
            return
        self.seen.add(id(cls))
        self.parts.append(f"|class {label}".encode())
        for name, member in sorted(vars(cls).items()):
            for fn in _functions(member):
                self.parts.append(f"|{name}:".encode())
                self.visit(fn, strict=False)
        for base in cls.__bases__:
            if base is not object:
                self.follow(f"{label} base", base, set())


def _functions(member: Any) -> list:
    if isinstance(member, (staticmethod, classmethod)):
        return [member.__func__]
    if isinstance(member, property):
        return [f for f in (member.fget, member.fset, member.fdel) if f is not None]
    return [member] if isinstance(member, types.FunctionType) else []


@functools.lru_cache(maxsize=None)
def library_version(module: str) -> str | None:
    """``"python==3.11.7"`` or ``"numpy==2.1.3"`` for library code, ``None`` for the user's own code.

    The user's own code is ``__main__``, any module no installed distribution
    provides, and the modules of a distribution installed in editable mode
    (``pip install -e``: its code changes without its version).

    >>> library_version("json"), library_version("__main__"), library_version("numpy")  # doctest: +ELLIPSIS
    ('python==...', None, 'numpy==...')
    """
    top = module.partition(".")[0]
    if top in sys.stdlib_module_names or top == "builtins":
        return f"python=={platform.python_version()}"
    names = _distributions().get(top)
    if not names:
        return None
    versions = []
    for name in sorted(set(names)):
        distribution = importlib.metadata.distribution(name)
        if _editable(distribution):
            return None
        versions.append(f"{name}=={distribution.version}")
    return ";".join(versions)


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _editable(distribution: importlib.metadata.Distribution) -> bool:
    text = distribution.read_text("direct_url.json")
    if not text:
        return False
    try:
        return bool(json.loads(text).get("dir_info", {}).get("editable", False))
    except (ValueError, AttributeError):
        return False


def _code_parts(code: types.CodeType, parts: list, doc: str | None) -> None:
    parts.append(code.co_code)
    names = (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)
    parts.append(repr((names, code.co_argcount, code.co_kwonlyargcount, code.co_posonlyargcount)).encode())
    consts = code.co_consts
    if consts and (consts[0] is None or (doc is not None and consts[0] == doc)):
        consts = consts[1:]  # the docstring slot: the docstring, or None when there is none
    for const in consts:
        if isinstance(const, types.CodeType):
            _code_parts(const, parts, None)
        else:
            _encode_loosely(const, parts, "constant")


def _encode_loosely(value: Any, parts: list, label: str) -> None:
    """Canonical encoding where there is one, else the type name (a default like ``object()``)."""
    try:
        Encoder(typed=True).encode(value, parts, label)
    except KeyingError:
        parts.append(f"<{type(value).__qualname__}>".encode())
