"""Data parallelism: rank r of w yields global positions r, r + w, ...; states are global; reads are the rank's own."""

from __future__ import annotations

import json
import os
from typing import Any

import attrs
import numpy as np
import pytest

import combinators as c
from combinators.errors import InvalidArgument, InvalidArgumentType
from combinators.plan.sources import OpenArrays, RowSource, row_schema

#: rows read, per source name: (start, stop) of each ``rows`` call, in this process
READS: dict[str, list[tuple[int, int]]] = {}


class CountingRows:
    """An open activation with ``rows`` only, that records the rows it is asked for."""

    def __init__(self, data: Any, name: str):
        self.inner, self.name = OpenArrays(data, len(data)), name

    def __len__(self) -> int:
        return len(self.inner)

    def rows(self, start: int, stop: int) -> Any:
        READS.setdefault(self.name, []).append((start, stop))
        return self.inner.rows(start, stop)

    def close(self) -> None:
        self.inner.close()


class CountingTake(CountingRows):
    """With ``take`` too (as `OpenArrays` has), recording each row it reads."""

    def take(self, indices: np.ndarray) -> Any:
        READS.setdefault(self.name, []).extend((int(i), int(i) + 1) for i in indices)
        return self.inner.take(indices)


class CountingRuns(CountingRows):
    """With ``read_runs`` too (as ``from_npy``'s `~combinators.sources.shards.ReadRows` has), recording each run."""

    def read_runs(self, starts: list[int], counts: list[int], out: np.ndarray, places: list[int]) -> None:
        at = 0
        for start, count in zip(starts, counts, strict=True):
            READS.setdefault(self.name, []).append((start, start + count))
            out[places[at : at + count]] = self.inner.rows(start, start + count)
            at += count
        assert at == len(places)


READERS = {"rows": CountingRows, "take": CountingTake, "runs": CountingRuns}


@attrs.frozen(eq=False, repr=False)
class Counted(RowSource):
    """A row source whose activations count their reads (a real `RowSource` subclass, on the block path)."""

    name: str
    data: np.ndarray
    reader: str = "rows"  # how its activations read: a key of READERS

    @property
    def schema(self) -> Any:
        return row_schema(self.data)

    def open(self) -> CountingRows:
        return READERS[self.reader](self.data, self.name)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Counted({self.name!r})"


def counted_sources(sizes=(50, 80, 30, 65), readers=("rows",)):
    """Sources of rows ``1000 * i + row``, the i-th reading as ``readers[i % len(readers)]`` says."""
    return [Counted(f"s{i}", np.arange(1000 * i, 1000 * i + n, dtype=np.int64), readers[i % len(readers)])
            for i, n in enumerate(sizes)]


def values(items) -> list[list[int]]:
    return [np.asarray(item).reshape(-1).tolist() for item in items]


def interleaved(plan, seed, world_size, **options) -> list[list[int]]:
    """The ranks' items, taken one from each rank in turn."""
    runs = [c.iterate(plan, seed=seed, rank=r, world_size=world_size, **options) for r in range(world_size)]
    out, turn = [], 0
    while True:
        item = next(runs[turn % world_size], None)
        if item is None:
            break
        out.append(np.asarray(item).reshape(-1).tolist())
        turn += 1
    return out


PLANS = {
    "rows": lambda: c.mix(*counted_sources(), mode="exhaustive"),
    "batches": lambda: c.mix(*counted_sources(), mode="exhaustive") >> c.batch(8, partial=True),
    "working set": lambda: c.mix(*counted_sources(), n_active=2, rate=6, mode="exhaustive") >> c.batch(5),
    "per item": lambda: c.mix(*(c.from_iterable(range(100 * i, 100 * i + 20)) for i in range(3)),
                              mode="exhaustive") >> c.map(int),
}


@pytest.mark.parametrize("name", list(PLANS))
@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7])
def test_ranks_interleaved_are_the_single_process_sequence(name, world_size):
    plan = PLANS[name]()
    assert interleaved(plan, 11, world_size) == values(c.iterate(plan, seed=11))


@pytest.mark.parametrize("readers", [("rows",), ("take",), ("runs",), ("runs", "rows", "take")])
@pytest.mark.parametrize("world_size", [2, 4])
def test_a_rank_reads_only_the_rows_of_its_own_items(world_size, readers):
    plan = c.mix(*counted_sources(readers=readers), n_active=3, rate=7, mode="exhaustive") >> c.batch(8, partial=True)
    batches = values(c.iterate(plan, seed=5))
    for rank in range(world_size):
        READS.clear()
        run = c.iterate(plan, seed=5, rank=rank, world_size=world_size)
        assert run.reads_only_own_rows
        mine = values(run)
        assert mine == batches[rank::world_size]
        read = [1000 * int(name[1:]) + row for name, spans in READS.items() for a, b in spans for row in range(a, b)]
        own = [v for batch in mine for v in batch]
        assert sorted(read) == sorted(own)  # every own row once, no other rank's row


