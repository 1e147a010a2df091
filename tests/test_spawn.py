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



def test_a_caller_with_its_own_stdio_closed_still_gives_the_service_its_log(home, tmp_path):
    """With 0-2 closed in the caller, its log file can be fd 0 and /dev/null fd 1 there: the
    service must still get /dev/null as stdin and the log as stdout and stderr."""
    import subprocess
    import sys

    log, pidfile = tmp_path / "svc.log", tmp_path / "svc.pid"
    script = (
        "import os, sys\n"
        "from datetime import datetime\n"
        "from auto_core import spawn\n"
        "for fd in (0, 1, 2): os.close(fd)\n"
        f"log = os.open({str(log)!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)\n"
        "assert log == 0\n"
        "with spawn.Spawner() as sp:\n"
        "    s = sp.spawn('svc', 'echo out-line; echo err-line >&2; exec sleep 40969', '/', {}, log, datetime.now())\n"
        f"open({str(pidfile)!r}, 'w').write(str(s.pid))\n"
    )
    r = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, AUTO_HOME=str(home.root)), timeout=30)
    assert r.returncode == 0
    pid = int(pidfile.read_text())
    wait_until(lambda: "err-line" in log.read_text(), 5, message="the service's output in its log")
    lines = log.read_text().splitlines()
    assert lines[0].startswith(f"[auto] start svc pid {pid} ") and lines[1:3] == ["out-line", "err-line"]
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    os.killpg(pid, signal.SIGKILL)
