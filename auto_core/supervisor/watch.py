"""The watcher, ``auto watch``: the one process that starts, stops and restarts services.

Faces (the CLI, the TUI) never spawn or signal a service. They write a request into the
service's entry under the state lock and wait for its outcome (``lifecycle``); the watcher
carries requests out and keeps services alive. Because it is the parent of every run it
started, every such run's exit status is known.

The loop blocks in the death notifier (pidfd on Linux, kqueue on macOS, a 1 s poll
elsewhere), woken by deaths, by inotify on ``local/`` when ``state.json`` is replaced (a stat
every second where inotify is missing), by signals, and by its own timers:

- a restart due after its backoff delay, a periodic restart, the backoff reset after 60 s of
  uptime;
- a stop in progress: the stop signal goes at once to every process of the run (its group
  and whatever carries its marks, ``proc.tree``), SIGKILL when the stop timeout passes; they
  are looked at every ``STOP_POLL`` until they are gone. No step waits for a service, so one
  slow stop never delays another service's restart.

An automatic restart spawns before it writes: the decision is taken on the parsed state after
a stat shows the file unchanged, and the new run is recorded right after the spawn. A run
spawned by a watcher that died before recording it carries its marks in its environment
(``launch``), by which the next watcher finds it (``recovery``).

An exception in one iteration is logged with its traceback and the loop goes on. SIGTERM and
SIGINT end the loop and leave every service running; the next watcher adopts them.
"""

from __future__ import annotations

import copy
import errno
import math
import os
import resource
import signal
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from auto_core import backoff, model, order
from auto_core.errors import AutoError, no_space
from auto_core.logtree import logmaint, logs
from auto_core.proc import limits
from auto_core.proc.tree import Table, Tree
from auto_core.store import environ, state, watchlock
from auto_core.store.paths import Home, check_private, ensure_dir
from auto_core.supervisor import changes, control, deathwatch, health, launch, recovery, runs
from auto_core.supervisor.notifier import Notifier
from auto_core.supervisor.runs import (
    Run,
    Service,
    Stopping,
    exit_fields,
    exit_text,
    fmt_seconds,
    number,
    signal_name,
)
from auto_core.supervisor.system import System
from auto_core.supervisor.timing import PORT_WAIT, STOP_POLL

TICK = 1.0  # longest block without inotify: bounds how late a state change is noticed
IDLE_TICK = 30.0  # longest block when inotify reports state changes (a safety stat, log checks)
CHANGE_LOOP, CHANGE_LOOP_WINDOW = 5, 10.0  # more restarts for changes than this within it: a loop
SLOW_ITERATION = 0.1  # an iteration longer than this is logged: the loop must never stall
EARLY_WAKE = 0.002  # the loop wakes this much before a timer and sleeps the rest exactly
ERROR_RETRY = 5.0  # an entry whose evaluation raised is looked at again after this
LOG_SIZE_INTERVAL = 30.0  # seconds between size checks of the live logs (a stat per service)
REPEAT_QUIET = 60.0  # the same iteration failure is logged again only after this
LOCK_PATIENCE = 2.0  # a state lock held longer than this (by a suspended command) is said once


