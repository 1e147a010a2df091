"""Learning that a process died, by events rather than a busy poll: an idle watcher then costs
no CPU, and a death is seen at once (docs/architecture.md, the watcher's loop).

One interface, three back ends:

- ``PidfdNotifier`` (Linux): ``os.pidfd_open`` per pid, all in one selector. A pidfd becomes
  readable when its process exits, whether or not we are its parent.
- ``KqueueNotifier`` (macOS/BSD, in ``deathwatch_kqueue``): ``EVFILT_PROC``/``NOTE_EXIT``.
- ``PollNotifier``: a check of every watched pid once a second, only where neither works.

Every back end also watches a self-pipe, so a signal (``signal.set_wakeup_fd``) or ``wake()``
interrupts ``wait``. A watch fires once: ``wait`` forgets the pids it reports.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import selectors
import sys
import time

from auto_core.proc import identity
from auto_core.supervisor.notifier import POLL_INTERVAL, Notifier, SelectorWakers

# Descriptors the watcher keeps free for its own work (the state file, a run's log file, a
# spawn): past the open-file limit minus these, a pid is watched by a check once a second.
FD_RESERVE = 64

# os.pidfd_open exists only on Linux: type checkers skip the class elsewhere (typeshed's
# condition) and ``make`` asks for it only there.
if sys.platform == "linux":

    class PidfdNotifier(SelectorWakers):
        kind = "pidfd"

        def __init__(self) -> None:
            super().__init__()
            self._fds: dict[int, int] = {}
            # Pids watched by a once-a-second identity check: pidfd_open failed for want of
            # a descriptor (the open-file limit), and a service must not go unwatched.
            self._polled: dict[int, float | None] = {}
            self._next_check = 0.0

        def watch(self, pid: int, create_time: float | None = None) -> bool:
            if pid in self.pids:
                return True
            if len(self._fds) >= resource.getrlimit(resource.RLIMIT_NOFILE)[0] - FD_RESERVE:
                return self._poll(pid, create_time)
            try:
                fd = os.pidfd_open(pid)  # close-on-exec by the kernel
            except ProcessLookupError:
                return False
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE):
                    raise
                return self._poll(pid, create_time)
            # The pid may have been recycled between our identity check and pidfd_open: check again
            # now that the fd pins this exact process.
            if create_time is not None and not identity.same_time(identity.create_time(pid),
                                                                  create_time):
                os.close(fd)
                return False
            self._sel.register(fd, selectors.EVENT_READ, pid)
            self._fds[pid] = fd
            self.pids[pid] = create_time
            return True

        def _poll(self, pid: int, create_time: float | None) -> bool:
            found = identity.create_time(pid)
            if found is None or (create_time is not None and not identity.same_time(found, create_time)):
                return False
            self.pids[pid] = self._polled[pid] = found
            return True

        def unwatch(self, pid: int) -> None:
            self.pids.pop(pid, None)
            self._polled.pop(pid, None)
            fd = self._fds.pop(pid, None)
            if fd is not None:
                self._sel.unregister(fd)
                os.close(fd)

        def wait(self, timeout: float) -> list[int]:
            dead = []
            if self._polled:
                timeout = min(timeout, max(0.0, self._next_check - time.monotonic()))
            for key, _ in self._sel.select(max(0.0, timeout)):
                if key.data is None or key.data == self._WAKER:  # the signal pipe or a waker
                    self._drain_fd(key.fd)
                elif key.data == self._READY:
                    pass  # the watcher reads it
                else:
                    dead.append(key.data)
            if self._polled and time.monotonic() >= self._next_check:
                self._next_check = time.monotonic() + POLL_INTERVAL
                dead += [p for p, ct in self._polled.items()
                         if not identity.same_time(identity.create_time(p), ct)]
            for pid in dead:
                self.unwatch(pid)
            return dead


class PollNotifier(SelectorWakers):
    """Checks every watched pid's identity once a second (no fork: /proc or psutil)."""

    kind = "poll"

    def __init__(self, interval: float = POLL_INTERVAL) -> None:
        super().__init__()
        self.interval = interval
        self._next_check = time.monotonic() + interval

    def watch(self, pid: int, create_time: float | None = None) -> bool:
        if create_time is None:
            create_time = identity.create_time(pid)
            if create_time is None:
                return False
        elif not identity.same_time(identity.create_time(pid), create_time):
            return False
        self.pids[pid] = create_time
        return True

    def unwatch(self, pid: int) -> None:
        self.pids.pop(pid, None)

    def wait(self, timeout: float) -> list[int]:
        now = time.monotonic()
        block = max(0.0, min(timeout, self._next_check - now))
        for key, _ in self._sel.select(block):
            if key.data != self._READY:
                self._drain_fd(key.fd)  # the signal pipe or a waker
        if time.monotonic() < self._next_check:
            return []
        self._next_check = time.monotonic() + self.interval
        dead = [p for p, ct in self.pids.items() if not identity.same_time(identity.create_time(p), ct)]
        for pid in dead:
            self.unwatch(pid)
        return dead


# inotify (Linux): learn that state.json was replaced without waking up to stat it.
_IN_CLOSE_WRITE, _IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x8, 0x40, 0x80, 0x100, 0x200
_IN_MASK = _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE


def dir_change_fd(directory: str) -> int | None:
    """A non-blocking fd that becomes readable when an entry of ``directory`` is created,
    written, renamed or deleted (Linux inotify through libc); None where unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        init, add = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError):
        return None
    fd = init(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        return None
    if add(fd, os.fsencode(directory), _IN_MASK) < 0:
        os.close(fd)
        return None
    return fd


def pidfd_works() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
        return True
    except OSError:  # ENOSYS on old kernels, EPERM under some seccomp profiles
        return False


def make(poll_only: bool = False) -> Notifier:
    """The best notifier this platform supports (or the 1 s poll when ``poll_only``)."""
    if not poll_only:
        if sys.platform == "linux":
            if pidfd_works():
                return PidfdNotifier()
        elif sys.platform != "win32":
            from auto_core.supervisor import deathwatch_kqueue

            if deathwatch_kqueue.available():
                return deathwatch_kqueue.KqueueNotifier()
    return PollNotifier()
