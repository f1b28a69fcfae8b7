"""``combinators bench transport``: executor throughput against raw pyzmq, measured in the same run.

Reference: a forked process sends the same float32 array N times over a raw
pyzmq PUSH socket, zero-copy (``copy=False``), to a PULL socket in this
process that rebuilds each array with ``np.frombuffer``. Measured: a
`Processes` and a `ZMQ` executor with one worker run a source yielding
``{"x": array}`` N times, and the consumer iterates the activation. Both
sides count from before the fork (or ``open()``) to the last item, so startup
is included. The reference uses the executor's transport: ``ipc://`` for
`Processes`, loopback ``tcp://`` for `ZMQ`.

With ``--quick`` the sizes are too small for startup not to dominate, so the
figures are printed without targets.

A second figure times a CPU-bound plan: 12 sources, each item about 2 ms of
numpy work, mixed with ``n_active=4``, run in-process and with
``Processes(workers=2)``; the ratio is the speed-up (target 1.7x on two
cores).

When ray is installed, `Ray` joins both (on the Ray this process joined, else
a local one started first): 1 MiB items with ``Ray(workers=1)`` against
``Processes(workers=1)`` (target 0.5x), and the CPU-bound plan with
``Ray(workers=2)`` against in-process (target 1.6x), and, informational, against
the host's ceiling measured beside it (two bare processes). Ray creates its actors
in a second or two, whatever the data, so these two figures time from the
first submit on: each session is opened (and its actors started) before the
clock starts, for `Processes` too.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import tempfile
import timeit
from typing import Callable, Iterator

import numpy as np
import zmq

from combinators.bench import Figure, best_rates
from combinators.errors import CombinatorsError
from combinators.execution.base import Executor, Session
from combinators.execution.run import iterate
from combinators.execution.remote.processes import Processes
from combinators.execution.remote.zmq import ZMQ
from combinators.plan.mixes import mix
from combinators.plan.sources import stream
from combinators.plan.stream import Stream

__all__ = ["run", "raw_rate", "executor_rate", "cpu_source", "cpu_plan"]

KIB = 1024
MIB = 1024 * 1024


def _repeat(array_bytes: int, count: int) -> Iterator[dict[str, np.ndarray]]:
    """The measured source: ``{"x": array}`` ``count`` times, one float32 array of ``array_bytes``."""
    array = np.ones(array_bytes // 4, dtype=np.float32)
    for _ in range(count):
        yield {"x": array}


def _raw_sender(address: str, array_bytes: int, count: int) -> None:
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.connect(address)
    array = np.ones(array_bytes // 4, dtype=np.float32)
    for _ in range(count):
        push.send(array, copy=False)
    push.close(linger=-1)
    context.term()


def raw_rate(address: str, array_bytes: int, count: int) -> int:
    """Receive ``count`` arrays over a raw zero-copy PUSH/PULL from a forked sender; the count."""
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind(address)
    sender = multiprocessing.get_context("fork").Process(
        target=_raw_sender, args=(pull.getsockopt_string(zmq.LAST_ENDPOINT), array_bytes, count)
    )
    sender.start()
    received = 0
    for _ in range(count):
        frame = pull.recv(copy=False)
        received += np.frombuffer(frame, dtype=np.float32).size > 0
    sender.join()
    pull.close(linger=0)
    context.term()
    return received


def executor_rate(executor: Executor, array_bytes: int, count: int) -> int:
    """Open ``executor``, iterate one activation of `_repeat` to the end, close; the item count."""
    received = 0
    with executor.open() as session:
        for item in session.submit(_repeat, array_bytes, count):
            received += item["x"].size > 0
    return received


def _transport_figures(quick: bool) -> list[Figure]:
    figures = []
    cases = [(MIB, 100 if quick else 1000, 0.7), (KIB, 5000 if quick else 100_000, 0.4)]
    directory = tempfile.mkdtemp(prefix="combinators-bench-")
    try:
        for array_bytes, count, target in cases:
            for executor, address in (
                (Processes(workers=1), f"ipc://{directory}/raw"),
                (ZMQ(workers=1), "tcp://127.0.0.1:*"),
            ):
                ours, raw = best_rates(
                    lambda: executor_rate(executor, array_bytes, count),
                    lambda: raw_rate(address, array_bytes, count),
                    repeat=2 if quick else 5,
                )
                size = "1 MiB" if array_bytes == MIB else "1 KiB"
                transport = "ipc" if address.startswith("ipc") else "tcp loopback"
                figures.append(Figure(
                    name=f"{type(executor).__name__}(workers=1), items holding a {size} float32 array",
                    value=ours, reference=raw, unit="items/s", target=None if quick else target,
                    note=f"reference: raw pyzmq PUSH/PULL zero-copy from a forked process over {transport}, "
                    f"{count} items, startup included",
                ))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return figures


def _work(values: np.ndarray, out: np.ndarray) -> float:
    """Elementwise numpy work on ``values``, in ``out`` (no temporaries: the allocator's state of a process,
    such as glibc unmapping freed blocks of 1 MB, would otherwise weigh as much as the work, and differ
    between the consumer, forked workers and Ray's workers)."""
    np.sqrt(values, out=out)
    out *= 3.0
    np.sin(out, out=out)
    return float(out.sum())


def cpu_source(index: int, items: int, size: int) -> Iterator[float]:
    """A CPU-bound source: each item is elementwise numpy work on ``size`` float64 values (one thread)."""
    values = np.random.default_rng(index).random(size)
    out = np.empty_like(values)
    for _ in range(items):
        yield _work(values, out)


def _work_size(seconds: float = 0.002) -> int:
    """The ``size`` for which one `cpu_source` item takes about ``seconds`` here (best of 3)."""
    size = 1 << 16
    values = np.random.default_rng(0).random(size)
    out = np.empty_like(values)
    per_call = min(timeit.repeat(lambda: _work(values, out), number=10, repeat=3)) / 10
    return max(1024, int(size * seconds / per_call))


def cpu_plan(items: int, size: int) -> Stream:
    """12 CPU-bound sources mixed with ``n_active=4``, each run to exhaustion."""
    sources = [stream(cpu_source, index, items, size) for index in range(12)]
    return mix(*sources, n_active=4, mode="exhaustive")


def _bare_processes(workers: int, items: int, size: int) -> Callable[[], int]:
    """The machine's ceiling: ``workers`` forked processes share the same items, no streaming at all."""

    def work(index: int) -> None:
        for _ in cpu_source(index, items // workers, size):
            pass

    def run_bare() -> int:
        context = multiprocessing.get_context("fork")
        processes = [context.Process(target=work, args=(index,)) for index in range(workers)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        return items // workers * workers

    return run_bare


def _cpu_figures(quick: bool) -> list[Figure]:
    items = 6 if quick else 30
    size = _work_size()
    plan = cpu_plan(items, size)

    def run_with(executor: Executor | str) -> Callable[[], int]:
        return lambda: sum(1 for _ in iterate(plan, seed=0, executor=executor))

    def alone() -> int:
        return sum(1 for _ in cpu_source(0, 12 * items // 2, size))

    parallel, one, inprocess, bare, single = best_rates(
        run_with(Processes(workers=2)), run_with(Processes(workers=1)), run_with("inprocess"),
        _bare_processes(2, 12 * items, size), alone, repeat=2 if quick else 3,
    )
    name = f"CPU-bound mix, 12 sources x {items} items of ~2 ms, n_active=4"
    return [
        Figure(
            name=f"{name}: Processes(workers=2)", value=parallel, reference=inprocess, unit="items/s",
            target=None if quick else 1.7,
            note=f"reference: the same plan in-process; {size} float64 values per item; this host's ceiling "
            f"(2 bare forked processes vs 1) is {bare / single:.2f}x: the target assumes 2 idle cores",
        ),
        Figure(
            name=f"{name}: Processes(workers=1)", value=one, reference=inprocess, unit="items/s",
            note="informational: the executor's overhead, whatever the load (1.0x is none)",
        ),
    ]


class _Opened(Executor):
    """An executor whose sessions are one session opened beforehand (closing a run leaves it open)."""

    def __init__(self, session: Session):
        self.session = session

    def open(self) -> Session:
        return _Borrowed(self.session)


class _Borrowed(Session):
    def __init__(self, session: Session):
        self.session = session

    def submit(self, fn, *args):
        return self.session.submit(fn, *args)

    def start(self, plan, extra, limit=None):
        return self.session.start(plan, extra, limit)

    def close(self) -> None:
        pass


def _ray_figures(quick: bool) -> list[Figure]:
    """Ray against Processes (1 MiB items) and against in-process (the CPU-bound plan); see the docstring."""
    try:
        from combinators.execution.remote.ray import Ray
    except ImportError:  # pragma: no cover - combinators without its ray module
        return []
    try:
        Ray(workers=1)
    except CombinatorsError as error:  # ray is not installed
        print(f"(Ray figures skipped: {error})")
        return []
    count = 100 if quick else 1000
    with Ray(workers=1).open() as ray_session, Processes(workers=1).open() as processes_session:

        def rate(session: Session) -> Callable[[], int]:
            return lambda: sum(item["x"].size > 0 for item in session.submit(_repeat, MIB, count))

        ours, processes = best_rates(rate(ray_session), rate(processes_session), repeat=2 if quick else 5)
    figures = [Figure(
        name="Ray(workers=1), items holding a 1 MiB float32 array", value=ours, reference=processes,
        unit="items/s", target=None if quick else 0.5,
        note=f"reference: Processes(workers=1) in the same run, {count} items, sessions opened before the clock",
    )]
    items, size = (6 if quick else 30), _work_size()
    plan = cpu_plan(items, size)
    with Ray(workers=2).open() as session:
        ray_rate, inprocess, bare, single = best_rates(
            lambda: sum(1 for _ in iterate(plan, seed=0, executor=_Opened(session))),
            lambda: sum(1 for _ in iterate(plan, seed=0)),
            _bare_processes(2, 12 * items, size),
            lambda: sum(1 for _ in cpu_source(0, 12 * items // 2, size)),
            repeat=2 if quick else 3,
        )
    name = f"CPU-bound mix, 12 sources x {items} items of ~2 ms, n_active=4"
    figures.append(Figure(
        name=f"{name}: Ray(workers=2)", value=ray_rate,
        reference=inprocess, unit="items/s", target=None if quick else 1.6,
        note=f"reference: the same plan in-process; the actors started before the clock; this host's ceiling "
        f"(2 bare forked processes vs 1) is {bare / single:.2f}x: the target assumes 2 idle cores",
    ))
    figures.append(Figure(
        name=f"{name}: Ray(workers=2) against 2 bare processes", value=ray_rate, reference=bare, unit="items/s",
        note="informational: how near Ray comes to this host's ceiling in the same run (1.0x: as fast as two "
        "forked processes doing only the sources' work, without a mix or any streaming)",
    ))
    return figures


def run(args: argparse.Namespace) -> list[Figure]:
    """Measure the transport figures and the CPU-bound speed-up; see the module docstring."""
    return [*_transport_figures(args.quick), *_cpu_figures(args.quick), *_ray_figures(args.quick)]
