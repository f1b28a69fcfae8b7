"""Block mixes over every child shape a user writes: the items of the per-item path, resumed at every cut.

A shape is drawn once and built twice: over ``from_arrays`` sources (the block
path: row sources read at random, chains of them as `ChainRows`, the runs of
a block gathered once per activation, `DeferredGather`) and over generator
sources yielding the same rows (the per-item path). Children of a mix are
sources, ``.cycle()``d sources, chains of sources (cycled or not, empty
sources inside), ``take`` of them, named sources, and mixes of them (each
inner mix on its own block path); mixes in every mode, with and without
``n_active`` and ``rate``, every dist, weights on a schedule. Checked: the
two paths give identical items; a block run cut at every item resumes to the
uninterrupted run; a data-parallel rank gets its share of the single-process
sequence and its state resumes on one process; each mix's stats (and its
segments') count the same items on both paths after each of a few cuts; and,
built over real ``from_npz`` files, the shapes give the in-memory items under
`Processes` and `ZMQ` (shards read in workers, or placed by measured costs),
cut and resumed there or in process.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import combinators as c
from combinators.execution.remote.processes import Processes
from combinators.execution.remote.zmq import ZMQ
from test_block_path import same  # properties/ is on sys.path
from test_resume_continues import Lent  # a session lent to each run, placing as its own does

def rows_of(data):
    if isinstance(data, dict):
        for i in range(len(data["x"])):
            yield {key: value[i] for key, value in data.items()}
    else:
        yield from iter(data)


@st.composite
def shapes(draw, depth=2):
    """A shape: ("src", i) | ("cycle", s) | ("chain", [s], cycle) | ("take", s, k) | ("named", s) | ("mix", ...)."""
    kinds = ["src", "src", "cycle", "chain", "take", "named"] + (["mix"] if depth > 0 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "src":
        return ("src", draw(st.integers(0, 3)))
    if kind == "cycle":
        return ("cycle", draw(shapes(depth=0)))
    if kind == "chain":
        parts = draw(st.lists(st.tuples(st.just("src"), st.integers(0, 3)), min_size=0, max_size=3))
        return ("chain", parts, draw(st.booleans()))
    if kind == "take":
        return ("take", draw(shapes(depth=0)), draw(st.integers(0, 12)))
    if kind == "named":
        return ("named", ("src", draw(st.integers(0, 3))))
    return draw(mixes(depth - 1))


@st.composite
def mixes(draw, depth=1):
    children = draw(st.lists(shapes(depth=depth), min_size=1, max_size=4))
    n = len(children)
    w = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n).filter(any))
    if draw(st.integers(0, 4)) == 0:
        later = [x if x else 0 for x in draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))]
        later = [b if a else 0 for a, b in zip(w, later)]  # the zero pattern never changes
        w = ("schedule", tuple(w), draw(st.integers(1, 30)), tuple(later))
    n_active = draw(st.sampled_from([None, 1, 2, 3]))
    rate = None if n_active is None else draw(st.sampled_from([None, 1, 2.5, 4]))
    options = {
        "n_active": n_active, "rate": rate,
        "mode": draw(st.sampled_from(["with_replacement", "single_active", "exhaustive", "first_exhausted"])),
        "dist": draw(st.sampled_from(["constant", "poisson", "binomial"])),
        "prune_empty": draw(st.booleans()),
    }
    return ("mix", children, w, options)


def build(shape, leaf):
    kind = shape[0]
    if kind == "src":
        return leaf(shape[1])
    if kind == "cycle":
        return build(shape[1], leaf).cycle()
    if kind == "chain":
        return c.chain(*[build(s, leaf) for s in shape[1]], cycle=shape[2])
    if kind == "take":
        return build(shape[1], leaf).take(shape[2])
    if kind == "named":
        return build(shape[1], leaf).named("n")
    _, children, w, options = shape
    if isinstance(w, tuple) and w[0] == "schedule":
        w = c.schedule({0: w[1], w[2]: w[3]})
    return c.mix(*[build(s, leaf) for s in children], weights=w, **options)


@st.composite
def datasets(draw):
    as_dict = draw(st.booleans())
    longest = draw(st.sampled_from([9, 9, 9, 150]))  # long ones fill blocks (64 rows, then 128) and long runs
    lengths = draw(st.lists(st.integers(0, longest), min_size=4, max_size=4))
    k = draw(st.sampled_from([None, None, 1, 3]))  # rows of k sub-rows each (for unbatch), or scalars
    out = []
    for i, n in enumerate(lengths):
        x = np.arange(100 * i, 100 * i + n * (k or 1), dtype=np.int64)
        x = x if k is None else x.reshape(n, k)
        out.append({"x": x, "y": (x * 0.5).astype(np.float32)} if as_dict else x)
    return out, 40 if longest < 100 else 300


def kept(m):
    """A deterministic predicate on a row (or a sub-row): its first ``x`` modulo 100, modulo ``m``, is not
    ``m - 1`` (so the first row of every source is kept: an endless mix never starves)."""
    def keep(row):
        value = np.asarray(row["x"] if isinstance(row, dict) else row).reshape(-1)
        return value.size == 0 or int(value[0]) % 100 % m != m - 1
    return keep


ENDS = [
    lambda s, m: s,
    lambda s, m: s >> c.batch(3),
    lambda s, m: s >> c.batch(4, partial=True),
    lambda s, m: s.take(15) >> c.batch(2, partial=True),
    lambda s, m: s >> c.shuffle(3),
    # unbatch and filter on blocks (before a batch, a take, a shuffle; after a take)
    lambda s, m: s >> c.filter(kept(m)),
    lambda s, m: s >> c.filter(kept(m)) >> c.batch(4, partial=True),
    lambda s, m: s.take(15) >> c.filter(kept(m)) >> c.take(7) >> c.batch(2, partial=True),
    lambda s, m: s >> c.filter(kept(m)) >> c.shuffle(3) >> c.batch(2),
    lambda s, m: s >> c.unbatch(),
    lambda s, m: s >> c.unbatch() >> c.batch(3),
    lambda s, m: s.take(9) >> c.unbatch() >> c.filter(kept(m)) >> c.take(20) >> c.batch(3, partial=True),
    lambda s, m: s >> c.filter(kept(m)) >> c.unbatch() >> c.batch(5),
]
#: the ends whose transforms read their input a block ahead and whose mix stats count it (an unbatch or a filter
#: on blocks; a block shuffle's stats count the rows its per-item twin pulls)
AHEAD = frozenset(range(5, len(ENDS)))
#: the ends without unbatch (rows of any shape)
ANY_ROWS = [i for i in range(len(ENDS)) if i < 9]


@st.composite
def cases(draw):
    depth = draw(st.sampled_from([0, 1, 1, 2]))  # 0: a lone source, cycled, chained, taken or named
    shape = draw(shapes(depth=0) if depth == 0 else mixes(depth=depth))
    datas, limit = draw(datasets())
    end = draw(st.sampled_from(range(len(ENDS))))
    return shape, datas, (end, draw(st.integers(2, 4))), limit


def plans(case):
    shape, datas, (end, m), _ = case
    blocks = ENDS[end](build(shape, lambda i: c.from_arrays(datas[i])), m)
    items = ENDS[end](build(shape, lambda i: c.stream(rows_of, datas[i])), m)
    return blocks, items


def listed(plan, seed, limit, **kwargs):
    kwargs = kwargs if seed is None else {"seed": seed, **kwargs}
    with c.iterate(plan, max_iter=limit, **kwargs) as run:
        return list(run)


def outcome(plan, seed, limit):
    """The items, or the message of the `DataError` the run raised (an unbatch of rows without a leading axis)."""
    try:
        return listed(plan, seed, limit)
    except c.errors.DataError as error:
        return str(error)


def resumed_at(plan, seed, k, limit):
    with c.iterate(plan, seed=seed) as run:
        head = list(itertools.islice(run, k))
        state = json.loads(json.dumps(run.state()))
    with c.iterate(plan, resume=state, max_iter=limit - k) as rest:
        return head + list(rest)


def assert_same(got, expected):
    assert len(got) == len(expected), (len(got), len(expected))
    for position, (a, b) in enumerate(zip(got, expected)):
        assert same(a, b), (position, a, b)


@settings(max_examples=min(20, settings.default.max_examples), deadline=None)
@given(cases(), st.integers(0, 99))
def test_block_and_per_item_paths_agree_and_resume_at_every_cut(case, seed):
    blocks, items = plans(case)
    limit = case[-1]
    expected = outcome(items, seed, limit)
    got = outcome(blocks, seed, limit)
    if isinstance(expected, str):
        assert got == expected
        return
    assert_same(got, expected)
    for k in cuts(len(got)):
        assert_same(resumed_at(blocks, seed, k, limit), got)


def cuts(n):
    """Every cut of a short run; of a long one, a spread and those around the first blocks' ends."""
    if n <= 40:
        return range(n + 1)
    return sorted({*range(0, n + 1, 41), 1, 63, 64, 65, 127, 128, 129, n - 1, n} & set(range(n + 1)))


