"""A run state's checksum is the digest of its sorted compact JSON text, however the text is cut to be hashed.

`statecheck._json_pieces` feeds the digest key by key and a slice of a list
at a time (so that a mix of many streams never holds every piece of its
counts at once); the pieces must join to exactly ``json.dumps(fields,
sort_keys=True, separators=(",", ":"))``, the text the checksum was always
taken over, so states sealed before still check. Values are drawn from the
whole JSON space and beyond what JSON keeps: nested dicts and lists, tuples,
NaN and infinities, non-ASCII text, non-str keys, lists longer than a slice
(the slice drawn small).
"""

from __future__ import annotations

import hashlib
import json
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from combinators.execution import statecheck

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=4)
keys = st.text(max_size=3) | st.integers(-3, 3) | st.booleans() | st.none()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=7) | st.lists(inner, max_size=5).map(tuple)
    | st.dictionaries(st.text(max_size=3), inner, max_size=4) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=30,
)


def _whole(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)


@given(value=values, size=st.integers(1, 4))
def test_the_pieces_join_to_the_sorted_compact_json_text(value, size):
    with mock.patch.object(statecheck, "_SLICE", size):
        try:
            whole = _whole(value)
        except TypeError:  # keys json cannot sort (str beside int): the pieces refuse them too
            try:
                "".join(statecheck._json_pieces(value))
            except TypeError:
                return
            raise AssertionError("the pieces encoded what json.dumps refuses") from None
        assert "".join(statecheck._json_pieces(value)) == whole


@given(fields=st.dictionaries(st.text(max_size=4), values, max_size=4), size=st.integers(1, 4))
def test_the_checksum_is_the_digest_of_the_whole_text(fields, size):
    fields = {key: value for key, value in fields.items() if key != "check"}
    try:
        whole = _whole(fields)
    except TypeError:
        return
    with mock.patch.object(statecheck, "_SLICE", size):
        assert statecheck._digest({**fields, "check": "x"}) == hashlib.blake2b(whole.encode(), digest_size=16).hexdigest()
