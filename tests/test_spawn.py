"""Spawning without posix_spawn's setsid: the Popen path some macOS Pythons take."""

import os
import signal

from helpers import pid_alive, read_state, wait_until

from auto_core import spawn
from auto_core.lifecycle import Api


def test_without_posix_spawn_setsid_services_start_through_popen_in_their_own_session(home, monkeypatch):
    real = os.posix_spawn
    calls = []

    def no_setsid(*args, **kwargs):
        calls.append(kwargs.get("setsid"))
        if kwargs.get("setsid"):
            raise NotImplementedError("setsid not supported")  # what such a Python raises
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "posix_spawn", no_setsid)
    monkeypatch.setattr(spawn, "_setsid_spawn", True)
    api = Api(home, warn=lambda m: None)
    api.add("one", "sleep 40971", workdir="/")
    api.add("two", "sleep 40970; exit 3", workdir="/")
    assert calls == [True], "the first refusal is remembered: no second posix_spawn try"
    procs = read_state(home.root)["processes"]
    for name in ("one", "two"):
        pid = procs[name]["pid"]
        assert pid_alive(pid) and os.getsid(pid) == pid and os.getpgid(pid) == pid
        log = procs[name]["log_path"]
        wait_until(lambda log=log: open(log).read(), 5, message=f"{name}'s header")
        assert open(log).read().startswith(f"[auto] start {name} pid {pid} at ")
    # Reaping goes through the Child, which tells the Popen: its own cleanup never waits on a pid.
    os.kill(procs["one"]["pid"], signal.SIGKILL)
    reaped = wait_until(lambda: api.reap(), 5, message="the exit reaped")
    assert reaped == [("one", procs["one"]["pid"], -signal.SIGKILL)]
    child = api.children[procs["two"]["pid"]][1]
    assert child.poll() is None
    api.stop(["two"])
    wait_until(lambda: child.poll() is not None, 5, message="two reaped")
    assert child._popen.returncode == child.returncode
