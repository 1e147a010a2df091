"""The watcher, ``auto watch`` (DESIGN.md §5): restart what died and was not stopped on purpose.

A foreground loop (launchd/systemd run it; it never daemonizes) built on the lifecycle API:

- Deaths arrive as events (``deathwatch``: pidfd, kqueue, or a 1 s poll where neither works).
- ``state.json`` is stat'ed every iteration and parsed only when it changed (LESSONS 17); a
  change marks the affected names for evaluation, so a start from another face is watched
  within a second.
- Everything else is a timer per name: the next restart (``next_restart_at``, written to the
  state so ``ps`` shows the countdown), the backoff reset after 60 s of uptime (LESSONS 7), the
  next periodic restart, the expiry of a stale start claim.
- The loop blocks in the notifier with a timeout of the next timer, at most 1 s.

Races are settled by the lifecycle API under the state lock, never by the watcher's cache: a
death is recorded only if the entry still names that pid, a restart only happens if the entry
is dead, not stopped and not claimed (LESSONS 13, 14). An exception in one iteration is logged
with its traceback and the loop goes on (LESSONS 11). SIGTERM/SIGINT end the loop and leave
every service running (LESSONS 18).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from auto_core import (
    backoff,
    deathwatch,
    identity,
    logmaint,
    logs,
    model,
    procgroup,
    state,
    watchlock,
)
from auto_core.errors import StateError
from auto_core.lifecycle import Api, exit_description
from auto_core.paths import Home, ensure_dir

TICK = 1.0  # longest block without inotify: bounds how late a state change is noticed
IDLE_TICK = 30.0  # longest block when inotify reports state changes (a safety stat, log checks)
MAX_STARTS_PER_TICK = 8  # fresh starts per iteration (LESSONS 10); the rest follow at once
ERROR_RETRY = 5.0  # an entry whose evaluation raised is looked at again after this
NEW_GRACE = 5.0  # a definition never started yet: its adder's start is probably in flight
MAX_LEAD = 0.25  # the most a restart's claim is taken ahead of its due time
LOG_SIZE_INTERVAL = 30.0  # seconds between size checks of the live logs (a stat per service)


class _WatchApi(Api):
    """The lifecycle API, keeping the exit codes of children reaped inside lifecycle calls
    (e.g. while a periodic restart waits for the old group) so no status is lost."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.exit_codes: dict[int, int] = {}

    def reap(self) -> list[tuple[str, int, int]]:
        done = super().reap()
        for _name, pid, code in done:
            self.exit_codes[pid] = code
        return done


@dataclass
class Watched:
    name: str
    pid: int
    create_time: float


def fmt_seconds(seconds: float) -> str:
    """``4`` for whole seconds, ``2.1`` otherwise (log lines: 'after 2.1 s; restarting in 4 s')."""
    text = f"{seconds:.1f}"
    return text[:-2] if text.endswith(".0") else text


