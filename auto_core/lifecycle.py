"""The lifecycle API: the only way any face changes services (DESIGN.md §1, §3, §4).

Every mutation follows the same shape: write intent under the state lock, act (spawn or
signal) outside it, then record the outcome under the lock. Two rules make concurrent faces
safe (LESSONS 13, 14): ``stop`` records ``explicitly_stopped`` before it signals, and a start
records a claim (``starting_since``) before it spawns; a start only records its pid if its
claim is still there, otherwise (a stop or remove came in between) it kills what it spawned.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable

from auto_core import (
    backoff,
    identity,
    logs,
    model,
    ports,
    procgroup,
    spawn,
    state,
    validate,
    views,
)
from auto_core.errors import AutoError, NotFound, UsageError, warn_stderr
from auto_core.model import ProcessView
from auto_core.paths import Home
from auto_core.record import Record

PORT_WAIT = 10.0  # bounded wait for a port to be released on restart
EARLY_MAX = 8  # up to this many starts spawn before the state file is parsed (state.Peek)


class Outcome(Record):
    """What happened to one name in a batch call."""

    name: str
    ok: bool
    message: str
    pid: int | None = None


class Api:
    """Lifecycle operations on one ``AUTO_HOME``.

    Args:
        home: where state and logs live.
        clock: wall-clock source (tests inject one).
        warn: receives non-fatal warnings (default: one ``auto: warning:`` line on stderr).
    """

    def __init__(
        self,
        home: Home | None = None,
        *,
        clock: Callable[[], float] = time.time,
        warn: Callable[[str], None] | None = None,
    ):
        self.home = home or Home.resolve()
        self.clock = clock
        self.warn = warn or warn_stderr
        # Children this process spawned, kept so long-lived faces can reap them (no zombies).
        self.children: dict[int, tuple[str, spawn.Child]] = {}
        self._log_paths: dict[str, tuple[tuple, str | None]] = {}  # name -> (state signature, log)

    # --- reading ---------------------------------------------------------------------------

    def load(self) -> dict:
        loaded = state.load(self.home)
        if loaded.problem:
            self.warn(loaded.problem)
        return loaded.data

    def names(self) -> list[str]:
        return sorted(state.processes(self.load()))

    def entry(self, name: str) -> dict:
        validate.name(name)  # show/log with a bad name: a usage error, not "no such process"
        entry = state.processes(self.load()).get(name)
        if entry is None:
            raise NotFound(name)
        return entry

    def view(self, name: str, entry: dict | None = None, now: float | None = None) -> ProcessView:
        entry = entry if entry is not None else self.entry(name)
        return views.view(name, entry, self.clock() if now is None else now)

    def snapshot(self) -> list[ProcessView]:
        """Every process, sorted by name, with its live status."""
        return views.snapshot(self.load(), self.clock())

    def log_path(self, name: str) -> str | None:
        """The current log file of ``name``. Followers ask often (``log -f``, the TUI's log pane
        every 0.1 s): the state is parsed again only when ``state.json`` changed (stat first)."""
        key = state.signature(str(self.home.state_file))
        cached = self._log_paths.get(name)
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
        entry = self.entry(name)
        path = logs.current_log(self.home, name, entry.get("log_path"))
        found = str(path) if path else None
        self._log_paths[name] = (key, found)
        return found

    # --- definitions -----------------------------------------------------------------------

    def add(
        self,
        name: str,
        command: str,
        *,
        workdir: str | None = None,
        port: int | str | None = None,
        env: dict[str, str] | None = None,
        restart_every: float | str | None = None,
        backoff_max: float | None = None,
        backoff_base: float | None = None,
        stop_timeout: float | None = None,
        stop_signal: str | None = None,
        log_max_bytes: int | str | None = None,
        log_keep_parts: int | str | None = None,
        log_keep_days: float | str | None = None,
        start: bool = True,
    ) -> Outcome:
        validate.name(name)
        entry: dict = {
            "command": validate.command(command),
            "workdir": validate.workdir(workdir or os.getcwd()),
            "port": validate.port(port),
            "env": dict(env or {}),
            "explicitly_stopped": not start,
            "restart_attempt": 0,
            "restarts": 0,
            "last_restart_time": None,
            "pid": None,
            "create_time": None,
            "log_path": None,
        }
        # A service gets the same PATH whoever starts it (CLI, TUI, or launchd's minimal PATH).
        entry["env"].setdefault("PATH", os.environ.get("PATH", os.defpath))
        self._apply_options(
            entry,
            restart_every=restart_every,
            backoff_max=backoff_max,
            backoff_base=backoff_base,
            stop_timeout=stop_timeout,
            stop_signal=stop_signal,
            log_max_bytes=log_max_bytes,
            log_keep_parts=log_keep_parts,
            log_keep_days=log_keep_days,
        )
        with self._txn() as data:
            procs = state.processes(data)
            if name in procs:
                raise AutoError(f"a process named {name!r} already exists (use 'auto update {name}')")
            procs[name] = entry
        if not start:
            return Outcome(name, True, f"added {name} (not started)")
        result = self.start([name])[0]
        return Outcome(name, result.ok, f"added {name}; {result.message}", result.pid)

    @staticmethod
    def _apply_options(entry: dict, **options) -> None:
        if "restart_every" in options and options["restart_every"] is not None:
            value = options["restart_every"]
            entry["restart_every"] = validate.interval(value) if value != "off" else None
        if options.get("backoff_max") is not None:
            entry["backoff_max"] = validate.seconds(options["backoff_max"], "backoff max", 1)
        if options.get("backoff_base") is not None:
            entry["backoff_base"] = validate.seconds(options["backoff_base"], "backoff base", 0)
        if options.get("stop_timeout") is not None:
            entry["stop_timeout"] = validate.seconds(options["stop_timeout"], "stop timeout", 0)
        if options.get("stop_signal") is not None:
            entry["stop_signal"] = validate.signal_name(options["stop_signal"])
        for key in ("log_max_bytes", "log_keep_parts", "log_keep_days"):
            if options.get(key) is not None:
                from auto_core import logmaint  # only when a log option is given

                entry[key] = logmaint.parse_option(key, options[key])

    def update(
        self,
        name: str,
        *,
        command: str | None = None,
        workdir: str | None = None,
        port: int | str | None = None,
        env: dict[str, str] | None = None,
        unset_env: Iterable[str] = (),
        restart_every: float | str | None = None,
        backoff_max: float | None = None,
        backoff_base: float | None = None,
        stop_timeout: float | None = None,
        stop_signal: str | None = None,
        log_max_bytes: int | str | None = None,
        log_keep_parts: int | str | None = None,
        log_keep_days: float | str | None = None,
    ) -> Outcome:
        """Change the definition; the running instance keeps its old settings until restarted."""
        validate.name(name)
        changes: dict = {}
        if command is not None:
            changes["command"] = validate.command(command)
        if workdir is not None:
            changes["workdir"] = validate.workdir(workdir)
        if port is not None:
            changes["port"] = validate.port(port)
        scratch: dict = {}
        self._apply_options(
            scratch,
            restart_every=restart_every,
            backoff_max=backoff_max,
            backoff_base=backoff_base,
            stop_timeout=stop_timeout,
            stop_signal=stop_signal,
            log_max_bytes=log_max_bytes,
            log_keep_parts=log_keep_parts,
            log_keep_days=log_keep_days,
        )
        unset = list(unset_env)
        for key in unset:
            if not validate.ENV_KEY_RE.fullmatch(key):
                raise UsageError(f"invalid environment variable name {key!r}")
        if not changes and not scratch and not env and not unset:
            raise UsageError("nothing to update: give at least one option (see 'auto update -h')")
        with self._txn() as data:
            entry = state.processes(data).get(name)
            if entry is None:
                raise NotFound(name)
            entry.update(changes)
            entry.update(scratch)
            if env or unset:
                merged = model.env(entry)
                merged.update(env or {})
                for key in unset:
                    merged.pop(key, None)
                entry["env"] = merged
            running = identity.is_ours(entry.get("pid"), entry.get("create_time"))
        tail = f"; takes effect on next start (auto restart {name})" if running else "; takes effect on next start"
        return Outcome(name, True, f"updated {name}{tail}")

    def remove(self, name: str) -> Outcome:
        """Stop the service (like ``stop``), then delete its definition. Logs stay."""
        result = self.stop([name])[0]
        if not result.ok:
            raise AutoError(f"{result.message}; {name} was not removed")
        with self._txn() as data:
            procs = state.processes(data)
            if name not in procs:
                raise NotFound(name)
            entry = procs[name]
            if identity.is_ours(entry.get("pid"), entry.get("create_time")):
                raise AutoError(f"{name} was started again while being removed; not removed")
            del procs[name]
        return Outcome(name, True, f"removed {name} (logs kept in {self.home.process_logs(name)})")

    # --- starting --------------------------------------------------------------------------

    def start(self, names: Iterable[str], *, skip_running: bool = False) -> list[Outcome]:
        """Manual start: clears ``explicitly_stopped`` and resets the backoff counter."""
        return self._launch(list(names), mode="start", skip_running=skip_running)

    def restart(self, names: Iterable[str]) -> list[Outcome]:
        """Stop (group, bounded) and start again; resets the backoff counter."""
        return self._launch(list(names), mode="restart")

    def start_all(self) -> list[Outcome]:
        # Every name the state holds when the claims are taken (one parse of it, not two).
        return self._launch(None, mode="start", skip_running=True)

    def revive(self, name: str, reason: str = "restart", not_before: float | None = None) -> Outcome | None:
        """Automatic restart for the watcher: only if dead, not stopped and not claimed.

        Counts an attempt (``restart_attempt`` += 1) instead of resetting it. Returns None
        when there is nothing to do (someone else handled it). ``not_before`` (clock time):
        the claim may be taken early, the spawn waits for it, so the restart lands on time.
        """
        outcomes = self._launch([name], mode="auto", reason=reason, not_before=not_before)
        return outcomes[0] if outcomes else None

    def periodic_restart(self, name: str) -> Outcome | None:
        """Scheduled restart (``restart_every``) of a running service; keeps the backoff counter."""
        outcomes = self._launch([name], mode="periodic")
        return outcomes[0] if outcomes else None

    def _launch(
        self, names: list[str] | None, *, mode: str, skip_running: bool = False, reason: str = "",
        not_before: float | None = None,
    ) -> list[Outcome]:
        """``names`` None: every process of the state."""
        for name in names or ():
            validate.name(name)
        now = self.clock()
        claims: dict[str, dict] = {}  # name -> copy of the entry as claimed
        outcomes: dict[str, Outcome] = {}
        orphans: dict[str, float] = {}  # name -> claim of a starter that died
        with self._txn() as data:
            procs = state.processes(data)
            if names is None:
                names = sorted(procs)
                for name in names:  # a hand-edited state must not name paths outside the home
                    validate.name(name)
            missing = [n for n in names if n not in procs]
            if missing and mode != "auto":
                raise NotFound(missing[0])
            for name in names:
                entry = procs.get(name)
                if entry is None:
                    continue
                alive = identity.is_ours(entry.get("pid"), entry.get("create_time"))
                if model.claim_fresh(entry, now):
                    if mode != "auto":
                        outcomes[name] = Outcome(name, False, f"{name} is already being started")
                    continue
                if mode == "auto" and (alive or entry.get("explicitly_stopped")):
                    continue
                if mode == "periodic" and (not alive or entry.get("explicitly_stopped")):
                    continue
                if mode == "start" and alive:
                    msg = f"{name} is already running (pid {entry['pid']})"
                    outcomes[name] = Outcome(name, skip_running, msg, entry["pid"])
                    continue
                stale = entry.get("starting_since")
                if isinstance(stale, (int, float)) and not isinstance(stale, bool):
                    orphans[name] = stale  # a dead starter's claim: it may have spawned already
                entry["starting_since"] = now
                entry["starting_by"] = _owner()
                entry["explicitly_stopped"] = False
                entry.pop("next_restart_at", None)
                if mode in ("start", "restart"):
                    entry["restart_attempt"] = 0
                elif mode == "auto":
                    entry["restart_attempt"] = model.count(entry, "restart_attempt") + 1
                    entry["restarts"] = model.count(entry, "restarts") + 1
                    entry["last_restart_time"] = now
                else:  # periodic
                    entry["last_periodic_restart"] = now
                claims[name] = dict(entry, _alive=alive)
        # Act outside the lock: clear what dead starters left, stop old groups (restart),
        # free ports, spawn.
        for name, stale in orphans.items():
            if name in claims:
                self._kill_orphans(name, stale)
        if claims and not_before is not None:
            time.sleep(min(1.0, max(0.0, not_before - self.clock())))
        # One /proc pass finds which dead leaders' groups still have live members, instead of
        # one pass per name (start-all of 200 services; unreaped zombies keep groups "present").
        maybe_left = {c["pid"] for c in claims.values() if not c["_alive"] and type(c.get("pid")) is int and c["pid"] > 1}
        live = procgroup.live_groups(maybe_left) if maybe_left else set()
        old_groups = {
            name: c["pid"] for name, c in claims.items()
            if (mode in ("restart", "periodic") and c["_alive"])
            or (not c["_alive"] and c.get("pid") in live and self._leftover_group(c) is not None)
        }
        if old_groups:
            self._terminate({n: claims[n] for n in old_groups}, log_line="[auto] restarting")
        errors: dict[str, str | None] = {}
        for name, claim in claims.items():
            errors[name] = None
            try:
                self._free_port(name, claim, wait=name in old_groups)
            except (AutoError, OSError) as exc:
                errors[name] = str(exc) if isinstance(exc, AutoError) else f"cannot start {name}: {exc.strerror or exc}"
        if claims:
            outcomes.update(self._spawn_claimed(claims, errors, mode))
        return [outcomes[n] for n in names if n in outcomes]

    def _kill_orphans(self, name: str, claim: float) -> None:
        """SIGKILL the groups of processes a dead starter spawned under ``claim`` (found by
        their environment) but never recorded: they would run beside the new copy."""
        import psutil

        want = {"AUTO_SERVICE": name, "AUTO_CLAIM": repr(claim)}
        groups = set()
        for proc in psutil.process_iter():
            try:
                env = proc.environ()
                if all(env.get(k) == v for k, v in want.items()):
                    groups.add(os.getpgid(proc.pid))
            except (psutil.Error, OSError):
                continue
        if groups:
            procgroup.terminate_groups(groups, signal.SIGKILL, 5.0, self.reap)

    def _spawn_claimed(
        self, claims: dict[str, dict], errors: dict[str, str | None], mode: str
    ) -> dict[str, Outcome]:
        """Spawn and record under the lock, each name only while its claim still stands.

        A start whose claim a stop or remove revoked never spawns, so it cannot run beside the
        copy a later start makes (issue 6, scenario 1). Holding the lock costs one fork+exec
        per name; one transaction for the whole batch keeps `auto start-all` of 200 services
        at one state write instead of 200 (docs/benchmarks.md, Core CLI). When every claim can
        be checked on its own line of the file (``state.Peek``), the spawns come before the
        whole file is parsed: a restart does not wait for the other 199 entries.
        """
        verb = {"restart": "restarted", "periodic": "restarted", "auto": "restarted"}.get(mode, "started")
        done: dict[str, Outcome] = {}
        launched: dict[str, tuple[spawn.Spawned, str, float]] = {}  # name -> (spawned, log, started_at)
        failed: dict[str, str] = {}  # name -> why it could not be started
        created: dict[str, float] = {}

        def early(peek: state.Peek) -> None:
            entries = {name: peek.entry(name) for name in claims}
            if all(_claim_stands(e, claims[n]) and not errors.get(n) for n, e in entries.items()):
                self._launch_entries(entries, claims, spawner, launched, failed)
                # Reading a child's start time waits while it is still exec'ing: waiting here,
                # before the parse and the write, leaves the CPU to the new process's start.
                created.update((n, spawn.created(s.pid)) for n, (s, _, _) in launched.items())

        try:
            # A batch parses the file anyway: peeking at 200 lines would cost more than it saves.
            peek = early if len(claims) <= EARLY_MAX else None
            with spawn.Spawner() as spawner, state.transaction(self.home, self.warn, peek) as data:
                procs = state.processes(data)
                pending: dict[str, dict] = {}
                for name, claim in claims.items():
                    entry = procs.get(name)
                    stands = _claim_stands(entry, claim)
                    if name in launched and not stands:  # the file changed behind the lock
                        procgroup.terminate_groups([launched.pop(name)[0].pid], timeout=2.0, reap=self.reap)
                    if not stands:
                        failed.pop(name, None)
                        done[name] = Outcome(name, False, f"{name} was stopped or removed while starting")
                    elif name not in launched and name not in failed:
                        if errors.get(name):
                            failed[name] = errors[name]
                        else:
                            pending[name] = entry
                if pending:
                    self._launch_entries(pending, claims, spawner, launched, failed)
                for name, error in failed.items():
                    done[name] = self._not_started(procs[name], name, error)
                for name, (spawned, log_path, started_at) in launched.items():
                    procs[name].update(pid=spawned.pid, log_path=log_path, starting_since=None,
                                       started_at=started_at,
                                       create_time=created.get(name) or spawn.created(spawned.pid))
                    done[name] = Outcome(name, True, f"{verb} {name} (pid {spawned.pid})", spawned.pid)
        except BaseException:
            if launched:  # not recorded: do not leave untracked copies behind
                procgroup.terminate_groups([s.pid for s, _, _ in launched.values()], timeout=2.0, reap=self.reap)
            raise
        return done

    def _launch_entries(
        self, entries: dict[str, dict], claims: dict[str, dict], spawner: spawn.Spawner,
        launched: dict[str, tuple[spawn.Spawned, str, float]], failed: dict[str, str],
    ) -> None:
        """Create every log file, then spawn every process (a file created between spawns took
        ~0.3 ms as the new children write their headers meanwhile; in a row ~0.04 ms)."""
        from datetime import datetime  # here: `auto ps` never needs it (~2.4 ms)

        ready = []  # (name, entry, log path, log fd, start time)
        try:
            for name, entry in entries.items():
                when = datetime.now()
                try:
                    path, fd = logs.create_run_log(self.home, name, when)
                except OSError as exc:
                    failed[name] = (f"cannot create the log file for {name} under "
                                    f"{self.home.process_logs(name)}: {exc.strerror or exc}")
                    continue
                ready.append((name, entry, path, fd, when))
            for name, entry, path, fd, when in ready:
                # The claim goes into the child's environment, so whoever takes over a dead
                # starter's claim can find a copy it spawned but never recorded.
                env = dict(model.env(entry), AUTO_CLAIM=repr(claims[name]["starting_since"]))
                workdir = model.workdir(entry) or os.path.expanduser("~")
                try:
                    spawned = spawner.spawn(name, entry["command"], workdir, env, fd, when, log_path=str(path))
                except spawn.SpawnError as exc:
                    logs.write_line(fd, f"[auto] cannot start {name}: {exc.strerror}")
                    failed[name] = f"cannot start {name}: {exc.strerror}"
                    continue
                self.children[spawned.pid] = (name, spawned.child)
                launched[name] = (spawned, str(path), self.clock())
        finally:
            for item in ready:
                os.close(item[3])

    def _not_started(self, entry: dict, name: str, error: str) -> Outcome:
        entry["starting_since"] = None
        entry["last_exit"] = {"code": None, "signal": None, "at": self.clock(), "error": error}
        return Outcome(name, False, error)

    def _free_port(self, name: str, entry: dict, wait: bool) -> None:
        port = entry.get("port")
        if not isinstance(port, int):
            return
        deadline = time.monotonic() + (PORT_WAIT if wait else 0.0)
        while True:
            holders = ports.listeners(port)
            if not holders:
                return
            old = self._old_group(entry)
            leftovers = {h.pgid for h in holders if old is not None and h.pgid == old
                         and (identity.create_time(h.pid) or 0) >= entry["create_time"] - identity.CREATE_TIME_TOLERANCE}
            if leftovers and len(leftovers) == len({h.pgid for h in holders}):
                # The old instance's group still listens (a reloader or worker): stop it like the service.
                procgroup.terminate_groups(leftovers, self._signal(entry), model.stop_timeout(entry), self.reap)
                continue
            if time.monotonic() >= deadline:
                who = ", ".join(identity.describe(h.pid) for h in holders if h.pid) or "another process"
                raise AutoError(f"port {port} is in use by {who}; not starting {name}")
            time.sleep(0.05)

    @staticmethod
    def _old_group(entry: dict) -> int | None:
        """The previous instance's process group, or None when it cannot be ours.

        A group outlives its leader, so a dead leader's pid still names the group. But a pid
        now held by a different process (another create time) was recycled: the kernel never
        hands out a pid still used as a pgid, so that group is someone else's (issue 6, §3).
        """
        pid, ct = entry.get("pid"), entry.get("create_time")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
            return None
        if not isinstance(ct, (int, float)) or isinstance(ct, bool):
            return None  # no create time: not ours (LESSONS 3)
        if identity.is_ours(pid, ct) or identity.create_time(pid) is None:
            return pid
        return None

    def _leftover_group(self, entry: dict) -> int | None:
        """The old group when its leader is gone but members still run, else None.

        Only members created at or after the recorded start count, so a group that merely
        reuses the number is never signalled.
        """
        pgid = self._old_group(entry)
        if pgid is None or identity.is_ours(pgid, entry["create_time"]) or not procgroup.exists(pgid):
            return None
        born = [t for t in map(identity.create_time, procgroup.members(pgid)) if t is not None]
        if born and all(t >= entry["create_time"] - identity.CREATE_TIME_TOLERANCE for t in born):
            return pgid
        return None

    # --- stopping --------------------------------------------------------------------------

    def stop(self, names: Iterable[str]) -> list[Outcome]:
        """Record the stop first, then TERM the group, wait, KILL, wait. Idempotent."""
        names = list(names)
        for name in names:
            validate.name(name)
        targets: dict[str, dict] = {}
        candidates: dict[str, dict] = {}
        with self._txn() as data:
            procs = state.processes(data)
            for name in names:
                if name not in procs:
                    raise NotFound(name)
            for name in names:
                entry = procs[name]
                entry["explicitly_stopped"] = True
                entry["starting_since"] = None  # revokes an in-flight start's claim
                entry.pop("next_restart_at", None)
                if identity.is_ours(entry.get("pid"), entry.get("create_time")):
                    targets[name] = dict(entry)
                else:
                    candidates[name] = dict(entry)
        # A leader that exited can leave children in its group (LESSONS 1): stop those too.
        targets.update({n: e for n, e in candidates.items() if self._leftover_group(e) is not None})
        survivors = self._terminate(targets, log_line="[auto] stopped by user") if targets else set()
        outcomes = []
        for name in names:
            if name in survivors:
                outcomes.append(Outcome(name, False, f"{name}: process group {targets[name]['pid']} survived SIGKILL"))
            elif name in targets:
                outcomes.append(Outcome(name, True, f"stopped {name}"))
            else:
                outcomes.append(Outcome(name, True, f"stopped {name} (it was not running)"))
        return outcomes

    def stop_all(self) -> list[Outcome]:
        return self.stop(self.names())

    @staticmethod
    def _signal(entry: dict) -> int:
        return int(signal.Signals[model.stop_signal(entry)])

    def _terminate(self, targets: dict[str, dict], log_line: str) -> set[str]:
        """TERM/KILL each target's group; return the names whose group survived.

        ``log_line`` goes into each run's log before the signal: then the service's own
        shutdown output, and the watcher's line on how the run ended, follow it in order.
        """
        by_policy: dict[tuple[int, float], list[str]] = {}
        for name, entry in targets.items():
            by_policy.setdefault((self._signal(entry), model.stop_timeout(entry)), []).append(name)
            if entry.get("log_path"):
                logs.append_line(entry["log_path"], log_line)
        survivors: set[str] = set()
        for (sig, timeout), group_names in by_policy.items():
            pgids = {targets[n]["pid"]: n for n in group_names}
            left = procgroup.terminate_groups(pgids, sig, timeout, self.reap)
            survivors.update(pgids[p] for p in left)
        for name in survivors:
            if targets[name].get("log_path"):
                logs.append_line(targets[name]["log_path"], f"[auto] process group {targets[name]['pid']} survived SIGKILL")
        return survivors

    # --- children --------------------------------------------------------------------------

    def reap(self) -> list[tuple[str, int, int]]:
        """Collect exited children spawned by this process: ``[(name, pid, returncode)]``."""
        done = []
        for pid, (name, child) in list(self.children.items()):
            code = child.poll()
            if code is not None:
                del self.children[pid]
                done.append((name, pid, code))
        return done

    def record_exits(self, reaped: list[tuple[str, int, int]]) -> None:
        """Write ``last_exit`` for children this process reaped (``reap()``'s result), where
        the entry still names that pid. A watcher that saw the same death without knowing its
        code ("unknown") is corrected; a known code is never overwritten."""
        if not reaped:
            return
        now = self.clock()
        with self._txn() as data:
            procs = state.processes(data)
            for name, pid, code in reaped:
                entry = procs.get(name)
                if entry is None or entry.get("pid") != pid:
                    continue
                last = model.last_exit(entry)
                if last and last.get("pid") == pid and not last.get("unknown"):
                    continue
                entry["last_exit"] = dict(exit_description(code), at=now, pid=pid)

    def _txn(self):
        return state.transaction(self.home, self.warn)


def _claim_stands(entry: dict | None, claim: dict) -> bool:
    """Whether ``entry`` still holds the claim taken as ``claim`` (no stop or remove since)."""
    return entry is not None and entry.get("starting_since") == claim["starting_since"]


def exit_description(code: int | None) -> dict:
    """``last_exit`` fields from a Popen returncode (negative = killed by signal)."""
    if code is None:
        return {"code": None, "signal": None}
    if code < 0:
        return {"code": None, "signal": -code}
    return {"code": code, "signal": None}


_OWNER: list | None = None


def _owner() -> list:
    """This process as a claim owner: [pid, create time] (``model.claim_fresh``)."""
    global _OWNER
    if _OWNER is None or _OWNER[0] != os.getpid():  # recomputed after a fork
        _OWNER = [os.getpid(), identity.create_time(os.getpid())]
    return _OWNER


__all__ = ["Api", "Outcome", "backoff", "exit_description"]
