"""Cache policies: the in-memory layer in front of an archive.

A policy is a frozen value (``LRU(128)``) describing a cache; `memoize` makes
one cache per decorated function with `CachePolicy.make`. ``LRU``, ``LFU``
and ``RR`` are cachetools' caches; ``MRU`` (evict the most recently used,
which cachetools lacks) is built here on `cachetools.Cache`.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import MutableMapping
from typing import Any, Iterator

import attrs
import cachetools

from combinators.errors import InvalidArgument, InvalidArgumentType

__all__ = ["CachePolicy", "LRU", "LFU", "MRU", "RR", "Unbounded", "NoCache", "MRUCache"]


def check_positive_int(instance: Any, attribute: Any, value: int) -> None:
    """An attrs validator: ``value`` is a positive int (`InvalidArgumentType`, `InvalidArgument` naming it)."""
    if not isinstance(value, int) or isinstance(value, bool):
        msg = f"{attribute.name} must be a positive int, got {value!r}"
        raise InvalidArgumentType(msg)
    if value < 1:
        msg = f"{attribute.name} must be a positive int, got {value!r}"
        raise InvalidArgument(msg)



class CachePolicy:
    """Base of the cache policies: ``make()`` returns a fresh mutable mapping."""

    maxsize: int | None = None

    def make(self) -> MutableMapping:
        raise NotImplementedError


class MRUCache(cachetools.Cache):
    """A cache evicting the most recently used entry first.

    >>> c = MRUCache(maxsize=2)
    >>> c[1] = "a"; c[2] = "b"; c[1]; c[3] = "c"
    'a'
    >>> sorted(c)
    [2, 3]
    >>> import copy
    >>> d = copy.copy(c); d[2]; d[4] = "d"; sorted(d), sorted(c)
    'b'
    ([3, 4], [2, 3])
    """

    def __init__(self, maxsize: int, getsizeof: Any = None) -> None:
        super().__init__(maxsize, getsizeof)
        self.__order: OrderedDict = OrderedDict()

    def __getitem__(self, key: Any, cache_getitem: Any = cachetools.Cache.__getitem__) -> Any:
        value = cache_getitem(self, key)
        if key in self:  # cachetools calls __missing__ for absent keys
            self.__order.move_to_end(key)
        return value

    def __setitem__(self, key: Any, value: Any, cache_setitem: Any = cachetools.Cache.__setitem__) -> None:
        cache_setitem(self, key, value)
        self.__order[key] = None
        self.__order.move_to_end(key)

    def __delitem__(self, key: Any, cache_delitem: Any = cachetools.Cache.__delitem__) -> None:
        cache_delitem(self, key)
        del self.__order[key]

    def __copy__(self) -> MRUCache:
        """A copy with its own entries and its own recency order (as cachetools' `LRUCache`)."""
        copy = super().__copy__()
        copy.__order = self.__order.copy()
        return copy

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the most recently used ``(key, value)``."""
        try:
            key = next(reversed(self.__order))
        except StopIteration:
            msg = f"{type(self).__name__} is empty"
            raise KeyError(msg) from None
        return (key, self.pop(key))


@attrs.frozen
class LRU(CachePolicy):
    """Keep the ``maxsize`` most recently used entries (cachetools.LRUCache).

    >>> LRU(2).make().maxsize
    2
    """

    maxsize: int = attrs.field(default=128, validator=check_positive_int)

    def make(self) -> MutableMapping:
        return cachetools.LRUCache(self.maxsize)


@attrs.frozen
class LFU(CachePolicy):
    """Keep the ``maxsize`` most frequently used entries (cachetools.LFUCache)."""

    maxsize: int = attrs.field(default=128, validator=check_positive_int)

    def make(self) -> MutableMapping:
        return cachetools.LFUCache(self.maxsize)


@attrs.frozen
class MRU(CachePolicy):
    """Keep ``maxsize`` entries, evicting the most recently used (`MRUCache`)."""

    maxsize: int = attrs.field(default=128, validator=check_positive_int)

    def make(self) -> MutableMapping:
        return MRUCache(self.maxsize)


@attrs.frozen
class RR(CachePolicy):
    """Keep ``maxsize`` entries, evicting one at random (cachetools.RRCache), seeded by ``seed``."""

    maxsize: int = attrs.field(default=128, validator=check_positive_int)
    seed: int | None = None

    def make(self) -> MutableMapping:
        return cachetools.RRCache(self.maxsize, choice=random.Random(self.seed).choice)


@attrs.frozen
class Unbounded(CachePolicy):
    """Keep every entry (a plain dict): memory grows with the distinct calls."""

    def make(self) -> MutableMapping:
        return {}


class _Nothing(MutableMapping):
    """A mapping that stores nothing."""

    maxsize = 0

    def __getitem__(self, key: Any) -> Any:
        raise KeyError(key)

    def get(self, key: Any, default: Any = None) -> Any:
        return default

    def __setitem__(self, key: Any, value: Any) -> None:
        return None

    def __delitem__(self, key: Any) -> None:
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0


@attrs.frozen
class NoCache(CachePolicy):
    """No memory cache: every call goes to the archive (or computes).

    >>> c = NoCache().make(); c[1] = 2; len(c)
    0
    """

    maxsize: int = 0

    def make(self) -> MutableMapping:
        return _Nothing()
