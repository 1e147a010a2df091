"""Shared test helpers: deadlines instead of sleeps, CLI runners, process lookups."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
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


def read_state(home: Path) -> dict:
    return json.loads((Path(home) / "local" / "state.json").read_text())


def state_bytes(home: Path) -> bytes | None:
    path = Path(home) / "local" / "state.json"
    return path.read_bytes() if path.exists() else None


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return False
    return raw[raw.rfind(b")") + 2 : raw.rfind(b")") + 3] not in (b"Z", b"X")


def procs_with_env(key: str, value: str) -> list[int]:
    """Pids (not zombies) whose environment has ``key=value`` (an exact match: a substring could name another home)."""
    needle = f"{key}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if needle in env and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def procs_with_argv(argv: list[str]) -> list[int]:
    """Pids (not zombies) whose argv is exactly ``argv`` (never a substring match: that could be a stranger)."""
    want = b"\0".join(a.encode() for a in argv) + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if cmd == want and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def auto(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI's ``main`` in-process; return (exit code, stdout, stderr)."""
    from auto_core.cmdline import cli

    capsys.readouterr()
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def group_members(pgid: int) -> dict[int, list[bytes]]:
    """Live (non-zombie) members of process group ``pgid``: pid -> argv."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                raw = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")[:-1]
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            found[int(entry)] = argv
    return found


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
