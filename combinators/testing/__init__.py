"""Assertion helpers for samplers: proportions, exhaustiveness, determinism, working set, executors.

Each ``assert_*`` runs a stream and raises `AssertionError` with a readable
report when the sampler does not do what it should. `combinators.strategies`
(`combinators.testing.strategies`) draws plans for hypothesis tests.
"""

from combinators.testing.monitor import Monitored
from combinators.testing.proportions import assert_proportions
from combinators.testing.samplers import (
    assert_deterministic, assert_executor_agreement, assert_exhaustive, assert_working_set,
)

__all__ = [
    "Monitored",
    "assert_proportions",
    "assert_exhaustive",
    "assert_deterministic",
    "assert_working_set",
    "assert_executor_agreement",
]
