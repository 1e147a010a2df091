"""`auto log` of several processes: no name, several names, globs. Real services through the
lifecycle Api, the real CLI in a subprocess, real log files."""

from __future__ import annotations

import os
import pty
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import assert_one_error, run_cli, state_bytes, wait_until

from auto_core.logtree import logs

ESC = "\x1b"


def logged(api, name: str, text: str) -> str:
    """Wait until ``name``'s current log holds ``text``; return its path."""
    def found():
        path = api.log_path(name)
        return path if path and text in Path(path).read_text() else None

    return wait_until(found, message=f"{text!r} in {name}'s log")


def serve(api, name: str, marker: str) -> None:
    """A service that prints ``marker`` once and stays up."""
    assert api.add(name, f"echo {marker}; exec sleep 1000", workdir="/", wait=0).ok
    logged(api, name, marker)


class Follower:
    """``auto log ARGS -f`` in a subprocess, its lines read on a thread so the test waits with a
    deadline; ended (and waited for) by ``close``."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "auto_core", "log", "-f", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.seen: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float = 15.0, count: int = 1) -> list[str]:
        """The lines seen so far that match, once there are ``count`` of them."""
        deadline = time.monotonic() + timeout
        matched = [line for line in self.seen if predicate(line)]
        while True:
            if len(matched) >= count:
                return matched
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {count} matching lines within {timeout} s; "
                                     f"{len(self.seen)} lines, the last: {self.seen[-5:]!r}")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            if predicate(line):
                matched.append(line)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def follower():
    started: list[Follower] = []

    def start(*args: str) -> Follower:
        started.append(Follower(*args))
        return started[-1]

    yield start
    for f in started:
        f.close()


def prefixes(out: str) -> set[str]:
    return {line.split(" | ", 1)[0].strip() for line in out.splitlines()}


def test_two_names_merge_both_logs_with_padded_prefixes_and_not_a_third(api):
    serve(api, "web", "web-up")
    serve(api, "worker", "worker-up")
    serve(api, "db", "db-up")
    r = run_cli("log", "web", "worker")
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert "web    | web-up" in lines and "worker | worker-up" in lines
    assert prefixes(r.stdout) == {"web", "worker"}
    assert any(line.startswith("web    | [auto] start web pid ") for line in lines)
    assert ESC not in r.stdout  # piped: plain
    # No name: every process.
    assert prefixes(run_cli("log").stdout) == {"web", "worker", "db"}


def test_a_glob_selects_only_the_names_it_matches(api):
    for name in ("web-1", "web-2", "db"):
        serve(api, name, f"{name}-up")
    r = run_cli("log", "web-*")
    assert r.returncode == 0
    assert prefixes(r.stdout) == {"web-1", "web-2"}
    assert "web-2 | web-2-up" in r.stdout.splitlines()
    r = run_cli("log", "web-[2]", "db")  # globs and names together, each process once
    assert prefixes(r.stdout) == {"web-2", "db"}
    assert r.stdout.count("db    | db-up") == 1


def test_a_glob_that_matches_nothing_is_one_error_and_changes_nothing(api, auto_home):
    serve(api, "web", "web-up")
    before = state_bytes(auto_home)
    for argv in (["x*"], ["web", "x*"], ["x*", "-f"]):
        r = run_cli("log", *argv, timeout=20)
        line = assert_one_error(r.returncode, r.stderr)
        assert line.startswith("auto: error: no process matches 'x*'")
        assert r.stdout == ""
    r = run_cli("log", "web", "nope")
    assert assert_one_error(r.returncode, r.stderr) == "auto: error: no process named 'nope' (see 'auto ps')"
    r = run_cli("log", "web", "web-*", "--runs")
    assert_one_error(r.returncode, r.stderr, want_code=2)
    r = run_cli("log", "--since", "10x")
    assert "--since" in assert_one_error(r.returncode, r.stderr, want_code=2)
    assert state_bytes(auto_home) == before


def test_n_counts_lines_over_all_the_services(api):
    for name in ("a", "b", "c"):
        assert api.add(name, f"for i in 1 2 3 4 5 6; do echo {name}$i; done; exec sleep 1000",
                       workdir="/", wait=0).ok
    for name in ("a", "b", "c"):
        logged(api, name, f"{name}6")
    r = run_cli("log", "-n", "5")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert len(lines) == 5, lines
    assert all(re.fullmatch(r"[abc] \| .+", line) for line in lines)
    assert run_cli("log", "-n", "0").stdout == ""


def test_the_opening_lines_are_ordered_by_when_each_file_was_written(api, home):
    """Two runs' files made by hand: the one written ten minutes ago comes first, whatever
    the names' order; --since 5m leaves it out."""
    now = time.time()
    for name, age in (("early", 600), ("late", 0)):
        assert api.add(name, "true", workdir="/", start=False).ok
        path, fd = logs.create_run_log(home, name)
        os.close(fd)
        Path(path).write_text("".join(f"{name} {i}\n" for i in range(3)))
        os.utime(path, (now - age, now - age))
    out = run_cli("log", "late", "early").stdout.splitlines()
    assert out == [f"early | early {i}" for i in range(3)] + [f"late  | late {i}" for i in range(3)]
    assert run_cli("log", "--since", "5m").stdout.splitlines() == [f"late  | late {i}" for i in range(3)]
    # One name keeps its plain output; --since leaves out a log not written in the window.
    assert run_cli("log", "early").stdout.splitlines() == [f"early {i}" for i in range(3)]
    assert run_cli("log", "early", "--since", "5m").stdout == ""


