"""``Metrics``: named, dated, parameterized metrics on top of `memoize`.

What simple-metrics-manager does: register metric functions with
``@m.collect``, then ask for them by name, ``m.accuracy()`` or
``m["accuracy"]``; each is served from memory, then from the archive, then
computed and stored with its date. ``use_stored=False`` recomputes and
overwrites. ``@m.collect(params=[...])`` declares the parameter values a
metric is computed for (``m.name.get_all()`` gives all of them); other
values are refused unless ``dynamic=True``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Callable

from combinators.errors import InvalidArgument
from combinators.memo.archives import Archive, DictArchive
from combinators.memo.caches import Unbounded
from combinators.memo.memoize import _archive, memoize

__all__ = ["Metrics", "Metric"]


class Metric:
    """One registered metric: call it for its value, `date` for when it was computed.

    ``params`` are the declared parameter values: for a one-parameter function,
    each is that argument; otherwise each is a tuple of positional arguments.
    """

    def __init__(self, fn: Callable, archive: Archive, name: str, params: list | None, dynamic: bool,
                 version: str | None) -> None:
        self.fn, self.name, self.dynamic = fn, name, dynamic
        self.params = None if params is None else list(params)
        self._single = len(inspect.signature(fn).parameters) == 1
        self._memo = memoize(fn, archive=archive, cache=Unbounded(), name=f"metrics.{name}", version=version)
        self._allowed = None if self.params is None else {self._memo.key(*self._args(p)) for p in self.params}

    def __repr__(self) -> str:
        return f"<Metric {self.name!r} params={self.params!r} dynamic={self.dynamic!r}>"

    def _args(self, param: Any) -> tuple:
        return (param,) if self._single else tuple(param)

    def _check(self, args: tuple, kwargs: dict) -> None:
        if self._allowed is None or self.dynamic:
            return
        if self._memo.key(*args, **kwargs) not in self._allowed:
            shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
            msg = (f"metric {self.name!r} is not collected for ({shown}); its params are {self.params!r} "
                   f"(declare it with dynamic=True to allow others)")
            raise InvalidArgument(msg)

    def __call__(self, *args: Any, use_stored: bool = True, **kwargs: Any) -> Any:
        """The metric's value for these parameters: memory, archive, then computation.

        ``use_stored=False`` recomputes and overwrites. Raises `InvalidArgument`
        for parameters not in ``params`` unless the metric is ``dynamic``.
        """
        self._check(args, kwargs)
        if use_stored:
            return self._memo(*args, **kwargs)
        return self._memo.recompute(*args, **kwargs)

    def get_all(self, use_stored: bool = True) -> dict:
        """``{param: value}`` for every declared parameter value."""
        if self.params is None:
            msg = f"metric {self.name!r} declares no params; call it instead"
            raise InvalidArgument(msg)
        return {param: self(*self._args(param), use_stored=use_stored) for param in self.params}

    def date(self, *args: Any, **kwargs: Any) -> datetime:
        """When the stored value for these parameters was computed (UTC); ``KeyError`` if never."""
        return self._memo.info(*args, **kwargs).created


class Metrics:
    """A set of named metrics stored in ``archive`` (an `Archive`, a path, or ``None`` for memory).

    >>> m = Metrics()
    >>> @m.collect
    ... def answer():
    ...     return 42
    >>> @m.collect(params=[1, 2])
    ... def double(x):
    ...     return 2 * x
    >>> answer(), m.answer(), m["answer"], m.double.get_all()
    (42, 42, 42, {1: 2, 2: 4})
    >>> m.date("answer").tzinfo
    datetime.timezone.utc
    """

    def __init__(self, archive: Any = None) -> None:
        self.archive = DictArchive() if archive is None else _archive(archive)
        self._metrics: dict[str, Metric] = {}

    def collect(self, fn: Callable | None = None, *, params: list | None = None, dynamic: bool = False,
                name: str | None = None, version: str | None = None) -> Any:
        """Register ``fn`` as a metric (under ``name``, default its ``__name__``); returns ``fn`` unchanged."""
        if fn is None:
            return lambda f: self.collect(f, params=params, dynamic=dynamic, name=name, version=version)
        name = fn.__name__ if name is None else name
        if not name.isidentifier() or name in dir(type(self)):
            msg = f"metric name {name!r} must be an identifier that is not a Metrics attribute"
            raise InvalidArgument(msg)
        self._metrics[name] = Metric(fn, self.archive, name, params, dynamic, version)
        return fn

    def __getattr__(self, name: str) -> Metric:
        metrics = self.__dict__.get("_metrics", {})
        if name in metrics:
            return metrics[name]
        msg = f"no metric named {name!r}; collected: {sorted(metrics)}"
        raise AttributeError(msg)

    def metric(self, name: str) -> Metric:
        """The `Metric` named ``name``; ``KeyError`` naming the known ones if absent."""
        if name not in self._metrics:
            msg = f"no metric named {name!r}; collected: {sorted(self._metrics)}"
            raise KeyError(msg)
        return self._metrics[name]

    def __getitem__(self, item: str | tuple) -> Any:
        """``m["name"]`` is ``m.name()``; ``m["name", p]`` is ``m.name(p)``."""
        name, *args = (item,) if isinstance(item, str) else item
        return self.metric(name)(*args)

    def date(self, name: str, *args: Any, **kwargs: Any) -> datetime:
        """When metric ``name`` was computed for these parameters (UTC); ``KeyError`` if never."""
        return self.metric(name).date(*args, **kwargs)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._metrics))

    def __contains__(self, name: object) -> bool:
        return name in self._metrics

    def __repr__(self) -> str:
        return f"Metrics({self.archive!r}, metrics={sorted(self._metrics)})"
