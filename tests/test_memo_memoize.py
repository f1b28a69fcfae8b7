"""memoize over real LMDB archives: namespacing, versions, policies, processes, peers' defects."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from combinators.errors import InvalidArgument, InvalidArgumentType, KeyingError
from combinators.memo import (
    LFU,
    LRU,
    MRU,
    RR,
    DictArchive,
    LMDBArchive,
    NoCache,
    Unbounded,
    code_version,
    hashmap,
    inf_cache,
    keymap,
    lfu_cache,
    lru_cache,
    memoize,
    mru_cache,
    no_cache,
    rr_cache,
)

ROOT = Path(__file__).resolve().parents[1]
CALLS: list = []


def slow_features(x, scale=1.0):
    CALLS.append(x)
    return np.full(8, x * scale)


def test_bare_and_configured_use_and_wrapper_attributes(tmp_path):
    CALLS.clear()
    archive = LMDBArchive(tmp_path / "a.lmdb")
    f = memoize(archive=archive)(slow_features)
    g = memoize(slow_features)
    assert f.__wrapped__ is slow_features and f.__name__ == "slow_features" and g(2)[0] == 2
    assert f(1)[0] == f(1, 1.0)[0] == f(x=1)[0] == 1.0
    assert CALLS == [2, 1]
    assert f.cache_info().hits == 2 and f.cache_info().misses == 1
    assert f.lookup(1)[0] == 1.0 and len(f.key(1)) == 16 and f.key(1) == f.key(x=1, scale=1.0)
    with pytest.raises(KeyError, match="slow_features has no stored result"):
        f.lookup(99)
    assert list(f.archive) == [f.key(1)] and np.array_equal(f.archive[f.key(1)], np.ones(8))
    assert f.info(1).compute_seconds > 0 and f.info(1).version == f.version == code_version(slow_features)
    f.cache_clear()
    assert f.cache_info().currsize == 0 and f(1)[0] == 1.0 and f.cache_info().loads == 1  # from the archive
    assert CALLS == [2, 1]
    assert pickle.loads(pickle.dumps(doubled)) is doubled  # module-level wrappers pickle by reference


@memoize
def doubled(x):
    return 2 * x


def test_a_second_process_is_served_from_the_archive(tmp_path):
    path = tmp_path / "a.lmdb"
    f = memoize(slow_features, archive=path)
    expected = [f(i) for i in range(20)]
    script = textwrap.dedent(f"""
        import test_memo_memoize as t
        from combinators.memo import memoize
        f = memoize(t.slow_features, archive={str(path)!r})
        values = [f(i) for i in range(20)]
        print(f.cache_info().misses, f.cache_info().loads, sum(float(v.sum()) for v in values))
    """)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "PYTHONHASHSEED": "7"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    misses, loads, total = result.stdout.split()
    assert (int(misses), int(loads), float(total)) == (0, 20, sum(float(v.sum()) for v in expected))


def test_functions_and_versions_are_namespaced(tmp_path):
    archive = LMDBArchive(tmp_path / "a.lmdb")
    f = memoize(lambda x: x + 1, archive=archive, name="f")
    g = memoize(lambda x: x + 2, archive=archive, name="g")
    f1 = memoize(lambda x: x * 10, archive=archive, name="f", version="1")
    assert (f(1), g(1), f1(1)) == (2, 3, 10)
    assert len(archive) == 3 and len(f.archive) == len(g.archive) == len(f1.archive) == 1
    assert sorted(archive.registered().values()) == sorted([("f", f.version), ("g", g.version), ("f", "1")])


def _define(source: str, name: str = "feature"):
    namespace: dict = {}
    exec(compile(textwrap.dedent(source), "<edited module>", "exec"), namespace)
    return namespace[name]


def test_the_default_version_follows_the_code_but_not_line_numbers(tmp_path):
    archive = LMDBArchive(tmp_path / "a.lmdb")
    original = _define("def feature(x):\n    return x * 2\n")
    moved = _define("\n\n\n# a comment\ndef feature(x):\n    '''Now documented.'''\n    return x * 2\n")
    edited = _define("def feature(x):\n    return x * 3\n")
    hashed = _define("def feature(x):\n    return x in {'a', 'b', 'c'}\n")
    assert code_version(original) == code_version(moved) != code_version(edited)
    assert memoize(original, archive=archive, name="feature")(5) == 10
    assert memoize(moved, archive=archive, name="feature").lookup(5) == 10  # joblib would recompute
    with pytest.raises(KeyError):
        memoize(edited, archive=archive, name="feature").lookup(5)  # editing stops old entries
    assert memoize(edited, archive=archive, name="feature")(5) == 15
    script = "import test_memo_memoize as t; print(t.code_version(t._define(\"def feature(x):\\n    return x in {'a', 'b', 'c'}\\n\")))"
    versions = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        versions.add(out.stdout.strip())
    assert versions == {code_version(hashed)}  # frozenset constants do not make the version vary


@pytest.mark.parametrize(
    ("policy", "kept"),
    [(LRU(2), {1, 3}), (LFU(2), {1, 3}), (MRU(2), {2, 3}), (Unbounded(), {1, 2, 3}), (NoCache(), set())],
)
def test_cache_policies_evict_as_named(policy, kept):
    f = memoize(lambda x: x, cache=policy, keymap=keymap())
    f(1), f(2), f(1), f(1), f(3)  # 1 is used most often and most recently before 3 arrives
    assert {key[0] for key in f.cache} == kept and f.cache_info().currsize == len(kept)


def test_random_replacement_is_seeded_and_bounded():
    f = memoize(lambda x: x, cache=RR(3, seed=0))
    for x in range(10):
        f(x)
    assert f.cache_info().currsize == 3


@pytest.mark.parametrize("decorator", [lru_cache, lfu_cache, mru_cache, rr_cache, inf_cache, no_cache])
def test_klepto_style_decorators(tmp_path, decorator):
    archive = LMDBArchive(tmp_path / "a.lmdb")

    @decorator(4, archive=archive, keymap=hashmap(ignore="verbose"))
    def f(x, verbose=False):
        return x * 2

    assert f(3) == f(3, verbose=True) == 6 and len(f.archive) == 1
    assert decorator(lambda x: -x)(2) == -2  # bare use


def test_read_only_archives_serve_hits_and_compute_misses(tmp_path):
    f = memoize(slow_features, archive=LMDBArchive(tmp_path / "a.lmdb"), name="s")
    f(1)
    ro = memoize(slow_features, archive=LMDBArchive(tmp_path / "a.lmdb", readonly=True), name="s", cache=NoCache())
    assert ro(1)[0] == 1 and ro.cache_info().loads == 1 and ro(2)[0] == 2 and len(ro.archive) == 1


def test_bad_options_and_arguments_are_clear_errors(tmp_path):
    with pytest.raises(InvalidArgumentType, match="archive must be"):
        memoize(slow_features, archive=3)
    with pytest.raises(InvalidArgumentType, match="cache must be"):
        memoize(slow_features, cache=128)
    with pytest.raises(InvalidArgument, match="memory caches only"):
        memoize(slow_features, archive=LMDBArchive(tmp_path / "a.lmdb"), keymap=keymap())
    with pytest.raises(KeyingError, match="'x' of type builtins.object"):
        memoize(slow_features)(object())


def test_array_arguments_are_keyed_by_digest_not_stored(tmp_path):
    """diskcache counts pickled array arguments toward its size limit; here keys stay 16 bytes."""
    archive = LMDBArchive(tmp_path / "a.lmdb", map_size=1 << 20, max_map_size=1 << 20)
    f = memoize(lambda a: float(a.sum()), archive=archive, name="sum", cache=NoCache())
    arrays = [np.full(1 << 18, i, dtype=np.float64) for i in range(8)]  # 2 MB each, 16 MB in all
    assert [f(a) for a in arrays] == [float(i << 18) for i in range(8)]
    assert [f(a) for a in arrays] == [float(i << 18) for i in range(8)] and f.cache_info().misses == 8
    assert all(len(k) == 16 for k in f.archive) and len(f.archive) == 8


def test_one_archive_is_two_files_not_thousands(tmp_path):
    """joblib.Memory writes a directory per call; the archive stays three files (keys.lock: the key locks)."""
    f = memoize(lambda x: np.full(10, x), archive=LMDBArchive(tmp_path / "a.lmdb", durability="process"), name="n")
    for x in range(2000):
        f(x)
    assert sorted(os.listdir(tmp_path / "a.lmdb")) == ["data.mdb", "keys.lock", "lock.mdb"] and len(f.archive) == 2000


def test_dict_archive_keeps_objects_and_metadata():
    f = memoize(lambda x: [x], archive=DictArchive(), name="d", cache=NoCache())
    assert f(1) == [1] and f.cache_info().loads == 0 and f(1) == [1] and f.cache_info().loads == 1
    assert f.info(1).compute_seconds >= 0


def test_arrays_differing_in_the_middle_get_their_own_results(tmp_path):
    """klepto's repr-based keys elide the middle of large arrays and return the wrong result."""
    f = memoize(lambda a: float(a.sum()), archive=LMDBArchive(tmp_path / "a.lmdb"), name="sum")
    a = np.zeros(10_000)
    b = a.copy()
    b[5_000] = 1.0
    assert (f(a), f(b)) == (0.0, 1.0) and f.cache_info().misses == 2


def test_memory_keys_agree_with_the_byte_keys():
    calls = []

    @memoize(keymap=hashmap(ignore="verbose"))
    def f(x, y=2, verbose=False):
        calls.append(x)
        return x + y

    assert f(1) == f(1.0) == f(True, 2) == f(x=1, y=2, verbose=True) == 3 and calls == [1]
    assert f(1, 3) == 4 and f("a", "b") == "ab" and calls == [1, 1, "a"]
    assert f.key(1) == f.key(1.0, verbose=True) and f.cache_info().hits == 3


def test_long_keys_are_listed_in_their_namespace(tmp_path):
    from combinators.memo import picklemap

    archive = LMDBArchive(tmp_path / "a.lmdb")
    f = memoize(lambda s: len(s), archive=archive, keymap=picklemap(), name="long")
    g = memoize(lambda s: s[:1], archive=archive, keymap=picklemap(), name="other")
    assert f("x" * 1000) == 1000 and f("y") == 1 and g("z" * 700) == "z"
    assert sorted(f.archive) == sorted([f.key("x" * 1000), f.key("y")]) and len(f.key("x" * 1000)) > 1000
    assert list(g.archive) == [g.key("z" * 700)] and f.lookup("x" * 1000) == 1000
