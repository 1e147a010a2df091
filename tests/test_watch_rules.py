"""The watcher's scheduling rules, decided over simulated processes and simulated time
(``watchsim``): backoff between crashes, the crash-loop floor, stop escalation, stops that
run side by side, a slow stop that delays nobody, requests, and recovery at start. The same
rules with real processes are in test_watch_units.py and test_watch.py; these pin the exact
timings, which real processes on a loaded machine cannot."""

from __future__ import annotations

import errno
import os
import signal
import threading

import pytest
from watchsim import STUBBORN, Sim, ask, crashes, define, entry_of

from auto_core import backoff
from auto_core.errors import StateError
from auto_core.proc.marks import Marked
from auto_core.store import state
from auto_core.supervisor import recovery, timing

TOLERANCE = 0.005  # the loop wakes EARLY_WAKE (2 ms) before a timer
KILL_TOLERANCE = timing.STOP_POLL + TOLERANCE  # a stopping group is looked at every STOP_POLL


@pytest.fixture
def sim(home, tmp_path):
    made = Sim(home, tmp_path / "sim")
    yield made
    made.close()


def started(home, name: str, **fields) -> None:
    """Defined and started as ``auto add`` does it: a definition and a start request."""
    define(home, name, "serve", **fields)
    ask(home, name, "start", f"start-{name}")


def outcome(home, name: str, rid: str) -> dict | None:
    found = entry_of(home, name).get("outcome")
    return found if found is not None and found["id"] == rid else None


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_crash_restarts_wait_the_backoff_delay_doubling(home, sim):
    sim.world.behaviours["api"] = crashes(after=0.5)
    started(home, "api")
    sim.until(lambda: len(sim.world.starts_of("api")) >= 5, within=60, what="five starts")
    expected = [0.5 + d + backoff.jitter("api", d) for d in (backoff.delay(n) for n in range(4))]
    assert gaps(sim.world.starts_of("api")) == pytest.approx(expected, abs=TOLERANCE)
    e = entry_of(home, "api")
    assert e["restarts"] == 4 and e["last_exit"]["code"] == 1


def test_a_crash_loop_without_backoff_is_floored_then_slowed(home, sim):
    sim.world.behaviours["loop"] = crashes(after=0.0)
    started(home, "loop", backoff_base=0)
    sim.until(lambda: len(sim.world.starts_of("loop")) >= 14, within=30, what="14 starts")
    spaced = gaps(sim.world.starts_of("loop"))
    # The first BURST starts come MIN_START_INTERVAL apart, the next ones BURST_INTERVAL apart.
    assert spaced[: timing.BURST - 1] == pytest.approx([timing.MIN_START_INTERVAL] * (timing.BURST - 1),
                                                     abs=TOLERANCE)
    assert spaced[timing.BURST - 1:] == pytest.approx([timing.BURST_INTERVAL] * (len(spaced) - timing.BURST + 1),
                                                    abs=TOLERANCE)


def test_a_stop_escalates_to_sigkill_at_its_timeout(home, sim):
    sim.world.behaviours["db"] = STUBBORN
    started(home, "db", stop_timeout=3)
    sim.until(lambda: entry_of(home, "db").get("pid"), within=1, what="db started")
    pid = entry_of(home, "db")["pid"]
    asked = sim.world.now
    ask(home, "db", "stop", "stop-1")
    answer = sim.until(lambda: outcome(home, "db", "stop-1"), within=10, what="the stop's outcome")
    proc = sim.world.procs[pid]
    assert [s for _, s in proc.signals] == [signal.SIGTERM, signal.SIGKILL]
    assert proc.signals[1][0] - proc.signals[0][0] == pytest.approx(3, abs=KILL_TOLERANCE)
    assert proc.signals[0][0] - asked < 1.0  # sent at the next look at the state
    assert answer == {"id": "stop-1", "ok": True, "message": "stopped db (SIGKILL after 3 s)", "pid": None}
    assert entry_of(home, "db")["last_exit"]["killed_after"] == 3