class Watcher:
    """One watcher over one ``AUTO_HOME``. ``run()`` loops until SIGTERM/SIGINT.

    Args:
        home: the AUTO_HOME to supervise.
        poll_only: use the 1 s poll instead of pidfd/kqueue (keeps that path tested).
        clock: wall clock (epoch seconds), injectable for tests of the timing logic.
        out: where the timestamped event lines go (stdout by default).
        system: the processes it acts on (``System``); tests of its rules pass a simulation.
        notifier: the death notifier (``deathwatch.make(poll_only)`` by default).
        monotonic: the clock of timers (stops, the crash-loop floor, port waits).
    """

    def __init__(
        self,
        home: Home,
        *,
        poll_only: bool = False,
        clock: Callable[[], float] = time.time,
        out: TextIO | None = None,
        system: System | None = None,
        notifier: Notifier | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.home = home
        self.clock = clock
        self.monotonic = monotonic
        self.out = out if out is not None else sys.stdout
        self.notifier = notifier if notifier is not None else deathwatch.make(poll_only)
        self.system = system if system is not None else System(home)
        # Linux: inotify on local/ wakes us when state.json is replaced, so an idle watcher
        # need not wake every second to stat it.
        self._dir_fd = None if poll_only else self._watch_state_dir()
        self.control = control.Listener(home)
        if self.control.fd is not None:
            self.notifier.add_waker(self.control.fd, drain=False)  # else read every tick
        self.tick = IDLE_TICK if self._dir_fd is not None else TICK
        self.entries: dict[str, dict] = {}
        self.services: dict[str, Service] = {}
        self.by_pid: dict[int, str] = {}
        self.dirty: set[str] = set()
        self.dead_pids: list[int] = []
        self.state = state.StateFile(home, self.warn)
        self._bad: tuple | None = None  # the version of a state file that did not parse
        self.stopping = False
        self.maintainer = logmaint.Maintainer(home, clock, size_interval=LOG_SIZE_INTERVAL)
        self._started = False
        self._queue: list[tuple] = []  # changes of the state not yet written (``_write``)
        self._file: dict[str, dict] = {}  # the processes as last read or written
        self._scan: Table | None = None  # this pass's process table (``_table``)
        self._parsed = False  # a state file was read (recovery waits for one)
        self._failure: tuple[str, float] = ("", 0.0)  # the last failed iteration, quiet until
        self._busy_since: float | None = None  # monotonic: since when writes find the lock held
        self._busy_said = False
        self._full_said = 0.0  # monotonic: a full disk is said again after this
        # Restart on change: a thread per watched service wakes the loop through the
        # notifier's self-pipe (looked up only then: a simulated notifier needs no wake).
        self.changes = changes.Changes(lambda: self.notifier.wake())
        self.health = health.Checks(home, self.notifier.add_waker, monotonic, clock, self._write,
                                    self._health_failed, self.log)
        self._checked: list[str] = []  # the services with a health check
        self.held: set[str] = set()  # starts waiting for the services they come after

    def _watch_state_dir(self) -> int | None:
        try:
            ensure_dir(self.home.local)
        except OSError:
            return None
        fd = deathwatch.dir_change_fd(str(self.home.local))
        if fd is not None and not self.notifier.add_waker(fd):
            os.close(fd)
            fd = None
        return fd

    def close(self) -> None:
        self.changes.close()
        self.health.close()
        self.control.close()
        self.notifier.close()
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    # --- output ----------------------------------------------------------------------------

    def log(self, message: str) -> None:
        stamp = datetime.now().isoformat(sep=" ", timespec="milliseconds")
        try:
            self.out.write(f"{stamp} {message}\n")
            self.out.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not stop supervision

    def warn(self, message: str) -> None:
        self.log(f"warning: {message}")

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        previous = self._install_signals()
        how = "inotify" if self._dir_fd is not None else f"stat every {fmt_seconds(self.tick)} s"
        self.log(f"watcher started (pid {os.getpid()}, {self.notifier.kind}, state: {how}) for {self.home.root}")
        try:
            while not self.stopping:
                began = time.monotonic()
                try:
                    timeout = self.iterate()
                except Exception as exc:  # one bad iteration must not end supervision
                    self._iteration_failed(exc)
                    # Not again at once, whatever wakes the loop: deaths are collected meanwhile.
                    until = time.monotonic() + TICK
                    while not self.stopping and time.monotonic() < until:
                        self.dead_pids.extend(self.notifier.wait(until - time.monotonic()))
                    continue
                took = time.monotonic() - began
                if took > SLOW_ITERATION:
                    self.warn(f"a loop iteration took {took * 1000:.0f} ms")
                if self.stopping:
                    break
                self.dead_pids.extend(self.notifier.wait(timeout))
        finally:
            self._restore_signals(previous)
            self.close()
        self.log("watcher exiting; services keep running")
        return 0

    def _iteration_failed(self, exc: Exception) -> None:
        """Log a failed iteration: with its traceback, but the same failure again (a full
        disk, the open-file limit) only once a minute, and a lack of descriptors as one line."""
        key = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if key == self._failure[0] and now < self._failure[1]:
            return
        self._failure = (key, now + REPEAT_QUIET)
        self.log(f"error: iteration failed{_why(exc)}")

    def _install_signals(self) -> dict:
        def on_signal(signum, _frame):
            self.stopping = True  # the wakeup fd has already interrupted the wait

        handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        return {"handlers": handlers, "wakeup": signal.set_wakeup_fd(self.notifier.wakeup_fd)}

    @staticmethod
    def _restore_signals(previous: dict) -> None:
        signal.set_wakeup_fd(previous["wakeup"])
        for sig, handler in previous["handlers"].items():
            signal.signal(sig, handler)

    def iterate(self) -> float:
        """One pass: state changes, deaths, stops, due timers. Returns how long to block next."""
        self._scan = None
        self._check_state()
        if not self._started and self._parsed:  # never on a state it could not read
            self._started = True
            self._recover()
        for message in self.control.receive():
            self._control(message)
        while self.dead_pids:
            pid = self.dead_pids.pop(0)
            self._guarded(self.by_pid.get(pid), f"handling the exit of pid {pid}", self._on_exit, pid)
        self._files_changed()
        self._flush()
        self._advance_stops()
        self._flush()
        now = self.clock()
        self.dirty.update(n for n, s in self.services.items()
                          if s.wake is not None and s.wake <= now + EARLY_WAKE)
        while self.dirty:
            name = min(self.dirty)
            self.dirty.discard(name)
            self._guarded(name, "evaluation", self._evaluate, name)
            if not self.dirty:
                self._flush()  # one write for every start of this pass; it may dirty more
        checks_due = self._health_tick() if self._checked or self.health.trackers else None
        self._flush()
        self._maintain_logs()
        for line in self.changes.sync(self.entries, self._running):
            self.log(line)
        wakes = [s.wake for s in self.services.values() if s.wake is not None]
        nearest = min(wakes, default=math.inf) - self.clock()
        if checks_due is not None:
            nearest = min(nearest, checks_due - self.monotonic())
        tick = TICK if self.maintainer.busy else self.tick
        if self._queue or any(s.stopping or s.waiting for s in self.services.values()):
            tick = STOP_POLL  # a stop to follow, a port to wait for, a write the lock held up
        # Woken a little early: the poll rounds its timeout up to whole milliseconds and the
        # wake-up itself takes time, so a restart due at T would otherwise start ~2 ms late.
        return max(0.0, min(tick, nearest - EARLY_WAKE))

    def _table(self) -> Table:
        """The process table, read once per pass however many runs are stopped in it."""
        if self._scan is None:
            self._scan = self.system.table()
        return self._scan

    def _guarded(self, name: str | None, what: str, step: Callable, arg: object) -> None:
        """Run one service's step; a failure is logged with its traceback and the service is
        looked at again after ERROR_RETRY, while the others go on."""
        try:
            step(arg)
        except Exception as exc:
            self.log(f"error: {name}: {what} failed{_why(exc)}")
            if name in self.services:
                self.services[name].wake = self.clock() + ERROR_RETRY

    # --- state -----------------------------------------------------------------------------

    def _check_state(self) -> None:
        """Stat first; parse only when the file was replaced (every write renames a new file)."""
        if not self.state.changed():
            return
        sig = state.signature(self.state.path)
        if sig is not None and sig == self._bad:
            return  # said once: a broken file is not read again every tick
        try:
            data = self.state.read()
        except AutoError as exc:  # unreadable, or no longer private (HomeNotPrivate)
            self.log(f"error: {exc}")
            self._bad = sig
            return
        self._bad = None
        self._parsed = True
        self._take(state.processes(data))

    def _take(self, fresh: dict[str, dict]) -> None:
        """Make ``fresh`` (the processes just read or written) the watcher's view, with the
        changes the state lock kept it from writing yet applied on top."""
        self._file = fresh
        if self._queue:
            fresh = copy.deepcopy(fresh)
            for change, _ in self._queue:
                change(fresh)
        for name in set(self.entries) | set(fresh):
            if self.entries.get(name) != fresh.get(name):
                self.dirty.add(name)
                self.services.setdefault(name, Service(name))
        if self.held and self.dirty:
            self.dirty |= self.held  # what they wait for may have come up
        self.entries = dict(fresh)
        self._checked = [n for n, e in fresh.items() if e.get("health")]
        self._live_logs = None

    # --- adoption and recovery -------------------------------------------------------------

    def _recover(self) -> None:
        """At start: adopt every recorded service that still runs, take over what is left of
        a recorded run whose leader ended meanwhile, then claim or stop the marked runs that
        no entry records (``recovery``)."""
        for found in recovery.recorded_alive(self.entries, self.system.is_ours):
            self._adopt(found.name, found.pid, found.create_time, found.started_at, found.log_path,
                        found.run_id, found.followed, found.stamp)
        for name in sorted(self.entries):
            self._guarded(name, "recovery", self._recover_remains, name)
        marked = self.system.marked(recovery.recorded_runs(self.entries))
        running = {n for n, s in self.services.items() if s.run is not None}
        claims, strays, unknown = recovery.sort_marked(marked, self.entries, running, self.by_pid)
        for run in unknown:
            self.log(f"a run of {run.service} (pid {run.pid}) that the state does not define: left alone")
        for run in claims:
            ct = self.system.create_time(run.pid)
            if ct is not None:
                self._record_adopted(run.service, run.pid, ct, run.run_id)
            else:
                strays.append(run)
        for run in strays:
            tree = self.system.tree(run.run_id, run.pgid, None)
            if tree.refresh(self._table()):
                self.log(f"stray run of {run.service} (pid {run.pid}, not recorded): stopping it")
                tree.signal(signal.SIGKILL)
            tree.close()

    def _recover_remains(self, name: str) -> None:
        """A recorded run whose leader ended while no watcher ran, with processes of the run
        still alive: a daemon it followed leaves its workers (followed again), anything else
        is left over and asked to stop, as after a crash (killed at the restart)."""
        entry, svc = self.entries[name], self.services.setdefault(name, Service(name))
        run_id, pid = entry.get("run"), entry.get("pid")
        if svc.run is not None or not isinstance(run_id, str) or not isinstance(pid, int):
            return
        tree = self.system.tree(run_id, pid, number(entry.get("create_time")), entry.get("stamp"))
        if not tree.refresh(self._table()):
            tree.close()
            return
        log_path = entry.get("log_path") if isinstance(entry.get("log_path"), str) else None
        run = Run(pid, number(entry.get("create_time")) or 0.0,
                  number(entry.get("started_at")) or self.clock(), None, log_path, run_id,
                  followed=entry.get("daemon_of") is not None,
                  stamp=entry.get("stamp") if entry.get("daemon_of") is None else None)
        if run.followed and self._follow(svc, run, tree, entry):
            return
        d = model.definition(entry)
        sent = tree.signal(d.stop_signum)
        svc.leftover = tree
        self.log(f"leftovers of {name} (pids {', '.join(map(str, sent))}; its run ended while no "
                 f"watcher ran): sent {d.stop_signal}")

    def _adopt(self, name: str, pid: int, ct: float, started_at: float, log_path: str | None,
               run_id: str | None, followed: bool = False, stamp: str | None = None) -> None:
        svc = self.services.setdefault(name, Service(name))
        if not self.notifier.watch(pid, ct):
            return  # died meanwhile: evaluated as dead
        svc.run = Run(pid, ct, started_at, None, log_path, run_id, followed,
                      None if followed else stamp)
        self.by_pid[pid] = name
        self._live_logs = None
        self.log(f"adopt {name} pid {pid}")

    def _record_adopted(self, name: str, pid: int, ct: float, run_id: str) -> None:
        stamp = self.system.stamp(pid)  # now: the change may be written (and replayed) later

        def change(procs: dict) -> None:
            entry = procs.get(name)
            if entry is not None:
                entry.update(pid=pid, create_time=ct, started_at=ct, run=run_id, stamp=stamp)
                entry.pop("next_restart_at", None)

        self._write(change)
        self._adopt(name, pid, ct, ct, self.entries.get(name, {}).get("log_path"), run_id,
                    stamp=stamp)

    # --- evaluation ------------------------------------------------------------------------

    def _evaluate(self, name: str) -> None:
        entry = self.entries.get(name)
        svc = self.services.get(name)
        if svc is None:
            return
        if entry is None:  # removed by hand: forget it, leave its process alone
            if svc.run is not None:
                self._unwatch(svc)
            for tree in (svc.leftover, svc.unchecked):
                if tree is not None:
                    tree.close()
            svc.leftover = svc.unchecked = None
            if svc.stopping is None:
                del self.services[name]
            return
        if svc.unrecorded:
            return  # looked at again once its start is written
        svc.wake = None
        if svc.stopping is not None:
            return  # a stop in progress: its end decides what comes next
        req = model.request(entry)
        if req is not None and req["id"] != svc.handled:
            if svc.run is None and self._held(name, entry, req):
                return
            self._carry_out(svc, entry, req)
            return
        if svc.waiting is not None and svc.run is None:  # a start waiting for its port
            held, periodic, ended = svc.waiting
            self._start(svc, entry, held, periodic=periodic, ended=ended)
            return
        if svc.run is not None:
            self._evaluate_alive(svc, entry)
        else:
            self._evaluate_dead(svc, entry)

    def _evaluate_alive(self, svc: Service, entry: dict) -> None:
        run = svc.run
        assert run is not None
        if entry.get("pid") != run.pid:
            # A hand edit (or an old face) named another process: follow the state.
            self._unwatch(svc)
            self.dirty.add(svc.name)
            return
        now = self.clock()
        if entry.get("explicitly_stopped"):
            return
        # The loop wakes up to EARLY_WAKE before a timer (``iterate``): what is due by then
        # is done now, or the loop would spin until the clock reaches it.
        soon = now + EARLY_WAKE
        wake: list[float] = []
        if model.count(entry, "restart_attempt") > 0:
            reset_at = run.started_at + backoff.RESET_AFTER
            if soon >= reset_at:
                self._reset_backoff(svc.name, run)
            else:
                wake.append(reset_at)
        every = model.definition(entry).restart_every
        if every:
            anchor = svc.periodic_anchor
            if anchor is None:
                anchor = number(entry.get("last_periodic_restart")) or run.started_at
            due = anchor + every
            if due <= now and run.started_at > due:
                # It was not running when the restart fell due (crashed, waiting for backoff):
                # skip that slot; a crash restart does not move the schedule.
                anchor += every * math.ceil((now - anchor) / every)
                due = anchor + every
            svc.periodic_anchor = anchor
            if due <= soon:
                svc.periodic_anchor = max(now, due)
                self._begin_stop(svc, entry, then="start", marker="[auto] periodic restart",
                                 periodic=True)
                return
            wake.append(due)
        else:
            svc.periodic_anchor = None
        svc.wake = min(wake) if wake else None

    def _evaluate_dead(self, svc: Service, entry: dict) -> None:
        if entry.get("explicitly_stopped"):
            return
        now = self.clock()
        due = number(entry.get("next_restart_at"))
        if due is None:
            if entry.get("pid") is None and model.last_exit(entry) is None:
                due = now  # defined but never started (a hand-written or older state file)
            else:
                self._schedule(svc, entry, "not running")
                return
        if svc.port_wait_until is None:
            floor = svc.earliest_start() - self.monotonic()
            if floor > 0:
                due = max(due, now + floor)
        if due - now > EARLY_WAKE:
            svc.wake = due
            return
        if self._held(svc.name, entry, None):
            return
        if due > now:  # woken just before its time (below): the last moment is slept exactly
            time.sleep(due - now)
        self._start(svc, entry, None)

    def _schedule(self, svc: Service, entry: dict, why: str) -> None:
        """A death nobody has scheduled a restart for (one from before this watcher)."""
        now = self.clock()
        d = model.definition(entry)
        delay = backoff.delay(entry.get("restart_attempt"), d.backoff_base, d.backoff_max)
        delay += backoff.jitter(svc.name, delay)
        last = model.last_exit(entry)
        pid = entry.get("pid")
        # A failed start's record names no pid: its crash before was seen and recorded.
        unseen = isinstance(pid, int) and (last is None or (last.get("pid") != pid
                                                           and not last.get("error")))
        if unseen:
            # It ended while no watcher ran: when and how are unknown, and said so.
            why = "ended while no watcher ran (exit status unknown)"
        elif last and last.get("error"):
            why = str(last["error"])

        def change(procs: dict) -> bool:
            current = procs.get(svc.name)
            if current is None or current.get("explicitly_stopped") or model.request(current):
                return False
            if unseen and current.get("pid") == pid:
                current["last_exit"] = {"code": None, "signal": None, "at": now, "pid": pid,
                                        "unknown": True}
            current["next_restart_at"] = now + delay
            return True

        def then(done: object) -> None:
            if done:
                svc.wake = now + delay
                self.log(f"schedule {svc.name}: {why}; restarting in {fmt_seconds(delay)} s")

        self._write(change, then)

    # --- requests --------------------------------------------------------------------------

    def _carry_out(self, svc: Service, entry: dict, req: dict) -> None:
        op, name = req["op"], svc.name
        svc.handled = req["id"]
        try:
            if svc.waiting is not None:  # a newer request replaces a start waiting for its port
                old = svc.waiting[0]
                svc.waiting = svc.port_wait_until = None
                if old is not None:
                    self._answer(name, old, False, f"{name}: another command came first", None)
            if op == model.START:
                if svc.run is not None:
                    self._answer(name, req, True, f"{name} is already running (pid {svc.run.pid})",
                                 svc.run.pid)
                else:
                    self._start(svc, entry, req)
            elif op == model.RESTART:
                if svc.run is not None:
                    self._begin_stop(svc, entry, then="start", marker="[auto] restarting", request=req)
                else:
                    self._start(svc, entry, req)
            elif op in (model.STOP, model.REMOVE):
                then = "remove" if op == model.REMOVE else None
                if svc.leftover is None and svc.unchecked is not None:
                    svc.leftover, svc.unchecked = svc.unchecked, None
                if svc.run is not None:
                    self._begin_stop(svc, entry, then=then, marker="[auto] stopped by user", request=req)
                elif svc.leftover is not None and (svc.leftover.alive()
                                                   or svc.leftover.refresh(self._table())):
                    self._begin_stop(svc, entry, then=then, marker="[auto] stopped by user",
                                     request=req, tree=svc.leftover)
                    svc.leftover = None
                elif then == "remove":
                    self._remove(svc, req)
                else:
                    self._answer(name, req, True, f"{name} is already stopped", None)
        except BaseException:
            svc.handled = None  # carried out again after ERROR_RETRY (``_guarded``)
            raise

    def _answer(self, name: str, req: dict, ok: bool, message: str, pid: int | None,
                **fields: object) -> None:
        """Write the outcome of ``req`` (and ``fields``) if the entry still holds that request."""
        def change(procs: dict) -> None:
            entry = procs.get(name)
            if entry is not None:
                entry.update(fields)
                _settle(entry, req, ok, message, pid)

        self._write(change)

    def _remove(self, svc: Service, req: dict, **fields: object) -> None:
        name = svc.name

        def change(procs: dict) -> bool:
            entry = procs.get(name)
            if entry is None:
                return False
            held = model.request(entry)
            if held is not None and held["id"] == req["id"]:
                del procs[name]
                return True
            entry.update(fields)  # another request came meanwhile (a start): it wins
            return False

        def then(removed: object) -> None:
            if removed:
                environ.delete(self.home, name)
                if self.services.get(name) is svc and svc.run is None and svc.stopping is None:
                    del self.services[name]
                self.log(f"removed {name}")

        self._write(change, then)

    # --- starting --------------------------------------------------------------------------

    def _start(self, svc: Service, entry: dict, req: dict | None, *, periodic: bool = False,
               ended: dict | None = None) -> None:
        """Spawn a run; it is recorded with the other changes of this phase (``_flush``).
        ``req``: the request it answers (None: an automatic restart). ``ended``: fields about
        the run a restart just ended, written in the same transaction."""
        name = svc.name
        if req is None and not periodic:
            self._check_state()  # an automatic restart: decide on the current file
            entry = self.entries.get(name) or {}
            if not entry or entry.get("explicitly_stopped") or model.request(entry) is not None:
                self.dirty.add(name)
                return
        if svc.leftover is not None:
            svc.leftover.refresh(self._table())
            killed = svc.leftover.signal(signal.SIGKILL)
            if killed:
                self.log(f"leftovers of {name} (pids {', '.join(map(str, killed))}): sent SIGKILL")
            svc.leftover.close()
            svc.leftover = None
        unchecked, svc.unchecked = svc.unchecked, None
        try:
            self._spawn_start(svc, entry, req, periodic, ended)
        finally:
            if unchecked is not None:  # after the spawn: a restart does not wait for it
                killed = unchecked.refresh(self.system.table()) and unchecked.signal(signal.SIGKILL)
                if killed:
                    self.log(f"leftovers of {name} outside its group (pids "
                             f"{', '.join(map(str, killed))}): sent SIGKILL")
                unchecked.close()

    def _spawn_start(self, svc: Service, entry: dict, req: dict | None, periodic: bool,
                     ended: dict | None) -> None:
        name = svc.name
        busy = self._port_busy(svc, entry)
        if busy is not None:
            if svc.port_wait_until is None:
                svc.port_wait_until = self.monotonic() + (PORT_WAIT if ended is not None else 0.0)
            if self.monotonic() < svc.port_wait_until:
                svc.waiting = (req, periodic, ended)
                svc.wake = self.clock() + STOP_POLL
                return
            svc.port_wait_until = None
            svc.waiting = None
            self._queue_start(svc, req, busy, periodic, ended)
            return
        svc.port_wait_until = None
        svc.waiting = None
        svc.started(self.monotonic())
        definition = model.definition(entry)
        launched = self.system.launch(name, definition)
        if isinstance(launched, launch.Launched):
            # Watched at once, so nothing in this iteration takes it for dead and starts another.
            svc.run = Run(launched.pid, launched.create_time, launched.started_at, launched.child,
                          launched.log_path, launched.run_id, stamp=launched.stamp,
                          definition=definition)
            self.by_pid[launched.pid] = name
            self._live_logs = None
            if not self.notifier.watch(launched.pid, launched.create_time):
                self.dead_pids.append(launched.pid)  # already gone: handled as its exit
        self._queue_start(svc, req, launched, periodic, ended)

    def _port_busy(self, svc: Service, entry: dict) -> str | None:
        port = model.definition(entry).port
        if port is None:
            return None
        holders = self.system.port_holders(port)
        if not holders:
            return None
        who = ", ".join(holders)
        return f"port {port} is in use by {who}; not starting {svc.name}"

    def _queue_start(self, svc: Service, req: dict | None, launched: launch.Launched | str,
                     periodic: bool, ended: dict | None) -> None:
        """Queue the record of a run just spawned (or of a start that failed)."""
        name = svc.name
        now = self.clock()
        ok = isinstance(launched, launch.Launched)
        verb = "started" if req is not None and req["op"] == model.START else "restarted"
        svc.unrecorded = True
        changed, svc.changed = svc.changed, False  # a restart for changed files, like a requested one

        def change(procs: dict) -> bool:
            entry = procs.get(name)
            if entry is None:
                return False  # removed while starting
            if ended:
                entry.update(ended)
            entry.pop("next_restart_at", None)
            if req is not None or changed:
                entry["restart_attempt"] = 0
            elif periodic:
                entry["last_periodic_restart"] = now
            else:
                entry["restart_attempt"] = model.count(entry, "restart_attempt") + 1
                entry["restarts"] = model.count(entry, "restarts") + 1
                entry["last_restart_time"] = now
            if isinstance(launched, launch.Launched):
                entry.update(pid=launched.pid, create_time=launched.create_time, stamp=launched.stamp,
                             started_at=launched.started_at, log_path=launched.log_path,
                             run=launched.run_id, started_with=launched.started_with)
                entry.pop("starting_since", None)
                entry.pop("daemon_of", None)
                message, pid = f"{verb} {name} (pid {launched.pid})", launched.pid
            else:
                entry["last_exit"] = {"code": None, "signal": None, "at": now, "error": launched}
                message, pid = launched, None
            if req is not None:
                _settle(entry, req, ok, message, pid)
            return True

        # Said now, not once written: the write may wait (a held lock) past the run's end.
        if isinstance(launched, launch.Launched):
            why = "requested" if req is not None else ("periodic restart" if periodic else
                                                       "files changed" if changed else "automatic restart")
            self.log(f"start {name} pid {launched.pid} ({why})")
        else:
            self.log(f"error: {launched}")

        def then(recorded: object) -> None:
            svc.unrecorded = False
            self.dirty.add(name)
            if isinstance(launched, launch.Launched) and not recorded:  # no definition: must not live
                if svc.run is not None and svc.run.pid == launched.pid:
                    self._unwatch(svc)
                tree = self.system.tree(launched.run_id, launched.pid, launched.create_time,
                                        launched.stamp)
                tree.refresh(self.system.table())  # fresh: this pass's may predate the spawn
                tree.signal(signal.SIGKILL)
                tree.close()
                self._reap(launched.child)
                self.log(f"{name} was removed while starting: stopped pid {launched.pid}")

        self._write(change, then)

    # --- writing ---------------------------------------------------------------------------

    def _write(self, change: Callable[[dict], object],
               then: Callable[[object], None] | None = None) -> None:
        """Queue a change of the processes of the state; ``then(change's result)`` runs once
        it is written. What one phase of an iteration queues goes into one write (``_flush``),
        so ``start-all`` of 200 or a ``stop-all`` costs a write, not 200."""
        self._queue.append((change, then))

    def _flush(self) -> None:
        """Write what is queued, if the state lock is free: the loop never waits for it (a
        command suspended while holding it would stall every restart), it tries again at
        the next pass and keeps acting on what it knows meanwhile."""
        if not self._queue:
            return
        queue, self._queue = self._queue, []
        try:
            with self.state.transaction(blocking=False) as data:
                procs = state.processes(data)
                results = [change(procs) for change, _ in queue]
        except (AutoError, OSError) as exc:
            # Held lock, full disk, a file gone read-only: the changes wait and are tried
            # again at the next pass; meanwhile the watcher goes on from what the file will
            # say once written (a run just started is known, stops go on to SIGKILL).
            self._queue[:0] = queue
            self._take(self._file)
            for svc in self.services.values():
                svc.unrecorded = False
            now = self.monotonic()
            if isinstance(exc, state.Busy):
                if self._busy_since is None:
                    self._busy_since = now
                elif now - self._busy_since >= LOCK_PATIENCE and not self._busy_said:
                    self._busy_said = True
                    self.warn(f"the state lock is held by {state.lock_holder(self.home)}; "
                              "changes wait, services are still watched")
            elif now >= self._full_said:
                self._full_said = now + REPEAT_QUIET
                what = "disk full" if no_space(exc) else "cannot write the state"
                self.warn(f"{what}: {exc}; changes wait, services are still watched")
            return
        except BaseException:
            self._queue[:0] = queue
            raise
        if self._full_said:
            self.log("the state file is written again")
            self._full_said = 0.0
        if self._busy_said:
            self.log("the state lock is free again")
        self._busy_since, self._busy_said = None, False
        self._take(state.processes(data))
        for (_, then), result in zip(queue, results, strict=True):
            if then is not None:
                then(result)

    # --- stopping --------------------------------------------------------------------------

    def _begin_stop(self, svc: Service, entry: dict, *, then: str | None, marker: str,
                    request: dict | None = None, periodic: bool = False,
                    tree: Tree | None = None) -> None:
        """Send the stop signal to every process of the run (``tree``: of a run whose leader
        is gone already); ``_advance_stops`` follows it to its end."""
        d = model.definition(entry)
        sig, timeout = d.stop_signum, d.stop_timeout
        run = svc.run
        if tree is None:
            assert run is not None
            tree = self.system.tree(run.run_id, run.pid, run.create_time, run.stamp)
        log_path = run.log_path if run is not None else entry.get("log_path")
        if log_path:
            # Before the signal: the service's shutdown output then follows it in order.
            logs.append_line(log_path, marker)
        tree.refresh(self._table())
        began = self.monotonic()
        svc.stopping = Stopping(tree.leader, tree, sig, timeout, began, began + timeout, then=then,
                                request=request, periodic=periodic, leader_gone=run is None)
        sent = tree.signal(sig)
        self.log(f"stop {svc.name} (pids {', '.join(map(str, sent)) or 'none'}): sent {signal_name(sig)}")

    def _advance_stops(self) -> None:
        now = self.monotonic()
        for svc in [s for s in self.services.values() if s.stopping is not None]:
            st = svc.stopping
            assert st is not None
            if svc.run is not None and svc.run.pid == st.pgid and svc.run.child is not None:
                code = svc.run.child.poll()  # type: ignore[attr-defined]
                if code is not None:  # reaped here when the exit event is still on its way
                    self._leader_exited(svc, code, True)
            alive = bool(st.tree.alive()) or (svc.run is not None and svc.run.pid == st.pgid)
            if not alive and st.tree.refresh(self._table()):  # forked while it was stopping: them too
                st.tree.signal(signal.SIGKILL if st.killed else st.signal)
                alive = True
            step = st.step(now, alive)
            if step == runs.GONE:
                self._finish_stop(svc, ok=True)
            elif step == runs.KILL:
                st.tree.refresh(self._table())
                st.tree.signal(signal.SIGKILL)
                self.log(f"stop {svc.name}: still running after {fmt_seconds(st.timeout)} s: sent SIGKILL")
            elif step == runs.SURVIVED:
                self._finish_stop(svc, ok=False)

    def _leader_exited(self, svc: Service, code: int | None, known: bool) -> None:
        st = svc.stopping
        run = svc.run
        if st is None or run is None:
            return
        self._unwatch(svc)
        st.code, st.known, st.leader_gone = code, known, True

    def _finish_stop(self, svc: Service, ok: bool) -> None:
        st = svc.stopping
        assert st is not None
        name = svc.name
        entry = self.entries.get(name) or {}
        log_path = entry.get("log_path")
        svc.stopping = None  # a leader that survived SIGKILL (stuck in the kernel) stays watched
        survivors = st.tree.alive()
        st.tree.close()
        elapsed = self.monotonic() - st.began
        if not ok:
            pids = ", ".join(map(str, survivors)) or str(st.pgid)
            message = f"{name}: pids {pids} survived SIGKILL"
            if log_path:
                logs.append_line(log_path, f"[auto] pids {pids} survived SIGKILL")
            self.log(f"error: {message}")
            if st.request is not None:
                self._answer(name, st.request, False, message, None)
            return
        how = f"SIGKILL after {fmt_seconds(st.timeout)} s" if st.killed else f"{signal_name(st.signal)}, {elapsed:.1f} s"
        now = self.clock()
        ended = dict(exit_fields(st.code), at=now, pid=st.pgid)
        if st.then == "backoff" and st.why == "unhealthy":
            ended["unhealthy"] = True
        elif st.request is None and st.then in ("start", "backoff"):  # the watcher's own restart
            ended["restart"] = "periodic" if st.periodic else "files changed"
        else:
            ended["stopped"] = True  # asked for by a face
        if not st.known:
            ended["unknown"] = True
        if st.killed:
            ended["killed_after"] = st.timeout
        started = number(entry.get("started_at"))
        if started is not None:
            ended["ran_s"] = round(max(0.0, now - started), 3)
        what = exit_text(st.code, True) if st.known else "ended"
        ran = f" after {fmt_seconds(ended['ran_s'])} s" if "ran_s" in ended else ""
        escalated = f" (still running {fmt_seconds(st.timeout)} s after {signal_name(st.signal)})" if st.killed else ""
        if log_path and st.then != "backoff":  # that one says when it restarts (``_restart_later``)
            logs.append_line(log_path, f"[auto] {what}{ran}{escalated}")
        self.log(f"exit {name} pid {st.pgid} {what}{ran} ({how})")
        fields = {"last_exit": ended}
        changed, svc.changed = svc.changed, False  # the restart for changes may not happen
        if st.then == "start":
            current = self.entries.get(name)
            if current is None:
                return
            entry = current
            req = st.request
            held = model.request(entry)
            if req is not None:
                if held is None or held["id"] != req["id"]:
                    # Another command replaced the restart (a stop): record the end only.
                    self._answer(name, req, False, f"{name}: interrupted by another command", None, **fields)
                    return
            elif entry.get("explicitly_stopped"):
                if not self._answer_asked_stop(svc, entry, how, fields):
                    self._answer_none(name, fields)
                return
            svc.changed = changed
            self._start(svc, entry, req, periodic=st.periodic, ended=fields)
        elif st.then == "backoff":
            line = f"[auto] {what}{ran}{escalated}"
            current = self.entries.get(name)
            if current is not None and current.get("explicitly_stopped") \
                    and self._answer_asked_stop(svc, current, how, fields):
                if log_path:
                    logs.append_line(log_path, line)
                return
            self._restart_later(svc, fields, st.why, log_path, line)
        elif st.then == "remove":
            assert st.request is not None
            self._remove(svc, st.request, **fields)
        elif st.request is not None:
            self._answer(name, st.request, True, f"stopped {name} ({how})", None, **fields)
        else:
            self._answer_none(name, fields)

    def _answer_asked_stop(self, svc: Service, entry: dict, how: str, fields: dict) -> bool:
        """A stop (or remove) asked for while a restart of the watcher's own (for changes,
        periodic, for failed health checks) was stopping the run: this stop is the one it
        asked for, answered as such. False when none is waiting."""
        held = model.request(entry)
        if held is None or held["id"] == svc.handled or held["op"] not in (model.STOP, model.REMOVE):
            return False
        svc.handled = held["id"]
        if held["op"] == model.REMOVE:
            self._remove(svc, held, **fields)
        else:
            self._answer(svc.name, held, True, f"stopped {svc.name} ({how})", None, **fields)
        return True

    # --- health and start order -----------------------------------------------------------

    def _held(self, name: str, entry: dict, req: dict | None) -> bool:
        """Whether a start waits for services it comes after (``--after``) that are wanted
        (not stopped by the user) and not up yet. Held: a start of ``start-all``, ``apply``
        (an ``ordered`` request) or the watcher's own; a single ``auto start`` is not."""
        waiting: list[str] = []
        if req is None or (req["op"] == model.START and req.get("ordered")):
            waiting = order.waiting_for(name, entry, self.entries, self._serving)
        if not waiting:
            self.held.discard(name)
            return False
        if name not in self.held:
            self.held.add(name)
            self.log(f"hold {name}: waiting for {', '.join(waiting)} to be up")
        return True

    def _serving(self, name: str) -> bool:
        """Running and not being stopped (up for the services after it, given its health)."""
        svc = self.services.get(name)
        return svc is not None and svc.run is not None and svc.stopping is None

    def _health_tick(self) -> float | None:
        """The health checks' turn (``supervisor/health.py``)."""
        return self.health.tick(self.entries, health.running(self._checked, self.entries, self.services))

    def _health_failed(self, name: str, line: str) -> None:
        """Unhealthy: stopped like a restart, started again after its backoff, counted."""
        svc, entry = self.services.get(name), self.entries.get(name)
        if svc is None or entry is None or svc.run is None or svc.stopping is not None \
                or entry.get("explicitly_stopped") or model.request(entry) is not None:
            return
        self.log(f"restart {name}: {line.removeprefix('[auto] ')}")
        self._begin_stop(svc, entry, then="backoff", marker=line)

    def _restart_later(self, svc: Service, fields: dict, why: str, log_path: str | None, line: str) -> None:
        """After a stop for failed health checks (or restarts for changes that loop): record
        the end, start after the backoff; ``line`` (how the run ended) goes into its log with
        when it restarts."""
        name, now = svc.name, self.clock()
        entry = self.entries.get(name)
        if entry is None or entry.get("explicitly_stopped") or model.request(entry) is not None:
            if log_path:
                logs.append_line(log_path, line)
            self._answer_none(name, fields)
            self.dirty.add(name)
            return
        d = model.definition(entry)
        delay = backoff.delay(entry.get("restart_attempt"), d.backoff_base, d.backoff_max)
        delay = max(delay + backoff.jitter(name, delay), svc.earliest_start() - self.monotonic())

        def change(procs: dict) -> None:
            current = procs.get(name)
            if current is not None:
                current.update(fields)
                current["next_restart_at"] = now + delay

        self._write(change)
        svc.wake = now + delay
        if log_path:
            logs.append_line(log_path, f"{line}; restarting in {fmt_seconds(delay)} s")
        self.log(f"schedule {name}: {why}; restarting in {fmt_seconds(delay)} s")

    def _answer_none(self, name: str, fields: dict) -> None:
        def change(procs: dict) -> None:
            entry = procs.get(name)
            if entry is not None:
                entry.update(fields)

        self._write(change)

    # --- deaths ----------------------------------------------------------------------------

    def _unwatch(self, svc: Service) -> None:
        run = svc.run
        if run is None:
            return
        svc.run = None
        self.by_pid.pop(run.pid, None)
        self.notifier.unwatch(run.pid)
        self._live_logs = None

    @staticmethod
    def _reap(child: object | None) -> tuple[int | None, bool]:
        """(returncode, known). Known only for children this watcher spawned."""
        if child is None:
            return None, False
        code = child.poll()  # type: ignore[attr-defined]
        if code is None:
            try:  # the exit event can precede the moment waitpid sees the zombie
                code = child.wait(timeout=1.0)  # type: ignore[attr-defined]
            except TimeoutError:
                return None, False
        return code, True

    def _on_exit(self, pid: int) -> None:
        name = self.by_pid.get(pid)
        if name is None:
            return
        svc = self.services[name]
        run = svc.run
        if run is None or run.pid != pid:
            return
        code, known = self._reap(run.child)
        if svc.stopping is not None and svc.stopping.pgid == pid:
            self._leader_exited(svc, code, known)
            return
        self._unwatch(svc)
        self._crashed(svc, run, code, known)

    def _crashed(self, svc: Service, run: Run, code: int | None, known: bool) -> None:
        """A run ended that nobody asked to end: record it, restart it after its backoff."""
        name = svc.name
        now = self.clock()
        self._check_state()
        entry = self.entries.get(name)
        if entry is None:
            return
        d = model.definition(entry)
        tree = self.system.tree(run.run_id, run.pid, run.create_time, run.stamp)
        exited_0 = run.followed or (known and code == 0)
        if not exited_0 and not self.system.group_exists(run.pid):
            svc.unchecked = tree  # the common crash: looked for after the next spawn
        elif tree.refresh(self.system.table()):  # fresh: the run just ended
            # A daemon's own parent exits 0 too; a followed process's status is unknown, and
            # when it ends leaving another process of the run, that one is the daemon.
            if (run.followed or (known and code == 0)) and self._follow(svc, run, tree, entry):
                return
            # The leader died but processes of its run live on (workers, a reloader): they
            # would hold its port and duplicate its work. Ask now, SIGKILL at the restart.
            sent = tree.signal(d.stop_signum)
            svc.leftover = tree
            self.log(f"leftovers of {name} (pids {', '.join(map(str, sent))}): sent {d.stop_signal}")
        elif known and code == 0:
            # Nothing left yet, but a program that daemonizes may fork its daemon just after
            # its own exit: looked for again (and ended) before the next run starts.
            svc.leftover = tree
        else:
            tree.close()
        ended = dict(exit_fields(code), at=now, pid=run.pid)
        if not known:
            ended["unknown"] = True
        uptime = max(0.0, now - run.started_at)
        ended["ran_s"] = round(uptime, 3)
        what = exit_text(code, known)
        stopped = bool(entry.get("explicitly_stopped"))
        if stopped:
            outcome, delay = "stopped", None
        else:
            delay = backoff.delay(entry.get("restart_attempt"), d.backoff_base, d.backoff_max)
            delay += backoff.jitter(name, delay)
            delay = max(delay, svc.earliest_start() - self.monotonic())
            outcome = f"restarting in {fmt_seconds(delay)} s"
        if run.log_path:
            tail = "" if stopped else f"; {outcome}"
            logs.append_line(run.log_path, f"[auto] {what} after {fmt_seconds(uptime)} s{tail}")
        self.log(f"exit {name} pid {run.pid} {what} after {fmt_seconds(uptime)} s; {outcome}")
        if delay is not None and delay <= 0 and model.request(entry) is None:
            self._start(svc, entry, None, ended={"last_exit": ended})  # spawn first, then record
            return
        def change(procs: dict) -> None:
            current = procs.get(name)
            if current is not None and current.get("pid") == run.pid:
                current["last_exit"] = ended
                if delay is not None:
                    current["next_restart_at"] = now + delay

        self._write(change)
        if delay is not None:
            svc.wake = now + delay

    def _follow(self, svc: Service, run: Run, tree: Tree, entry: dict) -> bool:
        """The leader exited 0 and a process of its run lives on: the service daemonized
        itself (a double fork and ``setsid``, as ``redis-server --daemonize yes`` does).
        Follow that process as the service rather than start a second copy beside it
        (``--no-daemon-follow`` turns this off for programs whose children really outlive
        them)."""
        if not model.definition(entry).daemon_follow or entry.get("explicitly_stopped") or not run.run_id:
            return False
        main = tree.main()
        if main is None or not self.notifier.watch(*main):
            return False
        pid, ct = main
        tree.close()
        name = svc.name
        svc.run = Run(pid, ct, run.started_at, None, run.log_path, run.run_id, followed=True,
                      definition=run.definition)
        self.by_pid[pid] = name
        self._live_logs = None
        if run.log_path:
            logs.append_line(run.log_path, f"[auto] the service daemonized itself; following pid {pid}")
        self.log(f"follow {name}: pid {run.pid} exited 0 and left pid {pid} running (a daemon)")

        stamp = self.system.stamp(pid)

        def change(procs: dict) -> None:
            current = procs.get(name)
            if current is not None and current.get("pid") == run.pid:
                current.update(pid=pid, create_time=ct, stamp=stamp,
                               daemon_of=current.get("daemon_of", run.pid))

        self._write(change)
        return True

    def _control(self, message: dict) -> None:
        """A request that came over the control channel because its face could not write it
        (``control``): carried out from the watcher's view of the state, written when it can."""
        names, rid, now = message.get("names"), message.get("id"), self.clock()
        if message.get("op") != model.STOP or not isinstance(names, list) or not isinstance(rid, str):
            self.warn(f"ignored a control message that is not a stop: {str(message)[:200]}")
            return
        asked = [n for n in names if isinstance(n, str) and n in self.entries]
        for name in asked:
            def change(procs: dict, name: str = name) -> None:
                entry = procs.get(name)
                if entry is not None:
                    entry["request"] = {"id": rid, "op": model.STOP, "at": now, "by": message.get("by")}
                    entry["explicitly_stopped"] = True
                    entry.pop("next_restart_at", None)

            self._write(change)
        self.log(f"stop {', '.join(asked)}: asked over the control channel (its command could not write the state)")
        self._flush()

    def _reset_backoff(self, name: str, run: Run) -> None:
        def change(procs: dict) -> bool:
            entry = procs.get(name)
            if entry is None or entry.get("pid") != run.pid or not entry.get("restart_attempt"):
                return False
            entry["restart_attempt"] = 0
            return True

        def then(done: object) -> None:
            if done:
                self.log(f"reset {name}: up {fmt_seconds(backoff.RESET_AFTER)} s, backoff counter cleared")

        self._write(change, then)

    # --- restart on change -----------------------------------------------------------------

    def _files_changed(self) -> None:
        """Restart each running service whose watched files changed (``changes``), as a
        requested restart goes: no backoff. One not running (stopped, crashed, in a restart
        already) is left to its course: its next start reads the files anyway."""
        found, said = self.changes.take()
        for name, message in said:
            self.log(f"{name}: {message}")
        for name in sorted(found):
            svc, entry = self.services.get(name), self.entries.get(name)
            if (svc is None or entry is None or svc.run is None or svc.stopping is not None
                    or svc.unrecorded or entry.get("explicitly_stopped") or model.request(entry)):
                continue
            what = f"files changed ({changes.describe(found[name], model.workdir(entry))})"
            if self._change_loop(svc, what):
                self._guarded(name, "restart on change", self._restart_changed, (svc, entry, what, True))
                continue
            self.log(f"{name}: {what}; restarting")
            svc.changed = True
            self._guarded(name, "restart on change", self._restart_changed, (svc, entry, what, False))

    def _change_loop(self, svc: Service, what: str) -> bool:
        """Whether restarts for changes come too fast (a service writing into a folder it
        watches restarts itself for ever): CHANGE_LOOP of them within CHANGE_LOOP_WINDOW.
        Then it is said once, and each one waits a backoff, as after a crash, until a run
        lasts CHANGE_LOOP_WINDOW before its change (the backoff would otherwise outgrow the
        window, and the loop start over)."""
        now = self.monotonic()
        svc.change_restarts = [t for t in svc.change_restarts if t > now - CHANGE_LOOP_WINDOW] + [now]
        run = svc.run
        calm = run is None or self.clock() - run.started_at >= CHANGE_LOOP_WINDOW
        if svc.change_loop_said and not calm:
            return True
        if len(svc.change_restarts) <= CHANGE_LOOP:
            svc.change_loop_said = False
            return False
        if not svc.change_loop_said:
            svc.change_loop_said = True
            self.warn(f"{svc.name}: {len(svc.change_restarts)} restarts for changed files within "
                      f"{fmt_seconds(CHANGE_LOOP_WINDOW)} s (last: {what}); does it write into a "
                      "folder it watches? --ignore what it writes. Restarted after a backoff, "
                      "as after a crash, until they calm down")
        return True

    def _running(self, name: str) -> bool:
        svc = self.services.get(name)
        return svc is not None and svc.run is not None

    def _restart_changed(self, args: tuple[Service, dict, str, bool]) -> None:
        svc, entry, what, looping = args
        if looping:
            self._begin_stop(svc, entry, then="backoff", marker=f"[auto] {what}; restarting after a backoff")
            if svc.stopping is not None:
                svc.stopping.why = "restarts for changes in a loop"
        else:
            self._begin_stop(svc, entry, then="start", marker=f"[auto] {what}; restarting")

    # --- logs ------------------------------------------------------------------------------

    _live_logs: dict[str, str | None] | None = None

    def _maintain_logs(self) -> None:
        """Bounded log maintenance: cheap unless something is due."""
        if self._live_logs is None:
            self._live_logs = {n: s.run.log_path for n, s in self.services.items() if s.run is not None}
            self._watcher_log = self.home.watcher_log if self.home.watcher_log.exists() else None
        for event in self.maintainer.tick(self._live_logs, self._watcher_log):
            if event.error or event.kind in ("rolled", "recovered"):
                self.log(f"logs: {event.kind} {event.path} {event.detail}".rstrip())


def _why(exc: Exception) -> str:
    """How a failure is logged: a lack of descriptors in one line (it is not a bug, and it
    comes in numbers), anything else with its traceback."""
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return f": out of file descriptors (open-file limit {soft}): {exc}"
    return "\n" + traceback.format_exc().rstrip()


def _settle(entry: dict, req: dict, ok: bool, message: str, pid: int | None) -> None:
    """Replace ``req`` by its outcome, when the entry still holds that request."""
    held = model.request(entry)
    if held is not None and held["id"] == req["id"]:
        entry.pop("request", None)
        entry["outcome"] = {"id": req["id"], "ok": ok, "message": message, "pid": pid}


def main(home: Home, poll_only: bool = False, login: bool = False) -> int:
    """``auto watch``: exit 1 (via WatcherRunning) if another watcher holds the lock. A watcher
    run by the login service (``login``) takes over from one started on demand."""
    # Whoever started this watcher may have blocked signals (a blocked SIGTERM would make a
    # login watcher's take-over wait for nothing): the watcher's own mask starts empty.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    limits.raise_nofile()
    check_private(str(home.state_file))  # a state file others can write names what we run
    fd = watchlock.acquire(home, kind="login" if login else "on-demand", take_over=login)
    try:
        return Watcher(home, poll_only=poll_only).run()
    finally:
        watchlock.release(fd)
