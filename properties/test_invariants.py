"""Invariants of every mux mode, checked on random plans with the public toolkit.

What is checked, for plans drawn by `combinators.strategies`:

- counts: a mix's `MixStats` counts equal the items that came from each child;
- exhaustiveness: chains, exhaustive round-robins and exhaustive mixes yield
  every item of every source exactly once, each source in order, with or
  without a budget (``rate``: a budget suspends an activation, never cuts it;
  see also properties/test_sampler_items.py);
- proportions: a mix with every stream active draws items with its weights,
  in every mode (chi-square / exact binomial test, see the false-alarm budget);
- working set: never more source activations open than the plan allows, and
  all closed when the run closes;
- ending: muxes whose streams are all empty end, in every mode;
- determinism: the same seed gives the same items.

The false-alarm budget
----------------------
The only tests that may fail on a correct sampler are the statistical ones.
We want the whole suite to raise a false alarm in fewer than 1 run in 10,000,
whatever the profile. Bonferroni: the probability that any of ``m`` tests
fails is at most the sum of their levels, so each test gets
``alpha = 1e-4 / m``. One suite run performs at most

    m = STATISTICAL_PROPERTIES * examples per property * REPLAY_MARGIN
      = 1 * max_examples * 2

tests: one statistical property (`test_all_active_mix_draws_with_its_weights`),
one test per example, at most ``max_examples`` examples per run, doubled to
cover examples hypothesis replays from its database or generates beyond
``max_examples`` before stopping. With the ``thorough`` profile
(``max_examples=1000``), ``m = 2000`` and ``alpha = 1e-4 / 2000 = 5e-8``;
with ``ci`` (40 examples) ``alpha = 1.25e-6``; with ``dev`` (60)
``8.3e-7``. ``ALPHA`` below is computed from the loaded profile, so a new
profile stays within budget. At these levels, with ``N_ITEMS = 4000`` items,
a weight off by a third of its value in a two-stream 1:3 mix is still caught
(``assert_proportions`` in tests/test_toolkit_checks.py shows the power on
such bugs). Under ``ci`` the examples are derandomized, so a run either
always passes or always fails; the budget above is the chance that the fixed
examples are a false alarm.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import combinators
from combinators.plan.sources import is_leaf
from combinators.strategies import SOURCE_KINDS, origin, seeds, sources, streams, transforms, weights
from combinators.plan.mixes import Mix, RoundRobin, mix, normalize_weights, round_robin
from combinators.plan.sources import FromIterable, Source
from combinators.plan.stream import Apply, Chain, chain
from combinators.testing import assert_deterministic, assert_exhaustive, assert_proportions, assert_working_set

SUITE_FALSE_ALARM = 1e-4
STATISTICAL_PROPERTIES = 1
REPLAY_MARGIN = 2
ALPHA = SUITE_FALSE_ALARM / (STATISTICAL_PROPERTIES * settings.default.max_examples * REPLAY_MARGIN)
N_ITEMS = 4000

FINITE = ("items", "generator", "rng")
MIX_OPTIONS = {
    "n_active": st.none() | st.integers(1, 4),
    "rate": st.none() | st.floats(1, 6),
    "dist": st.sampled_from(("binomial", "constant", "poisson")),
}


def mix_options(draw):
    """``n_active``, ``rate`` and ``dist`` as `mix` takes them: a budget only with a working set."""
    options = {key: draw(value) for key, value in MIX_OPTIONS.items()}
    if options["n_active"] is None:
        options["rate"] = None
    return options


def names(node) -> set[str]:
    """The source names under ``node``."""
    if isinstance(node, Source):
        return {node.args[0]}
    if isinstance(node, FromIterable):
        return {item[0] for item in node.items}
    return set().union(*(names(child) for child in node.children))


# -------------------------------------------------------------------- counts


@st.composite
def mixes(draw, modes=combinators.plan.mixes.MIX_MODES, max_depth=1):
    """A mix over 2-3 plans with distinct source names, in any mode and options."""
    n = draw(st.integers(2, 3))
    children = [draw(streams(max_depth=max_depth, prefix=f"c{i}s")) for i in range(n)]
    options = mix_options(draw)
    node = mix(*children, weights=draw(st.none() | weights(n)), mode=draw(st.sampled_from(modes)),
               prune_empty=draw(st.booleans()), **options)
    return node


@given(mixes(), seeds())
def test_mix_counts_are_the_items_from_each_child(node, seed):
    with combinators.iterate(node, seed=seed, max_iter=200) as run:
        items = list(run)
        (stats,) = [s for s in run.stats() if s.path == ()]
    by_child = [names(child) for child in node.streams]
    expected = [sum(origin(item)[0] in child for item in items) for child in by_child]
    assert stats.counts.tolist() == expected
    assert int(stats.counts.sum()) == len(items)
    np.testing.assert_allclose(stats.target, node.probabilities)


# ------------------------------------------------------------ exhaustiveness


@st.composite
def ending_plans(draw, depth=2, rate=False, counter=None):
    """Plans that end and yield every item once: chains, exhaustive round-robins and mixes over leaves."""
    counter = counter if counter is not None else iter(range(10**6))
    kind = draw(st.sampled_from(["leaf", "chain", "round_robin", "mix"] if depth else ["leaf"]))
    if kind == "leaf":
        leaf = draw(sources(f"s{next(counter)}", kinds=FINITE))
        if draw(st.booleans()):
            leaf = leaf >> draw(transforms(["map", "batch_unbatch"]))
        return leaf
    children = draw(st.lists(ending_plans(depth - 1, rate, counter), min_size=1, max_size=3))
    if kind == "chain":
        return chain(*children)
    if kind == "round_robin":
        return round_robin(*children)
    options = mix_options(draw)
    options["rate"] = options["rate"] if rate else None
    w = draw(st.none() | weights(len(children)).filter(lambda w: all(float(v) > 0 for v in w)))
    return mix(*children, weights=w, mode="exhaustive", prune_empty=draw(st.booleans()), **options)


@given(ending_plans(), seeds())
def test_exhaustive_plans_yield_every_item_once_in_source_order(plan, seed):
    assert_exhaustive(plan, seed=seed)


@given(ending_plans(rate=True), seeds())
def test_an_exhaustive_mix_with_a_budget_still_yields_every_item_once(plan, seed):
    assert_exhaustive(plan, seed=seed)


@given(st.integers(2, 4).flatmap(lambda n: st.tuples(*[sources(f"s{i}", kinds=FINITE) for i in range(n)])), seeds())
def test_first_exhausted_ends_when_a_stream_runs_dry(children, seed):
    lengths = {f"s{i}": len(list(combinators.iterate(child, seed=seed))) for i, child in enumerate(children)}
    positions = collections.defaultdict(list)
    for item in combinators.iterate(mix(*children, mode="first_exhausted"), seed=seed, max_iter=1000):
        name, position = origin(item)
        positions[name].append(position)
    assert all(seen == list(range(len(seen))) for seen in positions.values()), positions
    # the mix stopped at the first stream found dry: that one was read to its end
    assert any(len(positions[name]) == n for name, n in lengths.items()), (positions, lengths)


# --------------------------------------------------------------- proportions


def _repeat(name):
    """A finite source (3 items): an all-active mix restarts it whenever it ends."""
    for position in range(3):
        yield (name, position)


#: the children of the proportions test: endless, endless drawing from rng, short and restarted
KINDS = {
    "endless": lambda name: combinators.stream(combinators.strategies.counting, name),
    "endless_rng": lambda name: combinators.stream(combinators.strategies.counting_random, name),
    "restarted": lambda name: combinators.stream(_repeat, name),
}


@given(
    st.integers(2, 4).flatmap(lambda n: st.tuples(weights(n), st.lists(st.sampled_from(sorted(KINDS)), min_size=n, max_size=n))),
    st.sampled_from(combinators.plan.mixes.MIX_MODES), MIX_OPTIONS["rate"], MIX_OPTIONS["dist"], seeds(),
)
def test_all_active_mix_draws_with_its_weights(weights_and_kinds, mode, rate, dist, seed):
    w, kinds = weights_and_kinds
    p = normalize_weights([float(v) for v in w])
    assume(p[p > 0].min() * N_ITEMS >= 5)
    if mode in ("exhaustive", "first_exhausted"):
        # streams that end leave an exhaustive mix (and end a first_exhausted one): only endless ones here
        kinds = ["endless" if kind == "restarted" else kind for kind in kinds]
    # every stream active: no budget (mix() refuses rate without n_active); with n_active = len(w)
    # in single_active mode each stream holds one slot, restarted after each budget
    n_active = len(w) if rate is not None and mode == "single_active" else None
    rate = rate if n_active else None
    node = mix(*[KINDS[kind](f"s{i}") for i, kind in enumerate(kinds)], weights=w, mode=mode, rate=rate, dist=dist,
               n_active=n_active)
    assert_proportions(node, w, n=N_ITEMS, seed=seed, alpha=ALPHA)


# --------------------------------------------------------------- working set


def bound(node) -> int:
    """How many source activations ``node`` may hold open at once."""
    if is_leaf(node):
        return 1
    if isinstance(node, Apply):
        return bound(node.stream)
    children = [bound(child) for child in node.children]
    if isinstance(node, Chain):
        return max(children, default=0)
    if isinstance(node, RoundRobin) or node.n_active is None:
        return sum(children)
    return min(node.n_active * max(children, default=0), sum(children) if node.mode == "single_active" else 10**9)


@given(streams(max_depth=3), seeds())
def test_working_set_stays_within_the_plan_and_everything_closes(plan, seed):
    assert_working_set(plan, bound(plan), n=300, seed=seed)


# -------------------------------------------------------------------- ending


@given(
    st.lists(st.sampled_from([combinators.from_iterable([]), combinators.stream(_repeat, "x").take(0)]), min_size=1, max_size=4),
    st.sampled_from(combinators.plan.mixes.MIX_MODES), MIX_OPTIONS["n_active"], MIX_OPTIONS["rate"], st.booleans(),
    seeds(),
)
def test_a_mix_of_empty_streams_ends(children, mode, n_active, rate, prune_empty, seed):
    rate = rate if n_active else None
    node = mix(*children, mode=mode, n_active=n_active, rate=rate, prune_empty=prune_empty)
    assert list(combinators.iterate(node, seed=seed)) == []
    assert list(combinators.iterate(round_robin(*children, mode="cycle"), seed=seed)) == []
    assert list(combinators.iterate(chain(*children, cycle=True), seed=seed)) == []


# --------------------------------------------------------------- determinism


@given(streams(max_depth=3), seeds())
def test_the_same_seed_gives_the_same_items(plan, seed):
    assert_deterministic(plan, seed=seed, n=300)


# ----------------------------------- regressions: core bugs these properties found


def _ends_within(code: str, seconds: float = 30) -> bool:
    """Whether ``code`` finishes in a fresh interpreter within ``seconds`` (a spinning loop cannot be interrupted).

    A spin never ends, so the limit only needs to exceed a loaded machine's start-up time (the import
    alone took 2.3-2.8 s at load 10 on 2 cores, and 4 s failed there); a passing run does not wait for it.
    """
    try:
        subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, timeout=seconds, capture_output=True)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_an_all_active_mix_with_an_empty_stream_and_prune_empty_false_does_not_spin():
    assert _ends_within("""
        import combinators as c
        from combinators.strategies import counting
        s = c.mix(c.stream(counting, "a"), c.from_iterable([]), prune_empty=False)
        assert len(list(c.iterate(s.take(5), seed=1))) == 5
    """)


def test_a_mix_of_empty_streams_with_prune_empty_false_ends():
    assert _ends_within("""
        import combinators as c
        empty = c.from_iterable([])
        assert list(c.iterate(c.mix(empty, empty, prune_empty=False), seed=1)) == []
        assert list(c.iterate(c.mix(empty, empty, mode="single_active", n_active=1, prune_empty=False), seed=1)) == []
    """)


def test_a_mix_of_one_chain_cycles_it():
    a, b = combinators.from_iterable("a"), combinators.from_iterable("b")
    assert list(mix(a | b).take(3)) == ["a", "b", "a"]


def test_a_weight_1e20_times_smaller_does_not_divide_by_zero():
    a = combinators.stream(combinators.strategies.counting, "a").take(1)
    s = mix(a, combinators.from_iterable([]), weights=(1e-20, 1.0))
    assert len(list(combinators.iterate(s.take(5), seed=0))) == 5


def test_a_restarted_stream_keeps_its_share():
    """Regression: a pick that met the end of an activation was dropped (3/4 of the share)."""
    node = mix(KINDS["endless"]("s0"), KINDS["restarted"]("s1"))
    assert_proportions(node, (1, 1), n=N_ITEMS, seed=0, alpha=ALPHA)
