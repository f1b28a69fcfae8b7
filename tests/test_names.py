"""Names: a label for people on any stream; shown everywhere, changing no item."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import combinators as c

A, B = c.from_iterable("aaaa"), c.from_iterable("bb")


def test_named_keeps_items_and_rebuilds_its_expression():
    s = c.from_arrays(np.arange(6).reshape(3, 2)).named("class 3")
    assert s.name == "class 3" and repr(s).endswith(".named('class 3')")
    assert [row.tolist() for row in s] == [[0, 1], [2, 3], [4, 5]]
    assert pickle.loads(pickle.dumps(s)) == s and s != s.named(None) and s.named(None).name is None
    plan = (c.mix(A.named("a"), B, names=[None, "b"], mode="exhaustive") >> c.batch(2)).named("pairs")
    namespace = {name: getattr(c, name) for name in c.__all__}
    assert eval(repr(plan), namespace) == plan  # noqa: S307 - the repr is the expression
    assert repr(plan) == "(mix(from_iterable('aaaa').named('a'), from_iterable('bb').named('b'), mode='exhaustive') >> batch(2)).named('pairs')"


@pytest.mark.parametrize("bad", ["", 3, b"x", ("a",)])
def test_a_bad_name_is_refused(bad):
    with pytest.raises(c.InvalidArgumentType, match="name"):
        A.named(bad)


def test_mix_names_must_fit_the_streams():
    with pytest.raises(c.InvalidArgument, match="one name per stream: 2 streams, 1 names"):
        c.mix(A, B, names=["a"])
    with pytest.raises(c.InvalidArgumentType, match="names must be a sequence"):
        c.mix(A, B, names="ab")


def test_names_survive_flattening():
    named_chain = (A | B).named("ab")
    assert c.chain(named_chain, A).streams == (named_chain, A)  # a named chain stays a node
    assert ((A >> c.take(1)).named("one") >> c.batch(1)).name == "one"
    assert c.mix(A, weights=None, names=["only"], mode="exhaustive").name == "only"


def test_stats_explain_and_errors_use_names():
    plan = c.mix(A, B, names=["class a", "class b"], mode="exhaustive").named("classes")
    with c.iterate(plan, seed=0) as run:
        assert sorted(run) == sorted("aaaabb")
        (stats,) = run.stats()
    assert stats.name == "classes" and stats.names == ("class a", "class b")
    text = str(stats)
    assert text.startswith("mix 'classes' at root: 6 items")
    assert "class a" in text and "class b" in text and "child" not in text
    assert "'class a': from_iterable('aaaa')" in c.explain(plan)

    def broken():
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom") as info:
        list(c.mix(c.stream(broken).named("the broken one"), B, mode="exhaustive"))
    assert any("'the broken one'" in note for note in getattr(info.value, "__notes__", ()))


def test_unnamed_children_keep_their_positions_in_stats():
    with c.iterate(c.mix(A, B.named("b"), mode="exhaustive"), seed=0) as run:
        list(run)
        assert run.stats()[0].names == ("child 0", "b")
