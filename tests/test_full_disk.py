"""A full disk, for real: AUTO_HOME on a small tmpfs that a service fills with its output.
``auto stop`` must still stop it although the stop cannot be written (it goes to the watcher
over its control channel), say so in one line, and the watcher must record it once there is
space again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import kill_home_processes, pid_alive, wait_until

SIZE = 4 * 1024 * 1024


def _can_mount() -> bool:
    return os.geteuid() == 0 and sys.platform.startswith("linux")


@pytest.fixture
def small_home(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if not _can_mount() or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700",
                                           "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root on Linux")
    home = mount / "home"
    try:
        yield home
    finally:
        kill_home_processes(home)
        subprocess.run(["umount", "-l", str(mount)], check=False)


def cli(home, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "auto_core", *args], capture_output=True, text=True,
                          env=dict(os.environ, AUTO_HOME=str(home)), timeout=60)


def state(home) -> dict:
    return json.loads((home / "local" / "state.json").read_text())["processes"]


def free(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# Writes as fast as it can and goes on when the disk is full, as a runaway logger does.
FLOOD = """
import os, time
while True:
    try:
        os.write(1, b"flooding the disk " * 200 + b"\\n")
    except OSError:
        time.sleep(0.01)
"""


def test_stop_reaches_a_service_filling_the_disk_and_is_recorded_later(small_home, tmp_path):
    home = small_home
    script = tmp_path / "flood.py"
    script.write_text(FLOOD)
    result = cli(home, "add", "flood", f"{sys.executable} {script}", "--workdir", "/")
    assert result.returncode == 0, result.stderr
    pid = state(home)["flood"]["pid"]
    wait_until(lambda: free(home) < 64 * 1024, timeout=30, message="the disk full")
    watcher = int((home / "local" / "watch.lock").read_text().split()[0])
    assert pid_alive(pid)  # it goes on writing, or trying to

    result = cli(home, "stop", "flood")
    assert result.returncode == 0, result.stderr
    assert "stopped flood; not recorded yet (No space left on device)" in result.stdout
    assert "Traceback" not in result.stderr
    assert not pid_alive(pid)
    assert pid_alive(watcher)
    assert state(home)["flood"]["pid"] == pid and state(home)["flood"].get("restarts") == 0
    assert state(home)["flood"].get("explicitly_stopped") is False  # not written: the disk is full

    # Space again: the watcher writes what it did.
    log = state(home)["flood"]["log_path"]
    os.truncate(log, 0)
    for part in (home / "output").rglob("*.log.*"):
        part.unlink()
    wait_until(lambda: state(home)["flood"].get("explicitly_stopped") is True, timeout=15,
               message="the stop recorded")
    entry = state(home)["flood"]
    assert entry["outcome"]["ok"] is True and entry["last_exit"]["stopped"] is True
    assert pid_alive(watcher)
    result = cli(home, "ps")
    assert result.returncode == 0 and "stopped" in result.stdout
