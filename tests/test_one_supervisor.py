"""The watcher is the one supervisor: faces ask, it spawns, signals and records.

Real processes through the real CLI, with no watcher started by the test: the first command
that needs one brings it up.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from helpers import pid_alive, ppid, procs_with_env, read_state, run_cli, wait_until

from auto_core.store import watchlock
from auto_core.store.paths import Home


def _entry(home, name: str) -> dict:
    return read_state(home)["processes"][name]


def _watcher(home) -> int:
    pid = watchlock.holder(Home(home))
    assert pid, "no watcher holds the lock"
    return pid


def _runs(home, name: str) -> list[str]:
    root = home / "output" / "logs" / name
    return sorted(str(p) for p in root.rglob(f"{name}_*.log"))


def test_add_brings_a_watcher_that_restarts_with_the_callers_environment(auto_home):
    token = f"only-in-the-adder-{os.getpid()}"
    out = run_cli("add", "envcheck", 'echo "value=$AUTO_TEST_ONLY_HERE"; sleep 0.3; exit 3',
                  "--wait", "0", env={"AUTO_TEST_ONLY_HERE": token})
    assert out.returncode == 0, out.stderr
    assert "started the watcher (pid " in out.stderr
    watcher = _watcher(auto_home)
    # Two runs at least that printed: the first (started on request) and a restart.
    def two_runs() -> list[str] | None:
        # A line of its own: the header line quotes the command, which says "value=" too.
        printed = [p for p in _runs(auto_home, "envcheck") if "\nvalue=" in open(p).read()]
        return printed[:2] if len(printed) >= 2 else None

    runs = wait_until(two_runs, timeout=15, message="a restart of envcheck that printed its value")
    for path in runs:
        assert f"value={token}\n" in open(path).read(), path
    first = open(runs[0]).read()
    assert "[auto] exited with code 3 after" in first and "restarting in 1 s" in first
    last = _entry(auto_home, "envcheck")["last_exit"]
    assert last["code"] == 3 and not last.get("unknown")
    assert watchlock.holder(Home(auto_home)) == watcher  # one watcher throughout
    assert run_cli("stop", "envcheck").returncode == 0


def test_every_face_spawns_through_the_watcher(auto_home):
    assert run_cli("add", "a", "sleep 1000", "--wait", "0").returncode == 0
    assert run_cli("add", "b", "sleep 1000", "--no-start").returncode == 0
    assert run_cli("add", "c", "sleep 1000", "--no-start").returncode == 0
    watcher = _watcher(auto_home)
    assert run_cli("start", "b", "--wait", "0").returncode == 0
    assert run_cli("start-all", "--wait", "0").returncode == 0
    for name in ("a", "b", "c"):
        pid = _entry(auto_home, name)["pid"]
        assert pid_alive(pid) and ppid(pid) == watcher, name
    assert run_cli("restart", "a", "--wait", "0").returncode == 0
    assert ppid(_entry(auto_home, "a")["pid"]) == watcher


def test_sigkill_is_recorded_and_a_stop_says_stopped_by_user(auto_home):
    assert run_cli("add", "victim", "sleep 1000", "--wait", "0", "--backoff-base", "5").returncode == 0
    pid = _entry(auto_home, "victim")["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: (_entry(auto_home, "victim").get("last_exit") or {}).get("pid") == pid,
               message="the SIGKILL recorded")
    last = _entry(auto_home, "victim")["last_exit"]
    assert last["signal"] == signal.SIGKILL and not last.get("unknown")
    ps = run_cli("ps")
    assert "killed by SIGKILL" in ps.stdout
    start = run_cli("start", "victim", "--wait", "0")
    assert start.returncode == 0, start.stderr
    stop = run_cli("stop", "victim")
    assert stop.returncode == 0
    assert stop.stdout.startswith("stopped victim (SIGTERM, ") and stop.stdout.rstrip().endswith(" s)")
    entry = _entry(auto_home, "victim")
    assert entry["last_exit"]["stopped"] is True
    assert "stopped by user" in run_cli("ps").stdout


def test_a_stop_that_escalates_says_so(auto_home):
    script = "trap '' TERM; while :; do sleep 0.1; done"
    assert run_cli("add", "stubborn", script, "--stop-timeout", "1", "--wait", "0").returncode == 0
    stop = run_cli("stop", "stubborn")
    assert stop.returncode == 0, stop.stderr
    assert stop.stdout.strip() == "stopped stubborn (SIGKILL after 1 s)"
    assert "stopped by user (SIGKILL after 1 s)" in run_cli("ps").stdout


def _add_then_end_the_watcher(home, name: str) -> tuple[int, int]:
    """Add ``name`` (a long sleep), then SIGTERM the watcher: (service pid, watcher pid)."""
    assert run_cli("add", name, "sleep 1000", "--wait", "0").returncode == 0
    watcher = _watcher(home)
    pid = _entry(home, name)["pid"]
    os.kill(watcher, signal.SIGTERM)
    wait_until(lambda: not pid_alive(watcher), message="the watcher gone")
    return pid, watcher


def test_a_new_watcher_adopts_and_still_restarts(auto_home):
    pid, first = _add_then_end_the_watcher(auto_home, "keep")
    assert pid_alive(pid)  # services outlive their watcher
    assert watchlock.holder(Home(auto_home)) is None
    # The next command that needs a watcher brings one; it adopts the service unchanged.
    assert run_cli("add", "other", "sleep 1000", "--wait", "0").returncode == 0
    second = _watcher(auto_home)
    assert second != first
    assert _entry(auto_home, "keep")["pid"] == pid and pid_alive(pid)
    log = (auto_home / "output" / "logs" / "auto" / "auto.log").read_text()
    assert f"adopt keep pid {pid}" in log
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: _entry(auto_home, "keep")["pid"] != pid
               and pid_alive(_entry(auto_home, "keep")["pid"]), timeout=15,
               message="the adopted service restarted")
    last = _entry(auto_home, "keep")["last_exit"]
    assert last["pid"] == pid and last.get("unknown") is True  # not its child: status unknown
    assert last["ran_s"] > 0


def test_a_missing_program_is_refused_and_nothing_runs(auto_home):
    out = run_cli("add", "nope", "nonexistentprog --flag")
    assert out.returncode == 1
    assert out.stderr.strip() == "auto: error: nope: program 'nonexistentprog' not found on the service's PATH"
    assert "nope" not in read_state(auto_home)["processes"] if (auto_home / "local" / "state.json").exists() else True
    assert procs_with_env("AUTO_SERVICE", "nope") == []


def test_a_service_that_exits_at_once_is_reported(auto_home):
    out = run_cli("add", "quick", "sh -c 'echo about to fail; exit 4'")
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert any(line.startswith("auto: error: added quick; quick exited at once (exit code 4") for line in lines), out.stderr
    assert "  | about to fail" in lines
    # The watcher still restarts it with the backoff.
    wait_until(lambda: _entry(auto_home, "quick").get("restarts", 0) >= 1, timeout=10,
               message="a restart after the failed start")
    assert run_cli("stop", "quick").returncode == 0


@pytest.mark.slow
def test_wait_zero_returns_without_the_check_window(auto_home):
    assert run_cli("add", "warm", "sleep 1000", "--no-start").returncode == 0
    assert run_cli("start", "warm", "--wait", "0").returncode == 0  # brings the watcher
    assert run_cli("stop", "warm").returncode == 0
    t0 = time.monotonic()
    out = run_cli("start", "warm", "--wait", "0")
    quick = time.monotonic() - t0
    t0 = time.monotonic()
    assert run_cli("restart", "warm", "--wait", "2").returncode == 0
    windowed = time.monotonic() - t0
    assert out.returncode == 0
    # The check window is what makes the difference (both did the same round trip).
    assert windowed - quick > 1.5


def test_python_output_reaches_the_log_without_u(auto_home, tmp_path):
    script = tmp_path / "talk.py"
    script.write_text("import time\nprint('hello from python')\ntime.sleep(1000)\n")
    assert run_cli("add", "py", f"{sys.executable} {script}", "--wait", "0").returncode == 0
    path = _entry(auto_home, "py")["log_path"]
    wait_until(lambda: "hello from python" in open(path).read(), timeout=5,
               message="the print in the log")
    env = run_cli("show", "py", "--json")
    assert '"PYTHONUNBUFFERED": "1"' in env.stdout


def test_secrets_are_masked_in_show(auto_home):
    out = run_cli("add", "sec", "sleep 1000", "--no-start", "--env", "API_TOKEN=abc123",
                  env={"DB_PASSWORD": "hunter2"})
    assert out.returncode == 0, out.stderr
    shown = run_cli("show", "sec").stdout
    assert "abc123" not in shown and "hunter2" not in shown and "API_TOKEN=********" in shown
    revealed = run_cli("show", "sec", "--show-secrets").stdout
    assert "API_TOKEN=abc123" in revealed and "DB_PASSWORD=hunter2" in revealed


def test_env_file_and_update_env(auto_home, tmp_path):
    envfile = tmp_path / ".env"
    envfile.write_text("# comment\nexport GREETING='hello world'\nEMPTY=\n")
    out = run_cli("add", "envf", 'echo "g=$GREETING x=$LATER"; sleep 1000', "--env-file", str(envfile),
                  "--wait", "0")
    assert out.returncode == 0, out.stderr
    path = _entry(auto_home, "envf")["log_path"]
    wait_until(lambda: "g=hello world x=\n" in open(path).read(), message="the env file's value")
    assert run_cli("update", "envf", "--update-env", env={"LATER": "now"}).returncode == 0
    assert run_cli("restart", "envf", "--wait", "0").returncode == 0
    path = _entry(auto_home, "envf")["log_path"]
    wait_until(lambda: "g=hello world x=now\n" in open(path).read(), message="the re-captured value")
    bad = run_cli("add", "envbad", "sleep 1", "--env-file", str(tmp_path / "missing.env"))
    assert bad.returncode == 2 and bad.stderr.startswith("auto: error: cannot read env file")


@pytest.mark.slow
def test_a_watcher_that_does_not_act_is_reported_and_the_request_kept(auto_home):
    assert run_cli("add", "frozen", "sleep 1000", "--no-start").returncode == 0
    # A watcher that holds the lock but is stopped (SIGSTOP): wedged.
    assert run_cli("start", "frozen", "--wait", "0").returncode == 0
    watcher = _watcher(auto_home)
    assert run_cli("stop", "frozen").returncode == 0
    os.kill(watcher, signal.SIGSTOP)
    try:
        out = run_cli("start", "frozen", "--wait", "0", timeout=30)
        assert out.returncode == 1
        assert f"the watcher (pid {watcher}) did not start frozen in time" in out.stderr
        assert "auto.log" in out.stderr
        assert _entry(auto_home, "frozen")["request"]["op"] == "start"
    finally:
        os.kill(watcher, signal.SIGCONT)
    # Once it runs again it carries the request out.
    wait_until(lambda: pid_alive(_entry(auto_home, "frozen").get("pid") or 0)
               and "request" not in _entry(auto_home, "frozen"), message="the kept request done")


def test_stop_without_a_watcher_needs_none(auto_home):
    assert run_cli("add", "idle", "sleep 1000", "--no-start").returncode == 0
    out = run_cli("stop", "idle")
    assert out.returncode == 0 and out.stdout.strip() == "idle is already stopped"
    assert "started the watcher" not in out.stderr
    assert watchlock.holder(Home(auto_home)) is None
    out = run_cli("remove", "idle")
    assert out.returncode == 0 and watchlock.holder(Home(auto_home)) is None


def test_the_login_watcher_takes_over_from_an_on_demand_one(auto_home, watcher):
    assert run_cli("add", "kept", "sleep 1000", "--wait", "0").returncode == 0
    on_demand = _watcher(auto_home)
    pid = _entry(auto_home, "kept")["pid"]
    assert "started on demand" in run_cli("status").stdout
    login = watcher("--login", timeout=20)  # returns once it runs, holding the lock
    assert watchlock.holder(Home(auto_home)) == login.pid
    # The on-demand watcher lets go of the lock first, then finishes exiting.
    wait_until(lambda: not pid_alive(on_demand), message="the on-demand watcher gone")
    assert login.proc.poll() is None
    assert watchlock.holder_info(Home(auto_home)) == (login.pid, "login")
    assert _entry(auto_home, "kept")["pid"] == pid and pid_alive(pid)  # untouched
    assert "started at login" in run_cli("status").stdout
    # A second login watcher does not take over from a login one.
    second = run_cli("watch", "--login", timeout=30)
    assert second.returncode == 1 and "already running" in second.stderr
    stop = run_cli("stop", "kept")
    assert stop.returncode == 0 and "started the watcher" not in stop.stderr


def test_a_death_while_no_watcher_ran_is_recorded_as_unknown(auto_home):
    pid, _ = _add_then_end_the_watcher(auto_home, "gone")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), message="the service gone")
    assert run_cli("add", "other", "sleep 1000", "--wait", "0").returncode == 0  # a new watcher
    wait_until(lambda: _entry(auto_home, "gone")["pid"] != pid, timeout=15, message="restarted")
    last = _entry(auto_home, "gone")["last_exit"]
    assert last["pid"] == pid and last["unknown"] is True and "ran_s" not in last
    log = (auto_home / "output" / "logs" / "auto" / "auto.log").read_text()
    assert "schedule gone: ended while no watcher ran (exit status unknown); restarting in 1 s" in log


def _ignored_signals(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("SigIgn:"):
                return int(line.split()[1], 16)
    raise AssertionError("no SigIgn line")


def test_signals_the_starter_ignored_are_default_in_the_service(auto_home):
    # A script that runs `auto add ... &` (or nohup) ignores SIGINT, SIGQUIT and SIGHUP; the
    # watcher it brings up inherits that, and an exec would pass it on to the service.
    script = (f"trap '' INT QUIT HUP; exec {sys.executable} -m auto_core add graceful "
              "--stop-signal SIGINT --stop-timeout 20 --wait 0 -- sleep 1000")
    import subprocess

    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, AUTO_HOME=str(auto_home)))
    assert done.returncode == 0, done.stderr
    watcher = _watcher(auto_home)
    assert _ignored_signals(watcher) & (1 << (signal.SIGHUP - 1))  # the starter's ignores...
    pid = _entry(auto_home, "graceful")["pid"]
    # ...never reach the service (above 31: the C library's own real-time signals).
    assert _ignored_signals(pid) & ((1 << 31) - 1) == 0
    stop = run_cli("stop", "graceful")
    assert stop.returncode == 0 and stop.stdout.startswith("stopped graceful (SIGINT, "), stop.stdout


@pytest.mark.slow
def test_a_zero_backoff_crash_loop_is_bounded(auto_home):
    out = run_cli("add", "spin", "false", "--backoff-base", "0", "--wait", "0")
    assert out.returncode == 0, out.stderr
    t0 = time.monotonic()
    wait_until(lambda: len(_runs(auto_home, "spin")) >= 12, timeout=20, message="a dozen runs")
    # Ten starts 0.1 s apart at least, then one a second: the twelfth run comes after
    # about 0.9 s + 2 s; a loop without a floor would have made hundreds by then.
    assert time.monotonic() - t0 > 2.0
    time.sleep(2.0)  # the rate over a fixed window, not a condition to wait for
    assert len(_runs(auto_home, "spin")) <= 12 + 3
    assert run_cli("stop", "spin").returncode == 0
