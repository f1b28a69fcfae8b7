"""Rows a block mix reads at random from a child that is not a lone row source.

`ChainRows`: a chain of row sources (``.cycle()``d or not), each source's
rows in turn, as views of its activations. `PulledRows`: any block
activation, its blocks pulled only as the mix's picks need them. See
docs/guide/decisions.md.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Any, Callable

from combinators.execution.block_stages import _cut, _length
from combinators.execution.blocks import _copy
from combinators.execution.gather import _concatenate
from combinators.sampling.working_set import UNLIMITED

__all__ = ["ChainRows", "PulledRows"]


class ChainRows:
    """A chain of row sources read at random by a block mix: each source's rows in turn (again and again
    with ``cycle``), as views of the sources' activations, with no copy before the gather.

    ``len()`` is the rows of one pass, or `UNLIMITED` when cycling (a cycled
    chain of empty sources has no rows, and ends at once, as its per-item
    twin does). ``rows(start, stop)`` needs ``start`` at least where the
    last call started (rows are read in order). One source is open at a
    time, whole, unless ``placed`` is given: then a source whose rows are not
    in memory is opened as ``placed(index, first, count)``, an activation of
    its ``count`` rows from row ``first`` only (those of the chain's rows up
    to ``stop`` that fall in it, ``stop`` None for all), read in order (a
    block mix's placed source, `combinators.execution.placed_rows`). A
    source cycled alone is one activation for the whole budget, its rows
    going on from its first after its last. The activation holding row
    ``start`` opens at once, and each opens the next one, so that they are
    read ahead.

    >>> import numpy as np
    >>> from combinators.plan.sources import from_arrays
    >>> rows = ChainRows([from_arrays(np.arange(3)), from_arrays(np.arange(10, 12))], cycle=True)
    >>> rows.rows(2, 9).tolist(), len(rows) > 10**9
    ([2, 10, 11, 0, 1, 2, 10], True)
    """

    __slots__ = ("sources", "bounds", "cycle", "open", "placed", "stop", "ahead")

    def __init__(self, sources: Any, cycle: bool, placed: Callable[[int, int, int], Any] | None = None,
                 start: int = 0, stop: int | None = None):
        self.sources, self.cycle, self.open, self.ahead = list(sources), cycle, None, None
        self.bounds = list(itertools.accumulate((len(s) for s in self.sources), initial=0))
        self.placed = placed if placed is not None and not all(s.in_memory for s in self.sources) else None
        self.stop = stop
        if self.placed is not None and start < len(self) and (stop is None or start < stop):
            self._switch(start)

    def __len__(self) -> int:
        return UNLIMITED if self.cycle and self.bounds[-1] else self.bounds[-1]

    def _at(self, position: int) -> tuple[int, int]:
        """The source and its row at the chain's row ``position``."""
        at = position % self.bounds[-1] if self.cycle else position
        index = bisect.bisect_right(self.bounds, at) - 1  # past empty sources, whose bounds repeat
        return index, at - self.bounds[index]

    def _opened(self, position: int) -> list:
        """``[source index, activation, read in order, chain row of its first row, chain row last read, chain
        row after its last]`` for the source holding the chain's row ``position`` (the rows are None for a
        source opened whole)."""
        index, first = self._at(position)
        source = self.sources[index]
        if self.placed is None or source.in_memory:
            return [index, source.open(), False, None, None, None]
        count = len(source) - first  # the rest of this pass
        left = None if self.stop is None else max(1, self.stop - position)  # the rest of the budget
        if left is not None and (left < count or self.cycle and len(self.sources) == 1):
            count = left
        return [index, self.placed(index, first, count), True, position, position, position + count]

    def _source(self, position: int) -> list:
        """The activation that holds the chain's row ``position``."""
        opened = self.open
        if opened is not None and (opened[4] <= position < opened[5] if opened[2] else
                                   opened[0] == self._at(position)[0]):
            return opened
        return self._switch(position)

    def _switch(self, position: int) -> list:
        """Close the open activation, open the one at ``position`` (or take the one read ahead), and read the
        next one ahead."""
        ahead, self.ahead = self.ahead, None
        self.close()
        if ahead is not None and ahead[3] <= position < ahead[5]:
            self.open = ahead
        else:
            if ahead is not None:
                ahead[1].close()
            self.open = self._opened(position)
        after = self.open[5]
        if self.open[2] and after < len(self) and (self.stop is None or after < self.stop):
            self.ahead = self._opened(after)
        return self.open

    def rows(self, start: int, stop: int) -> Any:
        pieces = []
        while start < stop:
            opened = self._source(start)
            if opened[2]:  # read in order: the activation's rows are the chain's from its first
                n, first = min(stop, opened[5]) - start, start - opened[3]
                opened[4] = start
            else:
                index, first = self._at(start)
                n = min(stop - start, self.bounds[index + 1] - self.bounds[index] - first)
            piece = opened[1].rows(first, first + n)
            pieces.append(piece if n == stop - start else _copy(piece))  # a view dies with its source
            start += n
        return _concatenate(pieces) if len(pieces) != 1 else pieces[0]

    def close(self) -> None:
        for opened in (self.open, self.ahead):
            if opened is not None:
                opened[1].close()
        self.open = self.ahead = None


class PulledRows:
    """A block activation read as a random-access one, by a block mix: rows are pulled, a block at a time,
    only as the mix's picks need them (`extend`), and dropped once read.

    ``len()`` is the rows known so far; `ended` says there are no more. ``rows(start, stop)`` needs
    ``start`` at least where the last call started (rows are read in order).

    >>> import numpy as np
    >>> pulled = PulledRows(iter([np.arange(3), np.arange(3, 5)]))
    >>> pulled.extend(0, 4); len(pulled), pulled.ended, pulled.rows(2, 4).tolist()
    (5, False, [2, 3])
    >>> pulled.extend(4, 9); len(pulled), pulled.ended
    (5, True)
    """

    __slots__ = ("activation", "blocks", "parts", "base", "known", "ended")

    def __init__(self, activation: Any):
        self.activation, self.blocks = activation, None  # an object with blocks() and close(), or an iterator
        self.parts: list[Any] = []  # blocks held: rows base .. known
        self.base = self.known = 0
        self.ended = False

    def __len__(self) -> int:
        return self.known

    def extend(self, low: int, high: int) -> None:
        """Pull blocks until ``high`` rows are known or the activation ends; drop the rows before ``low``."""
        if self.blocks is None:
            self.blocks = self.activation.blocks() if hasattr(self.activation, "blocks") else self.activation
        while self.known < high and not self.ended:
            block = next(self.blocks, None)
            if block is None:
                self.ended = True
                break
            self.received(block)
            self.parts.append(block)
            self.known += _length(block)
            self._drop(low)
        self._drop(low)

    def received(self, block: Any) -> None:
        """Called on each block pulled, before it is held: `PlacedRows` checks there what a worker sent."""

    def _drop(self, low: int) -> None:
        parts = self.parts
        while parts and self.base + _length(parts[0]) <= low:
            self.base += _length(parts.pop(0))

    def rows(self, start: int, stop: int) -> Any:
        self._drop(start)
        pieces, at = [], self.base
        for part in self.parts:
            n = _length(part)
            if at + n > start and at < stop:
                pieces.append(_cut(part, max(start - at, 0), min(stop - at, n)))
            at += n
            if at >= stop:
                break
        return _concatenate(pieces)

    def close(self) -> None:
        if hasattr(self.activation, "close"):
            self.activation.close()
        self.parts, self.activation, self.blocks = [], None, None
