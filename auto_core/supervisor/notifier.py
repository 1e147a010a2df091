"""The death notifiers' shared base: a self-pipe that interrupts ``wait`` (signals go there
through ``signal.set_wakeup_fd``), the watched pids, extra wakeup fds. The back ends live in
``deathwatch`` (pidfd, poll) and ``deathwatch_kqueue``; both import this, nothing here imports
them."""

from __future__ import annotations

import os
import selectors

POLL_INTERVAL = 1.0


class Notifier:
    """Base: the self-pipe and the bookkeeping shared by every back end."""

    kind = "base"

    def __init__(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
        self.pids: dict[int, float | None] = {}  # pid -> create time we expect

    @property
    def wakeup_fd(self) -> int:
        """The write end, for ``signal.set_wakeup_fd``."""
        return self._wake_w

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: a wakeup is already pending

    def _drain(self) -> None:
        self._drain_fd(self._wake_r)

    @staticmethod
    def _drain_fd(fd: int) -> None:
        try:
            while os.read(fd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def watch(self, pid: int, create_time: float | None = None) -> bool:
        """Start watching ``pid``; False if it is already gone (the caller handles the death)."""
        raise NotImplementedError

    def unwatch(self, pid: int) -> None:
        raise NotImplementedError

    def wait(self, timeout: float) -> list[int]:
        """Block up to ``timeout`` seconds; return the watched pids that exited (then forgotten)."""
        raise NotImplementedError

    def add_waker(self, fd: int, drain: bool = True) -> bool:
        """Also return from ``wait`` when ``fd`` is readable (drained here, unless not
        ``drain``: the caller reads it); False if unsupported."""
        return False

    def close(self) -> None:
        for pid in list(self.pids):
            self.unwatch(pid)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


class SelectorWakers(Notifier):
    """A notifier that blocks in a selector holding its self-pipe and extra wakeup fds (e.g.
    inotify on the state directory)."""

    _WAKER = "waker"  # readable: drained here
    _READY = "ready"  # readable: the caller reads it

    def __init__(self) -> None:
        super().__init__()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)

    def close(self) -> None:
        super().close()
        self._sel.close()

    def add_waker(self, fd: int, drain: bool = True) -> bool:
        os.set_blocking(fd, False)
        self._sel.register(fd, selectors.EVENT_READ, self._WAKER if drain else self._READY)
        return True
