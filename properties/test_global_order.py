"""Data parallelism: for random plans over random-access sources, any world size and any cut point,
the ranks' items interleaved are the single-process sequence, and a state taken at world size ``w``
resumes at ``w2`` with exactly the rest of it."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import combinators as c

N = 48  # global items compared
#: the .npy shards of the plans that read files (written once, as drawn)
SHARDS = tempfile.TemporaryDirectory(prefix="global-order-")


def npy(values: np.ndarray) -> c.Stream:
    """``from_npy`` over a file holding ``values``: rows read with ``os.preadv`` (`ReadRows.read_runs` for ranks)."""
    path = os.path.join(SHARDS.name, f"{values[0] if len(values) else 'empty'}-{len(values)}.npy")
    if not os.path.exists(path):
        np.save(path, values)
    return c.from_npy(path)


@pytest.fixture(scope="module", autouse=True)
def _shards_removed():
    yield
    SHARDS.cleanup()


@st.composite
def plans(draw):
    lengths = draw(st.lists(st.integers(0, 25), min_size=1, max_size=4))
    source = draw(st.sampled_from([c.from_arrays, npy]))
    sources = [source(np.arange(100 * i, 100 * i + n)) for i, n in enumerate(lengths)]
    if draw(st.booleans()):  # a sequence source: random access, on the per-item path
        sources[0] = c.from_iterable(list(range(0, lengths[0])))
    n_active = draw(st.sampled_from([None, 1, 2]))
    options = {
        "n_active": n_active,
        "rate": None if n_active is None else draw(st.sampled_from([None, 1, 2.5])),
        "mode": draw(st.sampled_from(["with_replacement", "single_active", "exhaustive", "first_exhausted"])),
        "dist": draw(st.sampled_from(["constant", "poisson", "binomial"])),
    }
    weights = draw(st.lists(st.integers(1, 5), min_size=len(sources), max_size=len(sources)))
    if draw(st.booleans()):
        later = draw(st.lists(st.integers(1, 5), min_size=len(sources), max_size=len(sources)))
        weights = c.schedule({0: weights, draw(st.integers(1, 30)): later})
    node = c.mix(*sources, weights=weights, **options)
    end = draw(st.sampled_from(["none", "batch", "partial", "take", "map"]))
    if end == "batch":
        node = node >> c.batch(draw(st.integers(1, 4)))
    elif end == "partial":
        node = node >> c.batch(draw(st.integers(1, 4)), partial=True)
    elif end == "take":
        node = node.take(draw(st.integers(0, 40))) >> c.batch(3, partial=True)
    elif end == "map":
        node = node >> c.map(int)
    return node


def values(items) -> list:
    return [np.asarray(item).tolist() for item in items]


def interleaved(plan, world_size, n, **options) -> list:
    """The first ``n`` items of the ranks, one from each rank in turn."""
    runs = [c.iterate(plan, rank=r, world_size=world_size, **options) for r in range(world_size)]
    out = []
    for i in range(n):
        item = next(runs[i % world_size], None)
        if item is None:
            break
        out.append(np.asarray(item).tolist())
    for run in runs:
        run.close()
    return out


@settings(max_examples=60, deadline=None)
@given(plans(), st.integers(1, 8), st.integers(0, 2**16))
def test_the_ranks_interleaved_are_the_single_process_sequence(plan, world_size, seed):
    assert interleaved(plan, world_size, N, seed=seed) == values(c.iterate(plan, seed=seed, max_iter=N))


@settings(max_examples=60, deadline=None)
@given(plans(), st.integers(1, 8), st.integers(1, 8), st.integers(0, 6), st.integers(0, 2**16))
def test_a_state_at_one_world_size_continues_at_another(plan, world_size, new_world, k, seed):
    whole = values(c.iterate(plan, seed=seed, max_iter=N + k * world_size))
    if len(whole) < k * world_size:  # the sequence ends before every rank has k items
        return
    states = []
    for rank in {0, world_size - 1}:
        with c.iterate(plan, seed=seed, rank=rank, world_size=world_size) as run:
            assert values(next(run) for _ in range(k)) == whole[rank : k * world_size : world_size]
            states.append(json.loads(json.dumps(run.state())))
    assert states[0] == states[-1] and states[0]["items"] == k * world_size
    rest = interleaved(plan, new_world, N, resume=states[0])
    assert whole[: k * world_size] + rest == whole[: k * world_size + N]
