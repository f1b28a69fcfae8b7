"""combinators.torch against the real torch CPU build: sources split across DataLoader workers."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

import combinators as c  # noqa: E402
from combinators import InvalidArgument, InvalidArgumentType, from_iterable, iterate, stream  # noqa: E402
from combinators.torch import StreamDataset  # noqa: E402


def noisy_rows(source, n, rng):
    """Rows (source, position, random draw): the draw shows which Generator the source got."""
    for position in range(n):
        yield (source, position, int(rng.integers(1_000_000)))


def sources(n_sources=7):
    return [stream(noisy_rows, i, 2 + i % 4) for i in range(n_sources)]


def loaded(dataset, num_workers, batch_size=None):
    rows = []
    for item in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
        if batch_size is None:
            rows.append(tuple(int(v) for v in item))
        else:  # default collate: a list of three tensors of shape (batch,)
            rows.extend(zip(*(t.tolist() for t in item)))
    return rows


@pytest.mark.parametrize("interleave", ["mix", "chain", "round_robin"])
def test_same_items_with_0_1_2_workers_in_the_documented_order(interleave):
    dataset = StreamDataset(sources(), seed=11, interleave=interleave)
    expected = sorted((i, j) for i in range(7) for j in range(2 + i % 4))
    by_workers = {w: loaded(dataset, w) for w in (0, 1, 2)}
    for workers, rows in by_workers.items():
        assert sorted((i, j) for i, j, _ in rows) == expected  # every row of every source exactly once
        assert sorted(rows) == sorted(by_workers[0])  # the same draws, whichever worker ran a source
        assert rows == [tuple(r) for r in iterate(dataset.reference(workers))]
    assert by_workers[0] == by_workers[1]


def test_each_source_keeps_its_order_and_draws_whatever_the_worker():
    dataset = StreamDataset(sources(), seed=3)
    alone = {i: list(iterate(dataset.source_stream(i))) for i in range(7)}
    for workers in (0, 2):
        rows = loaded(dataset, workers)
        for i in range(7):
            assert [r for r in rows if r[0] == i] == alone[i]


def test_batches_from_two_workers_hold_the_same_rows():
    dataset = StreamDataset(sources(), seed=4)
    assert sorted(loaded(dataset, 2, batch_size=3)) == sorted(loaded(dataset, 0))


def test_more_workers_than_sources():
    dataset = StreamDataset(sources(1), seed=0)
    assert loaded(dataset, 2) == loaded(dataset, 0)
    assert list(dataset.worker_stream(1, 2)) == []


def test_seed_and_epoch_choose_the_draws():
    dataset = StreamDataset(sources(), seed=1)
    first = loaded(dataset, 0)
    assert loaded(dataset, 0) == first
    dataset.set_epoch(1)
    second = loaded(dataset, 0)
    assert sorted((i, j) for i, j, _ in second) == sorted((i, j) for i, j, _ in first)
    assert [d for *_, d in second] != [d for *_, d in first]
    assert loaded(StreamDataset(sources(), seed=2), 0) != first


def test_mix_weights_are_split_with_their_sources():
    a, b, c = from_iterable("aaaa"), from_iterable("bb"), from_iterable("cccc")
    dataset = StreamDataset([a, b, c], seed=0, weights=(1, 5, 1e-9))
    assert dataset.worker_stream(0, 2).args[0].weights == (1.0, 1e-9)
    assert sorted(loaded_strings(dataset, 2)) == sorted("aaaabbcccc")


def loaded_strings(dataset, num_workers):
    return [item for item in DataLoader(dataset, batch_size=None, num_workers=num_workers)]


def test_numpy_rows_become_tensors():
    rows = np.arange(12, dtype=np.float32).reshape(6, 2)
    dataset = StreamDataset([from_iterable(rows[:3]), from_iterable(rows[3:])], seed=0, interleave="chain")
    batches = list(DataLoader(dataset, batch_size=3, num_workers=2))
    assert all(isinstance(b, torch.Tensor) and b.shape == (3, 2) for b in batches)
    assert sorted(torch.cat(batches).flatten().tolist()) == rows.flatten().tolist()


_READ_ONLY_ROWS = """
import sys, warnings
import numpy as np, torch
from torch.utils.data import DataLoader
import combinators as c
from combinators.torch import StreamDataset
warnings.simplefilter("error")  # torch warns once per process: this process is fresh
np.save(sys.argv[1], np.arange(40, dtype=np.float32).reshape(20, 2))
rows = c.from_npy(sys.argv[1])
for plan, batch_size in [(rows, 4), (rows >> c.batch(4), None), (rows >> c.map(lambda r: {"x": r}), 4)]:
    for batch in DataLoader(StreamDataset(plan, seed=0), batch_size=batch_size):
        pass
