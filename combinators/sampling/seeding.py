"""Seeds: one `numpy.random.SeedSequence` per run, one Generator per decision.

Every random decision of a run draws from a Generator derived from the run's
entropy, the node's *path* (child indices from the root of the description),
the *activation* (its identity: the parent's activation plus the number of
child activations the parent had started before this one, so the root's is
``(0,)``), and a *purpose* (which kind of draw), as
``SeedSequence(entropy, spawn_key=(purpose, *path, *activation, *extra))``.
A node at depth ``d`` has ``d + 1`` numbers of activation, so keys never
collide; and the run keeps no table of counters (its memory does not grow
with the number of sources).
Nothing depends on timing, worker count or the order in which activations are
read, so every executor yields the same items, and a stream that is activated
again (cycle, mux revival) gets fresh draws rather than a replay.

>>> a = generator(7, (0, 1), (0, 2, 0), SOURCE).integers(1000, size=3)
>>> b = generator(7, (0, 1), (0, 2, 0), SOURCE).integers(1000, size=3)
>>> c = generator(7, (0, 1), (0, 3, 0), SOURCE).integers(1000, size=3)
>>> bool((a == b).all()), bool((a == c).all())
(True, False)
"""

from __future__ import annotations

import numbers

import numpy as np

from combinators.errors import InvalidArgument, InvalidArgumentType

__all__ = ["SELECT", "ACTIVATE", "SOURCE", "TRANSFORM", "ITEM", "generator", "run_entropy"]

#: purposes: which kind of draw a Generator serves
SELECT, ACTIVATE, SOURCE, TRANSFORM, ITEM = range(5)


def generator(
    entropy: int, path: tuple[int, ...], activation: tuple[int, ...], purpose: int, *extra: int
) -> np.random.Generator:
    """The Generator of one decision: a PCG64 seeded by entropy, path, activation and purpose.

    Deterministic: the same arguments give the same stream of numbers.
    """
    sequence = np.random.SeedSequence(entropy, spawn_key=(purpose, *path, *activation, *extra))
    return np.random.Generator(np.random.PCG64(sequence))


def run_entropy(seed: int | np.random.SeedSequence | None) -> int:
    """The entropy of a run: from ``seed``, or fresh from the OS when ``seed`` is None.

    Raises `InvalidArgument` for a negative seed, `InvalidArgumentType` for a
    seed that is not an integer, a SeedSequence or None.

    >>> run_entropy(42)
    42
    """
    if seed is None:
        return int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
    if isinstance(seed, np.random.SeedSequence):
        if seed.spawn_key:
            msg = f"a seed SeedSequence must have no spawn_key, got {seed!r}"
            raise InvalidArgument(msg)
        return int(seed.entropy)  # type: ignore[arg-type]
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (numbers.Integral, np.integer)):
        msg = f"seed must be an int, a numpy SeedSequence or None, got {seed!r} ({type(seed).__name__})"
        raise InvalidArgumentType(msg)
    if seed < 0:
        msg = f"seed must be >= 0, got {seed!r}"
        raise InvalidArgument(msg)
    return int(seed)
