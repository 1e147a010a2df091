"""Starting a service's process (DESIGN.md §4): ``/bin/sh -c COMMAND`` in a new session.

The header line is written by a constant shell prologue that receives the name, time and
command as arguments (never spliced into a shell string) and then execs the user's command
with the same pid, so the header always comes before the service's first byte of output.
A command without shell syntax (``shellwords.simple_argv``) is exec'd as its words by the
prologue itself; anything else is exec'd as ``/bin/sh -c COMMAND``.
"""

from __future__ import annotations

import errno
import os
import time
from datetime import datetime

from auto_core import identity, shellwords
from auto_core.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (3 ms)
if TYPE_CHECKING:
    import subprocess

SHELL = "/bin/sh"
# $1 name, $2 time, $3 command. printf's format is constant; data goes through %s.
_HEADER = 'printf "[auto] start %s pid %s at %s: %s\\n" "$1" "$$" "$2" "$3"; '
_PROLOGUE = _HEADER + 'exec ' + SHELL + ' -c "$3"'
# $4... the command's own words (a command with no shell syntax).
_PROLOGUE_ARGV = _HEADER + 'shift 3; exec "$@"'
TRANSIENT = {errno.EAGAIN, errno.ENOMEM, errno.EDEADLK, errno.EINTR}


class SpawnError(OSError):
    """The process could not be started (after retrying transient errors)."""


class Spawned(Record):
    pid: int
    create_time: float
    popen: subprocess.Popen


def base_env() -> dict[bytes, bytes]:
    """This process's environment minus ``AUTO_SERVICE``, as bytes. ``start-all`` makes it
    once for the batch: re-reading ``os.environ`` per service was ~0.1 ms each."""
    env = dict(os.environb)
    env.pop(b"AUTO_SERVICE", None)
    return env


def build_env(extra: dict | None, base: dict[bytes, bytes] | None = None) -> dict[bytes, bytes]:
    env = dict(base_env() if base is None else base)
    for key, value in (extra or {}).items():
        env[os.fsencode(str(key))] = os.fsencode(str(value))
    return env


def argv(name: str, command: str, when: datetime) -> list[str]:
    stamp = when.isoformat(timespec="seconds")
    words = shellwords.simple_argv(command)
    if words is None:
        return [SHELL, "-c", _PROLOGUE, "auto", name, stamp, command]
    return [SHELL, "-c", _PROLOGUE_ARGV, "auto", name, stamp, command, *words]


def spawn(
    name: str,
    command: str,
    workdir: str,
    env: dict | None,
    log_fd: int,
    when: datetime | None = None,
    retries: int = 6,
    base: dict[bytes, bytes] | None = None,
) -> Spawned:
    """Start the command detached, output appended to ``log_fd``. Retries EAGAIN/ENOMEM/EDEADLK.

    ``base``: ``base_env()``'s result, made once when starting many (else made here)."""
    import subprocess  # here, not at module level: `auto ps` never spawns

    when = when or datetime.now()
    full_env = build_env(env, base)
    full_env[b"AUTO_SERVICE"] = os.fsencode(name)
    attempt = 0
    while True:
        try:
            popen = subprocess.Popen(
                argv(name, command, when),
                cwd=workdir,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                start_new_session=True,
                close_fds=True,
            )
            break
        except OSError as exc:
            if exc.errno in TRANSIENT and attempt < retries:
                time.sleep(0.05 * (2**attempt))
                attempt += 1
                continue
            what = exc.strerror or str(exc)
            if isinstance(exc, (FileNotFoundError, NotADirectoryError)) and exc.filename in (workdir, None):
                what = f"workdir {workdir} is missing or not a directory"
            raise SpawnError(exc.errno, what) from exc
    # Unreaped, the child is at worst a zombie, which still has its start time.
    create_time = identity.start_time(popen.pid)
    if create_time is None:
        create_time = time.time()
    return Spawned(popen.pid, create_time, popen)
