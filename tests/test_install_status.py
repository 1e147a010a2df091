"""`auto status` through the real CLI: watcher, login service, state and stale entries.

The watcher is stood in for by a real process that holds ``local/watch.lock`` the way the
watcher does (``watchlock.acquire``): status only relies on that contract.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from fakes.harness import Fakes
from helpers import pid_alive, read_state, run_cli, wait_until

HOLD_LOCK = (
    "import sys, time\n"
    "from auto_core import watchlock\n"
    "from auto_core.paths import Home\n"
    "watchlock.acquire(Home.resolve())\n"
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture
def fakes(tmp_path, auto_home, monkeypatch):
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(var, raising=False)
    return Fakes(tmp_path, auto_home)


@pytest.fixture
def watcher(auto_home):
    """A real process holding the watcher lock of this AUTO_HOME; killed afterwards."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "AUTO_HOME": str(auto_home)})
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def status(fakes: Fakes, **env: str):
    return run_cli("status", env={**fakes.env(), **env})


def install_unit(fakes: Fakes) -> None:
    fakes.rule("systemctl", "--user", "is-active", rc=3, stdout="inactive\n")
    assert run_cli("install", env=fakes.env()).returncode == 0
    fakes.reset()


def test_all_well_exits_0(fakes, watcher, auto_home):
    install_unit(fakes)
    fakes.rule("systemctl", "--user", "is-active", stdout="active\n")
    r = status(fakes)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"watcher:  running (pid {watcher.pid}, since ")
    assert lines[1].startswith("service:  installed and active (auto-watch-")
    assert lines[2] == f"state:    {auto_home}/local/state.json (0 processes)"
    assert lines[3].startswith(f"logs:     {auto_home}/output/logs ")
    assert lines[-1] == "ok"


def test_no_watcher_exits_1(fakes):
    r = status(fakes)
    assert r.returncode == 1
    assert "watcher:  not running" in r.stdout.splitlines()
    assert "service:  not installed" in r.stdout
    assert any(ln.startswith("problem:  no watcher is running") for ln in r.stdout.splitlines())


def test_inactive_service_is_a_problem(fakes, watcher):
    install_unit(fakes)
    fakes.rule("systemctl", "--user", "is-active", rc=3, stdout="failed\n")
    r = status(fakes)
    assert r.returncode == 1
    assert "problem:  unit auto-watch-" in r.stdout and " is failed " in r.stdout


def test_missing_systemctl_is_tolerated(fakes, watcher, tmp_path):
    install_unit(fakes)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    r = status(fakes, PATH=str(empty))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "state unknown" in r.stdout and r.stderr == ""


def test_stale_entry_without_watcher(fakes, auto_home):
    env = fakes.env()
    assert run_cli("add", "svc", "sleep 600", env=env).returncode == 0
    assert run_cli("add", "--no-start", "idle", "sleep 600", env=env).returncode == 0
    pid = read_state(auto_home)["processes"]["svc"]["pid"]
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), message="svc to die")
    r = status(fakes)
    assert r.returncode == 1
    assert "state:    " in r.stdout and "(2 processes)" in r.stdout
    stale = [ln for ln in r.stdout.splitlines() if ln.startswith("problem:  stale:")]
    assert len(stale) == 1 and stale[0].startswith("problem:  stale: svc dead"), r.stdout


def test_dead_entry_with_watcher_is_not_stale(fakes, watcher, auto_home):
    env = fakes.env()
    assert run_cli("add", "svc", "sleep 600", env=env).returncode == 0
    pid = read_state(auto_home)["processes"]["svc"]["pid"]
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), message="svc to die")
    r = status(fakes)
    assert "stale" not in r.stdout
    assert r.returncode == 0, r.stdout


def test_unreadable_state_is_a_problem(fakes, watcher, auto_home):
    (auto_home / "local").mkdir(parents=True, exist_ok=True)
    (auto_home / "local" / "state.json").write_text("{not json")
    r = status(fakes)
    assert r.returncode == 1
    assert f"state:    {auto_home}/local/state.json (unreadable)" in r.stdout.splitlines()
    assert "problem:  state file" in r.stdout and "Traceback" not in r.stderr
    assert (auto_home / "local" / "state.json").read_text() == "{not json"  # left untouched
