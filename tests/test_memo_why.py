"""``f.why(...)`` and ``combinators archive why``: the nearest stored entry of a missed call and what differs,
on real LMDB files (the command in a real process, importing a real module)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from combinators.memo import DictArchive, LMDBArchive, memoize

ROOT = Path(__file__).resolve().parents[1]


def _make(k):
    def f(x, y=1, *, scale=2.0):
        return (x + y) * scale * k

    return f


def test_why_names_the_argument_that_differs(tmp_path):
    f = memoize(_make(1), archive=LMDBArchive(tmp_path / "a.lmdb"), name="f")
    f(1)
    f(2, y=3)
    f(5, scale=4.0)
    assert f.why(1).hit and "a hit" in str(f.why(1))
    why = f.why(2, y=4)
    assert not why.hit and why.differences == ("argument 'y'",) and why.nearest.args == "2, y=3"
    assert f.why(5, scale=3.0).differences == ("argument 'scale'",)
    assert f.why(9, y=3).differences == ("argument 'x'",)  # nearest: (2, y=3), one argument away


def test_why_names_the_captured_value_or_the_code_that_changed_the_version(tmp_path):
    archive = LMDBArchive(tmp_path / "a.lmdb")
    memoize(_make(1), archive=archive, name="f")(2, y=3)
    g = memoize(_make(2), archive=archive, name="f")  # another captured k: another version
    why = g.why(2, y=3)
    assert not why.hit and why.differences == ("captured value 'k'",) and why.nearest.version != g.version

    def other(x, y=1, *, scale=2.0):
        return x - y

    h = memoize(other, archive=archive, name="f")
    assert "code" in h.why(2, y=3).differences


def test_why_without_any_entry_says_so():
    f = memoize(lambda x: x, archive=DictArchive(), name="lonely")
    why = f.why(3)
    assert not why.hit and why.nearest is None and "no entry" in str(why)


MODULE = """
from combinators.memo import memoize

OFFSET = {offset}

@memoize(archive={path!r}, name="demo.shift")
def shift(x, y=0):
    return x + y + OFFSET
"""


def test_archive_why_on_the_command_line(tmp_path):
    path = str(tmp_path / "a.lmdb")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    (tmp_path / "demo_v1.py").write_text(textwrap.dedent(MODULE.format(offset=1, path=path)))
    subprocess.run([sys.executable, "-c", "import demo_v1; demo_v1.shift(3, y=4)"], env=env, check=True,
                   cwd=tmp_path, timeout=60)
    (tmp_path / "demo_v2.py").write_text(textwrap.dedent(MODULE.format(offset=2, path=path)))
    cli = "import sys; from combinators.cli import main; sys.exit(main(sys.argv[1:]))"

    def why(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", cli, "archive", "why", path, *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "a hit" in why("demo_v1:shift", "3", "--kw", "y=4")
    out = why("demo_v1:shift", "3", "--kw", "y=5")
    assert "a miss" in out and "argument 'y'" in out and "3, y=4" in out
    out = why("demo_v2:shift", "3", "--kw", "y=4")  # OFFSET, a module constant, is part of the code's version
    assert "a miss" in out and "code" in out and "argument" not in out.split("differs in:")[1]
