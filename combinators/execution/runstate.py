"""The run state: what identifies it (format, seed, plan fingerprint) and how the items it holds are encoded.

A run state (`~combinators.execution.run.Run.state`) is a JSON dict
``{"format", "seed", "plan", "items", "root", "counts"}``; ``root`` nests the
state of every open node activation (docs/guide/decisions.md, section 4).
This module checks that a state fits the run asked to resume it
(`check_resume`), and encodes the items a state holds (partial batches,
shuffle buffers, caches) without pickle (`encode`, `decode`).

Items are packed by `combinators.packing` (msgpack with extension types
for numpy arrays, numpy scalars, tuples kept as tuples and complex numbers:
the codec of the ``"numpy"`` memo serializer), then base64 text so the
state stays JSON. Decoding runs no code.

What round-trips exactly: ``None``, ``bool``, ``int`` (64 bits), ``float``,
``complex``, ``str``, ``bytes``, lists, tuples and dicts of them, numpy
arrays of any non-object dtype and numpy scalars. Anything else raises
`RunStateError` naming its type.

>>> value = [{"x": np.arange(3, dtype=np.int16)}, (1, "a", b"b", None), np.float32(1.5)]
>>> back = decode(encode(value))
>>> back[0]["x"].dtype, back[1], type(back[2]).__name__
(dtype('int16'), (1, 'a', b'b', None), 'float32')
>>> encode([{1, 2}])
Traceback (most recent call last):
...
combinators.errors.RunStateError: a run state cannot hold an item of type set (inside a list); it holds arrays, numbers, str, bytes, None and lists, tuples and dicts of them
"""

from __future__ import annotations

import base64
import hashlib
import types
from typing import Any

import attrs
import numpy as np

from combinators.plan.description import Description, callable_repr
from combinators.errors import ResumeError, RunStateError
from combinators.packing import TooDeep, Unpackable, pack, unpack

__all__ = ["FORMAT", "plan_fingerprint", "check_resume", "encode", "decode"]

#: the version of the run-state format this library writes and reads (2: with a checksum, ``check``)
FORMAT = 2


def _code_text(code: types.CodeType) -> str:
    """A function's code without its file name or line numbers (so moving it keeps its fingerprint)."""
    consts = [_code_text(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    return f"{code.co_code.hex()}|{consts}|{code.co_names}|{code.co_varnames}"


def _feed(value: Any, digest: Any, texts: dict[int, bytes]) -> None:
    """Hash a description into ``digest`` field by field, without building its whole repr.

    Descriptions, sequences and dicts are walked; every other value is one
    length-prefixed text (so ``[1, 23]`` and ``[12, 3]`` differ): a function
    or an array its name or repr as the plan's repr shows it and its
    `_part_text` (hashed once per object: ``texts`` keeps them by id), any
    other value its repr. Memory stays that of the deepest path, not of the
    plan's repr (a mix of 1000 sources would build a 130 KB one).
    """
    if isinstance(value, Description):
        digest.update(type(value).__qualname__.encode() + b"(")
        for field in attrs.fields(type(value)):
            digest.update(field.name.encode() + b"=")
            _feed(getattr(value, field.name), digest, texts)
        digest.update(b")")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[" if isinstance(value, list) else b"(")
        for v in value:
            _feed(v, digest, texts)
        digest.update(b"]")
    elif isinstance(value, dict):
        digest.update(b"{")
        for k, v in value.items():
            _feed_text(digest, repr(k).encode())
            _feed(v, digest, texts)
        digest.update(b"}")
    elif isinstance(value, np.ndarray) or (callable(value) and not isinstance(value, type)):
        text = texts.get(id(value))
        if text is None:
            shown = (repr(value) if isinstance(value, np.ndarray) else callable_repr(value)).encode()
            text = texts[id(value)] = hashlib.blake2b(shown + b"|" + _part_text(value), digest_size=16).digest()
        _feed_text(digest, text)
    else:
        _feed_text(digest, repr(value).encode())


def _feed_text(digest: Any, text: bytes) -> None:
    """One value's text, prefixed by its length (so that consecutive values cannot run together)."""
    digest.update(b"%d:" % len(text) + text)


def _part_text(part: Any) -> bytes:
    if isinstance(part, np.ndarray):  # dtype, shape and a sample of at most 4096 elements: O(1) in the rows
        flat = part.reshape(-1)
        sample = flat[:: max(1, len(flat) // 4096)] if flat.size else flat
        return f"{part.dtype.str}{part.shape}".encode() + np.ascontiguousarray(sample).tobytes()
    fn = getattr(part, "func", part)  # functools.partial
    code = getattr(fn, "__code__", None)
    return (_code_text(code) if code is not None else repr(type(fn))).encode()


#: fingerprints of the plans seen last, by id (the plan is kept so that its id is not reused)
_RECENT: dict[int, tuple[Description, str]] = {}
_RECENT_SIZE = 32


def plan_fingerprint(stream: Description) -> str:
    """A digest of the plan's fields, of the code of its functions and of a sample of its arrays (hex, 32 characters).

    An array counts by dtype, shape and up to 4096 evenly spaced elements,
    so fingerprinting costs the same for 10 million rows as for 10 (an edit
    that misses the sample, and keeps numpy's summarized repr, goes unseen).

    Computed once per plan object among the last 32 (a plan of 1000 sources
    takes about 10 ms).

    >>> from combinators.plan.mixes import mix
    >>> from combinators.plan.sources import from_iterable
    >>> a = plan_fingerprint(mix(from_iterable([1]), from_iterable([2])))
    >>> a == plan_fingerprint(mix(from_iterable([1]), from_iterable([2]))), a == plan_fingerprint(from_iterable([1]))
    (True, False)
    """
    recent = _RECENT.get(id(stream))
    if recent is not None and recent[0] is stream:
        return recent[1]
    digest = hashlib.blake2b(digest_size=16)
    _feed(stream, digest, {})
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


def encode(items: Any) -> str:
    """``items`` (a list of items, usually) as base64 text of their msgpack form.

    Raises `RunStateError` naming the type of the first value it cannot encode.
    """
    try:
        return base64.b64encode(pack(items)).decode("ascii")
    except Unpackable as refused:
        bad = refused.value
        what = type(bad).__qualname__ + (" of object dtype" if isinstance(bad, (np.ndarray, np.generic)) else "")
        inside = "" if bad is items else f" (inside a {type(items).__qualname__})"
        msg = (f"a run state cannot hold an item of type {what}{inside}; it holds arrays, numbers, str, bytes, "
               "None and lists, tuples and dicts of them")
        raise RunStateError(msg) from None
    except (OverflowError, TypeError, TooDeep) as error:
        msg = f"a run state cannot hold {type(items).__qualname__} items: {error}"
        raise RunStateError(msg) from None


def decode(text: str) -> Any:
    """The items `encode` turned into ``text``; raises `RunStateError` for text it did not write."""
    try:
        return unpack(base64.b64decode(text.encode("ascii"), validate=True))
    except Exception as error:  # noqa: BLE001 - text it did not write may raise anything while decoding
        msg = f"a run state holds items this version cannot read: {error}"
        raise RunStateError(msg) from None
