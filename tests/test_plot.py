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


def test_stats_stay_a_list_print_a_line_per_mix_and_a_table_on_request():
    stats = two_level()
    assert isinstance(stats, list) and len(stats) == 2 and [s.path for s in stats] == [(), (0,)]
    assert stats.table() == "\n".join(map(str, stats))
    lines = str(stats).splitlines()
    assert lines == [s.summary() for s in stats] + ["2 mixes; stats.table() shows every child"]
    assert stats[0].names == ("inner", "child 1")


def test_the_summary_names_each_mix_worst_deviation_and_printing_many_mixes_stays_short():
    inner = [c.mix(*[c.from_iterable(range(10**6)) for _ in range(20)], n_active=4, rate=8).named(f"class {k}")
             for k in range(10)]
    with c.iterate(c.mix(*inner), seed=0, max_iter=3000) as run:
        list(run)
        stats = run.stats()
    assert len(str(stats).splitlines()) == 12 and len(stats.table().splitlines()) == 10 * 21 + 11
    for mix, line in zip(stats, str(stats).splitlines()):
        deviation = np.abs(mix.realized - mix.target)
        worst = int(np.argmax(deviation))
        assert line.startswith(f"{mix.label}: {int(mix.counts.sum())} items over {len(mix.counts)} children; ")
        assert f"worst deviation {deviation[worst]:.4f} ({mix.names[worst]!r}: " in line, line


def test_a_mix_of_many_children_is_drawn_as_its_largest_and_the_others_with_legends_beside_the_axes(tmp_path):
    weights = [5, 4, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1]
    plan = c.mix(*[c.from_iterable(range(10**6)).named(f"s{k}") for k in range(12)], weights)
    with c.iterate(plan, seed=0, max_iter=5000) as run:
        list(run)
        stats = run.stats()
    figure = stats.plot()
    bars, running = figure.axes
    legend = [text.get_text() for text in running.get_legend().get_texts()]
    assert legend[:4] == ["s0", "s1", "s2", "s3"] and legend[-1] == "others (5)" and len(legend) == 8, legend
    assert len(bars.patches) == 8
    others = [line for line in running.get_lines() if line.get_label() == "others (5)"][0]
    kept = [int(name[1:]) for name in legend[:-1]]
    assert abs(others.get_ydata()[-1] - (5000 - stats[0].counts[kept].sum()) / 5000) < 1e-12
    figure.canvas.draw()
    box, frame = running.get_legend().get_window_extent(), running.get_window_extent()
    assert box.x0 >= frame.x1  # beside the lines, not on them


def test_demo_plot_without_matplotlib_fails_before_the_run(tmp_path, monkeypatch):
    import sys

    pytest.importorskip("sklearn")
    from combinators.cli import main
    from combinators.errors import MissingExtra

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    with pytest.raises(MissingExtra, match=r'plotting needs matplotlib: pip install "combinators\[plot\]"'):
        main(["demo", "--workdir", str(tmp_path / "work"), "--plot", str(tmp_path / "p.png")])
    assert not (tmp_path / "work").exists()  # refused before the shards were written


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
    assert figure.axes[0].get_title(loc="left") == "mix 'outer' at root"
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
