"""Test-session settings shared by tests/, properties/ and the doctests."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=40, derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

collect_ignore_glob = []
try:
    import torch  # noqa: F401
except ImportError:
    collect_ignore_glob.append("combinators/torch.py")


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
