"""combinators.strategies: plans whose items identify their source, that end, pickle and shrink small."""

from __future__ import annotations

import collections
import pickle

import cloudpickle
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

import combinators
from combinators import InvalidArgument
from combinators.strategies import (
    SOURCE_KINDS, TRANSFORM_KINDS, counting, ending_plans, is_infinite_source, labelled, origin, seeds, sources, streams,
    transforms, weights,
)
from combinators.plan.mixes import Mix, RoundRobin
from combinators.plan.sources import FromIterable, Source, is_source
from combinators.plan.stream import Apply, Chain


#: these tests are about the plans, not the muxes: modes that end by themselves keep plans (and what they shrink to) simple
ENDING_MODES = ["exhaustive", "first_exhausted"]


def source_names(node) -> list[str]:
    if isinstance(node, Source):
        return [node.args[0]]
    if isinstance(node, FromIterable):
        return [item[0] for item in node.items[:1]]
    return [name for child in node.children for name in source_names(child)]


def leaves(node):
    if is_source(node):
        yield node
    for child in node.children:
        yield from leaves(child)


@given(streams(max_depth=3, modes=ENDING_MODES), seeds())
def test_every_item_names_its_source_and_position(plan, seed):
    names = source_names(plan)
    assert len(names) == len(set(names))
    positions = collections.defaultdict(set)
    for item in combinators.iterate(plan, seed=seed, max_iter=2000):
        name, position = origin(item)
        assert name in names
        positions[name].add(position)
    for plan_leaf in leaves(plan):
        if isinstance(plan_leaf, Source) and plan_leaf.fn is labelled:
            assert positions[plan_leaf.args[0]] <= set(range(plan_leaf.args[1]))


@given(streams(max_depth=2, prefix="a", modes=ENDING_MODES), streams(max_depth=2, prefix="b", modes=ENDING_MODES))
def test_prefixes_keep_names_apart(a, b):
    assert not set(source_names(a)) & set(source_names(b))
    assert all(name.startswith("a") for name in source_names(a))


@given(streams(max_depth=3, modes=ENDING_MODES), seeds())
def test_plans_pickle_and_give_the_same_items(plan, seed):
    for dumps in (pickle.dumps, cloudpickle.dumps):
        copy = pickle.loads(dumps(plan))
        assert copy == plan
        assert list(combinators.iterate(copy, seed=seed, max_iter=2000)) == list(combinators.iterate(plan, seed=seed, max_iter=2000))


@given(streams(max_depth=2, finite=False, modes=ENDING_MODES))
def test_infinite_plans_are_allowed_when_asked(plan):
    assert len(list(plan.take(20))) <= 20


@given(streams(max_depth=2, source_kinds=["items"], transform_kinds=[], modes=["exhaustive"]))
def test_restricted_plans_use_only_what_was_asked(plan):
    for node in leaves(plan):
        assert isinstance(node, FromIterable)
    stack = [plan]
    while stack:
        node = stack.pop()
        assert not isinstance(node, Apply) or (node is plan and [type(t).__name__ for t in node.transforms] == ["Take"])
        assert not isinstance(node, Mix) or node.mode == "exhaustive"
        stack.extend(node.children)


@given(sources("z", kinds=["infinite", "infinite_rng"]), seeds())
def test_infinite_sources_count_forever(source, seed):
    assert is_infinite_source(source)
    assert [origin(x) for x in combinators.iterate(source.take(4), seed=seed)] == [("z", i) for i in range(4)]


@given(sources("r", kinds=["rng"], max_size=5), seeds())
def test_rng_sources_draw_from_the_run_seed(source, seed):
    first = list(combinators.iterate(source, seed=seed))
    assert first == list(combinators.iterate(source, seed=seed))
    assert all(len(item) == 3 for item in first)


@given(st.integers(1, 5).flatmap(lambda n: st.tuples(st.just(n), weights(n))))
def test_weights_are_accepted_by_mix(n_and_weights):
    n, w = n_and_weights
    assert len(w) == n
    node = combinators.mix(*[combinators.from_iterable("x")] * max(n, 2), weights=w * 2 if n == 1 else w)
    assert abs(node.probabilities.sum() - 1) < 1e-9


@given(transforms())
def test_transforms_keep_items_identifiable(transform):
    items = list(combinators.iterate(combinators.stream(labelled, "t", 6) >> transform, seed=0))
    assert all(origin(item)[0] == "t" for item in items)


