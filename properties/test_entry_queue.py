"""Entries drawn ahead: an activation is never asked past the limit it was submitted with.

Workers stop producing an activation at its limit (its budget), so a mix that
asked one activation for more items than its limit would silently lose items
under `Processes` and `ZMQ` (in process, activations are lazy and would hand
them over). For random weights, working sets, rates, dists and modes, and
children of random lengths, `mix_items` must: ask each activation for at
most its limit; close every activation it opened (queue entries included);
open no more than the working set plus `AHEAD` at once; and give the same
items as a rerun with the same Generators.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from combinators.sampling.mix import as_arrays, mix_decisions, mix_items
from combinators.sampling.working_set import AHEAD


class Recording:
    """A child activation over ``range(skip, length)`` that records what it was asked for.

    ``skip`` resumes a suspended activation (ending modes): its limit counts the items after it.
    """

    def __init__(self, child: int, length: int, limit: int | None, log: list, skip: int = 0):
        self.child, self.length, self.limit, self.asked, self.closed = child, max(0, length - skip), limit, 0, False
        self.skip = skip
        log.append(self)

    def next_function(self):
        def next_item():
            assert not self.closed, "asked for an item after close()"
            self.asked += 1
            if self.asked > self.length:
                raise StopIteration
            return (self.child, self.skip + self.asked - 1)

        return next_item

    def __len__(self) -> int:
        return self.length

    def close(self) -> None:
        self.closed = True


def run_mix(lengths, weights, n_active, rate, dist, mode, seed, items, decisions=False):
    log: list[Recording] = []
    peak = [0]

    def open_child(i, limit, number=None, skip=0):
        activation = Recording(i, lengths[i], limit, log, skip)
        peak[0] = max(peak[0], sum(not a.closed for a in log))
        return activation

    args = (open_child, np.asarray(weights, float), n_active, rate, dist, mode, True,
            np.random.default_rng(seed), np.random.default_rng(seed + 1))
    if decisions:
        out = []
        runs = mix_decisions(*args)
        for run in runs:
            out.extend(as_arrays(run).picks.tolist())
            if len(out) >= items:
                break
        runs.close()
    else:
        generator = mix_items(*args)
        out = [item for _, item in zip(range(items), generator)]
        generator.close()
    return out, log, peak[0]


settings = st.tuples(
    st.lists(st.integers(0, 12), min_size=1, max_size=6),
    st.lists(st.integers(0, 4), min_size=6, max_size=6).filter(any),
    st.sampled_from([None, 1, 2, 3]),
    st.sampled_from([None, 1.0, 2.5, 6.0]),
    st.sampled_from(["constant", "poisson", "binomial"]),
    st.sampled_from(["with_replacement", "single_active", "exhaustive", "first_exhausted"]),
    st.integers(0, 2**16),
)


@given(settings, st.booleans())
def test_no_activation_is_asked_past_its_limit(setting, decisions):
    lengths, weights, n_active, rate, dist, mode, seed = setting
    weights = weights[: len(lengths)]
    if not any(weights):
        weights[0] = 1
    items = 60
    out, log, peak = run_mix(lengths, weights, n_active, rate, dist, mode, seed, items, decisions)
    for activation in log:
        assert activation.closed, "an activation (or a drawn-ahead entry) was left open"
        if activation.limit is not None and not decisions:
            assert activation.asked <= activation.limit, (activation.child, activation.asked, activation.limit)
        if rate is None:
            assert activation.limit is None
    slots = len(lengths) if n_active is None else n_active
    assert peak <= slots + (0 if n_active is None or mode == "single_active" else AHEAD)
    again, _, _ = run_mix(lengths, weights, n_active, rate, dist, mode, seed, items, decisions)
    assert again == out
