"""Starting a watcher on demand: every command that needs the watcher to act brings one up.

The watcher is started detached (its own session, stdin ``/dev/null``), its output appended
to ``output/logs/auto/auto.log``, running this Python as ``auto watch``. Two commands racing
to start one are harmless: the watch lock lets one run and the other exits at once.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from auto_core.errors import AutoError
from auto_core.store import watchlock
from auto_core.store.paths import FILE_MODE, Home, ensure_dir

STARTUP_WAIT = 5.0  # how long a new watcher may take to take its lock

# Watchers this process started: polled so that a long-lived face (the TUI) leaves no zombie.
_started: list = []


def watcher_command(home: Home) -> list[str]:
    return [sys.executable, "-m", "auto_core", "--home", str(home.root), "watch"]


def ensure(home: Home, say: Callable[[str], None]) -> int | None:
    """The running watcher's pid, after starting one if none holds the lock. ``say`` gets the
    one line that tells the user a watcher was started. None if it did not come up."""
    for proc in list(_started):
        if proc.poll() is not None:
            _started.remove(proc)
    pid = watchlock.holder(home)
    if pid is not None:
        return pid
    import subprocess

    try:
        ensure_dir(home.watcher_log.parent)
        log = os.open(home.watcher_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        os.fchmod(log, FILE_MODE)  # O_CREAT's mode is masked by the umask
    except OSError as exc:
        # Supervision matters more than the watcher's own log: start it all the same.
        say(f"cannot open the watcher's log {home.watcher_log}: {exc.strerror or exc};"
            " its output is lost")
        log = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    env = dict(os.environ, AUTO_HOME=str(home.root))
    for mark in ("AUTO_SERVICE", "AUTO_RUN", "AUTO_CLAIM"):
        env.pop(mark, None)  # a watcher started from inside a service is not part of it
    try:
        proc = subprocess.Popen(watcher_command(home), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, env=env, cwd="/", start_new_session=True, close_fds=True)
    except OSError as exc:
        raise AutoError(f"cannot start the watcher ({sys.executable}): {exc.strerror or exc};"
                        " what was asked stays recorded for the next watcher") from None
    finally:
        os.close(log)
    _started.append(proc)
    deadline = time.monotonic() + STARTUP_WAIT
    while time.monotonic() < deadline:
        pid = watchlock.holder(home)
        if pid == proc.pid:
            say(f"started the watcher (pid {pid}); 'auto install' starts it at login")
            return pid
        # Another pid: another face's watcher won (ours then exits), or ours holds the lock
        # and has not written its pid over the last holder's yet.
        if pid is not None and proc.poll() is not None:
            return pid
        if proc.poll() is not None and watchlock.holder(home) is None:
            return None
        time.sleep(0.005)
    return watchlock.holder(home)
