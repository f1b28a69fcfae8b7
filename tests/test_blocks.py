"""The block path: array mixes gathered in blocks, on every executor."""

from __future__ import annotations

import itertools

import attrs
import numpy as np
import pytest

import combinators as c
from combinators.plan.sources import OpenArrays, RowSource, row_schema
from combinators.plan.block_path import block_schema
from combinators.execution import collate
from combinators.execution.remote.processes import Processes


def _arrays(n_sources=4, length=50):
    rng = np.random.default_rng(0)
    return [
        {"x": rng.normal(size=(length + k, 3)).astype(np.float32), "y": np.full(length + k, k)}
        for k in range(n_sources)
    ]


def test_processes_agree_with_in_process_on_a_block_path_plan():
    plan = c.mix(*map(c.from_arrays, _arrays()), weights=(1, 2, 3, 4), n_active=2, rate=8) >> c.take(300) >> c.batch(16)
    assert block_schema(plan.stream) is not None
    local = list(c.iterate(plan, seed=5))
    with c.iterate(plan, seed=5, executor=Processes(workers=2)) as run:
        remote = list(run)
    assert len(local) == len(remote) == 18
    for a, b in zip(local, remote):
        assert a.keys() == b.keys()
        assert all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def test_batches_are_slices_with_the_rows_dtypes_and_shapes():
    arrays = _arrays()
    plan = c.mix(*map(c.from_arrays, arrays), mode="exhaustive") >> c.batch(32, partial=True)
    batches = list(c.iterate(plan, seed=1))
    assert [b["x"].shape[1:] for b in batches] == [(3,)] * len(batches)
    assert {b["x"].dtype for b in batches} == {np.dtype(np.float32)}
    total = sum(len(b["y"]) for b in batches)
    assert total == sum(len(a["y"]) for a in arrays)
    # exhaustive: every row once, each source's rows in order
    x = np.concatenate([b["x"] for b in batches])
    y = np.concatenate([b["y"] for b in batches])
    for k, a in enumerate(arrays):
        assert np.array_equal(x[y == k], a["x"])


def test_stats_of_a_finished_block_run_count_every_row():
    arrays = _arrays(3, 10)
    with c.iterate(c.mix(*map(c.from_arrays, arrays), mode="exhaustive"), seed=2) as run:
        n = len(list(run))
        (stats,) = run.stats()
    assert n == 10 + 11 + 12 and stats.counts.tolist() == [10, 11, 12]


def test_mixed_schemas_take_the_per_item_path():
    a, b = c.from_arrays(np.zeros(3, np.float32)), c.from_arrays(np.zeros(3, np.float64))
    assert block_schema(c.mix(a, b)) is None
    assert block_schema(c.mix(a, c.from_arrays(np.array(["x", "y"])))) is None
    items = list(c.iterate(c.mix(a, b, mode="exhaustive") >> c.batch(2), seed=0))
    assert len(items) == 3 and all(x.shape == (2,) for x in items)


def test_explain_marks_the_block_path_nodes_only():
    arrays = c.mix(*map(c.from_arrays, _arrays(2)), n_active=1, rate=3)
    text = c.explain(c.mix(arrays, c.stream(iter, [1.0]), arrays | arrays) >> c.batch(4))
    marked = [line for line in text.splitlines() if line.endswith("[block path]")]
    assert len(marked) == 4 and "mix n_active=1" in marked[0] and "chain" in marked[1]  # and its two mixes
    assert "[block path]" not in text.splitlines()[1]  # the outer mix has a generator child


def _digits(k):
    """A block-path mix of three row sources whose rows are 10 k + j (j: the source)."""
    return c.mix(*[c.from_arrays(np.full(500, 10 * k + j)) for j in range(3)], n_active=2, rate=50).named(f"digit {k}")


