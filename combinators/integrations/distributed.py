"""Data-parallel training: one global order of items for any number of ranks and DataLoader workers.

``DistributedDataset(plan, seed=...)`` is an ``IterableDataset`` whose items,
on rank ``r`` of ``w`` (read from ``torch.distributed`` when it is
initialised, or given), are the items at global positions ``r, r + w, r +
2w, ...`` of the single-process sequence ``iterate(plan, seed=...)``. Within
a rank, DataLoader worker ``k`` of ``W`` runs ``iterate(plan, rank=r + k * w,
world_size=w * W)``, so the loader (``batch_size=None``, the default
``in_order=True``), which takes one item from each worker in turn, yields
exactly the rank's positions in order. Batch in the plan (``plan >>
batch(32)``): a global position is then a batch.

Its state (`DistributedDataset.state_dict`) is a global run state
(`combinators.Run.state`): taken when every rank (and every worker) has
yielded the same number of items ``k``, it is the state at global position
``k * w * W``, and `DistributedDataset.load_state_dict` continues the global
sequence on any world size and worker count. Under torchdata's
``StatefulDataLoader`` the loader keeps each worker's state and resumes with
the same world size and workers; `global_state` takes the one global state
out of a loader's ``state_dict()`` for a resume on another world size.

Unlike `combinators.plan.sharding.shard_plan` (``StreamDataset(plan,
shard=...)``), which gives each rank a part of the plan's sources and so an
order that depends on the world size, the order here is the same whatever
the world size; the cost is that every rank draws every decision (integer
work), and, unless the plan's root is a mix of row sources (alone or under
one ``batch``), makes every item and keeps its own
(`combinators.execution.run.RankedRun.reads_only_own_rows`).
"""

from __future__ import annotations

from typing import Any, Iterator

import torch.utils.data

from combinators.errors import InvalidArgument, ResumeError
from combinators.execution.run import iterate
from combinators.plan import checks
from combinators.plan.stream import Stream

__all__ = ["DistributedDataset", "global_state", "distributed_rank"]


def distributed_rank() -> tuple[int, int]:
    """``(rank, world_size)`` of this process in ``torch.distributed``, or ``(0, 1)`` when it is not initialised."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class DistributedDataset(torch.utils.data.IterableDataset):
    """The items of ``plan`` at this rank's global positions (see the module docstring).

    ``rank`` and ``world_size`` default to ``torch.distributed``'s (or 0 and
    1 when it is not initialised); ``seed`` is the run's seed, the same on
    every rank. Raises `InvalidArgument` for a bad seed, rank or world size.

    >>> from combinators import from_iterable
    >>> plan = from_iterable(range(10))
    >>> [list(DistributedDataset(plan, seed=0, rank=r, world_size=3)) for r in range(3)]
    [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    """

    def __init__(self, plan: Stream, *, seed: int, rank: int | None = None, world_size: int | None = None):
        super().__init__()
        self.plan = checks.instance_of("the plan of DistributedDataset", plan, Stream, "a stream description")
        self.seed = checks.non_negative_int("DistributedDataset seed", seed)
        if (rank is None) != (world_size is None):
            msg = f"DistributedDataset takes rank= and world_size= together, got rank={rank!r}, world_size={world_size!r}"
            raise InvalidArgument(msg)
        self.rank, self.world_size = distributed_rank() if rank is None else (rank, world_size)
        iterate(plan, seed=self.seed, rank=self.rank, world_size=self.world_size).close()  # checks them
        self._resume: dict[str, Any] | None = None
        self._run: Any = None
        self._last: dict[str, Any] | None = None  # the state of an iteration left

    def __iter__(self) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        rank, world = self.rank + worker * self.world_size, self.world_size * workers
        resume, self._resume, self._last = self._resume, None, None
        if resume is None:
            self._run = iterate(self.plan, seed=self.seed, rank=rank, world_size=world)
        else:
            self._run = iterate(self.plan, resume=resume, rank=rank, world_size=world)
        return self._items(self._run)

    def _items(self, run: Any) -> Iterator[Any]:
        try:
            for item in run:  # not ``yield from``, which would close the run before its state is taken
                yield item
        finally:
            self._last = run.state()  # the iteration was left (or ended): its state stays
            run.close()

    def state_dict(self) -> dict[str, Any]:
        """``{"run": state}``: the global run state of this rank's (or worker's) run, JSON values.

        In the process that iterates (with DataLoader workers, use torchdata's
        ``StatefulDataLoader``, which asks each worker). Kept when the
        iteration is left: iterate with ``itertools.islice(loader, steps)``
        rather than breaking out of a loop, which has already taken one more item.
        """
        if self._run is None:
            return {"run": self._resume}
        return {"run": self._last if self._last is not None else self._run.state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a global state (`state_dict` or `global_state`), on this dataset's rank and world size."""
        self._resume, self._run, self._last = state["run"], None, None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_run"] = None  # a running iteration stays in its process
        return state

    def __repr__(self) -> str:
        return f"DistributedDataset({self.plan!r}, seed={self.seed}, rank={self.rank}, world_size={self.world_size})"


def global_state(loader_state: dict[str, Any]) -> dict[str, Any]:
    """The global state in a ``StatefulDataLoader.state_dict()`` over a `DistributedDataset`.

    With workers, each worker's dataset state is a global state; they are
    the same when every worker has yielded the same number of items (the
    loader has yielded a multiple of ``num_workers``). Returns it, for
    `DistributedDataset.load_state_dict` on any world size; raises
    `ResumeError` when the workers stand at different positions (naming them).
    """
    states = list(_dataset_states(loader_state))
    if not states:
        msg = f"no DistributedDataset state in this loader state (keys {sorted(loader_state)!r})"
        raise ResumeError(msg)
    runs = [s["run"] for s in states]
    positions = sorted({-1 if run is None else run["items"] for run in runs})
    if len(positions) > 1:
        msg = (f"the loader's workers stand at different global positions {positions}: take the state when the "
               "loader has yielded a multiple of num_workers items (every worker the same number)")
        raise ResumeError(msg)
    return states[0]


def _dataset_states(state: Any) -> Iterator[dict[str, Any]]:
    """Every ``dataset_state`` holding a run, wherever the loader nests it."""
    if isinstance(state, dict):
        if "dataset_state" in state and isinstance(state["dataset_state"], dict) and "run" in state["dataset_state"]:
            yield state["dataset_state"]
        for key, value in state.items():
            if key != "dataset_state":
                yield from _dataset_states(value)
    elif isinstance(state, (list, tuple)):
        for value in state:
            yield from _dataset_states(value)