def test_stops_run_side_by_side_and_take_the_longest_timeout(home, sim):
    timeouts = {"a": 2, "b": 3, "c": 4, "d": 6}
    for name, timeout in timeouts.items():
        sim.world.behaviours[name] = STUBBORN
        started(home, name, stop_timeout=timeout)
    sim.until(lambda: all(entry_of(home, n).get("pid") for n in timeouts), within=1, what="all started")
    for name in timeouts:
        ask(home, name, "stop", f"stop-{name}")
    began = sim.world.now
    sim.until(lambda: all(outcome(home, n, f"stop-{n}") for n in timeouts), within=30,
              what="every stop's outcome")
    took = sim.world.now - began
    assert max(timeouts.values()) <= took < max(timeouts.values()) + 1.5  # not their sum (15 s)
    for name, timeout in timeouts.items():
        assert entry_of(home, name)["outcome"]["message"] == f"stopped {name} (SIGKILL after {timeout} s)"


def test_a_slow_periodic_restart_delays_no_other_restart(home, sim):
    sim.world.behaviours["slow"] = STUBBORN
    sim.world.behaviours["flaky"] = crashes(after=0.5)
    started(home, "slow", restart_every=10, stop_timeout=20)
    started(home, "flaky", backoff_base=1, backoff_max=1)
    sim.until(lambda: len(sim.world.starts_of("slow")) >= 2, within=40, what="the periodic restart")
    slow_pid = next(pid for _, name, pid in sim.world.launches if name == "slow")
    term, kill = (t for t, _ in sim.world.procs[slow_pid].signals)
    assert term == pytest.approx(10, abs=TOLERANCE) and kill - term == pytest.approx(20, abs=KILL_TOLERANCE)
    during = [t for t in sim.world.starts_of("flaky") if term < t < kill]
    # Each flaky run lives 0.5 s, then waits 1 s (plus its jitter): ~13 restarts in 20 s.
    assert len(during) >= 12
    step = 0.5 + 1 + backoff.jitter("flaky", 1)
    assert gaps(during) == pytest.approx([step] * (len(during) - 1), abs=TOLERANCE)


def test_a_restart_request_stops_then_starts_and_answers(home, sim):
    started(home, "web")
    sim.until(lambda: entry_of(home, "web").get("pid"), within=1, what="web started")
    old = entry_of(home, "web")["pid"]
    ask(home, "web", "restart", "r-1")
    answer = sim.until(lambda: outcome(home, "web", "r-1"), within=5, what="the restart's outcome")
    new = entry_of(home, "web")["pid"]
    assert new != old and not sim.world.procs[old].alive and sim.world.procs[new].alive
    assert answer == {"id": "r-1", "ok": True, "message": f"restarted web (pid {new})", "pid": new}
    e = entry_of(home, "web")
    assert e["last_exit"]["signal"] == signal.SIGTERM and e["last_exit"]["stopped"] is True
    assert e["restart_attempt"] == 0 and e["restarts"] == 0  # asked for: not a crash


def test_a_stopped_service_is_never_restarted(home, sim):
    sim.world.behaviours["job"] = crashes(after=1)
    started(home, "job")
    sim.until(lambda: entry_of(home, "job").get("pid"), within=1, what="job started")
    ask(home, "job", "stop", "s-1")
    sim.until(lambda: outcome(home, "job", "s-1"), within=5, what="the stop's outcome")
    at = sim.world.now
    sim.until(lambda: sim.world.now > at + 120, within=130, what="two minutes")
    assert len(sim.world.starts_of("job")) == 1


def test_recovery_adopts_live_runs_claims_unrecorded_ones_and_stops_strays(home, sim):
    world = sim.world
    adopted = world.spawn("api", runs_forever := STUBBORN, {"AUTO_SERVICE": "api", "AUTO_RUN": "r-api"})
    define(home, "api", "serve", pid=adopted.pid, create_time=adopted.create_time, run="r-api",
           started_at=adopted.create_time)
    # A watcher died between spawning "worker" and recording it: only its marks say whose it is.
    unrecorded = world.spawn("worker", runs_forever, {"AUTO_SERVICE": "worker", "AUTO_RUN": "r-w"})
    define(home, "worker", "serve")
    # A run of a service the user stopped meanwhile, and a second copy of "api".
    stopped = world.spawn("cron", runs_forever, {"AUTO_SERVICE": "cron", "AUTO_RUN": "r-c"})
    define(home, "cron", "serve", explicitly_stopped=True)
    copy = world.spawn("api", runs_forever, {"AUTO_SERVICE": "api", "AUTO_RUN": "r-api2"})

    sim.step()
    assert world.launches == []  # nothing started: every service was accounted for
    assert adopted.alive and adopted.signals == []
    assert unrecorded.alive and entry_of(home, "worker")["pid"] == unrecorded.pid
    assert entry_of(home, "worker")["run"] == "r-w"
    assert not stopped.alive and stopped.signals[0][1] == signal.SIGKILL
    assert not copy.alive and copy.signals[0][1] == signal.SIGKILL
    assert "adopt api pid" in sim.out.getvalue() and "stray run of cron" in sim.out.getvalue()


