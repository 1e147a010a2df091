"""Services whose processes leave the process group, with real processes and the real watcher:
a program that daemonizes itself (double fork and ``setsid``) is followed as one copy, not
restarted into many; children that left the group by job control (``set -m``), ``timeout`` or
``setpgid`` go with their service on restart and remove."""

from __future__ import annotations

import os
import socket
import sys

import pytest
from helpers import free_port, holds, pid_alive, sleeps, wait_until

from auto_core.lifecycle import Api

# Exits 0 at once, leaving a grandchild in a session of its own: what `--daemonize yes` does.
DAEMON = "(setsid sleep 31001 &); exit 0"


def api_of(home) -> Api:
    return Api(home, say=lambda m: None, warn=lambda m: None)


def copies(home, n: int) -> list[int]:
    """Live ``sleep N`` processes of this test's home (other tests may run the same markers)."""
    return sleeps(home.root).get(n, [])


@pytest.mark.slow
def test_a_daemonizing_service_is_followed_as_one_copy_and_stopped(home):
    api = api_of(home)
    outcome = api.add("redis", DAEMON, workdir="/")
    assert outcome.ok, outcome.message
    wait_until(lambda: len(copies(home, 31001)) == 1, message="the daemon running")
    daemon = copies(home, 31001)[0]
    wait_until(lambda: api.entry("redis").get("pid") == daemon, message="the daemon followed")
    view = api.view("redis")
    assert view.status == "running" and view.pid == daemon
    # No restarts, so no second copy: watched over a while (a restart loop makes several).
    holds(lambda: copies(home, 31001) == [daemon], 3, message="one copy of the daemon")
    assert api.entry("redis")["restarts"] == 0
    log = open(api.entry("redis")["log_path"]).read()
    assert f"[auto] the service daemonized itself; following pid {daemon}" in log

    stopped = api.stop(["redis"])[0]
    assert stopped.ok, stopped.message
    assert not pid_alive(daemon)
    assert api.view("redis").status == "stopped"


def test_without_daemon_follow_the_leftover_is_stopped_and_the_service_restarted(home):
    api = api_of(home)
    api.add("job", DAEMON, workdir="/", daemon_follow=False, backoff_base=0.2, wait=0)
    def restarted_thrice() -> bool:
        live = copies(home, 31001)
        assert len(live) <= 2, live  # the last run's leftover is killed as the next starts
        return api.entry("job").get("restarts", 0) >= 3

    wait_until(restarted_thrice, message="three restarts")
    assert api.entry("job")["daemon_follow"] is False and api.view("job").daemon_follow is False
    assert api.stop(["job"])[0].ok
    assert copies(home, 31001) == []  # the leftover of the last run too


PORT_DAEMON = """
import os, socket, sys, time
if os.fork(): sys.exit(0)
os.setsid()
if os.fork(): os._exit(0)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", PORT)); s.listen()
while True: time.sleep(1)
"""


def test_a_port_holding_daemon_restarts_without_fighting_itself(home, tmp_path):
    port = free_port()
    script = tmp_path / "portd.py"
    script.write_text(PORT_DAEMON.replace("PORT", str(port)))
    api = api_of(home)
    assert api.add("portd", f"{sys.executable} {script}", workdir="/", port=port).ok
    wait_until(lambda: api.entry("portd").get("daemon_of") is not None, message="the daemon followed")
    first = api.entry("portd")["pid"]
    wait_until(lambda: _listening(port), message="the daemon listening")
    outcome = api.restart(["portd"])[0]
    assert outcome.ok, outcome.message
    wait_until(lambda: api.entry("portd").get("daemon_of") is not None
               and api.entry("portd")["pid"] != first, message="the new daemon followed")
    assert not pid_alive(first)
    wait_until(lambda: _listening(port), message="the new daemon listening")
    assert api.entry("portd")["restarts"] == 0
    api.stop(["portd"])
    wait_until(lambda: not _listening(port), message="the port released")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("command", [
    # job control: the child gets a group of its own (dash turns it off without a terminal)
    "bash -c 'set -m; sleep 31002 & wait'",
    # GNU timeout puts itself in a group of its own unless it leads one already (exec'd)
    "timeout 1000 sleep 31002; exit 0",
    f"{sys.executable} -c 'import os, subprocess; subprocess.Popen([\"sleep\", \"31002\"], "
    "process_group=0).wait()'",  # setpgid(0, 0)
], ids=["set-m", "timeout", "setpgid"])
def test_children_outside_the_group_go_with_restart_and_remove(home, command):
    api = api_of(home)
    assert api.add("tree", command, workdir="/").ok
    wait_until(lambda: len(copies(home, 31002)) == 1, message="the child running")
    old = copies(home, 31002)
    assert os.getpgid(old[0]) != api.entry("tree")["pid"]  # it left the service's group
    outcome = api.restart(["tree"])[0]
    assert outcome.ok, outcome.message
    wait_until(lambda: len(copies(home, 31002)) == 1
               and copies(home, 31002) != old, message="one new child")
    assert not any(pid_alive(p) for p in old)
    removed = api.remove("tree")
    assert removed.ok, removed.message
    assert copies(home, 31002) == []
