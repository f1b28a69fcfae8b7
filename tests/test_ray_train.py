"""Ray Train: docs/data_parallel_ray.py's TorchTrainer on 2 CPU workers, restarted on 1 from its checkpoint."""

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import combinators as c

pytest.importorskip("ray.train")
pytest.importorskip("torch")
from ray import cloudpickle  # noqa: E402  (Ray's own copy, which pickles the training function)

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "data_parallel_ray.py"


@pytest.fixture(scope="module")
def inductor_cache(tmp_path_factory):
    """DistributedDataParallel makes torch's inductor cache folder, by default in TMPDIR (the session's temp
    folder, which must stay clean): point it at a test folder before Ray starts, so that its workers inherit it."""
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("inductor"))
    yield
    if before is None:
        del os.environ["TORCHINDUCTOR_CACHE_DIR"]
    else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = before


@pytest.fixture(scope="module")
def example(inductor_cache, local_ray):
    """The guide's example as a module; its sources travel to Ray's workers by value (they cannot import it)."""
    before = set(sys.modules)
    sys.path.insert(0, str(EXAMPLE.parent))  # it imports docs/data_parallel.py, as when run as a script
    try:
        spec = importlib.util.spec_from_file_location("data_parallel_ray", EXAMPLE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLE.parent))
    cloudpickle.register_pickle_by_value(module)
    yield module
    cloudpickle.unregister_pickle_by_value(module)
    cloudpickle.unregister_pickle_by_value(sys.modules["data_parallel"])  # the example registered it
    for name in {"data_parallel_ray", "data_parallel"} - before:
        del sys.modules[name]


def interleaved(per_rank):
    """The ranks' batches in global order: position ``i`` is rank ``i % w``'s batch ``i // w``."""
    w = len(per_rank)
    return [per_rank[i % w][i // w] for i in range(sum(map(len, per_rank)))]


@pytest.mark.timeout(300)
def test_torch_trainer_resumes_on_another_number_of_workers(example, tmp_path):
    """2 workers take 3 batches each and checkpoint the global state; the same run restarted on 1 worker
    resumes from it: together they train on every batch of the single-process sequence once, in its order."""
    whole = [np.asarray(b)[:, 0].astype(int).tolist() for b in c.iterate(example.make_plan(), seed=0)]
    first = example.train(tmp_path, workers=2, steps=3)
    assert first.error is None and first.metrics["items"] == 6
    assert [len(seen) for seen in first.metrics["seen"]] == [3, 3]
    assert interleaved(first.metrics["seen"]) == whole[:6]

    second = example.train(tmp_path, workers=1)  # the same run's name and storage: its latest checkpoint
    assert second.error is None and second.metrics["items"] == len(whole)
    assert interleaved(second.metrics["seen"]) == whole[6:]
    seen = interleaved(first.metrics["seen"]) + interleaved(second.metrics["seen"])
    assert sorted(map(tuple, seen)) == sorted(map(tuple, whole)) and len(set(map(tuple, seen))) == len(whole)
