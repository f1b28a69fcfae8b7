"""explain(): short values and every non-default field of every node."""

from __future__ import annotations

import numpy as np

import combinators as c


def load(path, scale=1.0):
    yield from ()


def test_arrays_are_shown_by_dtype_and_shape_not_by_repr():
    data = np.zeros((1000, 3), dtype=np.float32)
    plan = c.from_arrays({"x": data, "y": np.zeros(1000, dtype=np.int64)}) | c.from_iterable(data)
    text = c.explain(plan)
    assert "from_arrays({'x': float32[1000, 3], 'y': int64[1000]})" in text
    assert "from_iterable(float32[1000, 3])" in text
    assert "0." not in text and len(text) < 200
    assert "from_iterable(list[500])" in c.explain(c.from_iterable(list(range(500))))
    assert "stream(load, float32[1000, 3], scale=2)" in c.explain(c.stream(load, data, scale=2))


def test_every_non_default_field_is_shown():
    a, b = c.from_iterable("ab"), c.from_iterable("c")
    plan = c.chain(
        c.mix(a, b, (1, 3), n_active=2, rate=3, dist="constant", mode="single_active", prune_empty=False),
        c.round_robin(a, b, mode="permuted_cycle") >> c.batch(2, partial=True, axis=0) >> c.cache(4, prob=0.25),
        c.mix(a, b),
        cycle=True,
    )
    lines = c.explain(plan).splitlines()
    assert lines[0] == "chain cycle=True"
    mixed = lines[1]
    for words in ("n_active=2", "rate=3.0", "dist=constant", "mode=single_active", "prune_empty=False"):
        assert words in mixed, (words, mixed)
    assert "apply: batch(2, partial=True, axis=0) >> cache(4, prob=0.25)" in lines[4]
    assert "round_robin mode=permuted_cycle" in lines[5]
    default_mix = lines[8]
    assert default_mix.endswith("mix all-active mode=with_replacement"), default_mix
