"""Test-session settings shared by tests/, properties/ and the doctests.

Every test session also gets a fresh temp folder (TMPDIR, inherited by every
subprocess and worker); when the session ends, anything left in it besides
what pytest and multiprocessing remove themselves fails the run.
"""

import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=40, derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# combinators.strategies and combinators.torch are their modules under public names (sys.modules aliases):
# their doctests are collected where the modules live
collect_ignore_glob = ["combinators/strategies.py", "combinators/torch.py"]
try:
    import torch  # noqa: F401
except ImportError:
    collect_ignore_glob.append("combinators/integrations/torch.py")


import numpy as _np
import pytest


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    """Doctests see the package as ``combinators`` and numpy as ``np``."""
    import combinators

    doctest_namespace["combinators"] = combinators
    doctest_namespace["np"] = _np


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray (2 CPUs, no dashboard) for a test module; skips when ray is not installed.

    Starting Ray takes seconds, so a module's Ray tests share one instance;
    each run still creates (and kills) its own actors. It is shut down at the
    module's end, because a Ray driver listens on every interface (Ray's
    design), which other tests of this process's sockets would see.
    """
    ray = pytest.importorskip("ray")
    import logging

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    if started:
        ray.shutdown()


#: the session's own temp folder (TMPDIR), created before any test runs
_PRIVATE = {}


def pytest_configure(config):
    """Point TMPDIR (and `tempfile`) at a fresh folder, inherited by every subprocess and worker."""
    if _PRIVATE:  # pytest_configure runs once per conftest load; keep the first
        return
    _PRIVATE["before"] = (os.environ.get("TMPDIR"), tempfile.tempdir, os.environ.get("PYTEST_DEBUG_TEMPROOT"))
    # pytest's tmp_path folders stay where they were: deeper paths would break ipc:// sockets (107 bytes)
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
    _PRIVATE["path"] = tempfile.mkdtemp(prefix="combinators-tests-")
    os.environ["TMPDIR"] = tempfile.tempdir = _PRIVATE["path"]


#: what others remove for us: pytest's ``tmp_path`` folders, multiprocessing's own
#: folder, which it removes when the interpreter exits, and Ray's session folders, which
#: Ray keeps by design (its logs) and which go with the session folder at the end
_OWNED_ELSEWHERE = ("pytest-of-", "pymp-", "ray")


def pytest_unconfigure(config):
    if not _PRIVATE:
        return
    environ, tempdir, temproot = _PRIVATE.pop("before")
    for name, value in (("TMPDIR", environ), ("PYTEST_DEBUG_TEMPROOT", temproot)):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    tempfile.tempdir = tempdir
    path = _PRIVATE.pop("path")
    if any(name.startswith("pymp-") for name in os.listdir(path)):
        import multiprocessing.util

        # after multiprocessing's exit finalizer (priority -100) has removed its folder
        multiprocessing.util.Finalize(None, shutil.rmtree, args=(path,), kwargs={"ignore_errors": True},
                                      exitpriority=-1000)
    else:
        shutil.rmtree(path, ignore_errors=True)


def left_in_temp_folder():
    """What is in the session's temp folder besides what pytest and multiprocessing remove themselves."""
    return sorted(name for name in os.listdir(_PRIVATE["path"]) if not name.startswith(_OWNED_ELSEWHERE))


@pytest.fixture(scope="session", autouse=True)
def temp_folder_left_clean():
    """After the last test: nothing may be left in the temp folder (tests use ``tmp_path``)."""
    yield
    left = left_in_temp_folder()
    assert not left, f"the tests left {left} in the temp folder {_PRIVATE['path']}"
