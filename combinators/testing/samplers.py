"""Assertion helpers for samplers: proportions, exhaustiveness, determinism, working set, executors.

Each ``assert_*`` runs a stream and raises `AssertionError` with a readable
report when the sampler does not do what it should: the plan (`explain`),
the seed and executor to replay it, and expected against observed. They
work on any stream; the `combinators.strategies` plans make them easy to
use inside hypothesis tests.

`Monitored` is the hook that lets `assert_working_set` see inside a run: an
`~combinators.execution.base.Executor` that runs every source activation on
another executor and records how many are open at once.

>>> from combinators import from_iterable, mix
>>> a, b = from_iterable("aaaa"), from_iterable("bb")
>>> assert_exhaustive(mix(a, b, mode="exhaustive"))
>>> assert_exhaustive(mix(a, b, mode="first_exhausted"), seed=0)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
AssertionError: assert_exhaustive: 3 items missing, 0 extra, 0 out of order
...
"""

from __future__ import annotations

import collections
import itertools
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import attrs
import numpy as np

from combinators.plan import checks
from combinators.plan.description import fingerprint
from combinators.errors import InvalidArgument, InvalidArgumentType
from combinators.execution.base import Activation, Executor, Session, resolve_executor
from combinators.execution.run import iterate
from combinators.execution.stats import MixStats
from combinators.plan.sources import is_leaf
from combinators.execution.leaf import activate_leaf
from combinators.plan.explain import explain
from combinators.sampling.seeding import run_entropy
from combinators.plan.mixes import Mix, RoundRobin, normalize_weights
from combinators.plan.stream import Apply, Chain, Stream

__all__ = [
    "Monitored",
    "assert_proportions",
    "assert_exhaustive",
    "assert_deterministic",
    "assert_working_set",
    "assert_executor_agreement",
]

#: items listed per kind of discrepancy in a report
_SHOWN = 5


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
    whoever iterates, see `assert_working_set`), ``peak_open`` labels the
    activations open at that moment, ``open_now`` those open now (by id),
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


# -------------------------------------------------------------- proportions


def _top_mix(stream: Stream) -> tuple[tuple[int, ...], Mix]:
    node, path = stream, ()
    while isinstance(node, Apply):
        node, path = node.stream, (*path, 0)
    if not isinstance(node, Mix):
        msg = f"assert_proportions() without key= needs a mix at the top of the stream (under transforms), got {_short(stream)}"
        raise InvalidArgument(msg)
    return path, node


def _normalized(expected: Any, n_categories: int | None) -> np.ndarray:
    try:
        values = np.asarray([float(v) for v in expected], dtype=float)
    except OverflowError:
        values = np.asarray([np.inf])
    if n_categories is not None and len(values) != n_categories:
        msg = f"assert_proportions() expected has {len(values)} values for a mix of {n_categories} streams: {expected!r}"
        raise InvalidArgument(msg)
    if not np.all(np.isfinite(values)) or np.any(values < 0) or values.max() <= 0:
        msg = f"assert_proportions() expected must be finite, >= 0 and not all zero, got {expected!r}"
        raise InvalidArgument(msg)
    return normalize_weights(values)


