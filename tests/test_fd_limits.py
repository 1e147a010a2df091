"""The open-file limit, with real processes: auto raises its soft limit to the hard one, so a
macOS-sized default (256) does not cap the number of services; and where the hard limit itself
is too small for a pidfd per service, the watcher checks the rest once a second, keeps
descriptors for its own work, and keeps serving requests."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys

import pytest
from helpers import read_state, run_cli, wait_until

from auto_core.lifecycle import Api
from auto_core.proc import limits

SERVICES = 300


def limited(soft: int, hard: int, *argv: str) -> list[str]:
    """``argv`` run under an open-file limit of ``soft``/``hard`` (what `ulimit -n` sets)."""
    return [sys.executable, "-c",
            "import os, resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard})); "
            "os.execvp(sys.argv[1], sys.argv[1:])", *argv]


def test_the_soft_limit_is_raised_to_the_hard_one():
    probe = ("from auto_core.proc import limits; import resource; limits.raise_nofile(); "
             "print(*resource.getrlimit(resource.RLIMIT_NOFILE))")
    out = subprocess.run(limited(256, 4096, sys.executable, "-c", probe), capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ["4096", "4096"]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    out = subprocess.run(limited(256, hard, sys.executable, "-c", probe), capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == [str(min(hard, limits.NOFILE_TARGET)), str(hard)]  # capped


def add_many(home) -> None:
    api = Api(home, say=lambda m: None, warn=lambda m: None)
    for i in range(SERVICES):
        api.add(f"s{i:03}", "exec sleep 31003", workdir="/", start=False)


@pytest.mark.slow
def test_300_services_start_under_a_soft_limit_of_256(home, watcher):
    add_many(home)
    w = watcher(argv=limited(256, 4096, *[sys.executable, "-m", "auto_core", "watch"]))
    result = run_cli("start-all", home=home.root, timeout=120)
    assert result.returncode == 0, result.stderr
    live = {e["pid"] for e in read_state(home.root)["processes"].values()}
    assert len(live) == SERVICES and None not in live
    assert "Too many open files" not in w.text() and "Traceback" not in w.text()


@pytest.mark.slow
def test_a_hard_limit_below_the_services_keeps_every_one_watched(home, watcher):
    """Hard limit 256, 300 services: past the limit minus a reserve the watcher watches a
    pid by a check once a second instead of a pidfd, so every service starts and stays
    watched, and the watcher keeps descriptors for its state file and the logs."""
    add_many(home)
    w = watcher(argv=limited(256, 256, *[sys.executable, "-m", "auto_core", "watch"]))
    result = run_cli("start-all", home=home.root, timeout=180)
    assert result.returncode == 0, result.stderr
    state = read_state(home.root)["processes"]
    assert all(e.get("pid") for e in state.values())
    fds = len(os.listdir(f"/proc/{w.pid}/fd"))
    assert fds <= 256 - 32, f"the watcher holds {fds} descriptors"
    # The last service started is watched by the once-a-second check: a death is seen.
    victim = max(state)
    old = state[victim]["pid"]
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: read_state(home.root)["processes"][victim].get("pid") not in (None, old),
               timeout=30, message="the death seen and the service restarted")
    assert (read_state(home.root)["processes"][victim].get("last_exit") or {}).get("pid") == old
    result = run_cli("stop", victim, home=home.root, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in w.text() and "Too many open files" not in w.text()
