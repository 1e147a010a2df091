"""Every test gets its own AUTO_HOME and leaves no process behind, even when it fails; and the
fixtures many files share: a real watcher, the recording fakes, a stranger process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fakes.harness import Fakes
from helpers import Sentinel, Watcher, procs_with_env

from auto_core.lifecycle import Api
from auto_core.store.paths import Home

_MACHINE_VARS = ("TEXTUAL_THEME", "TEXTUAL_ANIMATIONS", "NO_COLOR", "COLUMNS", "LINES", "FORCE_COLOR")


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


@pytest.fixture(autouse=True)
def auto_home(tmp_path, monkeypatch):
    """A private AUTO_HOME for this test; kills whatever ran under it afterwards."""
    home = tmp_path / "auto-home"
    monkeypatch.setenv("AUTO_HOME", str(home))
    # Even code that ignores AUTO_HOME (platformdirs, ~/bin, ~/.config) must not reach the
    # real user's files.
    user_home = tmp_path / "conftest-home"
    user_home.mkdir()
    monkeypatch.setenv("HOME", str(user_home))
    for var in ("XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(var, raising=False)
    for var in _MACHINE_VARS:
        monkeypatch.delenv(var, raising=False)
    yield home
    kill_home_processes(home)


@pytest.fixture
def home(auto_home) -> Home:
    return Home(auto_home)


@pytest.fixture
def api(home) -> Api:
    return Api(home)


@pytest.fixture
def watcher(auto_home, tmp_path):
    """``watcher(*args, **options)`` starts a real ``auto watch ARGS`` for this test's home and
    returns it once it runs (helpers.Watcher; output in ``watch-N.out`` unless ``out=``).
    Every watcher it started is ended afterwards, whatever the test did to it."""
    started: list[Watcher] = []

    def start(*args: str, out: Path | None = None, **options) -> Watcher:
        w = Watcher(auto_home, out or tmp_path / f"watch-{len(started)}.out", *args, **options)
        started.append(w)
        return w

    try:
        yield start
    finally:
        for w in started:
            w.close()


@pytest.fixture
def fakes(tmp_path, auto_home) -> Fakes:
    """Recording fakes of systemctl, loginctl and launchctl first on PATH, a redirected HOME
    (tests/fakes/harness.py); pass ``fakes.env()`` to the CLI."""
    return Fakes(tmp_path, auto_home)


@pytest.fixture
def stranger():
    """An unrelated ``sleep`` in its own session, outside AUTO_HOME; killed afterwards."""
    env = {k: v for k, v in os.environ.items() if k != "AUTO_HOME"}
    proc = subprocess.Popen(["sleep", "1000"], start_new_session=True, env=env)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def sentinel(tmp_path):
    """An unrelated process that records every signal it gets (helpers.Sentinel)."""
    s = Sentinel(tmp_path)
    try:
        yield s
    finally:
        s.close()
