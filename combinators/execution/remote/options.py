"""Validators and defaults shared by the parallel executors' fields."""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

import attrs

from combinators.errors import InvalidArgument, InvalidArgumentType
from combinators.execution.leaf import maps_file
from combinators.execution.remote.placement import Costs
from combinators.plan.block_path import gathered_in_consumer, placed_row_sources
from combinators.plan.sources import RowSource

__all__ = [
    "default_workers", "positive_int", "non_negative_int", "start_method", "positive_number", "inline", "placement",
]


def placement(part: Any, nested: bool, workers: str, inline: bool, places_rows: bool = True) -> str:
    """Where a parallel executor runs ``part`` (`Executor.describe_placement`), and why.

    A leaf runs in ``workers`` (with ``inline``, in the consumer once measured cheap; never there when it
    maps a file), unless `consumer_leaf` keeps it in the consumer (``nested``: a mix, chain or round-robin
    that runs item by item opens it). A block node's decisions and gathers run in the consumer; the row
    sources it opens at random that read files (`placed_row_sources`) are opened in ``workers`` when the
    executor ``places_rows``, their rows shipped back as blocks (with ``inline``, in the consumer once
    measured cheap to read); rows in memory stay in the consumer, as do rows it reads in order.

    >>> import numpy as np
    >>> from combinators import mix, from_arrays, from_iterable
    >>> placement(mix(from_arrays(np.zeros(2)), from_arrays(np.ones(2))), False, "workers", False)
    'consumer (rows gathered here, not in workers: they are in memory)'
    >>> placement(from_iterable("ab"), True, "workers", True)
    'workers, or the consumer once measured cheap'
    """
    if not gathered_in_consumer(part, nested):
        if maps_file(part):
            return f"{workers} (it maps a file: never in the consumer)"
        return f"{workers}, or the consumer once measured cheap" if inline else workers
    sources = _row_sources(part)
    placed = placed_row_sources(part) if places_rows else []
    if not placed:
        if all(source.in_memory for source in sources):
            why = "they are in memory"
        else:
            why = "read in order here" if places_rows or not placed_row_sources(part) else f"{workers} do not read them"
        return f"consumer (rows gathered here, not in {workers}: {why})"
    kinds = ", ".join(sorted({repr(source).split("(", 1)[0] for source in placed}))
    cheap = ", or here once measured cheap to read" if inline else ""
    shipped = {id(source) for source in placed}
    in_order = sum(not source.in_memory and id(source) not in shipped for source in sources)
    rest = f"; {in_order} more read here in order" if in_order else ""
    return (f"consumer (decisions and gathers); its {len(placed)} {kinds} sources are read in {workers}{cheap}, "
            f"their rows shipped as blocks{rest}")


def _row_sources(node: Any) -> list[RowSource]:
    if isinstance(node, RowSource):
        return [node]
    return [source for child in node.children for source in _row_sources(child)]


def default_workers() -> int:
    """The number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _int(owner: Any, attribute: attrs.Attribute, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{type(owner).__name__}.{attribute.name} must be an int, not {value!r} ({type(value).__name__})"
        raise InvalidArgumentType(msg)
    if value < minimum:
        msg = f"{type(owner).__name__}.{attribute.name} must be >= {minimum}, not {value!r}"
        raise InvalidArgument(msg)


def positive_int(owner: Any, attribute: attrs.Attribute, value: Any) -> None:
    _int(owner, attribute, value, 1)


def non_negative_int(owner: Any, attribute: attrs.Attribute, value: Any) -> None:
    _int(owner, attribute, value, 0)


def positive_number(owner: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"{type(owner).__name__}.{attribute.name} must be a number, not {value!r} ({type(value).__name__})"
        raise InvalidArgumentType(msg)
    if not value > 0:
        msg = f"{type(owner).__name__}.{attribute.name} must be > 0, not {value!r}"
        raise InvalidArgument(msg)


def start_method(owner: Any, attribute: attrs.Attribute, value: Any) -> None:
    methods = multiprocessing.get_all_start_methods()
    if value is not None and value not in methods:
        msg = f"{type(owner).__name__}.{attribute.name} must be None or one of {methods}, not {value!r}"
        raise InvalidArgument(msg)


def inline(owner: Any, attribute: attrs.Attribute, value: Any) -> None:
    """An executor's ``inline``: True, False, or a `Costs` (True, with the costs it tells)."""
    if not isinstance(value, (bool, Costs)):
        msg = (
            f"{type(owner).__name__}.{attribute.name} must be True, False or a placement.Costs, not {value!r} "
            f"({type(value).__name__})"
        )
        raise InvalidArgumentType(msg)
