"""combinators: immutable, reproducible data streams and memoized pure functions."""

from combinators import errors, execution, memo, plan
from combinators.errors import *  # noqa: F403
from combinators.execution import *  # noqa: F403
from combinators.execution.run import Run, iterate
from combinators.execution.stats import MixStats
from combinators.plan.explain import explain
from combinators.plan.lengths import length
from combinators.sources.shards import from_npy, from_npz
from combinators.memo import *  # noqa: F403
from combinators.plan import Stream, chain, from_arrays, from_iterable, mix, round_robin, schedule, stream, streamable
from combinators.plan.transforms import (
    Transform, batch, cache, filter, keras_tuples, map, progress, shuffle, take, tuples, unbatch,
)

__version__ = "0.2.0"  # pyproject.toml reads it; CHANGELOG.md says what changed

__all__ = [
    *errors.__all__,
    *execution.__all__,
    *memo.__all__,
    "Stream", "stream", "streamable", "from_iterable", "from_arrays", "from_npy", "from_npz", "chain", "mix", "round_robin",
    "schedule",
    "Transform", "batch", "unbatch", "map", "filter", "take", "shuffle", "tuples", "keras_tuples", "cache",
    "progress",
    "iterate", "Run", "MixStats", "explain", "length",
]
