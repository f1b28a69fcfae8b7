"""Nothing outlives its run: workers die with their consumer, run folders go with it.

- `die_with_parent` (in a worker): ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux,
  so a worker, even one busy in C code, dies when the thread that started it
  does; and `watch_owner`, a thread that SIGKILLs the worker once its consumer
  is gone (needed under ``forkserver``, whose server is the workers' parent and
  lives as long as they hold its pipe, and where the kernel offers no
  PR_SET_PDEATHSIG).
- `close_inherited_sockets` (in a forked worker): closes the consumer's listening
  socket and its accepted connections, which ``fork`` copied, so a dead
  consumer's port is not kept open by its workers.
- `run_folder` / `sweep_run_folders`: run folders are named after their owner's
  pid; a new run removes those whose owner is gone (after a SIGKILL).
- `on_sigterm`: a consumer killed with SIGTERM first releases its sessions
  (workers, sockets, folders), then dies of SIGTERM as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import select
import shutil
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
import weakref

__all__ = ["die_with_parent", "watch_owner", "alive", "close_inherited_sockets", "run_folder", "sweep_run_folders", "on_sigterm"]

_PR_SET_PDEATHSIG = 1
_RUN_FOLDER = re.compile(r"combinators-(\d+)-")


def die_with_parent() -> bool:
    """Ask the kernel to SIGKILL this process when its parent thread exits; whether it could (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _libc() -> ctypes.CDLL:
    """The C library: the symbols already loaded in this process (``dlopen(NULL)``), which hold libc's on
    Linux; else the library `ctypes.util.find_library` names (which runs ``ldconfig``: milliseconds
    per worker start)."""
    loaded = ctypes.CDLL(None, use_errno=True)
    if hasattr(loaded, "prctl"):
        return loaded
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def watch_owner(owner: int, interval: float = 0.25) -> threading.Thread:
    """A daemon thread that SIGKILLs this process once process ``owner`` is gone (a pidfd where available)."""

    def watch() -> None:
        try:
            descriptor = os.pidfd_open(owner)
        except (AttributeError, OSError):
            descriptor = None
        if descriptor is not None:
            select.select([descriptor], [], [])  # readable when the process exits
        while alive(owner):
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="combinators-watch-owner", daemon=True)
    thread.start()
    return thread


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (and is not a zombie).

    >>> alive(os.getpid())
    True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as status:
            return status.read().rpartition(b")")[2].split()[0] != b"Z"
    except OSError:
        return True


def close_inherited_sockets(address: str) -> None:
    """Close the sockets of the session bound at ``address`` that ``fork`` copied into this process."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: nothing to find them with
        return
    bound = _bound_name(address)
    for fd in fds:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=fd)
        except OSError:
            continue
        try:
            ours = _same_name(sock.getsockname(), bound)  # its listener, or a connection it accepted
        except OSError:
            ours = False
        if ours:
            sock.close()
        else:
            sock.detach()


def _bound_name(address: str) -> object:
    scheme, _, rest = address.partition("://")
    if scheme == "ipc":
        return rest
    host, _, port = rest.rpartition(":")
    return (host.strip("[]"), int(port)) if port.isdigit() else None


def _same_name(name: object, bound: object) -> bool:
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    if isinstance(name, tuple) and isinstance(bound, tuple):
        return name[1] == bound[1] and name[0] in (bound[0], "127.0.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::")
    return name == bound


def run_folder() -> str:
    """A new private (0700) run folder in the temp directory, named after this process."""
    sweep_run_folders()
    return tempfile.mkdtemp(prefix=f"combinators-{os.getpid()}-")


def sweep_run_folders() -> list[str]:
    """Remove the run folders (of this user) whose owner process is gone; their paths."""
    root = tempfile.gettempdir()
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            match = _RUN_FOLDER.match(entry.name)
            if match is None or not entry.is_dir(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid == os.getuid() and not alive(int(match.group(1))):
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed.append(entry.path)
    return removed


_RELEASES: list[weakref.finalize] = []
_INSTALLED = False


def on_sigterm(finalizer: weakref.finalize) -> None:
    """Run ``finalizer`` if this process gets SIGTERM (where SIGTERM still has its default action)."""
    global _INSTALLED
    _RELEASES[:] = [*(other for other in _RELEASES if other.alive), finalizer]
    if _INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _release_then_die)
        _INSTALLED = True


def _release_then_die(signum: int, frame: object) -> None:
    for finalizer in list(_RELEASES):
        with contextlib.suppress(Exception):
            finalizer()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)

