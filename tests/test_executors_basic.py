"""Processes and ZMQ executors with real worker processes: results, sharing, prefetch, backpressure."""

import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from combinators.errors import InvalidArgument, InvalidArgumentType, TransportError
from combinators.execution.base import Executor, resolve_executor
from combinators.execution.remote.processes import Processes
from combinators.execution.remote.zmq import ZMQ

EXECUTORS = [
    pytest.param(lambda n: Processes(workers=n), id="processes"),
    pytest.param(lambda n: Processes(workers=n, start_method="spawn"), id="processes-spawn"),
    pytest.param(lambda n: Processes(workers=n, start_method="forkserver"), id="processes-forkserver"),
    pytest.param(lambda n: ZMQ(workers=n), id="zmq"),
]


def noisy(seed: int, count: int):
    """A source with numpy work and randomness derived from its arguments."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        yield {"seed": seed, "index": index, "x": rng.normal(size=(index % 4 + 1, 3)).astype(np.float32)}


def tell_pid():
    yield os.getpid()


def write_progress(path: str, count: int | None = None):
    """Yield 0, 1, ..., recording in ``path`` how many items were produced."""
    index = 0
    while count is None or index < count:
        Path(path).write_text(str(index + 1))
        yield index
        index += 1


def same_items(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        assert x["seed"] == y["seed"] and x["index"] == y["index"]
        assert x["x"].dtype == y["x"].dtype and np.array_equal(x["x"], y["x"])


@pytest.mark.parametrize("make", EXECUTORS)
@pytest.mark.parametrize("workers", [1, 2])
def test_interleaved_activations_give_the_in_process_items(make, workers):
    expected = {seed: list(noisy(seed, seed * 7 % 23)) for seed in range(6)}
    with make(workers).open() as session:
        activations = {seed: session.submit(noisy, seed, len(items)) for seed, items in expected.items()}
        received = {seed: [] for seed in expected}
        rng = np.random.default_rng(1)
        live = list(activations)
        while live:  # consume in a random interleaving, as a mux would
            seed = live[rng.integers(len(live))]
            try:
                received[seed].append(next(activations[seed]))
            except StopIteration:
                live.remove(seed)
    for seed in expected:
        same_items(received[seed], expected[seed])


@pytest.mark.parametrize("make", EXECUTORS)
def test_lambdas_and_closures_travel(make):
    offset = np.arange(3)

    def shifted(k):
        return (offset + k * i for i in range(3))

    with make(1).open() as session:
        assert [list(a) for a in session.submit(shifted, 10)] == [[0, 1, 2], [10, 11, 12], [20, 21, 22]]
        assert list(session.submit(lambda: map(str, range(3)))) == ["0", "1", "2"]


def test_activations_share_workers_least_loaded():
    with Processes(workers=2).open() as session:
        activations = [session.submit(tell_pid) for _ in range(4)]
        pids = [next(activation) for activation in activations]
        worker_pids = {process.pid for process in session._resources.processes}
    assert pids[0] != pids[1] and pids[:2] == pids[2:]  # alternating: least loaded first
    assert set(pids) == worker_pids
    assert os.getpid() not in pids


def test_submitted_activations_start_before_they_are_read(tmp_path):
    paths = [tmp_path / f"started-{i}" for i in range(4)]
    with Processes(workers=2).open() as session:
        activations = [session.submit(write_progress, str(path), 3) for path in paths]
        deadline = time.monotonic() + 10
        while not all(path.exists() for path in paths) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(path.exists() for path in paths)  # nobody called next() yet
        assert [list(a) for a in activations] == [[0, 1, 2]] * 4


def test_a_slow_consumer_bounds_what_the_worker_produces(tmp_path):
    progress = tmp_path / "progress"
    prefetch = 8
    with Processes(workers=1, prefetch=prefetch).open() as session:
        activation = session.submit(write_progress, str(progress))  # infinite
        taken = [next(activation) for _ in range(5)]
        time.sleep(0.3)  # give an unbounded worker time to run far ahead
        produced = int(progress.read_text())
        assert taken == list(range(5))
        assert produced <= len(taken) + 2 * prefetch
        more = [next(activation) for _ in range(100)]
        assert more == list(range(5, 105))
        time.sleep(0.1)
        assert int(progress.read_text()) <= 105 + 2 * prefetch


def test_a_byte_budget_bounds_big_items(tmp_path):
    progress = tmp_path / "progress"

    def big(path):
        for index, _ in enumerate(write_progress(path)):
            yield np.full(128 * 1024, index, dtype=np.float64)  # 1 MiB each

    with Processes(workers=1, prefetch_bytes=4 << 20).open() as session:
        activation = session.submit(big, str(progress))
        assert next(activation)[0] == 0
        time.sleep(0.3)
        assert int(progress.read_text()) <= 1 + 4 + 2  # 4 MiB in flight, one message of slack


def test_closing_an_activation_closes_its_generator(tmp_path):
    closed = tmp_path / "closed"

    def guarded(path):
        try:
            yield from range(10**9)
        finally:
            Path(path).write_text("closed")

    with Processes(workers=1).open() as session:
        activation = session.submit(guarded, str(closed))
        assert [next(activation) for _ in range(3)] == [0, 1, 2]
        activation.close()
        with pytest.raises(StopIteration):
            next(activation)
        assert list(session.submit(range, 2)) == [0, 1]  # the worker still serves
        deadline = time.monotonic() + 5
        while not closed.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert closed.read_text() == "closed"


def test_empty_and_eager_sources():
    with ZMQ(workers=2).open() as session:
        assert list(session.submit(list, ())) == []
        assert list(session.submit(lambda: [np.int64(1), None])) == [np.int64(1), None]
        assert list(session.submit(iter, "ab")) == ["a", "b"]


def test_an_unshippable_plan_names_the_function():
    import threading

    lock = threading.Lock()
    with Processes(workers=1).open() as session:
        with pytest.raises(TransportError, match="cannot ship"):
            session.submit(lambda: [lock])


def test_executors_resolve_by_name_and_repr_reads_back():
    assert isinstance(resolve_executor("processes"), Processes)
    assert isinstance(resolve_executor("zmq"), ZMQ)
    executor = Processes(workers=3, start_method="spawn", prefetch=16, prefetch_bytes=1024)
    assert eval(repr(executor)) == executor
    zmq_executor = ZMQ(workers=0, address="ipc:///tmp/x", prefetch=4)
    assert eval(repr(zmq_executor)) == zmq_executor
    assert isinstance(executor, Executor) and hash(executor) == hash(eval(repr(executor)))
    assert pickle.loads(pickle.dumps(executor)) == executor
    assert pickle.loads(pickle.dumps(zmq_executor)) == zmq_executor


@pytest.mark.parametrize(
    "kwargs, error, text",
    [
        ({"workers": 0}, InvalidArgument, "workers must be >= 1, not 0"),
        ({"workers": 1.5}, InvalidArgumentType, "workers must be an int, not 1.5"),
        ({"workers": True}, InvalidArgumentType, "not True"),
        ({"start_method": "thread"}, InvalidArgument, "'thread'"),
        ({"prefetch": -1}, InvalidArgument, "prefetch must be >= 1, not -1"),
        ({"prefetch_bytes": "1MB"}, InvalidArgumentType, "'1MB'"),
    ],
)
def test_processes_validates_its_fields(kwargs, error, text):
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
        Processes(**kwargs)


@pytest.mark.parametrize(
    "kwargs, error, text",
    [
        ({"workers": -1}, InvalidArgument, "workers must be >= 0, not -1"),
        ({"address": 5555}, InvalidArgumentType, "5555"),
        ({"address": "udp://127.0.0.1:1"}, InvalidArgument, "must start with tcp:// or ipc://"),
        ({"key": "/no/such/file.key_secret"}, InvalidArgument, "is not a file"),
        ({"timeout": 0}, InvalidArgument, "timeout must be > 0, not 0"),
    ],
)
def test_zmq_validates_its_fields(kwargs, error, text):
    with pytest.raises(error, match=text):
        ZMQ(**kwargs)


def test_an_activation_closed_early_wasted_little_work(tmp_path):
    """The credit window starts small and grows with consumption (default prefetch is 1024)."""
    progress = tmp_path / "progress"
    with Processes(workers=1).open() as session:
        activation = session.submit(write_progress, str(progress))  # infinite
        assert [next(activation) for _ in range(3)] == [0, 1, 2]
        time.sleep(0.2)
        activation.close()
        assert int(progress.read_text()) <= 3 + 16 + 2  # what it took, the first window, a message
        assert list(session.submit(range, 5000)) == list(range(5000))  # a long one streams through a grown window
