"""Keymaps: a call's arguments to a pure key.

A keymap is called like the function it keys, ``hashmap()(1, "a", x=2)``, and
returns the same key in every process and under every ``PYTHONHASHSEED``
(klepto's default keys use ``hash()`` and change with the seed, so a
persistent archive misses in every new process). Bound to a function with
`Keymap.bind` (as `memoize` does), the arguments are first bound to the
signature with defaults applied, so ``f(1)``, ``f(1, 2)`` and ``f(a=1, b=2)``
give one key when ``b=2`` is the default.

Kinds (klepto's names): `hashmap` (a digest of the canonical encoding, the
default), `picklemap` (the canonical encoding itself: long, but readable by
`combinators.memo.encoding`), `stringmap` (a canonical text rendering) and
`keymap` (the raw argument values as a hashable tuple: memory caches only).
Options: ``typed`` (``3`` and ``3.0`` key apart), ``ignore`` (parameter
names or positions left out of the key) and ``round`` (float digits).
"""

from __future__ import annotations

import hashlib
import inspect
import math
from typing import Any, Callable, ClassVar

import attrs
import numpy as np
import xxhash
import enum

from combinators.errors import InvalidArgument, InvalidArgumentType, KeyingError
from combinators.memo.capture import signature as _signature
from combinators.memo.encoding import Encoder

__all__ = ["Keymap", "hashmap", "picklemap", "stringmap", "keymap", "ALGORITHMS"]

#: digest name -> function of bytes chunks to digest bytes; xxh3_128 is fast,
#: blake2b and sha256 are cryptographic (collision-resistant against an adversary).
ALGORITHMS: dict[str, Callable[[], Any]] = {
    "xxh3_128": xxhash.xxh3_128,
    "blake2b": lambda: hashlib.blake2b(digest_size=32),
    "sha256": hashlib.sha256,
}

_EMPTY = inspect.Parameter.empty
_ATOMS = frozenset({type(None), bool, int, float, str, bytes})
_ONE_SHOT = {"xxh3_128": xxhash.xxh3_128_digest}


def _check_ignore(value: Any) -> tuple:
    items = (value,) if isinstance(value, (str, int)) else tuple(value)
    for item in items:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            msg = f"ignore must hold parameter names or positions, got {item!r}"
            raise InvalidArgumentType(msg)
    return items


