"""Shard files under a parallel executor: where each part runs, and what `explain` and the warning say of it.

Real ``.npz`` files (compressed) and ``.npy`` files, real worker processes and ZeroMQ sockets. A block mix
keeps every decision and gathers in the consumer; a worker opens (reads, decompresses) a shard, alone or in
a chain of the mix, and ships its rows as blocks. A mix that runs item by item places its shard leaves as
leaves. For each shape of plan, what ``explain(plan, executor=...)`` says and whether `IdleExecutorWarning`
fires are compared with what ran (``run.executor_stats()``), and the items with the in-process ones.
"""

from __future__ import annotations

import os
import warnings

import attrs
import numpy as np
import pytest

import combinators as c
from combinators.errors import DataError, IdleExecutorWarning
from combinators.execution import run as run_module
from combinators.execution.chain_rows import ChainRows
from combinators.execution.placed_rows import PlacedRows, shipped_rows
from combinators.execution.remote.options import placement
from combinators.execution.remote.placement import _kind
from combinators.execution.remote.processes import Processes
from combinators.plan.sources import RowSource, row_schema


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """12 compressed ``.npz`` shards of ``{"x": float32 (3,), "y": int64}`` rows, 20 to 64 rows each."""
    folder = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(7)
    paths = []
    for k in range(12):
        n = int(rng.integers(20, 65))
        path = folder / f"s{k:02d}.npz"
        np.savez_compressed(path, x=rng.normal(size=(n, 3)).astype(np.float32), y=np.arange(n) + 1000 * k)
        paths.append(str(path))
    return paths


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(run_module, "_IDLE_WARNED", set())


def _plan(paths, **options):
    options = {"n_active": 3, "rate": 16, **options}
    return c.mix(*map(c.from_npz, paths), weights=range(1, len(paths) + 1), **options) >> c.batch(8)


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, dict):
            assert list(x) == list(y) and all(x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]) for k in x)
        else:
            assert np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(x, y)


def _items_and_stats(plan, executor, seed=3, max_iter=60):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no IdleExecutorWarning: the workers read the shards
        with c.iterate(plan, seed=seed, executor=executor, max_iter=max_iter) as run:
            items = list(run)
            stats = run.executor_stats()
    return items, stats


@pytest.mark.parametrize("options", [{}, {"rate": None, "mode": "exhaustive"}, {"mode": "single_active"}])
def test_shards_read_in_workers_give_the_in_process_items(shards, options):
    plan = _plan(shards, **options)
    items, stats = _items_and_stats(plan, Processes(workers=2, inline=False))
    _same(items, list(c.iterate(plan, seed=3, max_iter=60)))
    assert stats["row_activations"] == stats["activations"] > 3, stats
    assert stats["row_activations_inline"] == stats["activations_inline"] == 0, stats


def test_a_kind_measured_expensive_reads_in_workers_and_a_cheap_one_in_the_consumer(shards):
    """Costs injected in the session's table of kinds (what workers report, per kind: activations, items,
    ns making, ns moving) place the shards: expensive to make, in workers; cheap, in the consumer."""
    plan = _plan(shards)
    expected = list(c.iterate(plan, seed=3, max_iter=60))
    kind = _kind((shipped_rows, (c.from_npz(shards[0]), 64)))
    for costs, where in (([100, 100, 10**12, 10**6], "workers"), ([100, 100, 10**3, 10**10], "consumer")):
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            with c.iterate(plan, seed=3, executor=Processes(workers=2), max_iter=60) as run:
                run._session.kind_costs[kind] = list(costs)
                items = list(run)
                stats = run.executor_stats()
        # the warning says so exactly when the consumer did everything
        assert [w.category for w in warned] == ([] if where == "workers" else [IdleExecutorWarning]), warned
        _same(items, expected)
        if where == "workers":
            assert stats["row_activations"] > 3 and stats["row_activations_inline"] == 0, stats
        else:
            assert stats["row_activations_inline"] > 3 and stats["row_activations"] == 0, stats


def _chained(paths):
    """A block mix of a cycled chain of shards, a .cycle()d shard and a shard: each shard placed (ChainRows)."""
    shards = [c.from_npz(p) for p in paths]
    return c.mix(c.chain(*shards[:3], cycle=True), shards[3].cycle(), shards[4], n_active=2, rate=11) >> c.batch(3)


