"""Starting a service's process in a new session, output appended to its log.

Every run's log begins with the header ``[auto] start NAME pid PID at TIME: COMMAND``, before
the service's first byte. Two ways to get there:

- A command without shell syntax (``shellwords.simple_argv``) whose program is found on the
  service's PATH is spawned as its own words, by this process: the header is written first
  with room for the pid, the pid is put in its place as soon as the spawn returns, and the
  service's output is appended after it. One exec per start; the extra ``sh`` exec cost ~0.4
  ms per service (200 spawns, side by side: 132 to 137 ms instead of 223 to 240). This needs
  the workdir as this process's cwd for the moment of the spawn (``os.posix_spawn`` has no
  chdir), so it is done only where no other thread can see the change (the CLI, the watcher).
- Anything else, and whatever the direct spawn refuses (a script without ``#!``, a program
  gone meanwhile): a constant shell prologue receives the name, time, command and workdir as
  arguments (never spliced into a shell string), prints the header, changes to the workdir
  and execs the command's words, or ``/bin/sh -c COMMAND``, with the same pid. A command that
  is not found gets the shell's own message and exit code 127.

``os.posix_spawn`` (a vfork in the C library) starts it: ``subprocess.Popen`` cost ~0.2 ms
more per service in Python code, and its import ~4 ms. What Popen did besides is done here:
ignored SIGPIPE/SIGXFSZ are reset (Python ignores them), stdin is /dev/null, and no file
descriptor leaks into the service (``_no_inherit``; posix_spawn has no ``close_fds``). One
difference remains, as with glibc's own system() and popen(), which use posix_spawn too:
its two internal signals (32 and 33) start ignored; libc re-installs them where it uses them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import stat
import threading
import time

from auto_core.proc import identity, shellwords
from auto_core.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable
    from datetime import datetime

SHELL = "/bin/sh"
# $1 name, $2 time, $3 command, $4 workdir. printf's format is constant; data goes through %s.
# The header comes first, so a failing `cd` (the workdir vanished after our check) is logged
# after it; `-P` resolves symlinks as chdir(2) does.
HEADER_FORMAT = "[auto] start %s pid %s at %s: %s"  # name, pid, time, command
_HEADER = f'printf "{HEADER_FORMAT}\\n" "$1" "$$" "$2" "$3"; cd -P -- "$4" || exit 126; '
_PROLOGUE = _HEADER + 'exec ' + SHELL + ' -c "$3"'
# $5... the command's own words (a command with no shell syntax).
_PROLOGUE_ARGV = _HEADER + 'shift 4; exec "$@"'
# A header the spawner writes itself has room for this many pid digits: Linux's PID_MAX_LIMIT
# is 4194304, macOS's pids stay below 100000. What the pid leaves free trails the line as blanks.
PID_ROOM = 7
TRANSIENT = {errno.EAGAIN, errno.ENOMEM, errno.EDEADLK, errno.EINTR}
# Every signal a service can receive starts with its default action, whatever the watcher's
# starter ignored: a command run with `&` or under `nohup` ignores SIGINT, SIGQUIT or SIGHUP,
# an exec keeps an ignored signal ignored, and a service with `--stop-signal SIGINT` would
# then never stop gracefully. (Python itself ignores SIGPIPE and SIGXFSZ.)
_SIGDEF = tuple(s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP))


class SpawnError(OSError):
    """The process could not be started (after retrying transient errors)."""


class Child:
    """A spawned child to reap: ``poll()`` and ``wait(timeout)`` as ``subprocess.Popen`` has
    them (returncode negative for a signal; 0 if something else reaped it first)."""

    __slots__ = ("pid", "returncode", "_lock", "_popen")

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None):
        self.pid = pid
        self.returncode: int | None = None
        self._lock = threading.Lock()  # poll and wait may come from two threads
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
        while (code := self.poll()) is None:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"pid {self.pid} still running after {timeout} s")
            time.sleep(0.002)
        return code


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


def header(name: str, pid: str, stamp: str, command: str) -> bytes:
    """The header line as the prologue prints it, padded for a pid of up to ``PID_ROOM`` digits."""
    pad = " " * max(0, PID_ROOM - len(pid))
    return os.fsencode(HEADER_FORMAT % (name, pid, stamp, command) + pad + "\n")


def argv(name: str, command: str, stamp: str, workdir: str, words: list[str] | None) -> list[str]:
    """The prologue's argv; ``words`` is ``shellwords.simple_argv(command)``."""
    if words is None:
        return [SHELL, "-c", _PROLOGUE, "auto", name, stamp, command, workdir]
    return [SHELL, "-c", _PROLOGUE_ARGV, "auto", name, stamp, command, workdir, *words]


