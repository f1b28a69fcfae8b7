"""The plan layer: stream descriptions (sources, chains, mixes, round-robins, applied transforms), lengths, explain.

Lowest layer but `combinators.errors`: it imports no other layer. Building a
plan runs nothing; `combinators.execution` evaluates it (``iter(stream)``
reaches it through `combinators.plan.stream.set_interpreter`).
"""

from combinators.plan.stream import INFINITE, Apply, Chain, Stream, apply, chain
from combinators.plan.sources import (
    FromArrays, FromIterable, OpenArrays, RowSource, Source, from_arrays, from_iterable, is_leaf, is_source,
    row_schema, stream, streamable,
)
from combinators.plan.mixes import (
    BUDGET_DISTS, ENDING_MODES, MIN_SHARE, MIX_MODES, ROUND_ROBIN_MODES, Mix, RoundRobin, mix, normalize_weights,
    round_robin,
)
from combinators.plan.schedule import Schedule, schedule

__all__ = [
    "Stream", "Chain", "Apply", "chain", "apply", "INFINITE",
    "Source", "FromIterable", "RowSource", "FromArrays", "OpenArrays", "stream", "streamable", "from_iterable",
    "from_arrays", "row_schema", "is_source", "is_leaf",
    "Mix", "RoundRobin", "mix", "round_robin", "normalize_weights", "Schedule", "schedule",
    "MIX_MODES", "ENDING_MODES", "MIN_SHARE", "BUDGET_DISTS", "ROUND_ROBIN_MODES",
]
