"""The item framing: every value kind round-trips exactly, in memory, over ZeroMQ and through a worker."""

import collections
import datetime
import fractions
import threading

import msgpack
import numpy as np
import pytest
import zmq

from combinators.errors import TransportError
from combinators.execution.remote.processes import Processes
from combinators.execution.remote.wire import OUT_OF_BAND_BYTES, ItemPacker, dumps, loads, unpack_items

Point = collections.namedtuple("Point", "x y")

_rng = np.random.default_rng(0)
_big = _rng.random((300, 70))  # more than OUT_OF_BAND_BYTES: travels as its own frame

#: every value kind the issue lists, with a name for the test ids
VALUES = {
    "none": None,
    "true": True,
    "false": False,
    "int": -7,
    "uint64": 2**64 - 1,
    "bigint": 3**90,
    "negative-bigint": -(3**90),
    "float": 0.1,
    "nan": float("nan"),
    "complex": 1.5 - 2j,
    "str": "héllo ✓",
    "empty-str": "",
    "bytes": b"\x00\xff raw",
    "list": [1, [2, [3]]],
    "tuple": (1, (2, ()), "three"),
    "dict": {"a": 1, 2: "b", (3, 4): [5], None: {"nested": (6,)}},
    "mixed-nesting": {"xs": [(1, {"y": (b"z",)})]},
    "float32-scalar": np.float32(1.5),
    "int8-scalar": np.int8(-3),
    "bool-scalar": np.bool_(True),
    "datetime64-scalar": np.datetime64("2024-02-29T12:00", "m"),
    "timedelta64-scalar": np.timedelta64(5, "D"),
    "complex-scalar": np.complex128(1 + 2j),
    "str-scalar": np.str_("np"),
    "array-1d": np.arange(10, dtype=np.int64),
    "array-0d": np.array(3.25),
    "array-0d-int": np.array(7, dtype=np.uint16),
    "array-empty": np.zeros((3, 0), dtype=np.float32),
    "fortran": np.asfortranarray(_rng.random((4, 5))),
    "non-contiguous": np.arange(60).reshape(6, 10)[::2, 1::3],
    "transposed": np.arange(12.0).reshape(3, 4).T,
    "big-endian": np.arange(5, dtype=">i4"),
    "structured": np.array([(1, 2.5, b"ab"), (3, 4.5, b"cd")], dtype=[("i", "<i4"), ("f", "<f8"), ("s", "S2")]),
    "structured-subarray": np.zeros(2, dtype=[("v", "<f4", (3,)), ("n", "<u1")]),
    "datetime64": np.array(["2020-01-01", "2021-06-30"], dtype="datetime64[D]"),
    "datetime64-ns": np.arange(3).astype("datetime64[ns]"),
    "timedelta64": np.array([1, 2], dtype="timedelta64[s]"),
    "unicode-array": np.array(["a", "bcd"]),
    "bool-array": np.array([True, False]),
    "float16": np.arange(4, dtype=np.float16),
    "complex64": np.array([1 + 1j], dtype=np.complex64),
    "big-array": _big,
    "big-fortran": np.asfortranarray(_big),
    "big-non-contiguous": _big[::2, ::3],
    "arrays-in-dict": {"x": np.ones((2, 2)), "y": _big, "label": 3},
    "lone-surrogates": "a\udc80 \ud800b",
    "surrogate-key": {"\udfff": ("\ud83d",)},
    "dtype-metadata": np.zeros(3, np.dtype("f4", metadata={"unit": "m"})),
    "big-dtype-metadata": np.zeros(OUT_OF_BAND_BYTES, np.dtype("u1", metadata={"unit": "px"})),
    "field-metadata": np.zeros(2, np.dtype([("t", np.dtype("f8", metadata={"unit": "s"})), ("n", "i4")])),
    "scalar-metadata": np.zeros(1, np.dtype("i8", metadata={"k": 1}))[0],
}