def test_sort_marked_claims_one_run_per_wanted_service():
    entries = {"a": {"explicitly_stopped": False}, "b": {"explicitly_stopped": True},
               "c": {"explicitly_stopped": False, "request": {"id": "x", "op": "stop"}},
               "d": {"explicitly_stopped": False}}
    found = [Marked(10, 10, "a", "r1"), Marked(11, 11, "a", "r2"), Marked(12, 12, "b", "r3"),
             Marked(13, 13, "c", "r4"), Marked(14, 5, "d", "r5"), Marked(15, 15, "gone", "r6"),
             Marked(16, 16, "d", "r7"), Marked(20, 20, "e", "r8")]
    claims, strays, unknown = recovery.sort_marked(found, entries, running={"e"}, watched_pids={20})
    assert [m.pid for m in claims] == [10, 16]  # one per service; a group leader only
    assert [m.pid for m in strays] == [11, 12, 13, 14]
    assert [m.pid for m in unknown] == [15]  # its service is not defined: left alone


def test_a_lack_of_descriptors_is_one_line_and_the_service_is_tried_again(home, sim):
    started(home, "api")
    sim.until(lambda: entry_of(home, "api").get("pid"), within=1, what="api started")
    real_tree = sim.watcher.system.tree
    failures = []

    def tree(*args):
        if not failures:
            failures.append(1)
            raise OSError(errno.EMFILE, "Too many open files")
        return real_tree(*args)

    sim.watcher.system.tree = tree  # type: ignore[method-assign]
    ask(home, "api", "stop", "s-1")
    answer = sim.until(lambda: outcome(home, "api", "s-1"), within=30, what="the stop, tried again")
    assert answer["ok"] is True
    out = sim.out.getvalue()
    assert "error: api: evaluation failed: out of file descriptors (open-file limit " in out
    assert "Traceback" not in out


def test_a_held_state_lock_delays_the_records_not_the_restarts(home, sim):
    """A command suspended while it holds the state lock (Ctrl-Z in the middle of a write):
    the watcher says who holds it, keeps restarting from what it knows, and writes it all
    once the lock is free."""
    sim.world.behaviours["flaky"] = crashes(after=0.5)
    started(home, "flaky", backoff_base=1, backoff_max=1)
    sim.until(lambda: entry_of(home, "flaky").get("pid"), within=1, what="flaky started")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with state.transaction(home):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        before = len(sim.world.starts_of("flaky"))
        t0 = sim.world.now
        sim.until(lambda: sim.world.now > t0 + 10, within=11, what="ten seconds")
        # ~1.5 s a cycle (0.5 s up, 1 s backoff): the restarts went on.
        assert len(sim.world.starts_of("flaky")) - before >= 5
        assert f"the state lock is held by pid {os.getpid()} " in sim.out.getvalue()
    finally:
        release.set()
        holder.join(10)
    sim.until(lambda: entry_of(home, "flaky")["restarts"] == len(sim.world.starts_of("flaky")) - 1,
              within=2, what="every restart recorded")
    assert "the state lock is free again" in sim.out.getvalue()


def test_a_watcher_starting_on_an_unreadable_state_kills_nothing(home, sim):
    """Both state files broken (or the state missing): no entry says what runs, so the marked
    processes found are left alone, not taken for strays; recovery waits for a readable file."""
    marked = sim.world.spawn("web", STUBBORN, {"AUTO_SERVICE": "web", "AUTO_RUN": "r-web"})
    home.local.mkdir(parents=True, exist_ok=True)
    home.state_file.write_text("{not json")
    home.state_bak.write_text("{not json either")
    sim.step()
    sim.step()
    assert marked.alive and marked.signals == []
    assert "stray" not in sim.out.getvalue()


def test_a_marked_run_of_a_service_the_state_does_not_define_is_left_alone(home, sim):
    started(home, "api")
    foreign = sim.world.spawn("gone", STUBBORN, {"AUTO_SERVICE": "gone", "AUTO_RUN": "r-gone"})
    sim.step()
    assert foreign.alive and foreign.signals == []
    assert f"a run of gone (pid {foreign.pid}) that the state does not define: left alone" in sim.out.getvalue()


