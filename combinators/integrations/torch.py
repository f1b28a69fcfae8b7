"""PyTorch: an `IterableDataset` whose sources are split across DataLoader workers.

``StreamDataset(sources, seed=...)`` holds a sequence of streams, the
*sources* (typically one per shard file). Its items are, with any number of
``torch.utils.data.DataLoader`` workers, **every item of every source exactly
once per epoch**, and each source yields the same items in the same order
whichever worker runs it. Precisely:

- Source ``i`` is evaluated as its own run, seeded by ``(seed, epoch, i)``:
  its items do not depend on the worker count or on which worker runs it.
- With ``W`` workers (``num_workers=0`` counts as one), worker ``k`` takes
  sources ``k, k + W, k + 2W, ...`` and interleaves them as ``interleave``
  says: ``"mix"`` (an exhaustive `mix`, weighted by ``weights``, seeded by
  ``(seed, epoch, W, k)``), ``"chain"`` (one after the other) or
  ``"round_robin"``. A worker with no source yields nothing.
- The DataLoader (with its default ``in_order=True``) then takes one item
  (or one batch, with ``batch_size``) from each worker in turn, skipping
  exhausted workers. So the order is exactly that of
  ``dataset.reference(W)``: ``round_robin(*(dataset.worker_stream(k, W) for k in range(W)))``.

Hence, for a given seed and epoch, the items are the same multiset for any
worker count, and the same sequence for 0 and 1 workers. Sources should be
finite: an epoch ends when every source has (bound an infinite one with
``.take(n)``). Call
``set_epoch(e)`` before each epoch for fresh draws (as with torch's
``DistributedSampler``); with ``persistent_workers=True`` the workers keep
the epoch they started with.

**Any plan**: ``StreamDataset(plan, seed=..., epoch_length=None, shard=None)``
takes one stream, however nested (hierarchical mixes with ``n_active`` and
``rate``, chains, round-robins, transforms). It is split by its sources with
`combinators.plan.sharding.shard_plan`: with ``W`` workers, worker ``k`` runs
part ``k`` of ``W`` (the leaves numbered ``k, k + W, ...`` in depth-first
order, each mix keeping its fields and its kept children's weights), seeded
by ``(seed, epoch, W, k)``. So for a seed, an epoch and a worker count the
batches are the same at every run; a different worker count gives other
(equally distributed) draws. Transforms above a combinator (``plan >>
batch(32)``) run in each worker on its share. ``epoch_length=N`` ends an
epoch after ``N`` items in all (worker ``k`` yields ``N // W`` items, one
more if ``k < N % W``); an infinite plan needs it, and it is the way to
bound one (a ``take`` above a combinator would take in each worker).
``shard=(rank, world_size)`` splits across distributed processes first:
rank ``r``'s worker ``k`` runs part ``r * W + k`` of ``world_size * W``.
``dataset.worker_stream(k, W)`` is what worker ``k`` runs, and
``dataset.reference(W)`` the order a DataLoader yields with ``W`` workers.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import torch.utils.data

from combinators.plan import checks
from combinators.errors import InvalidArgument, InvalidArgumentType
from combinators.execution.run import iterate
from combinators.integrations.distributed import DistributedDataset, distributed_rank, global_state
from combinators.plan.lengths import COUNT_KEEPING, INFINITE, size
from combinators.plan.sharding import shard_plan
from combinators.plan.mixes import mix, round_robin
from combinators.plan.sources import Source, from_iterable, stream
from combinators.plan.stream import Apply, Stream, chain

__all__ = ["StreamDataset", "INTERLEAVES", "DistributedDataset", "global_state", "distributed_rank"]

#: how a worker interleaves its sources
INTERLEAVES = ("mix", "chain", "round_robin")
_SOURCE, _WORKER = 0, 1


def _entropy(*words: int) -> int:
    """A 64-bit seed derived from ``words`` by numpy's SeedSequence (independent streams per tuple)."""
    return int(np.random.SeedSequence(list(words)).generate_state(1, np.uint64)[0])


