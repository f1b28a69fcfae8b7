"""Where each part of a plan runs under a parallel executor, what `explain` says of it, and `IdleExecutorWarning`.

Real ``.npz`` and ``.npy`` shards, real worker processes and ZeroMQ sockets. For each shape of plan, what
``explain(plan, executor=...)`` says and whether the warning fires are compared with what ran
(``run.executor_stats()``), and the items with the in-process ones.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import combinators as c
from combinators.errors import IdleExecutorWarning
from combinators.execution import run as run_module
from combinators.execution.blocks import ChainRows
from combinators.execution.remote.processes import Processes
from combinators.sampling.mix import ResumedRows

EXECUTORS = [
    pytest.param(lambda: Processes(workers=2, inline=False), "worker processes", id="processes"),
    pytest.param(lambda: c.ZMQ(workers=2), "ZMQ workers", id="zmq"),
]


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    """6 compressed ``.npz`` shards of ``{"x": float32 (3,), "y": int64}`` rows, 30 to 45 rows each."""
    folder = tmp_path_factory.mktemp("npz")
    rng = np.random.default_rng(5)
    paths = []
    for k in range(6):
        n = 30 + 3 * k
        paths.append(str(folder / f"s{k}.npz"))
        np.savez_compressed(paths[-1], x=rng.normal(size=(n, 3)).astype(np.float32), y=np.arange(n) + 1000 * k)
    return paths


@pytest.fixture(scope="module")
def npy(tmp_path_factory):
    """4 ``.npy`` shards of float32 (2,) rows, 20 to 23 rows each."""
    folder = tmp_path_factory.mktemp("npy")
    paths = []
    for k in range(4):
        paths.append(str(folder / f"a{k}.npy"))
        np.save(paths[-1], np.arange(40 * k, 40 * k + 2 * (20 + k), dtype=np.float32).reshape(-1, 2))
    return paths


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(run_module, "_IDLE_WARNED", set())


def _same(a, b):
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        if isinstance(x, dict):
            assert list(x) == list(y) and all(x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]) for k in x)
        else:
            assert np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(x, y)


def _run(plan, executor, seed=2, max_iter=40):
    """The items, executor_stats() and the IdleExecutorWarnings of one run."""
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        with c.iterate(plan, seed=seed, executor=executor, max_iter=max_iter) as run:
            items = list(run)
            stats = run.executor_stats()
    _same(items, list(c.iterate(plan, seed=seed, max_iter=max_iter)))
    return items, stats, [w for w in warned if w.category is IdleExecutorWarning]


def _marks(plan, executor):
    """What explain says after ``@`` on each line that has one."""
    return [line.split("  @ ", 1)[1] for line in c.explain(plan, executor=executor).splitlines() if "  @ " in line]


@pytest.mark.parametrize("make, workers", EXECUTORS)
def test_shards_under_a_mix_that_runs_item_by_item_are_read_in_workers_and_explain_says_so(npz, npy, make, workers):
    """A round-robin, and a mix with a round-robin child, run item by item: their shard leaves are placed as
    leaves are (in workers), named or not; explain says so, and no warning fires (it used to: 'consumer')."""
    shards = [c.from_npz(p) for p in npz[:4]]
    plans = [
        c.mix(c.round_robin(*shards[:2]), *shards[2:], n_active=2, rate=8),
        c.round_robin(*(c.from_npy(p).named(f"a{k}") for k, p in enumerate(npy)), mode="cycle"),
    ]
    for plan in plans:
        executor = make()
        _, stats, warned = _run(plan, executor)
        assert stats["activations"] > 0 and stats["row_activations"] == 0, stats  # leaves, not a block mix's
        assert not warned, warned
        marks = _marks(plan, executor)
        assert marks == [workers] * len(marks) and len(marks) == 4, c.explain(plan, executor=executor)


@pytest.mark.parametrize("make, workers", EXECUTORS)
def test_shards_beside_a_generator_in_a_mix_are_read_in_workers(npz, make, workers):
    def made():
        for i in range(25):
            yield {"x": np.full(3, -i, np.float32), "y": np.int64(-i)}

    plan = c.mix(*map(c.from_npz, npz[:3]), c.stream(made), n_active=2, rate=6) >> c.batch(4)
    executor = make()
    _, stats, warned = _run(plan, executor)
    assert not warned and stats["activations"] > 0, stats
    lines = c.explain(plan, executor=executor).splitlines()
    assert [line.split("  @ ")[1] for line in lines[2:5]] == [workers] * 3, lines  # was "consumer (...)"


def test_rows_in_memory_under_a_mix_that_runs_item_by_item_stay_in_the_consumer():
    """from_arrays leaves of a round-robin: explain said 'consumer' while workers read them (the arrays pickled
    there and back); now they are read in the consumer, and the warning says the workers had nothing to do."""
    plan = c.round_robin(c.from_arrays(np.arange(10.0)), c.from_arrays(np.arange(5)) >> c.batch(2), mode="cycle")
    executor = Processes(workers=1, inline=False)
    _, stats, warned = _run(plan, executor, max_iter=20)
    assert stats["activations"] == 0, stats
    assert [str(w.message) for w in warned] and "every part of this plan" in str(warned[0].message), warned
    assert _marks(plan, executor) == ["consumer (rows gathered here, not in worker processes: they are in memory)"] * 2


@pytest.mark.parametrize("make, workers", EXECUTORS)
@pytest.mark.parametrize("shape", ["chains", "cycled", "mixed"])
def test_chains_and_cycled_shards_under_a_block_mix_are_read_in_workers(npz, make, workers, shape):
    """A block mix reads a chain of shards, or a .cycle()d shard, at random (ChainRows): their shards are
    placed as its own are, each activation for the rows of the budget only; no warning (it used to fire)."""
    shards = [c.from_npz(p) for p in npz]
    children = {
        "chains": [c.chain(*shards[:2]), c.chain(*shards[2:5], cycle=True)],
        "cycled": [s.cycle() for s in shards[:3]],
        "mixed": [shards[0].cycle(), c.chain(shards[1], c.from_arrays({"x": np.zeros((7, 3), np.float32),
                                                                      "y": np.arange(7)})), shards[2]],
    }[shape]
    plan = c.mix(*children, n_active=2, rate=13) >> c.batch(4)
    executor = make()
    _, stats, warned = _run(plan, executor, max_iter=60)
    assert not warned, warned
    assert stats["row_activations"] == stats["activations"] > 3 and stats["activations_inline"] == 0, stats
    placed = {"chains": 5, "cycled": 3, "mixed": 3}[shape]
    assert _marks(plan, executor) == [f"consumer (decisions and gathers); its {placed} from_npz sources are read in "
                                      f"{workers}, their rows shipped as blocks"]


def test_a_chain_of_shards_under_a_block_mix_resumes_with_the_same_items(npz):
    shards = [c.from_npz(p) for p in npz]
    plan = c.mix(c.chain(*shards[:3], cycle=True), shards[3].cycle(), shards[4], n_active=2, rate=11) >> c.batch(3)
    expected = list(c.iterate(plan, seed=4, max_iter=70))
    with c.iterate(plan, seed=4, executor=Processes(workers=2, inline=False)) as run:
        first = [next(run) for _ in range(23)]
        state = run.state()
    _same(first, expected[:23])
    for executor in ("inprocess", Processes(workers=2, inline=False)):
        _same(first + list(c.iterate(plan, resume=state, executor=executor, max_iter=47)), expected)


def test_explain_says_why_each_part_runs_where_it_does(npz, npy):
    read_in_order = c.mix(c.from_npz(npz[0]), c.from_npz(npz[1]).take(10), c.from_npz(npz[2]).cycle())
    assert _marks(read_in_order, "processes") == [
        "consumer (decisions and gathers); its 2 from_npz sources are read in worker processes, or here once "
        "measured cheap to read, their rows shipped as blocks; 1 more read here in order"]
    mapped = c.mix(*(c.from_npy(p, mmap_mode="r") for p in npy[:2]))  # maps files: never in the consumer
    assert _marks(mapped, "processes") == ["worker processes (it maps a file: never in the consumer)"] * 2
    assert _marks(c.chain(c.from_npz(npz[0]), c.from_npz(npz[1])), "zmq") == [
        "consumer (rows gathered here, not in ZMQ workers: read in order here)"]


def test_chain_rows_open_each_placed_source_for_the_rows_of_the_budget_and_the_next_one_ahead(npy):
    sources = [c.from_npy(npy[0]), c.from_npy(npy[1])]  # 20 and 21 rows
    opened = []

    def placed(index, first, end):
        opened.append((index, first, end))
        return ResumedRows(sources[index].open(), first)

    rows = ChainRows(sources, True, placed, start=15, stop=60)
    assert opened == [(0, 15, 20), (1, 0, 21)]  # the first at once, the next ahead
    expected = np.concatenate([np.load(npy[0]), np.load(npy[1])] * 2)
    assert np.array_equal(rows.rows(15, 30), expected[15:30])
    assert opened[2:] == [(0, 0, 19)]  # the next pass: 60 - 41 rows of the budget
    assert np.array_equal(rows.rows(30, 60), expected[30:60]) and opened[3:] == []
    rows.close()
    assert rows.open is None and rows.ahead is None
