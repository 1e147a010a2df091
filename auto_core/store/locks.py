"""Exclusive locks that deleting or renaming a file cannot split, and who holds them.

``flock`` locks an open file, not a name. After ``rm local/state.lock`` the next writer would
create and lock a new file while the holder still holds the unlinked one, and both would
write. So each of auto's locks is taken on a directory first (``local/`` for the state, the
home itself for the watcher), which cannot be removed while it holds auto's files, and then
on its lock file, which older versions of auto lock and which says who holds it. After each
``flock`` the locked descriptor is checked to still be what the path names (a waiter that
opened the path before it was replaced, or a renamed directory, retries on the new one).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable

from auto_core.store.paths import FILE_MODE

FIRST_PAUSE, LONGEST_PAUSE = 0.0005, 0.005  # a waiter looks again after these (doubling)
PROC_LOCKS = "/proc/locks"  # Linux: every lock with its holder's pid


def _open(path: str, directory: bool, writable: bool) -> int:
    if directory:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    # Read-only is enough for flock, and closing it then tells no inotify watcher that
    # something was written in local/ (the watcher wakes on writes there).
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # O_CREAT's mode is masked by the umask
    except BaseException:
        os.close(fd)
        raise
    return fd


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def is_at(fd: int, path: str) -> bool:
    """Whether ``fd`` is the file ``path`` names now (not unlinked, not replaced)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    here = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino)


def take(path: str, *, wait: float, directory: bool = False, writable: bool = False,
         on_wait: tuple[float, Callable[[], None]] | None = None) -> int | None:
    """Open ``path`` (a lock file is created) and ``flock`` it exclusively; return the fd to
    keep open, or None when another process still holds it after ``wait`` seconds (0: one
    try). ``on_wait`` = (seconds, call): ``call()`` once when the wait reaches that long.
    OSError for a path that cannot be opened."""
    now = time.monotonic()
    deadline = now + wait
    notice = now + on_wait[0] if on_wait else None
    pause = FIRST_PAUSE
    fd = _open(path, directory, writable)
    try:
        while True:
            if _try(fd):
                if is_at(fd, path):
                    return fd
                # Locked a file the path no longer names: lock what it names now.
                os.close(fd)
                fd = -1
                fd = _open(path, directory, writable)
                continue
            now = time.monotonic()
            if now >= deadline:
                os.close(fd)
                return None
            if notice is not None and on_wait is not None and now >= notice:
                notice = None
                on_wait[1]()
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, LONGEST_PAUSE)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise


def is_held(path: str, directory: bool = False) -> bool | None:
    """Whether some process holds ``path``'s lock (None: ``path`` cannot be opened). Takes
    nothing for longer than a shared try."""
    try:
        fd = os.open(path, (os.O_DIRECTORY if directory else os.O_NOFOLLOW) | os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def holder_pid(path: str) -> int | None:
    """The pid holding an exclusive ``flock`` on ``path``, from ``/proc/locks`` (Linux); None
    where that file is missing or names no holder."""
    try:
        st = os.stat(path)
        with open(PROC_LOCKS, encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    by_inode = None
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:260072 0 EOF"; "1: -> FLOCK ..." is a waiter.
        words = line.split()
        if len(words) < 6 or words[1] != "FLOCK" or words[3] != "WRITE":
            continue
        try:
            major, minor, inode = words[5].split(":")
            pid, ino = int(words[4]), int(inode)
            dev = os.makedev(int(major, 16), int(minor, 16))
        except ValueError:
            continue
        if ino == st.st_ino and pid > 0:
            if dev == st.st_dev:
                return pid
            by_inode = pid  # overlay and similar filesystems report another device number
    return by_inode


def opener_pid(path: str) -> int | None:
    """A process that has ``path`` open (psutil), for platforms without ``/proc/locks``: a
    lock file that is opened only once its directory is locked names its holder."""
    import psutil  # only on this slow path

    want = os.path.realpath(path)
    for proc in psutil.process_iter():
        try:
            if any(os.path.realpath(f.path) == want for f in proc.open_files()):
                return proc.pid
        except (psutil.Error, OSError):
            continue
    return None


def describe(pid: int | None) -> str:
    """``pid 123 (auto start-all, stopped)``: who a lock waiter waits for."""
    if pid is None or pid <= 0:
        return "another process"
    import psutil  # only on this slow path

    try:
        proc = psutil.Process(pid)
        argv = proc.cmdline()
        stopped = proc.status() == psutil.STATUS_STOPPED
    except psutil.Error:
        return f"pid {pid}"
    what = [command_text(argv)] if argv else []
    if stopped:
        what.append("stopped")
    return f"pid {pid} ({', '.join(what)})" if what else f"pid {pid}"


def command_text(argv: list[str], limit: int = 60) -> str:
    """A command line as a user would have typed it: ``python -m auto_core ps`` reads ``auto ps``."""
    if len(argv) >= 3 and argv[1:3] == ["-m", "auto_core"]:
        argv = ["auto", *argv[3:]]
    elif argv and os.path.basename(argv[0]) == "auto":
        argv = ["auto", *argv[1:]]
    # One line whatever the arguments hold (a ``python -c`` script spans many).
    text = " ".join(" ".join(arg.split()) for arg in argv)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