def _check_round(instance: Any, attribute: Any, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        msg = f"round must be an int number of decimal digits or None, got {value!r}"
        raise InvalidArgumentType(msg)


@attrs.frozen
class Keymap:
    """Base of the keymaps: options shared by every kind.

    Calling a keymap keys positional and keyword arguments as given (no
    signature); `bind` returns the faster, signature-aware key function that
    `memoize` uses. Raises `KeyingError` naming the parameter and its type when
    an argument has no canonical encoding.
    """

    typed: bool = False
    ignore: tuple = attrs.field(default=(), converter=_check_ignore)
    round: int | None = attrs.field(default=None, validator=_check_round)

    #: whether keys are bytes (storable in a persistent archive)
    produces_bytes: ClassVar[bool] = True

    @property
    def encoder(self) -> Encoder:
        return Encoder(typed=self.typed, round=self.round)

    def value_encoder(self) -> Callable[[Any, list, str], None]:
        """The function appending one argument's encoding to the chunks of a key."""
        return self.encoder.encode

    def finish(self, parts: list) -> Any:
        """Turn the encoded chunks of one call into the key."""
        raise NotImplementedError

    def header(self) -> bytes:
        """Bytes that make keys of differently configured keymaps differ."""
        return f"{type(self).__name__}:{int(self.typed)}:{self.round}|".encode()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        encode, ignore = self.value_encoder(), set(self.ignore)
        parts = [self.header()]
        for i, value in enumerate(args):
            if i not in ignore:
                parts.append(b"#%d=" % i)
                encode(value, parts, f"at position {i}")
        for name in sorted(kwargs):
            if name not in ignore:  # the name's length delimits it: no name can swallow a value and the next name
                label = name.encode("utf-8", "surrogatepass")
                parts.append(b"@%d:" % len(label) + label + b"=")
                encode(kwargs[name], parts, repr(name))
        return self.finish(parts)

    def bind(self, fn: Callable) -> Callable[[tuple, dict], Any]:
        """A function ``key(args, kwargs)`` keying calls of ``fn`` by its signature.

        Raises `InvalidArgument` if ``ignore`` names a parameter ``fn`` lacks.
        """
        binder, names = _binder(fn)
        keep = _kept(names, self.ignore, fn)
        header, encode, finish = self.header(), self.value_encoder(), self.finisher()
        plan = [(i, names[i].encode() + b"=", repr(names[i])) for i in keep]
        atoms = type(self).value_encoder is Keymap.value_encoder  # ints and strs may skip the encoder
        is_method = _is_method(names)

        def key(args: tuple, kwargs: dict) -> Any:
            values = binder(args, kwargs)
            parts = [header]
            i = -1
            try:
                for i, prefix, label in plan:
                    value = values[i]
                    if atoms and type(value) is int:  # the encoder's bytes for an int, inlined
                        parts.append(b"%si%d;" % (prefix, value))
                    else:
                        parts.append(prefix)
                        encode(value, parts, label)
            except KeyingError as error:
                if i == 0 and is_method:
                    raise KeyingError(_self_hint(fn, values[0], str(error))) from None
                raise
            return finish(parts)

        return key

    def bind_memory(self, fn: Callable) -> Callable[[tuple, dict], Any] | None:
        """A cheaper in-process key for calls whose kept arguments are plain atoms, or ``None``.

        For ``None``, ``bool``, ``int``, ``float``, ``str`` and ``bytes``
        arguments, Python equality agrees with the untyped canonical encoding
        (``1 == 1.0 == True``), so a tuple of the values is a valid memory-cache
        key; the function returns ``None`` for any other call, which is then
        keyed by bytes, and for ``-0.0`` (which keys apart from ``0.0``). Not
        offered with ``typed`` or ``round``.
        """
        if self.typed or self.round is not None or not self.produces_bytes:
            return None
        binder, names = _binder(fn)
        keep = _kept(names, self.ignore, fn)
        atoms = _ATOMS

        everything = keep == list(range(len(names)))
        params = _signature(fn).parameters.values()
        simple = all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
        n = len(names) if simple else -1  # all arguments given positionally: already bound

        def key(args: tuple, kwargs: dict) -> tuple | None:
            values = args if not kwargs and len(args) == n else binder(args, kwargs)
            out = values if everything else tuple([values[i] for i in keep])
            for value in out:
                kind = type(value)
                if kind not in atoms or (kind is float and not value and math.copysign(1.0, value) < 0):
                    return None
            return out

        return key

    def finisher(self) -> Callable[[list], Any]:
        """`finish`, or a faster equivalent for this keymap."""
        return self.finish


def _is_method(names: list[str]) -> bool:
    """Whether the first parameter is a method's instance (named ``self`` by convention)."""
    return bool(names) and names[0] == "self"


def _self_hint(fn: Callable, instance: Any, detail: str) -> str:
    """The message of a `KeyingError` on a method's ``self``: key the instance by its contents.

    ``ignore="self"`` is not offered: every instance would then be served the
    results computed for another one.
    """
    kind = type(instance).__qualname__
    detail = detail.split(" (use ignore=")[0]
    return (f"cannot key 'self' of the method {fn.__qualname__}: {detail}. A method's result depends on its "
            f"instance, so key the instance by its contents: make {kind} an attrs class or a dataclass (keyed by "
            f"its fields), or memoize a function of the values the method reads, with name= (one archive "
            f"namespace per such function) and keymap= as needed. Do not use ignore='self': every instance "
            f"would be served the results of another")


def _kept(names: list[str], ignore: tuple, fn: Callable) -> list[int]:
    """Indices of the parameters that are part of the key."""
    dropped = set()
    for item in ignore:
        if isinstance(item, int):
            if not -len(names) <= item < len(names):
                msg = f"ignore position {item} is out of range for {_label(fn)}{_signature(fn)}"
                raise InvalidArgument(msg)
            dropped.add(item % len(names))
        elif item in names:
            dropped.add(names.index(item))
        else:
            msg = f"ignore names {item!r}, which is not a parameter of {_label(fn)}{_signature(fn)}"
            raise InvalidArgument(msg)
    return [i for i in range(len(names)) if i not in dropped]


def _binder(fn: Callable) -> tuple[Callable[[tuple, dict], tuple], list[str]]:
    """A function binding ``(args, kwargs)`` to a tuple of parameter values, and the names.

    ``*args`` binds to a tuple and ``**kwargs`` to a dict, under their names;
    defaults are applied. Plain positional calls take a fast path.
    """
    signature = _signature(fn)
    params = list(signature.parameters.values())
    names = [p.name for p in params]
    simple = all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    defaults = tuple(p.default for p in params)
    first_default = next((i for i, d in enumerate(defaults) if d is not _EMPTY), len(params))
    n = len(params)

    def general(args: tuple, kwargs: dict) -> tuple:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:
            msg = f"cannot bind the arguments to {_label(fn)}{signature}: {error}"
            raise InvalidArgumentType(msg) from None
        bound.apply_defaults()
        return tuple(bound.arguments[name] for name in names)

    if not simple:
        return general, names

    def fast(args: tuple, kwargs: dict) -> tuple:
        if not kwargs and first_default <= len(args) <= n:
            return args + defaults[len(args):]
        return general(args, kwargs)

    return fast, names


def _label(fn: Callable) -> str:
    """A callable's name for messages (a partial or an instance has no ``__qualname__``)."""
    return getattr(fn, "__qualname__", None) or repr(fn)


@attrs.frozen
class HashMap(Keymap):
    """Keys are a digest of the canonical encoding (see `hashmap`)."""

    algorithm: str = attrs.field(default="xxh3_128", validator=attrs.validators.in_(ALGORITHMS))

    def header(self) -> bytes:
        return super().header() + self.algorithm.encode() + b"|"

    def finisher(self) -> Callable[[list], bytes]:
        one_shot, finish = _ONE_SHOT.get(self.algorithm), self.finish
        if one_shot is None:
            return finish
        return lambda parts: finish(parts) if memoryview in map(type, parts) else one_shot(b"".join(parts))

    def finish(self, parts: list) -> bytes:
        one_shot = _ONE_SHOT.get(self.algorithm)
        if one_shot is not None and memoryview not in map(type, parts):
            return one_shot(b"".join(parts))
        hasher = ALGORITHMS[self.algorithm]()
        for part in parts:
            hasher.update(part)
        return hasher.digest()


@attrs.frozen
class PickleMap(Keymap):
    """Keys are the canonical encoding itself (see `picklemap`)."""

    def finish(self, parts: list) -> bytes:
        return b"".join(parts)


@attrs.frozen
class StringMap(Keymap):
    """Keys are a canonical text rendering, UTF-8 encoded (see `stringmap`)."""

    def value_encoder(self) -> Callable[[Any, list, str], None]:
        encoder = self.encoder

        def encode(value: Any, parts: list, path: str) -> None:
            parts.append(_text(value, encoder, path).encode("utf-8", "backslashreplace") + b";")

        return encode

    def finish(self, parts: list) -> bytes:
        return b"".join(parts)


@attrs.frozen
class ObjectMap(Keymap):
    """Keys are the raw argument values as a hashable tuple (see `keymap`)."""

    produces_bytes: ClassVar[bool] = False

    def finish(self, parts: list) -> tuple:
        return tuple(parts[1:])

    def bind(self, fn: Callable) -> Callable[[tuple, dict], tuple]:
        binder, names = _binder(fn)
        keep = _kept(names, self.ignore, fn)
        typed, digits = self.typed, self.round

        def key(args: tuple, kwargs: dict) -> tuple:
            values = binder(args, kwargs)
            out = tuple(_raw(values[i], names[i], typed, digits) for i in keep)
            try:
                hash(out)
            except TypeError:
                bad = next(i for i in keep if not _hashable(values[i]))
                msg = (f"cannot key argument {names[bad]!r} of type {type(values[bad]).__qualname__} "
                       f"({values[bad]!r:.60}): keymap() needs hashable arguments")
                raise KeyingError(_self_hint(fn, values[0], msg) if bad == 0 and _is_method(names) else msg) from None
            return out

        return key

    def __call__(self, *args: Any, **kwargs: Any) -> tuple:
        ignore = set(self.ignore)
        kept = [v for i, v in enumerate(args) if i not in ignore]
        kept += [Keyword(k, kwargs[k]) for k in sorted(kwargs) if k not in ignore]
        out = tuple(_raw(v, "", self.typed, self.round) for v in kept)
        if not _hashable(out):
            msg = f"keymap() needs hashable arguments, got {args!r:.60} {kwargs!r:.60}"
            raise KeyingError(msg)
        return out


@attrs.frozen
class Keyword:
    """A keyword argument in a `keymap` key: never equal to a positional tuple ``(name, value)``."""

    name: str
    value: Any


@attrs.frozen
class _Items:
    """A dict argument in a `keymap` key: never equal to a frozenset of pairs passed as such."""

    items: frozenset


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _raw(value: Any, name: str, typed: bool, digits: int | None) -> Any:
    if type(value) is dict:  # a **kwargs parameter
        value = _Items(frozenset(value.items()))
    if digits is not None and isinstance(value, float):
        value = round(value, digits)
    return (type(value), value) if typed else value


def _text(value: Any, encoder: Encoder, path: str) -> str:
    """A canonical text rendering: sorted dicts and sets, arrays and objects by digest."""
    kind = type(value)
    prefix = f"{kind.__name__}:" if encoder.typed else ""
    if value is None or kind in (str, bytes, int):
        return prefix + repr(value)
    if kind is bool:
        return prefix + (repr(value) if encoder.typed else str(int(value)))
    if kind is float and value != value:
        return prefix + ("nan" if math.copysign(1.0, value) > 0 else "-nan")
    if kind is float:
        parts: list = []
        encoder.scalar_float(value, parts)
        as_int = parts[0].startswith(b"i")
        return prefix + (parts[0][1:-1].decode() if as_int else repr(round(value, encoder.round) + 0.0 if encoder.round is not None else value))
    if kind in (list, tuple):
        inner = ", ".join(_text(v, encoder, f"{path}[{i}]") for i, v in enumerate(value))
        return f"[{inner}]" if kind is list else f"({inner}{',' if len(value) == 1 else ''})"
    if kind is dict:
        items = sorted(f"{_text(k, encoder, path)}: {_text(v, encoder, f'{path}[{k!r:.40}]')}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if kind in (set, frozenset):
        return f"{kind.__name__}({{{', '.join(sorted(_text(v, encoder, path) for v in value))}}})"
    parts = []
    encoder.encode(value, parts, path)  # raises KeyingError for what cannot be keyed
    digest = _digest(parts)
    if isinstance(value, np.ndarray):
        return f"array(dtype={value.dtype.str}, shape={value.shape}, xxh3_128={digest})"
    if isinstance(value, enum.Enum):
        return f"{kind.__qualname__}.{value.name}"
    return f"{kind.__qualname__}(xxh3_128={digest})"


def _digest(parts: list) -> str:
    hasher = xxhash.xxh3_128()
    for part in parts:
        hasher.update(part)
    return hasher.hexdigest()


def hashmap(typed: bool = False, ignore: Any = (), round: int | None = None, algorithm: str = "xxh3_128") -> HashMap:
    """A keymap whose keys are a digest of the arguments' canonical encoding.

    ``algorithm`` is ``"xxh3_128"`` (the default: 16 bytes, 30+ GB/s, not
    collision-resistant against an adversary), ``"blake2b"`` (32 bytes,
    cryptographic) or ``"sha256"``. Keys are 16 or 32 bytes.

    Raises `KeyingError` (naming the parameter and its type) for an argument
    with no canonical encoding, `InvalidArgument` for an unknown ``algorithm``.

    >>> k = hashmap()
    >>> k(1, "a", x=2) == k(1, "a", x=2.0) != hashmap(typed=True)(1, "a", x=2.0)
    True
    >>> len(k(1)), len(hashmap(algorithm="blake2b")(1))
    (16, 32)
    >>> import numpy as np
    >>> a = np.zeros(1000); b = a.copy(); b[500] = 1.0
    >>> k(a) != k(b)
    True
    """
    if algorithm not in ALGORITHMS:
        msg = f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}"
        raise InvalidArgument(msg)
    return HashMap(typed=typed, ignore=ignore, round=round, algorithm=algorithm)


def picklemap(typed: bool = False, ignore: Any = (), round: int | None = None) -> PickleMap:
    """A keymap whose keys are the arguments' canonical encoding itself.

    Not ``pickle.dumps``: pickle's bytes depend on dict insertion order and on
    which equal objects are the same object, so they are not pure keys. Keys
    grow with the arguments (LMDB archives store long keys by digest).

    >>> picklemap()(1, b=[2.5])
    b'PickleMap:0:None|#0=i1;@1:b=[\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00f\\x00\\x00\\x00\\x00\\x00\\x00\\x04@'
    """
    return PickleMap(typed=typed, ignore=ignore, round=round)


def stringmap(typed: bool = False, ignore: Any = (), round: int | None = None) -> StringMap:
    """A keymap whose keys are a printable rendering of the canonical encoding.

    Array contents appear as their xxh3_128 digest, so keys stay short and
    arrays differing anywhere key apart (klepto's repr-based keys elide the
    middle of large arrays and collide).

    >>> stringmap(round=2)(0.123456, name="x", s={3, 1})
    b"StringMap:0:2|#0=0.12;@4:name='x';@1:s=set({1, 3});"
    """
    return StringMap(typed=typed, ignore=ignore, round=round)


def keymap(typed: bool = False, ignore: Any = (), round: int | None = None) -> ObjectMap:
    """A keymap whose keys are the argument values themselves (memory caches only).

    The fastest keys, for `memoize` without a persistent archive; arguments
    must be hashable. Keys are tuples, not bytes, so an `LMDBArchive` refuses
    them.

    >>> keymap()(1, "a", b=2)
    (1, 'a', Keyword(name='b', value=2))
    >>> keymap(typed=True)(1)
    ((<class 'int'>, 1),)
    """
    return ObjectMap(typed=typed, ignore=ignore, round=round)