def find_program(word: str, search: str | None, workdir: str) -> str | None:
    """The file ``exec word`` runs in ``workdir`` with PATH ``search`` (sh's search: the first
    executable regular file), or None. An entry of PATH relative to the workdir ends the
    search: that is the shell's business."""
    if "/" in word:
        path = os.path.join(workdir, word)
        return path if _runnable(path) else None
    for directory in (search or "").split(":"):
        if not directory.startswith("/"):
            break
        if _runnable(f"{directory}/{word}"):
            return f"{directory}/{word}"
    return None


def _single_threaded() -> bool:
    return threading.active_count() == 1


def _runnable(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode) and os.access(path, os.X_OK)
    except (OSError, ValueError):
        return False


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
    """What a batch of spawns shares: the environment (made once per batch, not re-read from
    ``os.environ`` for each service), /dev/null, the inheritance pass, the
    programs found on PATH.

    ``direct``: spawn plain commands without the shell prologue (see the module's docstring);
    by default when this process runs no other thread.
    """

    def __init__(self, direct: bool | None = None, inherit: bool = True) -> None:
        # ``inherit`` False: the caller gives each service its whole environment (the watcher
        # does, so a run never depends on the environment of whoever started the watcher).
        self.base = base_env() if inherit else {}
        _no_inherit()
        fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.devnull = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)  # above 0-2: see _start
        os.close(fd)
        self._cwd = None  # this process's own cwd, to come back to after a direct spawn
        if _single_threaded() if direct is None else direct:
            try:
                self._cwd = os.open(".", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                pass
        self._found: dict[tuple[bytes, str], str | None] = {}

    def __enter__(self) -> Spawner:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.devnull)
        if self._cwd is not None:
            os.close(self._cwd)

    def spawn(
        self, name: str, command: str, workdir: str, env: dict | None, log_fd: int,
        when: datetime, retries: int = 6, log_path: str | None = None,
    ) -> Spawned:
        """Start the command detached, output appended to ``log_fd`` (a new, empty log file;
        its ``log_path`` lets a plain command be spawned directly). Retries EAGAIN/ENOMEM/EDEADLK."""
        workdir = os.path.abspath(workdir)
        if not os.path.isdir(workdir):
            raise SpawnError(errno.ENOENT, f"workdir {workdir} is missing or not a directory")
        if not os.access(workdir, os.X_OK):  # the prologue's cd would fail: say so now, no crash loop
            raise SpawnError(errno.EACCES, f"workdir {workdir} cannot be entered (permission denied)")
        full_env = build_env(env, self.base)
        full_env[b"AUTO_SERVICE"] = os.fsencode(name)
        words = shellwords.simple_argv(command)
        program = None
        if words is not None and log_path is not None and self._cwd is not None and _setsid_spawn:
            program = self._program(words[0], full_env, workdir)
        stamp = when.isoformat(timespec="seconds")
        attempt = 0
        while True:
            try:
                if program is not None:
                    # program is set only with both
                    assert words is not None and log_path is not None
                    try:
                        child = self._direct(program, words, full_env, log_fd, log_path, workdir,
                                             header(name, "?", stamp, command),
                                             lambda pid: header(name, str(pid), stamp, command))
                    except OSError as exc:
                        if exc.errno in TRANSIENT:
                            raise
                        # Nothing was started. The shell's way instead: its exec handles what
                        # ours refused (a script without #!) and says in the log what cannot run.
                        os.ftruncate(log_fd, 0)
                        program = None
                        continue
                else:
                    child = self._start(SHELL, argv(name, command, stamp, workdir, words), full_env, log_fd)
                return Spawned(child.pid, child)
            except OSError as exc:
                if exc.errno in TRANSIENT and attempt < retries:
                    time.sleep(0.05 * (2**attempt))
                    attempt += 1
                    continue
                if program is not None:
                    with contextlib.suppress(OSError):
                        os.ftruncate(log_fd, 0)  # no "pid ?" header for a run that never started
                raise SpawnError(exc.errno, exc.strerror or str(exc)) from exc

    def _program(self, word: str, env: dict[bytes, bytes], workdir: str) -> str | None:
        """The file ``exec word`` runs in ``workdir`` with the service's PATH (sh's search:
        the first executable regular file), or None to leave the search to the shell."""
        if "/" in word:
            return find_program(word, None, workdir)
        search = env.get(b"PATH")
        if search is None:
            return None
        key = (search, word)
        if key not in self._found:
            self._found[key] = find_program(word, os.fsdecode(search), workdir)
        return self._found[key]

    def _direct(
        self, program: str, words: list[str], env: dict[bytes, bytes], log_fd: int, log_path: str,
        workdir: str, room: bytes, line: Callable[[int], bytes],
    ) -> Child:
        """``room`` (the header with room for the pid) into the empty log, spawn in
        ``workdir``, then ``line(pid)`` in its place.

        An error raised here means no process was started (the caller falls back to the
        prologue): once the child exists nothing may raise, or a second copy would start.
        """
        at = os.open(log_path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)  # not O_APPEND: pwrite at 0
        try:
            mine, theirs = os.fstat(at), os.fstat(log_fd)
            if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
                raise OSError(errno.ESTALE, f"{log_path} was replaced")
            if mine.st_size == 0:  # a retry after a transient error finds it written
                os.write(at, room)
            os.chdir(workdir)
            try:
                env[b"PWD"] = os.fsencode(os.getcwd())  # what the prologue's `cd -P` exports
                child = self._start(program, words, env, log_fd)
            finally:
                self._come_back()
        except BaseException:
            os.close(at)
            raise
        try:
            done = line(child.pid)
            os.pwrite(at, done if len(done) == len(room) else room, 0)
        except OSError:
            pass  # the header keeps "pid ?"; the state has the pid
        with contextlib.suppress(OSError):
            os.close(at)
        return child

    def _come_back(self) -> None:
        """Back to this process's own cwd. Never raises: if it cannot be entered any more, to
        ``/`` and no more direct spawns (every path auto uses is absolute)."""
        cwd = self._cwd
        try:
            if cwd is None:  # lost by an earlier call: to "/" again, as below
                raise FileNotFoundError(errno.ENOENT, "no cwd to come back to")
            os.fchdir(cwd)
        except OSError:
            if cwd is not None:
                with contextlib.suppress(OSError):
                    os.close(cwd)
            with contextlib.suppress(OSError):
                os.chdir("/")
            self._cwd = None

    def _start(self, path: str, args: list[str], env: dict[bytes, bytes], log_fd: int) -> Child:
        global _setsid_spawn
        if _setsid_spawn:
            # Run with its own 0-2 closed, this process may hold the log on fd 0 to 2, where
            # the dup2 actions would overwrite it before using it: lift it above 2 first.
            out = log_fd if log_fd > 2 else fcntl.fcntl(log_fd, fcntl.F_DUPFD_CLOEXEC, 3)
            actions = [(os.POSIX_SPAWN_DUP2, self.devnull, 0), (os.POSIX_SPAWN_DUP2, out, 1),
                       (os.POSIX_SPAWN_DUP2, out, 2)]
            try:
                return Child(os.posix_spawn(path, args, env, file_actions=actions, setsid=True,
                                            setsigdef=_SIGDEF, setsigmask=()))
            except NotImplementedError:  # a Python built without POSIX_SPAWN_SETSID (older macOS)
                _setsid_spawn = False
            finally:
                if out != log_fd:
                    with contextlib.suppress(OSError):
                        os.close(out)
        if path != SHELL:  # no direct spawn without a new session: the prologue then, via Popen
            raise OSError(errno.ENOSYS, "posix_spawn cannot start a new session here")
        import subprocess

        popen = subprocess.Popen(args, env=env, stdin=self.devnull, stdout=log_fd, stderr=log_fd,
                                 start_new_session=True, close_fds=True)
        return Child(popen.pid, popen)


def created(pid: int) -> float:
    """A spawned child's create time, for its identity. Read it after a batch's spawns, not
    between them: just after its exec a child's ``/proc/PID/stat`` took 0.25 to 0.4 ms to read,
    ~0.03 ms once it had run (200 services: 50 to 80 ms of ``start-all``). Unreaped, the
    child is at worst a zombie, which still has its start time."""
    create_time = identity.start_time(pid)
    return time.time() if create_time is None else create_time
