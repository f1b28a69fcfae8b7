"""Every parallel executor yields exactly the in-process items, for random plans and seeds."""

from __future__ import annotations

import itertools
import sys
from unittest import mock

import cloudpickle
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import combinators as c
from combinators.execution.remote.processes import Processes
from combinators.execution.remote.ray import Ray
from combinators.execution.remote.session import RemoteSession
from combinators.execution.remote.zmq import ZMQ


def counted(name, n):
    for i in range(n):
        yield (name, i)


def drawn(name, n, rng):
    """A source with randomness: numpy arrays whose values come from the run's seed."""
    for i in range(n):
        yield {"name": name, "i": i, "x": rng.normal(size=int(rng.integers(1, 4))).astype(np.float32)}


def add_noise(item, rng):
    return (item, int(rng.integers(100)))


_names = itertools.count()


@st.composite
def sources(draw):
    name, n = f"s{next(_names)}", draw(st.integers(0, 6))
    if draw(st.booleans()):
        return c.stream(drawn, name, n)
    return c.stream(counted, name, n)


transforms = st.sampled_from(
    [c.take(3), c.batch(2, partial=True), c.shuffle(3), c.map(add_noise), c.filter(bool), c.cache(2)]
)


def _combinations(children):
    many = st.lists(children, min_size=1, max_size=3)
    mixes = st.tuples(
        many,
        st.lists(st.integers(1, 4), min_size=3, max_size=3),
        st.sampled_from([None, 1, 2]),
        st.sampled_from([None, 2.0]),
        st.sampled_from(["exhaustive", "first_exhausted", "with_replacement", "single_active"]),
    ).map(lambda a: c.mix(*a[0], weights=a[1][: len(a[0])], n_active=a[2], rate=a[3] if a[2] else None, mode=a[4]))
    return st.one_of(
        many.map(lambda s: c.chain(*s)),
        st.tuples(many, st.sampled_from(["exhaustive", "cycle", "permuted_cycle"])).map(
            lambda a: c.round_robin(*a[0], mode=a[1])
        ),
        mixes,
        st.tuples(children, transforms).map(lambda a: a[0] >> a[1]),
    )


plans = st.recursive(sources(), _combinations, max_leaves=6)

executors = st.sampled_from([Processes(workers=1), Processes(workers=2), ZMQ(workers=1), ZMQ(workers=2)])


