"""assert_executor_agreement and assert_deterministic(executors=...) with executor names and instances.

Besides "inprocess", a small real executor runs each activation in its own
thread (items cross through a bounded queue), and a broken one drops the
last item of every activation: the checks must accept the first and catch
the second. The process-pool executors are checked the same way once they
are available (the test is skipped before).
"""

from __future__ import annotations

import queue
import threading

import pytest

from combinators import from_iterable, mix, round_robin, stream
from combinators.execution.base import Activation, Executor, Session
from combinators.testing import Monitored, assert_deterministic, assert_executor_agreement, assert_working_set

_DONE = object()


class _ThreadActivation(Activation):
    def __init__(self, fn, args):
        self.queue: queue.Queue = queue.Queue(maxsize=8)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._produce, args=(fn, args), daemon=True)
        self.thread.start()

    def _produce(self, fn, args):
        try:
            for item in fn(*args):
                while not self.stop.is_set():
                    try:
                        self.queue.put((True, item), timeout=0.05)
                        break
                    except queue.Full:
                        continue
                if self.stop.is_set():
                    return
            self.queue.put((True, _DONE))
        except BaseException as error:  # handed to the consumer, raised there
            self.queue.put((False, error))

    def __next__(self):
        ok, item = self.queue.get()
        if not ok:
            raise item
        if item is _DONE:
            self.queue.put((True, _DONE))
            raise StopIteration
        return item

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)


class _ThreadSession(Session):
    def __init__(self, drop_last: bool):
        self.drop_last, self.open = drop_last, []

    def submit(self, fn, *args):
        if self.drop_last:
            fn, args = _without_last, (fn, *args)
        activation = _ThreadActivation(fn, args)
        self.open.append(activation)
        return activation

    def close(self):
        for activation in self.open:
            activation.close()


def _without_last(fn, *args):
    items = list(fn(*args))
    return items[:-1]


class Threads(Executor):
    """Each source activation in its own thread (``drop_last``: a broken one losing the last item)."""

    def __init__(self, drop_last: bool = False):
        self.drop_last = drop_last

    def open(self):
        return _ThreadSession(self.drop_last)

    def __repr__(self):
        return f"Threads(drop_last={self.drop_last})"


def letters(name, n, rng):
    for i in range(n):
        yield (name, i, int(rng.integers(100)))


PLAN = mix(
    stream(letters, "a", 7), stream(letters, "b", 3) | stream(letters, "c", 4), round_robin(stream(letters, "d", 5)),
    (1, 2, 3), n_active=2, rate=3, mode="exhaustive",
)


def test_agreement_with_names_and_instances():
    assert_executor_agreement(PLAN, "inprocess", seed=4)
    assert_executor_agreement(PLAN, ["inprocess", Threads(), Monitored(Threads())], seed=4)
    assert_deterministic(PLAN, executors=["inprocess", Threads()], seed=4)


def test_a_broken_executor_is_caught():
    with pytest.raises(AssertionError) as error:
        assert_executor_agreement(PLAN, ["inprocess", Threads(drop_last=True)], seed=4)
    text = str(error.value)
    assert "Threads(drop_last=True) differs from reference InProcess() at item" in text, text
    assert "seed: 4" in text and "executor: Threads(drop_last=True)" in text


def test_working_set_through_another_executor():
    files = [stream(letters, f"f{i}", 3) for i in range(6)]
    assert_working_set(mix(*files, n_active=2, rate=2), 2, n=100, executor=Threads())


def _processes():
    try:
        from combinators.execution.remote.processes import Processes
    except ImportError:
        return None
    return Processes


@pytest.mark.skipif(_processes() is None, reason="combinators.execution.remote.processes is not on this branch yet")
def test_agreement_with_processes():
    processes = _processes()(workers=2)
    assert_executor_agreement(PLAN, [processes, "processes"], seed=4)
    assert_deterministic(PLAN, executors=[processes], seed=5, n=50)
    assert_working_set(mix(*[stream(letters, f"f{i}", 3) for i in range(6)], n_active=2, rate=2), 2, n=60, executor=processes)