def test_what_a_run_left_while_no_watcher_ran_is_stopped_before_the_restart(home, sim):
    world = sim.world
    leader = world.spawn("api", STUBBORN, {"AUTO_SERVICE": "api", "AUTO_RUN": "r-1"})
    worker = world.spawn("api", STUBBORN, {"AUTO_SERVICE": "api", "AUTO_RUN": "r-1"})
    define(home, "api", "serve", pid=leader.pid, create_time=leader.create_time, run="r-1",
           started_at=leader.create_time)
    world.end(leader, 1)  # the leader crashed while no watcher ran; its worker lives on
    sim.until(lambda: len(world.starts_of("api")) == 1, within=10, what="the restart")
    assert not worker.alive and worker.signals[-1][1] == signal.SIGKILL
    assert "its run ended while no watcher ran" in sim.out.getvalue()
    assert sum(p.alive for p in world.procs.values() if p.name == "api") == 1


def test_a_state_file_that_cannot_be_written_delays_records_not_stops(home, sim):
    sim.world.behaviours["db"] = STUBBORN
    started(home, "db", stop_timeout=3)
    sim.until(lambda: entry_of(home, "db").get("pid"), within=1, what="db started")
    pid = entry_of(home, "db")["pid"]
    ask(home, "db", "stop", "s-1")
    real = sim.watcher.state.transaction

    def read_only(*args, **kwargs):
        raise StateError("cannot write state.json: Read-only file system") from OSError(errno.EROFS, "x")

    sim.watcher.state.transaction = read_only  # type: ignore[method-assign]
    sim.step()  # reads the request: the stop begins
    t0 = sim.world.now
    sim.until(lambda: not sim.world.procs[pid].alive, within=5, what="the SIGKILL, on time")
    assert sim.world.now - t0 == pytest.approx(3, abs=KILL_TOLERANCE)
    sim.step()  # the stop's end, to be written
    assert "cannot write the state" in sim.out.getvalue()
    assert outcome(home, "db", "s-1") is None
    sim.watcher.state.transaction = real  # type: ignore[method-assign]
    answer = sim.until(lambda: outcome(home, "db", "s-1"), within=2, what="the stop recorded")
    assert answer["ok"] is True


def test_a_crash_restarts_first_and_ends_what_its_run_left_outside_the_group_after(home, sim):
    started(home, "api", backoff_base=0)
    sim.until(lambda: entry_of(home, "api").get("pid"), within=1, what="api started")
    world = sim.world
    leader = world.procs[entry_of(home, "api")["pid"]]
    # A worker of the run in a group (and session) of its own, as setsid makes it.
    worker = world.spawn("api", STUBBORN, dict(leader.env))
    world.end(leader, 1)
    sim.until(lambda: len(world.starts_of("api")) == 2, within=2, what="the restart")
    restarted_at = world.starts_of("api")[1]
    assert not worker.alive and worker.signals == [(restarted_at, signal.SIGKILL)]
    assert "leftovers of api outside its group" in sim.out.getvalue()


def test_starts_wait_for_the_services_they_come_after(home, sim):
    """``--after``: the watcher's own starts (as at login) follow the order, at once once each
    service before is running (no check); a service stopped by the user holds nothing."""
    define(home, "a", "serve", after=["b"])  # looked at in name order: a first, held
    define(home, "b", "serve", after=["c"])
    define(home, "c", "serve")
    define(home, "off", "serve", explicitly_stopped=True)
    define(home, "e", "serve", after=["off"])
    sim.until(lambda: all(sim.world.starts_of(n) for n in "abce"), within=1, what="every start")
    lines = [line.split(" ", 2)[2] for line in sim.out.getvalue().splitlines()]
    starts = [line.split()[1] for line in lines if line.startswith("start ")]
    assert starts.index("c") < starts.index("b") < starts.index("a")
    assert "hold a: waiting for b to be up" in lines and "hold b: waiting for c to be up" in lines
    assert not any(line.startswith("hold e") for line in lines)
    assert sim.world.starts_of("a")[0] - sim.world.starts_of("c")[0] < 0.05
    assert not sim.world.starts_of("off")


def test_a_cycle_made_by_hand_holds_nothing(home, sim):
    define(home, "a", "serve", after=["b"])
    define(home, "b", "serve", after=["a"])
    sim.until(lambda: sim.world.starts_of("a") and sim.world.starts_of("b"), within=1, what="both starts")
