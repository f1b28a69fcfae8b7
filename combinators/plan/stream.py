"""The stream description, and what every stream has: a name, chains (``a | b``) and transforms (``s >> t``).

A stream is an immutable description (a frozen attrs value). Building one runs
nothing, opens nothing and draws no random number; an interpreter
(`combinators.iterate`) evaluates it, reached through one hook
(`set_interpreter`) so that descriptions import no executor. Sources are in
`combinators.plan.sources`, mixes and round-robins in `combinators.plan.mixes`.

>>> from combinators import from_iterable
>>> s = from_iterable([1, 2]) | from_iterable([3])
>>> s
chain(from_iterable([1, 2]), from_iterable([3]))
>>> list(s)
[1, 2, 3]
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Iterator

import attrs

from combinators.errors import InvalidArgument, InvalidArgumentType
from combinators.plan import checks
from combinators.plan.description import Description, call_repr
from combinators.plan.transforms import Progress, Transform, count_after, flatten_transforms, take

__all__ = ["Stream", "Chain", "Apply", "chain", "apply", "set_interpreter", "INFINITE"]

#: what `combinators.plan.lengths.size` returns for a stream known to be infinite
INFINITE = float("inf")

#: the interpreter ``iter(stream)`` runs (`combinators.execution.run.iterate`, set when it is imported)
_INTERPRETER: list[Callable[["Stream"], Iterator[Any]]] = []


def set_interpreter(iterate: Callable[["Stream"], Iterator[Any]]) -> None:
    """Make ``iter(stream)`` call ``iterate(stream)``: the one hook from descriptions to execution.

    `combinators.execution.run` sets it when it is imported (``import combinators`` does), so that
    the plan layer imports no executor.
    """
    _INTERPRETER[:] = [iterate]


def _check_name(_: Any, __: Any, value: Any) -> None:
    if value is not None and not (isinstance(value, str) and value):
        msg = f"a stream's name must be a non-empty string or None, got {value!r} ({type(value).__name__})"
        raise InvalidArgumentType(msg)


@attrs.frozen(eq=False, repr=False)
class Stream(Description):
    """Base class of every stream description.

    Operators are aliases of named functions: ``a | b`` is ``chain(a, b)``,
    ``s >> t`` is ``apply(s, t)``; ``iter(s)`` is ``combinators.iterate(s)``.

    Every stream has a ``name`` (``None`` unless given by `named`): a label
    for people, shown by ``explain()``, ``run.stats()``, progress bars and
    errors. It changes neither the items nor the seeds.
    """

    name: str | None = attrs.field(default=None, kw_only=True, validator=_check_name)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # every node's repr rebuilds its expression, name included: wrap each
        # subclass's own __repr__ once so that a name adds ``.named('...')``
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__repr__")
        if own is not None and not getattr(own, "adds_name", False):
            cls.__repr__ = _with_name(own)  # type: ignore[method-assign]

    def named(self, name: str | None) -> "Stream":
        """This stream with a ``name`` for people (``None`` removes it): same items, same seeds.

        Raises `InvalidArgumentType` unless ``name`` is a non-empty string or None.

        >>> from combinators import from_iterable
        >>> s = from_iterable([1, 2]).named("ones and twos")
        >>> s
        from_iterable([1, 2]).named('ones and twos')
        >>> s.name, list(s)
        ('ones and twos', [1, 2])
        """
        return attrs.evolve(self, name=name)

    def __or__(self, other: object) -> "Stream":
        return chain(self, other) if isinstance(other, Stream) else NotImplemented

    def __rshift__(self, transform: object) -> "Stream":
        return apply(self, transform) if isinstance(transform, Transform) else NotImplemented

    def cycle(self) -> "Stream":
        """Restart this stream forever; a pass that yields nothing ends it.

        >>> from combinators import from_iterable
        >>> list(from_iterable([1, 2]).cycle().take(5))
        [1, 2, 1, 2, 1]
        """
        return chain(self, cycle=True)

    def take(self, n: int) -> "Stream":
        """The first ``n`` items: ``self >> take(n)``.

        >>> from combinators import from_iterable
        >>> list(from_iterable(range(10)).take(3))
        [0, 1, 2]
        """
        return self >> take(n)

    def __len__(self) -> int:
        """The number of items, when known without running (see `combinators.length`).

        Raises `TypeError` (the Python convention for an unsized object) when
        the length depends on the items or the stream is infinite.

        >>> from combinators import from_iterable
        >>> len(from_iterable("abc") | from_iterable("d"))
        4
        """
        n = self._size()
        if not isinstance(n, int):
            msg = f"the length of {self!r} is not known without running it (use combinators.length(s), which returns None)"
            raise TypeError(msg)
        return n

    def __bool__(self) -> bool:
        return True  # a description is a value, not a container: never falsy, even when unsized

    def __iter__(self) -> Iterator[Any]:
        if not _INTERPRETER:
            msg = "iter(stream) needs combinators.execution (import combinators)"
            raise RuntimeError(msg)
        return _INTERPRETER[0](self)

    def _size(self) -> int | float | None:
        """The number of items if known without running: an int, `INFINITE`, or None (`combinators.plan.lengths.size`).

        Each kind of node says it from its fields and its children's sizes; a
        node kind that defines ``__len__`` (a source that knows its length) is
        that length, and any other is None.
        """
        own_len = type(self).__len__
        return own_len(self) if own_len is not Stream.__len__ else None

    @property
    def children(self) -> tuple["Stream", ...]:
        """The streams this one draws from (empty for a source)."""
        return ()


def _with_name(expression: Callable[[Stream], str]) -> Callable[[Stream], str]:
    @functools.wraps(expression)
    def __repr__(self: Stream) -> str:
        text = expression(self)
        if self.name is None:
            return text
        return f"({text}).named({self.name!r})" if isinstance(self, Apply) else f"{text}.named({self.name!r})"

    __repr__.adds_name = True  # type: ignore[attr-defined]
    return __repr__




def sum_or_cycle(sizes: list[Any], ends: bool) -> int | float | None:
    """A pass over every child: its total; forever (``not ends``): infinite if a pass yields an item."""
    if any(n is None for n in sizes):
        return None
    total = sum(sizes)
    if ends:
        return total
    return INFINITE if total > 0 else 0 if total == 0 else None


def _refuse_stream_list(value: Any, position: int, where: str) -> None:
    """Pescador's muxes take a list of streamers (``ChainMux([a, b])``); ours take them as arguments."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(x, Stream) for x in value):
        msg = (
            f"{where} got a {type(value).__name__} of {len(value)} streams as argument {position}; "
            f"pass streams as arguments: {where[:-2]}(*streams)"
        )
        raise InvalidArgumentType(msg)


