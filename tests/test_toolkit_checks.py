"""The checks of combinators.testing catch deliberately broken samplers, with useful reports.

Each kind of bug is planted twice: as a user's mistake (a sampler built or
written wrongly) and as a bug in the library itself (a mux algorithm or the
interpreter patched to misbehave), and every check must fail on it with a
report that names the plan, the seed and what was expected against observed.
Each check must also pass on the correct sampler next to the broken one.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

import combinators.execution.interpreter as inprocess
from combinators.execution.base import resolve_executor
import combinators.sampling.mix as sampling
from combinators import InvalidArgument, InvalidArgumentType, cache, from_iterable, mix, round_robin, stream
from combinators.plan.mixes import Mix
from combinators.testing import (
    assert_deterministic, assert_executor_agreement, assert_exhaustive, assert_proportions, assert_working_set,
)


def forever(name):
    while True:
        yield name


def letters(name, n):
    for i in range(n):
        yield (name, i)


def check_report(error: pytest.ExceptionInfo, *fragments: str) -> str:
    """The report names the check's plan, seed and replay line, and each fragment."""
    text = str(error.value)
    assert "plan:" in text and "seed: " in text and "replay: list(combinators.iterate(" in text, text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in report:\n{text}"
    return text


# ------------------------------------------------------------- wrong weights

AB = mix(stream(forever, "a"), stream(forever, "b"), (1, 3))
ABC = mix(stream(forever, "a"), stream(forever, "b"), stream(forever, "c"), (1, 2, 5))


def test_proportions_pass_on_a_correct_mix():
    assert_proportions(AB, n=4000)
    assert_proportions(AB, (0.25, 0.75), n=4000, seed=7)
    assert_proportions(ABC, (1, 2, 5), n=4000)
    assert_proportions(AB >> cache(1, prob=1.0), {"a": 1, "b": 3}, key=str, n=4000)


def test_wrong_weights_given_by_the_user_fail_with_the_binomial_test_named():
    wrong = mix(stream(forever, "a"), stream(forever, "b"), (3, 1))
    with pytest.raises(AssertionError) as error:
        assert_proportions(wrong, (1, 3), n=4000)
    text = check_report(error, "exact two-sided binomial test over 4000 items", "child 0", "0.2500", "seed: 0")
    assert re.search(r"p-value \S+ < alpha 1e-06", text)


def test_wrong_weights_in_the_library_fail_with_the_chi_square_test_named(monkeypatch):
    # plant the bug: the mix samples with uniform probabilities whatever its weights
    monkeypatch.setattr(Mix, "probabilities", property(lambda self: np.full(len(self.streams), 1 / len(self.streams))))
    with pytest.raises(AssertionError) as error:
        assert_proportions(ABC, (1, 2, 5), n=3000, seed=11)
    check_report(error, "Pearson chi-square test, 2 degrees of freedom", "seed: 11", "expected count")


def test_an_item_from_a_zero_weight_category_fails_at_once():
    with pytest.raises(AssertionError) as error:
        assert_proportions(AB, {"a": 0, "b": 1}, key=str, n=100)
    check_report(error, "categories expected with proportion 0 yielded items: 'a'")


def test_proportions_by_key_report_unexpected_categories():
    with pytest.raises(AssertionError) as error:
        assert_proportions(ABC, {"a": 1, "b": 2}, key=str, n=3000)
    check_report(error, "'c'")


def test_proportions_reject_bad_arguments():
    with pytest.raises(InvalidArgument, match="needs a mix at the top"):
        assert_proportions(from_iterable("ab"))
    with pytest.raises(InvalidArgument, match="3 values for a mix of 2 streams"):
        assert_proportions(AB, (1, 2, 3))
    with pytest.raises(InvalidArgument, match="raise n to at least"):
        assert_proportions(ABC, (1, 1, 98), n=100)
    with pytest.raises(InvalidArgumentType, match="mapping category"):
        assert_proportions(AB, (1, 3), key=str)
    with pytest.raises(InvalidArgument, match="alpha"):
        assert_proportions(AB, alpha=0)


# ------------------------------------------------------------ a dropped item

DATA = [("x", i) for i in range(20)]


