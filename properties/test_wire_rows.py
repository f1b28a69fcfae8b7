"""Items packed as row groups (alike items sent column-wise) come back exactly, in order, whatever
runs of alike and near-alike items a message holds and wherever messages are cut."""

from __future__ import annotations

import collections

import msgpack
import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from combinators.errors import TransportError
from combinators.execution.remote import wire
from combinators.execution.remote.activation import _count_items
from combinators.execution.remote.wire import OUT_OF_BAND_BYTES, ItemPacker, unpack_items

Pair = collections.namedtuple("Pair", "x y")


class Fields(tuple):
    """A tuple subclass: it must come back as such (pickled), never as a row of a tuple group."""


class Record(dict):
    """A dict subclass: likewise."""

#: values that may share a column, in families of near misses: a run of items draws one family per field
#: and goes through its members in a drawn order, so alike items meet values that must not join their column
_FAMILIES = [
    [
        lambda i: np.full(64, i, np.float64), lambda i: np.full(64, i, np.float32),
        lambda i: np.full(64, i, np.dtype("f8", metadata={"unit": "m"})), lambda i: np.full(65, i, np.float64),
        lambda i: np.full(64, i, ">f8"), lambda i: np.full((2, 32), i, np.float64),
    ],
    [
        lambda i: np.full((2, 3), i, np.float64), lambda i: np.asfortranarray(np.arange(6.0).reshape(2, 3) + i),
        lambda i: (np.arange(12.0) + i)[::2], lambda i: np.array(float(i)), lambda i: np.zeros((0, 3)),
        lambda i: np.full(OUT_OF_BAND_BYTES // 8 + 1, i, np.float64), lambda i: np.array([i, "x"], dtype=object),
    ],
    [
        lambda i: np.array([i, i + 1], "datetime64[D]"), lambda i: np.array([i, i + 1], "datetime64[s]"),
        lambda i: np.array([str(i), "ab"]), lambda i: np.array([(i, 0.5)], [("a", "<i4"), ("b", "<f8")]),
        lambda i: np.zeros(2, np.dtype([("t", np.dtype("f8", metadata={"unit": "s"}))])),
    ],
    [
        lambda i: i, lambda i: i + 0.5, lambda i: bool(i % 2), lambda i: 3**70 + i, lambda i: np.float64(i),
        lambda i: str(i), lambda i: None, lambda i: [i],
    ],
]
_SHAPES = ["array", "dict", "dict", "tuple", "pair", "int-keys"]
#: the keys of a dict item, drawn per item: mostly the same, sometimes reordered or renamed
_KEYS = [("a", "b", "c"), ("a", "b", "c"), ("a", "b", "c"), ("b", "a", "c"), ("a", "c", "b"), ("a", "b", "z")]


@st.composite
def runs(draw):
    """Items alike in structure (a bare array, a dict with str keys, a tuple) with near misses among them."""
    shape = draw(st.sampled_from(_SHAPES))
    families = [_FAMILIES[k] for k in draw(st.lists(st.integers(0, len(_FAMILIES) - 1), min_size=1, max_size=3))]
    if shape == "array":
        families = [_FAMILIES[draw(st.integers(0, 2))]]
    order, key_order = draw(st.permutations(range(8))), draw(st.permutations(range(len(_KEYS))))
    run = []
    for i in range(2 * len(order)):  # each member twice in a row: the second time, maybe in another container
        member, second = order[i // 2], i % 2
        fields = [family[member % len(family)](i) for family in families]
        if shape == "array":
            run.append(fields[0])
        elif shape in ("dict", "int-keys"):
            keys = range(len(fields)) if shape == "int-keys" else _KEYS[key_order[i % len(_KEYS)]]
            run.append((Record if second and member == 6 else dict)(zip(keys, fields)))
        elif shape == "tuple":
            run.append(Fields(fields) if second and member == 7 else tuple(fields))
        else:
            run.append(Pair(i, np.full(3, i)))
    return run


def identical(a, b) -> bool:
    """Same type, and for arrays the same dtype (metadata included), shape, order and bytes (a
    non-contiguous ``b`` arrives as a C-contiguous ``a``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return (
            a.dtype == b.dtype and a.dtype.metadata == b.dtype.metadata and a.shape == b.shape
            and (a.flags.f_contiguous if b.flags.f_contiguous and not b.flags.c_contiguous else a.flags.c_contiguous)
            and (a.dtype.hasobject and a.tolist() == b.tolist() or not a.dtype.hasobject and a.tobytes() == b.tobytes())
        )
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, dict):
        return list(a) == list(b) and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(identical, a, b))
    return a == b


@given(st.lists(runs(), max_size=6), st.sets(st.integers(0, 48), max_size=4))
def test_row_groups_round_trip_in_order(item_runs, cuts):
    sent = [item for run in item_runs for item in run]
    packer, received = ItemPacker(freeze=True), []
    for position, item in enumerate(sent):
        packer.add(item)
        if position in cuts:
            received += unpack_items(packer.frames())
    received += unpack_items(packer.frames())
    assert len(received) == len(sent)
    assert all(map(identical, received, sent))


@given(st.lists(runs(), min_size=1, max_size=4), st.data())
def test_a_message_cut_short_raises_or_gives_whole_items_only(item_runs, data):
    """A header cut inside a value raises `TransportError` (its last item is never dropped without a
    word); cut between two values it reads as a shorter message, of the first items exactly."""
    sent = [item for run in item_runs for item in run]
    packer = ItemPacker(freeze=True)
    for item in sent:
        packer.add(item)
    header, *buffers = packer.frames()
    assume(len(header) > 0)
    cut = data.draw(st.integers(0, len(header) - 1), label="bytes of the header kept")
    try:
        received = unpack_items([bytes(header)[:cut], *buffers])
    except TransportError:
        return
    assert cut in _value_ends(bytes(header)), cut  # else a cut-off value was left out without a word
    assert len(received) < len(sent) and all(map(identical, received, sent))


def _value_ends(header: bytes) -> set[int]:
    """Where the header's top-level msgpack values end (0 included): the cuts that leave whole values."""
    unpacker = msgpack.Unpacker(ext_hook=lambda code, data: None, strict_map_key=False)
    unpacker.feed(header)
    ends = {0}
    for _ in unpacker:
        ends.add(unpacker.tell())
    return ends


#: msgpack values a broken worker might put inside an extension: any shape, nested
_junk = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=False) | st.text(max_size=3)
    | st.binary(max_size=12),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
    max_leaves=12,
)


@given(st.integers(1, 12).filter(lambda code: code != wire._PICKLE), st.one_of(_junk.map(msgpack.packb), st.binary()),
       st.lists(st.binary(max_size=16), max_size=2))
def test_an_extension_that_is_not_what_its_code_promises_raises_transport_error(code, payload, buffers):
    """Whatever a joined worker gone wrong puts in an extension (a row group whose fields are not lists, an
    array layout that is a number...), decoding raises `TransportError`, never another exception that would
    escape the consumer's handling of malformed messages; counting left-over items never raises."""
    frames = [msgpack.packb(msgpack.ExtType(code, payload)), *buffers]
    try:
        unpack_items(frames)
    except TransportError:
        pass
    assert _count_items(frames) >= 0


@given(st.binary(max_size=40))
def test_an_item_that_cannot_be_unpickled_raises_its_own_error_and_is_counted_as_none(pickled):
    frames = [msgpack.packb((1, msgpack.ExtType(wire._PICKLE, pickled)))]
    try:
        unpack_items(frames)
    except TransportError as error:
        raise AssertionError(f"an item's unpickling error became {error!r}") from error
    except Exception:
        assert _count_items(frames) == 0
