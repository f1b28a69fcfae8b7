"""``Metrics``: named, dated, parameterized metrics on top of `memoize`.

What simple-metrics-manager does: register metric functions with
``@m.collect``, then ask for them by name, ``m.accuracy()`` or
``m["accuracy"]``; each is served from memory, then from the archive, then
computed and stored with its date. ``use_stored=False`` recomputes and
overwrites. ``@m.collect(params=[...])`` declares the parameter values a
metric is computed for, as simple-metrics-manager's ``params_list``: argument
lists such as ``[[1], [4]]`` (``m.name.get_all()`` gives all of them, and
``m.compute_all()`` every metric at once); other values are refused unless
``dynamic=True``. ``m.exists(name, *args)`` tells whether a value is stored,
``m.clear(name)`` forgets a metric's values. A metric may use other metrics
through the `Metrics` object it captures (``return m.metric_1() * 2``): that
object is not keyed as a value; the version of each metric it names joins
its own, so a metric used is edited means its users recompute
(`combinators.memo.metric_uses`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Callable

from combinators.errors import InvalidArgument
from combinators.memo.archives import Archive, DictArchive
from combinators.memo.caches import Unbounded
from combinators.memo import metric_uses as _uses
from combinators.memo.memoize import _archive, memoize

__all__ = ["Metrics", "Metric"]


class Metric:
    """One registered metric: call it for its value, `date` for when it was computed.

    ``params`` are the declared argument lists, as simple-metrics-manager's
    ``params_list``: each a list or tuple of positional arguments
    (``[[1], [4]]``). For a one-parameter function a value that is not a
    list or tuple is shorthand for a one-argument list (``[1, 4]``).
    """

    def __init__(self, fn: Callable, archive: Archive, name: str, params: list | None, dynamic: bool,
                 version: str | None, owner: Metrics | None = None) -> None:
        self.fn, self.name, self.dynamic = fn, name, dynamic
        self.params = None if params is None else list(params)
        self._signature = inspect.signature(fn)
        self._archive, self._version, self._owner = archive, version, owner
        self._built: Any = None
        self._building = False
        for param in self.params or ():
            self._args(param)  # checked at registration

    @property
    def _memo(self) -> Any:
        """The memoized function, built on first use: by then the metrics it uses are registered."""
        if self._built is None:
            if self._building:
                msg = f"metric {self.name!r} uses itself through other metrics; metrics cannot use each other in a cycle"
                raise InvalidArgument(msg)
            self._building = True
            try:
                self._built = memoize(self.fn, archive=self._archive, cache=Unbounded(), name=f"metrics.{self.name}",
                                      version=_uses.version(self.fn, self._version, self._metric_version, Metrics))
            finally:
                self._building = False
            self._allowed = None if self.params is None else {self._built.key(*self._args(p)) for p in self.params}
        return self._built

    def _metric_version(self, metrics: Any, name: str) -> str:
        """The version of a metric this one names (its own name, as in a string it logs, is not a use)."""
        if metrics is self._owner and name == self.name:
            return ""
        return metrics.metric(name).version

    @property
    def version(self) -> str:
        """The version its values are stored under: its code, what it captures, and the metrics it uses."""
        return self._memo.version

    def __repr__(self) -> str:
        return f"<Metric {self.name!r} params={self.params!r} dynamic={self.dynamic!r}>"

    def _args(self, param: Any) -> tuple:
        """The positional arguments of one ``params`` entry; `InvalidArgument` if they do not fit."""
        single = len(self._signature.parameters) == 1
        args = tuple(param) if isinstance(param, (list, tuple)) else (param,) if single else None
        try:
            if args is None:
                raise TypeError("a bare value is shorthand only for a one-parameter function")
            self._signature.bind(*args)
        except TypeError as error:
            msg = (f"params entry {param!r} of metric {self.name!r} is not an argument list for "
                   f"{self.fn.__qualname__}{self._signature}: {error} (each entry is a list of positional "
                   f"arguments, as in params=[[1], [4]])")
            raise InvalidArgument(msg) from None
        return args

    @staticmethod
    def _label(param: Any) -> Any:
        """The key of ``param`` in `get_all`: the bare value, or the argument list as a tuple."""
        return tuple(param) if isinstance(param, list) else param

    def _check(self, args: tuple, kwargs: dict) -> None:
        memo = self._memo
        if self._allowed is None or self.dynamic:
            return
        if memo.key(*args, **kwargs) not in self._allowed:
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
        """``{param: value}`` for every declared argument list (keyed as a tuple; a bare value as itself)."""
        if self.params is None:
            msg = f"metric {self.name!r} declares no params; call it instead"
            raise InvalidArgument(msg)
        return {self._label(param): self(*self._args(param), use_stored=use_stored) for param in self.params}

    def computable(self) -> bool:
        """Whether `Metrics.compute_all` can compute it: declared params, or no required parameter."""
        required = [p for p in self._signature.parameters.values()
                    if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return self.params is not None or not required

    def exists(self, *args: Any, **kwargs: Any) -> bool:
        """Whether a value for these parameters is stored (in memory or the archive); never computes."""
        try:
            self._memo.lookup(*args, **kwargs)
        except KeyError:
            return False
        return True

    def clear(self) -> int:
        """Forget every stored value of this metric (memory and archive); returns how many the archive held."""
        view = self._memo.archive
        keys = list(view)
        delete_many = getattr(view.archive, "delete_many", None)
        if delete_many is not None:
            delete_many([view.prefix + key for key in keys])
        else:
            for key in keys:
                del view[key]
        self._memo.cache_clear()
        return len(keys)

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
    >>> @m.collect(params=[[1, 2], [3, 4]])
    ... def add(a, b):
    ...     return a + b
    >>> m.exists("add", 1, 2), m.compute_all(), m.exists("add", 1, 2)
    (False, {'answer': 42, 'double': {1: 2, 2: 4}, 'add': {(1, 2): 3, (3, 4): 7}}, True)
    >>> m.clear("add"), m.exists("add", 1, 2)
    (2, False)
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
        self._metrics[name] = Metric(fn, self.archive, name, params, dynamic, version, self)
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

    def exists(self, name: str, *args: Any, **kwargs: Any) -> bool:
        """Whether metric ``name`` has a stored value for these parameters; never computes."""
        return self.metric(name).exists(*args, **kwargs)

    def clear(self, name: str) -> int:
        """Forget every stored value of metric ``name``; returns how many the archive held."""
        return self.metric(name).clear()

    def compute_all(self, use_stored: bool = True) -> dict[str, Any]:
        """Every metric for every declared argument list, in one call (the overnight run).

        Returns ``{name: value}`` for a metric without parameters and
        ``{name: {param: value}}`` for one with declared ``params``. A metric
        that needs arguments but declares no ``params`` has nothing declared to
        compute and is left out. ``use_stored=False`` recomputes everything.
        """
        out = {}
        for name, metric in self._metrics.items():
            if not metric.computable():
                continue
            out[name] = metric.get_all(use_stored) if metric.params is not None else metric(use_stored=use_stored)
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._metrics))

    def __contains__(self, name: object) -> bool:
        return name in self._metrics

    def __repr__(self) -> str:
        return f"Metrics({self.archive!r}, metrics={sorted(self._metrics)})"
