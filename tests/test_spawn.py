"""Spawning services: without posix_spawn's setsid (the Popen path some macOS Pythons take),
with the caller's stdio closed, plain commands spawned directly, and the shell prologue."""

import os
import re
import signal
import subprocess
import sys

from helpers import header_by, pid_alive, ppid, procs_with_argv, read_state, run_cli, wait_until

from auto_core.proc import spawn
from auto_core.store import watchlock

NO_SETSID_WATCHER = """\
import os, sys
from auto_core.cmdline import cli
real = os.posix_spawn
def no_setsid(*args, **kwargs):
    if kwargs.get("setsid"):
        with open(sys.argv[1], "a") as fh:
            fh.write("setsid\\n")
        raise NotImplementedError("setsid not supported")  # what such a Python raises
    return real(*args, **kwargs)
os.posix_spawn = no_setsid
sys.exit(cli.main(["watch"]))
"""


def test_without_posix_spawn_setsid_the_watcher_starts_services_through_popen_in_their_own_session(home, tmp_path, watcher):
    """A watcher whose Python cannot posix_spawn into a new session: services still lead
    their own session, are its children, and their exits are recorded with their status."""
    calls = tmp_path / "setsid-calls"
    w = watcher(argv=[sys.executable, "-c", NO_SETSID_WATCHER, str(calls)])
    assert watchlock.holder(home) == w.pid
    for name, command in (("one", "sleep 40971"), ("two", "sleep 40970; exit 3")):
        r = run_cli("add", name, command, "--workdir", "/", "--wait", "0", home=home.root)
        assert r.returncode == 0, r.stderr
        assert "started the watcher" not in r.stderr
    assert calls.read_text() == "setsid\n", "the first refusal is remembered: no second posix_spawn try"
    procs = read_state(home.root)["processes"]
    for name in ("one", "two"):
        entry = procs[name]
        pid = entry["pid"]
        assert pid_alive(pid) and os.getsid(pid) == pid and os.getpgid(pid) == pid
        assert ppid(pid) == w.pid
        log = entry["log_path"]
        wait_until(lambda log=log: open(log).read(), 5, message=f"{name}'s header")
        assert header_by(open(log).read().splitlines()[0], name, pid, entry["command"]) == "shell"
    # The watcher reaps its Popen children: the status of a death is known.
    one = procs["one"]["pid"]
    os.kill(one, signal.SIGKILL)
    wait_until(lambda: (read_state(home.root)["processes"]["one"].get("last_exit") or {}).get("pid") == one, 5,
               message="one's death recorded")
    last = read_state(home.root)["processes"]["one"]["last_exit"]
    assert last["signal"] == signal.SIGKILL and "unknown" not in last
    stop = run_cli("stop", "two", home=home.root)
    assert stop.returncode == 0 and stop.stdout.startswith("stopped two (SIGTERM, "), stop
    last = read_state(home.root)["processes"]["two"]["last_exit"]
    assert last["stopped"] is True and last["signal"] == signal.SIGTERM and "unknown" not in last
    w.close()
    assert "Traceback" not in w.text()


def test_a_popen_child_is_reaped_through_the_child_which_tells_its_popen(home, monkeypatch):
    """Without posix_spawn's setsid the Spawner falls back to Popen; reaping goes through the
    Child, which tells the Popen the code: its own cleanup never waits on that pid."""
    from datetime import datetime

    from auto_core.logtree import logs

    real = os.posix_spawn
    calls = []

    def no_setsid(*args, **kwargs):
        calls.append(kwargs.get("setsid"))
        if kwargs.get("setsid"):
            raise NotImplementedError("setsid not supported")
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "posix_spawn", no_setsid)
    monkeypatch.setattr(spawn, "_setsid_spawn", True)
    spawned = []
    with spawn.Spawner() as sp:
        for name, command in (("one", "sleep 40971"), ("two", "sleep 40970; exit 3")):
            when = datetime.now()
            path, fd = logs.create_run_log(home, name, when)
            try:
                spawned.append(sp.spawn(name, command, "/", {}, fd, when, log_path=str(path)))
            finally:
                os.close(fd)
    assert calls == [True], "the first refusal is remembered: no second posix_spawn try"
    for s in spawned:
        assert s.child._popen is not None and s.child._popen.pid == s.pid
        assert os.getsid(s.pid) == s.pid
    one, two = spawned
    os.kill(one.pid, signal.SIGKILL)
    assert one.child.wait(5) == -signal.SIGKILL and one.child._popen.returncode == -signal.SIGKILL
    assert two.child.poll() is None and two.child._popen.returncode is None
    os.killpg(two.pid, signal.SIGTERM)
    assert two.child.wait(5) == -signal.SIGTERM and two.child._popen.returncode == -signal.SIGTERM


