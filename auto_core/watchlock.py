"""The watcher's single-instance lock (``local/watch.lock``, DESIGN.md §5)."""

from __future__ import annotations

import fcntl
import os

from auto_core.errors import AutoError
from auto_core.paths import FILE_MODE, Home, ensure_dir


class WatcherRunning(AutoError):
    pass


def acquire(home: Home) -> int:
    """Take the lock for this process and write our pid into it; return the fd to keep open."""
    ensure_dir(home.local)
    fd = os.open(home.watch_lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # O_CREAT's mode is masked by the umask
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        who = f" (pid {pid})" if pid else ""
        raise WatcherRunning(f"a watcher is already running for {home.root}{who}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


def holder(home: Home) -> int | None:
    """The pid of the running watcher, or None when no watcher holds the lock."""
    try:
        fd = os.open(home.watch_lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
