"""Checking a run state before resuming from it: a JSON Schema drawn from the plan, and a checksum.

A state handed to ``iterate(plan, resume=state)`` may come from a file that
was edited, damaged or written by someone hostile. Before anything runs, it
is validated against a JSON Schema (`jsonschema`, draft 2020-12) built from
the plan (`state_schema`): every field has its type and range, and the
plan's shape bounds the rest (a mix's stream indices and slot count, a
transform's state by its kind, ``take``'s count by its ``n``, Generator
states as numpy's PCG64 writes them; the items a shuffle buffer or cache
holds must decode, and fit the buffer). Then its checksum (``check``, a
BLAKE2b digest of every other field, written by `seal`) must match, so a
state changed in any field is refused even when it still fits the schema.
Every refusal is a `ResumeError` naming the field, as a JSON path.

>>> from combinators.plan.sources import from_iterable
>>> plan = from_iterable(range(5))
>>> state = seal({"format": 2, "seed": 1, "plan": "0" * 32, "items": 2, "root": {"received": 2}, "counts": []})
>>> validate(state, plan)
>>> validate({**state, "root": {"received": -1}}, plan)
Traceback (most recent call last):
...
combinators.errors.ResumeError: the run state's field $.root.received is invalid: -1 is less than the minimum of 0
>>> validate({**state, "items": 3}, plan)
Traceback (most recent call last):
...
combinators.errors.ResumeError: the run state's field $.check does not match its other fields: the state was edited or damaged after it was taken
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator

import jsonschema
import jsonschema.exceptions
import numpy as np

from combinators.errors import ResumeError, RunStateError
from combinators.execution import runstate
from combinators.execution.blocks import reshapes, transforms_on_blocks
from combinators.plan.block_path import block_leaf, block_schema
from combinators.plan.mixes import Mix, RoundRobin
from combinators.plan.sources import FromArrays, FromIterable, RowSource, is_leaf
from combinators.plan.stream import Apply, Chain, Stream
from combinators.plan.transforms import (
    Batch,
    Cache,
    Filter,
    Map,
    Shuffle,
    Take,
    Unbatch,
)
from combinators.sampling.working_set import AHEAD

__all__ = ["seal", "state_schema", "validate"]

_U64, _U128 = 2**64 - 1, 2**128 - 1
_COUNT = {"type": "integer", "minimum": 0, "maximum": _U64}
_FLAG = {"type": "boolean"}
_WEIGHT = {"type": "number", "minimum": 0, "maximum": 1e308}
_PCG64 = {
    "type": "object",
    "properties": {
        "bit_generator": {"const": "PCG64"},
        "state": {"type": "object", "properties": {"state": {"type": "integer", "minimum": 0, "maximum": _U128},
                                                   "inc": {"type": "integer", "minimum": 0, "maximum": _U128}},
                  "required": ["state", "inc"], "additionalProperties": False},
        "has_uint32": {"enum": [0, 1]},
        "uinteger": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
    },
    "required": ["bit_generator", "state", "has_uint32", "uinteger"], "additionalProperties": False,
}
#: the uniforms a mix draws at once (`combinators.sampling.working_set`): ``used`` counts them
_BLOCK = 4096


#: list items encoded at once by `_json_pieces` (a list of a mix's counts per stream is encoded in slices of this many)
_SLICE = 256


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _json_pieces(value: Any) -> Iterator[str]:
    """`_dumps` of ``value`` in pieces whose concatenation is that text, none longer than a slice of a list.

    Dicts with str keys are taken key by key (sorted, as ``sort_keys``) and
    lists beyond `_SLICE` items a slice at a time, so that encoding a mix of
    a million streams never holds the million pieces of its counts at once
    (``json.dumps`` accumulates every piece before it joins them). Anything
    else is `_dumps` itself.

    >>> value = {"b": [1.5, float("nan")] * 300, "a": {"x": None, "y": (True, "é")}, "c": {1: 2}}
    >>> "".join(_json_pieces(value)) == _dumps(value)
    True
    """
    if type(value) is dict and value and all(type(key) is str for key in value):
        for i, key in enumerate(sorted(value)):
            yield ("{" if i == 0 else ",") + _dumps(key) + ":"
            yield from _json_pieces(value[key])
        yield "}"
    elif type(value) in (list, tuple) and len(value) > _SLICE:
        for start in range(0, len(value), _SLICE):
            yield ("[" if start == 0 else ",") + _dumps(value[start : start + _SLICE])[1:-1]
        yield "]"
    else:
        yield _dumps(value)


def _digest(state: dict[str, Any]) -> str:
    """The BLAKE2b digest of ``state``'s fields but ``check``, as sorted compact JSON (`_json_pieces`)."""
    digest = hashlib.blake2b(digest_size=16)
    for piece in _json_pieces({key: value for key, value in state.items() if key != "check"}):
        digest.update(piece.encode())
    return digest.hexdigest()