def _unwrapped(worker: Stream) -> tuple[Stream, int]:
    """A worker stream ``stream(seeded_items, plan, seed)`` as ``(plan, seed)`` (its own run, whose state resumes)."""
    if isinstance(worker, Source) and worker.fn is seeded_items:
        return worker.args[0], worker.args[1]
    return worker, 0


def _items(run: Any) -> Iterator[Any]:
    with run:
        for item in run:
            yield writable(item)


def writable(item: Any) -> Any:
    """``item`` with each read-only ndarray in it (a row or batch of a ``from_npy`` memory map) copied.

    Torch turns arrays into tensors that share their memory and warns ("The
    given NumPy array is not writable") at each read-only one; a copy is the
    exact answer (a tensor over a read-only map would be undefined behaviour
    when written). Writable arrays, and items without arrays, pass unchanged;
    dicts, tuples and lists are walked.

    >>> row = np.arange(3.0)
    >>> row.flags.writeable = False
    >>> out = writable({"x": row, "y": (row, 1)})
    >>> out["x"].flags.writeable, out["y"][0].flags.writeable, out["y"][1]
    (True, True, 1)
    >>> writable(np.arange(2.0)).base is None  # a writable array is not copied
    True
    """
    if isinstance(item, np.ndarray):
        return item if item.flags.writeable else item.copy()
    if isinstance(item, dict):
        return {key: writable(value) for key, value in item.items()}
    if isinstance(item, tuple):
        values = [writable(value) for value in item]
        return type(item)(*values) if hasattr(item, "_fields") else tuple(values)  # a namedtuple keeps its type
    if isinstance(item, list):
        return [writable(value) for value in item]
    return item


def seeded_items(description: Stream, seed: int) -> Iterator[Any]:
    """The items of ``description`` run in-process with its own ``seed`` (a source of the dataset)."""
    with iterate(description, seed=seed) as run:
        yield from run


