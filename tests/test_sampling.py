"""What pescador 3's own test suite checks, on this API, plus its known defects' absence."""

from __future__ import annotations

import collections
import itertools
import pickle

import numpy as np
import pytest
from scipy import stats

import combinators as c
from combinators.testing import assert_working_set

MODES = ("with_replacement", "single_active", "exhaustive", "first_exhausted")


def tagged(name, n):
    """A finite source of ``(name, i)`` items."""
    for i in range(n):
        yield (name, i)


def endless(name):
    for i in itertools.count():
        yield (name, i)


def sources(n, length=5):
    return [c.stream(tagged, f"s{k}", length) for k in range(n)]


def draw(plan, n=None, seed=0):
    return list(c.iterate(plan, seed=seed, max_iter=n))


# ------------------------------------------------------------- single streams


def test_reiteration_gives_the_same_items():
    s = c.stream(tagged, "a", 3)
    assert list(s) == list(s) == [("a", 0), ("a", 1), ("a", 2)]
    run = c.iterate(s)
    assert list(run) == list(s) and list(run) == []  # a run is one pass


def test_max_iter_and_take():
    s = c.stream(endless, "a")
    assert draw(s, 4) == [("a", i) for i in range(4)]
    assert list(s.take(2)) == [("a", 0), ("a", 1)]
    assert draw(c.stream(tagged, "a", 2), 10) == [("a", 0), ("a", 1)]
    assert draw(s, 0) == []


def test_cycle_restarts_and_empty_cycle_ends():
    assert draw(c.stream(tagged, "a", 2).cycle(), 5) == [("a", 0), ("a", 1), ("a", 0), ("a", 1), ("a", 0)]
    assert list(c.from_iterable([]).cycle()) == []
    assert list(c.chain(c.from_iterable([]), c.from_iterable(()), cycle=True)) == []


def test_chain_order():
    a, b = c.stream(tagged, "a", 2), c.stream(tagged, "b", 1)
    assert list(a | b) == [("a", 0), ("a", 1), ("b", 0)]
    assert draw(c.chain(a, b, cycle=True), 7) == [("a", 0), ("a", 1), ("b", 0)] * 2 + [("a", 0)]


def test_round_robin_orders():
    a, b, e = c.from_iterable("ace"), c.from_iterable("bd"), c.from_iterable("")
    assert "".join(c.round_robin(a, e, b)) == "abcde"
    assert "".join(draw(c.round_robin(a, b, mode="cycle"), 12)) == "abcdeabcdeab"
    out = "".join(draw(c.round_robin(c.from_iterable("a"), c.from_iterable("b"), c.from_iterable("c"), mode="permuted_cycle"), 30, seed=4))
    passes = [out[i : i + 3] for i in range(0, 30, 3)]
    assert passes[0] == "abc" and all(sorted(p) == list("abc") for p in passes)
    assert len(set(passes)) > 1  # the order is redrawn between passes
    assert list(c.round_robin(e, e, mode="cycle")) == []


# ---------------------------------------------------------------------- mixes


@pytest.mark.parametrize("n_active", [None, 1, 2, 3, 10])
@pytest.mark.parametrize("rate", [None])
def test_exhaustive_yields_every_item_once_in_source_order(n_active, rate):
    plan = c.mix(*sources(5, 4), weights=[1, 2, 3, 4, 5], n_active=n_active, mode="exhaustive")
    out = draw(plan, seed=n_active or 0)
    assert sorted(out) == sorted((f"s{k}", i) for k in range(5) for i in range(4))
    for k in range(5):
        assert [i for name, i in out if name == f"s{k}"] == list(range(4))


