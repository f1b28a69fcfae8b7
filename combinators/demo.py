"""``combinators demo``: pescador's canonical use case, end to end, on the digits data.

The scikit-learn digits (1,797 8x8 images, 10 classes) are written to a
working folder as shard files (``.npz``, default 12 per class: 120), with a
stratified fifth kept aside as the held-out set. Each shard is a source; per
class, a `mix` over that class's shards keeps a bounded working set
(``n_active`` shards open at once, each for about ``rate`` rows); over
classes, a weighted `mix` (uniform by default: balanced classes); then
``>> batch(...)``. Each shard is preprocessed by `features`, memoized to an
LMDB archive in the working folder (a second run reads the features back
instead of computing them and says how many hits it had) and written as a
feature shard, which the sampler reads with `from_npz`: per-class mixes of
shard files run on the block path, each file open only while its activation
runs. A
``sklearn.linear_model.SGDClassifier`` is trained with ``partial_fit`` on the
batches, out of core, and the run ends with the held-out accuracy, the
samples per second and the realized vs target class proportions.

The same ``--seed`` gives the same batches, hence the same accuracy to the
last digit, with any ``--executor``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import attrs
import numpy as np
from tqdm.auto import tqdm

from combinators.plan import checks
from combinators.errors import InvalidArgument
from combinators.execution.base import Executor, resolve_executor
from combinators.execution.run import iterate
from combinators.execution.plot import require_matplotlib
from combinators.execution.stats import MixStats, Stats
from combinators.plan.explain import explain
from combinators.memo import LMDBArchive, NoCache, memoize
from combinators.sources.shards import from_npz
from combinators.plan.mixes import Mix, mix  # noqa: F401 - Mix: build_sampler's doctest
from combinators.plan.stream import Stream
from combinators.plan.transforms import batch, take

__all__ = ["add_arguments", "run", "features", "deskew", "gradient_histograms", "write_shards", "write_features", "feature_path", "build_sampler", "Shard"]

N_CLASSES = 10
#: the bytes a shard holds: raw pixels 0..16 as uint8, labels as int64
SHARD_LAYOUT = 1
#: bump when `features` (or `deskew`) changes, so stored features are not reused
FEATURES_VERSION = "2"


def default_workdir() -> Path:
    """Where the demo keeps its shards and archive: ``$XDG_CACHE_HOME/combinators/demo``."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "combinators" / "demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``combinators demo``."""
    parser.add_argument("--workdir", type=Path, default=default_workdir(),
                        help="folder for the shards and the memo archive (default: %(default)s)")
    parser.add_argument("--fresh", action="store_true", help="delete the working folder first")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler and the classifier (default: 0)")
    parser.add_argument("--executor", default="inprocess", choices=("inprocess", "processes", "zmq"),
                        help="where shard activations run (default: inprocess)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes of a parallel executor (default: the executor's own)")
    parser.add_argument("--shards-per-class", type=int, default=12, help="shard files per class (default: 12)")
    parser.add_argument("--steps", type=int, default=150, help="training batches (default: 150)")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per batch (default: 64)")
    parser.add_argument("--n-active", type=int, default=4, help="open shards per class (default: 4)")
    parser.add_argument("--rate", type=float, default=8.0, help="mean rows per shard activation (default: 8)")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                        help="draw each mix's realized vs target proportions and running shares to FILE "
                             "(needs matplotlib: pip install 'combinators[plot]')")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="save the stream state and the classifier to this file every --checkpoint-every batches")
    parser.add_argument("--checkpoint-every", type=int, default=10, help="batches between checkpoints (default: 10)")
    parser.add_argument("--resume", type=Path, default=None,
                        help="continue the training saved in this checkpoint file (same options otherwise)")


# ------------------------------------------------------------------ the shards


@attrs.frozen
class Shard:
    """One shard file: its ``path``, the class ``label`` of its rows and their number ``size``."""

    path: str
    label: int
    size: int


def _split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits as uint8 pixels ``(n, 64)`` and int64 labels, split 80/20 stratified."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:  # pragma: no cover - depends on the install
        msg = 'the demo needs scikit-learn: pip install "combinators[demo]"'
        raise SystemExit(msg) from None
    digits = load_digits()
    pixels, labels = digits.data.astype(np.uint8), digits.target.astype(np.int64)
    return train_test_split(pixels, labels, test_size=0.2, stratify=labels, random_state=seed)


def write_shards(workdir: Path, shards_per_class: int) -> tuple[list[Shard], Path]:
    """Write the training rows as ``shards_per_class`` ``.npz`` files per class, and the held-out set.

    Each shard holds ``pixels`` (uint8, ``(n, 64)``, values 0..16) and
    ``labels`` (int64, ``(n,)``). The split and the layout are fixed (not
    seeded by ``--seed``), and an existing folder with the same layout is
    reused. Returns the shards and the path of ``heldout.npz``.

    Raises `InvalidArgument` if a class has fewer rows than ``shards_per_class``.
    """
    shards_per_class = checks.positive_int("--shards-per-class", shards_per_class)
    manifest_path, heldout = workdir / "shards.json", workdir / "heldout.npz"
    layout = {"layout": SHARD_LAYOUT, "shards_per_class": shards_per_class}
    if manifest_path.exists() and heldout.exists():
        manifest = json.loads(manifest_path.read_text())
        shards = [Shard(**s) for s in manifest["shards"]]
        if manifest["layout"] == layout and all(os.path.exists(s.path) for s in shards):
            return shards, heldout
    x_train, x_test, y_train, y_test = _split()
    shards = []
    (workdir / "shards").mkdir(parents=True, exist_ok=True)
    for label in range(N_CLASSES):
        rows = np.flatnonzero(y_train == label)
        if len(rows) < shards_per_class:
            msg = f"--shards-per-class={shards_per_class} exceeds the {len(rows)} training rows of class {label}"
            raise InvalidArgument(msg)
        for j, part in enumerate(np.array_split(rows, shards_per_class)):
            path = workdir / "shards" / f"class{label}-{j:03d}.npz"
            np.savez(path, pixels=x_train[part], labels=y_train[part])
            shards.append(Shard(str(path), label, len(part)))
    np.savez(heldout, pixels=x_test, labels=y_test)
    manifest_path.write_text(json.dumps({"layout": layout, "shards": [attrs.asdict(s) for s in shards]}))
    return shards, heldout


# --------------------------------------------------------------- preprocessing


def deskew(images: np.ndarray) -> np.ndarray:
    """Straighten slanted digits: shear each image so its principal axis is vertical.

    ``images`` has shape ``(n, 8, 8)``; returns float64 of the same shape.
    The shear is estimated from the image's second moments (the "deslanting"
    used on MNIST since LeCun et al. 1998, "Gradient-based learning applied
    to document recognition") and applied with bilinear interpolation.

    >>> image = np.zeros((1, 8, 8)); image[0, np.arange(8), np.arange(8)] = 1  # a diagonal stroke
    >>> straight = deskew(image)[0]
    >>> bool(straight[:, 3:5].sum() > image[0, :, 3:5].sum())  # mass moves to the middle columns
    True
    """
    from scipy import ndimage  # scipy comes with scikit-learn, the demo extra

    rows, cols = np.mgrid[:8, :8]
    out = np.empty(images.shape, dtype=np.float64)
    for i, image in enumerate(images.astype(np.float64)):
        total = image.sum() or 1.0
        r, c = (rows * image).sum() / total, (cols * image).sum() / total
        var_r = ((rows - r) ** 2 * image).sum() / total
        alpha = ((rows - r) * (cols - c) * image).sum() / total / var_r if var_r else 0.0
        shear = np.array([[1.0, 0.0], [alpha, 1.0]])
        offset = np.array([r, c]) - shear @ np.array([3.5, 3.5])
        out[i] = ndimage.affine_transform(image, shear, offset=offset, order=1)
    return out


def gradient_histograms(images: np.ndarray, cell: int = 4, bins: int = 9) -> np.ndarray:
    """Histograms of oriented gradients: per ``cell x cell`` block, gradient magnitude by orientation.

    ``images`` is ``(n, h, w)`` with ``h`` and ``w`` multiples of ``cell``;
    returns float64 ``(n, (h // cell) * (w // cell) * bins)``, each row of
    unit L2 norm (zero rows stay zero). Orientations are unsigned (0 to pi),
    gradients are Sobel's. Source: Dalal and Triggs (2005), "Histograms of
    oriented gradients for human detection", without block overlap.

    >>> stripes = np.tile([0.0, 1.0], (1, 8, 4))  # vertical stripes: horizontal gradients only
    >>> h = gradient_histograms(stripes, cell=4, bins=4).reshape(4, 4)
    >>> bool((h[:, 0] > 0).all() and (h[:, 1:] == 0).all())
    True
    """
    from scipy import ndimage

    d_rows, d_cols = ndimage.sobel(images, axis=1), ndimage.sobel(images, axis=2)
    magnitude, angle = np.hypot(d_rows, d_cols), np.mod(np.arctan2(d_rows, d_cols), np.pi)
    which = np.minimum((angle / np.pi * bins).astype(np.intp), bins - 1)
    n, h, w = images.shape
    votes = np.zeros((n, h, w, bins))
    np.put_along_axis(votes, which[..., None], magnitude[..., None], axis=3)
    cells = votes.reshape(n, h // cell, cell, w // cell, cell, bins).sum(axis=(2, 4)).reshape(n, -1)
    norms = np.linalg.norm(cells, axis=1, keepdims=True)
    return np.divide(cells, norms, out=np.zeros_like(cells), where=norms > 0)


def features(pixels: np.ndarray) -> np.ndarray:
    """The classifier's inputs, float32 ``(n, 272)``: pixels, deskewed pixels, gradient histograms.

    ``pixels`` is ``(n, 64)`` with values 0..16 (the digits' scale). The
    columns are the pixels scaled to [0, 1] (64), the `deskew`-ed image (64),
    and the `gradient_histograms` (16 cells x 9 orientations) of the deskewed
    image upsampled to 16x16 by a cubic spline. Pure: the same pixels give
    the same features, which is what lets the demo memoize it.

    >>> features(np.full((2, 64), 16, dtype=np.uint8)).shape
    (2, 272)
    """
    from scipy import ndimage

    scaled = np.asarray(pixels, dtype=np.float64) / 16.0
    straight = deskew(scaled.reshape(-1, 8, 8))
    upsampled = ndimage.zoom(straight, (1, 2, 2), order=3)
    parts = [scaled, straight.reshape(len(scaled), 64), gradient_histograms(upsampled)]
    return np.hstack(parts).astype(np.float32)


@functools.lru_cache(maxsize=None)
def memoized_features(archive_path: str) -> Callable[[np.ndarray], np.ndarray]:
    """`features` memoized to the LMDB archive at ``archive_path`` (one wrapper per process).

    No memory cache in front (``NoCache``): each shard activation reads its
    features back from the archive, so nothing but the working set is held.
    ``durability="process"``: an entry survives the process's death, not an
    OS crash (it is a cache: a lost entry is recomputed).
    Module-level and keyed by a path, so worker processes build their own.
    """
    archive = LMDBArchive(archive_path, durability="process")  # a cache: no fsync per entry
    return memoize(features, archive=archive, cache=NoCache(), name="combinators.demo.features",
                   version=FEATURES_VERSION)


def feature_path(shard: Shard) -> str:
    """Where the features of ``shard`` are written: ``features/<name>.npz`` beside ``shards/``."""
    folder, name = os.path.split(shard.path)
    return os.path.join(os.path.dirname(folder), "features", name)


def write_features(shard: Shard, archive_path: str) -> Shard:
    """Write the shard's rows as ``{"x": float32 (n, 272), "y": int64 (n,)}`` to its `feature_path`.

    The features come from the memoized `features` (read back from the
    archive on a second run). Rows are written in a fixed shuffled order (the
    sampler reads a shard's rows in file order). Returns the feature shard.
    """
    with np.load(shard.path) as data:
        pixels, labels = data["pixels"], data["labels"]
    x = memoized_features(archive_path)(pixels)
    order = np.random.default_rng(len(labels)).permutation(len(labels))
    path = feature_path(shard)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, x=x[order], y=labels[order])
    return Shard(path, shard.label, shard.size)


@attrs.frozen
class Preprocessing:
    """What the memoized preprocessing of every shard did.

    ``hits`` and ``misses`` count shards; ``seconds`` is the stage's wall
    time; ``compute_seconds`` what computing the hits took when they were
    stored (from the archive's entry metadata).
    """

    hits: int
    misses: int
    seconds: float
    compute_seconds: float


def preprocess(shards: list[Shard], archive_path: str) -> tuple[Preprocessing, list[Shard]]:
    """Run every shard through the memoized `features` and write its feature shard (`write_features`)."""
    fn = memoized_features(archive_path)
    before, saved = fn.cache_info(), 0.0
    start = time.perf_counter()
    feature_shards = []
    for shard in shards:
        loads = fn.cache_info().loads
        feature_shards.append(write_features(shard, archive_path))
        if fn.cache_info().loads > loads:
            with np.load(shard.path) as data:
                saved += fn.info(data["pixels"]).compute_seconds
    seconds = time.perf_counter() - start
    after = fn.cache_info()
    return Preprocessing(after.loads - before.loads, after.misses - before.misses, seconds, saved), feature_shards


# ------------------------------------------------------------------ sampling


def build_sampler(feature_shards: list[Shard], *, n_active: int, rate: float, batch_size: int,
                  class_weights: Any = None) -> Stream:
    """Per class, a `mix` of its feature shards with a working set; over classes, a weighted `mix`; batches.

    Each feature shard (written by `write_features`) is a `from_npz` source:
    its file is open only while its activation runs, and the per-class mixes
    run on the block path (rows gathered in blocks). Batches are
    ``{"x": float32 (batch_size, 272), "y": int64 (batch_size,)}``. The
    sampler is infinite (every mix samples with replacement).

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> shards = [Shard(os.path.join(folder, f"class{c}.npz"), c, 4) for c in range(10)]
    >>> for s in shards:
    ...     np.savez(s.path, x=np.zeros((4, 272), np.float32), y=np.full(4, s.label))
    >>> sampler = build_sampler(shards, n_active=2, rate=4, batch_size=8)
    >>> isinstance(sampler.stream, Mix), len(sampler.stream.streams)
    (True, 10)
    >>> shutil.rmtree(folder)
    """
    per_class = []
    for label in range(N_CLASSES):
        sources = [from_npz(s.path, keys=("x", "y")).named(Path(s.path).name) for s in feature_shards if s.label == label]
        per_class.append(mix(*sources, n_active=min(n_active, len(sources)), rate=rate))
    names = [f"class {label}" for label in range(N_CLASSES)]
    return mix(*per_class, weights=class_weights, names=names).named("classes") >> batch(batch_size)


def make_executor(name: str, workers: int | None) -> str | Executor:
    """The executor named ``name``, with ``workers`` processes when given.

    Raises `InvalidArgument` for an executor that is not available, and for
    ``workers`` with the in-process executor.
    """
    if workers is None:
        return name
    if name == "inprocess":
        msg = f"--workers={workers} needs a parallel executor (--executor processes or zmq), got --executor {name}"
        raise InvalidArgument(msg)
    workers = checks.positive_int("--workers", workers)
    return type(resolve_executor(name))(workers=workers)


@attrs.frozen
class Training:
    """What a training run did: the classifier, samples, seconds and the class mix's statistics."""

    classifier: Any
    samples: int
    seconds: float
    classes: MixStats
    stats: Stats = attrs.field(factory=Stats)  # every mix's, the class mix first


def train(sampler: Stream, *, steps: int, seed: int, executor: str | Executor, checkpoint: Path | None = None,
          every: int = 10, resume: Path | None = None, options: dict[str, Any] | None = None) -> Training:
    """Fit an ``SGDClassifier`` with ``partial_fit`` on ``steps`` batches of ``sampler``.

    With ``checkpoint``, the stream state (`~combinators.Run.state`), the
    classifier, the samples seen and the demo's ``options`` (`plan_options`)
    are saved there every ``every`` batches and at the end (written to a
    temporary file, then renamed: a kill never leaves half a checkpoint);
    ``resume`` continues from such a file, so the final classifier equals
    that of an uninterrupted run.
    """
    from sklearn.linear_model import SGDClassifier

    classifier = SGDClassifier(average=True, random_state=seed)
    labels, samples, start_from = np.arange(N_CLASSES), 0, {"seed": seed}
    if resume is not None:
        with open(resume, "rb") as file:
            saved = pickle.load(file)  # the classifier is a scikit-learn object: pickled, as sklearn documents
        classifier, samples, start_from = saved["classifier"], saved["samples"], {"resume": json.loads(saved["stream"])}
    start = time.perf_counter()
    plan = sampler >> take(steps)
    with iterate(plan, executor=executor, **start_from) as run:
        for item in tqdm(run, total=steps, initial=run.state()["items"] if resume else 0, desc="train"):
            classifier.partial_fit(item["x"], item["y"], classes=labels)
            samples += len(item["y"])
            if checkpoint is not None and (run.items % every == 0):
                _save_checkpoint(checkpoint, classifier, samples, run, options)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, classifier, samples, run, options)
        seconds = time.perf_counter() - start
        class_mix = sampler.stream
        all_stats = run.stats()
        stats = next((s for s in all_stats if s.node is class_mix), None)
        if stats is None:  # resumed at its last step: no mix ran
            stats = MixStats((0,), class_mix, np.zeros(len(class_mix.streams), np.int64), class_mix.probabilities)
    return Training(classifier, samples, seconds, stats, all_stats)


def _save_checkpoint(path: Path, classifier: Any, samples: int, run: Any, options: dict[str, Any] | None) -> None:
    temporary = path.with_name(path.name + ".tmp")
    saved = {"classifier": classifier, "samples": samples, "stream": json.dumps(run.state()), "options": options}
    with open(temporary, "wb") as file:
        pickle.dump(saved, file)
    os.replace(temporary, path)


#: the demo's options that make its plan and its draws: a checkpoint records them, ``--resume`` compares them
PLAN_OPTIONS = ("seed", "steps", "batch_size", "n_active", "rate", "shards_per_class")


def plan_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `PLAN_OPTIONS` of ``args``, as a checkpoint records them."""
    return {name: getattr(args, name) for name in PLAN_OPTIONS}


def check_resume(args: argparse.Namespace) -> int:
    """The step (batches done) that ``--resume`` starts from, after checking the checkpoint's options.

    Raises `InvalidArgument` for a checkpoint that cannot be read, or one
    written with other `PLAN_OPTIONS` (each differing option named with both
    values: the state belongs to another plan).
    """
    try:
        with open(args.resume, "rb") as file:
            saved = pickle.load(file)  # a file this demo wrote (pickle: the classifier is a scikit-learn object)
        step = json.loads(saved["stream"])["items"]
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        msg = f"--resume {args.resume}: not a checkpoint of this demo ({type(error).__name__}: {error})"
        raise InvalidArgument(msg) from None
    recorded, wanted = saved.get("options") or {}, plan_options(args)
    differ = [f"--{name.replace('_', '-')} {recorded[name]} (this run: {wanted[name]})"
              for name in PLAN_OPTIONS if name in recorded and recorded[name] != wanted[name]]
    if differ:
        msg = (f"--resume {args.resume} was written with {', '.join(differ)}; a run resumes only with the options "
               "it was started with: give those, or leave out --resume to start afresh")
        raise InvalidArgument(msg)
    return step


# ------------------------------------------------------------------- the command


def _accuracy(classifier: Any, heldout: Path) -> tuple[float, int, int]:
    with np.load(heldout) as data:
        pixels, labels = data["pixels"], data["labels"]
    correct = int((classifier.predict(features(pixels)) == labels).sum())
    return correct / len(labels), correct, len(labels)


def _executor_label(args: argparse.Namespace) -> str:
    workers = "" if args.workers is None else f", {args.workers} workers"
    return f"executor {args.executor}{workers}"


def _check_options(args: argparse.Namespace) -> None:
    for name in ("steps", "batch_size", "n_active", "checkpoint_every"):
        checks.positive_int(f"--{name.replace('_', '-')}", getattr(args, name))
    checks.positive_number("--rate", args.rate)


def run(args: argparse.Namespace) -> int:
    """Run the demo; prints the plan, memo hits, speed, accuracy and class proportions."""
    started = time.perf_counter()
    _check_options(args)
    executor = make_executor(args.executor, args.workers)
    resumed_at = None if args.resume is None else check_resume(args)  # before anything long runs
    if args.plot is not None:
        require_matplotlib()  # not after the whole run
    if args.fresh and args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True, exist_ok=True)
    shards, heldout = write_shards(args.workdir, args.shards_per_class)
    archive_path = str(args.workdir / "features.lmdb")
    print(f"digits: {sum(s.size for s in shards)} training rows in {len(shards)} shards, "
          f"held out in {heldout} (working folder {args.workdir})")
    memo, feature_shards = preprocess(shards, archive_path)
    saved = f", {memo.compute_seconds:.3f} s of computing saved" if memo.hits else ""
    print(f"memo: preprocessed {len(shards)} shards in {memo.seconds:.3f} s: {memo.hits} hits, {memo.misses} misses"
          f"{saved} ({archive_path})")
    sampler = build_sampler(feature_shards, n_active=args.n_active, rate=args.rate, batch_size=args.batch_size)
    print("sampler:", *explain(sampler).splitlines()[:4], "    ...", sep="\n  ")
    if resumed_at is not None:
        done = " (its last: nothing left to train)" if resumed_at >= args.steps else ""
        print(f"resume: from step {resumed_at} of {args.steps}{done} ({args.resume})")
    training = train(sampler, steps=args.steps, seed=args.seed, executor=executor, checkpoint=args.checkpoint,
                     every=args.checkpoint_every, resume=args.resume, options=plan_options(args))
    accuracy, correct, total = _accuracy(training.classifier, heldout)
    print(f"train: {training.samples} samples in {training.seconds:.2f} s: "
          f"{training.samples / training.seconds:.0f} samples/s ({_executor_label(args)}, seed {args.seed})")
    print(f"held-out accuracy: {accuracy:.6f} ({correct}/{total})")
    print("class proportions, realized vs target:")
    for name, realized, target in zip(training.classes.names, training.classes.realized, training.classes.target):
        print(f"  {name}: realized {realized:.4f}  target {target:.4f}")
    if args.plot is not None:
        training.stats.plot(str(args.plot))
        print(f"plot: {len(training.stats)} mixes, realized vs target and running shares, in {args.plot}")
    print(f"done in {time.perf_counter() - started:.2f} s")
    sys.stdout.flush()
    return 0
