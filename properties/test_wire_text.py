"""Any Python str (lone surrogates included) and any dtype metadata round-trip through the wire."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from combinators.execution.remote.wire import dumps, loads

#: every code point, surrogates included (hypothesis leaves them out of text() by default)
_ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()))
_METADATA = st.dictionaries(_ANY_TEXT, st.one_of(st.integers(), _ANY_TEXT), min_size=1, max_size=3)


@given(st.lists(_ANY_TEXT, max_size=4), _ANY_TEXT)
def test_any_str_round_trips(texts, key):
    value = {key: texts, "tuple": tuple(texts)}
    assert loads(dumps(value)) == value


@given(_METADATA, st.sampled_from(["f4", "i8", "u1", "M8[s]", "U3"]), st.integers(0, 20000), st.booleans())
def test_dtype_metadata_round_trips(metadata, kind, size, structured):
    dtype = np.dtype(kind, metadata=metadata)
    if structured:
        dtype = np.dtype([("field", dtype)])
    array = np.zeros(size, dtype)
    back = loads(dumps(array))
    inner = (lambda d: d["field"]) if structured else (lambda d: d)
    assert back.dtype == dtype and inner(back.dtype).metadata == metadata
    assert loads(dumps(np.zeros(size, np.dtype(kind)))).dtype.metadata is None  # no cache mixes them up
