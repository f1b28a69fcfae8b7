"""``memoize``: a pure function's results, from memory, then archive, then computation.

A call is keyed by the keymap (bound to the function's signature), looked up
in the in-memory cache (the cache policy), then in the archive under the
function's namespace (its qualified name and version), and only then
computed; the result is stored in both. By default the version follows the
function's code (its bytecode, constants and names, but not its line numbers
or docstring), the plain-data module globals it reads and the code of the
functions it calls from the user's own modules, transitively (library code by
its distribution's version), so editing the function, a constant it uses or a
helper stops old entries from being served, while moving it in its file does
not. The version is `combinators.memo.calls.code_version`; a helper rebound
since (a notebook cell run again) is noticed at the next call. Values a
closure captured are keyed like arguments into it (see
`combinators.memo.capture`).
"""

from __future__ import annotations

import functools
import os
import threading
import time
import warnings
import weakref
from collections.abc import Iterator
from typing import Any, Callable

import attrs

from combinators.errors import InvalidArgument, InvalidArgumentType, UnstorableValue
from combinators.memo.archives import Archive, DictArchive, EntryInfo, Namespace, NullArchive
from combinators.memo.calls import MISSING as _UNBOUND
from combinators.memo.calls import CodeVersion
from combinators.memo.capture import Captured, default_name
from combinators.memo.caches import LFU, LRU, MRU, RR, CachePolicy, NoCache, Unbounded
from combinators.memo.catalog import call_repr
from combinators.memo.keymaps import Keymap, hashmap
from combinators.memo import why as _why
from combinators.memo.lmdb_archive import LMDBArchive

__all__ = ["memoize", "CacheInfo", "lru_cache", "lfu_cache", "mru_cache", "rr_cache", "inf_cache", "no_cache"]

_MISSING: Any = object()


@attrs.frozen
class CacheInfo:
    """Counts of a memoized function: memory ``hits``, computed ``misses``, archive ``loads``.

    ``maxsize`` is the memory cache's bound (``None`` when unbounded), ``currsize``
    its current number of entries.
    """

    hits: int
    misses: int
    loads: int
    maxsize: int | None
    currsize: int


def _archive(archive: Any) -> Archive:
    if archive is None:
        return NullArchive()
    if isinstance(archive, (str, os.PathLike)):
        return LMDBArchive(archive)
    if not isinstance(archive, Archive):
        msg = f"archive must be an Archive, a path or None, got {type(archive).__qualname__} {archive!r:.60}"
        raise InvalidArgumentType(msg)
    return archive


def _checked(fn: Any, archive: Any, keymap: Any, cache: Any) -> tuple[Archive, Keymap, CachePolicy]:
    if not callable(fn):
        msg = f"memoize needs a callable, got {type(fn).__qualname__} {fn!r:.60}"
        raise InvalidArgumentType(msg)
    archive, keymap = _archive(archive), hashmap() if keymap is None else keymap
    cache = LRU() if cache is None else cache
    if not isinstance(keymap, Keymap):
        msg = f"keymap must be a Keymap such as hashmap(), got {type(keymap).__qualname__} {keymap!r:.60}"
        raise InvalidArgumentType(msg)
    if not isinstance(cache, CachePolicy):
        msg = f"cache must be a cache policy such as LRU(128), got {type(cache).__qualname__} {cache!r:.60}"
        raise InvalidArgumentType(msg)
    if not keymap.produces_bytes and not isinstance(archive, NullArchive):
        msg = f"{keymap!r} makes object keys, for memory caches only; use hashmap() with {archive!r}"
        raise InvalidArgument(msg)
    return archive, keymap, cache