@pytest.mark.parametrize("taken", [1, 37, 2000])
def test_nested_block_mixes_count_the_items_their_parent_received_not_the_rows_they_decided(taken):
    # each inner mix decides a block of rows ahead; its parent takes 30 of them per activation and closes it:
    # the inner mix's stats counted every decided row ("digit 1" 772 items while its parent took 657)
    plan = c.mix(*[_digits(k) for k in range(3)], n_active=2, rate=30, dist="constant")
    with c.iterate(plan, seed=0) as run:
        items = [int(next(run)) for _ in range(taken)]
        stats = run.stats()
    top, inner = stats[0], stats[1:]
    assert top.counts.tolist() == [sum(x // 10 == k for x in items) for k in range(3)]
    for mix in inner:
        k = mix.path[-1]
        assert mix.counts.tolist() == [items.count(10 * k + j) for j in range(3)], (mix.label, taken)


def test_a_block_mix_read_row_by_row_counts_the_rows_handed_out():
    with c.iterate(_digits(0), seed=1) as run:
        items = [int(next(run)) for _ in range(5)]
        counts = run.stats()[0].counts.tolist()
    assert counts == [items.count(j) for j in range(3)]


def _batches_share_blocks(plan, seed=3):
    """Consecutive batches are slices of one gathered block (the block path), not stacked rows (a batch
    across two blocks is their concatenation)."""
    batches = list(c.iterate(plan, seed=seed, max_iter=6))
    return len(batches) == 6 and sum(b["x"].base is not None for b in batches) >= 4 and any(
        a["x"].base is b["x"].base for a, b in zip(batches, batches[1:]))


def test_a_lone_source_and_cycles_and_takes_around_block_plans_run_on_the_block_path():
    a, arrays = c.from_arrays(_arrays(1, 300)[0]), list(map(c.from_arrays, _arrays(3)))
    plans = [
        a >> c.batch(8),
        a.take(100) >> c.batch(8),
        c.mix(*arrays, n_active=2, rate=10).take(60).cycle() >> c.batch(8),
        c.chain(c.mix(*arrays).take(30), a, cycle=True) >> c.batch(8),
        c.mix(*[s.cycle() for s in arrays], weights=(1, 2, 3)) >> c.batch(8),
        c.mix(arrays[0], arrays[2].cycle(), arrays[1].take(9).cycle()) >> c.batch(8),
    ]
    for plan in plans:
        assert _batches_share_blocks(plan), c.explain(plan)
        assert c.explain(plan).splitlines()[1].endswith("[block path]"), c.explain(plan)


def test_a_mix_of_mixes_runs_each_inner_mix_on_its_own_block_path_and_the_outer_one_per_item():
    # a pulled inner mix would decide rows ahead of what its parent hands out, and count them in its stats
    arrays = list(map(c.from_arrays, _arrays(3)))
    plan = c.mix(arrays[0], c.mix(*arrays, n_active=1, rate=4), arrays[1].take(9).cycle()) >> c.batch(8)
    lines = c.explain(plan).splitlines()
    assert not lines[1].endswith("[block path]") and lines[3].endswith("[block path]"), c.explain(plan)
    assert c.plan.block_path.block_schema(plan.stream) is None


def test_explain_marks_a_row_source_only_where_it_is_read_in_blocks():
    a = c.from_arrays(_arrays(1)[0])
    lines = c.explain(c.mix(a, c.stream(iter, [1.0])) >> c.batch(2)).splitlines()
    assert not any(line.endswith("[block path]") for line in lines)  # a per-item mix reads it row by row
    lines = c.explain(a >> c.batch(2)).splitlines()
    assert lines[1].endswith("[block path]") and not lines[0].endswith("[block path]")


def test_a_chain_over_a_named_block_mix_runs_and_names_its_errors():
    a = c.from_arrays(np.arange(5))
    plan = c.chain(c.mix(a, a, mode="exhaustive").named("pair"), a)
    assert sorted(int(x) for x in c.iterate(plan, seed=0)) == sorted(list(range(5)) * 3)


def _plain(item):
    return {k: v.tolist() for k, v in item.items()} if isinstance(item, dict) else np.asarray(item).tolist()


def test_a_shuffle_on_blocks_gives_the_per_item_shuffle_and_resumes_at_every_item():
    import json

    arrays = _arrays(3, 40)
    plans = [
        (c.from_arrays(arrays[0]) >> c.shuffle(7), c.stream(lambda: iter(c.from_arrays(arrays[0]))) >> c.shuffle(7)),
        (c.mix(*map(c.from_arrays, arrays), n_active=2, rate=5).take(150) >> c.shuffle(16) >> c.batch(4),
         None),
        (c.chain(*map(c.from_arrays, arrays)) >> c.shuffle(500) >> c.batch(8, partial=True), None),
    ]
    for plan, per_item in plans:
        full = [_plain(x) for x in c.iterate(plan, seed=4)]
        assert full
        if per_item is not None:
            assert full == [_plain(x) for x in c.iterate(per_item, seed=4)]
        for k in range(0, len(full) + 1, 3):
            run = c.iterate(plan, seed=4)
            head = [_plain(next(run)) for _ in range(k)]
            state = json.loads(json.dumps(run.state()))
            run.close()
            assert k == 0 or "shuffle" in json.dumps(state)  # shuffled on blocks, not item by item
            assert head + [_plain(x) for x in c.iterate(plan, resume=state)] == full, k


def test_a_shuffle_state_on_blocks_whose_buffer_is_not_rows_is_refused():
    from combinators.execution.runstate import encode

    plan = c.from_arrays(np.arange(40)) >> c.shuffle(7)
    run = c.iterate(plan, seed=4)
    [next(run) for _ in range(5)]
    state = run.state()
    run.close()
    assert "shuffle" in state["root"]["apply"]
    for buffer, words in [([1, 2], "not a block of rows"), (np.arange(9), "at most 7"), ("x", "not a block")]:
        state["root"]["apply"]["shuffle"]["items"] = encode(buffer)
        with pytest.raises(c.ResumeError, match=words):
            c.iterate(plan, resume=state)


def test_a_batched_map_gets_whole_blocks_on_the_block_path_and_one_row_elsewhere():
    sizes = []

    def scaled(rows):
        sizes.append(len(rows["y"]))
        return {"x": rows["x"] * 2, "y": rows["y"]}

    a = c.from_arrays(_arrays(1, 300)[0])
    blocks = [_plain(b) for b in c.iterate(a >> c.map(scaled, batched=True) >> c.batch(8), seed=0)]
    assert max(sizes) > 8 and len(sizes) < 10  # a few calls, on blocks of many rows
    sizes.clear()
    per_item = c.stream(lambda: iter(a)) >> c.map(scaled, batched=True) >> c.batch(8)
    assert [_plain(b) for b in c.iterate(per_item, seed=0)] == blocks and set(sizes) == {1}


def test_a_batched_map_refuses_an_rng_and_a_result_of_other_rows():
    with pytest.raises(c.InvalidArgument, match="rng"):
        c.map(lambda rows, rng: rows, batched=True)
    with pytest.raises(c.DataError, match="returned 1 rows for a block of"):
        list(c.iterate(c.from_arrays(np.arange(5)) >> c.map(lambda rows: rows[:1], batched=True), seed=0))


def _rows_of(array):
    yield from array


@pytest.mark.parametrize("settings", [{}, {"n_active": 2, "rate": 7}, {"n_active": 2, "mode": "exhaustive"}])
def test_chains_of_row_sources_in_a_block_mix_are_read_at_random_and_give_the_per_item_items(settings):
    """A cycled source, a chain with an empty source inside, a cycled chain of empty sources: read as
    `ChainRows` by the block mix, with the items of the same plan over generator sources, and resumed
    exactly at every cut."""
    arrays = [np.arange(100 * i, 100 * i + n) for i, n in enumerate((5, 0, 7, 3))]

    def plan(block):
        leaf = c.from_arrays if block else (lambda a: c.stream(_rows_of, a))
        a, empty, b, d = map(leaf, arrays)
        return c.mix(a.cycle(), c.chain(b, empty, d), c.chain(empty, cycle=True), c.chain(d, a, cycle=True),
                     weights=(1, 2, 3, 2), **settings)

    assert block_schema(plan(True)) is not None
    whole = [int(x) for x in c.iterate(plan(True), seed=4, max_iter=120)]
    assert whole == [int(x) for x in c.iterate(plan(False), seed=4, max_iter=120)]
    for cut in (1, 9, 40, 77):
        run = c.iterate(plan(True), seed=4)
        head = [int(next(run)) for _ in range(cut)]
        rest = [int(x) for x in c.iterate(plan(True), resume=run.state(), max_iter=len(whole) - cut)]
        run.close()
        assert head + rest == whole, cut


_OPENED = itertools.count()


@attrs.frozen(eq=False, repr=False)
class _Logged(RowSource):
    """A row source whose activations log their reads in ``log``: (activation, start, stop)."""

    data: np.ndarray
    log: list

    @property
    def schema(self):
        return row_schema(self.data)

    def __len__(self):
        return len(self.data)

    def open(self):
        return _LoggedRows(OpenArrays(self.data, len(self.data)), self.log, next(_OPENED))


class _LoggedRows:
    def __init__(self, inner, log, number):
        self.inner, self.log, self.number = inner, log, number

    def __len__(self):
        return len(self.inner)

    def rows(self, start, stop):
        self.log.append((self.number, start, stop))
        return self.inner.rows(start, stop)

    def close(self):
        self.inner.close()


def test_a_working_set_that_changes_every_few_rows_reads_each_activation_once_per_block():
    """Runs of decisions last a few rows here; each activation is read once for all the runs of a block
    (its rows in them are consecutive), not once per run, with the items of the per-item path."""
    log: list = []
    arrays = [np.arange(1000 * i, 1000 * i + 500) for i in range(3)]
    plan = c.mix(*[_Logged(a, log) for a in arrays], n_active=2, rate=3) >> c.batch(50)
    items = [int(x) for batch in c.iterate(plan, seed=2, max_iter=8) for x in batch]
    twin = c.mix(*[c.stream(_rows_of, a) for a in arrays], n_active=2, rate=3) >> c.batch(50)
    assert items == [int(x) for batch in c.iterate(twin, seed=2, max_iter=8) for x in batch]
    reads: dict = {}
    for number, start, stop in log:
        reads.setdefault(number, []).append((start, stop))
    for spans in reads.values():  # each activation's reads follow one another, with no row read twice
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
    blocks = 8  # 400 rows: blocks of 64, 128, 256 rows at most, or of 32 runs (about 100 rows here)
    assert len(reads) > 100 and len(log) <= len(reads) + blocks, (len(log), len(reads))


@pytest.mark.parametrize("end", [
    lambda m: m >> c.batch(4),
    lambda m: m.take(7) >> c.batch(4),
    lambda m: m.take(7) >> c.batch(4, partial=True),
])
def test_a_block_mix_under_batch_or_take_counts_the_rows_taken_from_it_not_its_blocks(end):
    """The batch slices whole blocks of the mix; the stats count the rows it took, as item by item (a partial
    batch dropped at the end included), mid-run and at the end."""
    def plan(block):
        leaf = c.from_arrays if block else (lambda a: c.stream(_rows_of, a))
        return end(c.mix(leaf(np.arange(100)), leaf(np.arange(100, 200)), n_active=1, rate=3))

    def counts(block):
        with c.iterate(plan(block), seed=1, max_iter=20) as run:
            next(run)
            mid = [s.counts.tolist() for s in run.stats()]
            list(run)
            return mid, [s.counts.tolist() for s in run.stats()]

    assert counts(True) == counts(False)


@pytest.mark.parametrize("shape", [
    lambda m, s: m.take(5),
    lambda m, s: c.chain(m, s),
    lambda m, s: c.chain(s.take(3), m.take(40), s),
    lambda m, s: m.take(40).cycle(),
    lambda m, s: c.chain(m.take(9), s).cycle().take(70) >> c.batch(4),
    lambda m, s: c.mix(c.chain(m.take(9), s), s.take(6)),
    lambda m, s: c.round_robin(m.take(30), c.chain(s.take(2), m.take(8))),
    lambda m, s: m >> c.shuffle(5),
    lambda m, s: m.take(30) >> c.shuffle(7) >> c.batch(3),
    lambda m, s: c.chain(m.take(20), s.take(12)) >> c.shuffle(4),
])
def test_a_block_mix_read_through_a_chain_take_shuffle_or_parent_counts_the_rows_taken_from_it_not_its_blocks(shape):
    """A chain, a ``take``, a ``.cycle()``, a ``shuffle`` or a mix/round-robin parent that reads a block mix a
    block at a time: the mix's stats count the rows its reader passed on, as item by item (mid-run and at the
    end), not the whole blocks it gathered."""
    def plan(block):
        leaf = c.from_arrays if block else (lambda a: c.stream(_rows_of, a))
        inner = c.mix(leaf(np.arange(100)), leaf(np.arange(100, 200)))
        return shape(inner, leaf(np.arange(1000, 1050)))

    def counts(block):
        with c.iterate(plan(block), seed=1, max_iter=20) as run:
            mid = []
            for _ in range(3):
                next(run)
                mid.append(sorted((s.path, s.counts.tolist()) for s in run.stats()))
            list(run)
            return mid, sorted((s.path, s.counts.tolist()) for s in run.stats())

    assert counts(True) == counts(False)


# ------------------------------------------------------------ unbatch and filter on blocks


def _sub_rows(n_sources=3, length=120, k=4):
    """Sources whose rows hold ``k`` sub-rows each: ``{"x": float32 (k, 3), "y": int64 (k,)}``."""
    return [{"x": np.arange(s * 1000, s * 1000 + (length + s) * k * 3, dtype=np.float32).reshape(-1, k, 3),
             "y": np.arange(s * 1000, s * 1000 + (length + s) * k).reshape(-1, k)} for s in range(n_sources)]


def _twins(build, arrays):
    """``build`` over ``from_arrays`` sources (the block path) and over generator sources of the same rows."""
    return build([c.from_arrays(a) for a in arrays]), build([c.stream(_dict_rows, a) for a in arrays])


def _dict_rows(data):
    for i in range(len(data["y"])):
        yield {key: value[i] for key, value in data.items()}


def _odd_y(row):
    return int(np.asarray(row["y"]).reshape(-1)[0]) % 3 != 0


UNBATCH_FILTER_PLANS = [
    lambda s: s[0] >> c.unbatch() >> c.batch(8),
    lambda s: s[0].cycle() >> c.unbatch() >> c.batch(8),
    lambda s: c.mix(*s, weights=(1, 2, 3)) >> c.unbatch() >> c.batch(8),
    lambda s: c.mix(*s, n_active=2, rate=10) >> c.filter(_odd_y) >> c.batch(8),
    lambda s: s[1] >> c.filter(_odd_y) >> c.batch(8),
    lambda s: c.mix(*s).take(200) >> c.unbatch() >> c.filter(_odd_y) >> c.take(500) >> c.batch(8, partial=True),
]


@pytest.mark.parametrize("build", UNBATCH_FILTER_PLANS)
def test_unbatch_and_filter_run_on_blocks_with_the_per_item_items(build):
    blocks, items = _twins(build, _sub_rows())
    assert _batches_share_blocks(blocks), c.explain(blocks)  # slices of blocks: not stacked row by row
    expected = [_plain(b) for b in c.iterate(items, seed=3, max_iter=200)]
    assert [_plain(b) for b in c.iterate(blocks, seed=3, max_iter=200)] == expected and len(expected) >= 10


@pytest.mark.parametrize("build", [
    lambda s: s[0] >> c.unbatch(),
    lambda s: c.mix(*s, weights=(1, 2, 3), n_active=2, rate=7) >> c.unbatch(),
    lambda s: c.mix(*s, mode="exhaustive") >> c.filter(_odd_y) >> c.unbatch() >> c.batch(5),
    lambda s: s[2].take(70) >> c.filter(_odd_y) >> c.unbatch() >> c.take(150),
])
def test_unbatch_and_filter_on_blocks_resume_at_every_cut_inside_a_row_and_a_block(build, monkeypatch):
    import json

    from combinators.execution import apply

    splits = []
    monkeypatch.setattr(apply, "split", lambda batch: splits.append(1) or collate.split(batch))
    blocks, items = _twins(build, _sub_rows(length=40, k=3))
    full = [_plain(x) for x in c.iterate(blocks, seed=8, max_iter=300)]
    assert not splits  # unbatched on blocks, not item by item
    assert full == [_plain(x) for x in c.iterate(items, seed=8, max_iter=300)] and len(full) > 40
    for k in [*range(12), *range(12, len(full) + 1, 7)]:
        with c.iterate(blocks, seed=8) as run:
            head = [_plain(x) for x in itertools.islice(run, k)]
            state = json.loads(json.dumps(run.state()))
        with c.iterate(blocks, resume=state, max_iter=300 - k) as rest:
            assert head + [_plain(x) for x in rest] == full, k


def test_a_lone_source_unbatched_in_workers_resumes_inside_a_row():
    arrays = _sub_rows(1, 50, 3)
    plan = c.from_arrays(arrays[0]) >> c.unbatch() >> c.batch(4)
    full = [_plain(b) for b in c.iterate(plan, seed=0)]
    with c.iterate(plan, seed=0, executor=Processes(workers=1)) as run:
        head = [_plain(b) for b in itertools.islice(run, 7)]  # 28 sub-rows: inside row 9
        state = run.state()
    with c.iterate(plan, resume=state, executor=Processes(workers=1)) as rest:
        assert head + [_plain(b) for b in rest] == full and len(full) == 37


def test_filter_on_blocks_calls_its_predicate_on_the_rows_of_the_per_item_path():
    seen = {"blocks": [], "items": []}

    def noting(where):
        def keep(row):
            seen[where].append({k: (type(v), np.shape(v)) for k, v in row.items()})
            seen[where + " writeable"] = seen.get(where + " writeable", False) or row["x"].flags.writeable
            return int(row["y"]) % 2 == 0
        return keep

    data = {"x": np.arange(300 * 3, dtype=np.float32).reshape(300, 3), "y": np.arange(300)}
    blocks = c.from_arrays(data).cycle() >> c.filter(noting("blocks")) >> c.batch(16)
    items = c.stream(_dict_rows, data).cycle() >> c.filter(noting("items")) >> c.batch(16)
    got, expected = list(c.iterate(blocks, max_iter=30)), list(c.iterate(items, max_iter=30))
    assert _batches_share_blocks(blocks)  # filtered on blocks, the batches sliced
    assert [_plain(b) for b in got] == [_plain(b) for b in expected]
    assert seen["blocks"][:600] == seen["items"][:600]  # numpy scalars, row views
    assert seen["blocks"][0] == {"x": (np.ndarray, (3,)), "y": (np.int64, ())}
    assert not seen["blocks writeable"]  # read-only, as the rows a block path hands out
    assert all(b["x"].flags.writeable for b in got)  # the batches are the user's, as stacked ones are


def test_an_error_of_the_predicate_on_blocks_comes_after_the_items_of_the_rows_before_it():
    def picky(row):
        if int(row["y"]) == 117:
            raise ValueError("row 117")
        return int(row["y"]) % 2 == 0

    data = {"x": np.zeros((300, 2), dtype=np.float32), "y": np.arange(300)}
    for plan in (c.from_arrays(data) >> c.filter(picky) >> c.batch(8),
                 c.stream(_dict_rows, data) >> c.filter(picky) >> c.batch(8)):
        got = []
        with pytest.raises(ValueError, match="row 117"):
            for batch in c.iterate(plan):
                got.append(_plain(batch))
        assert len(got) == 7 and got[-1]["y"][-1] == 110  # 58 rows kept before row 117: 7 whole batches


def test_unbatch_on_blocks_of_rows_without_one_leading_length_raises_the_per_item_error():
    for data in ({"x": np.zeros((5, 3)), "y": np.arange(5)}, {"x": np.zeros((5, 3)), "y": np.zeros((5, 2))}):
        messages = []
        for plan in (c.mix(c.from_arrays(data), c.from_arrays(data)) >> c.unbatch() >> c.batch(2),
                     c.mix(c.stream(_dict_rows, data), c.stream(_dict_rows, data)) >> c.unbatch() >> c.batch(2)):
            with pytest.raises(c.DataError) as raised:
                list(c.iterate(plan, seed=0))
            messages.append(str(raised.value))
        assert messages[0] == messages[1] and "cannot unbatch" in messages[0]


def test_a_state_of_a_filter_over_a_block_mix_taken_item_by_item_still_resumes(monkeypatch):
    import json

    from combinators.execution import interpreter

    arrays = _sub_rows(3, 60, 2)
    plan = c.mix(*map(c.from_arrays, arrays), n_active=2, rate=9) >> c.filter(_odd_y) >> c.unbatch() >> c.batch(4)
    full = [_plain(b) for b in c.iterate(plan, seed=1, max_iter=80)]
    with monkeypatch.context() as patched:  # as a version that filtered and unbatched item by item
        patched.setattr(interpreter, "reshapes", lambda t: False)
        with c.iterate(plan, seed=1) as run:
            head = [_plain(b) for b in itertools.islice(run, 13)]
            state = json.loads(json.dumps(run.state()))
    assert "counts" not in state["root"]["apply"] and len(state["root"]["apply"]["cells"]) == 3
    with c.iterate(plan, resume=state, max_iter=80 - 13) as rest:
        assert head + [_plain(b) for b in rest] == full


def test_a_state_of_unbatch_on_blocks_whose_rows_are_before_its_mark_is_refused():
    from combinators.execution.statecheck import seal

    plan = c.mix(*map(c.from_arrays, _sub_rows(2, 30, 2))) >> c.unbatch() >> c.batch(4)
    with c.iterate(plan, seed=0) as run:
        list(itertools.islice(run, 40))
        state = run.state()
    assert state["root"]["apply"]["counts"][-1] > 0
    state["root"]["apply"]["rows"] = state["root"]["apply"]["counts"][-1] - 1
    with pytest.raises(c.ResumeError, match="rows"):
        list(c.iterate(plan, resume=seal(state)))