def test_plans_shrink_to_a_single_small_source():
    quick = settings(max_examples=500, database=None, suppress_health_check=list(HealthCheck), derandomize=True)
    plan = find(streams(max_depth=3, modes=ENDING_MODES), lambda s: len(list(s)) >= 2, settings=quick)
    assert is_source(plan), plan
    assert len(list(plan)) == 2, plan
    mixed = find(streams(max_depth=3, modes=ENDING_MODES), lambda s: any(isinstance(n, Mix) for n in _nodes(s)), settings=quick)
    # a mix of one stream is that stream unless it has a budget: the smallest mix has one source and a rate
    assert isinstance(mixed, Mix) and len(mixed.streams) == 1 and is_source(mixed.streams[0]), mixed
    assert mixed.rate is not None and mixed.streams[0] == combinators.from_iterable([]), mixed


def _nodes(node):
    yield node
    for child in node.children:
        yield from _nodes(child)


def test_bad_arguments_are_named():
    with pytest.raises(InvalidArgument, match="unknown source kind 'files'"):
        sources(kinds=["files"])
    with pytest.raises(InvalidArgument, match="unknown transform kind 'zip'"):
        streams(transform_kinds=["zip"])
    with pytest.raises(InvalidArgument, match="unknown mix mode 'greedy'"):
        streams(modes=["greedy"])
    with pytest.raises(InvalidArgument, match="min_children <= max_children"):
        streams(min_children=3, max_children=2)
    with pytest.raises(InvalidArgument, match="max_depth must be an integer >= 0, got -1"):
        streams(max_depth=-1)
    with pytest.raises(InvalidArgument, match="weights\\(\\) n"):
        weights(0)
    with pytest.raises(InvalidArgument, match="unknown ending mode 'with_replacement'"):
        ending_plans(modes=["with_replacement"])
    assert set(SOURCE_KINDS) >= {"infinite"} and "map" in TRANSFORM_KINDS and counting("a") is not None


#: a few hundred draws, no shrinking: for checking what a strategy draws at all
SURVEY = settings(max_examples=300, database=None, suppress_health_check=list(HealthCheck), derandomize=True, deadline=None)


def survey(strategy, **kinds):
    """Which of the predicates ``kinds`` (name -> predicate) some drawn value satisfies."""
    seen = set()

    @SURVEY
    @given(strategy)
    def look(value):
        seen.update(name for name, holds in kinds.items() if holds(value))

    look()
    return seen


def test_weights_reach_the_edges_of_float64():
    values = lambda w: [float(v) for v in w]  # noqa: E731
    seen = survey(
        weights(3),
        overflowing=lambda w: sum(values(w)) == float("inf"),  # a naive sum overflows
        subnormal=lambda w: 0 < max(values(w)) < 2.2250738585072014e-308,
        mixed=lambda w: max(values(w)) > 1e300 and 0 < min(values(w)) < 1e-300,
    )
    assert seen == {"overflowing", "subnormal", "mixed"}


@given(weights(3, extreme=False))
def test_plain_weights_stay_between_0_and_10(w):
    assert all(0 <= float(v) <= 10 for v in w) and any(float(v) > 0 for v in w)


@given(streams(max_depth=3))
def test_mixes_draw_a_rate_only_with_a_working_set(plan):
    assert all(node.n_active is not None for node in _nodes(plan) if isinstance(node, Mix) and node.rate is not None)


def test_streams_draw_empty_chains_and_budgets():
    seen = survey(
        streams(max_depth=2),
        empty_chain=lambda s: any(isinstance(n, Chain) and not n.streams for n in _nodes(s)),
        budget=lambda s: any(isinstance(n, Mix) and n.rate is not None and len(n.streams) > 1 for n in _nodes(s)),
    )
    assert seen == {"empty_chain", "budget"}
    assert list(combinators.chain()) == []


@given(streams(max_depth=2, empty_chains=False))
def test_empty_chains_can_be_left_out(plan):
    assert not any(isinstance(n, Chain) and not n.streams for n in _nodes(plan))


@given(ending_plans(max_depth=3), seeds())
def test_ending_plans_end_by_themselves(plan, seed):
    for node in _nodes(plan):
        assert not is_infinite_source(node)
        assert not (isinstance(node, Chain) and node.repeat)
        assert not isinstance(node, RoundRobin) or node.mode == "exhaustive"
        assert not isinstance(node, Mix) or node.mode in ENDING_MODES
    assert len(list(combinators.iterate(plan, seed=seed, max_iter=20_000))) < 20_000


def test_ending_plans_draw_budgets_in_both_ending_modes():
    budgets = {mode: lambda s, mode=mode: any(isinstance(n, Mix) and n.rate is not None and n.mode == mode for n in _nodes(s))
               for mode in ENDING_MODES}
    assert survey(ending_plans(max_depth=1), **budgets) == set(ENDING_MODES)