def memoize(fn: Callable | None = None, *, archive: Any = None, keymap: Keymap | None = None,
            cache: CachePolicy | None = None, name: str | None = None, version: str | None = None) -> Any:
    """Memoize a pure function: memory cache, then archive, then computation.

    Usable bare (``@memoize``) or with arguments. ``archive`` is an `Archive`,
    a path (an `LMDBArchive` there) or ``None`` (memory only); ``keymap``
    defaults to `hashmap`; ``cache`` to ``LRU(128)``; ``name`` to the
    function's module and qualified name; ``version`` to `code_version` (which follows the
    functions it calls; each call checks that none was rebound since, see
    `combinators.memo.calls.CodeVersion`). An explicit ``version`` turns both off.
    A read-only archive serves hits; misses are computed but not stored.

    The wrapper has ``cache_info()``, ``cache_clear()`` (the memory cache),
    ``lookup(...)`` (the stored result, ``KeyError`` when absent), ``key(...)``
    (the key bytes), ``info(...)`` (the entry's `EntryInfo`), ``recompute(...)``
    (compute and overwrite), ``archive`` (a `Namespace` view of this function's
    entries), ``cache`` (the memory cache mapping, to read: keyed by argument
    tuples for plain atoms, else key bytes), ``why(...)`` (for a miss, the nearest stored entry of the
    function and what differs: a `combinators.memo.why.Why`) and ``__wrapped__``. Values from the memory cache are shared
    objects: do not mutate them.

    Values the function captured (closure cells, a bound method's object)
    are keyed like arguments into its version, when memoize is applied; one
    that cannot be keyed raises `KeyingError` unless ``version=`` is given (it
    is then left out). A
    builtin (``min``) or a ``functools.partial`` gets a derived name; a
    callable object without ``__qualname__`` needs ``name=``. A function
    defined in ``__main__`` is stored as ``__main__.f``, which an importing
    program (``mymod.f``) never finds: a persistent archive warns once unless
    ``name=`` is given.

    Raises `KeyingError` (naming the parameter and type) for an argument that
    cannot be keyed, `InvalidArgumentType` for a bad option,
    `UnstorableValue` (naming the function) when it returns a value the
    archive cannot store or an iterator (a generator would be served
    exhausted).

    >>> calls = []
    >>> @memoize
    ... def square(x, power=2):
    ...     calls.append(x)
    ...     return x ** power
    >>> square(3), square(3, 2), square(x=3), calls
    (9, 9, 9, [3])
    >>> square.cache_info()
    CacheInfo(hits=2, misses=1, loads=0, maxsize=128, currsize=1)
    """
    if fn is None:
        return functools.partial(memoize, archive=archive, keymap=keymap, cache=cache, name=name, version=version)
    archive, keymap, cache = _checked(fn, archive, keymap, cache)
    captured = Captured(fn, lenient=version is not None).digest()
    if name is None:
        name = default_name(fn)
        _warn_main(name, archive)
    if version is not None:
        view = _namespace(archive, name, captured, str(version), fn)
        return _wrap(fn, view, keymap, cache)
    code = CodeVersion(fn)
    namespace = functools.partial(_namespace, archive, name, captured, fn=fn)
    return _wrap(fn, namespace(code.digest), keymap, cache, (code, namespace) if code.watched else None)


def _namespace(archive: Archive, name: str, captured: str, version: str, fn: Callable) -> Namespace:
    """The namespace of ``fn``'s entries for ``version``, with what the version is made of (for `why`)."""
    view = archive.namespace(name, f"{version}+{captured}" if captured else version)
    if not isinstance(archive, NullArchive):
        view.parts = _why.describe(fn)
    return view


_WARNED_MAIN: set[str] = set()


def _warn_main(name: str, archive: Archive) -> None:
    """Warn once per function when a ``__main__`` function's entries go to a persistent archive."""
    in_memory = isinstance(archive, DictArchive)  # NullArchive included
    if "__main__." not in name or in_memory or getattr(archive, "readonly", False):
        return
    if name not in _WARNED_MAIN:
        _WARNED_MAIN.add(name)
        msg = (f"memoize stores {name} under a __main__ name: the same function imported from its module has "
               f"another name and will not find these entries; pass name= to share them")
        warnings.warn(msg, stacklevel=3)


