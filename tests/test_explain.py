"""explain(): short values and every non-default field of every node."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import combinators as c
from combinators.errors import IdleExecutorWarning, InvalidArgumentType
from combinators.execution import run as run_module
from combinators.execution.remote.processes import Processes
from combinators.execution.remote.zmq import ZMQ


def load(path, scale=1.0):
    yield from ()


def test_arrays_are_shown_by_dtype_and_shape_not_by_repr():
    data = np.zeros((1000, 3), dtype=np.float32)
    plan = c.from_arrays({"x": data, "y": np.zeros(1000, dtype=np.int64)}) | c.from_iterable(data)
    text = c.explain(plan)
    assert "from_arrays({'x': float32[1000, 3], 'y': int64[1000]})" in text
    assert "from_iterable(float32[1000, 3])" in text
    assert "0." not in text and len(text) < 200
    assert "from_iterable(list[500])" in c.explain(c.from_iterable(list(range(500))))
    assert "stream(load, float32[1000, 3], scale=2)" in c.explain(c.stream(load, data, scale=2))


def test_every_non_default_field_is_shown():
    a, b = c.from_iterable("ab"), c.from_iterable("c")
    plan = c.chain(
        c.mix(a, b, (1, 3), n_active=2, rate=3, dist="constant", mode="single_active", prune_empty=False),
        c.round_robin(a, b, mode="permuted_cycle") >> c.batch(2, partial=True, axis=0) >> c.cache(4, prob=0.25),
        c.mix(a, b),
        cycle=True,
    )
    lines = c.explain(plan).splitlines()
    assert lines[0] == "chain cycle=True"
    mixed = lines[1]
    for words in ("n_active=2", "rate=3.0", "dist=constant", "mode=single_active", "prune_empty=False"):
        assert words in mixed, (words, mixed)
    assert "apply: batch(2, partial=True, axis=0) >> cache(4, prob=0.25)" in lines[4]
    assert "round_robin mode=permuted_cycle" in lines[5]
    default_mix = lines[8]
    assert default_mix.endswith("mix all-active mode=with_replacement"), default_mix


def test_long_runs_of_alike_children_are_elided_and_shard_sources_read_as_their_expression(tmp_path):
    path = str(tmp_path / "rows.npy")
    np.save(path, np.zeros((20, 2), dtype=np.float32))
    plan = c.mix(*[c.from_npy(path) for _ in range(200)], c.from_iterable("ab"), n_active=4, rate=8)
    lines = c.explain(plan).splitlines()
    assert lines[1] == f"├── [0.005] from_npy({path!r})", lines[1]
    assert lines[11] == "├── ... 190 more like this, weights 0.945 in all", lines[11]
    assert lines[12] == "└── [0.005] from_iterable('ab')" and len(lines) == 13, lines[12:]
    assert "FromNpy" not in c.explain(plan) and "dtype(" not in c.explain(plan)
    assert len(c.explain(plan, full=True).splitlines()) == 202
    assert len(c.explain(c.chain(*[c.from_iterable([k]) for k in range(12)])).splitlines()) == 13  # 12: all shown


@pytest.mark.parametrize("value", [[c.from_iterable("a")], "abc", None])
def test_explain_of_something_else_than_a_stream_names_it(value):
    with pytest.raises(InvalidArgumentType, match=r"the plan of explain\(\) must be a stream description, got "):
        c.explain(value)


def test_explain_with_an_executor_marks_where_each_part_runs():
    rows = c.mix(c.from_arrays(np.zeros(3)), c.from_arrays(np.ones(3)))
    plan = c.chain(c.mix(c.from_iterable(range(5)), c.stream(range, 4) >> c.batch(2)), rows)
    lines = c.explain(plan, executor=Processes(workers=2, inline=False)).splitlines()
    assert lines[2].endswith("[0.500] from_iterable(range(0, 5))  @ worker processes"), lines[2]
    assert lines[3].endswith("apply: batch(2)  @ worker processes") and "@" not in lines[4], lines[3:5]
    assert lines[5].endswith("[block path]  @ consumer (rows gathered here, not in worker processes: they are in memory)"), lines[5]
    assert "@" not in "".join(lines[6:])  # the rows of a block part are not placed one by one
    assert "@ ZMQ workers, or the consumer once measured cheap" in c.explain(plan, executor=ZMQ(inline=True))
    assert c.explain(plan, executor="inprocess").count("@ consumer") == 3
    assert "@" not in c.explain(plan)
    with pytest.raises(InvalidArgumentType, match=r"executor must be an executor or its name, got 3 \(int\)"):
        c.explain(plan, executor=3)


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(run_module, "_IDLE_WARNED", set())


def test_a_parallel_executor_that_runs_nothing_of_the_plan_says_so_once(fresh_warnings):
    rows = c.mix(c.from_arrays(np.zeros(30)), c.from_arrays(np.ones(30)), n_active=1, rate=4) >> c.batch(3)
    with pytest.warns(IdleExecutorWarning, match=r"Processes\(workers=1.* runs nothing in its workers: every part"):
        with c.iterate(rows, seed=0, executor=Processes(workers=1)) as run:
            items = [next(run) for _ in range(4)]
            assert run.executor_stats()["activations"] == 0
    assert all(np.array_equal(a, b) for a, b in zip(items, c.iterate(rows, seed=0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with c.iterate(rows, seed=0, executor=Processes(workers=1)) as run:  # once per process and executor kind
            next(run)


def test_the_warning_comes_at_close_when_no_activation_ran_in_a_worker(fresh_warnings):
    rows = c.mix(c.from_arrays(np.zeros(30)), c.from_arrays(np.ones(30)), n_active=1, rate=4)
    plan = c.chain(rows, c.stream(range, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not known up front: the chain's second part runs in workers
        run = c.iterate(plan, seed=0, executor=Processes(workers=1))
        assert len([next(run) for _ in range(5)]) == 5
    with pytest.warns(IdleExecutorWarning, match=r"5 items and executor_stats\(\)\['activations'\] == 0"):
        run.close()


def test_a_parallel_executor_that_ran_activations_does_not_warn(fresh_warnings):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(c.iterate(c.mix(c.stream(range, 3), c.stream(range, 2), mode="exhaustive"), seed=0,
                              executor=Processes(workers=1))) != []


def test_siblings_are_alike_only_when_their_whole_subtrees_are():
    """`_shape` numbers alike subtrees once (hash-consed): a difference three levels down still ends a run."""
    def deep(leaf):
        return c.mix(c.chain(leaf, c.mix(leaf, leaf)), leaf)

    alike = [deep(c.from_iterable([i])) for i in range(28)]
    odd = c.mix(c.chain(c.from_iterable([0]), c.mix(c.from_iterable([0]), c.from_iterable([0]) >> c.batch(2))),
                c.from_iterable([0]))
    lines = c.explain(c.mix(*alike[:14], odd, *alike[14:])).splitlines()
    elided = [line for line in lines if "more like this" in line]
    assert [line.split(",")[0].strip("├└─ ") for line in elided] == ["... 4 more like this"] * 2, lines
    assert sum("batch(2)" in line for line in lines) == 1
