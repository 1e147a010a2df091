"""The watcher's parts with real processes: death notifiers, the backoff formula, and the
timing rules driven through ``Watcher.iterate`` with an injected clock (uptime reset after
60 s, the bound on fresh starts per iteration)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import pid_alive, read_state, wait_until

from auto_core import backoff, deathwatch, identity, state
from auto_core.watch import MAX_STARTS_PER_TICK, Watcher, fmt_seconds

# --- backoff ---------------------------------------------------------------------------------


def test_backoff_formula_and_bounded_exponent():
    assert [backoff.delay(n) for n in range(5)] == [1, 2, 4, 8, 16]
    assert backoff.delay(13) == 7200  # 8192 capped by the seed's default
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


# --- timing rules through iterate() with an injected clock -----------------------------------


@pytest.fixture
def make_watcher(home):
    made: list[Watcher] = []

    def make(offset: float = 0.0) -> tuple[Watcher, io.StringIO]:
        out = io.StringIO()
        w = Watcher(home, clock=lambda: time.time() + offset, out=out)
        made.append(w)
        return w, out

    yield make
    for w in made:
        w.close()


def test_backoff_counter_resets_after_60_s_of_uptime(api, home, make_watcher):
    api.add("svc", "sleep 1000")
    with state.transaction(home) as data:
        data["processes"]["svc"]["restart_attempt"] = 3
    ct = read_state(home.root)["processes"]["svc"]["create_time"]

    w, out = make_watcher()  # real clock: up for a moment only
    w.iterate()
    assert read_state(home.root)["processes"]["svc"]["restart_attempt"] == 3
    assert abs(w.timers["svc"] - (ct + backoff.RESET_AFTER)) < 0.01
    assert "adopt svc pid" in out.getvalue()

    w2, out2 = make_watcher(offset=61.0)  # the same process, 61 s later
    w2.iterate()
    assert read_state(home.root)["processes"]["svc"]["restart_attempt"] == 0
    assert "reset svc" in out2.getvalue()


def test_fresh_starts_per_iteration_are_bounded(api, home, make_watcher):
    names = [f"s{i:02d}" for i in range(MAX_STARTS_PER_TICK + 4)]
    for name in names:
        api.add(name, "sleep 1000", start=False)
    with state.transaction(home) as data:
        for name in names:
            entry = data["processes"][name]
            entry["explicitly_stopped"] = False
            entry["next_restart_at"] = time.time() - 1  # all due at once (e.g. after a reboot)
            entry["last_exit"] = {"code": 1, "signal": None, "at": time.time() - 2}
    w, out = make_watcher()

    def started() -> int:
        procs = read_state(home.root)["processes"]
        return sum(1 for n in names if identity.is_ours(procs[n].get("pid"), procs[n].get("create_time")))

    timeout = w.iterate()
    assert started() == MAX_STARTS_PER_TICK
    assert timeout == 0.0  # the rest follow in the next iteration, without waiting
    w.iterate()
    assert started() == len(names)
    assert out.getvalue().count("(automatic restart)") == len(names)


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


def test_a_definition_not_started_yet_gets_a_grace_not_a_crash(api, home, make_watcher):
    # `add` writes the entry, then starts it in a second transaction; a watcher looking in
    # between must not count a crash. If the adder died there, the watcher starts it later.
    api.add("svc", "sleep 1000", start=False)
    with state.transaction(home) as data:
        data["processes"]["svc"]["explicitly_stopped"] = False
    w, out = make_watcher()
    w.iterate()
    entry = read_state(home.root)["processes"]["svc"]
    assert entry.get("pid") is None and "next_restart_at" not in entry
    assert entry.get("restart_attempt") == 0
    w.clock = w.api.clock = lambda: time.time() + 6  # the grace is over
    w.iterate()  # schedules (delay 1 s from "now")
    assert "schedule svc: not running; restarting in 1 s" in out.getvalue()
    w.clock = w.api.clock = lambda: time.time() + 8
    w.iterate()
    entry = read_state(home.root)["processes"]["svc"]
    assert identity.is_ours(entry.get("pid"), entry.get("create_time")), out.getvalue()
