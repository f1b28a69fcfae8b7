"""Data-parallel training with Ray Train's TorchTrainer over one global order, resumed on another number of workers.

Train 2 workers for 3 steps each, then restart the same run (same name and storage) on 1 worker, which
resumes from the run's latest checkpoint to the end of the epoch:

    python docs/data_parallel_ray.py --storage /tmp/dp-ray --workers 2 --steps 3
    python docs/data_parallel_ray.py --storage /tmp/dp-ray --workers 1

Each run prints rank 0's last metrics: the global position it stands at (``items``) and the ids of the rows of
each batch every rank trained on (``seen``, one list per rank). See docs/guide/data-parallel.md; the test
tests/test_ray_train.py runs ``train``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import ray.train
import torch
import torch.distributed as dist
from ray import cloudpickle
from ray.train.torch import TorchTrainer

import combinators as c
import data_parallel  # the DDP example beside this one (docs/data_parallel.py): its training steps

cloudpickle.register_pickle_by_value(data_parallel)  # Ray's workers cannot import it: its code travels by value

SHARDS, ROWS = 6, 20


def make_plan() -> c.Stream:
    """One epoch over ``SHARDS`` in-memory shards of rows ``[id, feature]`` (float32, the id ``1000 * shard +
    row``), every row once, mixed 1:1, in batches of 4."""
    shards = []
    for shard in range(SHARDS):
        ids = 1000 * shard + np.arange(ROWS + shard)
        shards.append(c.from_arrays(np.stack([ids, np.sin(ids)], axis=1).astype(np.float32)))
    return c.mix(*shards, mode="exhaustive") >> c.batch(4, partial=True)


def train_loop(config: dict) -> None:
    """One Ray Train worker: its share of the global order, a DDP step per batch, the global state in the checkpoint."""
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    model = torch.nn.Linear(1, 1)
    checkpoint = ray.train.get_checkpoint()  # the run's latest checkpoint when it is restarted, else None
    if checkpoint is None:
        run = c.iterate(config["plan"], seed=config["seed"], rank=rank, world_size=world_size)
    else:
        with checkpoint.as_directory() as folder:
            state = json.loads((Path(folder) / "state.json").read_text())
            model.load_state_dict(torch.load(Path(folder) / "model.pt"))
        run = c.iterate(config["plan"], resume=state, rank=rank, world_size=world_size)  # any world size
    model = torch.nn.parallel.DistributedDataParallel(model)  # TorchTrainer has set up gloo
    seen = data_parallel.train_steps(model, run, config["steps"])
    everyone = [None] * world_size
    dist.all_gather_object(everyone, seen)  # rank 0's metrics are the ones Ray Train keeps
    state = run.state()  # global: every rank took the same number of steps (or the epoch is done)
    with tempfile.TemporaryDirectory() as folder:
        if rank == 0:
            (Path(folder) / "state.json").write_text(json.dumps(state))
            torch.save(model.module.state_dict(), Path(folder) / "model.pt")
        ray.train.report({"items": state["items"], "seen": everyone},
                         checkpoint=ray.train.Checkpoint.from_directory(folder) if rank == 0 else None)


def train(storage: Path, workers: int, steps: int | None = None, name: str = "data-parallel") -> ray.train.Result:
    """Run (or restart, when ``storage / name`` holds a checkpoint) the training on ``workers`` CPU workers."""
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"plan": make_plan(), "seed": 0, "steps": steps},
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=False),
        run_config=ray.train.RunConfig(name=name, storage_path=str(Path(storage).resolve())),
    )
    return trainer.fit()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", type=Path, required=True, help="where Ray Train keeps the run's checkpoints")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="steps per worker (default: to the epoch's end)")
    args = parser.parse_args()
    result = train(args.storage, args.workers, args.steps)
    print(json.dumps(result.metrics))


if __name__ == "__main__":
    main()
