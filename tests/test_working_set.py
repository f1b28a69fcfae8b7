"""A working set of generator sources (the per-item path): its items for a seed, and plain sources started straight away.

The items a seed gives never change: `RECORDED` holds digests of the first
400 items of mixes of generator sources in every ``dist`` and ``mode``,
taken on the code before in-process replacements were made lean (ed3bc09).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import combinators as c
from combinators.errors import InvalidArgumentType
from combinators.execution import interpreter
from combinators.execution.leaf import activate_leaf, open_plain, plain_source
from combinators.execution.remote.placement import Costs
from combinators.execution.remote.processes import Processes
from combinators.sampling.slot_map import _SlotMap


def labelled(label, rng):
    """0 to 39 items (an empty activation now and then: pruned streams, drawn-ahead entries closed)."""
    for k in range(int(rng.integers(0, 40))):
        yield (label, k, int(rng.integers(100)))


def plain(label):
    n = 0
    while n < 30 + 7 * label:
        yield (label, n)
        n += 1


def _plans():
    for dist in ("binomial", "poisson", "constant"):
        for mode in ("with_replacement", "single_active", "exhaustive", "first_exhausted"):
            for n_active, rate in ((4, 16), (2, 2.5)):
                for source in (labelled, plain):
                    name = f"{source.__name__} {dist} {mode} n_active={n_active} rate={rate}"
                    yield name, c.mix(*[c.stream(source, i) for i in range(7)], weights=list(range(1, 8)),
                                      n_active=n_active, rate=rate, dist=dist, mode=mode)


PLANS = dict(_plans())

#: sha256 (first 16 hex digits) of ``repr`` of the first 400 items, seed 7, recorded on ed3bc09
RECORDED = {
    "labelled binomial with_replacement n_active=4 rate=16": "991fb7182f933d4b",
    "plain binomial with_replacement n_active=4 rate=16": "a5a57d51d16e5736",
    "labelled binomial with_replacement n_active=2 rate=2.5": "879ba11c8a56344d",
    "plain binomial with_replacement n_active=2 rate=2.5": "54e29a11127602c8",
    "labelled binomial single_active n_active=4 rate=16": "c848c851a6454854",
    "plain binomial single_active n_active=4 rate=16": "6b20aa8155312f04",
    "labelled binomial single_active n_active=2 rate=2.5": "c0ada50ee8c14cd1",
    "plain binomial single_active n_active=2 rate=2.5": "5cd00a132e098239",
    "labelled binomial exhaustive n_active=4 rate=16": "60efc35475f4a80c",
    "plain binomial exhaustive n_active=4 rate=16": "89500f8a0011ff50",
    "labelled binomial exhaustive n_active=2 rate=2.5": "a17743e4f871d65e",
    "plain binomial exhaustive n_active=2 rate=2.5": "a5ad12b97d1466af",
    "labelled binomial first_exhausted n_active=4 rate=16": "ce7b3528c7dc1c01",
    "plain binomial first_exhausted n_active=4 rate=16": "d9760c68310aa9b1",
    "labelled binomial first_exhausted n_active=2 rate=2.5": "4f53cda18c2baa0c",
    "plain binomial first_exhausted n_active=2 rate=2.5": "69fcc8b539df4d89",
    "labelled poisson with_replacement n_active=4 rate=16": "3507cb8d490b496a",
    "plain poisson with_replacement n_active=4 rate=16": "077eddd8e9e7c9c1",
    "labelled poisson with_replacement n_active=2 rate=2.5": "4207478761344b03",
    "plain poisson with_replacement n_active=2 rate=2.5": "f018d861720912aa",
    "labelled poisson single_active n_active=4 rate=16": "885dd4855a50ea39",
    "plain poisson single_active n_active=4 rate=16": "ff112f11b523cd3e",
    "labelled poisson single_active n_active=2 rate=2.5": "b53d8dd3e93ce684",
    "plain poisson single_active n_active=2 rate=2.5": "80c1820eb8d18fe9",
    "labelled poisson exhaustive n_active=4 rate=16": "a92b5cd4eab09d15",
    "plain poisson exhaustive n_active=4 rate=16": "5cd160c9e3d45e65",
    "labelled poisson exhaustive n_active=2 rate=2.5": "8b1dfce727a244ba",
    "plain poisson exhaustive n_active=2 rate=2.5": "39c0ee74c5ade3cc",
    "labelled poisson first_exhausted n_active=4 rate=16": "81d9db7c9f2237c6",
    "plain poisson first_exhausted n_active=4 rate=16": "f8e2b5a01928dad5",
    "labelled poisson first_exhausted n_active=2 rate=2.5": "4f53cda18c2baa0c",
    "plain poisson first_exhausted n_active=2 rate=2.5": "7353f42737efcd55",
    "labelled constant with_replacement n_active=4 rate=16": "86c88d9d700fbf30",
    "plain constant with_replacement n_active=4 rate=16": "00b6bf4c59dffad1",
    "labelled constant with_replacement n_active=2 rate=2.5": "1b57e13670dfb84d",
    "plain constant with_replacement n_active=2 rate=2.5": "39b07a5c33d679a8",
    "labelled constant single_active n_active=4 rate=16": "5b5f2b5215aa0667",
    "plain constant single_active n_active=4 rate=16": "fae627bbb0bb5ff2",
    "labelled constant single_active n_active=2 rate=2.5": "b324c5fc0e3977ef",
    "plain constant single_active n_active=2 rate=2.5": "f275f21b6a164204",
    "labelled constant exhaustive n_active=4 rate=16": "845b55286f437130",
    "plain constant exhaustive n_active=4 rate=16": "974604285bb62c2c",
    "labelled constant exhaustive n_active=2 rate=2.5": "ea617288a9b0b210",
    "plain constant exhaustive n_active=2 rate=2.5": "8d9e6c30a879546f",
    "labelled constant first_exhausted n_active=4 rate=16": "bfe5154f9c556c70",
    "plain constant first_exhausted n_active=4 rate=16": "1c7f8ef374edc138",
    "labelled constant first_exhausted n_active=2 rate=2.5": "4f53cda18c2baa0c",
    "plain constant first_exhausted n_active=2 rate=2.5": "9105d169db4285e3",
}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_generator_working_set_items_are_those_recorded(name):
    items = list(c.iterate(PLANS[name], seed=7, max_iter=400))
    assert hashlib.sha256(repr(items).encode()).hexdigest()[:16] == RECORDED[name]


def starts_at(n, start=0):
    yield from range(start, n)


def noise(n, rng):
    yield from rng.integers(0, 100, size=n).tolist()


def listed(n, scale=1):
    return [k * scale for k in range(n)]


@pytest.mark.parametrize("leaf", [c.stream(range, 5), c.stream(plain, 2), c.stream(listed, 4, scale=3)], ids=repr)
def test_open_plain_gives_the_items_of_activate_leaf(leaf):
    assert plain_source(leaf)
    for activation in [(0, 0, 1), (0, 0, 2)]:
        ours = list(open_plain(leaf, (0,), 3))
        assert ours and ours == list(activate_leaf(leaf, 11, (0, 3), activation))


@pytest.mark.parametrize("leaf", [c.stream(noise, 6), c.stream(starts_at, 6), c.stream(plain, 0) >> c.take(4),
                                  c.from_iterable("abc"), c.from_arrays(np.arange(3.0))], ids=repr)
def test_sources_with_seeds_seeks_or_transforms_are_not_plain(leaf):
    assert not plain_source(leaf)
    assert plain_source(c.stream(starts_at, 6, start=1))  # ``start`` bound: nothing to seek


@pytest.fixture
def plain_opened(monkeypatch):
    """The (parent path, index) of each activation started by `open_plain`, in order."""
    opened = []

    def counted(leaf, parent, index):
        opened.append((*parent, index))
        return open_plain(leaf, parent, index)

    monkeypatch.setattr(interpreter, "open_plain", counted)
    return opened


def test_each_replacement_of_a_plain_source_starts_it_straight_away(plain_opened):
    plan = c.mix(c.stream(plain, 0), c.stream(plain, 1), c.stream(noise, 30), n_active=1, rate=2)
    items = list(c.iterate(plan, seed=0, max_iter=200))
    activations = sum(type(item) is tuple and item[1] == 0 for item in items)  # `plain` starts at 0
    assert len(items) == 200 and activations > 20
    assert len(plain_opened) >= activations and set(plain_opened) == {(0,), (1,)}  # the `rng` source: activate_leaf


def returns_a_number(label):
    return label


def test_a_replacement_whose_function_returns_no_iterable_is_named():
    plan = c.mix(c.stream(plain, 0), c.stream(returns_a_number, 1), n_active=1, rate=1, dist="constant")
    with pytest.raises(InvalidArgumentType, match=r"stream\(.*returns_a_number, 1\) at path \(1,\).*not iterable"):
        list(c.iterate(plan, seed=0, max_iter=100))


def test_lazy_picks_are_the_picks():
    rng = np.random.default_rng(3)
    for _ in range(50):
        slots = _SlotMap(rng.random(300))
        assert slots.weights(rng.random(int(rng.integers(1, 70))).tolist())
        start = int(rng.integers(0, 200))
        picks, uniforms = slots.lazy_picks(start, start + 64)
        taken = [next(picks) for _ in range(10)]
        assert taken == slots.picks(start, start + 10) and len(list(uniforms)) == 54


def cheap(name, n):
    yield from ((name, i) for i in range(n))


def test_plain_leaves_a_parallel_executor_runs_in_the_consumer_start_straight_away(plain_opened):
    plan = c.mix(*[c.stream(cheap, f"s{k}", 1000) for k in range(4)], n_active=2, rate=6, dist="constant") >> c.take(1500)
    expected = list(c.iterate(plan, seed=3))
    del plain_opened[:]
    cheap_costs = Costs(lambda leaf: (100, 10_000))  # ns to make and to move an item: cheap, made in the consumer
    with c.iterate(plan, seed=3, executor=Processes(workers=1, inline=cheap_costs)) as run:
        items = list(run)
        inline = run.executor_stats()["activations_inline"]
    assert items == expected
    assert inline > 0 and plain_opened and set(plain_opened) <= {(0, k) for k in range(4)}
