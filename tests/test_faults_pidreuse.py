"""A recycled pid is never signalled; a zombie counts as dead.

A pid reused by an unrelated process is simulated with a live process of our own that is
*not* the service (no AUTO_HOME, its own session so its pgid equals its pid, exactly like a
service leader would look) and a recorded ``create_time`` that does not match it. That
process records every catchable signal it receives in a file, so "never signalled" is
checked directly, not inferred from it staying alive.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time

import psutil
import pytest
from helpers import Sentinel, auto, free_port, pid_alive, read_state, wait_until

from auto_core.lifecycle import Api
from auto_core.proc import identity, procgroup
from auto_core.store import watchlock


def point_at(home, name: str, pid: int, create_time) -> None:
    """Rewrite ``name``'s recorded identity (as a crash + reboot would leave it)."""
    data = read_state(home.root)
    data["processes"][name].update(pid=pid, create_time=create_time, explicitly_stopped=False)
    home.state_file.write_text(json.dumps(data))


@pytest.mark.parametrize("recorded", ["wrong-time", "no-time", "string-time"])
@pytest.mark.parametrize("verb", ["stop", "restart", "remove", "start", "stop-all"])
def test_recycled_pid_is_never_signalled(capsys, home, sentinel, verb, recorded):
    assert auto(capsys, "add", "svc", "sleep 1000", "--no-start", "--stop-timeout", "1")[0] == 0
    ct = {"wrong-time": sentinel.create_time - 3600, "no-time": None, "string-time": "12:00"}[recorded]
    point_at(home, "svc", sentinel.pid, ct)

    code, out, err = auto(capsys, "-q", "ps")
    assert out.splitlines()[1].split()[:2] == ["svc", "dead"]
    argv = [verb] if verb == "stop-all" else [verb, "svc"]
    code, out, err = auto(capsys, *argv)
    assert code == 0, err
    sentinel.assert_untouched()
    procs = read_state(home.root)["processes"]
    if verb in ("start", "restart"):
        new = procs["svc"]["pid"]
        assert new != sentinel.pid and pid_alive(new)
        # Stopping the new instance still leaves the unrelated process alone.
        assert auto(capsys, "stop", "svc")[0] == 0
        wait_until(lambda: not pid_alive(new), 10, message="new instance to stop")
        sentinel.assert_untouched()
    elif verb == "remove":
        assert "svc" not in procs
    else:
        assert procs["svc"]["explicitly_stopped"] is True


def test_recycled_pid_holding_the_services_port_is_named_not_killed(capsys, home, tmp_path):
    """The unrelated process has the recorded pid *and* listens on the service's port, and as
    a session leader its pgid equals that pid: it must not pass for the old instance's group."""
    port = free_port()
    s = Sentinel(tmp_path, port=port)
    try:
        wait_until(lambda: not _port_free(port), 10, message="sentinel listening")
        assert auto(capsys, "add", "web", "sleep 1000", "--port", str(port), "--no-start")[0] == 0
        point_at(home, "web", s.pid, s.create_time - 3600)
        for verb in ("start", "restart"):
            code, _, err = auto(capsys, verb, "web")
            assert code == 1, err
            assert f"port {port} is in use by pid {s.pid}" in err
            s.assert_untouched()
        assert not pid_alive(read_state(home.root)["processes"]["web"].get("pid") or 0) or \
            read_state(home.root)["processes"]["web"]["pid"] == s.pid
    finally:
        s.close()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_zombie_service_counts_as_dead(home, tmp_path):
    """A recorded pid that is a zombie (exited, not reaped yet) is dead: ps shows it dead, stop
    does not wait on it, a watcher does not adopt it and start launches a fresh instance.
    Services are the watcher's children and it reaps them, so the zombie here is a child of
    this test that it does not reap, recorded as the entry's run with its true start time."""
    api = Api(home, say=lambda m: None)
    api.add("z", "sleep 1000", workdir=str(tmp_path), start=False)
    zombie = subprocess.Popen(["sh", "-c", "exit 3"], start_new_session=True)
    try:
        pid = zombie.pid
        wait_until(lambda: psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 10, message="zombie")
        point_at(home, "z", pid, identity.start_time(pid))
        assert api.view("z").status == "dead"
        assert procgroup.live_groups([pid]) == set()
        t0 = time.monotonic()
        assert api.stop(["z"])[0].message == "z is already stopped"
        assert time.monotonic() - t0 < 2
        assert watchlock.holder(home) is None  # nothing ran, so no watcher was needed
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # never waited on
        out = api.start(["z"], wait=0)[0]
        assert out.ok and out.pid not in (None, pid) and pid_alive(out.pid), out
        watcher = watchlock.holder(home)
        assert watcher and psutil.Process(out.pid).ppid() == watcher
        assert f"adopt z pid {pid}" not in home.watcher_log.read_text()
    finally:
        zombie.wait()
