"""Every test gets its own AUTO_HOME and leaves no process behind, even when it fails."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from helpers import procs_with_env

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