def test_a_caller_with_its_own_stdio_closed_still_gives_the_service_its_log(home, tmp_path):
    """With 0-2 closed in the caller, its log file can be fd 0 and /dev/null fd 1 there: the
    service must still get /dev/null as stdin and the log as stdout and stderr."""
    log, pidfile = tmp_path / "svc.log", tmp_path / "svc.pid"
    script = (
        "import os, sys\n"
        "from datetime import datetime\n"
        "from auto_core.proc import spawn\n"
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
    # (the header names the command, so wait for the line itself)
    wait_until(lambda: "err-line" in log.read_text().splitlines(), 5, message="the service's output in its log")
    lines = log.read_text().splitlines()
    assert lines[0].startswith(f"[auto] start svc pid {pid} ") and lines[1:3] == ["out-line", "err-line"]
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    os.killpg(pid, signal.SIGKILL)


# --- a plain command spawned directly (no shell prologue) ---------------------------------------
# The watcher runs no other thread, so it spawns plain commands itself: these tests go through
# the real CLI and the watcher it starts. The header the spawner writes is padded to a 7-digit
# pid; the prologue's is not, which tells the two ways apart (helpers.header_by).

def _add(home, name: str, command: str, workdir, *extra: str) -> dict:
    r = run_cli("add", name, command, "--workdir", str(workdir), *extra, home=home.root)
    assert r.returncode == 0, r.stderr
    return read_state(home.root)["processes"][name]


def test_a_plain_command_that_prints_at_once_still_has_its_header_first(home, tmp_path):
    """`env` writes as soon as it runs: its output must still follow a complete header with the
    real pid, in every run; the environment says where it runs (`cd -P`'s PWD) and for whom."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    # It exits at once on purpose (--wait 0); the long backoff leaves every start to the test.
    entry = _add(home, "env", "env", tmp_path / "link", "--wait", "0", "--backoff-base", "600")
    for run in range(12):
        if run:
            wait_until(lambda pid=entry["pid"]: (read_state(home.root)["processes"]["env"].get("last_exit")
                                                 or {}).get("pid") == pid, 5, message="the last run's exit recorded")
            r = run_cli("start", "env", "--wait", "0", home=home.root)
            assert r.returncode == 0, r.stderr
            entry = read_state(home.root)["processes"]["env"]
        log = entry["log_path"]
        wait_until(lambda log=log: "AUTO_SERVICE=env\n" in open(log).read(), 5, message="env's output")
        lines = open(log).read().splitlines()
        assert header_by(lines[0], "env", entry["pid"], "env") == "direct"
        assert f"PWD={real}" in lines and "AUTO_SERVICE=env" in lines
        assert not any(line.startswith("[auto] start") for line in lines[1:])


def test_a_plain_command_runs_the_program_the_services_path_finds(home, tmp_path):
    """The search is sh's: the service's recorded PATH, not the caller's, and the first
    executable regular file (a non-executable one earlier on PATH is passed over)."""
    first, second = tmp_path / "bin1", tmp_path / "bin2"
    for d in (first, second):
        d.mkdir()
        (d / "mytool").write_text(f"#!/bin/sh\necho ran {d.name}\nexec sleep 40990\n")
    (second / "mytool").chmod(0o755)  # bin1's copy is not executable
    (first / "subdir").mkdir()
    (second / "subdir").write_text("#!/bin/sh\necho ran the file\nexec sleep 40991\n")
    (second / "subdir").chmod(0o755)  # bin1's is a directory
    path = f"{first}:{second}:/usr/bin:/bin"
    for name, word in (("tool", "mytool"), ("dir", "subdir")):
        entry = _add(home, name, word, tmp_path, "--env", f"PATH={path}")
        log = entry["log_path"]
        wait_until(lambda log=log: "ran" in open(log).read(), 5, message=f"{name}'s output")
        lines = open(log).read().splitlines()
        assert header_by(lines[0], name, entry["pid"], word) == "direct"
        assert lines[1] == {"tool": "ran bin2", "dir": "ran the file"}[name]
    # A caller whose own PATH lacks bin2 restarts it: the service's recorded PATH still finds it.
    r = run_cli("restart", "tool", home=home.root, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    entry = read_state(home.root)["processes"]["tool"]
    wait_until(lambda: "ran" in open(entry["log_path"]).read(), 5, message="the restarted tool's output")
    assert open(entry["log_path"]).read().splitlines()[1] == "ran bin2"


def test_a_relative_program_is_found_in_the_workdir_and_a_script_without_shebang_runs_through_sh(home, tmp_path):
    (tmp_path / "serve").write_text("#!/bin/sh\necho serving from $(pwd)\nexec sleep 40992\n")
    (tmp_path / "serve").chmod(0o755)
    (tmp_path / "legacy").write_text("echo legacy script\nexec sleep 40993\n")  # ENOEXEC for exec(2)
    (tmp_path / "legacy").chmod(0o755)
    for name, word, how, out in (("serve", "./serve", "direct", f"serving from {tmp_path}"),
                                 ("legacy", "./legacy", "shell", "legacy script")):
        entry = _add(home, name, word, tmp_path)
        log = entry["log_path"]
        wait_until(lambda log=log, out=out: out in open(log).read(), 5, message=f"{name}'s output")
        lines = open(log).read().splitlines()
        assert header_by(lines[0], name, entry["pid"], word) == how
        assert lines[1:] == [out], "one header: the refused direct spawn left nothing in the log"
        assert pid_alive(entry["pid"]) and os.getpgid(entry["pid"]) == entry["pid"]


def test_a_process_running_threads_never_changes_its_cwd_to_spawn(home, tmp_path):
    """A Spawner in a process that runs other threads: the direct spawn's chdir would be seen
    by them, so there the prologue does the cd. The caller's cwd never moves."""
    import threading
    from datetime import datetime

    from auto_core.logtree import logs

    here = os.getcwd()
    seen: set[str] = set()
    stop = threading.Event()

    def watch_cwd() -> None:
        while not stop.is_set():
            seen.add(os.getcwd())

    watcher = threading.Thread(target=watch_cwd)
    watcher.start()
    spawned = []
    try:
        with spawn.Spawner() as sp:
            for i in range(10):
                when = datetime.now()
                path, fd = logs.create_run_log(home, f"t{i}", when)
                try:
                    s = sp.spawn(f"t{i}", f"sleep {40980 + i}", str(tmp_path), {"PATH": "/usr/bin:/bin"}, fd, when,
                                 log_path=str(path))
                finally:
                    os.close(fd)
                spawned.append((s, str(path)))
    finally:
        stop.set()
        watcher.join()
    try:
        assert seen == {here} and os.getcwd() == here
        for i, (s, log) in enumerate(spawned):
            wait_until(lambda log=log: open(log).read(), 5, message="the header")
            assert header_by(open(log).read().splitlines()[0], f"t{i}", s.pid, f"sleep {40980 + i}") == "shell"
            wait_until(lambda s=s: os.readlink(f"/proc/{s.pid}/cwd") == str(tmp_path), 5,
                       message="the prologue's cd")
    finally:
        for s, _log in spawned:
            os.killpg(s.pid, signal.SIGKILL)
            s.child.wait(5)


def test_a_single_threaded_caller_gets_its_cwd_back_after_direct_spawns(home, tmp_path):
    script = (
        "import os, sys\n"
        "from datetime import datetime\n"
        "from auto_core.proc import spawn\n"
        "before = os.getcwd()\n"
        "with spawn.Spawner() as sp:\n"
        "    for i in range(3):\n"
        f"        log = {str(tmp_path)!r} + f'/s{{i}}.log'\n"
        "        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)\n"
        "        s = sp.spawn(f's{i}', 'sleep 40995', '/', {}, fd, datetime.now(), log_path=log)\n"
        "        os.close(fd)\n"
        "        print(s.pid, os.getcwd() == before)\n"
    )
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                       env=dict(os.environ, AUTO_HOME=str(home.root)), timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3  # the services are this AUTO_HOME's: the fixture kills them whatever happens
    for i, line in enumerate(lines):
        pid, same = line.split()
        assert same == "True"
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
        text = wait_until(lambda i=i: (tmp_path / f"s{i}.log").read_text(), 5, message="header")
        assert header_by(text.splitlines()[0], f"s{i}", int(pid), "sleep 40995") == "direct"
        os.killpg(int(pid), signal.SIGKILL)


def test_a_transient_spawn_error_is_retried_with_one_header(home, tmp_path, monkeypatch):
    """EAGAIN from the direct spawn is retried (as fork's EAGAIN always was): the header with
    its pid room is written once, and the pid of the spawn that worked fills it."""
    from datetime import datetime

    real = os.posix_spawn
    calls = []

    def busy_once(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 1:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "posix_spawn", busy_once)
    log = str(tmp_path / "svc.log")
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        with spawn.Spawner(direct=True) as sp:
            s = sp.spawn("svc", "sleep 40996", str(tmp_path), {"PATH": "/usr/bin:/bin"}, fd, datetime.now(),
                         log_path=log)
    finally:
        os.close(fd)
    try:
        assert len(calls) == 2 and calls[0] == calls[1] and calls[0].endswith("/sleep")
        text = wait_until(lambda: open(log).read(), 5, message="the header")
        assert text.count("[auto] start") == 1 and text.endswith("\n")
        assert header_by(text.splitlines()[0], "svc", s.pid, "sleep 40996") == "direct"
        assert os.readlink(f"/proc/{s.pid}/cwd") == str(tmp_path)
    finally:
        os.killpg(s.pid, signal.SIGKILL)
        s.child.wait(5)


def test_a_failure_after_the_direct_spawn_never_starts_a_second_copy(home, tmp_path, monkeypatch):
    """Once the child exists, nothing may send the spawner to its shell fallback: a header
    that cannot be completed keeps "pid ?", a cwd that cannot be re-entered sends the caller
    to / and later spawns through the prologue; one copy each time."""
    from datetime import datetime

    monkeypatch.chdir(tmp_path)

    def refuse(*args, **kwargs):
        raise OSError(5, "Input/output error")

    pids = []
    with spawn.Spawner(direct=True) as sp:
        for i, (what, how) in enumerate((("pwrite", "direct"), ("fchdir", "direct"), (None, "shell"))):
            log = str(tmp_path / f"s{i}.log")
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                with monkeypatch.context() as m:
                    if what:
                        m.setattr(os, what, refuse)
                    s = sp.spawn(f"s{i}", f"sleep {40986 + i}", "/", {"PATH": "/usr/bin:/bin"}, fd, datetime.now(),
                                 log_path=log)
            finally:
                os.close(fd)
            pids.append(s.pid)
            assert wait_until(lambda i=i: procs_with_argv(["sleep", str(40986 + i)]), 5, message=f"s{i} running") == [s.pid]
            first = wait_until(lambda log=log: open(log).read(), 5, message="the header").splitlines()[0]
            if what == "pwrite":  # the placeholder stays, with its room for 7 digits
                assert re.fullmatch(r"\[auto\] start s0 pid \? at [0-9T:-]{19}: sleep 40986 {6}", first), first
            else:
                assert header_by(first, f"s{i}", s.pid, f"sleep {40986 + i}") == how
    assert os.getcwd() == "/"  # fchdir back failed: the caller was sent to /
    for pid in pids:
        os.killpg(pid, signal.SIGKILL)
