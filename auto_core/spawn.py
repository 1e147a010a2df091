"""Starting a service's process (DESIGN.md §4): ``/bin/sh -c COMMAND`` in a new session.

The header line is written by a constant shell prologue that receives the name, time,
command and workdir as arguments (never spliced into a shell string), changes to the workdir
and then execs the user's command with the same pid, so the header always comes before the
service's first byte of output. A command without shell syntax (``shellwords.simple_argv``)
is exec'd as its words by the prologue itself; anything else as ``/bin/sh -c COMMAND``.

``os.posix_spawn`` (a vfork in the C library) starts it: ``subprocess.Popen`` cost ~0.2 ms
more per service in Python code, and its import ~5 ms. What Popen did besides is done here:
ignored SIGPIPE/SIGXFSZ are reset (Python ignores them), stdin is /dev/null, and no file
descriptor leaks into the service (``_no_inherit``; posix_spawn has no ``close_fds``). One
difference remains, as with glibc's own system() and popen(), which use posix_spawn too:
its two internal signals (32 and 33) start ignored; libc re-installs them where it uses them.
"""

from __future__ import annotations

import _thread  # a lock without importing threading (~1 ms on every one-shot command)
import errno
import fcntl
import os
import signal
import time

from auto_core import identity, shellwords
from auto_core.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from datetime import datetime

SHELL = "/bin/sh"
# $1 name, $2 time, $3 command, $4 workdir. printf's format is constant; data goes through %s.
# The header comes first, so a failing `cd` (the workdir vanished after our check) is logged
# after it; `-P` resolves symlinks as chdir(2) does.
_HEADER = 'printf "[auto] start %s pid %s at %s: %s\\n" "$1" "$$" "$2" "$3"; cd -P -- "$4" || exit 126; '
_PROLOGUE = _HEADER + 'exec ' + SHELL + ' -c "$3"'
# $5... the command's own words (a command with no shell syntax).
_PROLOGUE_ARGV = _HEADER + 'shift 4; exec "$@"'
TRANSIENT = {errno.EAGAIN, errno.ENOMEM, errno.EDEADLK, errno.EINTR}
# Popen's restore_signals: Python ignores these; an exec keeps an ignored signal ignored.
_SIGDEF = tuple(getattr(signal, n) for n in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(signal, n))


class SpawnError(OSError):
    """The process could not be started (after retrying transient errors)."""


class Child:
    """A spawned child to reap: ``poll()`` and ``wait(timeout)`` as ``subprocess.Popen`` has
    them (returncode negative for a signal; 0 if something else reaped it first)."""

    __slots__ = ("pid", "returncode", "_lock", "_popen")

    def __init__(self, pid: int, popen: object = None):
        self.pid = pid
        self.returncode: int | None = None
        self._lock = _thread.allocate_lock()  # the TUI reaps from two threads
        self._popen = popen  # the fallback's Popen: told the code, so it never waits itself

    def poll(self) -> int | None:
        with self._lock:
            if self.returncode is None:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    self.returncode = 0
                else:
                    if pid:
                        self.returncode = os.waitstatus_to_exitcode(status)
                if self.returncode is not None and self._popen is not None:
                    self._popen.returncode = self.returncode
            return self.returncode

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"pid {self.pid} still running after {timeout} s")
            time.sleep(0.002)
        return self.returncode


class Spawned(Record):
    pid: int
    child: Child


def base_env() -> dict[bytes, bytes]:
    """This process's environment minus ``AUTO_SERVICE``, as bytes."""
    env = dict(os.environb)
    env.pop(b"AUTO_SERVICE", None)
    return env


