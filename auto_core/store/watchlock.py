"""The watcher's single-instance lock, ``local/watch.lock``.

Whoever holds the ``flock`` is the watcher; the file says its pid and how it was started:
``on-demand`` (a face started it because none ran) or ``login`` (launchd or systemd runs it).
A login watcher takes over from an on-demand one: it asks that one to exit (services keep
running; the new watcher adopts them) instead of failing into the service manager's restart
loop.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time

from auto_core.errors import AutoError
from auto_core.store.paths import FILE_MODE, Home, ensure_dir

ON_DEMAND, LOGIN = "on-demand", "login"
TAKE_OVER_WAIT = 15.0  # an on-demand watcher exits within a loop iteration of SIGTERM


class WatcherRunning(AutoError):
    pass


def _open(home: Home) -> int:
    ensure_dir(home.local)
    fd = os.open(home.watch_lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # O_CREAT's mode is masked by the umask
    return fd


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def acquire(home: Home, kind: str = ON_DEMAND, take_over: bool = False) -> int:
    """Take the lock for this process and write our pid and kind into it; return the fd to
    keep open. With ``take_over``, an on-demand holder is asked to exit and waited for."""
    fd = _open(home)
    if not _try_lock(fd):
        held = _read(fd)
        if take_over and held is not None and held[1] == ON_DEMAND and held[0] > 1:
            try:
                os.kill(held[0], signal.SIGTERM)
            except OSError:
                pass
            deadline = time.monotonic() + TAKE_OVER_WAIT
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise WatcherRunning(f"the watcher (pid {held[0]}) did not hand over within "
                                         f"{TAKE_OVER_WAIT:g} s")
                time.sleep(0.05)
        else:
            os.close(fd)
            who = f" (pid {held[0]})" if held else ""
            raise WatcherRunning(f"a watcher is already running for {home.root}{who}")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {kind}\n".encode(), 0)
    return fd


def _read(fd: int) -> tuple[int, str] | None:
    try:
        words = os.pread(fd, 64, 0).decode().split()
        pid = int(words[0])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    return (pid, words[1] if len(words) > 1 else ON_DEMAND) if pid > 0 else None


def holder_info(home: Home) -> tuple[int, str] | None:
    """(pid, kind) of the running watcher, or None when no watcher holds the lock. The pid
    is -1 when the holder did not say who it is."""
    try:
        fd = os.open(home.watch_lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd) or (-1, ON_DEMAND)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def holder(home: Home) -> int | None:
    """The pid of the running watcher, or None when no watcher holds the lock."""
    info = holder_info(home)
    return info[0] if info else None