@settings(max_examples=min(15, settings.default.max_examples), deadline=None)
@given(cases(), st.integers(0, 99), st.integers(2, 3), st.data())
def test_a_rank_of_a_block_mix_gets_its_share_and_resumes_on_another_world_size(case, seed, world, data):
    blocks, _ = plans(case)
    limit = min(case[-1], 60)
    assume(isinstance(outcome(blocks, seed, limit), list))
    whole = listed(blocks, seed, limit)
    each = len(whole) // world
    rank = data.draw(st.integers(0, world - 1), label="rank")
    assert_same(listed(blocks, seed, each, rank=rank, world_size=world), whole[rank::world][:each])
    k = data.draw(st.integers(0, each), label="k")
    with c.iterate(blocks, seed=seed, rank=rank, world_size=world) as run:
        list(itertools.islice(run, k))
        state = json.loads(json.dumps(run.state()))
    with c.iterate(blocks, resume=state, max_iter=limit - k * world) as rest:
        assert_same(whole[: k * world] + list(rest), whole)



# ------------------------------------------------------------ from_npz shards under Processes and ZMQ


@pytest.fixture(scope="module")
def pools():
    opened = {"workers": Processes(workers=2, inline=False).open(), "placed": Processes(workers=1).open(),
              "zmq": ZMQ(workers=2, inline=False).open()}
    yield {name: Lent(name, session) for name, session in opened.items()}
    for session in opened.values():
        session.close()