@pytest.mark.parametrize("mode", ["exhaustive", "first_exhausted"])
@pytest.mark.parametrize("n_active", [1, 2, 5])
def test_ending_modes_with_budgets_lose_nothing_and_keep_the_working_set(mode, n_active):
    """Regression (issue 10): a budget cut an exhaustive activation short and dropped the rest."""
    starts = []

    def counted(name, n):
        starts.append(name)
        yield from tagged(name, n)

    plan = c.mix(*[c.stream(counted, f"s{k}", 10) for k in range(4)], n_active=n_active, rate=3, dist="constant", mode=mode)
    out = draw(plan)
    per_source = {f"s{k}": [i for name, i in out if name == f"s{k}"] for k in range(4)}
    assert all(seen == list(range(len(seen))) for seen in per_source.values())  # in order, none twice
    # a spent budget closes the activation (the working set stays bounded); the stream starts again
    # later with the same identity and resumes where it stopped
    assert len(starts) >= min(n_active, 4)
    assert_working_set(plan, n_active)
    if mode == "exhaustive":
        assert all(len(seen) == 10 for seen in per_source.values())
    else:  # ends as soon as one stream runs dry: that one was read to its end
        assert any(len(seen) == 10 for seen in per_source.values())
    if n_active == 1:  # the budget still rotates the working set: turns of 3 items from one stream
        names = [name for name, _ in out]
        assert all(len(set(names[t : t + 3])) == 1 for t in range(0, 9, 3))


def test_a_resumed_stream_starts_again_with_the_same_identity():
    """A spent budget closes the activation; the stream restarts with the same seed and skips what it yielded."""
    starts = collections.defaultdict(list)

    def noisy(name, n, rng):
        starts[name].append(repr(rng.bit_generator.state))
        for i in range(n):
            yield (name, i, int(rng.integers(1 << 30)))

    plan = c.mix(*[c.stream(noisy, f"s{k}", 6) for k in range(3)], n_active=1, rate=2, dist="constant", mode="exhaustive")
    out = draw(plan, seed=5)
    # three turns of 2 items, then a last start that finds the stream dry: every start from the same state
    assert sorted(starts) == ["s0", "s1", "s2"]
    assert all(len(states) >= 3 and len(set(states)) == 1 for states in starts.values())
    for name in starts:
        assert [i for n, i, _ in out if n == name] == list(range(6))
    assert out == draw(plan, seed=5) and draw(plan, seed=5, n=7) == out[:7]


def test_exhaustive_issue_example_yields_all_six_items():
    a, b = c.from_iterable("aaa"), c.from_iterable("bbb")
    for n_active, dist in itertools.product([1, 2, 3], ["constant", "poisson", "binomial"]):
        out = "".join(c.iterate(c.mix(a, b, mode="exhaustive", n_active=n_active, rate=1, dist=dist), seed=0))
        assert sorted(out) == list("aaabbb"), (n_active, dist, out)


@pytest.mark.parametrize("mode", ["with_replacement", "single_active"])
@pytest.mark.parametrize("n_active", [None, 1, 3])
def test_infinite_modes_keep_going(mode, n_active):
    out = draw(c.mix(*sources(3, 2), n_active=n_active, mode=mode), 500)
    assert len(out) == 500
    assert {name for name, _ in out} == {"s0", "s1", "s2"}


def test_first_exhausted_ends_when_a_stream_runs_dry():
    plan = c.mix(c.stream(tagged, "short", 3), c.stream(endless, "long"), mode="first_exhausted")
    out = draw(plan, 10_000)
    assert [i for name, i in out if name == "short"] == [0, 1, 2] and len(out) < 10_000
    # with a working set and budgets, budget ends are replacements, not the end
    out = draw(c.mix(c.stream(endless, "a"), c.stream(endless, "b"), n_active=1, rate=2, dist="constant", mode="first_exhausted"), 100)
    assert len(out) == 100


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n_active", [None, 1, 3])
@pytest.mark.parametrize("prune_empty", [True, False])
def test_mix_of_empty_streams_ends(mode, n_active, prune_empty):
    empties = [c.from_iterable([]) for _ in range(3)]
    assert draw(c.mix(*empties, n_active=n_active, mode=mode, prune_empty=prune_empty), 1000) == []
    plan = c.mix(c.from_iterable([]), c.from_iterable([1]), n_active=n_active, mode=mode, prune_empty=prune_empty)
    assert set(draw(plan, 50)) <= {1}


