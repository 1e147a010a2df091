"""The lifecycle API: how every face (the CLI, the TUI) changes services.

Faces never spawn or signal a service; the watcher does (docs/architecture.md). A face
changes definitions under the state lock, and for a start, stop, restart or remove it writes
a request into the entry (with the intent that must hold at once: a stop sets
``explicitly_stopped`` in the same write, so nothing revives the service meanwhile), brings a
watcher up if none runs, and waits for the watcher's outcome. If the watcher does not answer
in time the request stays recorded, and the next watcher carries it out.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from auto_core import model, order, validate, views
from auto_core.errors import AutoError, NotFound, StateError, UsageError, no_space, warn_stderr
from auto_core.logtree import logs
from auto_core.model import ProcessView
from auto_core.proc import identity, shellwords
from auto_core.record import Factory, Record
from auto_core.store import environ, state, watchlock
from auto_core.store.paths import Home
from auto_core.supervisor import control, ondemand
from auto_core.supervisor.timing import KILL_WAIT, PORT_WAIT

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from auto_core.setupfile import Step

ACT_TIMEOUT = 5.0  # how long the watcher may take to act on a request, besides stop timeouts
CHECK_WINDOW = 0.5  # after a start: a service that exits within this is reported as failed
POLL = 0.002  # how often a waiting face looks at state.json (a stat; a parse when it changed)
DETAIL_LINES = 5  # log lines shown with a start that failed
ORDER_WAIT = 60.0  # how long a start held for the services it comes after is waited for


class Outcome(Record):
    """What happened to one name."""

    name: str
    ok: bool
    message: str
    pid: int | None = None
    detail: tuple = Factory(factory=tuple)  # the last lines of the run's log, for a failed start


class Api:
    """Lifecycle operations on one ``AUTO_HOME``.

    Args:
        home: where state and logs live.
        clock: wall-clock source (tests inject one).
        warn: receives non-fatal warnings (default: one ``auto: warning:`` line on stderr).
        say: receives notices such as "started the watcher" (default: like ``warn``'s
            stream, as ``auto: ...``).
    """

    def __init__(
        self,
        home: Home | None = None,
        *,
        clock: Callable[[], float] = time.time,
        warn: Callable[[str], None] | None = None,
        say: Callable[[str], None] | None = None,
    ):
        self.home = home or Home.resolve()
        self.clock = clock
        self.warn = warn or warn_stderr
        self.say = say or _say_stderr
        self.state = state.StateFile(self.home, self.warn)

    # --- reading ---------------------------------------------------------------------------

    def load(self) -> dict:
        """The state as last changed (parsed again only when the file was replaced)."""
        return self.state.read()

    def names(self) -> list[str]:
        return sorted(state.processes(self.load()))

    def entry(self, name: str) -> dict:
        validate.name(name)  # show/log with a bad name: a usage error, not "no such process"
        entry = state.processes(self.load()).get(name)
        if entry is None:
            raise NotFound(name)
        return entry

    def view(self, name: str, entry: dict | None = None, now: float | None = None) -> ProcessView:
        """``name``'s view; without ``entry``, with what a start of it waits for."""
        now = self.clock() if now is None else now
        if entry is not None:
            return views.view(name, entry, now)
        validate.name(name)
        procs = state.processes(self.load())
        if name not in procs:
            raise NotFound(name)
        return views.view(name, procs[name], now, self._held_for(name, procs, now))

    @staticmethod
    def _held_for(name: str, procs: dict, now: float) -> list[str]:
        if not order.after_of(procs[name]):
            return []
        return views.held_for(name, procs, lambda n: n in procs and views.view(n, procs[n], now).status == model.RUNNING,
                              now)

    def snapshot(self) -> list[ProcessView]:
        """Every process, sorted by name, with its live status."""
        return views.snapshot(self.load(), self.clock())

    def environment(self, name: str) -> dict[str, str]:
        """What the next run of ``name`` gets (without auto's own marks)."""
        entry = self.entry(name)
        return environ.service_env(environ.load(self.home, name), model.env(entry), os.environ)

    def watcher(self) -> int | None:
        """The running watcher's pid, or None."""
        return watchlock.holder(self.home)

    def ensure_watcher(self) -> int | None:
        """The running watcher's pid, after starting one if none runs."""
        return ondemand.ensure(self.home, self.say)

    def log_path(self, name: str) -> str | None:
        """The current log file of ``name`` (followers ask often: a ``stat`` while the state
        is unchanged)."""
        path = logs.current_log(self.home, name, self.entry(name).get("log_path"))
        return str(path) if path else None

    def runs(self, name: str) -> list[logs.Run]:
        """Every run of ``name`` that left a log, oldest first (those of a removed one too)."""
        validate.name(name)
        return logs.runs(self.home, name)

    # --- definitions -----------------------------------------------------------------------

    def add(
        self,
        name: str,
        command: str,
        *,
        workdir: str | None = None,
        port: int | str | None = None,
        env: dict[str, str] | None = None,
        env_file: str | None = None,
        restart_every: float | str | None = None,
        backoff_max: float | None = None,
        backoff_base: float | None = None,
        stop_timeout: float | None = None,
        stop_signal: str | None = None,
        daemon_follow: bool | None = None,
        log_max_bytes: int | str | None = None,
        log_keep_parts: int | str | None = None,
        log_keep_days: float | str | None = None,
        restart_on_change: Iterable[str] | None = None,
        ignore: Iterable[str] | None = None,
        health: str | None = None,
        health_interval: float | str | None = None,
        health_timeout: float | str | None = None,
        health_retries: int | str | None = None,
        health_start_period: float | str | None = None,
        after: str | list[str] | None = None,
        start: bool = True,
        wait: float = CHECK_WINDOW,
    ) -> Outcome:
        """Define ``name`` and (unless ``start`` is False) start it. The caller's environment
        is captured now, so every run gets it, whoever starts it."""
        validate.name(name)
        own = _own_env(env, env_file)
        captured = environ.capture()
        entry: dict = {
            "command": validate.command(command),
            "workdir": validate.workdir(workdir or os.getcwd()),
            "port": validate.port(port),
            "env": own,
            "explicitly_stopped": not start,
            "restart_attempt": 0,
            "restarts": 0,
            "last_restart_time": None,
            "pid": None,
            "create_time": None,
            "log_path": None,
            "env_captured": model.digest(captured),
        }
        self._apply_options(
            entry,
            restart_every=restart_every,
            backoff_max=backoff_max,
            backoff_base=backoff_base,
            stop_timeout=stop_timeout,
            stop_signal=stop_signal,
            daemon_follow=daemon_follow,
            log_max_bytes=log_max_bytes,
            log_keep_parts=log_keep_parts,
            log_keep_days=log_keep_days,
            restart_on_change=_under(entry["workdir"], restart_on_change),
            ignore=ignore,
            health=health,
            health_interval=health_interval,
            health_timeout=health_timeout,
            health_retries=health_retries,
            health_start_period=health_start_period,
            after=after,
        )
        check_program(name, entry["command"], dict(captured, **own), entry["workdir"])
        if name in state.processes(self.load()):  # before the env file is written
            raise AutoError(f"a process named {name!r} already exists (use 'auto update {name}')")
        _check_order(state.processes(self.load()), name, entry)
        _check_health_port(name, entry)
        environ.save(self.home, name, captured)
        rid = _new_id()
        try:
            with self._txn() as data:
                procs = state.processes(data)
                if name in procs:
                    raise AutoError(f"a process named {name!r} already exists (use 'auto update {name}')")
                if start:
                    entry["request"] = _request(model.START, rid, self.clock())
                procs[name] = entry
        except AutoError:
            raise
        except BaseException:
            environ.delete(self.home, name)
            raise
        if not start:
            return Outcome(name, True, f"added {name} (not started)")
        result = self._finish({name: model.START}, rid, wait)[0]
        return Outcome(name, result.ok, f"added {name}; {result.message}", result.pid, result.detail)

    @staticmethod
    def _apply_options(entry: dict, **given) -> None:
        """Check each option given (not None) by its rule in ``options`` and store it."""
        from auto_core import options

        for key in options.ENTRY_KEYS:
            if given.get(key) is not None and given[key] != []:  # [] is a repeatable flag not given
                entry[key] = options.BY_KEY[key].check(given[key])

    def update(
        self,
        name: str,
        *,
        command: str | None = None,
        workdir: str | None = None,
        port: int | str | None = None,
        env: dict[str, str] | None = None,
        env_file: str | None = None,
        unset_env: Iterable[str] = (),
        update_env: bool = False,
        restart_every: float | str | None = None,
        backoff_max: float | None = None,
        backoff_base: float | None = None,
        stop_timeout: float | None = None,
        stop_signal: str | None = None,
        daemon_follow: bool | None = None,
        log_max_bytes: int | str | None = None,
        log_keep_parts: int | str | None = None,
        log_keep_days: float | str | None = None,
        restart_on_change: Iterable[str] | None = None,
        ignore: Iterable[str] | None = None,
        health: str | None = None,
        health_interval: float | str | None = None,
        health_timeout: float | str | None = None,
        health_retries: int | str | None = None,
        health_start_period: float | str | None = None,
        after: str | list[str] | None = None,
    ) -> Outcome:
        """Change the definition; the running instance keeps its old settings until restarted.
        ``update_env``: capture the caller's environment again."""
        validate.name(name)
        changes: dict = {}
        if command is not None:
            changes["command"] = validate.command(command)
        if workdir is not None:
            changes["workdir"] = validate.workdir(workdir)
        if port is not None:
            changes["port"] = validate.port(port)
        watched = None
        if restart_on_change is not None:  # relative paths: from the workdir it will have
            watched = _under(changes.get("workdir") or model.workdir(self.entry(name))
                             or os.getcwd(), restart_on_change)
        scratch: dict = {}
        self._apply_options(
            scratch,
            restart_every=restart_every,
            backoff_max=backoff_max,
            backoff_base=backoff_base,
            stop_timeout=stop_timeout,
            stop_signal=stop_signal,
            daemon_follow=daemon_follow,
            log_max_bytes=log_max_bytes,
            log_keep_parts=log_keep_parts,
            log_keep_days=log_keep_days,
            restart_on_change=watched,
            ignore=ignore,
            health=health,
            health_interval=health_interval,
            health_timeout=health_timeout,
            health_retries=health_retries,
            health_start_period=health_start_period,
            after=after,
        )
        unset = list(unset_env)
        for key in unset:
            if not validate.ENV_KEY_RE.fullmatch(key):
                raise UsageError(f"invalid environment variable name {key!r}")
        added = _own_env(env, env_file)
        if not changes and not scratch and not added and not unset and not update_env:
            raise UsageError("nothing to update: give at least one option (see 'auto update -h')")
        current = self.entry(name)
        captured = environ.capture() if update_env else environ.load(self.home, name)
        merged = dict(model.env(current), **added)
        for key in unset:
            merged.pop(key, None)
        if "command" in changes or "workdir" in changes or update_env or added or unset:
            base = captured if captured is not None else environ.capture()
            check_program(name, changes.get("command", current.get("command", "")),
                          dict(base, **merged), changes.get("workdir") or model.workdir(current) or "/")
        if "after" in scratch:  # before anything is written (checked again under the lock)
            _check_order(state.processes(self.load()), name, scratch)
        _check_health_port(name, dict(current, **changes, **scratch))
        if update_env:
            environ.save(self.home, name, captured or {})
        with self._txn() as data:
            entry = state.processes(data).get(name)
            if entry is None:
                raise NotFound(name)
            if "after" in scratch:
                _check_order(state.processes(data), name, scratch)
            _check_health_port(name, dict(entry, **changes, **scratch))
            entry.update(changes)
            entry.update(scratch)
            if update_env:
                entry["env_captured"] = model.digest(captured or {})
            if added or unset:
                now_env = model.env(entry)
                now_env.update(added)
                for key in unset:
                    now_env.pop(key, None)
                entry["env"] = now_env
            running = identity.runs(entry)
        tail = f"; takes effect on next start (auto restart {name})" if running else "; takes effect on next start"
        if not (changes or added or unset or update_env) and set(scratch) <= {"restart_on_change", "ignore"}:
            tail = "; the files watched change at once" if running else ""  # the watcher follows the state
        health_keys = {k for k in scratch if k.startswith("health")}
        if not (changes or added or unset or update_env) and health_keys \
                and set(scratch) <= health_keys | {"restart_on_change", "ignore"}:
            also = " and the files watched change" if set(scratch) - health_keys else " applies"
            tail = f"; the health check{also} at once" if running else ""  # the watcher follows it too
        return Outcome(name, True, f"updated {name}{tail}")

    def apply(self, steps: Iterable[Step], *, start: bool = True,
              wait: float = CHECK_WINDOW) -> dict[str, Outcome]:
        """Carry out a plan (``setupfile.plan``): every definition added or changed in one
        state transaction (a crash leaves the old set or the new one), then the watcher asked
        to remove, restart (a changed service that was running) and start (the new ones,
        unless ``start`` or the step's own ``start`` is False). Unchanged services are not touched. Returns the outcome
        of each request by name; refuses the whole plan if the state changed since it."""
        from auto_core import setupfile  # only `auto apply` needs it

        steps = list(steps)
        added = [s for s in steps if s.action == setupfile.ADD]
        captured = environ.capture()
        for step in added:
            environ.save(self.home, step.name, captured)
        restart: list[str] = []
        try:
            with self._txn() as data:
                procs = state.processes(data)
                for step in steps:
                    if (step.name in procs) != (step.action != setupfile.ADD):
                        raise AutoError(f"{step.name} was added or removed meanwhile; nothing "
                                        "applied (run apply again)")
                for step in steps:
                    if step.action == setupfile.ADD:
                        entry: dict = {"explicitly_stopped": True, "restart_attempt": 0,
                                       "restarts": 0, "last_restart_time": None, "pid": None,
                                       "create_time": None, "log_path": None}
                        setupfile.define(entry, step.fields)
                        procs[step.name] = entry
                    elif step.action == setupfile.CHANGE:
                        setupfile.define(procs[step.name], step.fields)
                        if identity.runs(procs[step.name]):
                            restart.append(step.name)
        except BaseException:
            for step in added:
                environ.delete(self.home, step.name)
            raise
        done: dict[str, Outcome] = {}
        removes = [s.name for s in steps if s.action == setupfile.REMOVE]
        for names, op in ((removes, model.REMOVE), (restart, model.RESTART),
                          ([s.name for s in added if s.start] if start else [], model.START)):
            if names:
                done.update((o.name, o) for o in self._ask(names, op, wait=wait,
                                                           ordered=op == model.START))
        return done

    def select(self, patterns: Iterable[str]) -> list[str]:
        """The names ``patterns`` choose, in order, each once: a name as it is (an unknown
        one fails later, naming it), a glob (``web-*``, ``db?``) every defined name it matches;
        a glob that matches nothing is an error naming it. Names never hold glob characters."""
        import fnmatch

        defined = self.names()
        chosen: list[str] = []
        for pattern in patterns:
            if any(c in pattern for c in "*?["):
                matched = fnmatch.filter(defined, pattern)
                if not matched and ":" in pattern:  # supervisorctl's group:* spelling
                    raise AutoError(f"no process matches {pattern!r}: auto has no groups; a glob "
                                    f"such as {pattern.replace(':', '')!r} selects by name")
                if not matched:
                    raise AutoError(f"no process matches {pattern!r} (see 'auto ps')")
                chosen += matched
            else:
                chosen.append(pattern)
        return list(dict.fromkeys(chosen))

    def remove_many(self, names: Iterable[str]) -> list[Outcome]:
        """``remove`` of several: each stopped, then its definition deleted."""
        names = list(names)
        self._warn_dependents(names)
        return self._ask(names, model.REMOVE)

    def _warn_dependents(self, names: list[str]) -> None:
        """Say which services that stay come after one being removed (they start without it)."""
        from auto_core import order

        procs = state.processes(self.load())
        graph = {n: order.after_of(e) for n, e in procs.items()}
        for name in names:
            after = [n for n in order.dependents(graph, name) if n not in names]
            if after:
                self.warn(f"{', '.join(after)} come{'s' if len(after) == 1 else ''} after {name}; "
                          f"{'it starts' if len(after) == 1 else 'they start'} without it now")

    def remove(self, name: str) -> Outcome:
        """Stop the service (like ``stop``), then delete its definition. Logs stay."""
        validate.name(name)
        self._warn_dependents([name])
        result = self._ask([name], model.REMOVE)[0]
        if not result.ok:
            raise AutoError(f"{result.message}; {name} was not removed")
        return result

    # --- starting and stopping -------------------------------------------------------------

    def start(self, names: Iterable[str], *, wait: float = CHECK_WINDOW) -> list[Outcome]:
        """Manual start: clears ``explicitly_stopped`` and resets the backoff counter. A
        service already running is left alone, and that counts as success. Several start in
        their order (``after``) as start-all's do; one starts at once."""
        names = list(names)
        outcomes = self._ask(names, model.START, wait=wait, ordered=len(names) > 1)
        return [self._with_order(o) for o in outcomes]

    def _with_order(self, outcome: Outcome) -> Outcome:
        """A start's outcome, saying which services it comes after are not up."""
        from auto_core import order

        procs = state.processes(self.load())
        entry = procs.get(outcome.name) or {}
        down = [n for n in order.after_of(entry)
                if n in procs and not order.is_up(procs[n], identity.runs(procs[n]))]
        if not outcome.ok or not down:
            return outcome
        return Outcome(outcome.name, True, f"{outcome.message}; not up yet: {', '.join(down)}",
                       outcome.pid, outcome.detail)

    def restart(self, names: Iterable[str], *, wait: float = CHECK_WINDOW) -> list[Outcome]:
        """Stop (group, bounded) and start again; resets the backoff counter."""
        return self._ask(list(names), model.RESTART, wait=wait)

    def start_all(self, *, wait: float = CHECK_WINDOW) -> list[Outcome]:
        # No program check: one service whose program is gone must not hold back the others
        # (its start fails like a crash, with the shell's 127, and is reported).
        return self._ask(None, model.START, wait=wait, check_programs=False, ordered=True)

    def stop(self, names: Iterable[str]) -> list[Outcome]:
        """Record the stop, then the watcher signals the group, waits, KILLs. Idempotent."""
        return self._ask(list(names), model.STOP)

    def stop_all(self) -> list[Outcome]:
        return self._ask(None, model.STOP)

    def restart_all(self, *, wait: float = CHECK_WINDOW) -> list[Outcome]:
        """Restart every process that is not stopped: one the user stopped stays stopped."""
        procs = state.processes(self.load())
        names = [n for n in sorted(procs) if not procs[n].get("explicitly_stopped")]
        return self._ask(names, model.RESTART, wait=wait) if names else []

    def _ask(self, names: list[str] | None, op: str, *,
             wait: float = CHECK_WINDOW, check_programs: bool = True,
             ordered: bool = False) -> list[Outcome]:
        """Write ``op`` as a request for ``names`` (None: every process), then wait for it.
        ``ordered``: the watcher holds each start until the services it comes after are up."""
        for name in names or ():
            validate.name(name)
        rid = _new_id()
        now = self.clock()
        watcher = watchlock.holder(self.home)
        asked: dict[str, str] = {}
        done: dict[str, Outcome] = {}
        removed: list[str] = []
        try:
            with self._txn() as data:
                procs = state.processes(data)
                if names is None:
                    names = sorted(procs)
                    for name in names:  # a hand-edited state must not name paths outside the home
                        validate.name(name)
                for name in names:
                    if name not in procs:
                        raise NotFound(name)
                if op in (model.START, model.RESTART) and check_programs:
                    for name in names:  # a program gone since `add`: refused before anything changes
                        if op == model.RESTART or not identity.runs(procs[name]):
                            self._check_program(name, procs[name])
                for name in names:
                    entry = procs[name]
                    stopping = op in (model.STOP, model.REMOVE)
                    if stopping and watcher is None and model.request(entry) is None \
                            and not identity.runs(entry):
                        # Nothing runs and no watcher could be starting it: done here, no watcher needed.
                        entry["explicitly_stopped"] = True
                        entry.pop("next_restart_at", None)
                        if op == model.REMOVE:
                            del procs[name]
                            removed.append(name)
                            done[name] = Outcome(name, True, self._removed(name))
                        else:
                            done[name] = Outcome(name, True, f"{name} is already stopped")
                        continue
                    entry["request"] = _request(op, rid, now)
                    if ordered and entry.get("after"):
                        entry["request"]["ordered"] = True
                    entry["explicitly_stopped"] = stopping
                    entry.pop("next_restart_at", None)
                    asked[name] = op
        except StateError as exc:
            if op != model.STOP or watcher is None or not no_space(exc):
                raise
            return self._stop_unrecorded(names, rid, exc)
        for name in removed:  # the watcher deletes it for the removes it carries out
            environ.delete(self.home, name)
        if asked:
            done.update((o.name, o) for o in self._finish(asked, rid, wait))
        return [done[n] for n in names if n in done]

    def _stop_unrecorded(self, names: list[str] | None, rid: str, exc: StateError) -> list[Outcome]:
        """The stop could not be written (a full disk): ask the watcher over its control
        channel, wait for the services to end, and say the stop is not recorded yet."""
        procs = state.processes(self.load())
        names = sorted(procs) if names is None else names
        # A few names a message: a datagram is small on some systems (2 KiB on macOS).
        for i in range(0, len(names), 20):
            message = {"op": model.STOP, "names": names[i:i + 20], "id": rid, "by": os.getpid()}
            if not control.send(self.home, message):
                raise exc
        waiting = {n for n in names if n in procs and identity.runs(procs[n])}
        longest = max((model.stop_timeout(procs[n]) for n in waiting), default=0.0)
        deadline = time.monotonic() + ACT_TIMEOUT + longest + KILL_WAIT
        while waiting and time.monotonic() < deadline:
            time.sleep(POLL * 10)
            waiting = {n for n in waiting if identity.runs(procs[n])}
        why = str(exc.__cause__.strerror) if isinstance(exc.__cause__, OSError) else str(exc)
        return [Outcome(n, False, f"{n}: still running; the stop could not be recorded ({why})")
                if n in waiting else
                Outcome(n, True, f"stopped {n}; not recorded yet ({why}): the watcher records it "
                                 "when the state file can be written")
                for n in names]

    def _result(self, name: str, op: str, entry: dict | None, rid: str) -> Outcome | None:
        """The outcome of request ``rid`` for ``name``, once there is one."""
        if entry is None:
            if op == model.REMOVE:
                return Outcome(name, True, self._removed(name))
            return Outcome(name, False, f"{name} was removed meanwhile")
        answer = model.outcome(entry, rid)
        if answer is not None:
            pid = answer.get("pid")
            return Outcome(name, bool(answer.get("ok")), str(answer.get("message", "")),
                           pid if isinstance(pid, int) else None)
        held = model.request(entry)
        if held is None or held["id"] != rid:
            return Outcome(name, False, f"{name}: another command came first")
        return None

    def _check_program(self, name: str, entry: dict) -> None:
        captured = environ.load(self.home, name)
        base = captured if captured is not None else dict(os.environ)
        d = model.definition(entry)
        check_program(name, d.command, dict(base, **d.env), d.workdir or os.path.expanduser("~"))

    def _removed(self, name: str) -> str:
        return f"removed {name} (logs kept in {self.home.process_logs(name)})"

    def _finish(self, asked: dict[str, str], rid: str, wait: float) -> list[Outcome]:
        """Bring a watcher up if needed, wait for its outcomes, then the start check window."""
        ondemand.ensure(self.home, self.say)
        outcomes = self._await(asked, rid)
        started = {o.name: o for o in outcomes if o.ok and o.pid is not None
                   and asked[o.name] in (model.START, model.RESTART) and "already" not in o.message}
        if started and wait > 0:
            failed = self._check_window(started, wait)
            outcomes = [failed.get(o.name, o) for o in outcomes]
        return outcomes

    def _timeout(self, asked: dict[str, str]) -> float:
        procs = state.processes(self.load())
        stop = max((model.stop_timeout(procs[n]) for n, op in asked.items()
                    if op != model.START and n in procs), default=0.0)
        extra = KILL_WAIT + stop if stop or any(op != model.START for op in asked.values()) else 0.0
        if model.RESTART in asked.values():
            extra += PORT_WAIT
        if any((model.request(procs.get(n) or {}) or {}).get("ordered") for n in asked):
            extra += ORDER_WAIT
        return ACT_TIMEOUT + extra + 0.02 * len(asked)

    def _changes(self) -> Iterator[dict | None]:
        """The processes of the state when it changed since the last ``next``, else None
        (the first ``next`` always gives them). A waiting face asks every few ms: a stat.
        Each waiter keeps its own idea of the last version it saw: in the TUI another thread
        may read the shared ``StateFile`` in between."""
        seen = state.signature(self.state.path)
        yield state.processes(self.load())
        while True:
            now = state.signature(self.state.path)
            if now != seen:
                seen = now
                yield state.processes(self.load())
            else:
                yield None

    def _await(self, asked: dict[str, str], rid: str) -> list[Outcome]:
        deadline = time.monotonic() + self._timeout(asked)
        pending = dict(asked)
        done: dict[str, Outcome] = {}
        next_check = time.monotonic() + 1.0
        changes = self._changes()
        while pending:
            procs = next(changes)
            if procs is not None:
                for name, op in list(pending.items()):
                    entry = procs.get(name)
                    result = self._result(name, op, entry, rid)
                    if result is not None:
                        done[name] = result
                        del pending[name]
            if not pending:
                break
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= next_check:  # the watcher died meanwhile: the requests are still there
                next_check = now + 1.0
                ondemand.ensure(self.home, self.say)
            time.sleep(POLL)
        if pending:
            pid = watchlock.holder(self.home)
            who = f"the watcher (pid {pid})" if pid else "no watcher"
            procs, now = state.processes(self.load()), self.clock()
            for name, op in pending.items():
                held = self._held_for(name, procs, now) if name in procs else []
                why = f": it waits for {views.waiting_text(held, procs, now)}" if held else ""
                done[name] = Outcome(name, False, (
                    f"{who} did not {op} {name} in time{why}; the request stays recorded"
                    f" (see {self.home.watcher_log})"))
        return [done[n] for n in asked]

    def _check_window(self, started: dict[str, Outcome], wait: float) -> dict[str, Outcome]:
        """Services that exit within ``wait`` seconds of their start, reported with how they
        ended and the last lines of their log."""
        deadline = time.monotonic() + wait
        grace = deadline + 1.0  # a death the watcher has not recorded yet
        failed: dict[str, Outcome] = {}
        watching = dict(started)
        changes = self._changes()
        while watching:
            procs = next(changes)
            if procs is not None:
                for name, outcome in list(watching.items()):
                    entry = procs.get(name) or {}
                    last = model.last_exit(entry)
                    if last and last.get("pid") == outcome.pid and not last.get("stopped") \
                            and not last.get("restart"):
                        failed[name] = self._failed_start(name, entry, last)
                        del watching[name]
                    elif entry.get("pid") != outcome.pid:
                        del watching[name]  # restarted or stopped by someone else
            now = time.monotonic()
            if now >= deadline:
                alive = {n for n, o in watching.items()
                         if o.pid is not None and identity.create_time(o.pid) is not None}
                if now >= grace or all(n in alive for n in watching):
                    break
            time.sleep(POLL * 2)
        return failed

    def _failed_start(self, name: str, entry: dict, last: dict) -> Outcome:
        how = views.describe_exit(last)
        ran = last.get("ran_s")
        after = f" after {ran:.1f} s" if isinstance(ran, (int, float)) else ""
        detail: tuple = ()
        log_path = entry.get("log_path")
        if isinstance(log_path, str):
            try:
                lines, _ = logs.tail_lines(log_path, DETAIL_LINES + 1)
            except OSError:
                lines = []
            detail = tuple(line for line in lines if not line.startswith("[auto] "))[-DETAIL_LINES:]
        return Outcome(name, False, f"{name} exited at once ({how}{after})", last.get("pid"), detail)

    def _txn(self):
        return self.state.transaction()


