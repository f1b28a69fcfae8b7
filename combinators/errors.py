"""The exceptions `combinators` raises.

Every error is a `CombinatorsError`; argument errors are also the built-in
`ValueError` or `TypeError`, so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "CombinatorsError",
    "InvalidArgument",
    "InvalidArgumentType",
    "DataError",
    "WorkerError",
    "KeyingError",
    "ArchiveError",
    "CorruptEntry",
    "ReadOnlyArchive",
    "SerializerMismatch",
    "UnstorableValue",
    "TransportError",
    "ResumeError",
    "RunStateError",
    "MissingExtra",
    "CombinatorsWarning",
    "IdleExecutorWarning",
]


class CombinatorsError(Exception):
    """Base class of every error raised by `combinators`."""


class InvalidArgument(CombinatorsError, ValueError):
    """An argument has the right type but a bad value (named in the message)."""


class InvalidArgumentType(CombinatorsError, TypeError):
    """An argument has the wrong type (named in the message)."""


class DataError(CombinatorsError, ValueError):
    """Items cannot be combined as asked: mismatched keys, shapes or kinds."""


class WorkerError(CombinatorsError, RuntimeError):
    """A worker failed or died; ``remote_traceback`` holds its traceback text."""

    def __init__(self, message: str, remote_traceback: str | None = None):
        super().__init__(message)
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        text = super().__str__()
        if self.remote_traceback:
            text = f"{text}\n\nRemote traceback:\n{self.remote_traceback}"
        return text


class ResumeError(CombinatorsError, ValueError):
    """A run state does not fit the run asked to resume it (format, plan or seed, named)."""


class RunStateError(CombinatorsError, TypeError):
    """A run's state cannot be taken: an item it holds cannot be encoded (its type is named)."""


class TransportError(CombinatorsError, TypeError):
    """A value cannot be sent between processes (its type is named)."""


class KeyingError(CombinatorsError, TypeError):
    """An argument cannot be turned into a key (parameter and type named)."""


class ArchiveError(CombinatorsError):
    """An archive cannot do what was asked."""


class CorruptEntry(ArchiveError, ValueError):
    """A stored value cannot be decoded; the message names its key."""


class ReadOnlyArchive(ArchiveError, PermissionError):
    """A write was attempted on an archive opened read-only."""


class SerializerMismatch(ArchiveError, ValueError):
    """An archive was opened with a serializer other than the one it records."""


class UnstorableValue(ArchiveError, TypeError):
    """A memoized function returned a value that cannot be stored (the function is named)."""


class MissingExtra(CombinatorsError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class CombinatorsWarning(UserWarning):
    """Base class of every warning `combinators` gives."""


class IdleExecutorWarning(CombinatorsWarning):
    """A parallel executor was asked for and nothing of the plan ran in its workers (the block path)."""
