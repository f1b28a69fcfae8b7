"""Every decoder reads values nested up to `combinators.packing.MAX_DEPTH` and refuses deeper ones cleanly.

A depth property for each codec: the memo codec (`combinators.packing`), the
wire (`combinators.execution.remote.wire`), run-state items
(`combinators.execution.runstate`) and the ``"numpy"`` memo serializer. Values
nested up to 400 deep (encoders refuse past the limit, so nothing written is
unreadable) and bytes crafted up to 2000 deep (decoders refuse them before
recursing: a tuple 200 deep used to kill the process with SIGSEGV; the
regressions, in subprocesses, are in tests/test_depth.py).
"""

import base64

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from combinators.errors import InvalidArgumentType, RunStateError, TransportError
from combinators.execution import runstate
from combinators.execution.remote import wire
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
