"""The Ray executor with real actors on a local Ray: faults, releasing actors, the run-ahead window."""

import itertools
import json
import os
import signal
import sys
import threading
import time

import cloudpickle
import numpy as np
import pytest

import combinators as c
from combinators.errors import CombinatorsError, InvalidArgument, InvalidArgumentType, TransportError, WorkerError

ray = pytest.importorskip("ray")

import test_executors_faults  # noqa: E402
from combinators.execution.remote.ray import Ray  # noqa: E402
from combinators.sampling.working_set import AHEAD  # noqa: E402
from test_executors_faults import Custom, Unpicklable, forever_with_pid, raises_after, wait_until  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def on_local_ray(local_ray):
    """Every test here runs on the session's local Ray; the test modules' sources travel by value
    (Ray's workers cannot import a test module)."""
    modules = [sys.modules[__name__], test_executors_faults]
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    yield
    for module in modules:
        cloudpickle.unregister_pickle_by_value(module)


def counting(path):
    """Yields 0, 1, 2...; the file at ``path`` holds how many items it has made."""
    for index in range(10**6):
        with open(f"{path}.next", "w") as file:
            file.write(str(index + 1))
        os.replace(f"{path}.next", path)  # whole, so the test never reads a half-written count
        yield index


def dead(handle, seconds=5.0):
    """True once calls to the actor ``handle`` fail because it is dead."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            ray.get(handle.where.remote(), timeout=seconds)
        except ray.exceptions.RayActorError:
            return True
        except ray.exceptions.GetTimeoutError:
            return False
        time.sleep(0.05)
    return False


@ray.remote(num_cpus=0)
class UserActor:
    def ping(self):
        return "pong"


def test_an_exception_arrives_after_the_items_before_it_with_its_type():
    with Ray(workers=1).open() as session:
        activation = session.submit(raises_after, 3, Custom(7))
        received = []
        with pytest.raises(Custom) as info:
            for item in activation:
                received.append(int(item[0]))
        assert received == [0, 1, 2]
        assert info.value.code == 7
        assert "raises_after" in info.value.remote_traceback
        assert isinstance(info.value.__cause__, WorkerError)
        assert "Ray actor combinators-" in str(info.value.__cause__)
        with pytest.raises(StopIteration):
            next(activation)
        assert list(session.submit(range, 2)) == [0, 1]  # the actor survives


def test_unpicklable_exceptions_and_failing_calls():
    def broken(x):
        raise ValueError(f"bad {x}")

    with Ray(workers=1).open() as session:
        activation = session.submit(lambda: raises_after(2, Unpicklable("detail")))
        assert len([next(activation), next(activation)]) == 2
        with pytest.raises(WorkerError, match="Unpicklable: detail") as info:
            next(activation)
        assert "raises_after" in info.value.remote_traceback
        with pytest.raises(ValueError, match="bad 3"):
            next(session.submit(broken, 3))
        with pytest.raises(TransportError, match="cannot ship"):
            session.submit(list, threading.Lock())
        with pytest.raises(WorkerError, match="a pull from Ray actor"):
            list(session.submit(lambda: iter([threading.Lock()])))
        assert list(session.submit(range, 2)) == [0, 1]


def test_a_killed_actor_raises_worker_error_naming_it_and_the_other_carries_on():
    with Ray(workers=2).open() as session:
        first, second = session.submit(forever_with_pid), session.submit(forever_with_pid)
        next(first), next(second)
        victim = session._workers[0]
        ray.kill(victim.handle)
        start = time.monotonic()
        with pytest.raises(WorkerError, match=f"{victim.name} .*died"):
            for _ in range(10**6):
                next(first)
        assert time.monotonic() - start < 5
        with pytest.raises(StopIteration):
            next(first)
        assert isinstance(next(second), int)
        assert list(session.submit(range, 3)) == [0, 1, 2]  # placed on the live actor


def test_close_kills_the_runs_actors_and_nothing_else():
    mine = UserActor.remote()
    assert ray.get(mine.ping.remote()) == "pong"
    session = Ray(workers=2).open()
    actors = session.actors
    activation = session.submit(forever_with_pid)
    next(activation), next(activation)  # the second pull brought more items than were taken
    session.close()
    assert all(dead(actor) for actor in actors)
    assert session.actors == []
    with pytest.raises(StopIteration):
        next(activation)
    session.close()  # idempotent
    assert ray.get(mine.ping.remote()) == "pong"
    ray.kill(mine)


def test_break_out_of_a_with_block_releases_the_actors():
    plan = c.mix(c.stream(forever_with_pid), c.stream(forever_with_pid))
    with c.iterate(plan, seed=0, executor=Ray(workers=2)) as run:
        actors = run._session.actors
        for _ in run:
            break
    assert all(dead(actor) for actor in actors)


def test_keyboard_interrupt_while_waiting_releases_the_actors(sigint_raises):
    def slow():
        yield 0
        time.sleep(30)
        yield 1

    main = threading.main_thread().ident
    run = c.iterate(c.stream(slow), executor=Ray(workers=1))
    actors = run._session.actors
    with pytest.raises(KeyboardInterrupt):
        assert next(run) == 0
        threading.Timer(0.5, signal.pthread_kill, (main, signal.SIGINT)).start()
        next(run)  # waits in ray.get until the interrupt; the run closes itself
    assert all(dead(actor) for actor in actors)


def test_an_activation_runs_ahead_within_its_window(tmp_path):
    path = tmp_path / "made"
    with Ray(workers=1, prefetch=8).open() as session:
        activation = session.submit(counting, str(path))
        assert next(activation) == 0
        time.sleep(1.0)
        made = int(path.read_text())
        assert 1 < made <= 1 + 8  # it ran ahead of the one item taken, and stopped at the window
        assert [next(activation) for _ in range(20)] == list(range(1, 21))
        time.sleep(0.5)
        assert int(path.read_text()) <= 21 + 8


def test_arrays_arrive_as_read_only_views_of_the_object_store():
    def big():
        yield np.arange(1 << 18, dtype=np.float32)  # 1 MiB

    with Ray(workers=1).open() as session:
        (array,) = list(session.submit(big))
    assert array.dtype == np.float32 and array.shape == (1 << 18,)
    assert float(array[-1]) == (1 << 18) - 1
    assert not array.flags.writeable and not array.flags.owndata


def test_ray_is_a_named_executor_and_its_fields_are_checked():
    assert isinstance(c.execution.base.resolve_executor("ray"), Ray)
    assert c.Ray is Ray
    assert Ray(resources={"CPU": 0.5, "GPU": 0}).resources == (("CPU", 0.5), ("GPU", 0))
    with pytest.raises(InvalidArgument, match="workers must be >= 1, not 0"):
        Ray(workers=0)
    with pytest.raises(InvalidArgumentType, match="Ray.address"):
        Ray(address=6379)
    with pytest.raises(InvalidArgumentType, match="'CPU': 'one'"):
        Ray(resources={"CPU": "one"})
    with pytest.raises(InvalidArgument, match=r"Ray.resources\['CPU'\] must be >= 0, not -1"):
        Ray(resources={"CPU": -1})


def test_actors_ray_cannot_place_raise_worker_error_after_the_timeout():
    start = time.monotonic()
    with pytest.raises(WorkerError, match="did not start 1 actors .*'num_gpus': 1"):
        Ray(workers=1, resources={"GPU": 1}, timeout=1).open()
    assert time.monotonic() - start < 10


def test_without_ray_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when it is not installed
    with pytest.raises(CombinatorsError, match=r'pip install "combinators\[ray\]"'):
        Ray(workers=1)



def test_a_run_state_taken_under_ray_resumes_in_process_and_back():
    """Resume (issue 11) under Ray: an ending-mode mix with budgets, cut under Ray, resumed in-process and on Ray."""
    sources = [c.stream(labelled_items, f"s{i}", 6 + 3 * i) for i in range(3)]
    plan = c.mix(*sources, c.from_iterable([("r", i) for i in range(7)]), n_active=2, rate=2.0, mode="exhaustive")
    expected = [repr(batch) for batch in c.iterate(plan, seed=3)]
    with c.iterate(plan, seed=3, executor=Ray(workers=2)) as run:
        first = [repr(next(run)) for _ in range(4)]
        state = json.loads(json.dumps(run.state()))
    with c.iterate(plan, resume=state) as resumed:
        in_process = [repr(batch) for batch in resumed]
    with c.iterate(plan, resume=state, executor=Ray(workers=1)) as resumed:
        on_ray = [repr(batch) for batch in resumed]
    assert first + in_process == expected
    assert first + on_ray == expected


def labelled_items(name, n):
    """(name, 0), (name, 1)... (name, n - 1)."""
    for index in range(n):
        yield name, index


def test_an_actor_makes_a_budget_ahead_and_never_past_it(tmp_path):
    path = tmp_path / "made"
    with Ray(workers=1).open() as session:
        limited = session.start((counting, (str(path),)), (), limit=5)  # an endless source, a budget of 5
        time.sleep(0.5)
        assert int(path.read_text()) == 5  # all of its budget made ahead of the consumer, and no more
        assert list(limited) == [0, 1, 2, 3, 4]
        unlimited = session.start((counting, (str(tmp_path / "other"),)), ())
        assert [next(unlimited) for _ in range(3)] == [0, 1, 2]
        unlimited.close()
        stats = session.flow_stats()
    assert stats["activations"] == 2
    assert stats["items_received"] - stats["items_wasted"] == 5 + 3, stats
    assert stats["items_wasted"] > 0, stats  # the unlimited one ran ahead of the three items taken


def test_a_working_set_with_budgets_on_ray_wastes_only_the_queue_and_ships_each_plan_once():
    rate, n_active, consumed = 6, 8, 600
    sources = [c.stream(endless, f"s{k}") for k in range(5)]
    plan = c.mix(*sources, n_active=n_active, rate=rate, dist="constant") >> c.take(consumed)
    expected = list(c.iterate(plan, seed=5))
    with c.iterate(plan, seed=5, executor=Ray(workers=2)) as run:
        assert list(run) == expected
        stats = run.executor_stats()
        session = run._session
        assert len(session._plans) == 5  # one pickle per leaf, however many activations
        assert all(len(worker.plans) <= 5 for worker in session._workers)
    # every activation was started with its budget: what the actors made beyond the items consumed is
    # at most the budgets of the working set and of the entries drawn ahead when the run stopped
    assert stats["items_wasted"] <= (n_active + AHEAD) * rate, stats
    assert stats["items_received"] - stats["items_wasted"] == consumed, stats
    assert stats["activations"] >= consumed // rate
    assert 0 < stats["start_latency_median_ms"] <= stats["start_latency_p99_ms"], stats


def endless(name):
    """(name, 0), (name, 1)... forever."""
    for index in itertools.count():
        yield name, index


def with_cleanup(path):
    """Endless items; its ``finally`` writes ``path`` (whoever closes the generator)."""
    try:
        yield from itertools.count()
    finally:
        with open(path, "w") as file:
            file.write("closed")


def test_the_actor_closes_a_generator_at_its_budget_and_when_the_consumer_closes_it(tmp_path):
    at_limit, closed = tmp_path / "at_limit", tmp_path / "closed"
    with Ray(workers=1).open() as session:
        limited = session.start((with_cleanup, (str(at_limit),)), (), limit=3)
        assert wait_until(at_limit.exists, 5)  # made its budget ahead and closed, before the consumer took any
        assert list(limited) == [0, 1, 2]
        running = session.start((with_cleanup, (str(closed),)), ())
        assert [next(running) for _ in range(3)] == [0, 1, 2]
        assert not closed.exists()
        running.close()
        assert wait_until(closed.exists, 5)
        assert list(session.submit(range, 2)) == [0, 1]  # the actor carries on


def test_a_failed_sweep_ends_every_activation_whose_items_it_carried():
    with Ray(workers=1).open() as session:
        endless, failing = session.submit(forever_with_pid), session.submit(lambda: iter([1, threading.Lock()]))
        next(endless)
        assert next(failing) == 1
        with pytest.raises(WorkerError, match="a pull from Ray actor"):
            next(failing)  # the sweep that brings the lock also carries the endless one's items
        with pytest.raises(WorkerError, match="a pull from Ray actor"):
            for _ in range(1000):
                next(endless)
        assert list(session.submit(range, 2)) == [0, 1]  # the actor carries on


def test_a_source_from_a_module_ray_workers_cannot_import_says_how_to_ship_it(tmp_path, monkeypatch):
    (tmp_path / "faraway_source.py").write_text("def numbers(n):\n    yield from range(n)\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # importable here, not in Ray's workers
    import faraway_source

    plan = c.mix(c.stream(faraway_source.numbers, 5), c.stream(faraway_source.numbers, 3), mode="exhaustive")
    expected = list(c.iterate(plan, seed=0))
    with pytest.raises(TransportError) as caught:
        list(c.iterate(plan, seed=0, executor=Ray(workers=1)))
    message = str(caught.value)
    assert "cannot import module 'faraway_source'" in message and str(tmp_path / "faraway_source.py") in message
    assert f"ray.init(runtime_env={{'working_dir': {str(tmp_path)!r}}}) before the first run" in message, message
    assert "cloudpickle.register_pickle_by_value(faraway_source)" in message
    cloudpickle.register_pickle_by_value(faraway_source)  # the advice works
    try:
        assert list(c.iterate(plan, seed=0, executor=Ray(workers=1))) == expected
    finally:
        cloudpickle.unregister_pickle_by_value(faraway_source)
