"""Metrics end to end on a real LMDB archive, and the ``combinators archive`` command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from combinators.cli import main
from combinators.errors import InvalidArgument
from combinators.memo import LMDBArchive, Metrics, memoize

ROOT = Path(__file__).resolve().parents[1]
COMPUTED: list = []


def build(archive) -> Metrics:
    m = Metrics(archive)

    @m.collect
    def accuracy():
        COMPUTED.append("accuracy")
        return 0.75

    @m.collect(params=[1, 2, 3])
    def top_k(k):
        COMPUTED.append(("top_k", k))
        return k / 10

    @m.collect(params=[("a", 1)], dynamic=True)
    def scaled(name, factor):
        COMPUTED.append(("scaled", name, factor))
        return np.full(3, factor)

    assert accuracy() == 0.75  # the decorated function itself is unchanged
    COMPUTED.clear()
    return m


def test_metrics_end_to_end(tmp_path):
    path = tmp_path / "metrics.lmdb"
    before = datetime.now(timezone.utc)
    m = build(LMDBArchive(path))
    assert m.accuracy() == m["accuracy"] == 0.75 and COMPUTED == ["accuracy"]  # computed once, then memory
    assert m.top_k.get_all() == {1: 0.1, 2: 0.2, 3: 0.3} and m["top_k", 2] == 0.2
    assert COMPUTED.count(("top_k", 2)) == 1
    first = m.date("accuracy")
    assert before - timedelta(seconds=1) <= first <= datetime.now(timezone.utc) and first.tzinfo is timezone.utc
    with pytest.raises(InvalidArgument, match=r"not collected for \(4\).*\[1, 2, 3\]"):
        m.top_k(4)
    assert m.scaled("b", 2)[0] == 2 and m.scaled.get_all()[("a", 1)][0] == 1  # dynamic allows unlisted params
    with pytest.raises(KeyError, match="never|no stored"):
        m.date("scaled", "zzz", 9)
    with pytest.raises(AttributeError, match="no metric named 'nope'.*accuracy"):
        m.nope

    COMPUTED.clear()  # a fresh Metrics on the same archive: served from the archive, not computed
    m2 = build(LMDBArchive(path))
    assert m2.accuracy() == 0.75 and m2.top_k.get_all() == {1: 0.1, 2: 0.2, 3: 0.3} and COMPUTED == []
    assert m2.date("accuracy") == first

    time.sleep(0.01)
    assert m2.accuracy(use_stored=False) == 0.75 and COMPUTED == ["accuracy"]  # recomputed, overwritten
    assert m2.date("accuracy") > first
    assert build(LMDBArchive(path)).date("accuracy") == m2.date("accuracy")


def test_metric_names_are_checked():
    m = Metrics()
    with pytest.raises(InvalidArgument, match="'collect'"):
        m.collect(lambda: 1, name="collect")
    with pytest.raises(InvalidArgument, match="declares no params"):
        m.collect(lambda: 1, name="plain")
        m.plain.get_all()


def _archive_with_two_functions(path: Path) -> None:
    archive = LMDBArchive(path)
    f = memoize(lambda x: np.zeros(x), archive=archive, name="pkg.zeros", version="1")
    g = memoize(lambda x: x, archive=archive, name="pkg.ident", version="2")
    [f(i) for i in range(5)], [g(i) for i in range(3)]
    archive[b"raw"] = 1


def test_archive_command_lists_summarizes_and_removes(tmp_path, capsys):
    path = tmp_path / "a.lmdb"
    _archive_with_two_functions(path)
    assert main(["archive", "ls", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["function", "version", "entries"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows["pkg.zeros"][1:3] == ["1", "5"] and rows["pkg.ident"][1:3] == ["2", "3"] and "(not" in rows
    assert main(["archive", "stats", str(path)]) == 0
    assert "entries:                9" in capsys.readouterr().out
    assert main(["archive", "rm", str(path), "--function", "pkg.z*", "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() == "would remove 5 entries" and len(LMDBArchive(path)) == 9
    assert main(["archive", "rm", str(path), "--version", "2"]) == 0
    assert capsys.readouterr().out.strip() == "removed 3 entries"
    assert main(["archive", "rm", str(path), "--older-than", "1h"]) == 0
    assert capsys.readouterr().out.strip() == "removed 0 entries"
    assert main(["archive", "rm", str(path)]) == 2
    assert "refusing to delete everything" in capsys.readouterr().err
    assert main(["archive", "ls", str(tmp_path / "missing")]) == 2
    assert "no LMDB archive" in capsys.readouterr().err
    assert len(LMDBArchive(path)) == 6


def test_archive_command_runs_as_a_program_on_a_json_archive(tmp_path):
    path = tmp_path / "j.lmdb"
    f = memoize(lambda x: {"x": x}, archive=LMDBArchive(path, serializer="json"), name="j")
    f(1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "combinators.cli", "archive", "stats", str(path)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "serializer:             json" in result.stdout


def test_prune_by_age_uses_entry_dates(tmp_path):
    from combinators.memo.cli import prune

    archive = LMDBArchive(tmp_path / "a.lmdb")
    archive[b"old"] = 1
    time.sleep(0.05)
    archive[b"new"] = 2
    assert prune(archive, older_than=timedelta(seconds=0.03)) == 1 and list(archive) == [b"new"]


def test_params_are_argument_lists_as_in_simple_metrics_manager(tmp_path):
    m = Metrics(LMDBArchive(tmp_path / "m.lmdb"))
    calls = []

    @m.collect(params=[[1], [4]])
    def square(x):
        calls.append(x)
        return x * x

    @m.collect(params=[(2, 3), [4, 5]])
    def power(base, exponent):
        return base ** exponent

    assert square.__name__ == "square" and m.square.get_all() == {(1,): 1, (4,): 16} and m.square(4) == 16
    assert m.power.get_all() == {(2, 3): 8, (4, 5): 1024} and calls == [1, 4]
    with pytest.raises(InvalidArgument, match="not collected"):
        m.square(2)
    with pytest.raises(InvalidArgument, match=r"params entry 3 .*argument list"):
        m.collect(lambda a, b: a, params=[3], name="bare")
    with pytest.raises(InvalidArgument, match=r"params entry \[1, 2, 3\]"):
        m.collect(lambda a, b: a, params=[[1, 2, 3]], name="long")


CALLS: list = []


def test_exists_clear_and_compute_all(tmp_path):
    path = tmp_path / "m.lmdb"
    calls = CALLS  # the metrics use the module global: a captured list is keyed into the version
    calls.clear()

    def declare(m):
        @m.collect
        def total():
            CALLS.append("total")
            return 10

        @m.collect(params=[[1], [2]])
        def scaled(k):
            CALLS.append(k)
            return 10 * k

        @m.collect(dynamic=True)
        def anything(k):
            return k

        return m

    m = declare(Metrics(LMDBArchive(path)))
    assert not m.exists("scaled", 1) and calls == []  # exists never computes
    assert m.compute_all() == {"total": 10, "scaled": {(1,): 10, (2,): 20}} and calls == ["total", 1, 2]
    m2 = declare(Metrics(LMDBArchive(path)))  # another session: everything is stored
    assert m2.exists("scaled", 1) and m2.exists("total") and not m2.exists("anything", 3)
    assert m2.compute_all() == {"total": 10, "scaled": {(1,): 10, (2,): 20}} and calls == ["total", 1, 2]
    assert m2.clear("scaled") == 2 and not m2.exists("scaled", 1) and m2.exists("total")
    assert m2.compute_all()["scaled"] == {(1,): 10, (2,): 20} and calls == ["total", 1, 2, 1, 2]
    assert m2.compute_all(use_stored=False)["total"] == 10 and calls[-3:] == ["total", 1, 2]


def _chained(path, k: int, runs: list) -> Metrics:
    m = Metrics(LMDBArchive(path))

    @m.collect
    def metric_1():
        runs.append("metric_1")
        return np.arange(4) * k

    @m.collect
    def metric_2():
        runs.append("metric_2")
        return m.metric_1() * 2  # through the Metrics object it captures

    @m.collect(params=[1, 2])
    def metric_3(x):
        runs.append("metric_3")
        return m["metric_2"] + x

    return m


def test_metrics_that_use_other_metrics_work_and_follow_their_versions(tmp_path):
    path, runs = tmp_path / "m.lmdb", []
    m = _chained(path, 1, runs)
    assert m.metric_3(1).tolist() == [1, 3, 5, 7] and runs == ["metric_3", "metric_2", "metric_1"]
    runs.clear()
    again = _chained(path, 1, runs)  # same code: every value is served from the archive
    assert again.metric_3.get_all()[1].tolist() == [1, 3, 5, 7] and again.metric_3(2)[0] == 2
    assert runs == ["metric_3"]  # only the new parameter
    runs.clear()
    edited = _chained(path, 3, runs)  # metric_1 changed: its users are other versions, recomputed
    assert edited.metric_1.version != again.metric_1.version and edited.metric_2.version != again.metric_2.version
    assert edited.metric_3.version != again.metric_3.version
    assert edited.metric_3(1).tolist() == [1, 7, 13, 19] and runs == ["metric_3", "metric_2", "metric_1"]


def test_metrics_using_each_other_in_a_cycle_are_refused():
    m = Metrics()

    @m.collect
    def ping():
        return m.pong()

    @m.collect
    def pong():
        return m.ping()

    with pytest.raises(InvalidArgument, match="cycle"):
        m.ping()
