"""`auto status` through the real CLI: watcher, login service, state and stale entries.

The watcher is stood in for by a real process that holds ``local/watch.lock`` the way the
watcher does (``watchlock.acquire``): status only relies on that contract. Where a service must
really start, the real watcher that ``auto add`` brings up on demand is used instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from fakes.harness import Fakes
from helpers import pid_alive, read_state, run_cli, wait_until

from auto_core.store import watchlock
from auto_core.store.paths import Home

HOLD_LOCK = (
    "import sys, time\n"
    "from auto_core.store import watchlock\n"
    "from auto_core.store.paths import Home\n"
    "watchlock.acquire(Home.resolve(), kind=sys.argv[1])\n"
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)


def hold_lock(auto_home, kind: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, kind], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "AUTO_HOME": str(auto_home)})
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.fixture
def lock_holder(auto_home):
    """A real process holding the watcher lock of this AUTO_HOME as one started on demand;
    killed afterwards."""
    proc = hold_lock(auto_home, "on-demand")
    try:
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


def test_all_well_exits_0(fakes, lock_holder, auto_home):
    install_unit(fakes)
    fakes.rule("systemctl", "--user", "is-active", stdout="active\n")
    r = status(fakes)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"watcher:  running, started on demand (pid {lock_holder.pid}, since ")
    assert lines[1].startswith("service:  installed and active (auto-watch-")
    assert lines[2] == f"state:    {auto_home}/local/state.json (0 processes)"
    assert lines[3].startswith(f"logs:     {auto_home}/output/logs ")
    assert lines[-1] == "ok"


def test_a_login_watcher_is_named_as_such(fakes, auto_home):
    proc = hold_lock(auto_home, "login")
    try:
        r = status(fakes)
        first = r.stdout.splitlines()[0]
        assert first.startswith(f"watcher:  running, started at login (pid {proc.pid}, since "), r.stdout
        assert "no watcher" not in r.stdout
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_no_watcher_exits_1(fakes):
    r = status(fakes)
    assert r.returncode == 1
    assert "watcher:  not running" in r.stdout.splitlines()
    assert "service:  not installed" in r.stdout
    assert any(ln.startswith("problem:  no watcher is running") for ln in r.stdout.splitlines())


def test_inactive_service_is_a_problem(fakes, lock_holder):
    install_unit(fakes)
    fakes.rule("systemctl", "--user", "is-active", rc=3, stdout="failed\n")
    r = status(fakes)
    assert r.returncode == 1
    assert "problem:  unit auto-watch-" in r.stdout and " is failed " in r.stdout


def test_missing_systemctl_is_tolerated(fakes, lock_holder, tmp_path):
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
    # The watcher `add` started goes away (services keep running), then the service dies.
    on_demand = watchlock.holder(Home(auto_home))
    assert on_demand is not None
    os.kill(on_demand, signal.SIGTERM)
    wait_until(lambda: watchlock.holder(Home(auto_home)) is None, message="the watcher to exit")
    assert pid_alive(pid)
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), message="svc to die")
    r = status(fakes)
    assert r.returncode == 1
    assert "state:    " in r.stdout and "(2 processes)" in r.stdout
    stale = [ln for ln in r.stdout.splitlines() if ln.startswith("problem:  stale:")]
    assert len(stale) == 1 and stale[0].startswith("problem:  stale: svc dead"), r.stdout


def test_dead_entry_with_watcher_is_not_stale(fakes, auto_home):
    env = fakes.env()
    # The real watcher `add` starts; a long backoff keeps the service dead while status looks.
    assert run_cli("add", "svc", "sleep 600", "--backoff-base", "600", env=env).returncode == 0
    on_demand = watchlock.holder(Home(auto_home))
    assert on_demand is not None
    pid = read_state(auto_home)["processes"]["svc"]["pid"]
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: (read_state(auto_home)["processes"]["svc"].get("last_exit") or {}).get("pid") == pid,
               message="the watcher to record svc's death")
    r = status(fakes)
    assert r.stdout.splitlines()[0].startswith(f"watcher:  running, started on demand (pid {on_demand}, ")
    assert "(1 process)" in r.stdout and not pid_alive(pid)
    assert "stale" not in r.stdout
    assert r.returncode == 0, r.stdout


def test_unreadable_state_is_a_problem(fakes, lock_holder, auto_home):
    (auto_home / "local").mkdir(parents=True, exist_ok=True)
    (auto_home / "local" / "state.json").write_text("{not json")
    r = status(fakes)
    assert r.returncode == 1
    assert f"state:    {auto_home}/local/state.json (unreadable)" in r.stdout.splitlines()
    assert "problem:  state file" in r.stdout and "Traceback" not in r.stderr
    assert (auto_home / "local" / "state.json").read_text() == "{not json"  # left untouched
