"""``combinators bench transport``: executor throughput against raw pyzmq, measured in the same run.

Reference: a forked process sends the same float32 array N times over a raw
pyzmq PUSH socket, zero-copy (``copy=False``), to a PULL socket in this
process that rebuilds each array with ``np.frombuffer``. Measured: a
`Processes` and a `ZMQ` executor with one worker run a source yielding
``{"x": array}`` N times, and the consumer iterates the activation. Both
sides count from before the fork (or ``open()``) to the last item, so startup
is included. The reference uses the executor's transport: ``ipc://`` for
`Processes`, loopback ``tcp://`` for `ZMQ`.

A second figure times a CPU-bound plan: 12 sources, each item about 2 ms of
numpy work, mixed with ``n_active=4``, run in-process and with
``Processes(workers=2)``; the ratio is the speed-up (target 1.7x on two
cores).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from typing import Callable, Iterator

import numpy as np
import zmq

from combinators.bench import Figure, best_rate
from combinators.execution.base import Executor
from combinators.execution.processes import Processes
from combinators.execution.zmq import ZMQ

__all__ = ["run", "raw_rate", "executor_rate"]

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
    cases = [(MIB, 50 if quick else 1000, 0.7), (KIB, 5000 if quick else 200_000, 0.4)]
    for array_bytes, count, target in cases:
        for executor in (Processes(workers=1), ZMQ(workers=1)):
            if isinstance(executor, Processes):
                directory = tempfile.mkdtemp(prefix="combinators-bench-")
                address = f"ipc://{directory}/raw"
            else:
                address = "tcp://127.0.0.1:*"
            raw = best_rate(lambda: raw_rate(address, array_bytes, count))
            ours = best_rate(lambda: executor_rate(executor, array_bytes, count))
            size = "1 MiB" if array_bytes == MIB else "1 KiB"
            figures.append(Figure(
                name=f"{type(executor).__name__} items holding a {size} float32 array ({count} items, startup included)",
                value=ours, reference=raw, unit="items/s", target=target,
                note="reference: raw pyzmq PUSH/PULL zero-copy from a forked process",
            ))
    return figures


def _cpu_source(index: int, items: int, work: int) -> Iterator[float]:
    rng = np.random.default_rng(index)
    matrix = rng.random((work, work))
    for _ in range(items):
        yield float(np.linalg.norm(np.tanh(matrix @ matrix)))


def _work_size(seconds: float = 0.002) -> int:
    """The matrix size whose item takes about ``seconds`` in this process."""
    for size in range(40, 400, 8):
        matrix = np.random.default_rng(0).random((size, size))
        start = time.perf_counter()
        for _ in range(20):
            np.linalg.norm(np.tanh(matrix @ matrix))
        if (time.perf_counter() - start) / 20 >= seconds:
            return size
    return 400


def _cpu_figure(quick: bool, mix_plan: Callable[[int, int, int], object] | None = None) -> Figure:
    from combinators.bench._cpu import cpu_bound_seconds

    items = 10 if quick else 60
    work = _work_size()
    inprocess = cpu_bound_seconds("inprocess", items, work)
    parallel = cpu_bound_seconds(Processes(workers=2), items, work)
    return Figure(
        name=f"CPU-bound mix, 12 sources x {items} items of ~2 ms, n_active=4: Processes(workers=2)",
        value=1 / parallel, reference=1 / inprocess, unit="runs/s", target=1.7,
        note=f"in-process {inprocess:.2f} s, 2 workers {parallel:.2f} s (matrix {work}x{work})",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:  # pragma: no cover - options live in bench
    pass


def run(args: argparse.Namespace) -> list[Figure]:
    """Measure the transport figures and the CPU-bound speed-up; see the module docstring."""
    figures = _transport_figures(args.quick)
    try:
        figures.append(_cpu_figure(args.quick))
    except ImportError as error:  # the interpreter (iterate, mix) is not available
        print(f"skipping the CPU-bound figure: {error}")
    return figures