@pytest.mark.parametrize("make", [lambda paths: _plan(paths, rate=6), _chained], ids=["shards", "chained"])
def test_a_run_resumed_from_a_state_taken_under_processes_goes_on_with_the_same_items(shards, make):
    plan = make(shards)
    expected = list(c.iterate(plan, seed=9, max_iter=50))
    with c.iterate(plan, seed=9, executor=Processes(workers=2, inline=False)) as run:
        first = [next(run) for _ in range(17)]
        state = run.state()
    _same(first, expected[:17])
    for executor in ("inprocess", Processes(workers=2, inline=False)):
        _same(first + list(c.iterate(plan, resume=state, executor=executor, max_iter=33)), expected)


def test_npy_shards_and_arrays_in_one_mix(shards, tmp_path):
    paths = []
    for k in range(4):
        paths.append(str(tmp_path / f"a{k}.npy"))
        np.save(paths[-1], np.arange(30 * k, 30 * k + 30 + k, dtype=np.float32).reshape(-1, 1).repeat(2, axis=1))
    memory = c.from_arrays(np.full((25, 2), -1, dtype=np.float32))
    plan = c.mix(*map(c.from_npy, paths), memory, n_active=2, rate=5) >> c.batch(4)
    items, stats = _items_and_stats(plan, Processes(workers=1, inline=False), max_iter=40)
    expected = list(c.iterate(plan, seed=3, max_iter=40))
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(items, expected)) and len(items) == 40
    assert stats["row_activations"] > 0, stats  # the .npy files; the arrays stay here
    assert f"its {len(paths)} from_npy sources are read in worker processes" in c.explain(plan, executor="processes")


def test_a_shard_that_fails_in_its_worker_raises_in_the_consumer_with_the_worker_traceback(shards, tmp_path):
    broken = tmp_path / "broken.npz"
    np.savez_compressed(broken, x=np.zeros((30, 3), np.float32), y=np.arange(30))
    plan = _plan([*shards[:2], str(broken)], n_active=3, rate=None)
    with open(broken, "r+b") as file:  # after its header was read: the worker's np.load finds no archive
        file.seek(0)
        file.write(b"garbage!" * 8)
    with pytest.raises(Exception) as raised:
        list(c.iterate(plan, seed=0, executor=Processes(workers=1, inline=False)))
    assert "Traceback" in getattr(raised.value, "remote_traceback", ""), raised.value
    assert "shipped_rows" in raised.value.remote_traceback


def test_a_shard_that_gives_fewer_rows_than_its_header_raises_data_error_naming_it(tmp_path):
    path = tmp_path / "short.npz"
    np.savez_compressed(path, x=np.zeros((40, 3), np.float32))
    plan = c.mix(c.from_npz(path), c.from_npz(path)) >> c.batch(8)
    np.savez_compressed(path, x=np.zeros((10, 3), np.float32))  # rewritten shorter once described
    # the worker opening it finds the file's arrays unlike the plan's (`FromNpz.open`): before any row is sent
    with pytest.raises(DataError, match=r"short\.npz'? changed since the plan was built: arrays \{'x': \(\(10, 3\)"):
        list(c.iterate(plan, seed=0, executor=Processes(workers=1, inline=False)))


def test_explain_says_where_the_shards_are_read_and_why(shards):
    plan = _plan(shards)
    inline = c.explain(plan, executor=Processes(workers=2)).splitlines()[1]
    assert inline.endswith("@ consumer (decisions and gathers); its 12 from_npz sources are read in worker "
                           "processes, or here once measured cheap to read, their rows shipped as blocks"), inline
    assert "read in ZMQ workers, their rows shipped as blocks" in c.explain(plan, executor=c.ZMQ())
    assert placement(plan.stream, False, "Ray actors", False, places_rows=False) == (
        "consumer (rows gathered here, not in Ray actors: Ray actors do not read them)")
    assert "@ consumer (rows gathered here, not in worker processes: read in order here)" in c.explain(
        c.chain(*map(c.from_npz, shards[:2])) >> c.batch(2), executor="processes")


