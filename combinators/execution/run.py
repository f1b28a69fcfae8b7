"""Running a stream: `iterate` evaluates a description and returns its `Run`.

The interpreter that walks the description is `combinators.execution.interpreter`;
a run's per-mix statistics are `combinators.execution.stats`. ``iter(stream)``
comes here too: importing this module makes `iterate` the plan layer's interpreter.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from combinators.plan import checks
from combinators.sampling import seeding
from combinators.execution.base import Activation, Executor, resolve_executor
from combinators.errors import IdleExecutorWarning, InvalidArgument, RunStateError
from combinators.execution.interpreter import _Context, activation_state, open_node
from combinators.execution.runstate import FORMAT, check_resume, plan_fingerprint
from combinators.execution.statecheck import seal, validate
from combinators.execution.stats import CHECKPOINT_GROWTH, MixStats, Stats
from combinators.plan.block_path import gathered_in_consumer, placed_row_sources, rank_rows
from combinators.plan.explain import placed_parts, set_executor_resolver
from combinators.plan.stream import set_interpreter, Stream

__all__ = ["iterate", "Run", "RankedRun"]

#: the kinds of executor `IdleExecutorWarning` was given for: once per kind and process
_IDLE_WARNED: set[str] = set()


def _warn_idle(executor: Executor, why: str) -> None:
    kind = type(executor).__name__
    if kind not in _IDLE_WARNED:
        _IDLE_WARNED.add(kind)
        msg = (f"{executor!r} runs nothing in its workers: {why}; explain(plan, executor=...) shows where each part"
               " runs (docs/guide/parallel.md); iterate(plan) in process does the same work without the workers")
        warnings.warn(msg, IdleExecutorWarning, stacklevel=4)


class Run:
    """A running stream: an iterator and a context manager; ``close()`` releases everything.

    Created by `iterate`. ``seed`` is the run's entropy (drawn fresh when
    `iterate` got ``seed=None``, so a run can be replayed), ``stats()`` gives
    per-mix counts and realized vs target proportions.
    """

    def __init__(self, stream: Stream, entropy: int, executor: Executor, max_iter: int | None,
                 resume: dict[str, Any] | None = None, fingerprint: str | None = None,
                 rank_rows: tuple[tuple[int, ...], int, int, int, int] | None = None):
        self.stream, self.seed, self.executor = stream, entropy, executor
        self._fingerprint = fingerprint
        self._session = executor.open()
        self._idle_checked = self._session.in_process  # whether a parallel executor that ran nothing was told
        if not self._idle_checked and all(self._consumer_only(*part) for part in placed_parts(stream)):
            self._idle_checked = True
            _warn_idle(executor, "every part of this plan is on the block path, whose rows the consumer gathers")
        self._ctx = _Context(entropy, self._session, resume and resume.get("counts"))
        self._ctx.rank_rows = rank_rows
        self._offset = resume["items"] if resume else 0  # items of the run before it was resumed
        saved = resume["root"] if resume else None
        self._final: dict[str, Any] | None = None  # the state once the run stopped
        self._root: Activation | None = None
        if saved is not None and saved.get("done"):
            self._final = resume
        else:
            self._root = open_node(stream, (), (0,), self._ctx, saved)
        self._next: Callable[[], Any] | None = None
        self._max_iter = max_iter
        self.items = 0
        self._checkpoint = 1

    def _consumer_only(self, part: Stream, nested: bool) -> bool:
        """Whether ``part`` (``nested`` in a node that runs item by item: `placed_parts`) gives this run's executor
        nothing to run: rows gathered in the consumer from sources it never places (`placed_row_sources`: in
        memory, read in order, or a session that does not place rows)."""
        return gathered_in_consumer(part, nested) and not (self._session.places_rows and placed_row_sources(part))

    def __iter__(self) -> "Run":
        return self

    def _start(self) -> Callable[[], Any]:
        if self._root is None:
            raise StopIteration
        self._next = self._root.iterator().__next__
        return self._next

    def __next__(self) -> Any:
        if self._max_iter is not None and self.items >= self._max_iter:
            self._stop()
        try:
            item = (self._next or self._start())()
        except StopIteration:
            if self._final is None and self._root is not None:
                self._final = self._state({"done": True})
            self.close()
            raise
        except BaseException:
            self.close()
            raise
        self.items += 1
        if self.items >= self._checkpoint:
            self._ctx.record()
            self._checkpoint = max(self.items + 1, int(self.items * CHECKPOINT_GROWTH))
        return item

    def _stop(self) -> None:
        """Stop at ``max_iter``: keep the state there, close, raise StopIteration."""
        if self._final is None and self._root is not None:
            self._final = self.state()
        self.close()
        raise StopIteration

    @property
    def fingerprint(self) -> str:
        """The plan's fingerprint (`~combinators.execution.runstate.plan_fingerprint`), computed once."""
        if self._fingerprint is None:
            self._fingerprint = plan_fingerprint(self.stream)
        return self._fingerprint

    def state(self) -> dict[str, Any]:
        """The run's position as a JSON-serializable dict: pass it to ``iterate(plan, resume=...)``.

        It reflects exactly the items this run has yielded: resuming from it,
        under any executor and worker count, yields the items this run would
        have yielded next. It holds the seed, the plan's fingerprint and, per
        open node activation, what it has decided and holds (mix working
        sets with their Generator states, chain and round-robin positions,
        the items received from each live source activation, transform
        buffers); see docs/guide/resume.md. Its size is bounded by working
        sets and buffers, not by the items yielded. A run that ended (or hit
        ``max_iter``) keeps its final state.

        Raises `RunStateError` when an item a transform holds (a shuffle
        buffer, a cache, an unbatched batch) cannot be encoded without pickle
        (its type is named), or when the run was closed before its end.

        >>> from combinators import from_iterable, iterate, shuffle
        >>> plan = from_iterable(range(10)) >> shuffle(4)
        >>> run = iterate(plan, seed=1)
        >>> first = [next(run) for _ in range(3)]
        >>> rest = list(iterate(plan, resume=run.state()))
        >>> first + rest == list(iterate(plan, seed=1))
        True
        """
        if self._final is not None:
            return self._final
        if self._root is None:
            msg = "the run was closed before its end; take state() before close()"
            raise RunStateError(msg)
        return self._state(activation_state(self._root, self._offset + self.items))

    def _state(self, root: dict[str, Any]) -> dict[str, Any]:
        return seal({"format": FORMAT, "seed": self.seed, "plan": self.fingerprint, "items": self._offset + self.items,
                     "root": root, "counts": self._ctx.counts_state()})

    def close(self) -> None:
        """Stop the run: close every open activation, then the executor session."""
        root, self._root = self._root, None
        self._next = _exhausted
        if not self._idle_checked and self.items:
            self._idle_checked = True
            if self.executor_stats().get("activations", 1) == 0:
                _warn_idle(self.executor, f"{self.items} items and executor_stats()['activations'] == 0")
        try:
            if root is not None:
                root.close()
        finally:
            self._session.close()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def executor_stats(self) -> dict[str, float]:
        """The executor session's counters; empty in-process (nothing is produced ahead there).

        For `Processes` and `ZMQ`: the messages it dropped (``malformed``,
        ``unjoined``, ``rejected``; see `RemoteSession.stats`), and its flow
        (`RemoteSession.flow_stats`): ``activations`` started in workers,
        ``activations_inline`` run in the consumer and ``activations_moved``
        started in a worker and finished in the consumer (cheap leaves, see
        `RemoteSession.runs_here`), ``items_received``, ``items_wasted`` (produced by workers, reached the
        consumer, never consumed: the items of activations closed early,
        mostly those of the drawn-ahead queue when the run stops), and the
        activation start latency ``start_latency_median_ms`` and
        ``start_latency_p99_ms`` (from submit to its first items).

        >>> from combinators import from_iterable
        >>> with iterate(from_iterable("ab"), seed=0) as run:
        ...     run.executor_stats()
        {}
        """
        flow = getattr(self._session, "flow_stats", None)
        return {**self._session.stats(), **(flow() if flow is not None else {})}

    def stats(self) -> "Stats":
        """Per-mix statistics so far, in path order: a list of `MixStats` with a ``plot()``."""
        return Stats(
            MixStats(path, node, self._ctx.current_counts(path), node.probabilities, self._ctx.history.get(path),
                     tuple(running[-1].segment_starts) if running else ())
            for path, (node, _, running) in sorted(self._ctx.mix_counts.items())
        )

    def __repr__(self) -> str:
        return f"<Run of {self.stream!r} seed={self.seed} executor={self.executor!r} items={self.items}>"