def test_pruned_streams_are_never_activated_again():
    activations = collections.Counter()

    def counted(name, n):
        activations[name] += 1
        yield from range(n)

    draw(c.mix(c.stream(counted, "empty", 0), c.stream(counted, "full", 1), n_active=1), 200)
    assert activations["empty"] == 1 and activations["full"] >= 100


@pytest.mark.parametrize("dist", ["constant", "poisson", "binomial"])
def test_budgets_follow_dist(dist):
    """Each activation of an endless source yields its budget: mean ``rate`` items."""
    plan = c.mix(*[c.stream(endless, f"s{k}") for k in range(4)], n_active=2, rate=8, dist=dist)
    out = draw(plan, 20_000, seed=1)
    runs = [i for (name, i), nxt in zip(out, out[1:] + [("end", 0)]) if nxt[0] != name or nxt[1] != i + 1]
    lengths = np.asarray(runs) + 1  # an activation's last index + 1 = its length (interleaving breaks runs)
    assert lengths.min() >= 1
    if dist == "constant":
        assert lengths.max() == 8
    starts = sum(1 for name, i in out if i == 0)
    assert abs(len(out) / starts - 8) < 0.5  # items per activation ~ rate


def test_working_set_bound_and_closing():
    open_now, most = set(), [0]

    def watched(k):
        open_now.add(k)
        most[0] = max(most[0], len(open_now))
        try:
            yield from range(5)
        finally:
            open_now.discard(k)

    plan = c.mix(*[c.stream(watched, k) for k in range(20)], n_active=3, rate=4)
    with c.iterate(plan, seed=0) as run:
        for _ in itertools.islice(run, 2000):
            pass
        assert len(open_now) <= 3
    assert most[0] <= 3 and open_now == set()


def test_source_exceptions_reach_the_caller_unchanged():
    class Boom(Exception):
        pass

    def failing():
        yield 1
        raise Boom("source failed")

    run = c.iterate(c.mix(c.stream(failing), c.from_iterable([2, 2]), mode="exhaustive"), seed=0)
    with pytest.raises(Boom, match="source failed"):
        list(run)


def test_closing_a_run_closes_sources():
    started, closed = [], []

    def source(k):
        started.append(k)
        try:
            yield from itertools.count()
        finally:
            closed.append(k)

    run = c.iterate(c.mix(*[c.stream(source, k) for k in range(4)]), seed=0)
    for _ in range(20):
        next(run)
    assert len(started) >= 2 and closed == []
    run.close()
    assert sorted(closed) == sorted(started)
    with pytest.raises(StopIteration):
        next(run)


# ------------------------------------------------------------ proportions


def chi_square_p(counts, weights, design_effect=1.0):
    """Pearson's chi-square p-value; ``design_effect`` deflates the statistic for clustered draws.

    Items from a working set come in runs (an activation yields about
    ``rate`` items before it is replaced), so they are not independent: the
    variance of a count is about ``rate * (1 + CV^2)`` times the multinomial
    one (cluster sampling's design effect, Kish 1965).
    """
    counts = np.asarray(counts, dtype=float)
    expected = np.asarray(weights, dtype=float) / np.sum(weights) * counts.sum()
    statistic = float(((counts - expected) ** 2 / expected).sum()) / design_effect
    return stats.chi2.sf(statistic, len(counts) - 1)


@pytest.mark.parametrize("n_active", [None, 2])
def test_frequencies_follow_weights(n_active):
    weights = [1, 2, 3, 4]
    plan = c.mix(*[c.stream(endless, f"s{k}") for k in range(4)], weights=weights, n_active=n_active, rate=n_active and 16)
    out = draw(plan, 20_000, seed=3)
    counts = collections.Counter(name for name, _ in out)
    deff = 1.0 if n_active is None else 16 * 1.25
    assert chi_square_p([counts[f"s{k}"] for k in range(4)], weights, deff) > 1e-4


