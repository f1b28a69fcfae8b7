"""A mutated run state is refused with `ResumeError`, or (resealed on purpose) gives items some valid run gives.

Plans come from `combinators.strategies` (mixes in every mode, chains,
round-robins, transforms, sources with and without ``rng``) and block-path
mixes of ``from_arrays`` sources under ``batch``/``take``. A run is cut, its
state crosses JSON, then one field anywhere in it (the envelope, a Generator
state, a working-set slot, a transform's buffer...) is replaced, removed, or
has a character of its text changed. Without resealing, the checksum refuses
it. Resealed (its checksum recomputed, as a deliberate edit would), the state
is refused by the schema, or the resumed run yields, within ``max_iter`` and
a time limit, only items that the plan's sources have: never a hang, a raw
``TypeError``/``IndexError``/..., or a crash.
"""

from __future__ import annotations

import copy
import json
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import combinators as c
from combinators import strategies
from combinators.errors import ResumeError
from combinators.execution.statecheck import seal
from combinators.plan.sources import FromArrays

#: replacements for a field (the last ones depend on the value: see `_mutate`)
REPLACEMENTS = [-1, None, "x", 1.5, True, 2**70, [], {}, "+1", "-1", "delete", "char"]


class _Hang(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Hang


def _paths(value, path=()):
    """Every path into a JSON value (the root excluded)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield (*path, key)
        yield from _paths(child, (*path, key))


def _mutate(state, path, replacement):
    state = copy.deepcopy(state)
    parent = state
    for key in path[:-1]:
        parent = parent[key]
    key, old = path[-1], parent[path[-1]]
    if replacement == "delete":
        del parent[key]
    elif replacement in ("+1", "-1"):
        assume(type(old) is int)
        parent[key] = old + (1 if replacement == "+1" else -1)
    elif replacement == "char":
        assume(isinstance(old, str) and old)
        parent[key] = old[:-1] + ("A" if old[-1] != "A" else "B")
    else:
        parent[key] = replacement
    return state


def _leaves(node):
    yield node
    for child in getattr(node, "children", ()):
        yield from _leaves(child)


def _universe(plan):
    """What items some run of ``plan`` may yield: (name, position) of the sources, or the rows of arrays."""
    names, rows = {}, set()
    for node in _leaves(plan):
        if isinstance(node, FromArrays):
            rows.update(np.asarray(node.data).ravel().tolist())
        elif c.plan.is_source(node) and node.children == ():
            if strategies.is_infinite_source(node):
                names[str(node.args[0])] = None
            else:
                items = [strategies.origin(item) for item in c.iterate(node, seed=0)]
                for name, _ in items:
                    names[name] = len(items)
    return names, rows


def _within(item, names, rows):
    if isinstance(item, np.ndarray):
        return all(_within(value, names, rows) for value in item.ravel().tolist())
    if isinstance(item, (int, np.integer)):
        return int(item) in rows
    name, position = strategies.origin(item)
    return name in names and 0 <= position and (names[name] is None or position < names[name])


def _block_plans():
    arrays = st.lists(st.integers(1, 40), min_size=1, max_size=3).map(
        lambda sizes: [c.from_arrays(np.arange(1000 * i, 1000 * i + n)) for i, n in enumerate(sizes)])
    return st.builds(
        lambda sources, n_active, mode, tail: c.mix(*sources, n_active=n_active, rate=3.0 if n_active else None,
                                                   mode=mode) >> tail,
        arrays, st.sampled_from([None, 1, 2]), st.sampled_from(["exhaustive", "with_replacement"]),
        st.sampled_from([c.take(30), c.take(30) >> c.batch(4), c.batch(3, partial=True) >> c.take(10)]),
    )


PLANS = st.one_of(strategies.streams(max_depth=2), strategies.ending_plans(), _block_plans())


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(plan=PLANS, seed=strategies.seeds(), cut=st.integers(0, 12), data=st.data())
def test_a_mutated_state_is_refused_or_resumes_within_the_plan(plan, seed, cut, data):
    with c.iterate(plan, seed=seed, max_iter=cut) as run:
        list(run)
        state = json.loads(json.dumps(run.state()))
    path = data.draw(st.sampled_from(list(_paths(state))), label="field")
    replacement = data.draw(st.sampled_from(REPLACEMENTS), label="replacement")
    resealed = data.draw(st.booleans(), label="resealed")
    mutated = _mutate(state, path, replacement)
    if resealed:
        if path == ("check",):
            resealed = False  # a replaced checksum, resealed, is the state itself
        else:
            seal(mutated)
    assume(json.dumps(mutated, sort_keys=True) != json.dumps(state, sort_keys=True))
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(20)
    try:
        try:
            resumed = c.iterate(plan, resume=mutated, max_iter=40)
        except ResumeError:
            return
        assert resealed, f"a state changed at {path} without its checksum was accepted"
        names, rows = _universe(plan)
        with resumed:
            for item in resumed:
                assert _within(item, names, rows), (item, path, replacement)
    except _Hang:
        pytest.fail(f"resuming a state changed at {path} to {replacement!r} hung")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_the_issue_s_mutations_are_refused_naming_the_field():
    L = lambda *a: c.from_iterable(list(range(*a)))
    plan = c.mix(c.mix(L(40), L(100, 140), mode="exhaustive", rate=3, n_active=1), L(200, 210),
                 rate=4, n_active=2) >> c.take(60)
    run = c.iterate(plan, seed=2)
    [next(run) for _ in range(3)]
    state = json.loads(json.dumps(run.state()))
    working_set = ("root", "apply", "child", "mix", "working_set")
    for path, value, field in [
        ((*working_set, "used"), -1, "used"),  # hung at 100% CPU in mix_items
        (("seed",), None, "seed"),  # drew fresh entropy
        (("root", "apply", "cells", 0, "passed"), -5, "passed"),
    ]:
        for resealed in (False, True):
            mutated = _mutate(state, path, value)
            if resealed:
                seal(mutated)
            with pytest.raises(ResumeError, match=field):
                c.iterate(plan, resume=mutated, max_iter=10)
    seekable = c.from_arrays(np.arange(10))
    run = c.iterate(seekable, seed=0)
    next(run)
    state = seal({**json.loads(json.dumps(run.state())), "root": {"received": -3}})  # yielded items from the end
    with pytest.raises(ResumeError, match=r"\$\.root\.received"):
        c.iterate(seekable, resume=state)
