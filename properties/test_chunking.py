"""Messages with frames bigger than the frame limit arrive intact through CHUNK pieces and a PARTS layout."""

from __future__ import annotations

import itertools

import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from combinators.execution.remote import protocol

_CONTEXT = zmq.Context.instance()
_NAMES = itertools.count()


@settings(deadline=None, max_examples=60)
@given(
    lengths=st.lists(st.integers(0, 5000), min_size=1, max_size=6),
    frame_bytes=st.integers(1, 3000),
    seed=st.integers(0, 255),
)
def test_any_frames_round_trip_at_any_frame_limit(lengths, frame_bytes, seed):
    frames = [bytes((seed + i + j) % 256 for j in range(length)) for i, length in enumerate(lengths)]
    sender, receiver = _CONTEXT.socket(zmq.PAIR), _CONTEXT.socket(zmq.PAIR)
    for sock in (sender, receiver):
        protocol.configure(sock)  # no high-water marks, as between a worker and its session
    receiver.bind(f"inproc://chunks-{next(_NAMES)}")
    sender.connect(receiver.LAST_ENDPOINT.decode())
    try:
        protocol.send_items(sender, 7, frames, frame_bytes)
        parts = protocol.Reassembler()
        while True:
            head, *rest = receiver.recv_multipart()
            kind, number = protocol.read_head(head)
            assert number == 7 and all(len(frame) <= frame_bytes for frame in rest[1:] if kind != protocol.ITEMS)
            if kind == protocol.CHUNK:
                parts.add(rest[0])
                continue
            received = rest if kind == protocol.ITEMS else parts.frames(rest[0], rest[1:])
            break
        assert kind == (protocol.ITEMS if max(lengths) <= frame_bytes else protocol.PARTS)
        assert [bytes(frame) for frame in received] == frames
        assert not parts.pieces
    finally:
        sender.close(linger=0)
        receiver.close(linger=0)


@given(layout=st.binary(max_size=40), inline=st.integers(0, 3), pieces=st.integers(0, 3))
def test_a_layout_that_does_not_match_is_refused_not_raised(layout, inline, pieces):
    parts = protocol.Reassembler()
    for _ in range(pieces):
        parts.add(b"p")
    frames = parts.frames(layout, [b"i"] * inline)
    assert frames is None or len(frames) == len(layout) // 8
