"""The watcher's parts with real processes: death notifiers, the backoff formula, and the
timing rules driven through a real in-process ``Watcher.iterate`` with an injected clock
(uptime reset after 60 s, a never-started definition, the crash-loop floor, a slow stop that
blocks nothing). Entries and requests are written the way faces write them: under the state
lock, with ``state.transaction`` (``watchsim``)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import pid_alive, wait_until
from watchsim import ask, define, entry_of

from auto_core import backoff
from auto_core.proc import identity
from auto_core.store import state
from auto_core.supervisor import deathwatch, timing
from auto_core.supervisor.runs import fmt_seconds
from auto_core.supervisor.watch import Watcher

# --- backoff ---------------------------------------------------------------------------------


def test_backoff_formula_and_bounded_exponent():
    assert [backoff.delay(n) for n in range(5)] == [1, 2, 4, 8, 16]
    assert backoff.delay(13) == 7200  # 8192 capped by the default maximum
    assert backoff.delay(1375) == 7200  # a huge stored counter still gives the cap
    assert backoff.delay(10**9, 0.5, 30) == 30
    assert backoff.delay(5, 0, 30) == 0
    assert backoff.delay(2, 0.25, 7200) == 1.0
    assert backoff.jitter("web", 2.0) == 0.0
    assert all(0 <= backoff.jitter(n, 100.0) <= 5.0 for n in ("a", "b", "web", "db"))


def test_fmt_seconds():
    assert fmt_seconds(4.0) == "4" and fmt_seconds(2.14) == "2.1" and fmt_seconds(0) == "0"


# --- notifiers -------------------------------------------------------------------------------


def _notifiers():
    kinds = ["poll"]
    if deathwatch.pidfd_works():
        kinds.insert(0, "pidfd")
    return kinds


def _make(kind: str) -> deathwatch.Notifier:
    return deathwatch.PidfdNotifier() if kind == "pidfd" else deathwatch.PollNotifier(interval=0.2)


def _wait_dead(notifier, pid: int, timeout: float = 10.0) -> None:
    seen: list[int] = []
    wait_until(lambda: (seen.extend(notifier.wait(0.5)), pid in seen)[1], timeout, step=0,
               message=f"exit of {pid} reported")


def test_linux_uses_pidfd_and_poll_can_be_forced():
    if sys.platform.startswith("linux"):
        assert deathwatch.make().kind == "pidfd"
    n = deathwatch.make(poll_only=True)
    try:
        assert n.kind == "poll"
    finally:
        n.close()


@pytest.mark.parametrize("kind", _notifiers())
def test_notifier_reports_exit_of_a_process_we_did_not_spawn(kind, tmp_path):
    # The grandchild's parent is a shell that exits at once: the sleep is not our child.
    out = subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
    pid = int(out.stdout)
    notifier = _make(kind)
    try:
        ct = identity.create_time(pid)
        assert notifier.watch(pid, ct)
        t0 = time.monotonic()
        assert notifier.wait(0.3) == []  # alive: nothing to report, and we really blocked
        # (the poll notifier returns at its next check, 0.2 s here; pidfd waits the full 0.3 s)
        assert time.monotonic() - t0 >= (0.15 if kind == "poll" else 0.25)
        os.kill(pid, signal.SIGKILL)
        _wait_dead(notifier, pid)
        assert pid not in notifier.pids  # a watch fires once
    finally:
        notifier.close()
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("kind", _notifiers())
def test_notifier_reports_exit_of_our_own_child(kind):
    child = subprocess.Popen(["sleep", "60"])
    notifier = _make(kind)
    try:
        assert notifier.watch(child.pid, identity.create_time(child.pid))
        child.kill()
        _wait_dead(notifier, child.pid)  # a zombie counts as dead
    finally:
        notifier.close()
        child.kill()
        child.wait()


@pytest.mark.parametrize("kind", _notifiers())
def test_notifier_refuses_dead_or_recycled_pids(kind):
    child = subprocess.Popen(["sleep", "60"])
    ct = identity.create_time(child.pid)
    notifier = _make(kind)
    try:
        assert not notifier.watch(child.pid, ct - 100)  # another process's create time
        child.kill()
        child.wait()
        assert not notifier.watch(child.pid, ct)
    finally:
        notifier.close()


@pytest.mark.parametrize("kind", _notifiers())
def test_wake_interrupts_wait(kind):
    notifier = _make(kind)
    try:
        notifier.wake()
        t0 = time.monotonic()
        assert notifier.wait(5.0) == []
        assert time.monotonic() - t0 < 1.0
    finally:
        notifier.close()


def test_inotify_fd_wakes_on_a_rename_into_the_directory(tmp_path):
    fd = deathwatch.dir_change_fd(str(tmp_path))
    if fd is None:
        pytest.skip("no inotify here")
    notifier = deathwatch.make()
    try:
        assert notifier.add_waker(fd)
        assert notifier.wait(0.2) == []
        (tmp_path / "tmp").write_text("x")
        os.replace(tmp_path / "tmp", tmp_path / "state.json")  # what every state write does
        t0 = time.monotonic()
        notifier.wait(5.0)
        assert time.monotonic() - t0 < 1.0  # woken by the event, not the timeout
    finally:
        notifier.close()
        os.close(fd)


# --- timing rules through iterate() with an injected clock -----------------------------------


class Clock:
    """Wall clock plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def make_watcher(home):
    made: list[Watcher] = []

    def make() -> tuple[Watcher, io.StringIO, Clock]:
        out, clock = io.StringIO(), Clock()
        w = Watcher(home, clock=clock, out=out)
        made.append(w)
        return w, out, clock

    yield make
    for w in made:
        w.close()


