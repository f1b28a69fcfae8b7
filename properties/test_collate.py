"""``batch`` stacks exactly what ``np.stack`` stacks, or refuses: never a cast, never a dropped or added key.

Items are dicts drawn around a template (same keys, same dtypes and shapes;
object arrays and Python ints among the values),
each value changed or a key added or removed now and then: the whole space
of what a source may yield, not only uniform rows. For each key, the batch
is ``np.stack`` of the values (numpy's own promotion across dtypes;
``np.asarray`` when the first is a Python int) and
equal to it in dtype, shape and values; where ``np.stack`` refuses (shapes
differ) or the items' keys differ, `stack` raises `DataError` naming the key
or the keys.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from combinators.errors import DataError
from combinators.execution.collate import stack

DTYPES = [np.float32, np.float64, np.int64, np.int8, np.bool_, np.complex64, np.object_]
SHAPES = [(), (2,), (3,), (2, 2), (1, 2)]
KEYS = ["X", "y", "z"]

#: a value: an array of a dtype and shape, or a Python int (a scalar field)
specs = st.tuples(st.sampled_from(DTYPES), st.sampled_from(SHAPES)) | st.just("int")


def _array(spec, seed):
    if spec == "int":
        return seed
    dtype, shape = spec
    return (np.random.default_rng(seed).random(shape) * 10).astype(dtype)


@st.composite
def dict_items(draw):
    template = draw(st.dictionaries(st.sampled_from(KEYS), specs, min_size=1))
    items = []
    for number in range(draw(st.integers(1, 6))):
        spec = dict(template)
        if draw(st.integers(0, 4)) == 0:  # now and then, an item unlike the template
            change = draw(st.sampled_from(["value", "add", "remove"]))
            key = draw(st.sampled_from(KEYS))
            if change == "remove":
                spec.pop(key, None)
            else:
                spec[key] = draw(specs)
        items.append({key: _array(value, number) for key, value in spec.items()})
    return items


@given(items=dict_items())
def test_a_batch_is_np_stack_of_each_key_or_a_data_error(items):
    keys = [sorted(item) for item in items]
    if any(k != keys[0] for k in keys):
        with pytest.raises(DataError, match="keys"):
            stack(items)
        return
    expected = {}
    for key in items[0]:
        try:
            values = [item[key] for item in items]
            expected[key] = np.stack(values) if isinstance(values[0], np.ndarray) else np.asarray(values)
        except ValueError:
            with pytest.raises(DataError, match=repr(key)):
                stack(items)
            return
    batch = stack(items)
    assert list(batch) == list(items[0])
    for key, want in expected.items():
        got = batch[key]
        assert (got.dtype, got.shape) == (want.dtype, want.shape), key
        np.testing.assert_array_equal(got, want)


@given(values=st.lists(st.tuples(st.sampled_from([np.float32, np.float64]), st.sampled_from(SHAPES)), min_size=1,
                       max_size=5))
def test_arrays_of_several_dtypes_are_promoted_as_np_stack_promotes(values):
    arrays = [_array(spec, i) for i, spec in enumerate(values)]
    try:
        want = np.stack(arrays)
    except ValueError:
        with pytest.raises(DataError):
            stack(arrays)
        return
    got = stack(arrays)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
