"""DistributedDataset: the global order through DataLoader workers, StatefulDataLoader and real gloo ranks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
import torch.utils.data  # noqa: E402

import combinators as c  # noqa: E402
from combinators.errors import InvalidArgument, ResumeError  # noqa: E402
from combinators.torch import DistributedDataset, global_state  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def plan():
    sources = [c.from_arrays(np.arange(1000 * i, 1000 * i + n)) for i, n in enumerate((23, 41, 17, 30))]
    return c.mix(*sources, mode="exhaustive") >> c.batch(4, partial=True)


def values(items):
    return [np.asarray(item).tolist() for item in items]


WHOLE = values(c.iterate(plan(), seed=9))


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("rank, world_size", [(0, 1), (1, 3), (2, 3)])
def test_a_rank_s_loader_yields_its_global_positions(rank, world_size, num_workers):
    data = DistributedDataset(plan(), seed=9, rank=rank, world_size=world_size)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=num_workers)
    assert values(loader) == WHOLE[rank::world_size]


def test_rank_and_world_size_default_to_a_single_process():
    data = DistributedDataset(plan(), seed=9)
    assert (data.rank, data.world_size) == (0, 1) and values(data) == WHOLE


def test_bad_arguments_are_refused():
    with pytest.raises(InvalidArgument, match="together"):
        DistributedDataset(plan(), seed=0, rank=1)
    with pytest.raises(InvalidArgument, match="rank=3, world_size=3"):
        DistributedDataset(plan(), seed=0, rank=3, world_size=3)


def test_a_state_resumes_on_another_world_size_and_worker_count():
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    k, world = 4, 3
    states = []
    for rank in range(world):
        loader = stateful.StatefulDataLoader(DistributedDataset(plan(), seed=9, rank=rank, world_size=world),
                                             batch_size=None, num_workers=2)
        taken = []
        for batch in loader:
            taken.append(np.asarray(batch).tolist())
            if len(taken) == k:
                break
        assert taken == WHOLE[rank : k * world : world]
        states.append(global_state(json.loads(json.dumps(loader.state_dict()))))
    assert all(s == states[0] for s in states) and states[0]["run"]["items"] == k * world
    rest = []
    runs = []
    for rank in range(2):
        data = DistributedDataset(plan(), seed=9, rank=rank, world_size=2)
        data.load_state_dict(states[0])
        runs.append(values(torch.utils.data.DataLoader(data, batch_size=None, num_workers=rank)))  # 0 and 1 workers
    for i in range(max(map(len, runs))):
        rest += [r[i] for r in runs if i < len(r)]
    assert WHOLE[: k * world] + rest == WHOLE


def test_a_loader_state_between_workers_is_refused_for_another_world_size():
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    loader = stateful.StatefulDataLoader(DistributedDataset(plan(), seed=9, rank=0, world_size=2),
                                         batch_size=None, num_workers=2)
    iterator = iter(loader)
    next(iterator)  # worker 0 has yielded one item, worker 1 none
    with pytest.raises(ResumeError, match="different global positions"):
        global_state(loader.state_dict())


def test_the_same_world_size_resumes_through_the_stateful_loader():
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    make = lambda: stateful.StatefulDataLoader(DistributedDataset(plan(), seed=9, rank=1, world_size=2),
                                               batch_size=None, num_workers=2)
    loader = make()
    iterator, first = iter(loader), []
    for _ in range(3):
        first.append(np.asarray(next(iterator)).tolist())
    state = json.loads(json.dumps(loader.state_dict()))
    resumed = make()
    resumed.load_state_dict(state)
    assert first + values(resumed) == WHOLE[1::2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(world_size: int, out: Path, *extra: str) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc-per-node={world_size}",
               "--master-addr=127.0.0.1", f"--master-port={free_port()}",
               str(ROOT / "docs" / "data_parallel.py"), "--out", str(out), *extra]
    scratch = out.parent / "scratch"  # torchrun's and torch's own temporary files
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.mark.timeout(600)
def test_gloo_ranks_resume_on_another_world_size(tmp_path):
    """4 ranks (torch.distributed, gloo on 127.0.0.1) take 3 batches each; 2 ranks resume and finish the epoch."""
    shards = tmp_path / "shards"
    first, second = tmp_path / "four", tmp_path / "two"
    torchrun(4, first, "--shards", str(shards), "--steps", "3")
    reports = [json.loads((first / f"rank{r}.json").read_text()) for r in range(4)]
    states = [r["state"] for r in reports]
    assert all(s == states[0] for s in states) and states[0]["run"]["items"] == 12
    (tmp_path / "state.json").write_text(json.dumps(states[0]))
    torchrun(2, second, "--shards", str(shards), "--resume", str(tmp_path / "state.json"))
    resumed = [json.loads((second / f"rank{r}.json").read_text()) for r in range(2)]
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import data_parallel
    finally:
        sys.path.pop(0)
    whole = [np.asarray(b)[:, 0].astype(int).tolist() for b in c.iterate(data_parallel.make_plan(shards), seed=0)]
    seen = [b for r in reports for b in r["seen"]] + [b for r in resumed for b in r["seen"]]
    assert sorted(map(tuple, seen)) == sorted(map(tuple, whole))  # none lost, none repeated
    assert [reports[i % 4]["seen"][i // 4] for i in range(12)] == whole[:12]  # in the global order
    assert [resumed[i % 2]["seen"][i // 2] for i in range(len(whole) - 12)] == whole[12:]
