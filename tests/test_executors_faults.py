"""Faults with real processes: remote exceptions, dying workers, and reaping on every way out."""

import gc
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from combinators.errors import WorkerError
from combinators.execution.remote.processes import Processes
from combinators.execution.remote.zmq import ZMQ

EXECUTORS = [
    pytest.param(lambda: Processes(workers=2), id="processes"),
    pytest.param(lambda: ZMQ(workers=2), id="zmq"),
]


class Custom(Exception):
    """An exception type defined by the user."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("cannot pickle me")


def raises_after(count, error):
    for index in range(count):
        yield np.full(2, index)
    raise error


def dies_after(count, how):
    for index in range(count):
        yield index
    if how == "exit":
        os._exit(3)
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "oom":  # what the kernel's OOM killer does, without eating the machine
        os.kill(os.getpid(), signal.SIGKILL)


def forever_with_pid():
    while True:
        yield os.getpid()
        time.sleep(0.01)


def out_of_memory():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (1 << 31, hard))
    try:
        yield 1
        yield np.ones(1 << 32, dtype=np.uint8)  # 4 GiB: MemoryError under the 2 GiB limit
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def worker_pids(session):
    return [process.pid for process in session._resources.processes]


def wait_until(predicate, seconds):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("make", EXECUTORS)
def test_an_exception_arrives_after_the_items_before_it_with_its_type(make):
    with make().open() as session:
        activation = session.submit(raises_after, 3, Custom(7))
        received = []
        with pytest.raises(Custom) as info:
            for item in activation:
                received.append(int(item[0]))
        assert received == [0, 1, 2]
        assert info.value.code == 7
        assert "raises_after" in info.value.remote_traceback
        assert isinstance(info.value.__cause__, WorkerError)
        assert "Custom" in str(info.value.__cause__) and "raises_after" in str(info.value.__cause__)
        with pytest.raises(StopIteration):
            next(activation)
        assert list(session.submit(range, 2)) == [0, 1]  # the worker survives


def raises_unpicklable(count):
    yield from raises_after(count, Unpicklable("detail"))


def test_an_exception_that_cannot_be_pickled_becomes_a_worker_error():
    with Processes(workers=1).open() as session:
        activation = session.submit(raises_unpicklable, 2)
        assert len([next(activation), next(activation)]) == 2
        with pytest.raises(WorkerError, match="Unpicklable: detail") as info:
            next(activation)
        assert "raises_after" in info.value.remote_traceback


def test_an_exception_when_the_source_is_called():
    def broken(x):
        raise ValueError(f"bad {x}")

    with Processes(workers=1).open() as session:
        with pytest.raises(ValueError, match="bad 3"):
            next(session.submit(broken, 3))


def test_memory_error_in_a_worker_arrives_as_memory_error():
    with Processes(workers=1).open() as session:
        activation = session.submit(out_of_memory)
        assert next(activation) == 1
        with pytest.raises(MemoryError):
            next(activation)


@pytest.mark.parametrize("make", EXECUTORS)
@pytest.mark.parametrize("how", ["exit", "sigkill", "oom"])
def test_a_dying_worker_raises_worker_error_quickly(make, how):
    with make().open() as session:
        activation = session.submit(dies_after, 2, how)
        start = time.monotonic()
        with pytest.raises(WorkerError, match="died") as info:
            [next(activation) for _ in range(3)]
        assert time.monotonic() - start < 5
        assert ("status 3" if how == "exit" else "SIGKILL") in str(info.value)
        with pytest.raises(StopIteration):
            next(activation)
        assert list(session.submit(range, 2)) == [0, 1]  # the other worker carries on


def test_a_worker_killed_from_outside_while_busy():
    with Processes(workers=1).open() as session:
        activation = session.submit(forever_with_pid)
        pid = next(activation)
        os.kill(pid, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(WorkerError, match="SIGKILL"):
            for _ in range(10**6):
                next(activation)
        assert time.monotonic() - start < 5
        with pytest.raises(WorkerError, match="every worker"):
            next(session.submit(range, 2))


@pytest.mark.parametrize("make", EXECUTORS)
def test_close_reaps_workers_and_files(make):
    session = make().open()
    pids = worker_pids(session)
    activation = session.submit(forever_with_pid)
    next(activation)
    directory = session.address.removeprefix("ipc://").rsplit("/", 1)[0] if session.address.startswith("ipc") else None
    start = time.monotonic()
    session.close()
    assert time.monotonic() - start < 1.5
    assert not any(alive(pid) for pid in pids)
    if directory is not None:
        assert not os.path.exists(directory)
    with pytest.raises(StopIteration):
        next(activation)
    session.close()  # idempotent


def test_a_worker_stuck_in_c_code_is_killed_at_close():
    def stuck():
        yield 1
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
        time.sleep(60)
        yield 2

    with Processes(workers=1).open() as session:
        pids = worker_pids(session)
        activation = session.submit(stuck)
        assert next(activation) == 1
        time.sleep(0.05)
        start = time.monotonic()
    assert time.monotonic() - start < 1.5
    assert not any(alive(pid) for pid in pids)


def test_leaving_a_with_block_on_break_reaps_workers():
    with Processes(workers=2).open() as session:
        pids = worker_pids(session)
        for item in session.submit(forever_with_pid):
            break
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 1.5)


def test_garbage_collection_reaps_workers():
    session = ZMQ(workers=2, address=f"ipc:///tmp/combinators-gc-test-{os.getpid()}").open()
    path = session.address.removeprefix("ipc://")
    pids = worker_pids(session)
    activation = session.submit(forever_with_pid)
    next(activation)
    assert os.path.exists(path)
    del session, activation
    gc.collect()
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 1.5)
    assert not os.path.exists(path)


def test_keyboard_interrupt_while_waiting_then_exit_reaps_workers(sigint_raises):
    def slow():
        yield 0
        time.sleep(30)
        yield 1

    main = threading.main_thread().ident
    with pytest.raises(KeyboardInterrupt):
        with Processes(workers=2).open() as session:
            pids = worker_pids(session)
            activation = session.submit(slow)
            assert next(activation) == 0
            threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT)).start()
            next(activation)  # waits in poll until the interrupt
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 1.5)


def test_workers_ignore_sigint_sent_to_the_process_group():
    with Processes(workers=1).open() as session:
        activation = session.submit(forever_with_pid)
        pid = next(activation)
        os.kill(pid, signal.SIGINT)
        assert next(activation) == pid


def test_a_forked_child_finalizing_the_session_leaves_the_parents_workers_alone():
    import multiprocessing

    with Processes(workers=2).open() as session:
        pids = worker_pids(session)
        child = multiprocessing.get_context("fork").Process(target=session._finalizer)  # what atexit would run
        child.start()
        child.join(timeout=10)
        assert child.exitcode == 0
        assert all(alive(pid) for pid in pids)
        assert list(session.submit(range, 3)) == [0, 1, 2]


def test_a_hung_worker_raises_worker_error_after_the_heartbeat_timeout():
    with Processes(workers=1).open() as session:
        pids = worker_pids(session)
        activation = session.submit(forever_with_pid)
        pid = next(activation)
        os.kill(pid, signal.SIGSTOP)  # frozen: alive, but neither Python nor libzmq answers
        start = time.monotonic()
        with pytest.raises(WorkerError, match="no heartbeat"):
            for _ in range(10**6):
                next(activation)
        assert time.monotonic() - start < 8
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 1.5)


_LOCK = threading.Lock()


def _locked_count(n):
    with _LOCK:
        yield from range(n)


def _not_iterable():
    return 5


@pytest.mark.parametrize("executor", [Processes(workers=1, start_method="spawn"), ZMQ(workers=1)], ids=repr)
def test_a_stream_that_cannot_be_sent_is_named_with_the_value(executor):
    import combinators as c
    from combinators.errors import TransportError

    lock = threading.Lock()
    plan = c.mix(c.stream(range, 2), c.stream(lambda n, held: iter(range(n)), 3, lock), c.stream(_locked_count, 2))
    with pytest.raises(TransportError) as caught:
        list(c.iterate(plan, seed=0, executor=executor))
    message = str(caught.value)
    assert "stream(" in message and "at path (" in message, message
    assert "_thread.lock" in message and "activate_leaf" not in message, message


@pytest.mark.parametrize("executor", ["inprocess", Processes(workers=1)], ids=repr)
def test_a_source_whose_function_returns_no_iterable_is_named(executor):
    import combinators as c
    from combinators.errors import InvalidArgumentType

    with pytest.raises(InvalidArgumentType, match=r"stream\(_not_iterable\) at path \(1,\).* returned 5 \(int\)"):
        list(c.iterate(c.chain(c.stream(range, 2), c.stream(_not_iterable)), seed=0, executor=executor))