EXECUTORS = [
    pytest.param(lambda: Processes(workers=2, inline=False), "worker processes", id="processes"),
    pytest.param(lambda: c.ZMQ(workers=2), "ZMQ workers", id="zmq"),
]


@pytest.fixture(scope="module")
def npy(tmp_path_factory):
    """4 ``.npy`` shards of float32 (2,) rows, 20 to 23 rows each."""
    folder = tmp_path_factory.mktemp("npy")
    paths = []
    for k in range(4):
        paths.append(str(folder / f"a{k}.npy"))
        np.save(paths[-1], np.arange(40 * k, 40 * k + 2 * (20 + k), dtype=np.float32).reshape(-1, 2))
    return paths


def _placed_run(plan, executor, seed=2, max_iter=40):
    """The items, executor_stats() and the IdleExecutorWarnings of one run."""
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        with c.iterate(plan, seed=seed, executor=executor, max_iter=max_iter) as run:
            items = list(run)
            stats = run.executor_stats()
    _same(items, list(c.iterate(plan, seed=seed, max_iter=max_iter)))
    assert items
    return items, stats, [w for w in warned if w.category is IdleExecutorWarning]


def _marks(plan, executor):
    """What explain says after ``@`` on each line that has one."""
    return [line.split("  @ ", 1)[1] for line in c.explain(plan, executor=executor).splitlines() if "  @ " in line]


@pytest.mark.parametrize("make, workers", EXECUTORS)
def test_shards_under_a_mix_that_runs_item_by_item_are_read_in_workers_and_explain_says_so(shards, npy, make, workers):
    """A round-robin, and a mix with a round-robin child, run item by item: their shard leaves are placed as
    leaves are (in workers), named or not; explain says so, and no warning fires (it used to: 'consumer')."""
    npz = [c.from_npz(p) for p in shards[:4]]
    plans = [
        c.mix(c.round_robin(*npz[:2]), *npz[2:], n_active=2, rate=8),
        c.round_robin(*(c.from_npy(p).named(f"a{k}") for k, p in enumerate(npy)), mode="cycle"),
    ]
    for plan in plans:
        executor = make()
        _, stats, warned = _placed_run(plan, executor)
        assert stats["activations"] > 0 and stats["row_activations"] == 0, stats  # leaves, not a block mix's
        assert not warned, warned
        marks = _marks(plan, executor)
        assert marks == [workers] * len(marks) and len(marks) == 4, c.explain(plan, executor=executor)


@pytest.mark.parametrize("make, workers", EXECUTORS)
def test_shards_beside_a_generator_in_a_mix_are_read_in_workers(shards, make, workers):
    def made():
        for i in range(25):
            yield {"x": np.full(3, -i, np.float32), "y": np.int64(-i)}

    plan = c.mix(*map(c.from_npz, shards[:3]), c.stream(made), n_active=2, rate=6) >> c.batch(4)
    executor = make()
    _, stats, warned = _placed_run(plan, executor)
    assert not warned and stats["activations"] > 0, stats
    lines = c.explain(plan, executor=executor).splitlines()
    assert [line.split("  @ ")[1] for line in lines[2:5]] == [workers] * 3, lines  # was "consumer (...)"


def test_rows_in_memory_under_a_mix_that_runs_item_by_item_stay_in_the_consumer():
    """from_arrays leaves of a round-robin: explain said 'consumer' while workers read them (the arrays pickled
    there and back); now they are read in the consumer, and the warning says the workers had nothing to do."""
    plan = c.round_robin(c.from_arrays(np.arange(10.0)), c.from_arrays(np.arange(5)) >> c.batch(2), mode="cycle")
    executor = Processes(workers=1, inline=False)
    _, stats, warned = _placed_run(plan, executor, max_iter=20)
    assert stats["activations"] == 0, stats
    assert [str(w.message) for w in warned] and "every part of this plan" in str(warned[0].message), warned
    assert _marks(plan, executor) == ["consumer (rows gathered here, not in worker processes: they are in memory)"] * 2


