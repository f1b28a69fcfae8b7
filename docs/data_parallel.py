"""Data-parallel training with torch DDP (gloo) over one global order of batches, resumable on another world size.

Run 4 ranks on one machine, for 3 steps each, then resume on 2 ranks to the end of the epoch:

    torchrun --nproc-per-node=4 --master-addr=127.0.0.1 docs/data_parallel.py --out /tmp/dp/four --steps 3
    torchrun --nproc-per-node=2 --master-addr=127.0.0.1 docs/data_parallel.py --out /tmp/dp/two \\
        --resume /tmp/dp/four/state.json

Each rank writes ``rank<r>.json`` (the ids of the rows of each batch it trained on, and the global state
after its last step); rank 0 also writes ``state.json``. See docs/guide/data-parallel.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import combinators as c
from combinators.torch import DistributedDataset

SHARDS, ROWS = 12, 40


def make_shards(folder: Path) -> None:
    """``SHARDS`` .npy files of rows ``[id, feature]`` (float32), the id ``1000 * shard + row``."""
    folder.mkdir(parents=True, exist_ok=True)
    for shard in range(SHARDS):
        path = folder / f"shard{shard:03d}.npy"
        if not path.exists():
            ids = 1000 * shard + np.arange(ROWS + shard)
            rows = np.stack([ids, np.sin(ids)], axis=1).astype(np.float32)
            np.save(folder / f".tmp{shard}.npy", rows)
            os.replace(folder / f".tmp{shard}.npy", path)  # atomic: ranks may make them at once


def make_plan(folder: Path) -> c.Stream:
    """One epoch: every row of every shard once, mixed 1:1 over the shards, in batches of 8."""
    shards = [c.from_npy(path) for path in sorted(Path(folder).glob("shard*.npy"))]
    return c.mix(*shards, mode="exhaustive") >> c.batch(8, partial=True)


def train_steps(model: torch.nn.parallel.DistributedDataParallel, batches, steps: int | None) -> list[list[int]]:
    """Up to ``steps`` SGD steps of ``model`` (a ``Linear(1, 1)``) over ``batches`` of rows ``[id, feature]``
    (float32); returns the ids of the rows of each batch, step by step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    seen = []
    with model.join():  # the ranks' last steps may differ by one batch at the epoch's end
        for batch in itertools.islice(batches, steps):  # islice takes no batch beyond the last step
            batch = torch.as_tensor(batch)
            loss = (model(batch[:, 1:]) - batch[:, 1:]).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen.append(batch[:, 0].to(torch.int64).tolist())
    return seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shards", type=Path, default=Path("/tmp/dp/shards"))
    parser.add_argument("--steps", type=int, default=None, help="steps per rank (default: to the epoch's end)")
    parser.add_argument("--resume", type=Path, default=None, help="a global state.json to continue from")
    args = parser.parse_args()

    dist.init_process_group("gloo")  # rank, world size and the master's address come from torchrun
    rank = dist.get_rank()
    if rank == 0:
        make_shards(args.shards)
    dist.barrier()

    data = DistributedDataset(make_plan(args.shards), seed=0)  # rank and world size from torch.distributed
    if args.resume is not None:
        data.load_state_dict(json.loads(args.resume.read_text()))
    loader = torch.utils.data.DataLoader(data, batch_size=None)

    torch.manual_seed(0)
    seen = train_steps(torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(1, 1)), loader, args.steps)
    state = data.state_dict()  # global: every rank took the same number of steps
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rank{rank}.json").write_text(json.dumps({"seen": seen, "state": state}))
    if rank == 0:
        (args.out / "state.json").write_text(json.dumps(state))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