def drive(w: Watcher, until, timeout: float = 10.0, durations: list | None = None):
    """Run the watcher's loop (iterate, then block in the notifier) until ``until()``."""
    deadline = time.monotonic() + timeout
    while True:
        t0 = time.monotonic()
        block = w.iterate()
        if durations is not None:
            durations.append(time.monotonic() - t0)
        value = until()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out; watcher output:\n{w.out.getvalue()}"
        w.dead_pids.extend(w.notifier.wait(min(block, 0.2)))


def test_a_definition_never_started_is_started_at_once(home, make_watcher):
    # No pid, not stopped, no request (a hand-written state file, or an older one): nothing
    # crashed, so there is no backoff to wait for.
    define(home, "svc", "sleep 1000")
    w, out, _ = make_watcher()
    w.iterate()
    e = entry_of(home, "svc")
    assert identity.is_ours(e.get("pid"), e.get("create_time")), out.getvalue()
    assert f"start svc pid {e['pid']} (automatic restart)" in out.getvalue()
    assert "schedule svc" not in out.getvalue() and "next_restart_at" not in e
    assert w.services["svc"].run.pid == e["pid"]
    assert open(e["log_path"]).readline().startswith(f"[auto] start svc pid {e['pid']} at ")


def test_backoff_counter_resets_after_60_s_of_uptime(home, make_watcher):
    define(home, "svc", "sleep 1000")
    w, out, clock = make_watcher()
    w.iterate()
    pid = entry_of(home, "svc")["pid"]
    with state.transaction(home) as data:
        data["processes"]["svc"]["restart_attempt"] = 3
    w.iterate()  # up for a moment only: the counter stays, a timer is set for the reset
    e = entry_of(home, "svc")
    assert e["restart_attempt"] == 3 and e["pid"] == pid
    assert abs(w.services["svc"].wake - (e["started_at"] + backoff.RESET_AFTER)) < 0.01
    assert "reset svc" not in out.getvalue()

    clock.offset = backoff.RESET_AFTER + 1  # the same run, 61 s later
    w.iterate()
    e = entry_of(home, "svc")
    assert e["restart_attempt"] == 0 and e["pid"] == pid and pid_alive(pid)
    assert "reset svc: up 60 s, backoff counter cleared" in out.getvalue()
    assert w.services["svc"].wake is None


def test_crash_loop_with_backoff_base_0_is_floored(home, make_watcher):
    define(home, "crashy", "exit 1", backoff_base=0)
    w, out, _ = make_watcher()
    launches: list[float] = []
    real_launch = w.system.launch

    def launch(name, entry):
        launches.append(time.monotonic())
        return real_launch(name, entry)

    w.system.launch = launch
    drive(w, lambda: len(launches) >= 8)
    gaps = [b - a for a, b in zip(launches, launches[1:], strict=False)]
    # Never more often than the floor, though the backoff says "now" ...
    assert min(gaps) >= timing.MIN_START_INTERVAL - 0.002, gaps
    # ... and not held back by anything else (the default backoff would wait 1, 2, 4 s).
    assert sum(gaps) / len(gaps) < 0.5, gaps
    e = entry_of(home, "crashy")
    assert e["restart_attempt"] >= 6 and e["last_exit"]["code"] == 1
    assert out.getvalue().count("exit crashy pid ") >= 6


