"""Deeply nested values: every decoder bounds the nesting it reads, every encoder refuses what it could not read.

Each nesting level of a tuple is decoded by a nested msgpack call holding about
40 KB of C stack: a tuple 200 deep used to kill the process with SIGSEGV (the
consumer of `Processes`/`ZMQ`, a resumed run, a read of a ``"numpy"`` memo entry).
The cases that crashed run in a subprocess, so that the old behaviour fails the
test instead of killing the test process.
"""

import base64
import json
import subprocess
import sys
import textwrap

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import combinators as c
from combinators.errors import InvalidArgumentType, ResumeError, RunStateError, TransportError
from combinators.execution import runstate
from combinators.execution.remote import wire
from combinators.memo import LMDBArchive
from combinators.memo.serializers import NumpySerializer
from combinators.packing import MAX_DEPTH, TooDeep, pack, unpack


def nested(depth, leaf=1):
    value = leaf
    for _ in range(depth):
        value = (value,)
    return value


def crafted(depth, tuple_code):
    """msgpack bytes of ``depth`` nested tuple extensions (code ``tuple_code``), as no encoder writes them."""
    data = msgpack.packb([1])
    for _ in range(depth - 1):
        data = msgpack.packb([msgpack.ExtType(tuple_code, data)])
    return msgpack.packb(msgpack.ExtType(tuple_code, data))


#: each decoder: (encode, decode of its own bytes, bytes crafted at a depth, the errors that refuse them)
CODECS = {
    "packing": (pack, unpack, lambda d: crafted(d, 2), (TooDeep,)),
    "wire": (wire.dumps, wire.loads, lambda d: [crafted(d, 1)], (TransportError,)),
    "runstate": (runstate.encode, runstate.decode, lambda d: base64.b64encode(crafted(d, 2)).decode(),
                 (RunStateError,)),
    "numpy-serializer": (NumpySerializer().dumps, NumpySerializer().loads, lambda d: b"m" + crafted(d, 2),
                         (TooDeep, InvalidArgumentType)),
}

LEAVES = st.sampled_from([1, "x", None, 1.5 - 2j, np.float32(2.5), np.arange(3, dtype=np.int16), [1, {"k": 2}]])


@pytest.mark.parametrize("name", sorted(CODECS))
@settings(max_examples=40, deadline=None)
@given(depth=st.integers(0, 400), leaf=LEAVES)
def test_every_codec_round_trips_up_to_its_depth_and_refuses_deeper_cleanly(name, depth, leaf):
    encode, decode, _, refusals = CODECS[name]
    value = nested(depth, leaf)
    try:
        data = encode(value)
    except refusals as error:
        assert depth > MAX_DEPTH - 2, (depth, error)  # arrays, scalars and complex numbers count a level
        assert f"more than {MAX_DEPTH} deep" in str(error)
        return
    assert depth <= MAX_DEPTH
    back = decode(data)
    inner = back
    for _ in range(depth):
        assert type(inner) is tuple and len(inner) == 1
        (inner,) = inner
    assert type(inner) is type(leaf)


@pytest.mark.parametrize("name", sorted(CODECS))
@settings(max_examples=40, deadline=None)
@given(depth=st.integers(1, 2000))
def test_every_decoder_refuses_data_nested_deeper_than_it_reads(name, depth):
    _, decode, craft, refusals = CODECS[name]
    try:
        back = decode(craft(depth))
    except refusals as error:
        assert depth > MAX_DEPTH and f"more than {MAX_DEPTH} deep" in str(error)
    else:
        assert depth <= MAX_DEPTH and back == nested(depth)


def _run(script, timeout=120):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=timeout)


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
