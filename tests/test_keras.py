"""keras_tuples gives what Keras ``model.fit`` takes from an iterator: (inputs, targets) batches."""

import numpy as np

import combinators as c


def rows(label, n):
    for i in range(n):
        yield {"image": np.full((8, 8), label + i, dtype=np.float32), "mask": np.ones(8), "label": label}


def test_batches_become_x_y_pairs_of_arrays_with_one_batch_axis():
    sampler = c.mix(c.stream(rows, 0, 50), c.stream(rows, 1, 50), n_active=2, rate=4) >> c.batch(16)
    sampler = sampler >> c.keras_tuples("image", "label")
    for x, y in c.iterate(sampler.take(5), seed=0):
        assert isinstance(x, np.ndarray) and x.shape == (16, 8, 8) and x.dtype == np.float32
        assert isinstance(y, np.ndarray) and y.shape == (16,)


def test_several_inputs_become_a_list_in_the_given_order():
    sampler = c.stream(rows, 2, 8) >> c.batch(4) >> c.keras_tuples(["image", "mask"], "label")
    (x, y), _ = list(sampler)
    assert isinstance(x, list) and [a.shape for a in x] == [(4, 8, 8), (4, 8)]
    np.testing.assert_array_equal(y, [2, 2, 2, 2])


def test_inputs_only_gives_none_targets():
    (x, y), = list(c.stream(rows, 0, 2) >> c.batch(2) >> c.keras_tuples("image"))
    assert x.shape == (2, 8, 8) and y is None