@pytest.mark.slow
def test_a_slow_stop_does_not_block_the_loop(home, make_watcher):
    define(home, "stubborn", "trap '' TERM; echo ready; while :; do sleep 0.1; done", stop_timeout=3)
    define(home, "other", "sleep 1000", explicitly_stopped=True)
    w, out, _ = make_watcher()
    w.iterate()
    pid = entry_of(home, "stubborn")["pid"]
    log_path = entry_of(home, "stubborn")["log_path"]
    wait_until(lambda: "ready\n" in open(log_path).read(), message="the TERM trap set")

    ask(home, "stubborn", "stop", "stop-1")
    t0 = time.monotonic()
    block = w.iterate()
    assert time.monotonic() - t0 < 0.5  # SIGTERM sent; nobody waits for the group to go
    assert block <= timing.STOP_POLL
    assert w.services["stubborn"].stopping is not None and pid_alive(pid)
    e = entry_of(home, "stubborn")
    assert e["request"]["id"] == "stop-1" and "outcome" not in e

    # Another service's request is carried out while the stop is in progress.
    ask(home, "other", "start", "start-1")
    drive(w, lambda: (entry_of(home, "other").get("outcome") or {}).get("id") == "start-1", timeout=2)
    assert entry_of(home, "other")["outcome"]["ok"] is True
    assert pid_alive(pid) and "outcome" not in entry_of(home, "stubborn")

    durations: list[float] = []
    done = drive(w, lambda: (entry_of(home, "stubborn").get("outcome") or {}).get("id") == "stop-1",
                 durations=durations)
    assert done
    assert time.monotonic() - t0 >= 3.0  # SIGKILL only once the stop timeout passed
    assert max(durations) < 1.0, max(durations)
    e = entry_of(home, "stubborn")
    assert e["outcome"] == {"id": "stop-1", "ok": True, "message": "stopped stubborn (SIGKILL after 3 s)",
                            "pid": None}
    assert e["last_exit"]["stopped"] is True and e["last_exit"]["killed_after"] == 3
    assert e["last_exit"]["signal"] == signal.SIGKILL
    assert not pid_alive(pid) and w.services["stubborn"].stopping is None
    assert "stop stubborn: still running after 3 s: sent SIGKILL" in out.getvalue()
    text = open(log_path).read()
    assert "[auto] stopped by user\n" in text and "(still running 3 s after SIGTERM)" in text


@pytest.mark.slow
def test_stop_all_of_four_stubborn_services_takes_the_longest_timeout(home, make_watcher):
    """Stops run side by side: four services that ignore SIGTERM, with stop timeouts of 0.5
    to 2 s, are all gone after about the longest (2 s), not the sum (5 s)."""
    timeouts = {"a": 0.5, "b": 1.0, "c": 1.5, "d": 2.0}
    for name, timeout in timeouts.items():
        define(home, name, "trap '' TERM; echo ready; while :; do sleep 0.1; done", stop_timeout=timeout)
    w, _, _ = make_watcher()
    w.iterate()
    for name in timeouts:
        log_path = entry_of(home, name)["log_path"]
        wait_until(lambda p=log_path: "ready\n" in open(p).read(), message=f"{name}'s TERM trap set")
    pids = {n: entry_of(home, n)["pid"] for n in timeouts}
    t0 = time.monotonic()
    for name in timeouts:
        ask(home, name, "stop", f"stop-{name}")
    drive(w, lambda: all((entry_of(home, n).get("outcome") or {}).get("id") == f"stop-{n}"
                         for n in timeouts), timeout=15)
    took = time.monotonic() - t0
    assert 2.0 <= took < 3.5, took
    assert not any(pid_alive(p) for p in pids.values())
    for name, timeout in timeouts.items():
        assert entry_of(home, name)["last_exit"]["killed_after"] == timeout
