"""`auto watch` end to end: the real `python -m auto_core watch` subprocess, real services,
real signals. Every wait has a deadline; nothing sleeps and hopes.

Each test starts its watcher before its first CLI command that needs one: the CLI then uses
it (a command started with no watcher running would bring one up on demand, and a second
`auto watch` would exit at once): the ``watcher`` fixture (conftest.py) starts it and ends it
afterwards. Services that exit on purpose are added with ``--wait 0``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from helpers import LINE_RE, holds, pid_alive, ppid, procs_with_env, read_state, run_cli, wait_until

from auto_core.store import state
from auto_core.store.paths import Home


def cli_ok(*args: str) -> subprocess.CompletedProcess:
    result = run_cli(*args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def entry(home: Home, name: str) -> dict:
    return read_state(home.root)["processes"][name]


def started(w, home: Home, name: str, pattern: str, **options) -> int:
    """The pid of the start the watcher logs as ``pattern``, once its record is written (the
    line comes at the spawn, the record in the same pass, after it)."""
    pid = int(w.wait_line(pattern, **options).group(1))
    wait_until(lambda: entry(home, name).get("pid") == pid, message=f"the start of {name} recorded")
    return pid


def live_pid(home: Home, name: str) -> int | None:
    """The recorded pid if that process is alive (not a zombie)."""
    e = entry(home, name)
    pid = e.get("pid")
    return pid if isinstance(pid, int) and pid_alive(pid) else None


def copies(home: Home, name: str) -> set[int]:
    """Process groups (one per running copy) of service ``name`` under this AUTO_HOME, found
    by exact environment: ``sh -c`` may keep a shell above the command, so count groups."""
    groups = set()
    for pid in set(procs_with_env("AUTO_SERVICE", name)) & set(procs_with_env("AUTO_HOME", str(home.root))):
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    return groups


def ps_json(name: str) -> dict:
    rows = json.loads(cli_ok("ps", "--json").stdout)
    return next(r for r in rows if r["name"] == name)


def edit_entry(home: Home, name: str, **changes) -> None:
    """Change fields the way a hand edit (or another face) would: under the state lock."""
    with state.transaction(home) as data:
        data["processes"][name].update(changes)


# --- single instance -------------------------------------------------------------------------


def test_second_watcher_exits_1_naming_the_running_one(watcher):
    w = watcher()
    result = run_cli("watch", timeout=20)
    assert result.returncode == 1
    assert result.stderr.startswith("auto: error: ")
    assert f"pid {w.pid}" in result.stderr
    assert w.proc.poll() is None  # the first one is untouched


# --- death detection, restart, exit status ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("poll", [False, True], ids=["event", "poll"])
def test_service_added_elsewhere_is_watched_and_restarted(home, watcher, poll):
    w = watcher("--poll") if poll else watcher()
    assert ("poll" in w.lines("watcher started")[0]) == poll
    if not poll:
        assert "pidfd" in w.lines("watcher started")[0]
    t0 = time.monotonic()
    cli_ok("add", "svc", "--wait", "0", "--", "sleep", "1000")
    # The request from another face is noticed at once (inotify) or by stat within the 1 s
    # tick; the whole command, interpreter start included, is bounded (generous for load).
    assert time.monotonic() - t0 < 4.0
    first = started(w, home, "svc", r"start svc pid (\d+) \(requested\)")
    assert first == live_pid(home, "svc")
    assert ppid(first) == w.pid  # the watcher is its parent

    os.kill(first, signal.SIGKILL)
    w.wait_line(rf"exit svc pid {first} killed by SIGKILL after [\d.]+ s; restarting in 1 s")
    second = started(w, home, "svc", r"start svc pid (\d+) \(automatic restart\)")
    assert second != first and live_pid(home, "svc") == second
    e = entry(home, "svc")
    assert e["last_exit"]["signal"] == signal.SIGKILL and e["last_exit"]["code"] is None
    assert "unknown" not in e["last_exit"] and e["last_exit"]["pid"] == first
    assert e["restart_attempt"] == 1 and e["restarts"] == 1
    wait_until(lambda: not os.path.exists(f"/proc/{first}"), message="no zombie left")

    os.kill(second, signal.SIGKILL)
    w.wait_line(rf"exit svc pid {second} killed by SIGKILL after [\d.]+ s; restarting in 2 s")
    wait_until(lambda: not os.path.exists(f"/proc/{second}"), message="no zombie left")
    third = started(w, home, "svc", r"start svc pid (\d+) \(automatic restart\)", count=2)
    e = entry(home, "svc")
    assert e["last_exit"]["signal"] == signal.SIGKILL and e["last_exit"]["pid"] == second
    assert e["restart_attempt"] == 2 and e["restarts"] == 2
    log_text = next(p.read_text() for p in home.process_logs("svc").rglob("*.log")
                    if f" pid {second} at " in p.read_text())
    assert re.search(r"\[auto\] killed by SIGKILL after [\d.]+ s; restarting in 2 s", log_text)
    assert live_pid(home, "svc") == third


def test_exit_code_recorded_in_state_log_and_run_log(home, watcher):
    w = watcher()
    cli_ok("add", "svc", "--backoff-base", "0.2", "--wait", "0", "--", "sh", "-c", "sleep 0.3; exit 3")
    # The watcher spawned the run, so it knows the exit code.
    w.wait_line(r"start svc pid (\d+) \(requested\)")
    m = w.wait_line(r"exit svc pid (\d+) exited with code 3 after ([\d.]+) s; restarting in ([\d.]+) s")
    pid, after = int(m.group(1)), float(m.group(2))
    assert 0.2 <= after < 5
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), message="child reaped")
    run_log = next(p for p in home.process_logs("svc").rglob("*.log") if f" pid {pid} at " in p.read_text())
    assert re.search(r"^\[auto\] exited with code 3 after [\d.]+ s; restarting in [\d.]+ s$",
                     run_log.read_text(), re.M)
    le = wait_until(lambda: (e := entry(home, "svc").get("last_exit") or {}).get("code") == 3 and e)
    assert le["signal"] is None and isinstance(le["at"], float) and "unknown" not in le
    # Every watcher line carries a timestamp (traceback continuation lines excepted: none here).
    assert all(LINE_RE.match(line) for line in w.text().splitlines())


@pytest.mark.slow
def test_backoff_doubles_to_the_cap_and_never_fires_early(home, watcher):
    w = watcher()
    cli_ok("add", "svc", "--backoff-base", "0.2", "--backoff-max", "1", "--wait", "0", "--", "sh", "-c", "exit 1")
    w.wait_line(r"exit svc .*restarting in", count=5, timeout=20)
    events = [(t, msg) for t, msg in w.events() if re.match(r"(exit|start) svc ", msg)]
    delays = [float(re.search(r"restarting in ([\d.]+) s", m).group(1)) for _, m in events if m.startswith("exit")]
    assert delays[:5] == [0.2, 0.4, 0.8, 1.0, 1.0]
    # Each automatic start comes no earlier than the delay announced for it.
    for (t_exit, m_exit), (t_start, m_start) in zip(events, events[1:], strict=False):
        if m_exit.startswith("exit") and m_start.startswith("start"):
            delay = float(re.search(r"restarting in ([\d.]+) s", m_exit).group(1))
            # The exit line is written after the death's state write, so allow that much.
            assert (t_start - t_exit).total_seconds() >= delay - 0.05


def test_huge_stored_attempt_gives_the_cap_and_ps_counts_down(home, watcher):
    cli_ok("add", "svc", "--no-start", "--backoff-max", "50", "--", "sleep", "1000")
    # A service that crashed 1375 times (an old state file): dead, not stopped.
    edit_entry(home, "svc", restart_attempt=1375, explicitly_stopped=False,
               last_exit={"code": 1, "signal": None, "at": time.time()})
    w = watcher()
    m = w.wait_line(r"schedule svc: not running; restarting in ([\d.]+) s")
    assert 50 <= float(m.group(1)) <= 52.5  # the cap plus at most 5 % jitter
    row = ps_json("svc")
    assert row["status"] == "dead" and 40 <= row["next_restart_in_s"] <= 52.5
    assert isinstance(entry(home, "svc")["next_restart_at"], float)
    table = cli_ok("-q", "ps").stdout.splitlines()
    assert "NEXT" in table[0] and re.search(r"\b\d+s\b", table[1])

    # A manual start resets the counter and clears the countdown; the watcher starts it.
    cli_ok("start", "svc")
    pid = started(w, home, "svc", r"start svc pid (\d+) \(requested\)")
    e = entry(home, "svc")
    assert e["restart_attempt"] == 0 and "next_restart_at" not in e and e["pid"] == pid
    assert ps_json("svc")["next_restart_in_s"] is None


# --- explicit stop wins; no duplicates -------------------------------------------------------


@pytest.mark.slow
def test_stop_under_watcher_never_restarts(home, watcher):
    w = watcher()
    cli_ok("add", "svc", "--backoff-base", "0", "--", "sleep", "1000")
    pid = int(w.wait_line(r"start svc pid (\d+) \(requested\)").group(1))
    stop = cli_ok("stop", "svc")
    assert stop.stdout.startswith("stopped svc (SIGTERM, "), stop.stdout
    w.wait_line(rf"exit svc pid {pid} killed by SIGTERM after [\d.]+ s \(SIGTERM, [\d.]+ s\)$")
    holds(lambda: not copies(home, "svc") and len(w.lines("start svc")) == 1, 1.5)
    e = entry(home, "svc")
    assert e["explicitly_stopped"] is True and e["last_exit"]["stopped"] is True
    assert e["last_exit"]["signal"] == signal.SIGTERM and e["last_exit"]["pid"] == pid
    # The run's log says it once, before the signal, then how the run ended.
    markers = [line for line in open(e["log_path"]).read().splitlines() if line.startswith("[auto]")]
    assert markers[1:] == ["[auto] stopped by user", markers[2]] and "stopped by user" not in markers[2], markers
    assert re.fullmatch(r"\[auto\] killed by SIGTERM after [\d.]+ s", markers[2]), markers


@pytest.mark.slow
def test_death_between_stop_flag_and_signal_is_not_restarted(home, watcher):
    w = watcher()
    cli_ok("add", "svc", "--backoff-base", "0", "--", "sleep", "1000")
    pid = int(w.wait_line(r"start svc pid (\d+) \(requested\)").group(1))
    # The intent a stop records under the lock, and the process dies on its own before any
    # signal is sent: the death is recorded, never restarted.
    edit_entry(home, "svc", explicitly_stopped=True)
    os.kill(pid, signal.SIGKILL)
    w.wait_line(rf"exit svc pid {pid} killed by SIGKILL after [\d.]+ s; stopped$")
    holds(lambda: not copies(home, "svc") and len(w.lines("start svc")) == 1, 1.5)
    assert ps_json("svc")["status"] == "stopped"
    assert entry(home, "svc")["last_exit"]["signal"] == signal.SIGKILL


@pytest.mark.slow
def test_restart_20_times_under_watcher_leaves_one_copy(home, watcher):
    w = watcher()
    cli_ok("add", "svc", "--backoff-base", "0", "--", "sleep", "1000")
    w.wait_line(r"start svc pid \d+ \(requested\)")
    for _ in range(20):
        cli_ok("restart", "svc", "--wait", "0")
        pid = entry(home, "svc")["pid"]
        wait_until(lambda pid=pid: copies(home, "svc") == {pid}, message="exactly one live copy")
    pid = entry(home, "svc")["pid"]
    holds(lambda: copies(home, "svc") == {pid}, 1.0)
    # One start per request (the add and 20 restarts), none of the watcher's own.
    assert len(w.lines(r"start svc pid \d+ \(requested\)")) == 21
    assert len(w.lines(r"start svc ")) == 21


@pytest.mark.slow
def test_manual_start_racing_the_watcher_ends_with_one_copy(home, watcher):
    w = watcher()
    cli_ok("add", "svc", "--backoff-base", "0", "--", "sleep", "1000")
    w.wait_line(r"start svc pid \d+ \(requested\)")
    env = dict(os.environ, AUTO_HOME=str(home.root))
    for _ in range(5):
        pid = live_pid(home, "svc")
        os.kill(pid, signal.SIGKILL)
        racers = [subprocess.Popen([sys.executable, "-m", "auto_core", "start", "svc", "--wait", "0"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                  for _ in range(3)]
        for r in racers:
            r.wait(60)
        wait_until(lambda pid=pid: (p := live_pid(home, "svc")) and p != pid and copies(home, "svc") == {p},
                   message="one new copy")
        current = live_pid(home, "svc")
        holds(lambda current=current: copies(home, "svc") == {current}, 0.5)
    assert w.proc.poll() is None


# --- adoption and signals --------------------------------------------------------------------


@pytest.mark.slow
def test_sigkilled_watcher_is_replaced_by_one_that_adopts(home, watcher):
    w1 = watcher()
    cli_ok("add", "a", "--", "sleep", "1000")
    cli_ok("add", "b", "--backoff-base", "0", "--", "sleep", "1000")
    a_old = int(w1.wait_line(r"start a pid (\d+)").group(1))
    b_old = int(w1.wait_line(r"start b pid (\d+)").group(1))
    os.kill(b_old, signal.SIGKILL)
    b_pid = started(w1, home, "b", r"start b pid (\d+) \(automatic restart\)")
    w1.proc.kill()
    w1.proc.wait(10)
    assert live_pid(home, "a") == a_old and live_pid(home, "b") == b_pid  # they outlive it
    os.kill(a_old, signal.SIGKILL)  # dies while no watcher runs
    wait_until(lambda: not pid_alive(a_old))

    w2 = watcher()
    w2.wait_line(rf"adopt b pid {b_pid}$")  # same pid: adopted, not restarted
    a_new = started(w2, home, "a", r"start a pid (\d+)")
    assert a_new != a_old and live_pid(home, "a") == a_new and live_pid(home, "b") == b_pid
    assert not w2.lines(r"start b ")

    # SIGTERM: exit 0, every service keeps running.
    assert w2.signal(signal.SIGTERM) == 0
    assert "services keep running" in w2.text()
    assert live_pid(home, "a") == a_new and live_pid(home, "b") == b_pid

    # SIGINT too; and the next watcher adopts both again.
    w3 = watcher()
    w3.wait_line(rf"adopt a pid {a_new}$")
    w3.wait_line(rf"adopt b pid {b_pid}$")
    assert w3.signal(signal.SIGINT) == 0
    assert live_pid(home, "a") == a_new and live_pid(home, "b") == b_pid
    # The death nobody watched is recorded, its status unknown.
    last = entry(home, "a")["last_exit"]
    assert last["pid"] == a_old and last["unknown"] is True


# --- periodic restart ------------------------------------------------------------------------


@pytest.mark.slow
def test_periodic_restart_and_crash_does_not_reset_it(home, watcher):
    w = watcher()
    cli_ok("add", "svc", "--restart-every", "4", "--backoff-base", "0", "--", "sleep", "1000")
    first = started(w, home, "svc", r"start svc pid (\d+) \(requested\)")
    started_at = entry(home, "svc")["started_at"]
    os.kill(first, signal.SIGKILL)  # a crash early in the interval
    crash_start = w.wait_line(r"start svc pid (\d+) \(automatic restart\)")
    crashed_at = time.time()
    m = w.wait_line(r"start svc pid (\d+) \(periodic restart\)", timeout=15)
    periodic_at = time.time()
    # It replaced the run the crash restart started.
    w.wait_line(rf"exit svc pid {crash_start.group(1)} killed by SIGTERM .*\(SIGTERM, [\d.]+ s\)$")
    # Due 4 s after the first start (kernel create time, +-1 s), not 4 s after the crash restart.
    assert periodic_at - started_at < 6.5
    assert periodic_at - crashed_at < 4.0
    new = int(m.group(1))
    wait_until(lambda: live_pid(home, "svc") == new, message="the periodic restart recorded")
    assert copies(home, "svc") == {new}
    # And it keeps going on its interval.
    w.wait_line(r"start svc pid \d+ \(periodic restart", count=2, timeout=15)
    assert "[auto] periodic restart" in "".join(p.read_text() for p in home.process_logs("svc").rglob("*.log"))
    assert entry(home, "svc")["restart_attempt"] == 1  # periodic restarts are not crashes
    last = entry(home, "svc")["last_exit"]
    assert last["restart"] == "periodic" and "stopped" not in last  # not "stopped by user"


@pytest.mark.slow
def test_a_stop_during_a_periodic_restart_is_answered_by_that_stop(home, watcher):
    """The run ignores SIGTERM, so the periodic restart's stop takes the stop timeout: a stop
    asked for meanwhile says how the run ended, and no run starts after it."""
    w = watcher()
    cli_ok("add", "svc", "--restart-every", "2", "--stop-timeout", "3", "--",
           "sh", "-c", "trap '' TERM; exec sleep 1001")
    pid = started(w, home, "svc", r"start svc pid (\d+) \(requested\)")
    w.wait_line(rf"^stop svc \(pids {pid}\): sent SIGTERM", timeout=15)
    stop = run_cli("stop", "svc")
    assert stop.returncode == 0, stop.stderr
    assert stop.stdout.strip() == "stopped svc (SIGKILL after 3 s)", stop.stdout
    assert not pid_alive(pid)
    assert entry(home, "svc")["explicitly_stopped"] is True and "request" not in entry(home, "svc")
    holds(lambda: len(w.lines(r"^start svc ")) == 1, 1.0)


# --- faults ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_spawn_failures_count_as_crashes_and_recover(home, watcher, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    prog = tmp_path / "nocmd-4711"
    prog.write_text("#!/bin/sh\nexec sleep 1000\n")
    prog.chmod(0o755)
    w = watcher()
    cli_ok("add", "svc", "--workdir", str(wd), "--backoff-base", "0.3", "--backoff-max", "1",
           "--", "sleep", "1000")
    cli_ok("add", "nocmd", "--backoff-base", "0.3", "--", str(prog))
    pid = int(w.wait_line(r"start svc pid (\d+)").group(1))
    nocmd = int(w.wait_line(r"start nocmd pid (\d+)").group(1))
    wd.rmdir()  # the workdir disappears after add
    os.kill(pid, signal.SIGKILL)
    w.wait_line(r"error: cannot start svc: workdir .*wd is missing", count=2)
    w.wait_line(r"schedule svc: cannot start svc: .*; restarting in [\d.]+ s")
    e = entry(home, "svc")
    assert "cannot start svc" in e["last_exit"]["error"]
    assert e["restart_attempt"] >= 2
    assert any("[auto] cannot start svc" in p.read_text() for p in home.process_logs("svc").rglob("*.log"))
    assert w.proc.poll() is None
    wd.mkdir()
    new = int(w.wait_line(r"start svc pid (\d+) \(automatic restart\)").group(1))
    # The line comes at the spawn; the record follows in the same pass.
    wait_until(lambda: live_pid(home, "svc") == new, message="the restart recorded")
    # A program that is gone when its service restarts: a crash with the shell's 127.
    prog.unlink()
    os.kill(nocmd, signal.SIGKILL)
    w.wait_line(r"exit nocmd pid \d+ exited with code 127 after")
    assert w.proc.poll() is None


@pytest.mark.slow
def test_a_state_that_cannot_be_written_holds_the_records_not_the_restarts(home, watcher):
    w = watcher()
    cli_ok("add", "svc", "--backoff-base", "0", "--", "sleep", "1000")
    pid = started(w, home, "svc", r"start svc pid (\d+) \(requested\)")
    good = home.state_file.read_bytes()
    # Both the state file and its backup unreadable: recording the death must fail.
    home.state_bak.write_text("{broken")
    home.state_file.write_text("{broken")
    w.wait_line(r"error: state file .* unreadable")
    os.kill(pid, signal.SIGKILL)
    new = int(w.wait_line(r"start svc pid (\d+) \(automatic restart\)").group(1))
    w.wait_line(r"warning: cannot write the state: .*unreadable.*; changes wait")
    # Said once, and the loop goes on at its pace: not a traceback, not a spin.
    holds(lambda: len(w.lines(r"cannot write the state")) == 1 and w.proc.poll() is None, 2.0)
    assert "Traceback" not in w.text()
    tmp = home.local / "fixed.tmp"
    tmp.write_bytes(good)
    os.replace(tmp, home.state_file)  # the user repairs the file
    wait_until(lambda: live_pid(home, "svc") == new, message="the restart recorded")
    assert new != pid and copies(home, "svc") == {new}
    assert entry(home, "svc")["last_exit"]["pid"] == pid


# --- bounded cost (test-sized; precise numbers are in bench/bench_watch.py) ------------------


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


@pytest.mark.slow
def test_crash_loop_keeps_watcher_cpu_low(home, watcher):
    w = watcher()
    cli_ok("add", "loop", "--wait", "0", "--", "sh", "-c", "exit 1")  # default policy: 1, 2, 4, 8 s ...
    cli_ok("add", "idle", "--", "sleep", "1000")
    w.wait_line(r"start loop pid", count=2, timeout=15)  # it has crashed and restarted twice
    cpu0, t0 = _cpu_seconds(w.pid), time.monotonic()
    deadline = t0 + 8
    wait_until(lambda: time.monotonic() >= deadline, timeout=20, step=0.2)
    share = (_cpu_seconds(w.pid) - cpu0) / (time.monotonic() - t0)
    assert share < 0.01, f"watcher used {share:.1%} of a core"


@pytest.mark.slow
def test_memory_flat_over_many_restarts(home, watcher):
    w = watcher()
    # One crash loop restarts about once a second once its burst bound applies: many loops
    # give many restarts in a bounded time.
    loops = [f"loop{i:02d}" for i in range(25)]
    for name in loops:
        cli_ok("add", name, "--backoff-base", "0", "--wait", "0", "--", "sh", "-c", "exit 1")

    def restarts() -> int:
        procs = read_state(home.root)["processes"]
        return sum(int(procs[n].get("restarts") or 0) for n in loops)

    wait_until(lambda: restarts() >= 50, timeout=60, step=0.1)
    rss0 = _rss_kib(w.pid)
    wait_until(lambda: restarts() >= 350, timeout=180, step=0.1)
    rss1 = _rss_kib(w.pid)
    assert rss1 - rss0 < 4096, f"RSS grew {rss1 - rss0} KiB over 300 restarts"
    assert w.proc.poll() is None
