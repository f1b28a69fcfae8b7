"""Shard sources: rows of .npy/.npz files, opened only while an activation runs."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import combinators as c
from combinators.errors import DataError, InvalidArgument
from combinators.execution.remote.placement import Costs
from combinators.plan.block_path import block_schema
from combinators.sampling.working_set import AHEAD


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def _shards(tmp_path, n, rows=20):
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(rows, 4)).astype(np.float32) for _ in range(n)]
    paths = []
    for i, a in enumerate(arrays):
        paths.append(tmp_path / f"s{i}.npy")
        np.save(paths[-1], a)
    return arrays, paths


def test_npy_and_npz_rows_equal_from_arrays_rows(tmp_path):
    x, y = np.arange(12, dtype=np.int32).reshape(6, 2), np.arange(6, dtype=np.float64)
    np.save(tmp_path / "x.npy", x)
    np.savez_compressed(tmp_path / "xy.npz", x=x, y=y, other=np.zeros(6))
    for mode in ("r", None):
        rows = list(c.from_npy(tmp_path / "x.npy", mmap_mode=mode))
        assert [r.tolist() for r in rows] == x.tolist() and rows[0].dtype == np.int32
    npz = c.from_npz(tmp_path / "xy.npz", keys=("x", "y"))
    assert len(npz) == 6
    got, expected = list(npz), list(c.from_arrays({"x": x, "y": y}))
    assert all(a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a) for a, b in zip(got, expected))
    assert type(got[0]["y"]) is type(expected[0]["y"])


def test_a_mix_of_shards_gives_the_items_of_a_mix_of_arrays(tmp_path):
    arrays, paths = _shards(tmp_path, 5)
    options = dict(weights=(1, 2, 3, 4, 5), n_active=2, rate=6)
    shards = c.mix(*map(c.from_npy, paths), **options) >> c.take(90) >> c.batch(8)
    memory = c.mix(*map(c.from_arrays, arrays), **options) >> c.take(90) >> c.batch(8)
    assert block_schema(shards.stream) is not None
    for a, b in zip(c.iterate(shards, seed=3), c.iterate(memory, seed=3), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    # the per-item path (a shard under a transform is a generator child) agrees too
    per_item = c.mix(*[c.from_npy(p) >> c.map(np.negative) for p in paths], **options) >> c.take(90)
    negated = c.mix(*[c.from_arrays(a) >> c.map(np.negative) for a in arrays], **options) >> c.take(90)
    assert all(np.array_equal(a, b) for a, b in zip(c.iterate(per_item, seed=4), c.iterate(negated, seed=4), strict=True))


def test_a_working_set_of_shards_holds_few_files_open(tmp_path):
    _, paths = _shards(tmp_path, 200, rows=8)
    before = _open_files()
    peak = 0
    plan = c.mix(*map(c.from_npy, paths), n_active=4, mode="exhaustive")
    with c.iterate(plan, seed=0) as run:
        for i, _ in enumerate(run):
            if i % 7 == 0:
                peak = max(peak, _open_files() - before)
    assert i + 1 == 200 * 8
    assert 0 < peak <= 4 + AHEAD  # the working set, and the queue of entries drawn ahead
    assert _open_files() == before


def test_bad_shards_fail_loudly(tmp_path):
    with pytest.raises(InvalidArgument, match="no such file"):
        c.from_npy(tmp_path / "missing.npy")
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(InvalidArgument, match="mmap_mode"):
        c.from_npy(tmp_path / "a.npy", mmap_mode="w+")
    np.save(tmp_path / "o.npy", np.array([{}, 1], dtype=object))
    with pytest.raises(DataError, match="objects"):
        c.from_npy(tmp_path / "o.npy")
    np.save(tmp_path / "s.npy", np.float64(1))
    with pytest.raises(DataError, match="0-d"):
        c.from_npy(tmp_path / "s.npy")
    (tmp_path / "t.npy").write_bytes(b"not an array")
    with pytest.raises(DataError, match="not a .npy"):
        c.from_npy(tmp_path / "t.npy")
    np.savez(tmp_path / "u.npz", a=np.zeros(3), b=np.zeros(4))
    with pytest.raises(DataError, match="unequal lengths"):
        c.from_npz(tmp_path / "u.npz")
    with pytest.raises(InvalidArgument, match=r"no arrays \['z'\]"):
        c.from_npz(tmp_path / "u.npz", keys=("a", "z"))
    with pytest.raises(DataError, match="not an .npz"):
        c.from_npz(tmp_path / "a.npy")


# -- a file truncated while it is read (issue 21, item 6) -----------------------------------------------------

_TRUNCATE = """
import os, sys
import numpy as np
import combinators as c