def seal(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with its checksum ``check``: a digest of its other fields, as JSON (so it survives a JSON trip)."""
    state["check"] = _digest(state)
    return state


def _object(properties: dict[str, Any], required: Any = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties if required is None else required),
            "additionalProperties": False}


def _array(*items: Any) -> dict[str, Any]:
    """A fixed-length array (a tuple of fields)."""
    return {"type": "array", "prefixItems": list(items), "minItems": len(items), "maxItems": len(items)}


def _index(n: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": 0, "maximum": n - 1}


def _received(node: Stream) -> dict[str, Any]:
    """``{"received": n}``: the items the consumer received (at most a sized source's length)."""
    count = dict(_COUNT)
    if isinstance(node, (FromArrays, RowSource)) or (isinstance(node, FromIterable) and hasattr(node.items, "__len__")):
        count["maximum"] = len(node.items) if isinstance(node, FromIterable) else len(node)
    return _object({"received": count})


def _items(at_most: int | None) -> dict[str, Any]:
    """Items a transform holds (`runstate.encode` text): they must decode to a list of at most ``at_most``."""
    return {"type": "string", "decodesToItems": at_most}


def _cell(transform: Any) -> dict[str, Any]:
    """The state of one transform (`combinators.execution.apply.cell_state`)."""
    if isinstance(transform, Take):
        return _object({"passed": {"type": "integer", "minimum": 0, "maximum": transform.n}}, required=[])
    if isinstance(transform, (Map, Filter)):
        return _object({"position": _COUNT}, required=[])
    if isinstance(transform, Unbatch):
        return _object({"items": _items(None)}, required=[])
    if isinstance(transform, Shuffle):
        order = {"anyOf": [{"type": "null"}, {"type": "array", "items": _index(transform.buffer_size),
                                              "maxItems": transform.buffer_size, "uniqueItems": True}]}
        full = _object({"rng": _PCG64, "items": _items(transform.buffer_size), "order": order})
        return {"anyOf": [_object({}), {**full, "orderWithinItems": True}]}
    if isinstance(transform, Cache):
        return {"anyOf": [_object({}), _object({"rng": _PCG64, "items": _items(transform.n_cache), "filling": _FLAG})]}
    return _object({})  # batch, tuples, keras_tuples, progress: nothing between items


def _among(indices: list[int]) -> dict[str, Any]:
    """One of ``indices`` (sorted), as integer ranges: an ``enum`` of 1000 indices is checked element by element."""
    ranges: list[list[int]] = []
    for index in indices:
        if ranges and ranges[-1][1] == index - 1:
            ranges[-1][1] = index
        else:
            ranges.append([index, index])
    variants = [{"type": "integer", "minimum": low, "maximum": high} for low, high in ranges]
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def _children(node: Stream, make: Any) -> list[tuple[list[int], dict[str, Any]]]:
    """``[(indices, schema)]``: the node's children grouped by the schema ``make(child)`` gives them."""
    groups: dict[str, tuple[list[int], dict[str, Any]]] = {}
    for index, child in enumerate(node.streams):
        schema = make(child)
        groups.setdefault(json.dumps(schema, sort_keys=True), ([], schema))[0].append(index)
    return list(groups.values())


def _child_entry(node: Stream, head: list[dict[str, Any]], tail: list[dict[str, Any]], nullable_child: bool) -> Any:
    """An array ``[index, *head, child state, *tail]`` whose child state fits the child at ``index``."""
    variants = []
    for indices, schema in _children(node, _activation):
        child = {"anyOf": [{"type": "null"}, schema]} if nullable_child else schema
        variants.append(_array(_among(indices), *head, child, *tail))
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def _working_set(node: Mix, snapshot: bool) -> dict[str, Any]:
    """A mix's working set (`WorkingSet.state`, or `snapshot_state` on the block path, whose children are
    not saved)."""
    n = len(node.streams)
    slots = n if node.n_active is None else node.n_active
    index = _index(n)
    if snapshot:
        slot, entry = _array(index, _COUNT, _COUNT, _COUNT, {"type": "null"}), _array(index, _COUNT, _COUNT,
                                                                                       {"type": "null"})
    else:
        slot = _slot_entry(node)
        entry = _queue_entry(node)
    scheduled = {} if node.segments is None else {"schedule": _array(_index(len(node.segments)), _COUNT)}
    return _object({
        **scheduled,
        "activate": _PCG64, "uniforms_from": _PCG64, "used": {"type": "integer", "minimum": 0, "maximum": _BLOCK},
        "slots": {"type": "array", "items": {"anyOf": [{"type": "null"}, slot]}, "minItems": slots, "maxItems": slots},
        "queue": {"type": "array", "items": entry, "maxItems": AHEAD},
        "pool": {"type": "array", "items": _array(index, _WEIGHT), "maxItems": n},
        "pruned": {"type": "array", "items": index, "uniqueItems": True, "maxItems": n},
        "active_weight": _WEIGHT,
        "empty_run": {"type": "array", "items": index, "uniqueItems": True, "maxItems": n},
        "opened": _COUNT,
        "suspended": {"type": "array", "items": _array(index, _COUNT, _COUNT), "maxItems": n},
        "earlier": {"type": "array", "items": _array(index, _COUNT), "maxItems": n},
    })


def _slot_entry(node: Mix) -> Any:
    """``[index, number, received, left, child state]``."""
    return _child_entry(node, [_COUNT, _COUNT, _COUNT], [], False)


def _queue_entry(node: Mix) -> Any:
    """``[index, number, budget, child state]`` (the state of an activation not started yet)."""
    variants = [_array(_among(indices), _COUNT, _COUNT, schema) for indices, schema in _children(node, _activation)]
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def _specific(node: Stream) -> dict[str, Any] | None:
    """The state of an open activation of a composite ``node``, beyond ``{"received": n}`` (None: only that)."""
    if isinstance(node, Mix):
        if block_schema(node) is not None:
            return _object({"block_mix": _working_set(node, True),
                            "counts": {"type": "array", "items": _COUNT, "minItems": len(node.streams),
                                       "maxItems": len(node.streams)},
                            "before": _COUNT, "rows": _COUNT})
        return _object({"mix": _object({"next": _COUNT, "working_set": _working_set(node, False)})})
    if block_schema(node) is not None:  # a chain on the block path: replayed
        return None
    if isinstance(node, Chain):
        variants = []
        for indices, schema in _children(node, _activation):
            running = {"anyOf": [{"type": "null"}, _array(_COUNT, _COUNT, schema)]}
            variants.append(_object({"next": _COUNT, "index": _among(indices), "produced": _FLAG, "child": running}))
        ended = _object({"next": _COUNT, "index": {"const": len(node.streams)}, "produced": _FLAG,
                         "child": {"type": "null"}})
        return _object({"chain": {"anyOf": [*variants, ended]}})
    if isinstance(node, RoundRobin):
        n = len(node.streams)
        running = {"anyOf": [{"type": "null"}, *(_array(_COUNT, _COUNT, schema) for _, schema in _children(node, _activation))]}
        return _object({"round_robin": _object({
            "rng": _PCG64, "next": _COUNT, "order": {"type": "array", "items": _index(n), "maxItems": n, "uniqueItems": True},
            "turn": _COUNT, "produced": _FLAG,
            "activations": {"anyOf": [{"type": "null"}, {"type": "array", "items": running, "maxItems": n}]},
        })})
    if isinstance(node, Apply):
        return _apply(node)
    return None


def _apply(node: Apply) -> dict[str, Any]:
    """The state of transforms over a node: on blocks (`transforms_on_blocks`) over a block node, with an
    ``unbatch`` or ``filter`` there (`combinators.execution.interpreter._apply_reshaped`), or as a version
    that ran those item by item wrote it."""
    if block_schema(node.stream) is None:
        return _apply_fields(node, 0, False)
    legacy = _apply_fields(node, transforms_on_blocks(node.transforms, True, False), True)
    first = transforms_on_blocks(node.transforms, True)
    if not any(map(reshapes, node.transforms[:first])):
        return legacy
    return {"anyOf": [_apply_fields(node, first, True, reshaped=True), legacy]}


def _apply_fields(node: Apply, first: int, blocks: bool, reshaped: bool = False) -> dict[str, Any]:
    cells = [_cell(t) for t in node.transforms[first:]]
    fields = {"child": _activation(node.stream),
              "cells": {"type": "array", "prefixItems": cells, "minItems": len(cells), "maxItems": len(cells)}}
    if blocks:
        on_blocks = node.transforms[:first]
        unbatched = max((i for i, t in enumerate(on_blocks) if isinstance(t, Unbatch)), default=-1)
        takes = [t.n for t in on_blocks[unbatched + 1:] if isinstance(t, Take)]  # an unbatch hands on more rows
        fields["rows"] = {**_COUNT, "maximum": min(takes, default=_U64)}
        shuffles = [t for t in on_blocks if isinstance(t, Shuffle)]
        if shuffles:
            fields["shuffle"] = _object({"rng": _PCG64, "items": {"type": "string", "decodesToRows": shuffles[0].buffer_size},
                                         "input": _COUNT,
                                         "output": _COUNT, "drain": _FLAG})
        if reshaped:
            stages = first - isinstance(on_blocks[-1], Batch)
            fields["input"] = _COUNT
            fields["counts"] = {"type": "array", "items": _COUNT, "minItems": stages, "maxItems": stages}
    return _object({"apply": _object(fields)})


def _activation(node: Stream) -> dict[str, Any]:
    """The state of an open activation of ``node`` (`combinators.execution.interpreter.activation_state`)."""
    if is_leaf(node) and not block_leaf(node, True):
        return _received(node)  # a leaf activation; one over a row source runs on the block path in process
    specific = _specific(node)
    return _received(node) if specific is None else {"anyOf": [_received(node), specific]}


def _mix_paths(node: Stream, path: tuple[int, ...] = ()) -> Any:
    """``(path, number of streams)`` of every mix in the plan (paths as `open_node` numbers them)."""
    if isinstance(node, Mix):
        yield path, len(node.streams)
    for index, child in enumerate(node.children):
        yield from _mix_paths(child, (*path, index))


def _mix_counts(plan: Stream) -> dict[str, Any]:
    """An entry of ``counts``: ``[path of a mix, items taken from each of its streams]``."""
    variants = [_array({"const": list(path)}, {"type": "array", "items": _COUNT, "minItems": n, "maxItems": n})
                for path, n in _mix_paths(plan)]
    return {"anyOf": variants} if variants else {"not": {}}


def state_schema(plan: Stream) -> dict[str, Any]:
    """The JSON Schema of the run states of ``plan`` (its ``root`` nests like the plan)."""
    return _object({
        "format": {"const": runstate.FORMAT},
        "seed": {"type": "integer", "minimum": 0, "maximum": _U128},
        "plan": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "items": _COUNT,
        "root": {"anyOf": [_object({"done": {"const": True}}), _activation(plan)]},
        "counts": {"type": "array", "items": _mix_counts(plan)},
        "check": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    })


def _items_problem(items: Any, at_most: int | None) -> str | None:
    if not isinstance(items, list):
        return f"decodes to a {type(items).__name__}, not a list of items"
    if at_most is not None and len(items) > at_most:
        return f"holds {len(items)} items, more than {at_most}"
    return None


def _rows_problem(block: Any, at_most: int) -> str | None:
    """None, an array, or a mapping of arrays of one length (a shuffle buffer on the block path)."""
    if block is None:
        return None
    columns = list(block.values()) if isinstance(block, dict) else [block]
    if not columns or not all(isinstance(c, np.ndarray) and c.ndim >= 1 for c in columns):
        return f"decodes to a {type(block).__name__}, not a block of rows"
    if len({len(c) for c in columns}) != 1 or len(columns[0]) > at_most:
        return f"holds columns of {[len(c) for c in columns]} rows, not one length of at most {at_most}"
    return None


def _decoding(problem: Any, what: str) -> Any:
    """A custom keyword: the string is `runstate.encode` text whose value ``problem(value, argument)`` accepts."""
    def keyword(validator: Any, argument: Any, text: Any, schema: Any) -> Any:
        if not isinstance(text, str):
            return
        try:
            found = problem(runstate.decode(text), argument)
        except RunStateError as error:
            found = f"does not decode as {what}: {error}"
        if found is not None:
            yield jsonschema.exceptions.ValidationError(found)

    return keyword


def _order_within_items(validator: Any, wanted: bool, cell: Any, schema: Any) -> Any:
    """Custom keyword: a shuffle's drain order names only positions of its buffer."""
    if not (wanted and isinstance(cell, dict) and isinstance(cell.get("order"), list)):
        return
    try:
        size = len(runstate.decode(cell["items"]))
    except (RunStateError, TypeError):
        return  # refused by decodesToItems
    if any(not isinstance(i, int) or i >= size for i in cell["order"]):
        yield jsonschema.exceptions.ValidationError(f"order {cell['order']!r:.80} names positions beyond its "
                                                    f"{size} buffered items")


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    {"decodesToItems": _decoding(_items_problem, "items"), "decodesToRows": _decoding(_rows_problem, "rows"),
     "orderWithinItems": _order_within_items},
)

#: schemas of the plans seen last, by id (the plan is kept so that its id is not reused)
_RECENT: dict[int, tuple[Stream, Any]] = {}


def _validator(plan: Stream) -> Any:
    recent = _RECENT.get(id(plan))
    if recent is None or recent[0] is not plan:
        if len(_RECENT) >= 16:
            del _RECENT[next(iter(_RECENT))]
        recent = _RECENT[id(plan)] = (plan, _Validator(state_schema(plan)))
    return recent[1]


def validate(state: Any, plan: Stream) -> None:
    """Raise `ResumeError` naming the field (a JSON path) unless ``state`` fits ``plan``'s schema and its checksum.

    The envelope (format, plan fingerprint, seed) is checked by `runstate.check_resume` first, with its own words.
    """
    error = jsonschema.exceptions.best_match(_validator(plan).iter_errors(state))
    if error is not None:
        msg = f"the run state's field {error.json_path} is invalid: {error.message[:300]}"
        raise ResumeError(msg)
    if state["check"] != _digest(state):
        msg = "the run state's field $.check does not match its other fields: the state was edited or damaged after it was taken"
        raise ResumeError(msg)
