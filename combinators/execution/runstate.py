"""What identifies a run state: its format, its seed and the fingerprint of its plan.

A run state (`~combinators.execution.inprocess.Run.state`) is a JSON dict
``{"format", "seed", "plan", "items", "root", "counts"}``; ``root`` nests the
state of every open node activation (docs/guide/decisions.md, section 4).
This module checks that a state fits the run asked to resume it.
"""

from __future__ import annotations

import hashlib
import types
from typing import Any

import attrs

from combinators.description import Description
from combinators.errors import ResumeError

__all__ = ["FORMAT", "plan_fingerprint", "check_resume"]

#: the version of the run-state format this library writes and reads
FORMAT = 1


def _code_text(code: types.CodeType) -> str:
    """A function's code without its file name or line numbers (so moving it keeps its fingerprint)."""
    consts = [_code_text(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    return f"{code.co_code.hex()}|{consts}|{code.co_names}|{code.co_varnames}"


def _callables(value: Any, out: list[Any]) -> None:
    if isinstance(value, Description):
        for field in attrs.fields(type(value)):
            _callables(getattr(value, field.name), out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _callables(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _callables(v, out)
    elif callable(value) and not isinstance(value, type):
        out.append(value)


#: fingerprints of the plans seen last, by id (the plan is kept so that its id is not reused)
_RECENT: dict[int, tuple[Description, str]] = {}
_RECENT_SIZE = 32


def plan_fingerprint(stream: Description) -> str:
    """A digest of the plan's repr and of the code of its functions (hex, 32 characters).

    Computed once per plan object among the last 32 (a plan of 1000 sources
    takes about 10 ms).

    >>> from combinators.streams import from_iterable, mix
    >>> a = plan_fingerprint(mix(from_iterable([1]), from_iterable([2])))
    >>> a == plan_fingerprint(mix(from_iterable([1]), from_iterable([2]))), a == plan_fingerprint(from_iterable([1]))
    (True, False)
    """
    recent = _RECENT.get(id(stream))
    if recent is not None and recent[0] is stream:
        return recent[1]
    digest = hashlib.blake2b(repr(stream).encode(), digest_size=16)
    functions: list[Any] = []
    _callables(stream, functions)
    for fn in functions:
        fn = getattr(fn, "func", fn)  # functools.partial
        code = getattr(fn, "__code__", None)
        digest.update((_code_text(code) if code is not None else repr(type(fn))).encode())
    if len(_RECENT) >= _RECENT_SIZE:
        del _RECENT[next(iter(_RECENT))]
    _RECENT[id(stream)] = (stream, digest.hexdigest())
    return _RECENT[id(stream)][1]


def check_resume(state: Any, fingerprint: str, seed: int | None) -> None:
    """Raise `ResumeError` unless ``state`` is a run state of this format, plan and (if given) seed."""
    if not isinstance(state, dict) or not {"format", "seed", "plan", "root"} <= state.keys():
        msg = f"resume= takes a dict returned by Run.state(), got {type(state).__name__} {str(state)[:80]!r}"
        raise ResumeError(msg)
    if state["format"] != FORMAT:
        msg = f"the run state has format {state['format']!r}; this version of combinators reads format {FORMAT}"
        raise ResumeError(msg)
    if state["plan"] != fingerprint:
        msg = (f"the run state was taken from another plan (fingerprint {state['plan']}, this plan's is "
               f"{fingerprint}): the plan's description or the code of its functions changed")
        raise ResumeError(msg)
    if seed is not None and seed != state["seed"]:
        msg = f"seed={seed} differs from the seed of the run state ({state['seed']}); pass seed=None or the same seed"
        raise ResumeError(msg)
