"""Shared test helpers: deadlines instead of sleeps, CLI runners, the bad-input contract,
process lookups, and a real watcher to run beside a test."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate, timeout: float = 10.0, step: float = 0.02, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(step)


def holds(predicate, seconds: float, step: float = 0.05, message: str = "condition") -> None:
    """Assert ``predicate`` stays true for ``seconds`` (a bounded check that nothing happens)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), f"{message} stopped holding"
        time.sleep(step)


def run_cli(*args: str, home: Path | None = None, env: dict | None = None, timeout: float = 60,
            cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run the real ``auto`` entry point (``python -m auto_core``) in a subprocess."""
    full_env = dict(os.environ)
    if home is not None:
        full_env["AUTO_HOME"] = str(home)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "auto_core", *args],
        capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd,
    )


def auto(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI's ``main`` in-process; return (exit code, stdout, stderr)."""
    from auto_core.cmdline import cli

    capsys.readouterr()
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error(code: int, err: str, want_code: int = 1) -> str:
    """Bad input's contract: exit ``want_code`` and exactly one stderr line, ``auto: error: ...``
    (no traceback). Returns that line."""
    assert code == want_code, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("auto: error: "), err
    assert "Traceback" not in err
    return lines[0]


def read_state(home: Path) -> dict:
    return json.loads((Path(home) / "local" / "state.json").read_text())


def state_bytes(home: Path) -> bytes | None:
    path = Path(home) / "local" / "state.json"
    return path.read_bytes() if path.exists() else None


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- processes, from /proc ------------------------------------------------------------------


def proc_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def proc_read(pid: int | str, name: str) -> bytes | None:
    """``/proc/PID/NAME``, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/{name}", "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _stat_fields(pid: int | str) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the command name: state, ppid, pgrp, ..."""
    raw = proc_read(pid, "stat")
    return None if raw is None else raw[raw.rfind(b")") + 2 :].split()


def proc_state(pid: int) -> str | None:
    """The state letter of ``pid`` (R, S, T for stopped, Z for a zombie, ...); None once gone."""
    fields = _stat_fields(pid)
    return fields[0].decode() if fields else None


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    return proc_state(pid) not in (None, "Z", "X")


def ppid(pid: int) -> int:
    fields = _stat_fields(pid)
    assert fields, f"pid {pid} is gone"
    return int(fields[1])


def has_env(pid: int | str, key: str, value: str) -> bool:
    """Whether ``pid``'s environment has ``key=value`` (an exact match: a substring could name another home)."""
    env = proc_read(pid, "environ")
    return env is not None and f"{key}={value}".encode() in env.split(b"\0")


def procs_with_env(key: str, value: str) -> list[int]:
    """Pids (not zombies) whose environment has ``key=value``."""
    return [pid for pid in proc_pids() if pid != os.getpid() and has_env(pid, key, value) and pid_alive(pid)]


def procs_with_argv(argv: list[str]) -> list[int]:
    """Pids (not zombies) whose argv is exactly ``argv`` (never a substring match: that could be a stranger)."""
    want = b"\0".join(a.encode() for a in argv) + b"\0"
    return [pid for pid in proc_pids() if proc_read(pid, "cmdline") == want and pid_alive(pid)]


def kill_home_processes(home: Path) -> None:
    """SIGKILL the process group of every process started under ``home`` (found by its
    inherited AUTO_HOME), then wait for them to go."""
    for _ in range(3):
        pids = procs_with_env("AUTO_HOME", str(home))
        if not pids:
            return
        own_group = os.getpgid(0)
        for pid in pids:
            try:
                pgid = os.getpgid(pid)
                if pgid != own_group:
                    os.killpg(pgid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and procs_with_env("AUTO_HOME", str(home)):
            try:
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            except ChildProcessError:
                pass
            time.sleep(0.02)


def sleeps(home: Path | str) -> dict[int, list[int]]:
    """Live ``sleep N`` processes started under AUTO_HOME ``home`` (found by their inherited
    AUTO_HOME: another run of the suite may be going on), by N: the marker of many tests."""
    found: dict[int, list[int]] = {}
    for pid in proc_pids():
        argv = (proc_read(pid, "cmdline") or b"").split(b"\0")
        if (len(argv) == 3 and argv[0] == b"sleep" and argv[1].isdigit() and pid_alive(pid)
                and has_env(pid, "AUTO_HOME", str(home))):
            found.setdefault(int(argv[1]), []).append(pid)
    return found


def group_members(pgid: int) -> dict[int, list[bytes]]:
    """Live (non-zombie) members of process group ``pgid``: pid -> argv."""
    found = {}
    for pid in proc_pids():
        fields = _stat_fields(pid)
        cmdline = proc_read(pid, "cmdline")
        if fields is None or cmdline is None:
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            found[pid] = cmdline.split(b"\0")[:-1]
    return found


# Catches every signal it can, logs its number, keeps running. Optionally listens on a port.
_SENTINEL = """
import os, signal, socket, sys, time
log = sys.argv[1]
def note(sig, frame):
    with open(log, "a") as fh:
        fh.write(f"{sig}\\n")
for s in signal.valid_signals():
    if s not in (signal.SIGKILL, signal.SIGSTOP):
        try:
            signal.signal(s, note)
        except (OSError, ValueError):
            pass
if len(sys.argv) > 2:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(sys.argv[2])))
    srv.listen()
open(log + ".ready", "w").close()
while True:
    time.sleep(1)
"""


class Sentinel:
    """An unrelated live process (no AUTO_HOME, its own session: its pgid is its pid, as a
    service leader's) that records every signal it gets, optionally listening on ``port``.
    The ``sentinel`` fixture starts one and kills it afterwards."""

    def __init__(self, tmp_path: Path, port: int | None = None):
        import psutil

        self.log = tmp_path / f"sentinel-{time.monotonic_ns()}.signals"
        env = {k: v for k, v in os.environ.items() if k != "AUTO_HOME"}
        argv = [sys.executable, "-c", _SENTINEL, str(self.log)] + ([str(port)] if port else [])
        self.proc = subprocess.Popen(argv, env=env, start_new_session=True)
        try:
            wait_until(lambda: os.path.exists(f"{self.log}.ready"), 10, message="sentinel ready")
        except BaseException:
            self.close()
            raise
        self.pid = self.proc.pid
        self.create_time = psutil.Process(self.pid).create_time()

    def signals(self) -> list[int]:
        return [int(x) for x in self.log.read_text().split()] if self.log.exists() else []

    def assert_untouched(self) -> None:
        assert self.proc.poll() is None and pid_alive(self.pid), "the unrelated process died"
        assert self.signals() == [], f"the unrelated process got signals {self.signals()}"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


_HEADER = re.compile(r"\[auto\] start (\S+) pid (\d+) at [0-9T:-]{19}: (.*)")


def header_by(line: str, name: str, pid: int, command: str) -> str:
    """Who wrote this exact run-log header for ``pid``: "shell" (the spawn prologue's printf)
    or "direct" (auto itself, padded for a 7-digit pid); fails for anything else."""
    m = _HEADER.fullmatch(line)
    assert m and m.group(1) == name and int(m.group(2)) == pid, line
    if m.group(3) == command:
        return "shell"
    assert m.group(3) == command + " " * (7 - len(str(pid))), line
    return "direct"


# --- a real watcher -------------------------------------------------------------------------

WATCH = [sys.executable, "-m", "auto_core", "watch"]
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"
LINE_RE = re.compile(rf"^({STAMP}) (.*)$")  # every line the watcher writes


class Watcher:
    """A real ``auto watch ARGS`` (or ``argv``) for AUTO_HOME ``home``, in its own session as
    one started on demand is, its output appended to ``out``. Returns once the watcher says it
    started (it holds the watch lock by then). The ``watcher`` fixture starts these and closes
    every one after the test.

    ``env`` replaces the environment (default: this one with AUTO_HOME), ``cwd`` the working
    directory, ``umask`` the watcher's umask.
    """

    def __init__(self, home: Path, out: Path, *args: str, argv: list[str] | None = None,
                 env: dict[str, str] | None = None, cwd: str | os.PathLike = ROOT,
                 umask: int | None = None, timeout: float = 15.0):
        self.out = Path(out)
        self._fh = open(self.out, "ab")
        self.mark = self.out.stat().st_size  # where this watcher's output begins
        self.proc = subprocess.Popen(
            argv or [*WATCH, *args], stdin=subprocess.DEVNULL, stdout=self._fh, stderr=subprocess.STDOUT,
            env=dict(os.environ, AUTO_HOME=str(home)) if env is None else env, cwd=cwd,
            start_new_session=True, preexec_fn=None if umask is None else (lambda: os.umask(umask)))
        try:
            self.wait_line(r"^watcher started ", timeout=timeout)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        """What this watcher has written so far."""
        with open(self.out, "rb") as fh:
            fh.seek(self.mark)
            return fh.read().decode(errors="replace")

    def events(self) -> list[tuple[datetime, str]]:
        found = []
        for line in self.text().splitlines():
            m = LINE_RE.match(line)
            if m:
                found.append((datetime.fromisoformat(m.group(1)), m.group(2)))
        return found

    def lines(self, pattern: str) -> list[str]:
        rx = re.compile(pattern)
        return [msg for _, msg in self.events() if rx.search(msg)]

    def wait_line(self, pattern: str, timeout: float = 10.0, count: int = 1) -> re.Match:
        """The ``count``-th match of ``pattern`` among the watcher's lines (stamps left out);
        fails with its output if it exits or the deadline passes first."""
        rx = re.compile(pattern)

        def found():
            if self.proc.poll() is not None:
                raise AssertionError(f"watcher exited ({self.proc.returncode}):\n{self.text()}")
            hits = [m for _, msg in self.events() if (m := rx.search(msg))]
            return hits[count - 1] if len(hits) >= count else None

        try:
            return wait_until(found, timeout, message=f"watcher line /{pattern}/ x{count}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- watcher output ---\n{self.text()}") from None

    def signal(self, sig: int, timeout: float = 10.0) -> int:
        """Send ``sig``; its exit code once it has exited."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would end it (its services live on)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        """End it the way its service manager would (SIGTERM; services live on, the test's
        home cleanup ends them); its whole process group is killed if it does not exit."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        self._fh.close()


def systemd_analyze_verify(path) -> subprocess.CompletedProcess:
    """``systemd-analyze verify PATH`` (the test is skipped where the tool is missing)."""
    import pytest

    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (./run test installs it on apt machines)")
    return subprocess.run([exe, "verify", str(path)], capture_output=True, text=True, timeout=60)
