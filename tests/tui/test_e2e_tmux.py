"""End to end in a real terminal: tmux runs the installed ``auto tui``; keys drive it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import free_port, pid_alive, read_state, wait_until

from auto_core.store import watchlock
from auto_core.store.paths import Home

AUTO = Path(sys.executable).parent / "auto"

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None or not AUTO.exists(), reason="needs tmux and the venv's auto")


@pytest.fixture
def tmux(tmp_path, auto_home):
    socket = f"auto-e2e-{os.getpid()}-{tmp_path.name[-20:]}"
    conf = tmp_path / "tmux.conf"
    conf.write_text("set -g remain-on-exit on\nset -g status off\nset -g default-size 120x36\n")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", socket, "-f", str(conf), *args],
                              capture_output=True, text=True, check=check, timeout=20)

    yield run
    run("kill-server", check=False)


def test_auto_tui_in_tmux_adds_stops_and_quits_leaving_services(tmux, auto_home, tmp_path):
    env = {"AUTO_HOME": str(auto_home), "TERM": "xterm-256color"}
    exit_file = tmp_path / "tui-exit"
    tmux("new-session", "-d", "-s", "t", "-x", "120", "-y", "36", "-c", str(tmp_path),
         *[a for k, v in env.items() for a in ("-e", f"{k}={v}")], f"{AUTO} tui; echo exit=$? > {exit_file}")

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", "t").stdout

    wait_until(lambda: "No processes yet" in screen(), 20, message="the empty TUI")
    # The TUI brings a watcher up (it carries out the keys' actions) and says so in its header.
    watcher = wait_until(lambda: watchlock.holder(Home(auto_home)), 10, message="the watcher brought up")
    wait_until(lambda: f"watcher running (pid {watcher})" in screen(), message="the watcher in the header")

    tmux("send-keys", "-t", "t", "a")
    wait_until(lambda: "Add a process" in screen(), message="the add form")
    tmux("send-keys", "-t", "t", "-l", "e2e")
    tmux("send-keys", "-t", "t", "Tab")
    tmux("send-keys", "-t", "t", "-l", "echo e2e-hello; exec sleep 300")
    tmux("send-keys", "-t", "t", "Enter")

    def row() -> list[str]:
        return next((line.split() for line in screen().splitlines() if line.split()[:1] == ["e2e"]), [])

    wait_until(lambda: row()[1:2] == ["running"], message="e2e running in the table")
    wait_until(lambda: "e2e-hello" in screen(), message="its log line in the pane")
    pid = read_state(auto_home)["processes"]["e2e"]["pid"]
    assert row()[2] == str(pid) and pid_alive(pid)

    tmux("send-keys", "-t", "t", "x")  # single stop: no confirmation
    wait_until(lambda: not pid_alive(pid), message="e2e stopped")
    assert read_state(auto_home)["processes"]["e2e"]["explicitly_stopped"] is True
    wait_until(lambda: row()[1:2] == ["stopped"], message="stopped in the table")

    tmux("send-keys", "-t", "t", "s")
    new_pid = wait_until(lambda: (p := read_state(auto_home)["processes"]["e2e"].get("pid")) != pid and pid_alive(p or 0) and p,
                         message="started again")
    wait_until(lambda: row()[1:2] == ["running"], message="running again in the table")

    tmux("send-keys", "-t", "t", "q")
    # tmux does not always report the exit status of a dead pane: the shell wrapper records it.
    wait_until(lambda: exit_file.exists() and exit_file.read_text().strip(), message="auto tui exited")
    assert exit_file.read_text().strip() == "exit=0"
    assert "Traceback" not in screen()
    assert pid_alive(new_pid), "quitting the TUI must leave services running"
    assert watchlock.holder(Home(auto_home)) == watcher, "and their watcher"
    state = read_state(auto_home)["processes"]["e2e"]
    assert state["pid"] == new_pid and not state["explicitly_stopped"]


def test_auto_tui_at_80x24_add_form_shows_a_bad_port_then_saves_the_fixed_one(tmux, auto_home, tmp_path):
    env = {"AUTO_HOME": str(auto_home), "TERM": "xterm-256color"}
    exit_file = tmp_path / "tui-exit"
    tmux("new-session", "-d", "-s", "t", "-x", "80", "-y", "24", "-c", str(tmp_path),
         *[a for k, v in env.items() for a in ("-e", f"{k}={v}")], f"{AUTO} tui; echo exit=$? > {exit_file}")

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", "t").stdout

    wait_until(lambda: "No processes yet" in screen(), 20, message="the empty TUI")
    wait_until(lambda: "? Help" in screen() and "q Quit" in screen(), message="? and q in the footer at 80 columns")
    port = free_port()
    tmux("send-keys", "-t", "t", "a")
    wait_until(lambda: "Add a process" in screen(), message="the add form")
    for keys in (["-l", "web"], ["Tab"], ["-l", "sleep 300"], ["Tab"], ["Tab"], ["-l", f"{port}x"], ["Enter"]):
        tmux("send-keys", "-t", "t", *keys)
    wait_until(lambda: f"invalid port '{port}x'" in screen(), message="the port's error in view")
    assert "Port (optional)" in screen()  # still the form, scrolled down to the port
    assert not (auto_home / "state.json").exists() or "web" not in read_state(auto_home)["processes"]

    tmux("send-keys", "-t", "t", "BSpace")
    tmux("send-keys", "-t", "t", "Enter")

    def row() -> list[str]:
        return next((line.split() for line in screen().splitlines() if line.split()[:1] == ["web"]), [])

    wait_until(lambda: row()[1:2] == ["running"], message="web running in the table")
    state = read_state(auto_home)["processes"]["web"]
    assert state["port"] == port and state["command"] == "sleep 300" and pid_alive(state["pid"])
    assert row()[2:4] == [str(state["pid"]), str(port)]

    tmux("send-keys", "-t", "t", "q")
    wait_until(lambda: exit_file.exists() and exit_file.read_text().strip(), message="auto tui exited")
    assert exit_file.read_text().strip() == "exit=0"
    assert "Traceback" not in screen()
