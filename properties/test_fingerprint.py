"""A run state names its plan by a fingerprint: plans that differ never share one.

A resumed run checks the fingerprint of the state against its plan's, so two
different plans with one fingerprint would resume one from the other's state
without a word. Values of any shape (nested lists, dict keys, numbers that
would read alike side by side, partials of one function) must tell apart.
"""

from __future__ import annotations

import functools

from hypothesis import example, given, strategies as st

import combinators as c
from combinators.execution.runstate import plan_fingerprint

scalars = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=4), st.booleans(), st.none())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner), max_leaves=8)


def numbers(*args, **kwargs):
    yield from args


@given(st.lists(values, max_size=4), st.lists(values, max_size=4))
@example([1, 23], [12, 3])  # read side by side without a separator, they are the same digits
@example([[1], 2], [[1, 2]])
def test_two_item_lists_share_a_fingerprint_only_if_they_are_the_same(a, b):
    same = plan_fingerprint(c.from_iterable(a)) == plan_fingerprint(c.from_iterable(b))
    assert same == (repr(a) == repr(b)), (a, b)


@given(st.lists(values, max_size=3), st.dictionaries(st.text(max_size=3), values, max_size=3),
       st.lists(values, max_size=3), st.dictionaries(st.text(max_size=3), values, max_size=3))
@example([1, 23], {}, [12, 3], {})
@example([], {"a": "b"}, [], {"ab": ""})
def test_stream_arguments_share_a_fingerprint_only_if_they_are_the_same(args_a, kwargs_a, args_b, kwargs_b):
    same = plan_fingerprint(c.stream(numbers, *args_a, **kwargs_a)) == plan_fingerprint(
        c.stream(numbers, *args_b, **kwargs_b))
    assert same == (repr((args_a, kwargs_a)) == repr((args_b, kwargs_b)))


@given(st.integers(), st.integers())
def test_partials_of_one_function_with_other_arguments_differ(x, y):
    same = plan_fingerprint(c.stream(functools.partial(numbers, x))) == plan_fingerprint(
        c.stream(functools.partial(numbers, y)))
    assert same == (x == y)