def _wrap(fn: Callable, view: Namespace, keymap: Keymap, policy: CachePolicy,
          follow: tuple[CodeVersion, Callable[[str], Namespace]] | None = None) -> Callable:
    """The memoizing wrapper of ``fn`` (kept flat: this is the hot path).

    The memory cache is keyed by a tuple of the arguments when they are plain
    atoms (`Keymap.bind_memory`), else by the key bytes; the archive always by
    the key bytes. With ``follow`` (the `CodeVersion` of ``fn`` and the
    namespace of a version), each call first checks that no global the code
    reads was rebound, else moves to the namespace of the new version.
    """
    key_of, atoms_of = keymap.bind(fn), keymap.bind_memory(fn) or (lambda args, kwargs: None)
    memory, lock, counts = policy.make(), threading.RLock(), [0, 0, 0]  # hits, misses, loads
    archive, prefix = view.archive, view.prefix
    persistent = not isinstance(archive, NullArchive)
    digests_of = _why.argument_digests(fn, keymap)  # stored with each entry, for why()
    watched = follow[0].bindings if follow is not None else ()  # checked inline: the hit path
    itself: list[weakref.ref] = []  # the wrapper, weakly: a strong cycle would keep the archive open until gc

    def renew() -> None:
        nonlocal view, prefix, watched
        with lock:
            view = follow[1](follow[0].refresh())
            prefix, watched = view.prefix, follow[0].bindings
            memory.clear()
            for ref in itself:
                target = ref()
                if target is not None:
                    target.archive, target.version = view, view.version

    compute, run = _computers(fn, lambda: view, memory, lock, counts, digests_of)

    def archive_only(*args: Any, **kwargs: Any) -> Any:
        for namespace, name, bound in watched:
            if namespace.get(name, _UNBOUND) is not bound:
                renew()
                break
        key = key_of(args, kwargs)
        value = archive.get(prefix + key, _MISSING)
        if value is _MISSING:
            return compute(args, kwargs, key, None)
        counts[2] += 1
        return value

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for namespace, name, bound in watched:
            if namespace.get(name, _UNBOUND) is not bound:
                renew()
                break
        memory_key = atoms_of(args, kwargs)
        key = key_of(args, kwargs) if memory_key is None else None
        with lock:
            try:
                value = memory[key if memory_key is None else memory_key]
            except KeyError:
                pass
            else:
                counts[0] += 1
                return value
        if key is None:
            key = key_of(args, kwargs)
        if persistent:
            value = archive.get(prefix + key, _MISSING)
            if value is not _MISSING:
                with lock:
                    counts[2] += 1
                    memory[key if memory_key is None else memory_key] = value
                return value
        return compute(args, kwargs, key, memory_key)

    if isinstance(policy, NoCache) and persistent:
        wrapper = archive_only
    wrapper = functools.wraps(fn)(wrapper)
    itself.append(weakref.ref(wrapper))
    _attach(wrapper, lambda: view, key_of, atoms_of, memory, lock, counts, policy, run)
    wrapper.why = lambda *args, **kwargs: _why.explain(view, key_of(args, kwargs), digests_of(args, kwargs))
    wrapper.why_in = lambda other, args, kwargs: _why.explain(_why.moved(view, other), key_of(args, kwargs),
                                                              digests_of(args, kwargs))
    return wrapper


def _computers(fn: Callable, current: Callable[[], Namespace], memory: Any, lock: Any, counts: list,
               digests_of: Callable) -> tuple[Callable, Callable]:
    """``compute`` (a miss: under the key's lock) and ``run`` (compute and store, no lock: `recompute`), in the
    namespace ``current()`` gives (a version that follows the code moves to another)."""
    archive = current().archive
    persistent = not isinstance(archive, NullArchive)
    writable = not getattr(archive, "readonly", False)

    def compute(args: tuple, kwargs: dict, key: Any, memory_key: Any) -> Any:
        """Compute under the key's lock (`Archive.computing`): a value stored meanwhile by the holder is served."""
        if not (persistent and writable):
            return run(args, kwargs, key, memory_key)
        prefix = current().prefix
        with archive.computing(prefix + key):
            value = archive.get(prefix + key, _MISSING)
            if value is _MISSING:
                return run(args, kwargs, key, memory_key)
        with lock:
            counts[2] += 1
            memory[key if memory_key is None else memory_key] = value
        return value

    def run(args: tuple, kwargs: dict, key: Any, memory_key: Any) -> Any:
        view = current()
        start = time.perf_counter()
        value = fn(*args, **kwargs)
        if isinstance(value, Iterator):
            raise _unstorable(view, value, "an iterator is consumed by its first reader; return a list or an array")
        if persistent and writable:
            try:
                view.put(key, value, compute_seconds=time.perf_counter() - start, args=call_repr(args, kwargs),
                         digests=digests_of(args, kwargs))
            except InvalidArgumentType as error:
                raise _unstorable(view, value, str(error)) from None
        with lock:
            counts[1] += 1
            memory[key if memory_key is None else memory_key] = value
        return value

    return compute, run


