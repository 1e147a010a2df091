"""macOS/BSD death notifier: ``select.kqueue`` with ``EVFILT_PROC``/``NOTE_EXIT``.

Kept apart from ``deathwatch`` because it cannot run on Linux; the interface is the same.
"""

from __future__ import annotations

import select
import sys

from auto_core.proc import identity
from auto_core.supervisor.notifier import Notifier


def available() -> bool:
    return hasattr(select, "kqueue") and hasattr(select, "KQ_FILTER_PROC")


# select.kqueue is missing on Linux (and Windows): type checkers skip the class there (the
# condition is typeshed's) and check it for macOS. ``deathwatch.make`` uses it only there,
# after ``available()``.
if sys.platform != "linux" and sys.platform != "win32":

    class KqueueNotifier(Notifier):
        kind = "kqueue"

        def __init__(self) -> None:
            super().__init__()
            self._kq = select.kqueue()
            wake = select.kevent(self._wake_r, select.KQ_FILTER_READ, select.KQ_EV_ADD)
            self._kq.control([wake], 0)

        def watch(self, pid: int, create_time: float | None = None) -> bool:
            if pid in self.pids:
                return True
            event = select.kevent(
                pid,
                filter=select.KQ_FILTER_PROC,
                flags=select.KQ_EV_ADD | select.KQ_EV_ONESHOT,
                fflags=select.KQ_NOTE_EXIT,
            )
            try:
                self._kq.control([event], 0)
            except ProcessLookupError:
                return False
            self.pids[pid] = create_time
            if create_time is not None and not identity.same_time(identity.create_time(pid),
                                                                  create_time):
                self.unwatch(pid)  # the pid was recycled before we registered it
                return False
            return True

        def unwatch(self, pid: int) -> None:
            if self.pids.pop(pid, "absent") == "absent":
                return
            event = select.kevent(pid, filter=select.KQ_FILTER_PROC, flags=select.KQ_EV_DELETE)
            try:
                self._kq.control([event], 0)
            except OSError:
                pass  # a one-shot event that already fired is gone

        def wait(self, timeout: float) -> list[int]:
            dead = []
            for ev in self._kq.control(None, 64, max(0.0, timeout)):
                if ev.filter == select.KQ_FILTER_READ:
                    self._drain()
                elif ev.filter == select.KQ_FILTER_PROC and ev.ident in self.pids:
                    dead.append(int(ev.ident))
            for pid in dead:
                self.pids.pop(pid, None)  # one-shot: the kernel already dropped the event
            return dead

        def close(self) -> None:
            super().close()
            self._kq.close()