def _exhausted() -> Any:
    raise StopIteration


class RankedRun(Run):
    """The run of one data-parallel rank: the items at global positions ``rank, rank + world_size, ...``.

    Created by `iterate` with ``rank`` and ``world_size``. It runs the global
    sequence (every decision), keeps its own items and drops the others';
    ``items`` counts the global items passed, ``own`` its own. Between two of
    its items the global run stands at ``own * world_size``, so `Run.state` is
    the global state there (the state of every rank after ``own`` items).
    ``reads_only_own_rows`` says whether the other ranks' rows are left
    unread (`combinators.plan.block_path.rank_rows`) or made and dropped.
    """

    def __init__(self, stream: Stream, entropy: int, executor: Executor, max_iter: int | None,
                 resume: dict[str, Any] | None, fingerprint: str | None, rank: int, world_size: int):
        ranks = rank_rows(stream)
        first = resume["items"] if resume is not None else 0  # the global position this rank's positions count from
        own_rows = None if ranks is None else (*ranks, rank, world_size, first)
        super().__init__(stream, entropy, executor, None, resume, fingerprint, own_rows)
        self.rank, self.world_size, self.own, self._own_max = rank, world_size, 0, max_iter
        self.reads_only_own_rows = ranks is not None

    def __next__(self) -> Any:
        if self._own_max is not None and self.own >= self._own_max:
            self._stop()
        step = Run.__next__
        for _ in range(self.rank):
            step(self)
        item = step(self)
        self.own += 1
        try:
            for _ in range(self.world_size - 1 - self.rank):
                step(self)
        except StopIteration:
            pass  # the global sequence ended within this round: the next call ends this rank too
        return item

    def __repr__(self) -> str:
        return f"<RankedRun rank {self.rank} of {self.world_size} of {self.stream!r} seed={self.seed} own={self.own}>"


