"""``combinators demo --checkpoint/--resume``: killed with SIGKILL at a random batch, the resumed run ends
with the uninterrupted run's classifier (same coefficients, same accuracy)."""

import contextlib
import io
import json
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("sklearn")

from combinators.cli import main  # noqa: E402

STEPS = 150


def demo(*argv):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["demo", *argv]) == 0
    return buffer.getvalue()


def final(path):
    with open(path, "rb") as file:
        saved = pickle.load(file)
    return saved["classifier"], saved


def accuracy_of(output):
    return re.search(r"accuracy: ([0-9.]+)", output).group(1)


def test_a_demo_killed_at_a_random_batch_resumes_to_the_same_classifier(tmp_path):
    workdir, options = tmp_path / "work", ["--steps", str(STEPS), "--seed", "3"]
    full = demo("--workdir", str(workdir), *options, "--checkpoint", str(tmp_path / "full.ckpt"))
    partial = tmp_path / "partial.ckpt"
    command = [sys.executable, "-m", "combinators.cli", "demo", "--workdir", str(workdir), *options,
               "--checkpoint", str(partial), "--checkpoint-every", "3"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not partial.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(random.uniform(0, 0.2))  # a random batch after the first checkpoint
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL  # killed, not finished
    killed_at = json.loads(final(partial)[1]["stream"])["items"]
    assert 0 < killed_at < STEPS
    resumed = demo("--workdir", str(workdir), *options, "--checkpoint", str(partial), "--resume", str(partial))
    expected, _ = final(tmp_path / "full.ckpt")
    got, _ = final(partial)
    assert np.array_equal(got.coef_, expected.coef_) and np.array_equal(got.intercept_, expected.intercept_)
    assert accuracy_of(resumed) == accuracy_of(full)
    assert f"resume: from step {killed_at} of {STEPS} ({partial})" in resumed


def test_a_resume_with_other_options_names_them_before_running_and_a_resume_says_its_step(tmp_path, capsys):
    from combinators import InvalidArgument
    from combinators.cli import console

    workdir, checkpoint = str(tmp_path / "work"), str(tmp_path / "run.ckpt")
    small = ["--workdir", workdir, "--shards-per-class", "2", "--seed", "1"]
    demo(*small, "--steps", "20", "--checkpoint", checkpoint)
    differ = r"was written with --steps 20 \(this run: 30\), --rate 8.0 \(this run: 4.0\)"
    with pytest.raises(InvalidArgument, match=differ):
        demo(*small, "--steps", "30", "--rate", "4", "--resume", checkpoint)
    capsys.readouterr()
    assert console(["demo", *small, "--steps", "30", "--resume", checkpoint]) == 2  # as a command: no traceback
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("combinators: error: --resume ") and "Traceback" not in err, (out, err)
    assert "--steps 20 (this run: 30)" in err
    resumed = demo(*small, "--steps", "20", "--resume", checkpoint)
    assert f"resume: from step 20 of 20 (its last: nothing left to train) ({checkpoint})" in resumed
    (tmp_path / "junk.ckpt").write_bytes(b"not a pickle")
    with pytest.raises(InvalidArgument, match="junk.ckpt: not a checkpoint of this demo"):
        demo(*small, "--resume", str(tmp_path / "junk.ckpt"))
