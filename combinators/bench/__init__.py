"""``combinators bench NAME``: benchmarks measured against same-run references.

Each benchmark module exposes ``add_arguments(parser)`` (optional) and
``run(args) -> list[Figure]``; every figure is printed beside the reference
measured in the same run, with the ratio, so users can reproduce the claims in
the docs on their own machines.
"""

from __future__ import annotations

import argparse
import importlib
import time
from typing import Callable

import attrs

#: benchmark name -> module implementing it
BENCHMARKS = {
    "mix": "combinators.bench.mix",
    "transport": "combinators.bench.transport",
    "memo": "combinators.bench.memo",
    "executors": "combinators.bench.executors",
    "resume": "combinators.bench.resume",
    "elastic": "combinators.bench.elastic",
}


@attrs.frozen
class Figure:
    """One measured figure beside its same-run reference.

    ``value`` and ``reference`` are in ``unit``; ``higher_is_better`` says how
    to read the ratio ``value / reference``; ``target`` is the ratio the
    project promises (``None`` when the figure is informational).
    """

    name: str
    value: float
    reference: float
    unit: str
    higher_is_better: bool = True
    target: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.reference if self.reference else float("nan")

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target

    def line(self) -> str:
        verdict = {None: "", True: "  [target met]", False: "  [TARGET MISSED]"}[self.met]
        sense = ">=" if self.higher_is_better else "<="
        target = f" (target {sense} {self.target:g}x)" if self.target is not None else ""
        note = f"  {self.note}" if self.note else ""
        return (
            f"{self.name}: {self.value:,.4g} {self.unit} vs reference {self.reference:,.4g} "
            f"{self.unit}: ratio {self.ratio:.3f}x{target}{verdict}{note}"
        )


def best_rates(*fns: Callable[[], int], repeat: int = 5) -> list[float]:
    """Items per second of each ``fn``, best of ``repeat``, measured in turns.

    Interleaving the candidates makes a figure and its reference see the same
    machine load, which matters more than the number of repeats on a busy host.
    """
    best = [0.0] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            count = fn()
            best[i] = max(best[i], count / (time.perf_counter() - start))
    return best


def best_time(fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    """Seconds per call of ``fn``: the fastest of ``repeat`` runs of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=[*BENCHMARKS, "all"], help="which benchmark to run")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for smoke tests")
    parser.add_argument("--archive-entries", type=int, metavar="N",
                        help="memo: entries of the archive 'archive ls/stats' run on (default 200000, quick 2000)")
    parser.add_argument("--dataset-gib", type=float, default=None,
                        help="mix: size of the shard dataset in GiB (default: 2, or 0.05 with --quick)")


def run(args: argparse.Namespace) -> int:
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    missed = 0
    for name in names:
        module = importlib.import_module(BENCHMARKS[name])
        print(f"== combinators bench {name}")
        for figure in module.run(args):
            print(figure.line(), flush=True)
            missed += figure.met is False
    return 1 if missed else 0
