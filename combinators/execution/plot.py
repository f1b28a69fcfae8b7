"""Pictures of a run: per mix, realized against target proportions and the running share of each child.

Needs matplotlib, the optional extra ``plot`` (``pip install "combinators[plot]"``).
Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no GUI
backend), so plotting works in scripts, notebooks, threads and CI alike.

>>> import combinators as c
>>> plan = c.mix(c.from_iterable("a" * 300), c.from_iterable("b" * 100), names=["a", "b"], mode="exhaustive")
>>> with c.iterate(plan, seed=0) as run:
...     items = list(run)
...     figure = run.stats().plot()
>>> figure.axes[0].get_title(loc="left"), [text.get_text() for text in figure.axes[1].get_legend().get_texts()]
('mix at root', ['a', 'b'])
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from combinators.errors import InvalidArgument, MissingExtra

__all__ = ["plot_stats", "grouped", "require_matplotlib"]


#: a mix of more children than this shows its `_TOP` largest (by share) and the rest as one "others"
_MAX_SHOWN, _TOP = 8, 7


def require_matplotlib() -> Any:
    """matplotlib's ``Figure`` class; `MissingExtra` naming the ``plot`` extra without matplotlib.

    Call it before a long run whose end is a picture (``combinators demo --plot``).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        msg = 'plotting needs matplotlib: pip install "combinators[plot]"'
        raise MissingExtra(msg) from error
    return Figure


def grouped(stats: Any, top: int = _TOP) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(names, history, target)`` of ``stats`` with at most ``top + 1`` columns: the ``top`` children of
    largest share (realized or target, whichever is larger) in their order, then ``"others (n)"``, their sum.

    ``history`` has shape ``(n_checkpoints, columns)``, ``target`` ``(columns,)``. A mix of at most
    `_MAX_SHOWN` children is returned whole.

    >>> import combinators as c
    >>> plan = c.mix(*[c.from_iterable(range(99)) for _ in range(10)], (9, 1, 1, 1, 1, 1, 1, 1, 1, 1))
    >>> with c.iterate(plan, seed=0, max_iter=200) as run:
    ...     items = list(run)
    ...     names, history, target = grouped(run.stats()[0], top=2)
    >>> names[0], names[-1], history.shape[1], round(float(target.sum()), 6), int(history[-1].sum())
    ('child 0', 'others (8)', 3, 1.0, 200)
    """
    names, history, target = list(stats.names), stats.history, stats.target
    if len(names) <= max(top + 1, _MAX_SHOWN):
        return names, history, target
    share = np.maximum(np.nan_to_num(stats.realized), target)
    kept = np.sort(np.argsort(-share, kind="stable")[:top])
    rest = np.setdiff1d(np.arange(len(names)), kept)
    columns = np.column_stack([history[:, kept], history[:, rest].sum(axis=1)])
    return [names[i] for i in kept] + [f"others ({len(rest)})"], columns, np.append(target[kept], target[rest].sum())


def _proportions(axes: Any, names: list[str], realized: np.ndarray, target: np.ndarray, label: str) -> None:
    """A bar per child, in its colour (the running share's legend names it): its realized share; its target
    a black mark across the bar."""
    positions = np.arange(len(names))
    axes.bar(positions, realized, 0.7, color=[f"C{i % 10}" for i in positions])
    axes.hlines(target, positions - 0.45, positions + 0.45, color="black", linewidth=1.5)
    axes.set_xticks([])
    axes.set_xlim(-0.6, len(names) - 0.4)
    axes.set_ylim(0, 1.2 * max(float(target.max()), float(realized.max())))
    axes.set_ylabel("share (black: target)")
    axes.set_title(label, fontsize="medium", loc="left")


def _running_share(axes: Any, names: list[str], history: np.ndarray, target: np.ndarray, label: str) -> None:
    """Each child's share of the mix's items so far, against the mix's item count (log scale), target dashed."""
    history = history[history.sum(axis=1) > 0]
    totals = history.sum(axis=1)
    colors = [f"C{i % 10}" for i in range(len(names))]
    for i, name in enumerate(names):
        axes.plot(totals, history[:, i] / totals, color=colors[i], label=name, marker="." if len(totals) < 30 else None)
    axes.hlines(target, 0, 1, transform=axes.get_yaxis_transform(), colors=colors, linestyles="--", linewidth=0.8)
    if len(totals) and totals[-1] > 1:
        from matplotlib import ticker

        axes.set_xscale("log")
        axes.xaxis.set_minor_locator(ticker.NullLocator())  # minor ticks of 22 log axes took most of the time
        axes.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))  # no mathtext
    axes.set_xlabel("items of this mix so far")
    axes.set_ylabel("running share (dashed: target)")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside, not on


def plot_stats(stats: Sequence[Any], path: str | None = None, *, dpi: int = 100) -> Any:
    """A matplotlib ``Figure`` of a run's mix statistics; saved to ``path`` (PNG, SVG, PDF...) if given.

    One row per mix (`combinators.MixStats`, in path order): on the left,
    each child's realized proportion beside its target (normalized weight);
    on the right, each child's running share of the mix's items against
    the number of items so far (log scale), its target as a dashed line of
    the same colour, so convergence shows as lines settling onto dashes.
    A mix of more than 8 children shows its 7 of largest share and the rest
    summed as ``others (n)`` (`grouped`); legends sit beside the axes.
    Figure size: 12 inches wide, 3.2 inches per mix, at ``dpi``.

    Raises `InvalidArgument` for statistics without a mix, `MissingExtra`
    (an `ImportError`) without matplotlib.
    """
    if not stats:
        msg = "nothing to plot: the run has no mix (or has not yielded an item yet)"
        raise InvalidArgument(msg)
    figure = require_matplotlib()(figsize=(12, 3.2 * len(stats)), dpi=dpi)
    inches = 3.2 * len(stats)  # margins in inches, as fractions of the figure
    figure.subplots_adjust(left=0.06, right=0.85, wspace=0.25, hspace=0.55, top=1 - 0.35 / inches,
                           bottom=0.55 / inches)
    grid = figure.subplots(len(stats), 2, squeeze=False, width_ratios=(1, 2))
    for row, mix_stats in zip(grid, stats):
        names, history, target = grouped(mix_stats)
        total = history[-1].sum()
        realized = history[-1] / total if total else np.zeros(len(names))
        _proportions(row[0], names, realized, target, mix_stats.label)
        _running_share(row[1], names, history, target, mix_stats.label)
    if path is not None:
        png = str(path).lower().endswith(".png")  # a fast PNG compression: the picture is made to be looked at
        figure.savefig(path, dpi=dpi, **({"pil_kwargs": {"compress_level": 1}} if png else {}))
    return figure