def _unstorable(view: Namespace, value: Any, why: str) -> UnstorableValue:
    msg = (f"the return value of {view.name} (a {type(value).__qualname__}) cannot be memoized in "
           f"{view.archive!r}: {why}")
    return UnstorableValue(msg)


def _attach(wrapper: Any, current: Callable[[], Namespace], key_of: Callable, atoms_of: Callable, memory: Any,
            lock: Any, counts: list, policy: CachePolicy, compute: Callable) -> None:
    """Give the wrapper its inspection and control methods."""
    view = current()
    archive = view.archive
    persistent = not isinstance(archive, NullArchive)

    def lookup(*args: Any, **kwargs: Any) -> Any:
        memory_key, key = atoms_of(args, kwargs), key_of(args, kwargs)
        with lock:
            value = memory.get(key if memory_key is None else memory_key, _MISSING)
        if value is _MISSING and persistent:
            value = archive.get(current().prefix + key, _MISSING)
        if value is _MISSING:
            msg = f"{current().name} has no stored result for key {key.hex() if isinstance(key, bytes) else key!r}"
            raise KeyError(msg)
        return value

    def cache_clear() -> None:
        with lock:
            memory.clear()
            counts[:] = [0, 0, 0]

    def recompute(*args: Any, **kwargs: Any) -> Any:
        return compute(args, kwargs, key_of(args, kwargs), atoms_of(args, kwargs))

    wrapper.cache_info = lambda: CacheInfo(*counts, policy.maxsize, len(memory))
    wrapper.cache_clear = cache_clear
    wrapper.lookup = lookup
    wrapper.key = lambda *args, **kwargs: key_of(args, kwargs)
    wrapper.info = lambda *args, **kwargs: _info(current(), key_of(args, kwargs))
    wrapper.recompute = recompute
    wrapper.archive = view
    wrapper.cache = memory
    wrapper.name, wrapper.version = view.name, view.version


def _info(view: Namespace, key: Any) -> EntryInfo:
    try:
        return view.info(key)
    except KeyError:
        msg = f"{view.name} has no stored entry for key {key.hex() if isinstance(key, bytes) else key!r}"
        raise KeyError(msg) from None


def _policy_decorator(policy_type: type, bounded: bool = True) -> Callable:
    """A klepto-style decorator factory: ``lru_cache(maxsize, archive=, keymap=)``."""

    def factory(maxsize: Any = 128, *, archive: Any = None, keymap: Keymap | None = None,
                name: str | None = None, version: str | None = None) -> Callable:
        if callable(maxsize):  # used bare: @lru_cache
            return factory(archive=archive, keymap=keymap, name=name, version=version)(maxsize)
        policy = policy_type(maxsize) if bounded else policy_type()
        return functools.partial(memoize, archive=archive, keymap=keymap, cache=policy, name=name, version=version)

    return factory


lru_cache = _policy_decorator(LRU)
lru_cache.__doc__ = """Memoize with an ``LRU(maxsize)`` memory cache (klepto's ``lru_cache``).

>>> @lru_cache(2)
... def double(x):
...     return 2 * x
>>> double(4), double.cache_info().maxsize
(8, 2)
"""
lfu_cache = _policy_decorator(LFU)
lfu_cache.__doc__ = "Memoize with an ``LFU(maxsize)`` memory cache (klepto's ``lfu_cache``)."
mru_cache = _policy_decorator(MRU)
mru_cache.__doc__ = "Memoize with an ``MRU(maxsize)`` memory cache (klepto's ``mru_cache``)."
rr_cache = _policy_decorator(RR)
rr_cache.__doc__ = "Memoize with an ``RR(maxsize)`` (random replacement) memory cache (klepto's ``rr_cache``)."
inf_cache = _policy_decorator(Unbounded, bounded=False)
inf_cache.__doc__ = "Memoize with an unbounded memory cache (klepto's ``inf_cache``); ``maxsize`` is ignored."
no_cache = _policy_decorator(NoCache, bounded=False)
no_cache.__doc__ = "Memoize with no memory cache, the archive only (klepto's ``no_cache``); ``maxsize`` is ignored."