def shuffled_epoch(data, rng):
    """A user's shuffling sampler."""
    for i in rng.permutation(len(data)):
        yield data[i]


def shuffled_epoch_off_by_one(data, rng):
    """The same sampler with a classic bug: the last index is never drawn."""
    for i in rng.permutation(len(data) - 1):
        yield data[i]


def test_exhaustive_passes_on_correct_samplers():
    assert_exhaustive(stream(shuffled_epoch, DATA), DATA, ordered=False, seed=3)
    parts = [stream(letters, name, n) for name, n in (("a", 5), ("b", 0), ("c", 3))]
    for seed in range(5):
        assert_exhaustive(mix(*parts, mode="exhaustive"), seed=seed)
        assert_exhaustive(mix(*parts, n_active=1, mode="exhaustive"), seed=seed)
        assert_exhaustive(round_robin(*parts), seed=seed)
        assert_exhaustive(parts[0] | parts[2], seed=seed)


def test_a_user_sampler_that_drops_an_item_fails():
    with pytest.raises(AssertionError) as error:
        assert_exhaustive(stream(shuffled_epoch_off_by_one, DATA), DATA, ordered=False, seed=3)
    check_report(error, "1 items missing, 0 extra", "missing (1): ('x', 19) x1")


def test_first_exhausted_is_not_exhaustive():
    parts = [stream(letters, "a", 6), stream(letters, "b", 2)]
    with pytest.raises(AssertionError) as error:
        assert_exhaustive(mix(*parts, mode="first_exhausted"), seed=0)
    check_report(error, "items missing", "mix all-active mode=first_exhausted")


def test_a_chain_that_drops_items_in_the_library_fails(monkeypatch):
    def chain_dropping_first_items(open_child, n_children, cycle, cursor=None):
        for item in original(open_child, n_children, cycle, cursor):
            if item[1] != 0:
                yield item

    original = sampling.chain_items
    monkeypatch.setattr(inprocess, "chain_items", chain_dropping_first_items)
    with pytest.raises(AssertionError) as error:
        assert_exhaustive(stream(letters, "a", 3) | stream(letters, "b", 2))
    check_report(error, "2 items missing", "('a', 0) x1", "('b', 0) x1")


def test_out_of_order_items_fail():
    with pytest.raises(AssertionError) as error:
        assert_exhaustive(stream(shuffled_epoch, DATA), DATA, seed=3)
    check_report(error, "0 items missing, 0 extra, 1 out of order", "source expected: its item #")


def test_an_endless_stream_fails_instead_of_hanging():
    with pytest.raises(AssertionError) as error:
        assert_exhaustive(mix(stream(letters, "a", 2), stream(letters, "b", 2)))
    check_report(error, "the stream did not end after 18 items (4 expected)")


def test_exhaustive_refuses_to_derive_through_transforms_over_combinators():
    with pytest.raises(InvalidArgument, match="pass expected="):
        assert_exhaustive(round_robin(from_iterable("ab")).take(1))
    with pytest.raises(InvalidArgument, match="more than 50 items"):
        assert_exhaustive(stream(forever, "a") | from_iterable("b"), limit=50)


# --------------------------------------------------------- a duplicated item


def test_a_cache_duplicates_items():
    with pytest.raises(AssertionError) as error:
        assert_exhaustive(from_iterable(range(30)) >> cache(4), range(30), seed=1)
    check_report(error, "(duplicated)", "from_iterable(range(0, 30))")


def test_a_round_robin_that_repeats_an_item_in_the_library_fails(monkeypatch):
    def stuttering_round_robin(open_child, n_children, mode, rng, cursor=None):
        for item in original(open_child, n_children, mode, rng, cursor):
            yield item
            if item == ("b", 1):
                yield item

    original = sampling.round_robin_items
    monkeypatch.setattr(inprocess, "round_robin_items", stuttering_round_robin)
    with pytest.raises(AssertionError) as error:
        assert_exhaustive(round_robin(stream(letters, "a", 3), stream(letters, "b", 3)), seed=2)
    check_report(error, "0 items missing, 1 extra", "extra (1): ('b', 1) x1 (duplicated)", "seed: 2")