def _streams_tuple(streams: Iterable[Any], where: str, allow_empty: bool = False) -> tuple[Stream, ...]:
    streams = tuple(streams)
    for position, s in enumerate(streams):
        _refuse_stream_list(s, position, where)
        if not isinstance(s, Stream):
            msg = f"{where} takes streams; argument {position} is {s!r} ({type(s).__name__})"
            raise InvalidArgumentType(msg)
    if not streams and not allow_empty:
        msg = f"{where} needs at least one stream"
        raise InvalidArgument(msg)
    return streams


@attrs.frozen(eq=False, repr=False)
class Chain(Stream):
    """Each stream to exhaustion, in order; with ``cycle``, again and again."""

    streams: tuple[Stream, ...] = attrs.field(converter=lambda s: _streams_tuple(s, "chain()", allow_empty=True))
    repeat: bool = False  # chain(..., cycle=True); not named cycle, which is the method

    @property
    def children(self) -> tuple[Stream, ...]:
        return self.streams

    def _size(self) -> int | float | None:
        return sum_or_cycle([s._size() for s in self.streams], ends=not self.repeat)

    def __repr__(self) -> str:
        return call_repr("chain", self.streams, {"cycle": True} if self.repeat else {})


def chain(*streams: Stream, cycle: bool = False) -> Stream:
    """Each stream in turn, to exhaustion (pescador's ChainMux); ``a | b`` is ``chain(a, b)``.

    Nested non-cycling chains flatten, so ``(a | b) | c == a | (b | c)``
    (a named chain stays a node of its own, so its name is kept).
    With ``cycle=True`` the whole chain restarts forever, with fresh
    activations; a pass that yields nothing ends it instead of spinning.
    ``chain()`` of no streams is an empty stream (as pescador's
    ``ChainMux([])``), cycled or not.

    Raises `InvalidArgumentType` for an argument that is not a stream (a
    list of streams says to pass them as ``chain(*streams)``).

    >>> from combinators import from_iterable
    >>> list(chain())
    []
    >>> a, b = from_iterable("ab"), from_iterable("c")
    >>> "".join(chain(a, b, cycle=True).take(7))
    'abcabca'
    """
    flat: list[Stream] = []
    for s in _streams_tuple(streams, "chain()", allow_empty=True):
        flat.extend(s.streams if isinstance(s, Chain) and not s.repeat and s.name is None else (s,))
    return Chain(tuple(flat), repeat=bool(cycle))


@attrs.frozen(eq=False, repr=False)
class Apply(Stream):
    """A stream with transforms applied in order (``stream >> t1 >> t2``)."""

    stream: Stream
    transforms: tuple[Any, ...]

    @property
    def children(self) -> tuple[Stream, ...]:
        return (self.stream,)

    def _size(self) -> int | float | None:
        n = self.stream._size()
        for transform in self.transforms:
            n = count_after(transform, n)
        return n

    def __repr__(self) -> str:
        return " >> ".join([_operand_repr(self.stream), *map(repr, self.transforms)])


def _operand_repr(s: Stream) -> str:
    text = repr(s)
    return f"({text})" if isinstance(s, Apply) else text


def apply(s: Stream, transform: Any) -> Apply:
    """``s >> transform``: the items of ``s`` passed through ``transform``.

    Nested applications flatten, so ``(s >> t1) >> t2 == s >> (t1 >> t2)``.

    >>> from combinators import batch, from_iterable
    >>> [b.tolist() for b in from_iterable(range(5)) >> batch(2, partial=True)]
    [[0, 1], [2, 3], [4]]
    """
    checks.instance_of("the stream of apply()", s, Stream, "a stream")
    checks.instance_of("the operand of a stream's >>", transform, Transform, "a transform")
    if isinstance(s, Apply):  # the flat node keeps the name: (s >> t1).named(n) >> t2 is still n
        base, before, name = s.stream, s.transforms, s.name
    else:
        base, before, name = s, (), None
    return Apply(base, _fill_progress(base, before, flatten_transforms(transform), name), name=name)


def _fill_progress(base: Stream, before: tuple[Any, ...], added: tuple[Any, ...], name: str | None) -> tuple[Any, ...]:
    """``before + added``, each added `progress()` given the length and name of what it counts."""
    transforms = list(before)
    for t in added:
        if isinstance(t, Progress) and (t.total is None or t.desc is None):
            n = (Apply(base, tuple(transforms)) if transforms else base)._size()
            total = t.total if t.total is not None else n if isinstance(n, int) else None
            desc = t.desc if t.desc is not None else (name or base.name)
            t = attrs.evolve(t, total=total, desc=desc)
        transforms.append(t)
    return tuple(transforms)