def exit_text(code: int | None, known: bool) -> str:
    if not known:
        return "exited (exit status unknown: not started by this watcher)"
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Watcher:
    """One watcher over one ``AUTO_HOME``. ``run()`` loops until SIGTERM/SIGINT.

    Args:
        home: the AUTO_HOME to supervise.
        poll_only: use the 1 s poll instead of pidfd/kqueue (keeps that path tested).
        clock: wall clock (epoch seconds), injectable for tests of the timing logic.
        out: where the timestamped event lines go (stdout by default).
    """

    def __init__(
        self,
        home: Home,
        *,
        poll_only: bool = False,
        clock: Callable[[], float] = time.time,
        out: TextIO | None = None,
    ):
        self.home = home
        self.clock = clock
        self.out = out if out is not None else sys.stdout
        self.api = _WatchApi(home, clock=clock, warn=lambda m: self.log(f"warning: {m}"))
        self.notifier = deathwatch.make(poll_only)
        # Linux: inotify on local/ wakes us when state.json is replaced, so an idle watcher
        # need not wake every second to stat it (the stat-before-parse rule still holds).
        self._dir_fd = None if poll_only else self._watch_state_dir()
        self.tick = IDLE_TICK if self._dir_fd is not None else TICK
        self.entries: dict[str, dict] = {}
        self.watched: dict[str, Watched] = {}
        self.by_pid: dict[int, str] = {}
        self.timers: dict[str, float] = {}  # name -> when to evaluate it again
        self.periodic_anchor: dict[str, float] = {}
        self.dirty: set[str] = set()
        self.dead_pids: list[int] = []
        self.stat_sig: tuple | None = None
        self.stopping = False
        self._starts = 0
        self.maintainer = logmaint.Maintainer(home, clock, size_interval=LOG_SIZE_INTERVAL)
        self._live_logs: dict[str, str | None] | None = None  # rebuilt only when something changed
        self._unwatched_children: set[int] = set()  # ours, but another face replaced them
        self._state_path = str(home.state_file)  # stat'ed every tick: no Path arithmetic there
        self.first_seen: dict[str, float] = {}  # never-started definitions -> when we saw them
        self.leftovers: dict[str, int] = {}  # name -> process group its dead leader left behind
        # Restarts land on schedule instead of two state transactions late: the claim (the
        # bookkeeping) is taken ahead of the due time by ``lead``, then the spawn waits for the
        # due time itself, so a restart is never early.
        self.txn_cost = 0.002

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

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        previous = self._install_signals()
        how = "inotify" if self._dir_fd is not None else f"stat every {fmt_seconds(self.tick)} s"
        self.log(f"watcher started (pid {os.getpid()}, {self.notifier.kind}, state: {how}) for {self.home.root}")
        try:
            while not self.stopping:
                try:
                    timeout = self.iterate()
                except Exception:  # LESSONS 11: log, keep supervising
                    self.log("error: iteration failed\n" + traceback.format_exc().rstrip())
                    timeout = TICK
                if self.stopping:
                    break
                self.dead_pids.extend(self.notifier.wait(timeout))
        finally:
            self._restore_signals(previous)
            self.close()
        self.log("watcher exiting; services keep running")
        return 0

    def _install_signals(self) -> dict:
        def on_signal(signum, _frame):
            self.stopping = True  # the wakeup fd has already interrupted the wait

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        previous["wakeup"] = signal.set_wakeup_fd(self.notifier.wakeup_fd)
        return previous

    @staticmethod
    def _restore_signals(previous: dict) -> None:
        signal.set_wakeup_fd(previous.pop("wakeup"))
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def iterate(self) -> float:
        """One pass: deaths, state changes, due timers. Returns how long to block next."""
        self._starts = 0
        self._check_state()
        while self.dead_pids:
            pid = self.dead_pids.pop(0)
            name = self.by_pid.get(pid)
            try:
                self._on_pid_exit(pid)
            except Exception:
                self.log(f"error: {name}: handling the exit of pid {pid} failed\n" + traceback.format_exc().rstrip())
                if name:
                    self.timers[name] = self.clock() + ERROR_RETRY  # looked at again, as dead
        now = self.clock()
        self.dirty.update(name for name, when in self.timers.items() if when <= now)
        for name in sorted(self.dirty):
            self.dirty.discard(name)
            try:
                self._evaluate(name, self.clock())
            except Exception:
                self.log(f"error: {name}: evaluation failed\n" + traceback.format_exc().rstrip())
                self.timers[name] = self.clock() + ERROR_RETRY
        if self._unwatched_children:
            self._reap_unwatched()
        self._prune_exit_codes()
        self._maintain_logs()
        if self.dirty:
            return 0.0  # more starts are due than one iteration allows
        nearest = min(self.timers.values(), default=math.inf)
        # A retention pass advances a batch per iteration: keep iterations coming while it runs.
        tick = TICK if self.maintainer.busy else self.tick
        return max(0.0, min(tick, nearest - self.clock()))

    # --- state -----------------------------------------------------------------------------

    def _check_state(self) -> None:
        """Stat first; parse only when the file was replaced (every write renames a new file),
        and not even then when the new version is the one this watcher just wrote."""
        sig = state.signature(self._state_path)
        if sig == self.stat_sig and self.stat_sig is not None:
            return
        data = state.saved(self._state_path, sig)
        if data is None:
            try:
                loaded = state.load(self.home)
            except StateError as exc:
                self.log(f"error: {exc}")
                self.stat_sig = sig  # do not re-read a broken file every tick
                return
            if loaded.problem:
                self.log(f"warning: {loaded.problem}")
            data = loaded.data
        self.stat_sig = sig
        self._live_logs = None
        fresh = dict(state.processes(data))  # our own dict: `saved` data is shared
        for name in set(self.entries) | set(fresh):
            if self.entries.get(name) != fresh.get(name):
                self.dirty.add(name)
        self.entries = fresh
        self.maintainer.offer_state(fresh, sig)

    # --- evaluation ------------------------------------------------------------------------

    def _evaluate(self, name: str, now: float) -> None:
        entry = self.entries.get(name)
        w = self.watched.get(name)
        if entry is None:  # removed
            if w:
                self._unwatch(name)
            self.first_seen.pop(name, None)
            self.timers.pop(name, None)
            self.periodic_anchor.pop(name, None)
            return
        pid, ct = entry.get("pid"), entry.get("create_time")
        if w and (w.pid != pid or not identity.same_time(w.create_time, ct)):
            self._unwatch(name)  # another face restarted it: the old instance is not the service
            w = None
        if w is None and identity.is_ours(pid, ct):
            if self.notifier.watch(pid, ct):
                w = self._watch(name, pid, ct)
                if pid not in self.api.children:
                    self.log(f"adopt {name} pid {pid}")
            # else: it died between the two checks; handled as dead below
        if w is not None:
            self._evaluate_alive(name, entry, w, now)
        else:
            self._evaluate_dead(name, entry, now)

    def _evaluate_alive(self, name: str, entry: dict, w: Watched, now: float) -> None:
        if entry.get("explicitly_stopped"):
            self.timers.pop(name, None)
            return
        wake: list[float] = []
        if model.count(entry, "restart_attempt") > 0:
            reset_at = w.create_time + backoff.RESET_AFTER
            if now >= reset_at:
                self._reset_backoff(name, w)
            else:
                wake.append(reset_at)
        every = model.restart_every(entry)
        if every:
            anchor = self.periodic_anchor.get(name)
            if anchor is None:
                anchor = _number(entry.get("last_periodic_restart")) or w.create_time
            due = anchor + every
            if due <= now and w.create_time > due:
                # It was not running when the restart fell due (crashed, waiting for backoff):
                # skip that slot; a crash restart does not move the schedule.
                anchor += every * math.ceil((now - anchor) / every)
                due = anchor + every
            self.periodic_anchor[name] = anchor
            if due <= now:
                if self._may_start(name):
                    self._periodic(name, w)
                return
            wake.append(due)
        else:
            self.periodic_anchor.pop(name, None)
        if wake:
            self.timers[name] = min(wake)
        else:
            self.timers.pop(name, None)

    def _evaluate_dead(self, name: str, entry: dict, now: float) -> None:
        if entry.get("explicitly_stopped"):
            self.timers.pop(name, None)
            return
        if model.claim_fresh(entry, now):
            # Another face is starting it; its pid will show up in the state. If that face
            # died, the claim expires and we look again.
            # Look again soon: the claim's owner may die (model.claim_fresh checks it).
            self.timers[name] = min(entry["starting_since"] + model.CLAIM_TTL, now + 1.0)
            return
        due = _number(entry.get("next_restart_at"))
        if due is not None:
            if due - self.lead > now:
                self.timers[name] = due - self.lead
            elif self._may_start(name):
                self._revive(name, due)
            return
        if entry.get("pid") is None and model.last_exit(entry) is None:
            # `add` writes the definition, then starts it in a second transaction: do not take
            # that window for a crash. If the adder died in between, start it after a grace.
            seen = self.first_seen.setdefault(name, now)
            if now - seen < NEW_GRACE:
                self.timers[name] = seen + NEW_GRACE
                return
        self.first_seen.pop(name, None)
        # A death nobody has handled: one we saw by state, or one from before this watcher.
        self._died(name, entry.get("pid"), entry.get("create_time"))

    @property
    def lead(self) -> float:
        # A state write with fsync takes several times its average now and then (a shared
        # disk): a claim taken too late makes the restart late, one taken a few tens of ms
        # early costs nothing (the claim says the truth: the service is about to start).
        return min(MAX_LEAD, 3 * self.txn_cost + 0.02)

    def _may_start(self, name: str) -> bool:
        if self._starts >= MAX_STARTS_PER_TICK:
            self.dirty.add(name)
            return False
        self._starts += 1
        return True

    # --- watching --------------------------------------------------------------------------

    def _watch(self, name: str, pid: int, ct: float) -> Watched:
        w = Watched(name, pid, float(ct))
        self.watched[name] = w
        self.by_pid[pid] = name
        self._live_logs = None
        return w

    def _unwatch(self, name: str) -> None:
        w = self.watched.pop(name, None)
        if w is not None:
            self.by_pid.pop(w.pid, None)
            self.notifier.unwatch(w.pid)
            self._live_logs = None
            if w.pid in self.api.children:
                self._unwatched_children.add(w.pid)

    def _reap_unwatched(self) -> None:
        """Reap children we stopped watching (another face restarted them): no zombies."""
        for pid in list(self._unwatched_children):
            child = self.api.children.get(pid)
            if child is None:
                self._unwatched_children.discard(pid)
            elif child[1].poll() is not None:
                del self.api.children[pid]
                self._unwatched_children.discard(pid)

    def _on_pid_exit(self, pid: int) -> None:
        name = self.by_pid.get(pid)
        if name is None:
            return
        w = self.watched[name]
        self._unwatch(name)
        self._died(name, pid, w.create_time)

    def _exit_code(self, pid: int | None) -> tuple[int | None, bool]:
        """(returncode, known). Known only for children this watcher spawned and reaps."""
        if pid is None:
            return None, False
        child = self.api.children.pop(pid, None)
        if child is not None:
            proc = child[1]
            code = proc.poll()
            if code is None:
                try:  # the exit event can precede the moment waitpid sees the zombie
                    code = proc.wait(timeout=1.0)
                except Exception:
                    self.api.children[pid] = child
                    return None, False
            return code, True
        if pid in self.api.exit_codes:
            return self.api.exit_codes.pop(pid), True
        return None, False

    def _prune_exit_codes(self) -> None:
        """Forget codes nobody will ask for (bounded memory over many restarts)."""
        if not self.api.exit_codes:
            return
        recorded = {e.get("pid") for e in self.entries.values()}
        for pid in [p for p in self.api.exit_codes if p not in self.by_pid and p not in recorded]:
            del self.api.exit_codes[pid]

    # --- actions ---------------------------------------------------------------------------

    def _died(self, name: str, pid: int | None, ct: float | None) -> None:
        """Record the end of a run and schedule the restart, if the entry still names ``pid``."""
        code, known = self._exit_code(pid)
        ct = _number(ct)
        now = self.clock()
        t0 = time.perf_counter()
        with state.transaction(self.home, self.api.warn) as data:
            entry = state.processes(data).get(name)
            if entry is None or entry.get("pid") != pid:
                return  # stale: removed, or another face already started a new instance
            last = model.last_exit(entry)
            recorded = last is not None and (
                (pid is not None and last.get("pid") == pid)
                or (bool(last.get("error")) and (_number(last.get("at")) or 0) >= (_number(entry.get("started_at")) or 0))
            )
            if not recorded and pid is not None:
                last = dict(exit_description(code), at=now, pid=pid)
                if not known:
                    last["unknown"] = True
                entry["last_exit"] = last
            if entry.get("explicitly_stopped"):
                outcome, delay = "stopped by user", None
            elif model.claim_fresh(entry, now):
                outcome, delay = "being restarted", None
            else:
                due = _number(entry.get("next_restart_at"))
                if due is None:
                    base = backoff.delay(
                        entry.get("restart_attempt"), model.backoff_base(entry), model.backoff_max(entry)
                    )
                    due = now + base + backoff.jitter(name, base)
                    entry["next_restart_at"] = due
                delay = max(0.0, due - now)
                outcome = f"restarting in {fmt_seconds(delay)} s"
            log_path = entry.get("log_path")
            started = _number(entry.get("started_at"))
            group = Api._old_group(entry) if pid is not None else None
            stop_sig = Api._signal(entry)
            self.entries[name] = dict(entry)  # so a restart due now is not taken for a new death
        self.txn_cost = 0.8 * self.txn_cost + 0.2 * (time.perf_counter() - t0)
        # started_at (our clock, just after the spawn) is finer than the kernel's create time.
        if started is None or ct is None or abs(started - ct) > 2:
            started = _number(ct)
        uptime = f" after {fmt_seconds(max(0.0, now - started))} s" if started is not None else ""
        if delay is not None:
            self.timers[name] = now + delay - self.lead
        else:
            self.timers.pop(name, None)
        if group is not None and _signal_leftovers(group, stop_sig):
            # The leader died but members of its group live on (workers, a reloader): they
            # would hold its port and duplicate its work (LESSONS 1). Ask now, SIGKILL at restart.
            self.leftovers[name] = group
            self.log(f"leftovers of {name} in process group {group}: sent {signal.Signals(stop_sig).name}")
        if recorded or pid is None:
            why = last.get("error") if last and last.get("error") else "not running"
            self.log(f"schedule {name}: {why}; {outcome}")
            return
        what = exit_text(code, known)
        if log_path:
            # `stop` already wrote "[auto] stopped by user" to the run's log: add how it ended only.
            tail = "" if outcome == "stopped by user" else f"; {outcome}"
            logs.append_line(log_path, f"[auto] {what}{uptime}{tail}")
        self.log(f"exit {name} pid {pid} {what}{uptime}; {outcome}")

    def _revive(self, name: str, due: float) -> None:
        group = self.leftovers.pop(name, None)
        if group is not None and _signal_leftovers(group, signal.SIGKILL):
            self.log(f"leftovers of {name} in process group {group}: sent SIGKILL")
        outcome = self.api.revive(name, not_before=due)
        if outcome is None:
            return  # stopped, claimed or already running: the state change will tell us
        if outcome.ok:
            self.log(f"start {name} pid {outcome.pid} (automatic restart)")
        else:
            self.log(f"error: {outcome.message}")
        self.dirty.add(name)  # watch the new pid, or schedule the next try (a failed spawn is a crash)
        self._check_state()

    def _periodic(self, name: str, w: Watched) -> None:
        self._unwatch(name)  # its death is ours, not a crash
        self.api.exit_codes.pop(w.pid, None)
        outcome = self.api.periodic_restart(name)
        self.periodic_anchor[name] = self.clock()
        if outcome is None:
            self.dirty.add(name)
            return
        if outcome.ok:
            self.log(f"start {name} pid {outcome.pid} (periodic restart, was pid {w.pid})")
        else:
            self.log(f"error: periodic restart: {outcome.message}")
        self.dirty.add(name)
        self._check_state()

    def _maintain_logs(self) -> None:
        """Bounded log maintenance (issue 7): cheap unless something is due."""
        if self._live_logs is None:
            self._live_logs = {w.name: self.entries.get(w.name, {}).get("log_path") for w in self.watched.values()}
            self._watcher_log = self.home.watcher_log if self.home.watcher_log.exists() else None
        for event in self.maintainer.tick(self._live_logs, self._watcher_log):
            if event.error or event.kind == "rolled":
                self.log(f"logs: {event.kind} {event.path} {event.detail}".rstrip())

    def _reset_backoff(self, name: str, w: Watched) -> None:
        with state.transaction(self.home, self.api.warn) as data:
            entry = state.processes(data).get(name)
            if entry is None or entry.get("pid") != w.pid or not entry.get("restart_attempt"):
                return
            entry["restart_attempt"] = 0
        self.log(f"reset {name}: up {fmt_seconds(backoff.RESET_AFTER)} s, backoff counter cleared")


def _signal_leftovers(group: int, sig: int) -> bool:
    """Signal what is left of a dead leader's group; False if nothing is left.

    Only while no process holds the leader's pid: the kernel never reuses a pid that still
    names a process group, so such a group can only be the old service's.
    """
    if group <= 1 or identity.create_time(group) is not None:
        return False
    if not procgroup.live_groups({group}):
        return False  # gone, or only zombies waiting for init
    return procgroup.ask_group(group, sig)


def _number(value: object) -> float | None:
    """A finite number from a (possibly hand-edited) state field, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def main(home: Home, poll_only: bool = False) -> int:
    """``auto watch``: exit 1 (via WatcherRunning) if another watcher holds the lock."""
    fd = watchlock.acquire(home)
    try:
        return Watcher(home, poll_only=poll_only).run()
    finally:
        os.close(fd)
