"""`assert_proportions`: a stream's items against expected proportions, by an exact or chi-square test."""

from __future__ import annotations

import collections
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from combinators.plan import checks
from combinators.errors import InvalidArgument, InvalidArgumentType
from combinators.plan.mixes import Mix, normalize_weights
from combinators.plan.stream import Apply, Stream
from combinators.testing.monitor import _check_stream, _fail, _run, _short

__all__ = ["assert_proportions"]


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
    if key is None and expected is None and _top_mix(stream)[1].segments is not None:
        path = _top_mix(stream)[0]
        segments = next(s.segments for s in outcome.stats if s.path == path)
        for start, target, counts in segments:
            if counts.sum():
                categories = [f"child {i}" for i in range(len(counts))]
                where = f" in the segment of the schedule from item {start}"
                _check_counts(stream, seed, executor, categories, target, counts, outcome, n, alpha, where)
        return
    categories, target, counts = _observed_counts(stream, expected, key, outcome)
    _check_counts(stream, seed, executor, categories, target, counts, outcome, n, alpha)


def _check_counts(stream, seed, executor, categories, target, counts, outcome, n, alpha, where="") -> None:
    """`assert_proportions`'s test of ``counts`` against ``target``; ``where`` tells which part of the run failed."""
    total = int(counts.sum())
    table = _proportion_table(categories, target, counts)
    impossible = [c for c, p, k in zip(categories, target, counts) if p == 0 and k > 0]
    if total == 0:
        _fail("assert_proportions", "the stream yielded no items to count", stream, seed, executor, table)
    if impossible:
        headline = f"categories expected with proportion 0 yielded items{where}: {', '.join(map(_short, impossible))}"
        _fail("assert_proportions", headline, stream, seed, executor, table)
    keep = target > 0
    name, statistic, pvalue = _multinomial_test(target[keep] / target[keep].sum(), counts[keep])
    if pvalue < alpha:
        ended = f"; the stream ended after {len(outcome.items)} of {n}" if len(outcome.items) < n else ""
        headline = f"p-value {pvalue:.3g} < alpha {alpha:g} ({name} over {total} items{where}{ended})"
        _fail("assert_proportions", headline, stream, seed, executor, [f"statistic: {statistic:.4g}", *table])
