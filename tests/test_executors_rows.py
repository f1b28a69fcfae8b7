"""A block mix of shard files under a parallel executor: its row sources are read in workers when costs say so.

Real ``.npz`` files (compressed) and ``.npy`` files, real worker processes. The consumer keeps every decision
and gathers; a worker opens (reads, decompresses) a shard and ships its rows as blocks. The items are the
in-process ones, and `executor_stats` and `explain` say where each part ran.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import combinators as c
from combinators.errors import DataError, IdleExecutorWarning
from combinators.execution import run as run_module
from combinators.execution.placed_rows import shipped_rows
from combinators.execution.remote.options import placement
from combinators.execution.remote.placement import _kind
from combinators.execution.remote.processes import Processes


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
        assert list(x) == list(y)
        assert all(x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]) for k in x)


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


def test_a_run_resumed_from_a_state_taken_under_processes_goes_on_with_the_same_items(shards):
    plan = _plan(shards, rate=6)
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
    with pytest.raises(DataError, match=r"from_npz\('.*short.npz'\) at path \(0, \d\) gave 10 rows of the 40"):
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