def build_env(extra: dict | None, base: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """``base`` (``base_env()``'s result) plus a service's own variables, as bytes."""
    env = dict(base)
    for key, value in (extra or {}).items():
        env[os.fsencode(str(key))] = os.fsencode(str(value))
    return env


def argv(name: str, command: str, when: datetime, workdir: str) -> list[str]:
    stamp = when.isoformat(timespec="seconds")
    words = shellwords.simple_argv(command)
    if words is None:
        return [SHELL, "-c", _PROLOGUE, "auto", name, stamp, command, workdir]
    return [SHELL, "-c", _PROLOGUE_ARGV, "auto", name, stamp, command, workdir, *words]


_inherited_closed = False
_setsid_spawn = True  # False once os.posix_spawn said it cannot start a new session


def _no_inherit() -> None:
    """Mark every descriptor above 2 close-on-exec, once per process. Python creates its own
    descriptors non-inheritable (PEP 446), so what can leak is what this process inherited (a
    shell's, launchd's), which Popen's ``close_fds`` closed in each child. Once is enough: a
    watcher with 200 pidfds spent ~0.4 ms per restart re-checking them."""
    global _inherited_closed
    if _inherited_closed:
        return
    _inherited_closed = True
    try:
        names = os.listdir("/dev/fd")
    except OSError:
        return
    for fd in map(int, names):
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    os.set_inheritable(fd, False)
            except OSError:
                pass  # the directory's own descriptor, closed by now


class Spawner:
    """What a batch of spawns shares: the environment (made once: ``start-all`` of 200 paid
    ~0.1 ms per service re-reading ``os.environ``), /dev/null, the inheritance pass."""

    def __init__(self) -> None:
        self.base = base_env()
        _no_inherit()
        fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.devnull = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)  # above 0-2: see _start
        os.close(fd)

    def __enter__(self) -> Spawner:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.devnull)

    def spawn(
        self, name: str, command: str, workdir: str, env: dict | None, log_fd: int,
        when: datetime, retries: int = 6,
    ) -> Spawned:
        """Start the command detached, output appended to ``log_fd``. Retries EAGAIN/ENOMEM/EDEADLK."""
        workdir = os.path.abspath(workdir)
        if not os.path.isdir(workdir):
            raise SpawnError(errno.ENOENT, f"workdir {workdir} is missing or not a directory")
        if not os.access(workdir, os.X_OK):  # the prologue's cd would fail: say so now, no crash loop
            raise SpawnError(errno.EACCES, f"workdir {workdir} cannot be entered (permission denied)")
        full_env = build_env(env, self.base)
        full_env[b"AUTO_SERVICE"] = os.fsencode(name)
        attempt = 0
        while True:
            try:
                child = self._start(argv(name, command, when, workdir), full_env, log_fd)
                return Spawned(child.pid, child)
            except OSError as exc:
                if exc.errno in TRANSIENT and attempt < retries:
                    time.sleep(0.05 * (2**attempt))
                    attempt += 1
                    continue
                raise SpawnError(exc.errno, exc.strerror or str(exc)) from exc

    def _start(self, args: list[str], env: dict[bytes, bytes], log_fd: int) -> Child:
        global _setsid_spawn
        if _setsid_spawn:
            # Run with its own 0-2 closed, this process may hold the log on fd 0 to 2, where
            # the dup2 actions would overwrite it before using it: lift it above 2 first.
            out = log_fd if log_fd > 2 else fcntl.fcntl(log_fd, fcntl.F_DUPFD_CLOEXEC, 3)
            actions = [(os.POSIX_SPAWN_DUP2, self.devnull, 0), (os.POSIX_SPAWN_DUP2, out, 1),
                       (os.POSIX_SPAWN_DUP2, out, 2)]
            try:
                return Child(os.posix_spawn(SHELL, args, env, file_actions=actions, setsid=True,
                                            setsigdef=_SIGDEF, setsigmask=()))
            except NotImplementedError:  # a Python built without POSIX_SPAWN_SETSID (older macOS)
                _setsid_spawn = False
            finally:
                if out != log_fd:
                    os.close(out)
        import subprocess

        popen = subprocess.Popen(args, env=env, stdin=self.devnull, stdout=log_fd, stderr=log_fd,
                                 start_new_session=True, close_fds=True)
        return Child(popen.pid, popen)


def created(pid: int) -> float:
    """A spawned child's create time, for its identity. Read it after a batch's spawns, not
    between them: just after its exec a child's ``/proc/PID/stat`` took 0.25 to 0.4 ms to read,
    ~0.03 ms once it had run (200 services: 50 to 70 ms of ``start-all``). Unreaped, the
    child is at worst a zombie, which still has its start time."""
    create_time = identity.start_time(pid)
    return time.time() if create_time is None else create_time