def _observed_counts(stream, expected, key, outcome) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Categories, expected proportions and observed counts."""
    if key is None:
        path, node = _top_mix(stream)
        counts = next(s.counts for s in outcome.stats if s.path == path)
        target = node.probabilities if expected is None else _normalized(expected, len(node.streams))
        return [f"child {i}" for i in range(len(node.streams))], target, np.asarray(counts, dtype=np.int64)
    if not isinstance(expected, Mapping):
        msg = f"assert_proportions() with key= needs expected as a mapping category -> proportion, got {expected!r}"
        raise InvalidArgumentType(msg)
    tally = collections.Counter(key(item) for item in outcome.items)
    categories = list(expected) + [c for c in tally if c not in expected]
    target = np.concatenate([_normalized(expected.values(), None), np.zeros(len(categories) - len(expected))])
    return categories, target, np.asarray([tally.get(c, 0) for c in categories], dtype=np.int64)


def _multinomial_test(target: np.ndarray, counts: np.ndarray) -> tuple[str, float, float]:
    """(test name, statistic, p-value) of counts against proportions, over categories with p > 0."""
    from scipy import stats

    n = int(counts.sum())
    if len(target) == 1:
        return "none needed (one category)", 0.0, 1.0
    if len(target) == 2:
        result = stats.binomtest(int(counts[0]), n, float(target[0]))
        return "exact two-sided binomial test", float(counts[0]), float(result.pvalue)
    expected = target * n
    if expected.min() < 5:
        msg = (
            f"assert_proportions(): the chi-square test needs at least 5 expected items per category, "
            f"the smallest is {expected.min():.2f}; raise n to at least {int(np.ceil(5 / target.min()))}"
        )
        raise InvalidArgument(msg)
    result = stats.chisquare(counts, expected)
    return f"Pearson chi-square test, {len(target) - 1} degrees of freedom", float(result.statistic), float(result.pvalue)


def _proportion_table(categories, target, counts) -> list[str]:
    n = max(int(counts.sum()), 1)
    rows = [f"    {'category':<24} {'expected':>9} {'observed':>9} {'count':>8} {'expected count':>15}"]
    for category, p, count in zip(categories, target, counts):
        name = category if isinstance(category, str) else _short(category, 24)
        rows.append(f"    {name:<24} {p:>9.4f} {count / n:>9.4f} {int(count):>8} {p * n:>15.1f}")
    return rows


def assert_proportions(
    stream: Stream, expected: Sequence[float] | Mapping[Any, float] | None = None, *, n: int = 10_000,
    seed: int = 0, alpha: float = 1e-6, key: Callable[[Any], Any] | None = None, executor: Any = "inprocess",
) -> None:
    """Assert that a stream's first ``n`` items come from each category in the expected proportions.

    Without ``key``, the categories are the streams of the mix at the top of
    ``stream`` (under any transforms), counted by the run's `MixStats`, and
    ``expected`` is a sequence of weights, one per stream (default: the
    mix's own weights). With ``key``, each item's category is ``key(item)``
    and ``expected`` maps category to weight. Weights are normalized.

    The test: a category expected with proportion 0 that yields items fails
    at once. Otherwise two categories get an exact two-sided binomial test,
    more get Pearson's chi-square test (needing >= 5 expected items in each);
    the assertion fails when the p-value is below ``alpha``, so a correct
    sampler fails with probability ``alpha``. Both assume items are drawn
    independently, which holds for ``mix(..., n_active=None)`` (every mode);
    a working set (``n_active=k``) draws items in runs from each activation,
    spreading the counts wider than the test allows: use ``key`` over a
    larger ``n`` with a smaller ``alpha``, or test the budget separately.

    Raises `AssertionError` with the plan, seed, the test named, its
    statistic and p-value, and a table of expected against observed; raises
    `InvalidArgument` for a bad ``expected``, ``n`` or ``alpha``, no mix at
    the top without ``key``, or too small an ``n`` for the chi-square test.

    Source: the tests as in scipy.stats (``binomtest``, ``chisquare``).

    >>> from combinators import from_iterable, mix
    >>> ab = mix(from_iterable("a").cycle(), from_iterable("b").cycle(), (1, 3))
    >>> assert_proportions(ab, n=2000)
    >>> assert_proportions(ab, (1, 1), n=2000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: assert_proportions: p-value ... < alpha 1e-06 (exact two-sided binomial test over 2000 items)
    ...
    """
    stream = _check_stream("assert_proportions", stream)
    n = checks.positive_int("assert_proportions() n", n)
    alpha = checks.probability("assert_proportions() alpha", alpha)
    outcome = _run(stream, seed, executor, n)
    categories, target, counts = _observed_counts(stream, expected, key, outcome)
    total = int(counts.sum())
    table = _proportion_table(categories, target, counts)
    impossible = [c for c, p, k in zip(categories, target, counts) if p == 0 and k > 0]
    if total == 0:
        _fail("assert_proportions", "the stream yielded no items to count", stream, seed, executor, table)
    if impossible:
        headline = f"categories expected with proportion 0 yielded items: {', '.join(map(_short, impossible))}"
        _fail("assert_proportions", headline, stream, seed, executor, table)
    keep = target > 0
    name, statistic, pvalue = _multinomial_test(target[keep] / target[keep].sum(), counts[keep])
    if pvalue < alpha:
        ended = f"; the stream ended after {len(outcome.items)} of {n}" if len(outcome.items) < n else ""
        headline = f"p-value {pvalue:.3g} < alpha {alpha:g} ({name} over {total} items{ended})"
        _fail("assert_proportions", headline, stream, seed, executor, [f"statistic: {statistic:.4g}", *table])


# ------------------------------------------------------------ exhaustiveness


def _first_activations(monitor: Monitored) -> dict[tuple[int, ...], Any]:
    """The identity of the first activation of each leaf path, as the interpreter submitted it."""
    first: dict[tuple[int, ...], Any] = {}
    for fn, args in monitor.log:
        if fn is activate_leaf and len(args) == 4:
            first.setdefault(tuple(args[2]), args[3])
    return first


def _derived_sources(stream: Stream, entropy: int, limit: int, monitor: Monitored | None) -> dict[str, list[Any]]:
    """Each leaf's items in its first activation of the run, labelled by path and description."""
    found: dict[str, list[Any]] = {}
    first = _first_activations(monitor) if monitor is not None else {}

    def walk(node: Stream, path: tuple[int, ...]) -> None:
        if is_leaf(node):
            activation = first.get(path, (0,) * (len(path) + 1))  # never activated: its items are all missing
            items = list(itertools.islice(activate_leaf(node, entropy, path, activation), limit + 1))
            if len(items) > limit:
                msg = f"assert_exhaustive(): the source at {path} yields more than {limit} items ({_short(node)}); pass expected= or a larger limit"
                raise InvalidArgument(msg)
            found[f"{path}: {_short(node, 80)}"] = items
        elif isinstance(node, (Chain, Mix, RoundRobin)):
            for i, child in enumerate(node.children):
                walk(child, (*path, i))
        else:
            msg = f"assert_exhaustive() cannot derive the expected items through {_short(node)}: transforms over a combinator; pass expected="
            raise InvalidArgument(msg)

    walk(stream, ())
    return found


def _given_sources(expected: Any) -> dict[str, list[Any]]:
    if isinstance(expected, Mapping):
        return {str(label): list(items) for label, items in expected.items()}
    if not isinstance(expected, Iterable):
        msg = f"assert_exhaustive() expected must be a sequence of items or a mapping label -> items, got {expected!r}"
        raise InvalidArgumentType(msg)
    return {"expected": list(expected)}


def _first_out_of_order(observed_keys: list[Any], source: list[Any]) -> int | None:
    """Index into ``source`` of the first item not found in order in ``observed_keys``, or None."""
    wanted = _keys(source)
    j = 0
    for key in observed_keys:
        if j < len(wanted) and key == wanted[j]:
            j += 1
    return None if j == len(wanted) else j


def _multiset_lines(expected: list[Any], observed: list[Any]) -> tuple[list[str], int, int]:
    """Report lines on missing and extra items, and their numbers."""
    want, got = collections.Counter(_keys(expected)), collections.Counter(_keys(observed))
    missing, extra = want - got, got - want
    by_key = {fingerprint(item): item for item in itertools.chain(expected, observed)}

    def shown(counter: collections.Counter, note: Callable[[Any], str]) -> str:
        return ", ".join(f"{_short(by_key[k], 40)} x{counter[k]}{note(k)}" for k in list(counter)[:_SHOWN])

    lines = []
    if missing:
        lines.append(f"missing ({sum(missing.values())}): " + shown(missing, lambda k: ""))
    if extra:
        lines.append(f"extra ({sum(extra.values())}): " + shown(extra, lambda k: " (duplicated)" if k in want else " (unexpected)"))
    return lines, sum(missing.values()), sum(extra.values())


def assert_exhaustive(
    stream: Stream, expected: Iterable[Any] | Mapping[Any, Iterable[Any]] | None = None, *, seed: int = 0,
    executor: Any = "inprocess", ordered: bool = True, limit: int = 100_000,
) -> None:
    """Assert that a stream yields every expected item exactly once, keeping each source's order.

    ``expected`` is a sequence of items (one source: the whole order is
    checked), or a mapping ``label -> items`` (several sources: each one's
    order must be kept, the interleaving is free; ``ordered=False`` checks
    only that each item appears once, for shuffling samplers). By default it is derived
    from the plan: the items of one activation of every source, found
    through chains, mixes and round-robins (each source is expected to be
    activated once, as ``mode="exhaustive"`` does; a source drawing from
    ``rng`` is replayed with the activation the run gave it). Items are compared by
    value (arrays by dtype, shape and bytes). The run is stopped after twice
    the expected number of items plus 10, so an endless stream fails too.

    Raises `AssertionError` listing missing, duplicated and unexpected
    items and the first item out of order, with the plan and seed; raises
    `InvalidArgument` when the expected items cannot be derived (transforms
    over a combinator, or a source longer than ``limit``).

    >>> from combinators import from_iterable, mix
    >>> s = mix(from_iterable("abc"), from_iterable("xy"), mode="exhaustive")
    >>> assert_exhaustive(s, {"letters": "abc", "end": "xy"}, seed=2)
    >>> assert_exhaustive(s, "abcxy", seed=2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: assert_exhaustive: 0 items missing, 0 extra, 1 out of order
    ...
    """
    stream = _check_stream("assert_exhaustive", stream)
    limit = checks.positive_int("assert_exhaustive() limit", limit)
    entropy = run_entropy(seed)
    given = None if expected is None else _given_sources(expected)
    sources = given if given is not None else _derived_sources(stream, entropy, limit, None)  # sizes only
    monitor = Monitored(executor)
    outcome = _run(stream, seed, executor, 2 * sum(map(len, sources.values())) + 10, monitor)
    sources = given if given is not None else _derived_sources(stream, entropy, limit, monitor)
    expected_items = list(itertools.chain.from_iterable(sources.values()))
    lines, n_missing, n_extra = _multiset_lines(expected_items, outcome.items)
    observed_keys = _keys(outcome.items)
    disorder = {label: _first_out_of_order(observed_keys, items) for label, items in sources.items()}
    disorder = {label: j for label, j in disorder.items() if j is not None}
    if ordered and not n_missing and not n_extra:
        for label, j in list(disorder.items())[:_SHOWN]:
            item = sources[label][j]
            lines.append(f"out of order: source {label}: its item #{j} {_short(item, 40)} comes before its earlier items")
    else:
        disorder = {}
    if not outcome.ended:
        lines.insert(0, f"the stream did not end after {len(outcome.items)} items ({len(expected_items)} expected)")
    if n_missing or n_extra or disorder or not outcome.ended:
        lines.append(f"expected {len(expected_items)} items from {len(sources)} sources; observed {len(outcome.items)}: "
                     + _short(outcome.items, 300))
        headline = f"{n_missing} items missing, {n_extra} extra, {len(disorder)} out of order"
        _fail("assert_exhaustive", headline, stream, seed, executor, lines)


# ------------------------------------------------ determinism and agreement


def _first_difference(a: list[Any], b: list[Any]) -> int | None:
    for index, (x, y) in enumerate(zip(_keys(a), _keys(b))):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def _compare_runs(check: str, stream: Stream, runs: list[tuple[str, Any]], seed: int, n: int) -> None:
    """Run each (label, executor) for ``n`` items with ``seed``; fail if any differs from the first."""
    outcomes = [(label, executor, _run(stream, seed, executor, n)) for label, executor in runs]
    ref_label, _, reference = outcomes[0]
    for label, executor, outcome in outcomes[1:]:
        index = _first_difference(reference.items, outcome.items)
        if index is None:
            continue
        window = slice(max(0, index - 2), index + 3)
        lines = [
            f"{ref_label}: {len(reference.items)} items, at {window.start}..: {_short(reference.items[window], 300)}",
            f"{label}: {len(outcome.items)} items, at {window.start}..: {_short(outcome.items[window], 300)}",
        ]
        headline = f"{label} differs from {ref_label} at item {index}"
        _fail(check, headline, stream, seed, executor, lines)


def _executor_list(what: str, executors: Any) -> list[Any]:
    if isinstance(executors, (str, Executor)):
        executors = [executors]
    executors = list(executors)
    if not executors:
        msg = f"{what} needs at least one executor, got {executors!r}"
        raise InvalidArgument(msg)
    for executor in executors:
        resolve_executor(executor)  # a clear error for a bad name or object, before running anything
    return executors


def assert_deterministic(
    stream: Stream, *, executors: Any = ("inprocess",), seed: int = 0, n: int = 1000,
) -> None:
    """Assert that the same seed gives the same first ``n`` items, run after run, on every executor.

    Each executor (a name or an `Executor` instance) runs the stream twice;
    every run must equal the first run of the first executor, item for item
    (arrays by dtype, shape and bytes). A source drawing from an unseeded
    generator (``np.random.default_rng()``, the global ``np.random``, the
    ``random`` module) instead of its ``rng`` parameter fails this.

    Raises `AssertionError` naming the runs that differ and the first item
    where they do, with the items around it, the plan and the seed;
    `InvalidArgument` / `InvalidArgumentType` for a bad executor.

    >>> from combinators import stream
    >>> def noise(rng):
    ...     yield from rng.integers(0, 100, size=5).tolist()
    >>> assert_deterministic(stream(noise), seed=3)
    >>> def unseeded():
    ...     yield from np.random.default_rng().integers(0, 2**62, size=5).tolist()
    >>> assert_deterministic(stream(unseeded))
    Traceback (most recent call last):
    ...
    AssertionError: assert_deterministic: InProcess() run 2 differs from InProcess() run 1 at item 0
    ...
    """
    stream = _check_stream("assert_deterministic", stream)
    n = checks.positive_int("assert_deterministic() n", n)
    executors = _executor_list("assert_deterministic()", executors)
    runs = [(f"{resolve_executor(e)!r} run {k}", e) for e in executors for k in (1, 2)]
    _compare_runs("assert_deterministic", stream, runs, seed, n)


def assert_executor_agreement(
    stream: Stream, executors: Any, *, seed: int = 0, n: int = 1000, reference: Any = "inprocess",
) -> None:
    """Assert that every executor yields the same first ``n`` items as the ``reference`` one.

    ``executors`` is a name, an `Executor` instance, or a sequence of them
    (``["inprocess", Processes(workers=2)]``). Items are compared by value
    (arrays by dtype, shape and bytes), in order.

    Raises `AssertionError` naming the executor that differs and the first
    item where it does, with the plan and seed; `InvalidArgument` /
    `InvalidArgumentType` for a bad executor.

    >>> from combinators import from_iterable, mix
    >>> assert_executor_agreement(mix(from_iterable("ab"), from_iterable("cd")).take(20), ["inprocess"], seed=1)
    """
    stream = _check_stream("assert_executor_agreement", stream)
    n = checks.positive_int("assert_executor_agreement() n", n)
    executors = _executor_list("assert_executor_agreement()", executors)
    runs = [(f"reference {resolve_executor(reference)!r}", reference)]
    runs += [(repr(resolve_executor(e)), e) for e in executors]
    _compare_runs("assert_executor_agreement", stream, runs, seed, n)


# --------------------------------------------------------------- working set


def assert_working_set(
    stream: Stream, n_active: int, *, n: int = 1000, seed: int = 0, executor: Any = "inprocess",
) -> None:
    """Assert that at most ``n_active`` source activations are open at once, and all are closed at the end.

    Runs ``n`` items through a `Monitored` ``executor``. A source activation
    is open from when the sampler first draws on it (it enters the working
    set) until it is closed; what holds files, buffers or workers is these.
    So ``mix(*sources, n_active=k)`` passes with ``k``; a mix of mixes with
    ``n_active`` k1 over k2 passes with ``k1 * k2``.

    Raises `AssertionError` with the peak, the item index at which it was
    reached and the activations open then (path, activation number,
    source), or the activations never closed, with the plan and seed;
    `InvalidArgument` for ``n_active < 0``.

    >>> from combinators import from_iterable, mix
    >>> files = [from_iterable(range(i, i + 5)) for i in range(0, 50, 5)]
    >>> assert_working_set(mix(*files, n_active=2, rate=3, mode="exhaustive"), 2)
    >>> assert_working_set(mix(*files, mode="exhaustive"), 2)
    Traceback (most recent call last):
    ...
    AssertionError: assert_working_set: 10 source activations open at once (at item 0), more than n_active=2
    ...
    """
    stream = _check_stream("assert_working_set", stream)
    n_active = checks.non_negative_int("assert_working_set() n_active", n_active)  # 0: an empty plan opens nothing
    n = checks.positive_int("assert_working_set() n", n)
    monitor = Monitored(executor)
    _run(stream, seed, executor, n, monitor)
    open_lines = [f"    {label}" for label in monitor.peak_open[:20]]
    if monitor.peak > n_active:
        headline = f"{monitor.peak} source activations open at once (at item {monitor.peak_at}), more than n_active={n_active}"
        _fail("assert_working_set", headline, stream, seed, executor, ["open at the peak:", *open_lines])
    if monitor.unclosed():
        lines = ["still open:", *(f"    {label}" for label in monitor.unclosed()[:20])]
        headline = f"{len(monitor.unclosed())} source activations were not closed when the run closed"
        _fail("assert_working_set", headline, stream, seed, executor, lines)
