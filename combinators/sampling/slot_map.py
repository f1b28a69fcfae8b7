"""Mapping uniforms to the slots of a working set by weight: the float operations every pick path shares.

`_SlotMap` maps a block of uniforms in [0, 1) to slots with probabilities
proportional to the slot weights, in Python (`bisect`) for a few picks, with
numpy for many; every path does the same float operations, so the picks never
depend on which one ran. `combinators.sampling.working_set` keeps the weights,
`combinators.sampling.mix` the loops that take the picks.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Iterator

import numpy as np

__all__: list[str] = []


#: scales uniforms in [0, 1) so that u * total stays below total despite rounding
_BELOW_ONE = 1.0 - 2.0**-50

#: picks mapped at once up to this many are mapped in Python (`bisect`), beyond it with numpy
_PYTHON_CHUNK = 64
#: up to this many slots, a long run is mapped by counting the cumulative weights each value reaches, one
#: comparison pass per slot (about 2 µs per 4096 picks each), rather than by ``searchsorted`` (about 13 ns a pick)
_COUNTED_SLOTS = 16


class _SlotMap:
    """Maps the uniforms of a block to slots, with probabilities proportional to the slot weights.

    A short run of picks (just after the working set changed) is mapped as
    it is taken, by `bisect` over the cumulative weights; a long one with one
    ``searchsorted``, or, for a few slots, by counting the cumulative weights
    each scaled uniform reaches (a right-side search finds exactly that
    count). All do the same float operations (a sequential cumulative sum,
    one product per uniform, comparisons with the cumulative weights), so the
    picks never depend on which one ran.

    >>> uniforms = np.random.default_rng(0).random(200)
    >>> slots = _SlotMap(uniforms)
    >>> slots.weights([1.0, 0.0, 3.0])
    True
    >>> slots.picks(0, 4)
    [2, 2, 0, 0]
    >>> slots.picks(0, 200) == list(slots.lazy_picks(0, 200)[0])  # numpy and bisect agree
    True
    >>> slots.array_picks(0, 200).tolist() == slots.array.searchsorted(uniforms * slots.scale, "right").tolist()
    True
    >>> picks, left = slots.lazy_picks(0, 200)
    >>> next(picks), next(picks), len(list(left))  # mapped as taken: 198 uniforms not taken
    (2, 2, 198)
    """

    __slots__ = ("uniforms", "cumulative", "array", "scale")

    def __init__(self, uniforms: np.ndarray):
        self.uniforms = uniforms
        self.cumulative: list[float] = []
        self.array: np.ndarray | None = None
        self.scale = 0.0

    def weights(self, slot_weights: list[float]) -> bool:
        """Map over new slot weights from now on; False when they sum to zero (nothing can be picked)."""
        cumulative = self.cumulative = list(itertools.accumulate(slot_weights))
        self.array = None
        total = cumulative[-1]
        self.scale = total * _BELOW_ONE
        return total > 0

    def picks(self, start: int, stop: int) -> list[int]:
        """The slots of uniforms ``start:stop`` of the block, as a list (`array_picks`: a long run's, mapped at
        once; a short run is mapped as it is taken, `lazy_picks`)."""
        return self.array_picks(start, stop).tolist()

    def lazy_picks(self, start: int, stop: int) -> tuple[Iterator[int], Iterator[float]]:
        """The slots of uniforms ``start:stop`` of the block, each mapped when it is taken (`bisect`: the
        picks of `array_picks`), and the iterator over those uniforms, whose length hint is how many are not taken
        yet: a loop that stops at a working-set event maps none past it."""
        uniforms = iter(self.uniforms[start:stop].tolist())
        return self.mapped(uniforms), uniforms

    def mapped(self, uniforms: Iterator[float]) -> Iterator[int]:
        """The slots of ``uniforms`` (an iterator over floats of the block) under the current weights, each
        mapped when it is taken: after a working-set event, what is left of a `lazy_picks` run is mapped anew."""
        return map(bisect.bisect_right, itertools.repeat(self.cumulative), map(self.scale.__mul__, uniforms))

    def array_picks(self, start: int, stop: int) -> np.ndarray:
        """The slots of uniforms ``start:stop`` of the block, as an int array (one ``searchsorted``)."""
        if self.array is None:
            self.array = np.array(self.cumulative)
        values = self.uniforms[start:stop] * self.scale
        if len(self.cumulative) > _COUNTED_SLOTS:
            return self.array.searchsorted(values, side="right")
        picks, reached = np.zeros(len(values), np.uint8), np.empty(len(values), bool)
        for bound in self.cumulative:
            picks += np.greater_equal(values, bound, out=reached)
        return picks
