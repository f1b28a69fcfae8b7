"""The monitoring executor and the runs and reports the sampler assertions share.

`Monitored` is the hook that lets
`~combinators.testing.samplers.assert_working_set` see inside a run: an
`~combinators.execution.base.Executor` that runs every source activation on
another executor and records how many are open at once. `_run` takes the
first items of a run (through a `Monitored` executor when given one), and
`_fail` raises the `AssertionError` every ``assert_*`` reports with: the plan
(`explain`), the seed and executor to replay it, and what it found.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable, Iterator

import attrs

from combinators.plan.description import fingerprint
from combinators.errors import InvalidArgumentType
from combinators.execution.base import Activation, Executor, Session, resolve_executor
from combinators.execution.run import iterate
from combinators.execution.stats import MixStats
from combinators.execution.leaf import activate_leaf
from combinators.plan.explain import explain
from combinators.plan.stream import Stream

__all__ = ["Monitored"]


# ------------------------------------------------------------------ reports


def _short(value: Any, width: int = 100) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _report(check: str, headline: str, stream: Stream, seed: int, executor: Any, lines: Iterable[str]) -> str:
    plan = "\n".join("    " + line for line in explain(stream).splitlines())
    return "\n".join([
        f"{check}: {headline}",
        "plan:",
        plan,
        f"seed: {seed}    executor: {resolve_executor(executor)!r}",
        *lines,
        f"replay: list(combinators.iterate({_short(stream, 400)}, seed={seed}))",
    ])


def _fail(check: str, headline: str, stream: Stream, seed: int, executor: Any, lines: Iterable[str]) -> None:
    raise AssertionError(_report(check, headline, stream, seed, executor, lines))


def _check_stream(check: str, stream: Any) -> Stream:
    if not isinstance(stream, Stream):
        msg = f"{check}() takes a stream description, got {stream!r} ({type(stream).__name__})"
        raise InvalidArgumentType(msg)
    return stream


# ---------------------------------------------------- the monitoring executor


class Monitored(Executor):
    """An executor that runs activations on ``executor`` and records which are open.

    An activation counts as *open* from the moment the sampler first draws
    on it (it enters the working set) until it is closed; activations the
    interpreter submits ahead of need are counted once drawn on. After a
    run, ``peak`` is the largest number open at once, ``peak_at`` the
    number of items the run had yielded then (``items`` is updated by
    whoever iterates, see
    `~combinators.testing.samplers.assert_working_set`), ``peak_open`` labels
    the activations open at that moment, ``open_now`` those open now (by id),
    ``log`` every ``(fn, args)`` submitted, and
    ``unclosed()`` lists those
    submitted but never closed. One instance monitors one run at a time.

    >>> from combinators import from_iterable, iterate, round_robin
    >>> executor = Monitored("inprocess")
    >>> list(iterate(round_robin(from_iterable("ab"), from_iterable("c")), executor=executor))
    ['a', 'c', 'b']
    >>> executor.peak, executor.unclosed()
    (2, [])
    """

    def __init__(self, executor: str | Executor = "inprocess"):
        self.inner = resolve_executor(executor)
        self.items = 0
        self.reset()

    def reset(self) -> None:
        """Forget what was recorded."""
        # keyed by id, holding the activation itself so that no id is reused while recorded
        self.open_now: dict[int, _Watched] = {}
        self.submitted: dict[int, _Watched] = {}
        self.log: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []  # every submit(fn, *args), in order
        self.peak, self.peak_at, self.peak_open = 0, 0, ()

    def open(self) -> Session:
        """Open the inner executor's session, wrapped to record activations."""
        return _MonitoredSession(self, self.inner.open())

    def _started(self, activation: "_Watched") -> None:
        self.open_now[id(activation)] = activation
        if len(self.open_now) > self.peak:
            self.peak, self.peak_at = len(self.open_now), self.items
            self.peak_open = tuple(a.label for a in self.open_now.values())

    def _closed(self, activation: "_Watched") -> None:
        self.open_now.pop(id(activation), None)
        self.submitted.pop(id(activation), None)

    def unclosed(self) -> list[str]:
        """Labels of activations submitted and not closed."""
        return [activation.label for activation in self.submitted.values()]

    def __repr__(self) -> str:
        return f"Monitored({self.inner!r})"


def _label(fn: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """``path: leaf`` for the interpreter's ``activate_leaf(leaf, entropy, path, activation)``."""
    if fn is activate_leaf and len(args) in (4, 5):  # a fifth: the items a resumed activation skips
        leaf, _, path, activation = args[:4]
        return f"{tuple(path)} #{activation}: {_short(leaf, 80)}"
    return _short((fn, *args), 80)


class _MonitoredSession(Session):
    def __init__(self, monitor: Monitored, inner: Session):
        self.monitor, self.inner = monitor, inner

    def submit(self, fn: Callable[..., Iterable[Any]], *args: Any) -> Activation:
        return self._watch(self.inner.submit(fn, *args), fn, args)

    def start(
        self, plan: tuple[Callable[..., Iterable[Any]], tuple[Any, ...]], extra: tuple[Any, ...], limit: int | None = None
    ) -> Activation:
        fn, args = plan
        return self._watch(self.inner.start(plan, extra, limit), fn, (*args, *extra))

    def _watch(self, inner: Activation, fn: Callable[..., Iterable[Any]], args: tuple[Any, ...]) -> Activation:
        activation = _Watched(inner, self.monitor, _label(fn, args))
        self.monitor.submitted[id(activation)] = activation
        self.monitor.log.append((fn, args))
        return activation

    def close(self) -> None:
        self.inner.close()


class _Watched(Activation):
    """An activation that tells its monitor when it starts and when it is closed."""

    def __init__(self, inner: Activation, monitor: Monitored, label: str):
        self.inner, self.monitor, self.label = inner, monitor, label
        self._next: Callable[[], Any] | None = None
        self.closed = False

    def _start(self) -> Callable[[], Any]:
        if self._next is None:
            self._next = self.inner.next_function()
            self.monitor._started(self)
        return self._next

    def __next__(self) -> Any:
        return (self._next or self._start())()

    def iterator(self) -> Iterator[Any]:
        self._start()
        return self

    def next_function(self) -> Callable[[], Any]:
        self._start()
        return self.__next__

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.inner.close()
            finally:
                self.monitor._closed(self)


# ------------------------------------------------------------------- running


@attrs.frozen
class _Outcome:
    """The first items of one run: ``ended`` if the stream ended before the limit."""

    items: list[Any]
    ended: bool
    stats: list[MixStats]


def _run(stream: Stream, seed: int, executor: Any, limit: int, monitor: Monitored | None = None) -> _Outcome:
    with iterate(stream, seed=seed, executor=monitor or executor) as run:
        items = []
        for item in itertools.islice(run, limit):
            items.append(item)
            if monitor is not None:
                monitor.items = len(items)
        stats = run.stats()
        ended = len(items) < limit or next(run, _END) is _END
    return _Outcome(items, ended, stats)


_END = object()


def _keys(items: Iterable[Any]) -> list[Any]:
    return [fingerprint(item) for item in items]
