"""Every test gets its own AUTO_HOME and leaves no process behind, even when it fails; and the
fixtures many files share: a real watcher, the recording fakes, a stranger process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from fakes.harness import Fakes
from helpers import Sentinel, Watcher, kill_home_processes

from auto_core.lifecycle import Api
from auto_core.store.paths import Home

_MACHINE_VARS = ("TEXTUAL_THEME", "TEXTUAL_ANIMATIONS", "NO_COLOR", "COLUMNS", "LINES", "FORCE_COLOR")


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