def run_on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """``auto ARGS`` with its stdout on a pseudo-terminal; everything it wrote there."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "auto_core", *args], stdout=slave,
                            stderr=subprocess.PIPE, env={**os.environ, **env})
    os.close(slave)
    got = b""
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other end closed
                break
            if not chunk:
                break
            got += chunk
    finally:
        os.close(master)
        proc.wait(timeout=20)
    assert proc.returncode == 0
    return got.decode().replace("\r\n", "\n")


def test_colours_on_a_terminal_only_and_never_with_no_color(api):
    serve(api, "web", "web-up")
    serve(api, "worker", "worker-up")
    coloured = run_on_a_terminal(["log"], {})
    web = re.search(r"\x1b\[(\d+)mweb    \| \x1b\[0mweb-up", coloured)
    worker = re.search(r"\x1b\[(\d+)mworker \| \x1b\[0mworker-up", coloured)
    assert web and worker, coloured
    # The same colour for a name every time.
    assert re.search(rf"\x1b\[{web.group(1)}mweb \| ", run_on_a_terminal(["log", "web", "web"], {}))
    plain = run_on_a_terminal(["log"], {"NO_COLOR": "1"})
    assert ESC not in plain and "web    | web-up" in plain.splitlines()
    # One name on a terminal: its log as written, no prefix.
    assert "web-up" in run_on_a_terminal(["log", "web"], {}).splitlines()


def test_follow_sees_both_services_restarts_removals_and_a_service_added_meanwhile(api, auto_home, follower):
    go = auto_home / "go"
    wait_go = f"while [ ! -e {go} ]; do sleep 0.05; done; echo after-go; exec sleep 1000"
    for name in ("web-1", "web-2"):
        assert api.add(name, wait_go, workdir="/", wait=0).ok
        logged(api, name, "[auto] start")
    serve(api, "db", "db-up")
    f = follower("web-*")
    f.wait_for(lambda line: line.startswith("web-2 | [auto] start web-2"))
    go.touch()  # what the services print now is new to the follower
    f.wait_for(lambda line: line == "web-1 | after-go")
    f.wait_for(lambda line: line == "web-2 | after-go")

    assert api.add("web-three", "echo hello-3; exec sleep 1000", workdir="/", wait=0).ok
    f.wait_for(lambda line: line == "web-three | hello-3")
    assert api.restart(["web-1"])[0].ok
    f.wait_for(lambda line: re.fullmatch(r"web-1 +\| ----- new run: .+ -----", line))
    f.wait_for(lambda line: re.fullmatch(r"web-1 +\| after-go", line), count=2)
    api.remove("web-2")
    f.wait_for(lambda line: re.fullmatch(r"web-2 +\| ----- removed -----", line))
    assert f.proc.poll() is None, "log -f keeps following"
    assert not any(line.startswith("db") for line in f.seen)


def test_followed_lines_are_whole_however_the_writers_cut_them(api, follower):
    """Two services write 20,000 lines each through `head`, whose writes end mid-line; every
    line comes out whole under its own prefix. An unterminated line comes after a short wait."""
    serve(api, "w-0", "w0-up")
    f = follower("w-*")
    f.wait_for(lambda line: line == "w-0 | w0-up")  # the follower is open: what comes is new
    body = "x" * 100
    for name in ("w-1", "w-2"):
        assert api.add(name, f"yes {name}-{body} | head -n 20000; printf {name}-tail; exec sleep 1000",
                       workdir="/", wait=0).ok
    for name in ("w-1", "w-2"):
        f.wait_for(lambda line, name=name: line == f"{name} | {name}-tail", timeout=30)
    for name in ("w-1", "w-2"):
        theirs = [line for line in f.seen if line.startswith(f"{name} | ")]
        assert theirs[0].startswith(f"{name} | [auto] start {name} ")
        assert theirs[1:] == [f"{name} | {name}-{body}"] * 20000 + [f"{name} | {name}-tail"]
