"""StreamDataset under torchdata's StatefulDataLoader: a checkpointed loader resumes with the same batches."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")
stateful = pytest.importorskip("torchdata.stateful_dataloader")

from combinators import stream  # noqa: E402
from combinators.torch import StreamDataset  # noqa: E402


def noisy_rows(source, n, rng):
    for position in range(n):
        yield np.array([source, position, int(rng.integers(1_000_000))])


def dataset():
    return StreamDataset([stream(noisy_rows, i, 3 + i % 5) for i in range(7)], seed=4)


def batches(loader, n=None):
    out = []
    for batch in loader:
        out.append(batch.tolist())
        if n is not None and len(out) == n:
            break
    return out


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("cut", [0, 3, 7])
def test_a_resumed_stateful_loader_yields_the_remaining_batches(num_workers, cut):
    make = lambda: stateful.StatefulDataLoader(dataset(), batch_size=2, num_workers=num_workers)
    expected = batches(make())
    loader = make()
    first = batches(loader, cut) if cut else []
    state = json.loads(json.dumps(loader.state_dict()))  # through JSON, as a checkpoint file would
    assert '"run": {"format": 2' in json.dumps(state)  # the loader holds the dataset's own state
    resumed = make()
    resumed.load_state_dict(state)
    assert first + batches(resumed) == expected
