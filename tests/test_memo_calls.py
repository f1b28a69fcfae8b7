"""Versions that follow what a function calls (issue 23): real module files, imported in fresh processes.

A memoized function's version covers the code of the functions it calls
from the user's own modules, transitively: edit a helper (or a helper's
helper) and the next run recomputes; edit nothing, or only line numbers, a
comment or a function it does not call, and the next run is served from the
LMDB archive. Library code is keyed by its distribution's version, not its
code. In one process, a helper rebound (a notebook cell run again) is
noticed at the next call.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from combinators.memo import DictArchive, memoize
from combinators.memo.calls import CodeVersion, code_version, library_version

PIPELINE = """
    import sys
    import helpers
    from combinators.memo import LMDBArchive, memoize
    from helpers import offset

    @memoize(archive=LMDBArchive(sys.argv[1]))
    def features(x):
        return helpers.scale(x) + offset(x) + later(x)

    def later(x):  # defined below the decorated function: bound when it is first called
        return 0
"""
HELPERS = """
    import numpy as np
    import deep

    def scale(x):
        return 2 * x

    def offset(x):
        return deep.shift(x) + int(np.sign(x))

    def unused(x):
        return x
"""
DEEP = """
    def shift(x):
        return 100
"""
RUN = "import sys, pipeline; f = pipeline.features; print(f(3), f.cache_info().misses, f.cache_info().loads)"


def write(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(text))


def run(folder: Path, archive: Path, extra_path: Path | None = None) -> tuple[int, int, int]:
    """One fresh process importing the modules in ``folder``: (value, misses, archive loads)."""
    paths = [str(folder), *([str(extra_path)] if extra_path else []), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-c", RUN, str(archive)], env=env, capture_output=True, text=True,
                            timeout=120, cwd=folder)
    assert result.returncode == 0, result.stderr
    value, misses, loads = map(int, result.stdout.split())
    return value, misses, loads


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    write(folder, "pipeline", PIPELINE)
    write(folder, "helpers", HELPERS)
    write(folder, "deep", DEEP)
    return folder


def test_an_edited_helper_means_a_recompute_and_nothing_edited_a_hit(project, tmp_path):
    archive = tmp_path / "memo.lmdb"
    assert run(project, archive) == (107, 1, 0)
    assert run(project, archive) == (107, 0, 1)  # nothing edited: served from the archive
    write(project, "helpers", HELPERS.replace("2 * x", "3 * x"))
    assert run(project, archive) == (110, 1, 0)  # the called helper edited
    write(project, "helpers", HELPERS)
    assert run(project, archive) == (107, 0, 1)  # edited back: the first entry again


def test_a_helpers_helper_edited_means_a_recompute(project, tmp_path):
    archive = tmp_path / "memo.lmdb"
    assert run(project, archive) == (107, 1, 0)
    write(project, "deep", DEEP.replace("100", "200"))
    assert run(project, archive) == (207, 1, 0)


def test_a_function_defined_below_is_followed(project, tmp_path):
    archive = tmp_path / "memo.lmdb"
    assert run(project, archive) == (107, 1, 0)
    write(project, "pipeline", PIPELINE.replace("return 0", "return 1000"))
    assert run(project, archive) == (1107, 1, 0)


def test_line_numbers_comments_and_uncalled_functions_do_not_change_the_version(project, tmp_path):
    archive = tmp_path / "memo.lmdb"
    assert run(project, archive) == (107, 1, 0)
    moved = "\n\n# a comment\n" + textwrap.dedent(HELPERS).replace("return x\n", "return x + 1  # not called\n")
    write(project, "helpers", moved)
    assert run(project, archive) == (107, 0, 1)


def test_library_code_is_keyed_by_its_distributions_version(project, tmp_path):
    """A distribution installed (not editable) in a site folder: its code is not followed, its version is."""
    site = tmp_path / "site"
    (site / "mylib").mkdir(parents=True)
    (site / "mylib" / "__init__.py").write_text("def shift(x):\n    return 100\n")
    info = site / "mylib-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mylib\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("mylib\n")
    write(project, "deep", "from mylib import shift\n")
    archive = tmp_path / "memo.lmdb"
    assert run(project, archive, site) == (107, 1, 0)
    (site / "mylib" / "__init__.py").write_text("def shift(x):\n    return 200\n")  # its code, not its version
    assert run(project, archive, site) == (107, 0, 1)  # served: library code is trusted to its version
    info.rename(site / "mylib-1.1.dist-info")
    (site / "mylib-1.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: mylib\nVersion: 1.1\n")
    assert run(project, archive, site) == (207, 1, 0)


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_a_helper_redefined_in_the_process_is_noticed_at_the_next_call(tmp_path):
    (tmp_path / "notebook_cells.py").write_text(textwrap.dedent("""
        def helper(x):
            return x + 1

        def compute(x):
            return helper(x) * 10
    """))
    cells = load(tmp_path / "notebook_cells.py", "notebook_cells")
    try:
        archive = DictArchive()
        f = memoize(cells.compute, archive=archive)
        first = f.version
        assert (f(1), f(1), f.cache_info().misses) == (20, 20, 1)
        exec("def helper(x):\n    return x + 2\n", cells.__dict__)  # the cell defining helper run again, edited
        assert f(1) == 30 and f.version != first and f.cache_info().misses == 2
        exec("def helper(x):\n    return x + 1\n", cells.__dict__)  # and back: the first entry, from the archive
        assert f(1) == 20 and f.version == first and f.cache_info().loads == 1
        assert f.cache_info().misses == 2 and len(archive) == 2
    finally:
        del sys.modules["notebook_cells"]


def test_code_version_follows_classes_and_their_methods(tmp_path):
    (tmp_path / "shapes.py").write_text(textwrap.dedent("""
        class Square:
            def __init__(self, side):
                self.side = side

            def area(self):
                return self.side ** 2

        def total(sides):
            return sum(Square(s).area() for s in sides)
    """))
    shapes = load(tmp_path / "shapes.py", "shapes")
    try:
        version = CodeVersion(shapes.total)
        before = version.digest
        exec("class Square:\n    def __init__(self, side):\n        self.side = side\n"
             "    def area(self):\n        return self.side * 4\n", shapes.__dict__)
        assert version.stale() and version.refresh() != before and not version.stale()
    finally:
        del sys.modules["shapes"]


def sums(x):
    return np.sum(x)


def test_library_versions_name_the_distribution_or_python(monkeypatch):
    assert library_version("numpy") == f"numpy=={np.__version__}"
    assert library_version("json").startswith("python==") and library_version("__main__") is None
    version = CodeVersion(sums)
    assert version.watched == 1  # the global np; numpy's own functions are not followed
    monkeypatch.setattr(np, "sum", lambda x: 0)
    assert code_version(sums) == version.digest and not version.stale()


class Registry:
    """An object whose attributes run other functions, told to the version through ``__memo_calls__``."""

    def __init__(self, **functions):
        self.functions = functions

    def __getattr__(self, name):
        try:
            return self.__dict__["functions"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __memo_calls__(self, name):
        return self.__dict__["functions"].get(name)


def first_metric():
    return 1


def other_first_metric():
    return 2


REGISTRY = Registry(first=first_metric)


def second_metric():
    return REGISTRY.first() * 10


def test_objects_tell_what_their_attributes_call():
    before = code_version(second_metric)
    REGISTRY.functions["first"] = other_first_metric
    try:
        assert code_version(second_metric) != before
    finally:
        REGISTRY.functions["first"] = first_metric
    assert code_version(second_metric) == before


class Handle:
    """An object no encoding determines."""


UNKEYABLE_PARTIAL = functools.partial(max, Handle())


def calls_a_partial(x):
    return UNKEYABLE_PARTIAL(x, key=id) is not None


def test_a_called_partial_with_unkeyable_arguments_does_not_stop_memoize():
    assert memoize(calls_a_partial)(1) is True
