"""What a memoized function computes from besides its arguments: closures, bound self, partials,
module globals; derived names; unstorable return values; ``__main__`` functions."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import numpy as np
import pytest

from combinators.errors import InvalidArgumentType, KeyingError, UnstorableValue
from combinators.memo import DictArchive, LMDBArchive, code_version, memoize
from combinators.memo.capture import global_constants

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def make_adder(k, archive):
    @memoize(archive=archive)
    def add(x):
        return x + k

    return add


def test_closures_that_capture_different_values_never_share_an_entry(tmp_path):
    archive = LMDBArchive(tmp_path / "a.lmdb")
    assert (make_adder(1, archive)(10), make_adder(2, archive)(10)) == (11, 12)
    again = make_adder(1, archive)
    assert again(10) == 11 and again.cache_info().loads == 1  # the same capture finds its entry


CLOSURE_SCRIPT = """
    import sys
    from combinators.memo import LMDBArchive, memoize
    def make(k):
        @memoize(archive=LMDBArchive(sys.argv[1]), name="make.add")
        def add(x):
            return x + k
        return add
    add = make(int(sys.argv[2]))
    print(add(10), add.cache_info().loads)
"""


def test_closures_key_apart_across_processes(tmp_path):
    path = str(tmp_path / "a.lmdb")
    outputs = [run(CLOSURE_SCRIPT, path, k).stdout.split() for k in ("1", "2", "1")]
    assert outputs == [["11", "0"], ["12", "0"], ["11", "1"]]


def test_an_unkeyable_captured_value_refuses_unless_version_is_given(tmp_path):
    handle = open(tmp_path / "x", "w")  # noqa: SIM115
    try:
        def read(x):
            return handle.name * x

        with pytest.raises(KeyingError, match="'handle'.*version="):
            memoize(read)
        assert memoize(read, version="1")(2) == handle.name * 2
    finally:
        handle.close()


def test_captured_functions_key_by_code_and_captures_and_recursion_works():
    def make(k):
        def helper(x):
            return x * k

        @memoize
        def f(x):
            return helper(x)

        return f

    assert (make(2)(5), make(3)(5)) == (10, 15)

    def make_fib():
        @memoize
        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)

        return fib

    fib = make_fib()
    assert fib(40) == 102334155 and fib.cache_info().misses == 41


class Scaler:
    def __init__(self, factor):
        self.factor = factor

    def scale(self, x):
        return self.factor * x

    def __repr__(self):
        return f"Scaler({self.factor})"


@attrs.frozen
class Frozen:
    factor: int

    def scale(self, x):
        return self.factor * x


def test_bound_methods_key_their_object():
    archive = DictArchive()
    assert memoize(Frozen(2).scale, archive=archive)(3) == 6
    assert memoize(Frozen(3).scale, archive=archive)(3) == 9
    with pytest.raises(KeyingError, match="'self'"):  # a plain object has no canonical encoding
        memoize(Scaler(2).scale)
    assert memoize(Scaler(2).scale, version="1")(3) == 6

    @attrs.frozen
    class Local:  # its name does not give it back: its instances cannot be keyed by their fields
        factor: int

        def scale(self, x):
            return self.factor * x

    with pytest.raises(KeyingError, match="'self'"):
        memoize(Local(2).scale)


SCALE_SCRIPT = """
    import sys
    from combinators.memo import LMDBArchive, memoize
    FACTOR = int(sys.argv[2])
    OFFSETS = (0.5, 1.5)
    @memoize(archive=LMDBArchive(sys.argv[1]), name="scale")
    def scale(x):
        return x * FACTOR + OFFSETS[0]
    print(scale(10))
"""


def test_plain_data_globals_are_part_of_the_version(tmp_path):
    path = str(tmp_path / "a.lmdb")
    assert [run(SCALE_SCRIPT, path, k).stdout.strip() for k in ("2", "3", "2")] == ["20.5", "30.5", "20.5"]


WEIGHTS = np.arange(3.0)
LIMITS = (1, "a", b"b", None, np.float32(2.5))
REGISTRY = {"a": 1}


def uses_globals(x):
    return np.sum(WEIGHTS * x) + len(LIMITS) + len(REGISTRY) + len(os.sep) + functools.reduce(max, [x])


def test_global_constants_take_plain_data_and_leave_functions_and_modules_by_name():
    names = [name for name, _ in global_constants(uses_globals)]
    assert names == ["LIMITS", "WEIGHTS"]  # not np, os, functools (modules), not the mutable REGISTRY
    before = code_version(uses_globals)
    WEIGHTS[0] = 5.0
    try:
        assert code_version(uses_globals) != before
    finally:
        WEIGHTS[0] = 0.0
    assert code_version(uses_globals) == before


def add(a, b):
    return 10 * a + b


def test_builtins_and_partials_get_derived_names():
    low, power = memoize(min), memoize(pow)
    assert (low(3, 1, 2), low([4, 5]), low(3, 1, 2)) == (1, 4, 1) and low.cache_info().hits == 1
    assert power(2, 10) == 1024 and low.name == "builtins.min" and power.name == "builtins.pow"
    one, two = memoize(functools.partial(add, 1)), memoize(functools.partial(add, 2))
    assert (one(5), two(5), one(b=6)) == (15, 25, 16)
    assert one.name == two.name == f"functools.partial({__name__}.add)" and one.version != two.version


def test_a_callable_object_needs_a_name():
    class Call:
        def __call__(self, x):
            return x

    with pytest.raises(InvalidArgumentType, match="pass name="):
        memoize(Call())
    assert memoize(Call(), name="call")(3) == 3


def test_an_unstorable_return_value_names_the_function_not_an_argument(tmp_path):
    def numbers(n):
        yield from range(n)

    with pytest.raises(UnstorableValue, match=r"return value of .*numbers \(a generator\)"):
        memoize(numbers)(3)  # memory only: a cached generator would be served exhausted

    def maker(n):
        return lambda: n

    with pytest.raises(UnstorableValue, match=r"return value of .*maker \(a function\).*cannot pickle"):
        memoize(maker, archive=LMDBArchive(tmp_path / "a.lmdb"))(3)


MAIN_SCRIPT = """
    import sys, warnings
    from combinators.memo import LMDBArchive, memoize
    warnings.simplefilter("always")
    def features(x):
        return x
    for _ in range(3):
        memoize(features, archive=LMDBArchive(sys.argv[1]))
    memoize(features, archive=LMDBArchive(sys.argv[1]), name="mymod.features")
    memoize(features)
"""


def test_a_main_function_in_a_persistent_archive_warns_once(tmp_path):
    stderr = run(MAIN_SCRIPT, str(tmp_path / "a.lmdb")).stderr
    assert stderr.count("UserWarning") == 1 and "__main__.features" in stderr and "name=" in stderr