def _npy_shards(folder, sizes=(50, 80, 30, 65, 41)) -> list:
    """``from_npy`` shards whose row ``j`` of shard ``i`` is ``[i, j, -1]`` (int64)."""
    paths = []
    for i, n in enumerate(sizes):
        paths.append(folder / f"s{i}.npy")
        np.save(paths[-1], np.stack([np.full(n, i), np.arange(n), np.full(n, -1)], axis=1).astype(np.int64))
    return [c.from_npy(path) for path in paths]


@pytest.mark.parametrize("world_size", [1, 3, 4])
def test_a_rank_reads_only_the_bytes_of_its_own_rows_of_npy_shards(tmp_path, monkeypatch, world_size):
    """Every ``os.preadv`` of the shards' rows, seen as it happens: a rank reads its rows' bytes, once, no other."""
    sources = _npy_shards(tmp_path)
    plan = c.mix(*sources, mode="exhaustive") >> c.batch(4, partial=True)  # long runs: a rank's rows lie sparse
    batches = [np.asarray(b).tolist() for b in c.iterate(plan, seed=5)]
    shards = {os.stat(s.path).st_ino: (i, s.offset, 3 * 8) for i, s in enumerate(sources)}  # inode -> where rows are
    reads, preadv = [], os.preadv

    def seen(fd: int, buffers: Any, offset: int) -> int:
        got = preadv(fd, buffers, offset)
        reads.append((os.fstat(fd).st_ino, offset, got))
        return got

    monkeypatch.setattr(os, "preadv", seen)
    for rank in range(world_size):
        reads.clear()
        mine = [np.asarray(b).tolist() for b in c.iterate(plan, seed=5, rank=rank, world_size=world_size)]
        assert mine == batches[rank::world_size]
        read = []
        for inode, offset, got in reads:
            shard, first, size = shards[inode]
            assert (offset - first) % size == got % size == 0, "whole rows only"
            read += [(shard, row) for row in range((offset - first) // size, (offset - first + got) // size)]
        assert sorted(read) == sorted((i, j) for batch in mine for i, j, _ in batch)  # own rows once, no other


def test_the_single_process_run_reads_every_row():
    """The counting source sees the reads (so the test above can fail)."""
    plan = c.mix(*counted_sources(), mode="exhaustive") >> c.batch(8, partial=True)
    READS.clear()
    n = sum(len(b) for b in values(c.iterate(plan, seed=5)))
    assert sum(b - a for spans in READS.values() for a, b in spans) == n == 225


@pytest.mark.parametrize("name", list(PLANS))
@pytest.mark.parametrize("world_size, k, new_world", [(4, 3, 2), (2, 5, 3), (3, 2, 1), (1, 7, 4), (4, 0, 3)])
def test_a_state_at_one_world_size_resumes_on_another(name, world_size, k, new_world):
    plan = PLANS[name]()
    whole = values(c.iterate(plan, seed=2))
    states = []
    for rank in range(world_size):
        run = c.iterate(plan, seed=2, rank=rank, world_size=world_size)
        assert values(next(run) for _ in range(k)) == whole[rank : k * world_size : world_size]
        states.append(json.loads(json.dumps(run.state())))
        run.close()
    assert all(s == states[0] for s in states), "every rank's state after k items is the same global state"
    assert states[0]["items"] == k * world_size
    rest = interleaved(plan, None, new_world, resume=states[0]) if new_world > 1 else values(
        c.iterate(plan, resume=states[0]))
    assert whole[: k * world_size] + rest == whole


def test_an_infinite_plan_and_max_iter():
    plan = c.mix(c.from_arrays(np.arange(10)), c.from_arrays(np.arange(10, 30)), n_active=1, rate=3)
    whole = values(c.iterate(plan, seed=0, max_iter=60))
    run = c.iterate(plan, seed=0, rank=1, world_size=3, max_iter=20)
    assert values(run) == whole[1::3]
    assert run.state()["items"] == 60
    rest = values(c.iterate(plan, resume=run.state(), rank=0, world_size=2, max_iter=5))
    assert rest == values(c.iterate(plan, seed=0, max_iter=70))[60::2]


@pytest.mark.parametrize("options, error, text", [
    ({"rank": 0}, InvalidArgument, "together"),
    ({"world_size": 2}, InvalidArgument, "together"),
    ({"rank": 2, "world_size": 2}, InvalidArgument, "rank=2, world_size=2"),
    ({"rank": -1, "world_size": 2}, InvalidArgument, "-1"),
    ({"rank": 0, "world_size": 0}, InvalidArgument, "world_size"),
    ({"rank": "0", "world_size": 2}, InvalidArgumentType, "'0'"),
])
def test_bad_ranks_are_refused(options, error, text):
    with pytest.raises(error, match=text):
        c.iterate(c.from_iterable([1]), seed=0, **options)


def test_ranks_need_a_seed():
    with pytest.raises(InvalidArgument, match="needs seed"):
        c.iterate(c.from_iterable([1]), rank=0, world_size=2)
