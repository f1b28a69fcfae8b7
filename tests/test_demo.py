"""``combinators demo``: real shard files, a real LMDB archive, a real classifier."""

import contextlib
import io
import re

import numpy as np
import pytest

pytest.importorskip("sklearn")

from combinators import InvalidArgument  # noqa: E402
from combinators.cli import main  # noqa: E402
from combinators.plan.block_path import block_schema  # noqa: E402
from combinators.demo import Shard, build_sampler, deskew, features, write_shards  # noqa: E402
from combinators.execution.base import resolve_executor  # noqa: E402


def parallel_executor_available(name):
    try:
        resolve_executor(name)
    except InvalidArgument:
        return False
    return True


def demo(capsys, *argv):
    assert main(["demo", *argv]) == 0
    return capsys.readouterr().out


def accuracy_of(output):
    return float(re.search(r"accuracy: ([0-9.]+)", output).group(1))


def memo_counts(output):
    hits, misses = re.search(r"(\d+) hits, (\d+) misses", output).groups()
    return int(hits), int(misses)


def proportions(output):
    return re.findall(r"class \d: realized ([0-9.]+)  target ([0-9.]+)", output)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The demo with its defaults, twice on the same working folder (seed 0)."""
    workdir = tmp_path_factory.mktemp("demo")
    outputs = []
    for _ in range(2):  # capsys is function-scoped: capture by hand
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert main(["demo", "--workdir", str(workdir), "--seed", "0"]) == 0
        outputs.append(buffer.getvalue())
    return workdir, outputs


def test_the_demo_reaches_the_accuracy_and_prints_its_figures(two_runs):
    _, (first, _) = two_runs
    assert accuracy_of(first) >= 0.9
    assert re.search(r"\d+ samples/s", first)
    rows = proportions(first)
    assert len(rows) == 10 and all(target == "0.1000" for _, target in rows)
    assert abs(sum(float(realized) for realized, _ in rows) - 1) < 1e-3


def test_same_seed_same_accuracy_to_the_last_digit(two_runs):
    _, (first, second) = two_runs
    assert re.search(r"accuracy: .*", first).group() == re.search(r"accuracy: .*", second).group()
    assert proportions(first) == proportions(second)


def test_the_second_run_reads_the_features_back(two_runs):
    workdir, (first, second) = two_runs
    n_shards = len(list((workdir / "shards").glob("*.npz")))
    assert memo_counts(first) == (0, n_shards)
    assert memo_counts(second) == (n_shards, 0)
    assert float(re.search(r"([0-9.]+) s of computing saved", second).group(1)) > 0
    assert (workdir / "features.lmdb").exists()


def test_the_shards_partition_the_training_rows_and_the_heldout_is_stratified(two_runs):
    workdir, _ = two_runs
    paths = sorted((workdir / "shards").glob("*.npz"))
    assert len(paths) >= 100
    pixels, labels = [], []
    for path in paths:
        with np.load(path) as shard:
            assert len(set(shard["labels"].tolist())) == 1  # one class per shard
            pixels.append(shard["pixels"])
            labels.append(shard["labels"])
    with np.load(workdir / "heldout.npz") as heldout:
        pixels.append(heldout["pixels"])
        labels.append(heldout["labels"])
        per_class = np.bincount(heldout["labels"], minlength=10)
    from sklearn.datasets import load_digits

    digits = load_digits()
    everything = np.hstack([np.vstack(pixels), np.concatenate(labels)[:, None]])
    original = np.hstack([digits.data.astype(np.uint8), digits.target[:, None]])
    assert sorted(map(tuple, everything)) == sorted(map(tuple, original))  # nothing lost, nothing twice
    assert per_class.min() >= 35 and per_class.max() <= 37  # a stratified fifth of ~180 per class


def test_another_seed_samples_other_batches(tmp_path, capsys, two_runs):
    workdir, (first, _) = two_runs
    other = demo(capsys, "--workdir", str(workdir), "--seed", "1", "--steps", "40")
    assert proportions(other) != proportions(first)


@pytest.mark.parametrize("name", ["processes", "zmq"])
def test_parallel_executors_give_the_in_process_result(name, capsys, two_runs):
    if not parallel_executor_available(name):
        pytest.skip(f"the {name} executor is not merged yet")
    workdir, _ = two_runs
    common = ["--workdir", str(workdir), "--seed", "2", "--steps", "30"]
    reference = demo(capsys, *common)
    parallel = demo(capsys, *common, "--executor", name, "--workers", "2")
    assert re.search(r"accuracy: .*", parallel).group() == re.search(r"accuracy: .*", reference).group()
    assert proportions(parallel) == proportions(reference)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--steps", "0"], "--steps.*0"),
        (["--rate", "-1"], "--rate.*-1"),
        (["--workers", "0", "--executor", "processes"], "--workers.*0"),
        (["--workers", "2"], "--workers=2 needs a parallel executor"),
        (["--shards-per-class", "1000"], "1000"),
    ],
)
def test_bad_options_are_named(tmp_path, argv, match):
    with pytest.raises((InvalidArgument, ValueError), match=match):
        main(["demo", "--workdir", str(tmp_path), *argv])


def test_write_shards_rejects_more_shards_than_rows(tmp_path):
    with pytest.raises(InvalidArgument, match="exceeds the 1.. training rows of class 0"):
        write_shards(tmp_path, 1000)


def test_features_are_pure_and_shaped():
    pixels = np.random.default_rng(0).integers(0, 17, size=(5, 64)).astype(np.uint8)
    first, second = features(pixels), features(pixels.copy())
    assert first.dtype == np.float32 and first.shape == (5, 272)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first[:, :64], pixels / 16)


def test_deskew_leaves_an_upright_stroke_alone_and_straightens_a_slanted_one():
    upright = np.zeros((1, 8, 8))
    upright[0, 1:7, 3:5] = 1
    np.testing.assert_allclose(deskew(upright), upright, atol=1e-12)
    slanted = np.zeros((1, 8, 8))
    slanted[0, np.arange(1, 7), np.arange(1, 7)] = 1
    straight = deskew(slanted)[0]
    column_spread = lambda image: np.average((np.arange(8) - 3.5) ** 2, weights=image.sum(axis=0))  # noqa: E731
    assert column_spread(straight) < column_spread(slanted[0]) / 4


def test_the_sampler_is_a_mix_of_per_class_working_sets(tmp_path):
    shards = [Shard(str(tmp_path / f"class{c}-{j}.npz"), c, 5) for c in range(10) for j in range(4)]
    for s in shards:
        np.savez(s.path, x=np.zeros((5, 272), np.float32), y=np.full(5, s.label))
    sampler = build_sampler(shards, n_active=3, rate=6, batch_size=16)
    classes = sampler.stream
    assert np.allclose(classes.probabilities, 0.1)
    for label, per_class in enumerate(classes.streams):
        assert per_class.n_active == 3 and per_class.rate == 6
        assert [s.path for s in per_class.streams] == [str(tmp_path / f"class{label}-{j}.npz") for j in range(4)]
        assert block_schema(per_class) is not None  # shards of one class run on the block path


def test_demo_plot_writes_a_picture_of_every_mix(capsys, tmp_path):
    image = pytest.importorskip("matplotlib.image")
    target = tmp_path / "mix.png"
    out = demo(capsys, "--workdir", str(tmp_path / "work"), "--shards-per-class", "2", "--steps", "20",
               "--plot", str(target))
    assert f"plot: 11 mixes, realized vs target and running shares, in {target}" in out
    pixels = image.imread(target)
    assert pixels.shape[1] == 1200 and pixels.shape[0] == 11 * 320  # 12 x 3.2 inches per mix at 100 dpi
    assert pixels[..., :3].std() > 0.05  # not blank: bars and lines on white
