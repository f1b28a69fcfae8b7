"""The block path never changes the items: array sources and generator sources agree.

A mix of ``from_arrays(a)`` sources runs on the block path (decisions as index
arrays, rows gathered in blocks, batches as slices); a mix of ``stream(fn)``
sources yielding the same rows runs item by item. For the same seed they must
give identical items and batches (values, dtypes, shapes, types, order), in
every mode, dist and working-set setting, under the transforms and
combinators around them.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import combinators as c
from combinators.plan.block_path import block_schema


def rows_of(data):
    """The rows of an array (or dict rows of a dict of arrays), as `from_arrays` yields them."""
    if isinstance(data, dict):
        n = len(next(iter(data.values())))
        for i in range(n):
            yield {key: value[i] for key, value in data.items()}
    else:
        yield from iter(data)


def doubled(item):
    with np.errstate(over="ignore"):  # uint8 rows wrap, on both paths alike
        return {k: v * 2 for k, v in item.items()} if isinstance(item, dict) else item * 2


def positive_first(item):
    value = next(iter(item.values())) if isinstance(item, dict) else item
    return bool(np.sum(value) > 0)


def same(a, b) -> bool:
    """Equal values, and equal types, dtypes and shapes, all the way down."""
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, (np.ndarray, np.generic)):
        return a.dtype == b.dtype and np.shape(a) == np.shape(b) and np.array_equal(a, b)
    return a == b


@st.composite
def datasets(draw):
    """A few arrays (or dicts of arrays) with one schema, some possibly empty."""
    dtype = draw(st.sampled_from([np.float32, np.int64, np.uint8, np.bool_]))
    shape = draw(st.sampled_from([(), (2,), (2, 3)]))
    as_dict = draw(st.booleans())
    lengths = draw(st.lists(st.integers(0, 9), min_size=1, max_size=4))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        x = (rng.normal(size=(n, *shape)) * 5).astype(dtype)
        out.append({"x": x, "label": np.full(n, len(out), dtype=np.int64)} if as_dict else x)
    return out


mix_options = st.fixed_dictionaries({
    "n_active": st.sampled_from([None, 1, 2, 3]),
    "rate": st.sampled_from([None, 1, 2.5, 4]),
    "mode": st.sampled_from(["with_replacement", "single_active", "exhaustive", "first_exhausted"]),
    "dist": st.sampled_from(["constant", "poisson", "binomial"]),
    "prune_empty": st.booleans(),
})

wrappers = st.sampled_from([
    lambda m, o: m,
    lambda m, o: m.take(11),
    lambda m, o: c.chain(m.take(5), o, m.take(3)),
    lambda m, o: c.chain(m.take(4), m.take(6), cycle=True),
    lambda m, o: c.round_robin(m.take(6), o, mode="cycle"),
    lambda m, o: m.take(7).cycle(),
    lambda m, o: m >> c.shuffle(3),
    lambda m, o: m >> c.map(doubled),
    lambda m, o: m.take(30) >> c.filter(positive_first),  # a filter over an endless mix may never yield
    lambda m, o: c.mix(m, o, weights=(2, 1)),
    # the block path around any block plan: lone sources, cycles, takes, chains of them
    lambda m, o: o,
    lambda m, o: o.cycle(),
    lambda m, o: o.take(5).cycle(),
    lambda m, o: m.cycle(),
    lambda m, o: c.chain(m, m).take(20),
    lambda m, o: c.chain(m.take(9), o.take(2), cycle=True).take(25),
    # nested mixes and mixes of cycled sources, over working sets
    lambda m, o: c.mix(m.cycle(), o.cycle(), n_active=1, rate=3, weights=(1, 2)),
    lambda m, o: c.mix(m.take(8), c.mix(o, m), o.take(3).cycle(), weights=(3, 1, 2), mode="exhaustive"),
    lambda m, o: c.mix(o.cycle(), c.mix(m, o, n_active=1, rate=2, mode="single_active"), n_active=1, rate=4),
    # block and per-item parts in one plan
    lambda m, o: c.mix(m, o >> c.map(doubled), weights=(1, 1)),
    lambda m, o: c.chain(m.take(5), o >> c.map(doubled), o.take(4)),
    # a batched map: whole blocks on the block path, blocks of one row elsewhere
    lambda m, o: m >> c.map(doubled, batched=True),
    lambda m, o: c.mix(m >> c.shuffle(4) >> c.map(doubled, batched=True), o.cycle()),
])

ends = st.sampled_from([
    lambda s: s,
    lambda s: s >> c.batch(4),
    lambda s: s >> c.batch(3, partial=True),
    lambda s: s >> c.take(13) >> c.batch(5, partial=True),
    lambda s: s >> c.batch(2) >> c.map(doubled),
    lambda s: s.take(17) >> c.batch(4),
    lambda s: s.take(10).cycle() >> c.batch(3),
    lambda s: s >> c.shuffle(5) >> c.map(doubled, batched=True) >> c.batch(2, partial=True),
    # a filter on blocks (over a bounded stream: a filter over an endless mix may never yield)
    lambda s: s.take(40) >> c.filter(positive_first) >> c.batch(3, partial=True),
])


def mixed(source, datas, weights, options):
    return c.mix(*[source(d) for d in datas], weights=weights[: len(datas)], **options)


def plan(source, datas, weights, options, wrap, end):
    return end(wrap(mixed(source, datas, weights, options), source(datas[0])))


@settings(max_examples=150, deadline=None)
@given(datasets(), st.lists(st.integers(1, 5), min_size=4, max_size=4), mix_options, wrappers, ends, st.integers(0, 99))
def test_array_sources_and_generator_sources_give_identical_items(datas, weights, options, wrap, end, seed):
    if options["rate"] is not None and options["rate"] < 1 and options["dist"] != "constant":
        options["rate"] = 1
    if options["n_active"] is None:
        options["rate"] = None  # a budget needs a working set
    blocks = plan(c.from_arrays, datas, weights, options, wrap, end)
    items = plan(lambda d: c.stream(rows_of, d), datas, weights, options, wrap, end)
    array_mix = mixed(c.from_arrays, datas, weights, options)
    assert block_schema(array_mix) is not None or isinstance(array_mix, c.plan.RowSource)
    got = list(c.iterate(blocks, seed=seed, max_iter=60))
    expected = list(c.iterate(items, seed=seed, max_iter=60))
    assert len(got) == len(expected)
    for position, (a, b) in enumerate(zip(got, expected)):
        assert same(a, b), (position, a, b)
