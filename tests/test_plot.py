"""run.stats(): a list of MixStats with a running share and a picture."""

from __future__ import annotations

import numpy as np
import pytest

import combinators as c

image = pytest.importorskip("matplotlib.image")


def two_level(n_items=5000, seed=0):
    inner = c.mix(c.from_iterable(range(50)), c.from_iterable(range(9)), n_active=1, rate=4, names=["x", "y"])
    plan = c.mix(inner.named("inner"), c.from_iterable("b" * 10), weights=(3, 1)).named("outer")
    with c.iterate(plan, seed=seed, max_iter=n_items) as run:
        list(run)
        return run.stats()


def test_stats_stay_a_list_and_print_every_mix():
    stats = two_level()
    assert isinstance(stats, list) and len(stats) == 2 and [s.path for s in stats] == [(), (0,)]
    assert str(stats) == "\n".join(map(str, stats))
    assert stats[0].names == ("inner", "child 1")


def test_running_share_is_recorded_at_geometric_checkpoints():
    short, long = two_level(1_000), two_level(100_000)
    for stats in (short, long):
        history = stats[0].history
        totals = history.sum(axis=1)
        assert (np.diff(totals) > 0).all() and (history[-1] == stats[0].counts).all()
        assert totals[0] == 1
    # a hundred times more items: about 2 x 24 more checkpoints, not a hundred times more
    assert len(long[0].history) - len(short[0].history) < 60 and len(long[0].history) < 150
    share = long[0].history[-1] / long[0].history[-1].sum()
    assert abs(share[0] - 0.75) < 0.02


def test_the_history_of_a_mix_of_many_streams_is_thinned_not_grown():
    from combinators.execution.stats import HISTORY_VALUES

    n = 1000
    plan = c.mix(*[c.from_iterable(range(10**6)) for _ in range(n)], n_active=16, rate=8)
    with c.iterate(plan, seed=0, max_iter=50_000) as run:
        list(run)
        stats = run.stats()[0]
    history, totals = stats.history, stats.history.sum(axis=1)
    # about 100 checkpoints were taken: a mix of 1000 streams keeps 8 to 9 of them, spread over the run
    assert 2 <= len(history) <= max(8, HISTORY_VALUES // n) + 1
    assert totals[0] == 1 and (np.diff(totals) > 0).all() and (history[-1] == stats.counts).all()
    gaps = np.diff(np.log(totals))
    assert gaps.max() < 3 * np.log(50_000) / (len(totals) - 1), totals  # no stretch of the log axis left bare


def test_plot_draws_both_panels_per_mix(tmp_path):
    stats = two_level()
    figure = stats.plot(str(tmp_path / "stats.png"))
    assert [a.get_title() for a in figure.axes][:2] == ["mix 'outer' at root: proportions", "mix 'outer' at root: running share"]
    pixels = image.imread(tmp_path / "stats.png")
    assert pixels.shape[:2] == (640, 1200) and pixels[..., :3].std() > 0.05
    running = figure.axes[1]
    lines = [line for line in running.get_lines() if len(line.get_xdata()) > 2]
    assert len(lines) == 2 and running.get_xscale() == "log"


def test_plot_of_no_mix_is_refused():
    with c.iterate(c.from_iterable("ab")) as run:
        list(run)
        with pytest.raises(c.InvalidArgument, match="nothing to plot"):
            run.stats().plot()