def canonical(value):
    """A comparable form of an item: arrays by dtype, shape and bytes."""
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, dict):
        return ("dict", tuple((k, canonical(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(canonical(v) for v in value))
    return (type(value).__name__, value)


def outcome(plan, seed, executor):
    """The first items (infinite plans are cut at 40) as canonical values, or the error's type."""
    try:
        with c.iterate(plan, seed=seed, executor=executor, max_iter=40) as run:
            return [canonical(item) for item in run]
    except c.CombinatorsError as error:
        return type(error).__name__


@given(plans, st.integers(0, 2**32 - 1), executors)
def test_parallel_executors_agree_with_in_process(plan, seed, executor):
    assert outcome(plan, seed, executor) == outcome(plan, seed, "inprocess")


def _probe(items, seconds):
    assert items >= 0 and seconds >= 0


@given(
    plans, st.integers(0, 2**32 - 1), st.lists(st.sampled_from([False, True, _probe]), min_size=1, max_size=8),
    st.lists(st.booleans(), min_size=1, max_size=8), st.sampled_from([1, 2]), st.sampled_from([1, 2, 1024]),
)
def test_where_each_leaf_activation_runs_never_changes_the_items(plan, seed, placements, moves, workers, prefetch):
    """Leaf activations run in a worker, in the consumer or in the consumer timed by a probe, in any pattern,
    switching mid-run (as `RemoteSession.runs_inline` decides from measured costs), and those in workers move
    to the consumer after any message (as `RemoteSession.moves_inline` decides): the items are the in-process
    ones. A small ``prefetch`` (credit window) makes activations move after a few of their items."""
    placement, move = itertools.cycle(placements), itertools.cycle(moves)
    with mock.patch.object(RemoteSession, "runs_inline", lambda session, leaf_plan: next(placement)), \
            mock.patch.object(RemoteSession, "moves_inline", lambda session, number: next(move)):
        placed = outcome(plan, seed, Processes(workers=workers, prefetch=prefetch))
    assert placed == outcome(plan, seed, "inprocess")


@pytest.fixture(scope="module")
def ray_executors(local_ray):
    """Ray executors on the session's local Ray; this module's sources travel by value (Ray's
    workers cannot import a test module)."""
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield [Ray(workers=1), Ray(workers=2)]
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


# each example creates its run's actors (about a second each here), so Ray gets a quarter of the examples
@settings(max_examples=max(4, settings.default.max_examples // 4))
@given(plans, st.integers(0, 2**32 - 1), st.sampled_from([1, 2]))
def test_ray_agrees_with_in_process(ray_executors, plan, seed, workers):
    assert outcome(plan, seed, ray_executors[workers - 1]) == outcome(plan, seed, "inprocess")


@pytest.fixture(scope="module")
def npz_shards(tmp_path_factory):
    """Six compressed ``.npz`` shards of ``{"x": float32 (2,), "y": int64}`` rows, 0 to 9 rows each."""
    folder, rng = tmp_path_factory.mktemp("npz"), np.random.default_rng(3)
    paths = []
    for k, n in enumerate([5, 0, 9, 3, 7, 1]):
        paths.append(str(folder / f"s{k}.npz"))
        np.savez_compressed(paths[-1], x=rng.normal(size=(n, 2)).astype(np.float32), y=np.arange(n) + 100 * k)
    return paths


shard_mix_options = st.fixed_dictionaries({
    "n_active": st.sampled_from([None, 1, 2]), "rate": st.sampled_from([None, 2.0, 5.0]),
    "mode": st.sampled_from(["with_replacement", "single_active", "exhaustive", "first_exhausted"]),
    "dist": st.sampled_from(["constant", "poisson", "binomial"]),
})

#: how a block mix holds shard k: alone, ``.cycle()``d, or chained with the next (cycled or not): the chains are
#: read at random (`ChainRows`), each of their shards placed as a lone one is
shard_children = [
    lambda paths, k: c.from_npz(paths[k]),
    lambda paths, k: c.from_npz(paths[k]).cycle(),
    lambda paths, k: c.chain(c.from_npz(paths[k]), c.from_npz(paths[(k + 1) % len(paths)])),
    lambda paths, k: c.chain(c.from_npz(paths[k]), c.from_npz(paths[(k + 1) % len(paths)]), cycle=True),
]

shard_wrappers = st.sampled_from([
    lambda m, o: m,
    lambda m, o: m.take(11),
    lambda m, o: c.chain(m.take(5), o, m.take(3)),
    lambda m, o: m.take(7).cycle(),
    lambda m, o: m >> c.shuffle(3),
    lambda m, o: c.mix(m, o, weights=(2, 1)),
    lambda m, o: c.mix(m, o.cycle(), n_active=1, rate=3),
])


@settings(max_examples=max(20, settings.default.max_examples // 2), deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.sampled_from(shard_children)), min_size=1, max_size=4),
    shard_mix_options, shard_wrappers, st.booleans(), st.integers(0, 2**32 - 1),
    st.lists(st.sampled_from([False, True, _probe]), min_size=1, max_size=6), st.sampled_from([1, 2]),
    st.sampled_from([1, 1024]), st.integers(0, 30),
)
def test_shard_mixes_read_in_workers_agree_with_in_process_and_resume(
    npz_shards, chosen, options, wrap, batched, seed, placements, workers, prefetch, stop,
):
    """A block mix of ``.npz`` shards whose row sources are read in workers, in the consumer or under a probe,
    in any pattern (as measured costs decide): the in-process items; and a state taken under `Processes`
    after ``stop`` items resumes, in process, with the in-process items after them."""
    if options["n_active"] is None:
        options["rate"] = None
    m = c.mix(*[child(npz_shards, k) for k, child in chosen], **options)
    plan = wrap(m, c.from_npz(npz_shards[2]))
    plan = plan >> c.batch(3, partial=True) if batched else plan
    expected = outcome(plan, seed, "inprocess")
    placement = itertools.cycle(placements)
    with mock.patch.object(RemoteSession, "runs_inline", lambda session, leaf_plan: next(placement)):
        assert outcome(plan, seed, Processes(workers=workers, prefetch=prefetch)) == expected
        with c.iterate(plan, seed=seed, executor=Processes(workers=workers, prefetch=prefetch)) as run:
            first = [canonical(item) for item in itertools.islice(run, min(stop, len(expected)))]
            state = run.state()
    rest = [canonical(item) for item in c.iterate(plan, resume=state, max_iter=40 - len(first))]
    assert first + rest == expected