def test_integer_weights_equal_float_weights():
    streams = [c.stream(endless, f"s{k}") for k in range(3)]
    for n_active in (None, 2):
        as_int = draw(c.mix(*streams, weights=(1, 2, 3), n_active=n_active, rate=n_active and 4), 300, seed=5)
        as_float = draw(c.mix(*streams, weights=np.array([1.0, 2.0, 3.0]), n_active=n_active, rate=n_active and 4), 300, seed=5)
        as_np_int = draw(c.mix(*streams, weights=np.array([1, 2, 3], dtype=np.int8), n_active=n_active, rate=n_active and 4), 300, seed=5)
        assert as_int == as_float == as_np_int


@pytest.mark.parametrize("dist", ["constant", "poisson", "binomial"])
def test_stacked_muxes_converge(dist):
    """A mix of mixes yields leaves with the product of the normalized weights."""
    inner = [
        c.mix(c.stream(endless, "a"), c.stream(endless, "b"), weights=(1, 3), n_active=1, rate=4, dist=dist),
        c.mix(c.stream(endless, "c"), c.stream(endless, "d"), c.stream(endless, "e"), n_active=2, rate=4, dist=dist),
    ]
    outer = c.mix(*inner, weights=(2, 1), n_active=1, rate=8, dist=dist)
    out = draw(outer, 30_000, seed=11)
    counts = collections.Counter(name for name, _ in out)
    expected = {"a": 2 / 3 * 1 / 4, "b": 2 / 3 * 3 / 4, "c": 1 / 9, "d": 1 / 9, "e": 1 / 9}
    assert chi_square_p([counts[k] for k in expected], list(expected.values()), design_effect=8 * 1.25) > 1e-4
    # the realized proportions are close too (not only "not significantly far")
    realized = np.array([counts[k] for k in expected]) / len(out)
    assert np.abs(realized - np.array(list(expected.values()))).max() < 0.03


def test_stats_report_realized_and_target():
    plan = c.mix(c.stream(endless, "a"), c.stream(endless, "b"), weights=(1, 3), n_active=1, rate=4)
    with c.iterate(plan, seed=0, max_iter=4000) as run:
        list(run)
        (mix_stats,) = run.stats()
    assert mix_stats.counts.sum() == 4000
    assert np.allclose(mix_stats.target, [0.25, 0.75])
    assert np.abs(mix_stats.realized - mix_stats.target).max() < 0.03
    assert "target 0.7500" in str(mix_stats)


# -------------------------------------------------------------- determinism


def random_source(name, rng):
    for i in range(3):
        yield (name, int(rng.integers(1_000_000)))


def test_same_seed_same_items_and_no_replay():
    plan = c.mix(c.stream(random_source, "a"), c.stream(random_source, "b"), n_active=1, rate=2)
    first, again, other = draw(plan, 60, seed=7), draw(plan, 60, seed=7), draw(plan, 60, seed=8)
    assert first == again and first != other
    # pescador replays the same draws at every activation when seeded; we do not
    values = [v for _, v in draw(c.stream(random_source, "a").cycle(), 30, seed=7)]
    assert len(set(values)) > 25


def test_unseeded_runs_record_their_seed():
    plan = c.stream(random_source, "a").cycle()
    run = c.iterate(plan, max_iter=9)
    assert list(run) == draw(plan, 9, seed=run.seed)


# ------------------------------------------- issue 10: nothing dropped or repeated


def test_rate_without_n_active_is_refused_with_what_to_do():
    """Regression: rate=1 without n_active yielded each stream's first item forever (9)."""
    a, b = c.from_iterable("aaa"), c.from_iterable("bbb")
    for mode in MODES:
        with pytest.raises(c.errors.InvalidArgument, match=r"rate=1 needs n_active.*n_active=2, mode='single_active'"):
            c.mix(a, b, rate=1, dist="constant", mode=mode)
    # the spelled-out form restarts each stream after its budget, keeping the weights' proportions
    out = "".join(draw(c.mix(a, b, n_active=2, rate=1, dist="constant", mode="single_active"), 40))
    assert set(out) == {"a", "b"}