@pytest.fixture(scope="module")
def shard_files(tmp_path_factory):
    """Four compressed ``.npz`` shards of ``{"x": int64, "y": float32 (2,)}`` rows (0 to 150 rows), and their
    arrays in memory."""
    folder = tmp_path_factory.mktemp("block-shapes")
    datas, paths = [], []
    for i, n in enumerate((7, 0, 150, 3)):
        x = np.arange(1000 * i, 1000 * i + n, dtype=np.int64)
        datas.append({"x": x, "y": np.stack([x * 0.5, -x], axis=1).astype(np.float32)})
        paths.append(str(folder / f"s{i}.npz"))
        np.savez_compressed(paths[-1], **datas[-1])
    return paths, datas


@pytest.mark.filterwarnings("ignore::combinators.errors.IdleExecutorWarning")  # a chain of shards is read here
@settings(max_examples=min(25, settings.default.max_examples), deadline=None)
@given(mixes(depth=1), st.sampled_from(ANY_ROWS), st.integers(2, 4), st.integers(0, 99), st.integers(0, 60),
       st.sampled_from(["workers", "placed", "zmq"]), st.booleans())
def test_npz_shards_read_in_workers_give_the_in_memory_items_and_resume_anywhere(
        pools, shard_files, shape, end, m, seed, cut, pool, resume_here):
    paths, datas = shard_files
    shards = ENDS[end](build(shape, lambda i: c.from_npz(paths[i])), m)
    memory = ENDS[end](build(shape, lambda i: c.from_arrays(datas[i])), m)
    expected = listed(memory, seed, 60)
    with c.iterate(shards, seed=seed, executor=pools[pool]) as run:
        head = list(itertools.islice(run, cut))
        state = json.loads(json.dumps(run.state()))
    rest = listed(shards, None, 60 - len(head), resume=state, executor="inprocess" if resume_here else pools[pool])
    assert_same(head + rest, expected)


def _stats_apart_on_main(shape):
    """Whether ``shape`` has a mix below a mix whose stats the two paths count apart on main too, for reasons of
    their own (left to the lead; both reproduce on ed3bc09): below a parent in an ending mode (a suspended
    activation re-opened afresh counts its replayed items: 39 items taken, 780 counted, on both paths, the
    per-item one replaying at once, the block one as it reads), or on a schedule below a parent that runs it
    in several slots at once (its segments' counts differ: ``[(0, [0, 1]), (1, [0, 39])]`` on the block path,
    ``[(0, [0, 5]), (1, [0, 34])]`` item by item, the same 40 items)."""
    if shape[0] != "mix":
        return False
    inner = [child for child in shape[1] if child[0] == "mix"]
    scheduled = any(isinstance(child[2], tuple) and child[2][0] == "schedule" for child in inner)
    apart = bool(inner) and (shape[3]["mode"] != "with_replacement" or scheduled)
    return apart or any(map(_stats_apart_on_main, shape[1]))


def stats_at(plan, seed, cuts_at):
    """Each mix's counts (and its segments' counts) after each of ``cuts_at`` items, and at the end."""
    out = []
    with c.iterate(plan, seed=seed, max_iter=max(cuts_at)) as run:
        for k in cuts_at:
            while run.items < k and next(run, None) is not None:
                pass
            out.append([(s.path, s.counts.tolist(), [(a, n.tolist()) for a, _, n in s.segments])
                        for s in run.stats() if s.counts.any()])  # a mix that gave nothing may not be listed
    return out


#: two activations of the inner mix run at once, in two slots of the outer working set (item by item, the stats
#: counted the running items of the latest one only)
_TWICE = ("mix", [("src", 0), ("mix", [("src", 0)], [1], {"n_active": 1, "rate": 1, "mode": "with_replacement",
                                                           "dist": "constant", "prune_empty": False})],
          [0, 1], {"n_active": 2, "rate": None, "mode": "with_replacement", "dist": "constant", "prune_empty": False})


@settings(max_examples=max(100, settings.default.max_examples), deadline=None)
@given(cases(), st.integers(0, 99))
@example((_TWICE, [np.arange(1)] * 4, (0, 2), 40), 0)
def test_mix_stats_on_the_block_path_count_the_items_handed_out_as_the_per_item_path(case, seed):
    assume(not _stats_apart_on_main(case[0]))
    if case[2][0] in AHEAD:  # an unbatch or a filter on blocks reads its input a block ahead: stats count blocks
        case = (*case[:2], (0, 2), case[3])
    blocks, items = plans(case)
    cuts_at = [1, 2, 5, 13, 40]
    assert stats_at(blocks, seed, cuts_at) == stats_at(items, seed, cuts_at)