path, mode, executor = sys.argv[1], sys.argv[2], sys.argv[3]
np.save(path, np.arange(400_000 * 16, dtype=np.float64).reshape(400_000, 16))
plan = c.from_npy(path) if mode == "default" else c.from_npy(path, mmap_mode=mode)
if __name__ == "__main__":
    got = 0
    try:
        with c.iterate(plan, seed=0, executor=eval(executor, vars(c))) as run:
            for i, row in enumerate(run):
                assert row[0] == 16 * i
                got += 1
                if i == 1000:  # the file loses all but its first 10 rows while it is read
                    os.truncate(path, 128 + 16 * 8 * 10)
        print("ended", got)
    except c.errors.CombinatorsError as error:
        print("refused", type(error).__name__, got, error)
"""


def _truncated_while_read(tmp_path, mode, executor):
    path = tmp_path / "big.npy"
    result = subprocess.run([sys.executable, "-c", _TRUNCATE, str(path), mode, executor], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])  # -7: SIGBUS
    return result.stdout.split(maxsplit=3)


@pytest.mark.parametrize("executor", ["'inprocess'", "Processes(workers=1)"])
def test_a_shard_truncated_while_read_is_a_data_error_naming_file_and_row(tmp_path, executor):
    refused, kind, got, message = _truncated_while_read(tmp_path, "default", executor)
    assert (refused, kind) == ("refused", "DataError")
    assert 1000 < int(got) < 400_000
    assert f"{str(tmp_path / 'big.npy')!r} was cut short: row " in message


def test_a_mapped_shard_truncated_while_read_kills_a_worker_never_the_consumer(tmp_path):
    refused, kind, got, message = _truncated_while_read(tmp_path, "r", "Processes(workers=1)")
    assert (refused, kind) == ("refused", "WorkerError") and "died" in message  # by SIGBUS, or seen as gone first


def test_mapped_shards_never_run_in_the_consumer_nor_on_the_block_path(tmp_path):
    arrays, paths = _shards(tmp_path, 40, rows=50)
    assert block_schema(c.chain(*[c.from_npy(p, mmap_mode="r") for p in paths])) is None
    assert block_schema(c.chain(*map(c.from_npy, paths))) is not None
    stats = {}
    for mode in (None, "r"):
        plan = c.chain(*[c.from_npy(p, mmap_mode=mode) >> c.map(np.negative) for p in paths])
        cheap = Costs(lambda leaf: (100, 10_000))  # told, not measured: a loaded machine places them alike
        with c.iterate(plan, seed=0, executor=c.Processes(workers=2, inline=cheap)) as run:
            items = list(run)
            stats[mode] = run.executor_stats()
        assert all(np.array_equal(a, -b) for a, b in zip(items, (row for a in arrays for row in a), strict=True))
    assert stats[None]["activations_inline"] + stats[None]["activations_moved"] > 0, stats  # cheap: moved here
    assert stats["r"]["activations_inline"] == stats["r"]["activations_moved"] == 0, stats


def test_a_shard_cut_short_before_it_is_opened_names_the_row(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(12, dtype=np.int32).reshape(6, 2))
    plan = c.from_npy(path)
    os.truncate(path, os.path.getsize(path) - 8)
    with pytest.raises(DataError, match=r"cut short: row 5 of its 6 rows"):
        list(plan)
    np.save(tmp_path / "f.npy", np.asfortranarray(np.arange(12.0).reshape(6, 2)))
    assert [r.tolist() for r in c.from_npy(tmp_path / "f.npy")] == np.arange(12.0).reshape(6, 2).tolist()


def _rewritten(path, dtype=None, shape=None):
    """Rewrite a .npy file in place with as many bytes, read as another dtype or row shape."""
    old = np.load(path)
    new = old.view(dtype) if dtype is not None else old.reshape(shape)
    np.save(path, new)


@pytest.mark.parametrize("change", [{"dtype": np.int32}, {"shape": (10, 8)}, {"shape": (80,)}])
@pytest.mark.parametrize("mode", [None, "r"])
def test_a_shard_rewritten_after_the_plan_was_built_is_a_data_error_not_its_bytes_read_anew(tmp_path, change, mode):
    """The plan keeps the header it read (dtype, shape, data offset); rows read with them from a file rewritten
    since would be other values, silently: opening the shard checks the header first."""
    _, paths = _shards(tmp_path, 2)
    plan = c.mix(*(c.from_npy(p, mmap_mode=mode) for p in paths)) >> c.batch(4)
    first = [b.tolist() for b in c.iterate(plan, seed=3, max_iter=3)]
    _rewritten(paths[1], **change)
    with pytest.raises(DataError, match=r"s1\.npy'? changed since the plan was built"):
        with c.iterate(plan, seed=3, max_iter=40) as run:  # the mix is endless: 40 batches open both shards
            list(run)
    _rewritten(paths[1], dtype=np.float32) if "dtype" in change else _rewritten(paths[1], shape=(20, 4))
    assert [b.tolist() for b in c.iterate(plan, seed=3, max_iter=3)] == first  # as built: read again


def test_an_npz_shard_rewritten_after_the_plan_was_built_is_a_data_error(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((5, 2), np.float32), y=np.arange(5))
    plan = c.from_npz(tmp_path / "a.npz") >> c.batch(2)
    assert len(list(c.iterate(plan))) == 2
    np.savez(tmp_path / "a.npz", x=np.zeros((5, 2), np.float64), y=np.arange(5))
    with pytest.raises(DataError, match=r"a\.npz'? changed since the plan was built.*'x'"):
        list(c.iterate(plan))
    os.remove(tmp_path / "a.npz")
    with pytest.raises(DataError, match="could not be read"):
        list(c.iterate(plan))


def _read_runs(path, starts, counts, places, rows_out):
    rows = c.from_npy(path).open()
    try:
        out = np.full((rows_out, *rows.row_shape), -1, dtype=rows.dtype)
        rows.read_runs(starts, counts, out, places)
        return out
    finally:
        rows.close()


def test_read_runs_reads_each_run_into_the_places_of_its_rows(tmp_path):
    data = np.arange(3000 * 3, dtype=np.int32).reshape(3000, 3)
    np.save(tmp_path / "a.npy", data)
    rng = np.random.default_rng(1)
    starts, counts = [2, 7, 10, 1100], [3, 1, 1025, 1900]  # a run over the buffers one call takes (1024 here)
    rows = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, counts)])
    places = rng.permutation(len(rows) + 5)[: len(rows)]
    out = _read_runs(tmp_path / "a.npy", starts, counts, places.tolist(), len(rows) + 5)
    assert np.array_equal(out[places], data[rows])
    assert (np.delete(out, places, axis=0) == -1).all()  # nothing written elsewhere
    assert _read_runs(tmp_path / "a.npy", [], [], [], 2).tolist() == [[-1] * 3] * 2


def test_read_runs_of_a_file_cut_short_names_the_file_and_the_row(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(12, dtype=np.int32).reshape(6, 2))
    os.truncate(path, os.path.getsize(path) - 12)  # row 4 half there, row 5 gone
    assert _read_runs(path, [0, 3], [2, 1], [2, 0, 1], 3).tolist() == [[2, 3], [6, 7], [0, 1]]
    for starts, counts, row in (([3], [3], 4), ([1, 5], [1, 1], 5)):
        with pytest.raises(DataError, match=rf"{str(path)!r} was cut short: row {row} of its 6 rows"):
            _read_runs(path, starts, counts, list(range(sum(counts))), sum(counts))


@pytest.mark.parametrize("starts, counts, places, out", [
    ([4], [3], [0, 1, 2], np.zeros((3, 2), np.int32)),  # rows 4..6 of 6
    ([-1], [1], [0], np.zeros((1, 2), np.int32)),
    ([0], [2], [0, 2], np.zeros((2, 2), np.int32)),  # a place outside out
    ([0], [2], [0], np.zeros((2, 2), np.int32)),  # fewer places than rows
    ([0], [1], [0], np.zeros((1, 2), np.int64)),
    ([0], [1], [0], np.zeros((1, 3), np.int32)),
    ([0], [1], [0], np.zeros((1, 4), np.int32)[:, ::2]),
])
def test_read_runs_refuses_runs_or_places_that_do_not_fit(tmp_path, starts, counts, places, out):
    np.save(tmp_path / "a.npy", np.arange(12, dtype=np.int32).reshape(6, 2))
    rows = c.from_npy(tmp_path / "a.npy").open()
    with pytest.raises(InvalidArgument, match=r"read_runs\(\) of .*a\.npy.* \(6 rows of shape \(2,\), int32\)"):
        rows.read_runs(starts, counts, out, places)
    rows.close()
    with pytest.raises(DataError, match="was closed"):
        rows.read_runs([0], [1], np.zeros((1, 2), np.int32), [0])