def test_cache_ends_with_its_input_as_pescador():
    """Regression: range(3) >> cache(8, prob=0.1) yielded 17 items; pescador 3's cache yields 3 (10)."""
    for seed in range(20):
        assert draw(c.from_iterable(range(3)) >> c.cache(8, prob=0.1), seed=seed) == [0, 1, 2]
    out = draw(c.from_iterable(range(50)) >> c.cache(4, prob=0.2), seed=3)
    assert list(dict.fromkeys(out)) == list(range(50)) and len(out) > 50


def test_chain_of_no_streams_is_an_empty_stream_everywhere():
    """Regression: chain() raised; pescador's ChainMux([]) is empty (11)."""
    empty = c.chain()
    assert repr(empty) == "chain()" and eval(repr(empty), vars(c)) == empty
    assert pickle.loads(pickle.dumps(empty)) == empty
    assert c.explain(empty).strip() != ""
    for executor in ("inprocess", c.Processes(workers=1)):
        assert list(c.iterate(empty, executor=executor)) == []
        assert list(c.iterate(c.chain(cycle=True), executor=executor)) == []
        mixed = c.mix(empty, c.from_iterable("ab"), mode="exhaustive")
        assert sorted(c.iterate(mixed, seed=0, executor=executor)) == ["a", "b"]
    assert list(empty.cycle()) == list(empty >> c.batch(2, partial=True)) == []


@pytest.mark.parametrize("weights", [(1e308, 1e308), (1.7976931348623157e308, 1e308, 1e307), (1e-320, 1e-320), (5e-324, 1.5e-323)])
def test_extreme_weights_normalize_without_overflow(weights):
    """Regression: weights=(1e308, 1e308) normalized to [0, 0] and the mix yielded nothing (12)."""
    streams = [c.stream(endless, f"s{k}") for k in range(len(weights))]
    node = c.mix(*streams, weights=weights)
    expected = np.asarray(weights) / max(weights)
    np.testing.assert_allclose(node.probabilities, expected / expected.sum(), rtol=1e-12)
    assert len(draw(node, 100)) == 100


def test_a_tiny_weight_beside_a_huge_one_is_still_reached_in_exhaustive_mode():
    node = c.mix(c.from_iterable("ab"), c.from_iterable("z"), weights=(1e308, 1e-320), mode="exhaustive")
    assert node.probabilities.tolist() == [1.0, c.plan.MIN_SHARE]
    assert "".join(draw(node)) == "abz"


def test_a_weight_beyond_float64_is_refused():
    with pytest.raises(c.errors.InvalidArgument, match="weight 1 must be finite"):
        c.mix(c.from_iterable("a"), c.from_iterable("b"), weights=(1, 10**400))


def test_huge_budgets_do_not_overflow():
    for dist in ("constant", "poisson", "binomial"):
        plan = c.mix(c.stream(endless, "a"), c.stream(endless, "b"), n_active=1, rate=1e300, dist=dist)
        assert len(draw(plan, 50)) == 50


@pytest.mark.parametrize("build", [
    lambda a, b: c.mix([a, b], n_active=3),
    lambda a, b: c.mix([a, b]),
    lambda a, b: c.chain([a, b]),
    lambda a, b: c.round_robin((a, b)),
])
def test_a_list_of_streams_says_to_pass_them_as_arguments(build):
    """Regression: mix([s1, s2], n_active=3) said "mix() needs at least one stream" (13)."""
    with pytest.raises(c.errors.InvalidArgumentType, match=r"pass streams as arguments: \w+\(\*streams\)"):
        build(c.from_iterable("a"), c.from_iterable("b"))