def test_items_from_nowhere_are_unexpected():
    def with_extra(name, n):
        yield from letters(name, n)
        yield ("ghost", 0)

    with pytest.raises(AssertionError) as error:
        assert_exhaustive(stream(with_extra, "a", 2), [("a", 0), ("a", 1)])
    check_report(error, "('ghost', 0) x1 (unexpected)")


# ---------------------------------------------------- an unbounded working set

FILES = [stream(letters, f"f{i}", 4) for i in range(12)]


def test_working_set_passes_on_bounded_mixes():
    assert_working_set(mix(*FILES, n_active=3, rate=2, mode="with_replacement"), 3, n=500)
    assert_working_set(mix(*FILES, n_active=3, mode="single_active"), 3, n=500)
    assert_working_set(mix(*FILES, n_active=2, rate=2, mode="exhaustive"), 2)
    inner = [mix(*FILES[i : i + 4], n_active=2, rate=3) for i in (0, 4, 8)]
    assert_working_set(mix(*inner, n_active=2, rate=5), 4, n=500)
    assert_working_set(round_robin(*FILES[:3]) | round_robin(*FILES[3:5]), 3)


def test_a_mix_that_keeps_every_stream_open_fails():
    with pytest.raises(AssertionError) as error:
        assert_working_set(mix(*FILES), 3, n=100)
    check_report(error, "12 source activations open at once (at item 0), more than n_active=3", "(11,) #", ": stream(letters, 'f11', 4)")


def test_a_mix_that_forgets_to_close_activations_in_the_library_fails(monkeypatch):
    def end_without_closing(self, slot, exhausted):
        self.activation[slot].close = lambda: None  # the planted bug: the old activation stays open
        return original(self, slot, exhausted)

    original = sampling._WorkingSet.end
    monkeypatch.setattr(sampling._WorkingSet, "end", end_without_closing)
    with pytest.raises(AssertionError) as error:
        assert_working_set(mix(*FILES, n_active=2, rate=2), 2, n=200, seed=4)
    check_report(error, "source activations open at once", "more than n_active=2", "seed: 4")


def test_activations_left_open_after_the_run_fail(monkeypatch):
    def chain_never_closing(open_child, n_children, cycle, cursor=None):
        for index in range(n_children):
            yield from open_child(index).iterator()  # the planted bug: no close()

    monkeypatch.setattr(inprocess, "chain_items", chain_never_closing)
    with pytest.raises(AssertionError) as error:
        assert_working_set(stream(letters, "a", 2) | stream(letters, "b", 2), 2)
    check_report(error, "source activations were not closed when the run closed", "(0,) #", ": stream(letters, 'a', 2)")


# ------------------------------------------------------------ unseeded sources


def seeded_noise(n, rng):
    yield from rng.random(n).tolist()


def numpy_default_rng_noise(n):
    yield from np.random.default_rng().random(n).tolist()


def numpy_global_noise(n):
    yield from np.random.random(n).tolist()


def stdlib_noise(n):
    for _ in range(n):
        yield random.random()


def test_deterministic_passes_on_seeded_sources():
    noisy = mix(stream(seeded_noise, 5), stream(seeded_noise, 3), n_active=1, rate=2)
    assert_deterministic(noisy, seed=9, n=200)
    assert_deterministic(noisy >> cache(3), executors=["inprocess", resolve_executor("inprocess")])


@pytest.mark.parametrize("source", [numpy_default_rng_noise, numpy_global_noise, stdlib_noise])
def test_an_unseeded_source_fails(source):
    with pytest.raises(AssertionError) as error:
        assert_deterministic(mix(stream(seeded_noise, 4), stream(source, 4), mode="exhaustive"), seed=5)
    check_report(error, "InProcess() run 2 differs from InProcess() run 1 at item", "seed: 5", f"stream({source.__name__}, 4)")


def test_deterministic_rejects_bad_executors():
    with pytest.raises(InvalidArgument, match="unknown executor 'threads'"):
        assert_deterministic(from_iterable("a"), executors=["threads"])
    with pytest.raises(InvalidArgumentType, match="executor must be a name or an Executor"):
        assert_deterministic(from_iterable("a"), executors=[3])
    with pytest.raises(InvalidArgument, match="at least one executor"):
        assert_deterministic(from_iterable("a"), executors=[])
