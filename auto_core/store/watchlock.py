"""The watcher's single-instance lock: the home directory, then ``local/watch.lock``.

Whoever holds the ``flock`` is the watcher (``locks``: the home's lock is what deleting
``watch.lock`` cannot split); the file says its pid and how it was started:
``on-demand`` (a face started it because none ran) or ``login`` (launchd or systemd runs it).
A login watcher takes over from an on-demand one: it asks that one to exit (services keep
running; the new watcher adopts them) instead of failing into the service manager's restart
loop.
"""

from __future__ import annotations

import os
import signal
import time

from auto_core.errors import AutoError
from auto_core.store import locks
from auto_core.store.paths import Home, ensure_dir

ON_DEMAND, LOGIN = "on-demand", "login"
TAKE_OVER_WAIT = 15.0  # an on-demand watcher exits within a loop iteration of SIGTERM
PROBE_WAIT = 0.5  # how long a starting watcher retries while nobody seems to hold the lock


class WatcherRunning(AutoError):
    pass


# The watch.lock fd acquire() returned -> the fd of the home's lock, released together.
_home_fds: dict[int, int] = {}


def _take(home: Home) -> tuple[int, int] | None:
    """Lock the home directory, then watch.lock (held by an older auto's watcher alone), both
    without waiting: the two fds, or None when another watcher holds either."""
    ensure_dir(home.local)
    root = locks.take(str(home.root), wait=0, directory=True)
    if root is None:
        return None
    try:
        fd = locks.take(str(home.watch_lock), wait=0, writable=True)
    except BaseException:
        os.close(root)
        raise
    if fd is None:
        os.close(root)
        return None
    return root, fd


def acquire(home: Home, kind: str = ON_DEMAND, take_over: bool = False) -> int:
    """Take the lock for this process and write our pid and kind into it; return the fd to
    keep open (``release`` it). With ``take_over``, an on-demand holder is asked to exit and
    waited for."""
    fds = _take(home)
    probed = time.monotonic() + PROBE_WAIT
    while fds is None and holder_info(home) is None and time.monotonic() < probed:
        time.sleep(0.001)  # a momentary probe (``holder_info`` of a face) collided with ours
        fds = _take(home)
    if fds is None:
        held = holder_info(home)
        if not (take_over and held is not None and held[1] == ON_DEMAND and held[0] > 1):
            who = f" (pid {held[0]})" if held and held[0] > 0 else ""
            raise WatcherRunning(f"a watcher is already running for {home.root}{who}")
        try:
            os.kill(held[0], signal.SIGTERM)
        except OSError:
            pass
        deadline = time.monotonic() + TAKE_OVER_WAIT
        while (fds := _take(home)) is None:
            if time.monotonic() >= deadline:
                raise WatcherRunning(f"the watcher (pid {held[0]}) did not hand over within "
                                     f"{TAKE_OVER_WAIT:g} s")
            time.sleep(0.05)
    root, fd = fds
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {kind}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        os.close(root)
        raise
    _home_fds[fd] = root
    return fd


def release(fd: int) -> None:
    """Give up the lock ``acquire`` returned as ``fd`` (closing ``fd`` alone keeps the home's
    lock until this process exits)."""
    os.close(fd)
    root = _home_fds.pop(fd, None)
    if root is not None:
        os.close(root)


def _read(fd: int) -> tuple[int, str] | None:
    try:
        words = os.pread(fd, 64, 0).decode().split()
        pid = int(words[0])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    return (pid, words[1] if len(words) > 1 else ON_DEMAND) if pid > 0 else None


def _file_holder(home: Home) -> tuple[int, str] | None:
    """(pid, kind) written in watch.lock when a process holds that file's lock."""
    if not locks.is_held(str(home.watch_lock)):
        return None
    try:
        fd = os.open(home.watch_lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return -1, ON_DEMAND
    try:
        return _read(fd) or (-1, ON_DEMAND)
    finally:
        os.close(fd)


def holder_info(home: Home) -> tuple[int, str] | None:
    """(pid, kind) of the running watcher, or None when no watcher holds the lock. The pid
    is -1 when the holder cannot be named (watch.lock was deleted, and no ``/proc/locks``)."""
    info = _file_holder(home)
    if info is not None:
        return info
    if locks.is_held(str(home.root), directory=True):  # watch.lock deleted under the watcher
        return locks.holder_pid(str(home.root)) or -1, ON_DEMAND
    return None


def holder(home: Home) -> int | None:
    """The pid of the running watcher, or None when no watcher holds the lock."""
    info = holder_info(home)
    return info[0] if info else None