print("ok")
"""


def test_read_only_rows_of_a_memory_map_reach_torch_without_a_warning(tmp_path):
    # from_npy rows are views of a read-only memory map: torch warned "The given NumPy array is not writable"
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _READ_ONLY_ROWS, str(tmp_path / "rows.npy")],
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr[-2000:]
    np.save(tmp_path / "a.npy", np.arange(6.0).reshape(3, 2))
    assert all(row.flags.writeable for row in StreamDataset(c.from_npy(str(tmp_path / "a.npy")), seed=0))


def test_the_dataset_pickles():
    dataset = StreamDataset([from_iterable([1, 2]), from_iterable([3])], seed=9)
    copy = pickle.loads(pickle.dumps(dataset))
    assert list(copy) == list(dataset)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sources": []}, InvalidArgument, "at least one source"),
        ({"sources": [from_iterable([1]), [2]]}, InvalidArgumentType, "source 1 is \\[2\\]"),
        ({"interleave": "zip"}, InvalidArgument, "'zip'"),
        ({"weights": (1, 2)}, InvalidArgument, "2 weights"),
        ({"weights": (1, 1, 1), "interleave": "chain"}, InvalidArgument, "interleave='chain'"),
        ({"seed": -1}, InvalidArgument, "-1"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    arguments = {"sources": [from_iterable([1]), from_iterable([2]), from_iterable([3])], "seed": 0, **kwargs}
    sources_ = arguments.pop("sources")
    with pytest.raises(error, match=match):
        StreamDataset(sources_, **arguments)


def test_bad_worker_numbers_are_named():
    dataset = StreamDataset([from_iterable([1])], seed=0)
    with pytest.raises(InvalidArgument, match="worker must be < num_workers=2, got 2"):
        dataset.worker_stream(2, 2)
    with pytest.raises(InvalidArgument, match="-1"):
        dataset.set_epoch(-1)


# ------------------------------------------------------------------ any plan


def shard_rows(label, shard, n, rng):
    """Rows of one shard: (label, shard, position, a draw from the shard's Generator)."""
    for position in range(n):
        yield np.array([label, shard, position, rng.integers(1_000_000)], dtype=np.int64)


def two_level(n_active=2, rate=3):
    """Per class, a working set of shards (n_active, rate); over classes, a weighted mix."""
    classes = [
        c.mix(*(c.stream(shard_rows, label, j, 5 + j) for j in range(4)), n_active=n_active, rate=rate)
        for label in range(3)
    ]
    return c.mix(*classes, weights=(1, 2, 1), names=["class 0", "class 1", "class 2"])


def batches(dataset, num_workers, batch_size=8):
    return [b.tolist() for b in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)]


def test_a_two_level_plan_gives_the_same_batches_for_the_same_seed():
    dataset = StreamDataset(two_level(), seed=5, epoch_length=400)
    first, second = batches(dataset, 2), batches(dataset, 2)
    assert first == second and len(first) == 50 and len(dataset) == 400
    # the DataLoader takes one batch from each worker in turn
    per_worker = c.round_robin(*(dataset.worker_stream(k, 2) >> c.batch(8) for k in range(2)))
    assert first == [b.tolist() for b in iterate(per_worker)]
    rows = [row for batch in first for row in batch]
    other_seed = batches(StreamDataset(two_level(), seed=6, epoch_length=400), 2)
    assert other_seed != first
    # every shard ran in exactly one worker, and the class weights held within each worker
    worker_of = {}
    for row in iterate(dataset.worker_stream(0, 2)):
        worker_of[(int(row[0]), int(row[1]))] = 0
    for row in iterate(dataset.worker_stream(1, 2)):
        assert (int(row[0]), int(row[1])) not in worker_of
    labels = np.array([row[0] for row in rows])
    assert abs((labels == 1).mean() - 0.5) < 0.1


def test_each_worker_runs_its_share_of_the_plans_sources():
    plan = c.mix(*(c.from_iterable([i] * 3).named(f"s{i}") for i in range(5)), mode="exhaustive")
    dataset = StreamDataset(plan, seed=0)
    assert len(dataset) == 15
    for workers in (0, 1, 2):
        got = sorted(int(x) for x in DataLoader(dataset, batch_size=None, num_workers=workers))
        assert got == sorted(i for i in range(5) for _ in range(3))  # every item once, whatever the workers
    assert sorted(iterate(dataset.worker_stream(1, 2))) == [1, 1, 1, 3, 3, 3]


def test_distributed_shards_split_before_workers():
    plan = c.chain(*(c.from_iterable([i]) for i in range(8)))
    parts = {
        (rank, k): list(iterate(StreamDataset(plan, seed=0, shard=(rank, 2)).worker_stream(k, 2)))
        for rank in range(2) for k in range(2)
    }
    assert parts == {(0, 0): [0, 4], (0, 1): [1, 5], (1, 0): [2, 6], (1, 1): [3, 7]}


def test_an_infinite_plan_needs_an_epoch_length_and_lengths_are_honest():
    with pytest.raises(InvalidArgument, match="infinite plan needs epoch_length"):
        StreamDataset(c.mix(c.from_iterable("ab"), c.from_iterable("c")), seed=0)
    batched = StreamDataset(c.mix(c.from_iterable("ab"), c.from_iterable("c"), mode="exhaustive") >> c.batch(2), seed=0)
    with pytest.raises(TypeError, match="pass epoch_length"):
        len(batched)  # each worker batches its own share: the count depends on the worker count


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), [
    ((two_level(),), {"interleave": "chain"}, InvalidArgument, "apply to a list of sources"),
    (([from_iterable("a")],), {"epoch_length": 3}, InvalidArgument, "apply to a plan"),
    ((two_level(),), {"shard": (2, 2), "epoch_length": 3}, InvalidArgument, "rank must be < world_size"),
    ((two_level(),), {"shard": two_level(), "epoch_length": 3}, InvalidArgumentType, "shard must be"),
    (([from_iterable("a")],), {"weights": two_level()}, InvalidArgumentType, "got a stream"),
    ((iter([from_iterable("a")]),), {}, InvalidArgumentType, "a plan \\(a stream\\) or a sequence"),
])
def test_misplaced_streams_and_options_fail_at_once(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        StreamDataset(*args, seed=0, **kwargs)
