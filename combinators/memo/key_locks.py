"""One computation per key across processes: a lock per key in the archive's folder, freed by the OS.

`memoize` holds the lock of a key while it computes and stores the value; a
second process (or thread) asking for the same key waits for it, then
finds the stored value instead of computing it again. The locks are POSIX
record locks (``fcntl``) on one byte of ``keys.lock`` in the archive's
folder, at an offset drawn from the key's digest: the kernel frees them when
their holder exits in any way, SIGKILL included, so a dead holder never
blocks others, and it reports a deadlock (two processes each waiting for a
key the other holds, through nested memoized calls) instead of hanging:
the waiter then computes without the lock.

Record locks belong to a process, not a thread, and closing any descriptor
of the file drops all of them: each process keeps one descriptor per lock
file, and threads of one process wait on a `threading.Lock` per key first.
Two keys whose 62-bit digests agree share a lock: the later waits, then
computes (never a wrong value, only a wait).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import threading
from typing import Iterator

__all__ = ["KeyLocks", "for_folder"]

_FOLDERS: dict[str, KeyLocks] = {}
_FOLDERS_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child starts without locks: another thread of the parent may have held a lock at the fork."""
    global _FOLDERS_LOCK
    _FOLDERS_LOCK = threading.Lock()
    _FOLDERS.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def for_folder(path: str) -> KeyLocks:
    """The process's one `KeyLocks` of folder ``path`` (one descriptor: closing a second would drop locks)."""
    key = os.path.realpath(path)
    with _FOLDERS_LOCK:
        locks = _FOLDERS.get(key)
        if locks is None:
            locks = _FOLDERS[key] = KeyLocks(key)
        return locks


class KeyLocks:
    """The key locks of the archive in folder ``path`` (its file ``keys.lock``, created on first use).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     locks = KeyLocks(folder)
    ...     with locks.hold(b"k") as locked:
    ...         print(locked)
    True
    """

    def __init__(self, path: str) -> None:
        self.file = os.path.join(path, "keys.lock")
        self._fd: int | None = None
        self._owner: tuple[int, tuple[int, int]] | None = None  # (pid, (device, inode)) of the descriptor
        self._mutex = threading.Lock()
        self._threads: dict[int, list] = {}  # offset -> [threading.Lock, users]
        self._mine = threading.local()  # offsets this thread holds (a nested call of the same key)

    def _descriptor(self) -> int:
        """The process's descriptor of the lock file, reopened after fork or when the folder was replaced."""
        try:
            found = os.stat(self.file)
            where = (found.st_dev, found.st_ino)
        except FileNotFoundError:
            where = None
        if self._fd is not None and self._owner == (os.getpid(), where):
            return self._fd
        fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o666)
        found = os.fstat(fd)
        self._fd, self._owner = fd, (os.getpid(), (found.st_dev, found.st_ino))  # the old one stays open: its
        return fd  # locks, if a thread still holds one, must not be dropped by closing it

    @contextlib.contextmanager
    def hold(self, key: bytes) -> Iterator[bool]:
        """Hold ``key``'s lock for the block, waiting while another process or thread holds it.

        Yields whether the lock is held: ``False`` when the kernel reported a
        deadlock, or when this thread already holds it (a nested call).
        """
        offset = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 2
        held = getattr(self._mine, "offsets", None)
        if held is None:
            held = self._mine.offsets = set()
        if offset in held:
            yield False
            return
        with self._mutex:
            entry = self._threads.setdefault(offset, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                held.add(offset)
                try:
                    with self._locked(offset) as locked:
                        yield locked
                finally:
                    held.discard(offset)
        finally:
            with self._mutex:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._threads[offset]

    @contextlib.contextmanager
    def _locked(self, offset: int) -> Iterator[bool]:
        """Yields ``False`` without waiting on a deadlock, or when the file cannot be opened for writing
        (an archive shared by users whose umask keeps the others out): the value is then computed twice at
        worst, never wrong."""
        try:
            with self._mutex:
                fd = self._descriptor()
            fcntl.lockf(fd, fcntl.LOCK_EX, 1, offset, os.SEEK_SET)  # waits; EINTR is retried (PEP 475)
        except OSError as error:
            if error.errno not in (errno.EDEADLK, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOLCK):
                raise
            yield False
            return
        try:
            yield True
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)