def iterate(
    stream: Stream, *, seed: int | np.random.SeedSequence | None = None, executor: str | Executor = "inprocess",
    max_iter: int | None = None, resume: dict[str, Any] | None = None, rank: int | None = None,
    world_size: int | None = None,
) -> Run:
    """Evaluate ``stream``: a `Run`, an iterator over its items that is also a context manager.

    The same ``seed`` gives the same items whatever the executor
    (``"inprocess"``, ``"processes"``, ``"zmq"``, ``"ray"`` or an `Executor` instance);
    ``seed=None`` draws fresh entropy (kept as ``run.seed``). ``max_iter``
    stops after that many items (of this run, when resumed).

    ``resume`` (a `Run.state`, possibly through ``json.dumps``/``json.loads``)
    continues that run: the items are exactly those it would have yielded
    next, whichever executor took the state. ``seed`` may then be omitted.

    Raises `InvalidArgumentType` if ``stream`` is not a stream, and
    `ResumeError` if ``resume`` is not a run state of this format, of this
    plan (by fingerprint), or of ``seed`` when one is given, or does not fit
    the plan's state schema or its checksum (`statecheck.validate`: the
    field is named).

    >>> from combinators import mix, from_iterable
    >>> s = mix(from_iterable("ab"), from_iterable("xyz"), mode="exhaustive")
    >>> with iterate(s, seed=3) as run:
    ...     out = "".join(run)
    >>> sorted(out) == sorted("abxyz"), out == "".join(iterate(s, seed=3))
    (True, True)
    """
    checks.instance_of("the stream of iterate()", stream, Stream, "a stream description")
    if max_iter is not None:
        max_iter = checks.non_negative_int("max_iter", max_iter)
    ranked = _check_rank(rank, world_size)
    fingerprint, entropy = None, None
    if resume is not None:
        fingerprint = plan_fingerprint(stream)
        check_resume(resume, fingerprint, None if seed is None else seeding.run_entropy(seed))
        validate(resume, stream)
    elif ranked and seed is None:
        msg = ("iterate() with rank= and world_size= needs seed= (or resume=): every rank must draw the "
               "same decisions, and fresh entropy differs per process")
        raise InvalidArgument(msg)
    entropy = resume["seed"] if resume is not None else seeding.run_entropy(seed)
    if ranked:
        return RankedRun(stream, entropy, resolve_executor(executor), max_iter, resume, fingerprint, *ranked)
    return Run(stream, entropy, resolve_executor(executor), max_iter, resume, fingerprint)


def _check_rank(rank: Any, world_size: Any) -> tuple[int, int] | None:
    """``(rank, world_size)`` checked, or None for a single process (both None)."""
    if rank is None and world_size is None:
        return None
    if rank is None or world_size is None:
        msg = f"iterate() takes rank= and world_size= together, got rank={rank!r}, world_size={world_size!r}"
        raise InvalidArgument(msg)
    rank, world_size = checks.non_negative_int("rank", rank), checks.positive_int("world_size", world_size)
    if rank >= world_size:
        msg = f"iterate() rank must be < world_size, got rank={rank}, world_size={world_size}"
        raise InvalidArgument(msg)
    return rank, world_size


set_interpreter(iterate)  # iter(stream) runs here: the plan layer's hooks into execution
set_executor_resolver(resolve_executor)  # explain(plan, executor="processes")
