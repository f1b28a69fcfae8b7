"""The three ways a mix maps uniforms to slots (bisect, counting passes, ``searchsorted``) give the same picks."""

from __future__ import annotations

import bisect

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from combinators.plan.mixes import MIN_SHARE
from combinators.sampling import slot_map
from combinators.sampling.slot_map import _SlotMap

# the slot weights a working set maps over: the streams' shares (`normalize_weights`), zero or in [MIN_SHARE, 1]
weights = st.one_of(st.floats(MIN_SHARE, 1.0), st.sampled_from([0.0, MIN_SHARE, 2.0**-60, 0.5, 1.0]))
uniforms = st.one_of(st.floats(0, 1, exclude_max=True), st.sampled_from([0.0, 1.0 - 2.0**-53, 0.5]))


@settings(deadline=None, max_examples=300)
@given(slot_weights=st.lists(weights, min_size=1, max_size=2 * slot_map._COUNTED_SLOTS),
       values=st.lists(uniforms, min_size=1, max_size=80))
@example(slot_weights=[1.0, 0.0, 0.0, 3.0], values=[0.0, 0.25, 1.0 - 2.0**-53])
def test_counted_searched_and_bisected_picks_agree(slot_weights, values):
    slots = _SlotMap(np.array(values))
    if not slots.weights(slot_weights):
        return  # every weight zero: nothing can be picked (the working set ends)
    searched = np.array(slots.cumulative).searchsorted(np.array(values) * slots.scale, side="right")
    bisected = [bisect.bisect_right(slots.cumulative, u * slots.scale) for u in values]
    assert slots.array_picks(0, len(values)).tolist() == searched.tolist() == bisected
    assert slots.picks(0, len(values)) == bisected
    assert list(slots.lazy_picks(0, len(values))[0]) == bisected
    assert max(bisected) < len(slot_weights)  # `_BELOW_ONE` keeps every value under the total