class StreamDataset(torch.utils.data.IterableDataset):
    """An ``IterableDataset`` over ``sources``, split by source across DataLoader workers.

    ``sources`` is a non-empty sequence of streams; ``seed`` a non-negative
    int; ``interleave`` one of `INTERLEAVES`; ``weights`` (``"mix"`` only)
    one non-negative weight per source. See the module docstring for the
    exact items and order.

    Raises `InvalidArgumentType` for a source that is not a stream, and
    `InvalidArgument` for an empty ``sources``, an unknown ``interleave``
    or weights that do not fit.

    >>> from combinators import from_iterable
    >>> data = StreamDataset([from_iterable([1, 2]), from_iterable([3]), from_iterable([4, 5])], seed=0,
    ...                      interleave="chain")
    >>> list(data)  # no DataLoader: as one worker
    [1, 2, 3, 4, 5]
    >>> [list(data.worker_stream(k, 2)) for k in range(2)]  # worker 0: sources 0 and 2; worker 1: source 1
    [[1, 2, 4, 5], [3]]
    >>> list(data.reference(2))  # the order of DataLoader(data, num_workers=2, batch_size=None)
    [1, 3, 2, 4, 5]
    """

    def __init__(self, sources: Stream | Sequence[Stream], *, seed: int, interleave: str = "mix",
                 weights: Sequence[float] | None = None, epoch_length: int | None = None,
                 shard: tuple[int, int] | None = None):
        super().__init__()
        self.seed = checks.non_negative_int("StreamDataset seed", seed)
        self.epoch = 0
        self.epoch_length = None if epoch_length is None else checks.positive_int("StreamDataset epoch_length", epoch_length)
        self.shard = _check_shard(shard)
        if isinstance(sources, Stream):
            self._init_plan(sources, interleave, weights)
            return
        self.plan = None
        if self.epoch_length is not None or self.shard != (0, 1):
            msg = "StreamDataset epoch_length and shard apply to a plan (one stream), not to a list of sources"
            raise InvalidArgument(msg)
        self._init_sources(sources, interleave, weights)

    def _init_plan(self, plan: Stream, interleave: str, weights: Any) -> None:
        if interleave != "mix" or weights is not None:
            msg = (f"StreamDataset interleave and weights apply to a list of sources; a plan (one stream) "
                   f"says how its sources are combined itself, got interleave={interleave!r}, weights={weights!r}")
            raise InvalidArgument(msg)
        if size(plan) == INFINITE and self.epoch_length is None:
            msg = f"StreamDataset over an infinite plan needs epoch_length= (items per epoch), got {plan!r}"
            raise InvalidArgument(msg)
        self.plan, self.sources, self.interleave, self.weights = plan, (), None, None

    def _init_sources(self, sources: Sequence[Stream], interleave: str, weights: Any) -> None:
        if not isinstance(sources, Sequence) or isinstance(sources, (str, bytes)):
            msg = f"StreamDataset takes a plan (a stream) or a sequence of streams, got {sources!r} ({type(sources).__name__})"
            raise InvalidArgumentType(msg)
        if isinstance(weights, Stream):
            msg = f"StreamDataset weights must be a sequence of numbers, got a stream {weights!r}"
            raise InvalidArgumentType(msg)
        self.sources = tuple(sources)
        if not self.sources:
            msg = "StreamDataset needs at least one source, got an empty sequence"
            raise InvalidArgument(msg)
        for position, source in enumerate(self.sources):
            if not isinstance(source, Stream):
                msg = f"StreamDataset sources must be streams; source {position} is {source!r} ({type(source).__name__})"
                raise InvalidArgumentType(msg)
        self.interleave = checks.one_of("StreamDataset interleave", interleave, INTERLEAVES)
        if weights is not None:
            if interleave != "mix":
                msg = f"StreamDataset weights apply to interleave='mix' only, got interleave={interleave!r}"
                raise InvalidArgument(msg)
            mix(*self.sources, weights=weights)  # validates them, naming the bad value
            weights = tuple(float(w) for w in weights)
        self.weights = weights

    def set_epoch(self, epoch: int) -> None:
        """Use the draws of ``epoch`` from the next iteration on (call it before each epoch)."""
        self.epoch = checks.non_negative_int("StreamDataset epoch", epoch)

    def source_stream(self, index: int) -> Stream:
        """Source ``index`` as a self-seeded stream: the same items wherever it runs."""
        return stream(seeded_items, self.sources[index], _entropy(self.seed, self.epoch, _SOURCE, index))

    def worker_stream(self, worker: int, num_workers: int) -> Stream:
        """What worker ``worker`` of ``num_workers`` yields: its sources, interleaved, self-seeded."""
        num_workers = checks.positive_int("num_workers", num_workers)
        worker = checks.non_negative_int("worker", worker)
        if worker >= num_workers:
            msg = f"worker must be < num_workers={num_workers}, got {worker}"
            raise InvalidArgument(msg)
        if self.plan is not None:
            return self._plan_part(worker, num_workers)
        mine = range(worker, len(self.sources), num_workers)
        if not mine:
            return from_iterable(())
        parts = [self.source_stream(i) for i in mine]
        if self.interleave == "chain":
            combined = chain(*parts)
        elif self.interleave == "round_robin":
            combined = round_robin(*parts)
        else:
            weights = None if self.weights is None else [self.weights[i] for i in mine]
            combined = mix(*parts, weights=weights, mode="exhaustive")
        return stream(seeded_items, combined, _entropy(self.seed, self.epoch, _WORKER, num_workers, worker))

    def _plan_part(self, worker: int, num_workers: int) -> Stream:
        rank, world = self.shard
        index, count = rank * num_workers + worker, world * num_workers
        part = shard_plan(self.plan, index, count)
        if part is None:
            return from_iterable(())
        if self.epoch_length is not None:
            share = self.epoch_length // num_workers + (worker < self.epoch_length % num_workers)
            part = part.take(share)
        return stream(seeded_items, part, _entropy(self.seed, self.epoch, _WORKER, count, index))

    def __len__(self) -> int:
        """Items per epoch (over every worker), when known whatever the worker count.

        That is ``epoch_length`` if given; for a list of sources or a plan
        whose transforms above its combinators keep the item count (``map``,
        ``tuples``, ``shuffle``...), the plan's `combinators.length`. Raises
        `TypeError` otherwise (as ``len`` does for an unsized object).
        """
        if self.epoch_length is not None:
            return self.epoch_length
        plans = [self.plan] if self.plan is not None else list(self.sources)
        sizes = [size(p) for p in plans]  # a listed source runs whole in one worker: its length holds
        if all(isinstance(n, int) for n in sizes) and (self.plan is None or _count_kept_above_leaves(self.plan)):
            return sum(sizes)
        msg = f"the length of {self!r} is not known without running it (pass epoch_length=)"
        raise TypeError(msg)

    def reference(self, num_workers: int) -> Stream:
        """The order a DataLoader with ``num_workers`` workers yields items in (``batch_size=None``)."""
        num_workers = max(1, checks.non_negative_int("num_workers", num_workers))
        return round_robin(*(self.worker_stream(k, num_workers) for k in range(num_workers)))

    def __iter__(self) -> Iterator[Any]:
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        plan, seed = _unwrapped(self.worker_stream(worker, num_workers))
        resume, self._resume = getattr(self, "_resume", None), None
        self._run = iterate(plan, seed=seed) if resume is None else iterate(plan, resume=resume)
        return _items(self._run)

    def state_dict(self) -> dict[str, Any]:
        """This worker's position: the epoch and its run's state (`~combinators.Run.state`), JSON values.

        With ``torchdata.stateful_dataloader.StatefulDataLoader`` (any
        ``num_workers``), the loader takes it in each worker with the batches
        it delivers, and `load_state_dict` gives it back on resume: the
        resumed loader yields exactly the batches the uninterrupted one would
        have yielded next. Inside a worker's run, each source is a run of its
        own: a resumed source activation runs again and skips the items
        already yielded.
        """
        run = getattr(self, "_run", None)
        return {"epoch": self.epoch, "run": getattr(self, "_resume", None) if run is None else run.state()}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_run", None)  # a running iteration stays in its process
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from `state_dict`: the next iteration continues where that one stopped."""
        self.epoch, self._resume, self._run = state["epoch"], state["run"], None

    def __repr__(self) -> str:
        if self.plan is not None:
            return (f"StreamDataset({self.plan!r}, seed={self.seed}, epoch_length={self.epoch_length}, "
                    f"shard={self.shard}, epoch={self.epoch})")
        return (f"StreamDataset({len(self.sources)} sources, seed={self.seed}, interleave={self.interleave!r}, "
                f"epoch={self.epoch})")


def _check_shard(shard: Any) -> tuple[int, int]:
    if shard is None:
        return (0, 1)
    if isinstance(shard, Stream) or not isinstance(shard, Sequence) or len(shard) != 2:
        msg = f"StreamDataset shard must be (rank, world_size), got {shard!r}"
        raise InvalidArgumentType(msg)
    rank = checks.non_negative_int("StreamDataset shard rank", shard[0])
    world = checks.positive_int("StreamDataset shard world_size", shard[1])
    if rank >= world:
        msg = f"StreamDataset shard rank must be < world_size, got shard={tuple(shard)!r}"
        raise InvalidArgument(msg)
    return (rank, world)


def _count_kept_above_leaves(node: Stream) -> bool:
    """Whether every transform above a combinator keeps the item count (so parts' lengths add up)."""
    if isinstance(node, Apply) and node.stream.children:
        if not all(isinstance(t, COUNT_KEEPING) for t in node.transforms):
            return False
    return all(_count_kept_above_leaves(child) for child in node.children)
