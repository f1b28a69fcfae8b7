"""Deeply nested values: every decoder bounds the nesting it reads, every encoder refuses what it could not read.

Each nesting level of a tuple is decoded by a nested msgpack call holding about
40 KB of C stack: a tuple 200 deep used to kill the process with SIGSEGV (the
consumer of `Processes`/`ZMQ`, a resumed run, a read of a ``"numpy"`` memo entry).
The cases that crashed run in a subprocess, so that the old behaviour fails the
test instead of killing the test process.
"""

import subprocess
import sys
import textwrap

import pytest

import combinators as c
from combinators.errors import InvalidArgumentType, RunStateError
from combinators.memo import LMDBArchive
from combinators.packing import MAX_DEPTH


def nested(depth, leaf=1):
    value = leaf
    for _ in range(depth):
        value = (value,)
    return value


def _run(script, timeout=120):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_crafted_deep_bytes_never_crash_a_decoder():
    """Depth 200: the depth that killed each decoder with SIGSEGV (checked in a subprocess)."""
    result = _run("""
        import base64, msgpack
        from combinators.execution import runstate
        from combinators.execution.remote import wire
        from combinators.memo.serializers import NumpySerializer
        from combinators.packing import unpack

        def crafted(depth, code):
            data = msgpack.packb([1])
            for _ in range(depth - 1):
                data = msgpack.packb([msgpack.ExtType(code, data)])
            return msgpack.packb(msgpack.ExtType(code, data))

        for decode, data in [(unpack, crafted(200, 2)), (wire.loads, [crafted(200, 1)]),
                             (runstate.decode, base64.b64encode(crafted(200, 2)).decode()),
                             (NumpySerializer().loads, b"m" + crafted(200, 2))]:
            try:
                decode(data)
                print("decoded")
            except Exception as error:
                print("refused", type(error).__name__)
    """)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.split() == ["refused", "TooDeep", "refused", "TransportError",
                                     "refused", "RunStateError", "refused", "TooDeep"]


@pytest.mark.parametrize("executor", ["Processes(workers=1)", "ZMQ(workers=1)"])
def test_a_deep_tuple_from_a_worker_is_refused_and_the_consumer_lives(executor):
    result = _run(f"""
        import combinators as c
        from combinators.errors import CombinatorsError

        def deep(n):
            value = 1
            for _ in range(n):
                value = (value,)
            yield value
            yield "after"

        if __name__ == "__main__":
            for n in (3, 200):
                try:
                    out = list(c.iterate(c.stream(deep, n), seed=0, executor=c.{executor}))
                    print("items", len(out))
                except CombinatorsError as error:
                    print("refused", type(error).__name__, "more than 64 deep" in str(error))
    """)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.split() == ["items", "2", "refused", "TransportError", "True"]


def _values(values):
    yield from values


def test_a_shuffle_buffer_holding_a_deep_tuple_has_no_state():
    plan = (c.stream(_values, [nested(200), *range(10)]) | c.stream(_values, [1])) >> c.shuffle(4)  # a buffer
    run = c.iterate(plan, seed=0)
    assert next(run) != nested(200)  # so the buffer holds it
    with pytest.raises(RunStateError, match="more than 64 deep"):
        run.state()


def test_a_crafted_state_whose_buffer_nests_deep_is_refused():
    result = _run("""
        import base64, json, msgpack
        import combinators as c
        from combinators.errors import CombinatorsError

        def values(values):
            yield from values

        def crafted(depth, code):
            data = msgpack.packb([1])
            for _ in range(depth - 1):
                data = msgpack.packb([msgpack.ExtType(code, data)])
            return msgpack.packb(msgpack.ExtType(code, data))

        plan = (c.stream(values, [(1,), 2, 3, 4]) | c.stream(values, [5])) >> c.shuffle(4)
        run = c.iterate(plan, seed=0)
        next(run)
        text = json.dumps(run.state())
        (good,) = [cell["items"] for cell in json.loads(text)["root"]["apply"]["cells"]]
        list(c.iterate(plan, resume=json.loads(text)))  # the state as taken resumes
        try:
            list(c.iterate(plan, resume=json.loads(text.replace(good, base64.b64encode(crafted(200, 2)).decode()))))
            print("accepted")
        except CombinatorsError as error:
            print("refused", type(error).__name__, "more than 64 deep" in str(error) or "checksum" in str(error))
    """)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.split()[0::2] == ["refused", "True"]


def test_a_numpy_archive_refuses_to_store_a_deep_tuple_so_it_is_never_poisoned(tmp_path):
    archive = LMDBArchive(tmp_path / "a.lmdb", serializer="numpy")
    archive[b"ok"] = nested(MAX_DEPTH)
    with pytest.raises(InvalidArgumentType, match="more than 64 deep"):
        archive[b"deep"] = nested(200)
    assert b"deep" not in archive and archive[b"ok"] == nested(MAX_DEPTH)


def test_a_crafted_deep_message_from_a_joined_worker_is_refused_and_the_consumer_lives():
    """A worker gone wrong (its packer replaced in the worker) sends a header of tuples nested 200 deep."""
    result = _run("""
        import msgpack
        from combinators.errors import TransportError
        from combinators.execution.remote.processes import Processes

        def deep_header():
            import combinators.execution.remote.wire as wire

            def crafted(self):
                data = msgpack.packb([1])
                for _ in range(199):
                    data = msgpack.packb([msgpack.ExtType(1, data)])
                self._chunks, self.count = [], 0
                return [msgpack.packb(msgpack.ExtType(1, data))]

            wire.ItemPacker.frames = crafted
            yield "anything"

        if __name__ == "__main__":
            with Processes(workers=1).open() as session:
                try:
                    list(session.submit(deep_header))
                    print("accepted")
                except TransportError as error:
                    print("refused", "more than 64 deep" in str(error), session.stats()["malformed"])
            print("alive")  # the worker stays patched: its later messages would be refused the same way
    """)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.split()[:2] == ["refused", "True"]
    assert result.stdout.split()[-1] == "alive"
