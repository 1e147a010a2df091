"""One-shot CLI lifecycle: add/ps/start/restart/update/remove with real detached services."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest
from helpers import auto, free_port, group_members, pid_alive, read_state, run_cli, wait_until

from auto_core.cmdline import cli
from auto_core.lifecycle import Api
from auto_core.store import watchlock
from auto_core.store.paths import Home


def ps_rows(capsys) -> dict[str, list[str]]:
    code, out, _ = auto(capsys, "-q", "ps")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("NAME")
    return {line.split()[0]: line.split() for line in lines[1:]}


def http_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_add_starts_detached_in_own_session_and_ps_shows_pid(auto_home, tmp_path):
    port = free_port()
    r = run_cli("add", "web", f"python3 -m http.server {port} --bind 127.0.0.1", "--port", str(port),
                home=auto_home, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pid = read_state(auto_home)["processes"]["web"]["pid"]
    assert pid_alive(pid)
    assert os.getsid(pid) == pid, "service must lead its own session"
    assert os.getsid(pid) != os.getsid(0)
    assert os.getpgid(pid) == pid
    wait_until(lambda: http_ok(port), message="http.server to answer")
    ps = run_cli("-q", "ps", home=auto_home)
    header, row = ps.stdout.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "PID", "PORT"]
    assert row.split()[:3] == ["web", str(pid), str(port)]


def test_service_survives_death_of_the_shell_that_ran_auto(auto_home, tmp_path):
    port = free_port()
    script = f'"{sys.executable}" -m auto_core add web "python3 -m http.server {port} --bind 127.0.0.1" --port {port}; exec sleep 1000'
    # A shell in a terminal dies of SIGHUP: its default, even when the suite itself runs under
    # nohup (an ignored signal stays ignored across exec).
    parent = subprocess.Popen(["sh", "-c", script], start_new_session=True, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    try:
        state_file = auto_home / "local" / "state.json"
        pid = wait_until(lambda: state_file.exists() and read_state(auto_home)["processes"].get("web", {}).get("pid"),
                         message="auto add to record the pid")
        wait_until(lambda: http_ok(port), message="http.server to answer")
        # The terminal goes away: hang up the whole session of the caller, then kill it.
        os.killpg(parent.pid, signal.SIGHUP)
        parent.wait(timeout=10)
        # Everything in the caller's group is gone (`auto add` too, if still in its check
        # window; its zombie may wait a while for a reaper, so only live members count).
        wait_until(lambda: not group_members(parent.pid), message="the caller's group to be gone")
    finally:
        try:
            os.killpg(parent.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        parent.wait(timeout=10)
    assert pid_alive(pid)
    assert http_ok(port)
    # The watcher that `auto add` started on demand outlives the session too: it supervises on.
    watcher = watchlock.holder(Home(auto_home))
    assert watcher is not None and pid_alive(watcher)


def test_ps_json_has_documented_fields(auto_home, capsys, tmp_path):
    port = free_port()
    assert auto(capsys, "add", "a", "sleep 1000", "--port", str(port))[0] == 0
    assert auto(capsys, "add", "b", "sleep 1000", "--no-start")[0] == 0
    code, out, err = auto(capsys, "ps", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["a", "b"]
    want = {"name", "status", "pid", "port", "command", "workdir", "uptime_s", "restarts",
            "next_restart_in_s", "log_path", "last_exit"}
    for r in rows:
        assert want <= set(r)
    a, b = rows
    assert a["status"] == "running" and isinstance(a["pid"], int) and a["port"] == port
    assert a["command"] == "sleep 1000" and a["workdir"] == os.getcwd()
    assert isinstance(a["uptime_s"], float) and a["restarts"] == 0
    assert a["log_path"].endswith(".log")
    assert b["status"] == "stopped" and b["pid"] is None and b["uptime_s"] is None and b["log_path"] is None


def test_ps_shows_stopped_dead_and_pid(auto_home, capsys):
    assert auto(capsys, "add", "runs", "sleep 1000")[0] == 0
    # --wait 0: it dies at once on purpose; a long backoff keeps it dead while ps looks.
    assert auto(capsys, "add", "dies", "exit 3", "--wait", "0", "--backoff-base", "600")[0] == 0
    assert auto(capsys, "add", "halted", "sleep 1000")[0] == 0
    assert auto(capsys, "stop", "halted")[0] == 0
    dies_pid = read_state(auto_home)["processes"]["dies"]["pid"]
    wait_until(lambda: (read_state(auto_home)["processes"]["dies"].get("last_exit") or {}).get("pid") == dies_pid,
               message="the watcher to record the dying service's exit")
    rows = ps_rows(capsys)
    assert rows["runs"][1] == str(read_state(auto_home)["processes"]["runs"]["pid"])
    assert rows["dies"][1] == "dead"
    assert rows["dies"][-3:] == ["exit", "code", "3"]  # the watcher is its parent: the code is known
    assert rows["halted"][1] == "stopped"
    assert rows["halted"][-3:] == ["stopped", "by", "user"]


def test_start_of_a_running_process_succeeds_and_says_so(auto_home, capsys):
    """One rule for idempotence: asking for the state a service is in already is a success
    that says so (as `stop` of a stopped one is), and changes nothing."""
    assert auto(capsys, "add", "svc", "sleep 1000")[0] == 0
    before = read_state(auto_home)["processes"]["svc"]
    pid = before["pid"]
    code, out, err = auto(capsys, "start", "svc")
    assert code == 0, err
    assert out.strip() == f"svc is already running (pid {pid})" and err == ""
    # The request and its answer go through the entry; nothing else about the service changes.
    after = read_state(auto_home)["processes"]["svc"]
    assert after["outcome"]["ok"] is True and "request" not in after
    exchange = ("request", "outcome")
    assert {k: v for k, v in after.items() if k not in exchange} == \
        {k: v for k, v in before.items() if k not in exchange}
    assert auto(capsys, "stop", "svc")[0] == 0
    code, out, _ = auto(capsys, "stop", "svc")
    assert code == 0 and out.strip() == "svc is already stopped"
    assert not pid_alive(pid)



def test_start_after_stop_starts_a_new_instance(auto_home, capsys):
    assert auto(capsys, "add", "svc", "sleep 1000", "--no-start")[0] == 0
    assert read_state(auto_home)["processes"]["svc"]["pid"] is None
    code, out, _ = auto(capsys, "start", "svc")
    assert code == 0 and "started svc" in out
    entry = read_state(auto_home)["processes"]["svc"]
    assert pid_alive(entry["pid"]) and entry["explicitly_stopped"] is False


def test_restart_resets_restart_attempt_and_replaces_the_process(auto_home, capsys):
    assert auto(capsys, "add", "svc", "sleep 1000")[0] == 0
    path = auto_home / "local" / "state.json"
    data = json.loads(path.read_text())
    old = data["processes"]["svc"]["pid"]
    data["processes"]["svc"]["restart_attempt"] = 7
    path.write_text(json.dumps(data))
    code, out, err = auto(capsys, "restart", "svc")
    assert code == 0, err
    entry = read_state(auto_home)["processes"]["svc"]
    assert entry["restart_attempt"] == 0
    assert entry["pid"] != old and pid_alive(entry["pid"])
    wait_until(lambda: not pid_alive(old), message="old instance to exit")


def test_remove_stops_deletes_definition_and_keeps_logs(auto_home, capsys):
    assert auto(capsys, "add", "svc", "echo hello; exec sleep 1000")[0] == 0
    entry = read_state(auto_home)["processes"]["svc"]
    log = entry["log_path"]
    wait_until(lambda: "hello" in open(log).read().splitlines(), message="output in log")  # not the header's
    code, out, err = auto(capsys, "remove", "svc")
    assert code == 0, err
    assert "removed svc" in out
    assert not pid_alive(entry["pid"])
    assert "svc" not in read_state(auto_home)["processes"]
    assert os.path.isfile(log) and "hello" in open(log).read().splitlines()
    assert auto(capsys, "show", "svc")[0] == 1


def test_update_changes_definition_effective_on_next_start(auto_home, capsys, tmp_path):
    assert auto(capsys, "add", "svc", "sleep 1000")[0] == 0
    pid = read_state(auto_home)["processes"]["svc"]["pid"]
    wait_until(lambda: [b"sleep", b"1000"] in group_members(pid).values(), message="the command to run")
    port = free_port()
    code, out, err = auto(capsys, "update", "svc", "--command", "sleep 2000", "--port", str(port),
                          "--workdir", str(tmp_path), "--env", "FOO=bar")
    assert code == 0, err
    assert "takes effect on next start" in out
    entry = read_state(auto_home)["processes"]["svc"]
    assert entry["command"] == "sleep 2000" and entry["port"] == port
    assert entry["workdir"] == str(tmp_path) and entry["env"]["FOO"] == "bar"
    assert entry["pid"] == pid and pid_alive(pid), "update must not touch the running instance"
    assert [b"sleep", b"1000"] in group_members(pid).values()
    assert auto(capsys, "restart", "svc")[0] == 0
    new = read_state(auto_home)["processes"]["svc"]["pid"]
    wait_until(lambda: [b"sleep", b"2000"] in group_members(new).values(), message="the new command to run")
    with open(f"/proc/{new}/environ", "rb") as fh:
        assert b"FOO=bar" in fh.read().split(b"\0")
    assert os.readlink(f"/proc/{new}/cwd") == str(tmp_path)
    # update --port off clears it
    assert auto(capsys, "update", "svc", "--port", "off")[0] == 0
    assert read_state(auto_home)["processes"]["svc"]["port"] is None


def test_add_records_callers_path_and_cwd(auto_home, tmp_path):
    bindir = tmp_path / "mybin"
    bindir.mkdir()
    (bindir / "hello-auto").write_text("#!/bin/sh\necho from-mybin\nexec sleep 1000\n")
    (bindir / "hello-auto").chmod(0o755)
    path = f"{bindir}:/usr/local/bin:/usr/bin:/bin"
    r = run_cli("add", "svc", "hello-auto", home=auto_home, cwd=tmp_path, env={"PATH": path})
    assert r.returncode == 0, r.stderr
    entry = read_state(auto_home)["processes"]["svc"]
    # The caller's PATH is in the captured environment, not among the user's own variables.
    assert "PATH" not in entry["env"]
    assert Api(Home(auto_home)).environment("svc")["PATH"] == path
    captured = json.loads((auto_home / "local" / "env" / "svc.json").read_text())
    assert captured["PATH"] == path
    assert entry["workdir"] == str(tmp_path)
    wait_until(lambda: "from-mybin" in open(entry["log_path"]).read(), message="the PATH-only program to run")
    assert os.readlink(f"/proc/{entry['pid']}/cwd") == str(tmp_path)


def test_restart_via_real_cli_started_from_a_different_path(auto_home, tmp_path):
    """A later start from a face with another PATH still uses the recorded PATH."""
    bindir = tmp_path / "mybin"
    bindir.mkdir()
    (bindir / "hello-auto").write_text("#!/bin/sh\nexec sleep 1000\n")
    (bindir / "hello-auto").chmod(0o755)
    assert run_cli("add", "svc", "hello-auto", "--no-start", home=auto_home, cwd=tmp_path,
                   env={"PATH": f"{bindir}:/usr/bin:/bin"}).returncode == 0
    r = run_cli("start", "svc", home=auto_home, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    pid = read_state(auto_home)["processes"]["svc"]["pid"]
    wait_until(lambda: pid_alive(pid), message="service running")
    assert run_cli("-q", "ps", home=auto_home).stdout.splitlines()[1].split()[1] == str(pid)


@pytest.mark.parametrize("argv", [["-q", "ps"], ["--help"], ["add", "--help"]])
def test_one_shot_commands_never_import_textual(auto_home, argv):
    code = (
        "import sys, auto_core.cmdline.cli as c\n"
        "try:\n    c.main(%r)\nexcept SystemExit:\n    pass\n"
        "print('MODS', 'textual' in sys.modules, 'rich' in sys.modules, 'auto_tui' in sys.modules, file=sys.stderr)\n"
    ) % (argv,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.strip().splitlines()[-1] == "MODS False False False"


@pytest.mark.parametrize("argv", [
    ["--home", "{home}", "-q", "ps"], ["--home={home}", "ps"], ["-q", "--home", "{home}", "ps", "--json"],
    ["ps"], ["--quiet", "ps"],
])
def test_global_options_before_the_command(auto_home, capsys, argv):
    """The CLI builds only the sub-parser it runs; global options in any order still work."""
    assert auto(capsys, "add", "svc", "sleep 1000", "--no-start")[0] == 0
    code, out, err = auto(capsys, *[a.format(home=auto_home) for a in argv])
    assert code == 0, err
    assert "svc" in out


def test_help_lists_every_command_and_unknown_command_names_them(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("ps", "add", "start", "stop", "restart", "show", "update", "remove", "log",
                    "start-all", "stop-all", "watch", "install", "uninstall", "tui"):
        assert f"\n    {command} " in out, command
    code, out, err = auto(capsys, "frobnicate")
    assert code == 2 and err == "auto: error: unknown command 'frobnicate' (see 'auto -h')\n"
    code, out, err = auto(capsys, "sotp", "web")
    assert code == 2 and err == "auto: error: unknown command 'sotp' (did you mean 'stop'?)\n"
    # `auto` alone: the commands, one line each, and no error line.
    code, out, err = auto(capsys)
    assert code == 2 and out == "" and "error" not in err
    assert all(f"\n  {c} " in err for c in ("ps", "add", "restart-all", "tui"))
    with pytest.raises(SystemExit):
        cli.main(["add", "--help"])
    assert "--workdir" in capsys.readouterr().out


GLIBC_INTERNAL = (1 << 31) | (1 << 32)  # bits of signals 32 and 33 in /proc/PID/status masks


def _proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as fh:
        return dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)


@pytest.mark.parametrize("command", ["sleep 40975", "sleep 40974; true"])
def test_service_inherits_no_fd_signal_mask_or_ignored_signal_of_the_caller(auto_home, tmp_path, command):
    """What Popen's close_fds/restore_signals gave: a caller's inheritable descriptor (a shell
    pipe, launchd's) stays out of the service; Python's ignored SIGPIPE/SIGXFSZ are default
    again; nothing is blocked. The service runs in its workdir with PWD saying so."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    workdir = tmp_path / "wd"
    workdir.mkdir()
    script = (f"import signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGTERM}}); "
              f"from auto_core.cmdline import cli; sys.exit(cli.main(['add', 'svc', '--workdir', {str(workdir)!r}, '--', {command!r}]))")
    r = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, AUTO_HOME=str(auto_home)),
                       pass_fds=(write_end,), capture_output=True, text=True, timeout=30)
    os.close(write_end)
    assert r.returncode == 0, r.stderr
    pid = read_state(auto_home)["processes"]["svc"]["pid"]
    wait_until(lambda: any(open(f"/proc/{p}/comm").read().strip() == "sleep" for p in group_members(pid)), 5,
               message="the sleep is running")
    for p in group_members(pid):
        assert sorted(int(fd) for fd in os.listdir(f"/proc/{p}/fd")) == [0, 1, 2], p
        status = _proc_status(p)
        # glibc's posix_spawn (as its system() and popen()) leaves its two internal signals
        # (32, 33: SIGCANCEL, SIGSETXID) ignored; libc re-installs them where it uses them.
        assert int(status["SigIgn"], 16) & ~GLIBC_INTERNAL == 0, (p, status["SigIgn"])
        assert int(status["SigBlk"], 16) == 0, (p, status["SigBlk"])
        assert os.readlink(f"/proc/{p}/cwd") == str(workdir.resolve())
        env = dict(e.split("=", 1) for e in open(f"/proc/{p}/environ").read().split("\0") if "=" in e)
        assert env["PWD"] == str(workdir.resolve())
    # The pipe's only writer was the caller: the read end sees EOF, nobody else holds it (a
    # leaked writer makes the non-blocking read raise BlockingIOError instead of hanging).
    os.set_blocking(read_end, False)
    try:
        assert os.read(read_end, 1) == b""
    finally:
        os.close(read_end)


def test_a_watcher_started_on_demand_stops_on_sigterm_whatever_its_caller_blocked(auto_home):
    """The watcher a command brings up must not inherit that command's blocked signals: with
    SIGTERM blocked it would never stop (`auto watch --login` asks it to hand over that way)."""
    script = ("import signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}); "
              "from auto_core.cmdline import cli; sys.exit(cli.main(['add', 'svc', 'sleep 40973', '--wait', '0']))")
    r = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, AUTO_HOME=str(auto_home)),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    watcher = watchlock.holder(Home(auto_home))
    assert watcher is not None and "started the watcher" in r.stderr
    assert int(_proc_status(watcher)["SigBlk"], 16) & (1 << (signal.SIGTERM - 1)) == 0, "SIGTERM blocked"
    service = read_state(auto_home)["processes"]["svc"]["pid"]
    os.kill(watcher, signal.SIGTERM)
    wait_until(lambda: not pid_alive(watcher), 10, message="the watcher to exit on SIGTERM")
    assert pid_alive(service)  # services outlive their watcher