@pytest.mark.parametrize("make, workers", EXECUTORS)
@pytest.mark.parametrize("shape", ["chains", "cycled", "mixed"])
def test_chains_and_cycled_shards_under_a_block_mix_are_read_in_workers(shards, make, workers, shape):
    """A block mix reads a chain of shards, or a .cycle()d shard, at random (ChainRows): their shards are
    placed as its own are, each activation for the rows of the budget only; no warning (it used to fire)."""
    npz = [c.from_npz(p) for p in shards]
    children = {
        "chains": [c.chain(*npz[:2]), c.chain(*npz[2:5], cycle=True)],
        "cycled": [s.cycle() for s in npz[:3]],
        "mixed": [npz[0].cycle(), c.chain(npz[1], c.from_arrays({"x": np.zeros((7, 3), np.float32),
                                                                   "y": np.arange(7)})), npz[2]],
    }[shape]
    plan = c.mix(*children, n_active=2, rate=13) >> c.batch(4)
    executor = make()
    _, stats, warned = _placed_run(plan, executor, max_iter=60)
    assert not warned, warned
    assert stats["row_activations"] == stats["activations"] > 3 and stats["activations_inline"] == 0, stats
    placed = {"chains": 5, "cycled": 3, "mixed": 3}[shape]
    assert _marks(plan, executor) == [f"consumer (decisions and gathers); its {placed} from_npz sources are read in "
                                      f"{workers}, their rows shipped as blocks"]


def test_explain_says_why_each_part_runs_where_it_does(shards, npy):
    read_in_order = c.mix(c.from_npz(shards[0]), c.from_npz(shards[1]).take(10), c.from_npz(shards[2]).cycle())
    assert _marks(read_in_order, "processes") == [(
        "consumer (decisions and gathers); its 2 from_npz sources are read in worker processes, or here once "
        "measured cheap to read, their rows shipped as blocks; 1 more read here in order")]
    mapped = c.mix(*(c.from_npy(p, mmap_mode="r") for p in npy[:2]))  # maps files: never in the consumer
    assert _marks(mapped, "processes") == ["worker processes (it maps a file: never in the consumer)"] * 2
    assert _marks(c.chain(c.from_npz(shards[0]), c.from_npz(shards[1])), "zmq") == [
        "consumer (rows gathered here, not in ZMQ workers: read in order here)"]


def _placed_by_hand(sources, opened, capacity=8):
    """``placed(index, first, count)`` for `ChainRows`: what a worker ships (`shipped_rows`), read as the
    consumer reads it (`PlacedRows`); each call noted in ``opened``."""
    def placed(index, first, count):
        opened.append((index, first, count))
        blocks = shipped_rows(sources[index], capacity, first, first + count)
        return PlacedRows(blocks, count, count, f"source {index}", sources[index].schema)

    return placed


def test_chain_rows_open_each_placed_source_for_the_rows_of_the_budget_and_the_next_one_ahead(npy):
    sources, opened = [c.from_npy(npy[0]), c.from_npy(npy[1])], []  # 20 and 21 rows
    rows = ChainRows(sources, True, _placed_by_hand(sources, opened), start=15, stop=60)
    assert opened == [(0, 15, 5), (1, 0, 21)]  # the first at once, the next ahead
    expected = np.concatenate([np.load(npy[0]), np.load(npy[1])] * 2)
    assert np.array_equal(rows.rows(15, 30), expected[15:30])
    assert opened[2:] == [(0, 0, 19)]  # the next pass: the 60 - 41 rows left of the budget
    assert np.array_equal(rows.rows(30, 60), expected[30:60]) and opened[3:] == []
    rows.close()
    assert rows.open is None and rows.ahead is None


def test_a_source_cycled_alone_is_one_activation_for_the_whole_budget(npy):
    sources, opened = [c.from_npy(npy[0])], []  # 20 rows, read from row 15 for 50 rows: 2.5 passes
    rows = ChainRows(sources, True, _placed_by_hand(sources, opened), start=15, stop=65)
    expected = np.concatenate([np.load(npy[0])] * 4)
    assert np.array_equal(np.concatenate([rows.rows(15, 22), rows.rows(22, 65)]), expected[15:65])
    assert opened == [(0, 15, 50)]
    without_budget = ChainRows(sources, True, _placed_by_hand(sources, opened), start=5)
    assert np.array_equal(without_budget.rows(5, 45), expected[5:45])
    assert opened[1:] == [(0, 5, 15), (0, 0, 20), (0, 0, 20), (0, 0, 20)]  # a pass each, the next ahead


