"""The parallel executors behind `combinators.iterate`: same items, faults, and reaping."""

import gc
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

import combinators as c
from combinators.errors import WorkerError
from combinators.execution.remote.processes import Processes
from combinators.execution.remote.zmq import ZMQ

EXECUTORS = [
    pytest.param(Processes(workers=2), id="processes"),
    pytest.param(Processes(workers=2, start_method="spawn"), id="processes-spawn"),
    pytest.param(ZMQ(workers=2), id="zmq"),
]


def images(label, count, rng):
    for _ in range(count):
        yield {"x": rng.normal(size=(2, 3)).astype(np.float32), "y": label}


def fails_after(count):
    for index in range(count):
        yield {"x": np.full(2, index), "y": -1}
    raise LookupError(f"no item {count}")


def dies_after(count):
    for index in range(count):
        yield {"x": np.full(2, index), "y": -2}
    os._exit(9)


def endless(label):
    while True:
        yield {"x": np.zeros(2), "y": label, "pid": os.getpid()}
        time.sleep(0.001)


def alive(pid):
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def plan():
    sources = [c.stream(images, label, 5 + label) for label in range(6)]
    mixed = c.mix(*sources, weights=[1, 2, 3, 1, 2, 3], n_active=3, rate=4, mode="exhaustive")
    return mixed >> c.map(lambda item: {**item, "x": item["x"] * 2}) >> c.batch(4, partial=True)


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            assert np.asarray(x[key]).dtype == np.asarray(y[key]).dtype
            assert np.array_equal(x[key], y[key])


@pytest.mark.parametrize("executor", EXECUTORS)
def test_iterate_gives_the_in_process_items(executor):
    expected = list(c.iterate(plan(), seed=11))
    assert_same(list(c.iterate(plan(), seed=11, executor=executor)), expected)


def test_executors_by_name():
    expected = list(c.iterate(plan(), seed=2))
    for name in ("processes", "zmq"):
        assert_same(list(c.iterate(plan(), seed=2, executor=name)), expected)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_source_exception_reaches_the_consumer_after_its_items(executor):
    s = c.stream(fails_after, 3) | c.stream(images, 0, 2)
    received = []
    with pytest.raises(LookupError, match="no item 3") as info:
        for item in c.iterate(s, seed=0, executor=executor):
            received.append(int(item["x"][0]))
    assert received == [0, 1, 2]
    assert "fails_after" in info.value.remote_traceback


def test_a_dead_worker_ends_the_run_with_worker_error():
    s = c.mix(c.stream(dies_after, 4), c.stream(endless, 1), mode="first_exhausted")
    start = time.monotonic()
    with pytest.raises(WorkerError, match="exited with status 9"):
        for _ in c.iterate(s, seed=0, executor=Processes(workers=2)):
            pass
    assert time.monotonic() - start < 5


def _worker_pids(run):
    return [process.pid for process in run._session._resources.processes]


@pytest.mark.parametrize("executor", [Processes(workers=2), ZMQ(workers=2)], ids=["processes", "zmq"])
def test_break_out_of_a_with_block_reaps_workers(executor):
    s = c.mix(c.stream(endless, 0), c.stream(endless, 1))
    with c.iterate(s, seed=0, executor=executor) as run:
        pids = _worker_pids(run)
        for index, item in enumerate(run):
            if index == 50:
                break
    deadline = time.monotonic() + 1.5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(alive(pid) for pid in pids)


def test_dropping_a_run_reaps_workers():
    run = c.iterate(c.stream(endless, 0), seed=0, executor=Processes(workers=2))
    next(run)
    pids = _worker_pids(run)
    del run
    gc.collect()
    deadline = time.monotonic() + 1.5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(alive(pid) for pid in pids)


def test_keyboard_interrupt_in_the_loop_reaps_workers(sigint_raises):
    with pytest.raises(KeyboardInterrupt):
        with c.iterate(c.stream(endless, 0), seed=0, executor=Processes(workers=2)) as run:
            pids = _worker_pids(run)
            for index, item in enumerate(run):
                if index == 20:
                    signal.raise_signal(signal.SIGINT)
    deadline = time.monotonic() + 1.5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(alive(pid) for pid in pids)