#: kinds that go through the documented pickle fallback, and must still round-trip exactly
PICKLED = {
    "set": {1, 2, 3},
    "frozenset": frozenset("ab"),
    "ordered-dict": collections.OrderedDict(b=1, a=2),
    "named-tuple": Point(1, 2),
    "object-array": np.array([1, "two", None], dtype=object),
    "fraction": fractions.Fraction(1, 3),
    "date": datetime.date(2024, 1, 2),
}


def metadata(dtype):
    """Every ``metadata`` in ``dtype``, nested ones included (dtype equality ignores them)."""
    fields = dtype.fields or {}
    return (dtype.metadata, dtype.subdtype and metadata(dtype.subdtype[0]), [metadata(f[0]) for f in fields.values()])


def same(a, b) -> bool:
    """Exact equality: type, dtype (metadata included), shape, order flag and values (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (np.ndarray, np.generic)) and metadata(a.dtype) != metadata(b.dtype):
        return False
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.flags.f_contiguous and not a.flags.c_contiguous and not b.flags.f_contiguous:
            return False
        if a.dtype == object:
            return all(same(x, y) for x, y in zip(a.ravel(), b.ravel()))
        return a.tobytes() == b.tobytes()
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


ALL = {**VALUES, **PICKLED}


@pytest.mark.parametrize("name", list(ALL))
def test_round_trip_in_memory(name):
    value = ALL[name]
    assert same(loads(dumps(value)), value)


def test_round_trip_over_zeromq_frames():
    context = zmq.Context()
    send, receive = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    try:
        send.bind("inproc://wire")
        receive.connect("inproc://wire")
        for name, value in ALL.items():
            send.send_multipart(dumps(value), copy=False)
            assert same(loads(receive.recv_multipart(copy=False)), value), name
    finally:
        send.close(linger=0)
        receive.close(linger=0)
        context.term()


def _all_values():
    yield from ALL.values()


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_round_trip_through_a_worker_process(start_method):
    with Processes(workers=1, start_method=start_method).open() as session:
        received = list(session.submit(_all_values))
    assert len(received) == len(ALL)
    for (name, value), back in zip(ALL.items(), received):
        assert same(back, value), name


def test_big_arrays_travel_out_of_band_and_small_ones_inline():
    frames = dumps({"small": np.zeros(8), "big": _big})
    assert len(frames) == 2  # header + one buffer
    assert frames[1].nbytes == _big.nbytes >= OUT_OF_BAND_BYTES
    assert len(frames[0]) < 1024


def test_received_arrays_are_writable_and_independent():
    with Processes(workers=1).open() as session:
        small, big, small_again = session.submit(lambda: iter([np.zeros(3), _big, np.zeros(3)]))
    for array in small, big:
        assert array.flags.writeable
        array[0] = 42.0
    assert small_again[0] == 0.0 and big[0, 0] == 42.0


def test_bytearray_and_memoryview_arrive_as_bytes():
    """msgpack packs them natively as binary; documented in the module docstring."""
    assert loads(dumps([bytearray(b"ab"), memoryview(b"cd")])) == [b"ab", b"cd"]


def test_a_packer_coalesces_items_in_order():
    packer = ItemPacker()
    items = [{"i": i, "x": np.full(3, i)} for i in range(50)] + [_big, "end"]
    for item in items:
        packer.add(item)
    assert packer.count == len(items)
    frames = packer.frames()
    assert packer.count == packer.nbytes == 0
    assert all(same(a, b) for a, b in zip(unpack_items(frames), items))


class Unpicklable:
    def __reduce__(self):
        raise TypeError("no pickling here")


@pytest.mark.parametrize("value", [threading.Lock(), (x for x in ()), Unpicklable()])
def test_a_value_that_cannot_be_sent_names_its_type(value):
    with pytest.raises(TransportError, match=type(value).__qualname__):
        dumps({"nested": [value]})


def test_a_failed_item_leaves_the_packer_as_it_was():
    packer = ItemPacker()
    packer.add(_big)
    with pytest.raises(TransportError):
        packer.add([_big, threading.Lock()])
    packer.add("after")
    assert packer.count == 2
    back = list(unpack_items(packer.frames()))
    assert same(back[0], _big) and back[1] == "after"


def _rows(n, fail=False):
    """Runs of alike items (row groups), a small buffer refilled between yields, a big array among them."""
    buffer = np.zeros(8)
    for i in range(n):
        buffer[:] = i  # copied when the item is packed: what it held at the yield arrives
        yield {"x": buffer, "label": i, "weight": i / 2, "flag": i % 2 == 0}
        if i == n // 2:
            yield {"x": _big, "label": i, "weight": 0.0, "flag": True}  # too big for a column: on its own
    yield from ((np.full(3, i, np.int16), i) for i in range(n))
    yield from (np.full((2, 2), i, np.float32) for i in range(n))
    if fail:
        raise ValueError("after the rows")


def _expected_rows(n):
    return [
        {key: value.copy() if isinstance(value, np.ndarray) else value for key, value in item.items()}
        if isinstance(item, dict) else item
        for item in _rows(n)
    ]


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_alike_items_arrive_in_order_through_a_worker(start_method):
    n = 600  # several messages, each a few row groups
    with Processes(workers=1, start_method=start_method).open() as session:
        received = list(session.submit(_rows, n))
    expected = _expected_rows(n)
    assert len(received) == len(expected)
    for back, item in zip(received, expected):
        assert same(back, item)
    first, second = received[0]["x"], received[1]["x"]  # row views of one received array: independent rows
    assert first.flags.writeable
    first[:] = -1.0
    assert second[0] == 1.0 and received[0]["label"] == 0


def test_a_fault_after_row_groups_comes_after_their_items():
    n = 100
    with Processes(workers=1).open() as session:
        activation = session.submit(_rows, n, True)
        received = [next(activation) for _ in range(3 * n + 1)]
        with pytest.raises(ValueError, match="after the rows") as info:
            next(activation)
    assert all(map(same, received, _expected_rows(n)))
    assert "_rows" in info.value.remote_traceback


def test_a_limit_stops_a_row_group_at_its_budget():
    with Processes(workers=1).open() as session:
        plan = (_rows, (1000,))
        got = [list(session.start(plan, (), limit)) for limit in (1, 37, 501)]
    expected = _expected_rows(1000)
    for items, limit in zip(got, (1, 37, 501)):
        assert len(items) == limit and all(map(same, items, expected))


def _many_rows(n):
    for i in range(n):
        yield {"x": np.full(64, float(i))}


def test_row_groups_bigger_than_a_frame_arrive_in_pieces(monkeypatch):
    from combinators.execution.remote import protocol

    monkeypatch.setattr(protocol, "FRAME_BYTES", 4096)  # fork: the worker sees it
    with Processes(workers=1, start_method="fork").open() as session:
        received = list(session.submit(_many_rows, 5000))  # columns of up to 1 MiB: out of band, in pieces
        assert session.stats()["malformed"] == 0
    assert [float(item["x"][0]) for item in received] == list(range(5000))
    assert all(item["x"].shape == (64,) and item["x"][-1] == i for i, item in enumerate(received))


@pytest.mark.parametrize(
    "fields",
    [
        [1, ["x"], 3, np.zeros((2, 4))],  # 3 rows announced, 2 sent
        [1, ["x", "y"], 2, np.zeros((2, 4))],  # a key without its column
        [0, [], 2, [1, 2], [3, 4]],  # a bare group of two columns
        [2, [], 2],  # no column
    ],
    ids=["count", "keys", "bare-width", "empty"],
)
def test_a_malformed_row_group_raises_transport_error(fields):
    """What a buggy member could send: raised as a TransportError naming the group, never mis-decoded."""
    from combinators.execution.remote import wire

    encoder = wire._Encoder()
    header = msgpack.packb(wire._ext(wire._ROWS, wire._packb(fields, encoder)))
    with pytest.raises(TransportError, match="malformed row group"):
        unpack_items([header])
