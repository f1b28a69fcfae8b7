"""Mixture weights on a schedule: ``mix(a, b, weights=schedule({0: (1, 1), 10_000: (1, 3)}))``.

A `Schedule` is a description, like a stream: a frozen value with a repr
that reads back and a fingerprint. It says which weights a mix uses for
its n-th decided item (n counts from 0 within one activation of the mix).
``interpolate=None`` holds each point's weights until the next point
(piecewise constant); ``interpolate="linear"`` moves linearly from one
point's weights to the next, re-evaluated every ``step`` items (so the
weights are constant over windows of ``step`` items, the first window of
each segment starting at its point). `Schedule.segments` lists the
segments a mix runs through; the mix (`combinators.sampling.working_set`)
switches to a segment's weights when its count of decided items reaches the
segment's start.

>>> s = schedule({0: (1, 1), 100: (1, 3)})
>>> s
schedule({0: (1.0, 1.0), 100: (1.0, 3.0)})
>>> s.at(99), s.at(100)
((1.0, 1.0), (1.0, 3.0))
>>> schedule({0: (1, 2), 4: (1, 4)}, interpolate="linear", step=2).segments()
((0, (1.0, 2.0)), (2, (1.0, 3.0)), (4, (1.0, 4.0)))
"""

from __future__ import annotations

import collections.abc
from typing import Any, Mapping

import attrs

from combinators.errors import InvalidArgument, InvalidArgumentType
from combinators.plan import checks
from combinators.plan.description import Description, call_repr

__all__ = ["Schedule", "schedule", "INTERPOLATIONS"]

#: how a schedule goes from one point's weights to the next
INTERPOLATIONS = (None, "linear")


def _point_weights(start: int, weights: Any) -> tuple[float, ...]:
    if isinstance(weights, (str, bytes, Mapping)) or not isinstance(weights, collections.abc.Sequence):
        msg = f"schedule() weights at {start} must be a sequence of numbers, got {weights!r}"
        raise InvalidArgumentType(msg)
    values = tuple(checks.real_number(f"schedule() weight {i} at {start}", w) for i, w in enumerate(weights))
    if any(v < 0 for v in values) or not any(values):
        msg = f"schedule() weights at {start} must be >= 0 and not all zero, got {tuple(weights)!r}"
        raise InvalidArgument(msg)
    return values


def _check_points(points: Any) -> tuple[tuple[int, tuple[float, ...]], ...]:
    if not isinstance(points, Mapping) or not points:
        msg = f"schedule() needs a non-empty mapping item count -> weights, got {points!r}"
        raise InvalidArgumentType(msg)
    checked = sorted((checks.non_negative_int("schedule() item count", k), _point_weights(k, w)) for k, w in points.items())
    if checked[0][0] != 0:
        msg = f"schedule() needs weights at item 0 (the first items' weights), got points at {[k for k, _ in checked]}"
        raise InvalidArgument(msg)
    first = checked[0][1]
    for start, weights in checked:
        if len(weights) != len(first):
            msg = f"schedule() weights at {start} have {len(weights)} values, those at 0 have {len(first)}: {weights!r}"
            raise InvalidArgument(msg)
        if [w > 0 for w in weights] != [w > 0 for w in first]:
            msg = (f"schedule() weights at {start} {weights!r} are zero for other streams than at 0 {first!r}: "
                   "a working set cannot hold a stream it may not draw; give a stream that comes in later a small "
                   "positive weight")
            raise InvalidArgument(msg)
    return tuple(checked)


@attrs.frozen(eq=False, repr=False)
class Schedule(Description):
    """A mix's weights as a function of its decided items; see `schedule`."""

    points: tuple[tuple[int, tuple[float, ...]], ...] = attrs.field(
        converter=lambda p: _check_points(dict(p) if isinstance(p, tuple) else p))
    interpolate: str | None = attrs.field(
        default=None, validator=lambda _, __, v: checks.one_of("schedule() interpolate", v, INTERPOLATIONS))
    step: int = attrs.field(default=1000, converter=lambda v: checks.positive_int("schedule() step", v))

    def __len__(self) -> int:
        """The number of streams it weighs."""
        return len(self.points[0][1])

    def at(self, item: int) -> tuple[float, ...]:
        """The weights of the ``item``-th decided item (counting from 0)."""
        segments = self.segments(until=item)
        return segments[-1][1]

    def segments(self, until: int | None = None) -> tuple[tuple[int, tuple[float, ...]], ...]:
        """``(start, weights)`` of each segment, in order (those starting at ``until`` at most, if given)."""
        if self.interpolate is None:
            return tuple(p for p in self.points if until is None or p[0] <= until)
        out = []
        for (start, low), (stop, high) in zip(self.points, self.points[1:]):
            for at in range(start, stop, self.step):
                if until is not None and at > until:
                    return tuple(out)
                f = (at - start) / (stop - start)
                out.append((at, tuple(a + f * (b - a) for a, b in zip(low, high))))
        last = self.points[-1]
        return tuple(out) + ((last,) if until is None or last[0] <= until else ())

    def __repr__(self) -> str:
        options: dict[str, Any] = {}
        if self.interpolate is not None:
            options = {"interpolate": self.interpolate, "step": self.step}
        return call_repr("schedule", (dict(self.points),), options)


def schedule(points: Mapping[int, Any], *, interpolate: str | None = None, step: int = 1000) -> Schedule:
    """Mixture weights that change with the items a mix has decided (a curriculum).

    ``points`` maps an item count to the weights from that item on (one
    non-negative number per stream, not all zero); it must have a point at
    0. Each mix activation counts its items from 0: the n-th item it decides
    is drawn with the weights of the last point ``<= n`` (piecewise
    constant), or with ``interpolate="linear"`` with weights interpolated
    between the two points around it, evaluated at the start of each window
    of ``step`` items (the weights change every ``step`` items; past the last
    point they stay). A stream's weight may change but not become 0 or leave 0
    (a working set cannot hold a stream it may not draw): give a stream that
    comes in later a small positive weight instead.

    The schedule is part of the plan: its repr reads back, it is in the
    plan's fingerprint (a run state checks it), and a run state taken anywhere,
    across a boundary too, resumes exactly. ``run.stats()`` gives the target
    proportions and counts per segment (`~combinators.execution.stats.MixStats.segments`).

    Raises `InvalidArgument` / `InvalidArgumentType` naming the bad value: no
    point at 0, a negative count, weights of unequal lengths, negative, all
    zero, zero for other streams than at 0, an unknown ``interpolate``, or
    ``step < 1``.

    >>> from combinators import from_iterable, iterate, mix
    >>> a, b = from_iterable("a").cycle(), from_iterable("b").cycle()
    >>> plan = mix(a, b, weights=schedule({0: (1, 0.001), 5: (0.001, 1)}))
    >>> "".join(iterate(plan, seed=0, max_iter=10))
    'aaaaabbbbb'
    """
    return Schedule(points, interpolate, step)