@attrs.frozen(eq=False, repr=False)
class _Lying(RowSource):
    """A row source whose activations give other rows than its schema says: ``declared`` (what its schema and
    length are taken from) and ``sent`` (what ``rows(start, stop)`` slices, ``extra`` rows past ``stop``)."""

    declared: dict
    sent: object
    extra: int = 0

    @property
    def schema(self):
        return row_schema(self.declared)

    def __len__(self):
        return len(self.declared["x"])

    def __repr__(self):
        return "_Lying()"

    def open(self):
        return _LyingRows(self.sent, self.extra, len(self))


class _LyingRows:
    def __init__(self, sent, extra, length):
        self.sent, self.extra, self.length = sent, extra, length

    def __len__(self):
        return self.length

    def rows(self, start, stop):
        if isinstance(self.sent, dict):
            return {key: value[start:stop + self.extra] for key, value in self.sent.items()}
        return self.sent[start:stop + self.extra]

    def close(self):
        self.sent = None


_X, _Y = np.zeros((40, 3), np.float32), np.arange(40)


@pytest.mark.parametrize(("sent", "extra", "says"), [
    ({"x": _X, "z": _Y}, 0, r"sent a block of \['x', 'z'\] where its schema has keys \['x', 'y'\]"),
    (_X, 0, r"sent a block of ndarray where its schema has keys \['x', 'y'\]"),
    ({"x": _X, "y": _Y.astype(np.int32)}, 0, r"sent key 'y' of dtype int32 where its schema has int64"),
    ({"x": _X.astype(np.float64), "y": _Y}, 0, r"sent key 'x' of dtype float64 where its schema has float32"),
    ({"x": np.zeros((40, 4), np.float32), "y": _Y}, 0, r"sent key 'x' of row shape \(4,\) where its schema has \(3,\)"),
    ({"x": _X, "y": _Y.reshape(40, 1)}, 0, r"sent key 'y' of row shape \(1,\) where its schema has \(\)"),
    ({"x": _X.tolist(), "y": _Y}, 0, r"sent key 'x' of type list where its schema has an array of rows"),
    ({"x": _X, "y": _Y[:30]}, 0, r"sent a block of \[\d+, \d+\] rows where at most \d+ were left to send"),
    ({"x": np.zeros((80, 3), np.float32), "y": np.arange(80)}, 40, r"sent a block of \[\d+\] rows where at most"),
])
def test_a_block_a_worker_sends_unlike_its_schema_raises_data_error_naming_the_source(sent, extra, says):
    """Blocks made in a real worker process (a source whose rows are not what its schema says) and received by
    the consumer: checked before they are held, never cast or cut to fit, nor left to fail deep in a gather."""
    lying = _Lying({"x": _X, "y": _Y}, sent, extra)
    plan = c.mix(lying, c.from_arrays({"x": _X, "y": _Y}), n_active=2, rate=30) >> c.batch(8)
    with pytest.raises(DataError, match=r"^_Lying\(\) at path \(0, 0\) " + says):
        list(c.iterate(plan, seed=0, executor=Processes(workers=1, inline=False), max_iter=20))


@pytest.mark.parametrize("kind", ["dtype", "row shape"])
def test_a_shard_rewritten_with_another_dtype_or_row_shape_raises_data_error_when_read_in_a_worker(tmp_path, kind):
    path = tmp_path / "shard.npz"
    np.savez_compressed(path, x=np.zeros((40, 3), np.float32))
    plan = c.mix(c.from_npz(path), c.from_npz(path)) >> c.batch(8)
    rewritten = np.ones((40, 3), np.float64) if kind == "dtype" else np.ones((40, 4), np.float32)
    np.savez_compressed(path, x=rewritten)  # once described: the worker reads the new file
    sent = r"\(\(40, 3\), dtype\('float64'\)\)" if kind == "dtype" else r"\(\(40, 4\), dtype\('float32'\)\)"
    with pytest.raises(DataError, match=rf"shard\.npz'? changed since the plan was built: arrays \{{'x': {sent}"):
        list(c.iterate(plan, seed=0, executor=Processes(workers=1, inline=False), max_iter=5))
