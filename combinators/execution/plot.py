"""Pictures of a run: per mix, realized against target proportions and the running share of each child.

Needs matplotlib, the optional extra ``plot`` (``pip install "combinators[plot]"``).
Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no GUI
backend), so plotting works in scripts, notebooks, threads and CI alike.

>>> import combinators as c
>>> plan = c.mix(c.from_iterable("a" * 300), c.from_iterable("b" * 100), names=["a", "b"], mode="exhaustive")
>>> with c.iterate(plan, seed=0) as run:
...     items = list(run)
...     figure = run.stats().plot()
>>> [axes.get_title() for axes in figure.axes]
['mix at root: proportions', 'mix at root: running share']
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["plot_stats"]


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - depends on the installation
        msg = 'plotting needs matplotlib: pip install "combinators[plot]"'
        raise ImportError(msg) from error
    return Figure


def _proportions(axes: Any, stats: Any) -> None:
    """Grouped bars: each child's realized share beside its target."""
    positions, width = np.arange(len(stats.names)), 0.4
    axes.bar(positions - width / 2, stats.target, width, label="target", color="0.75")
    axes.bar(positions + width / 2, np.nan_to_num(stats.realized), width, label="realized", color="C0")
    axes.set_xticks(positions, stats.names, rotation=45 if len(stats.names) > 4 else 0, ha="right"
                    if len(stats.names) > 4 else "center", fontsize="small")
    axes.set_ylim(0, 1.3 * max(float(stats.target.max()), float(np.nan_to_num(stats.realized).max())))
    axes.set_ylabel("share of items")
    axes.set_title(f"{stats.label}: proportions")
    axes.legend(fontsize="small")


def _running_share(axes: Any, stats: Any) -> None:
    """Each child's share of the mix's items so far, against the mix's item count (log scale), target dashed."""
    history = stats.history[stats.history.sum(axis=1) > 0]
    totals = history.sum(axis=1)
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(stats.names) <= 10 else "tab20"]
    for i, name in enumerate(stats.names):
        color = palette(i % palette.N)
        axes.plot(totals, history[:, i] / totals, color=color, label=name, marker="." if len(totals) < 30 else None)
        axes.axhline(stats.target[i], color=color, linestyle="--", linewidth=0.8)
    if len(totals) and totals[-1] > 1:
        axes.set_xscale("log")
    axes.set_xlabel("items of this mix so far")
    axes.set_ylabel("running share (dashed: target)")
    axes.set_title(f"{stats.label}: running share")
    axes.legend(fontsize="x-small", ncol=2 if len(stats.names) > 6 else 1)


def plot_stats(stats: Sequence[Any], path: str | None = None, *, dpi: int = 100) -> Any:
    """A matplotlib ``Figure`` of a run's mix statistics; saved to ``path`` (PNG, SVG, PDF...) if given.

    One row per mix (`combinators.MixStats`, in path order): on the left,
    each child's realized proportion beside its target (normalized weight);
    on the right, each child's running share of the mix's items against
    the number of items so far (log scale), its target as a dashed line of
    the same colour, so convergence shows as lines settling onto dashes.
    Figure size: 12 inches wide, 3.2 inches per mix, at ``dpi``.

    Raises `InvalidArgument` for statistics without a mix, `ImportError`
    without matplotlib.
    """
    from combinators.errors import InvalidArgument

    if not stats:
        msg = "nothing to plot: the run has no mix (or has not yielded an item yet)"
        raise InvalidArgument(msg)
    figure = _figure_class()(figsize=(12, 3.2 * len(stats)), dpi=dpi, layout="constrained")
    grid = figure.subplots(len(stats), 2, squeeze=False)
    for row, mix_stats in zip(grid, stats):
        _proportions(row[0], mix_stats)
        _running_share(row[1], mix_stats)
    if path is not None:
        figure.savefig(path, dpi=dpi)
    return figure