def check_program(name: str, command: str, env: Mapping[str, str], workdir: str) -> None:
    """Refuse a plain command whose program cannot be found or run as the service would
    (a command with shell syntax is the shell's to judge, in the run's log)."""
    words = shellwords.simple_argv(command)
    if not words:
        return
    word = words[0]
    if "/" in word:
        path = os.path.join(workdir, word)
        if not os.path.exists(path):
            raise AutoError(f"{name}: program {word!r} not found")
        if not os.access(path, os.X_OK) or os.path.isdir(path):
            raise AutoError(f"{name}: program {word!r} cannot be executed")
        return
    search = env.get("PATH", os.defpath)
    dirs = search.split(":")
    if any(not d.startswith("/") for d in dirs):
        return  # a PATH entry relative to the workdir: the shell decides
    for directory in dirs:
        candidate = os.path.join(directory, word)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return
    raise AutoError(f"{name}: program {word!r} not found on the service's PATH")


def _under(workdir: str, paths: Iterable[str] | None) -> object:
    """``--restart-on-change`` paths with the relative ones taken from the service's workdir."""
    from auto_core import options

    if paths is None:
        return None
    return options.under(workdir, paths if isinstance(paths, str) else list(paths))


def _check_health_port(name: str, entry: dict) -> None:
    """The ``port`` check needs the service's port."""
    if entry.get("health") == "port" and not entry.get("port"):
        raise UsageError(f"{name}: the health check 'port' needs the service's --port")


def _check_order(procs: dict, name: str, entry: dict) -> None:
    """Refuse a start order that names an unknown service or makes a cycle (exit 2)."""
    from auto_core import order

    graph = {n: order.after_of(e) for n, e in procs.items()}
    graph[name] = order.after_of(entry)
    problem = order.check(graph, [name])
    if problem is not None:
        raise UsageError(problem)


def _own_env(env: Mapping[str, str] | None, env_file: str | None) -> dict[str, str]:
    own: dict[str, str] = {}
    if env_file is not None:
        own.update(environ.read_env_file(env_file))
    own.update(env or {})
    return own


def _new_id() -> str:
    return os.urandom(6).hex()


def _request(op: str, rid: str, now: float) -> dict:
    return {"id": rid, "op": op, "at": now, "by": os.getpid()}


def _say_stderr(message: str) -> None:
    import sys

    print(f"auto: {message}", file=sys.stderr)


__all__ = ["Api", "Outcome", "check_program"]
