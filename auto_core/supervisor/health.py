"""Health checks, run by the watcher beside its loop (``--health``).

The loop never waits for a check: each runs in a thread pool (``pool.Pool``), started with the
first service that has a check (none otherwise) and grown while its threads are stuck on
checks that hang, up to a thread per such service (``WORKERS`` at most), one check per service at a time, each bounded by its timeout (a socket
timeout; a command's process group is killed). A result goes into a queue and a byte into a pipe that the death notifier watches (``add_waker``), so it wakes the
loop at once. The loop (``Checks.tick``) schedules the checks, takes the results, and decides:

- ``starting`` until the first success, ``healthy`` then; ``unhealthy`` after ``retries``
  failures in a row, which restarts the service (``restart``, the watcher's stop then
  backoff). Failures inside the start period do not count; a success ends it.
- Until its first success a service is checked every second (its interval when shorter), so
  the services that come after it start soon; failures there still count once per interval,
  so a slow start is not taken for an unhealthy service any sooner than with the interval.
- A result that changes nothing (a success of a healthy service, before its next check is
  due) does not wake the loop: it is taken when the loop wakes for that next check.
- The state goes into the entry (``health_state``, ``health_run``, ``last_health``) only when
  it changes, or when a check's result turns from success to failure or back: an idle
  healthy service costs a check per interval and no write.
"""

from __future__ import annotations

import itertools
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from auto_core import healthcheck, model
from auto_core.healthcheck import HEALTHY, STARTING, UNHEALTHY, Check
from auto_core.store import environ
from auto_core.store.paths import Home
from auto_core.supervisor.pool import STUCK, Pool
from auto_core.supervisor.runs import Service

WORKERS = 32  # checks at once at most: beyond as many hanging ones, one holds another's
BATCH = 0.25  # a check due within this (and 5 % of its interval) runs with one due now
STARTING_PACE = 1.0  # seconds between checks until the first success (at most the interval)


@dataclass
class Result:
    name: str
    key: str  # the run it was made for
    serial: int  # the tracker it was made for (``Tracker.serial``): a changed check's is new
    ok: bool
    detail: str
    at: float  # wall clock


@dataclass
class Tracker:
    """One run's health: what the loop knows between checks."""

    key: str
    run_id: str | None
    check: Check
    definition: model.Definition
    started: float  # monotonic: the run's start
    due: float  # monotonic: the next check
    state: str = STARTING
    failures: int = 0
    counted: float = 0.0  # monotonic: when a failure was last counted
    last_ok: bool | None = None
    done: bool = False  # unhealthy: restarting, no more checks for this run
    settings: tuple = ()  # the entry's check settings it was made with (``_settings``)
    serial: int = 0  # this tracker among the watcher's: a result for another is not its own


# A change of these starts the check over; one of the port, workdir or env waits for the next
# run, which is checked with them (the running one keeps those it was started with).
_SETTINGS = ("health", "health_interval", "health_timeout", "health_retries", "health_start_period")


def _settings(entry: dict) -> tuple:
    return tuple(entry.get(key) for key in _SETTINGS)


def _took(began: float) -> str:
    return f"after {time.monotonic() - began:.1f} s"


def probe(check: Check, d: model.Definition, env: dict | None, timeout: float,
          groups: Groups | None = None) -> tuple[bool, str]:
    """Run one check, bounded by ``timeout``: (healthy, what happened). A command check's
    process group is in ``groups`` while it runs."""
    began = time.monotonic()
    try:
        if check.kind == healthcheck.CMD:
            return _command(check.command, d.workdir, env, timeout, began, groups or Groups())
        if check.kind == healthcheck.HTTP:
            return _http(check, timeout, began)
        host, port = (check.host, check.port) if check.kind == healthcheck.TCP else ("127.0.0.1", d.port)
        if not port:
            return False, "no port recorded for the service"
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"connected {_took(began)}"
    except TimeoutError:
        return False, f"timed out {_took(began)}"
    except OSError as err:
        return False, f"{err.strerror or err} {_took(began)}"


def _http(check: Check, timeout: float, began: float) -> tuple[bool, str]:
    import http.client

    deadline = began + timeout

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        return left

    # A socket's timeout bounds each read: a server that trickles its answer a byte at a time
    # would hold the check for ever. Before each read the timeout is what is left of the check's.
    class Bounded(socket.socket):
        __slots__ = ()

        def recv_into(self, *args, **kwargs):
            self.settimeout(remaining())
            return super().recv_into(*args, **kwargs)

    def connect(address: tuple[str, int], *_args: object) -> socket.socket:
        sock = socket.create_connection(address, remaining())
        bounded = Bounded(sock.family, sock.type, sock.proto, fileno=sock.detach())
        bounded.settimeout(remaining())
        return bounded

    conn: http.client.HTTPConnection
    if check.tls:
        import ssl

        class BoundedTLS(ssl.SSLSocket):
            def recv_into(self, *args, **kwargs):
                self.settimeout(remaining())
                return super().recv_into(*args, **kwargs)

            def do_handshake(self, *args, **kwargs):
                self.settimeout(remaining())
                return super().do_handshake(*args, **kwargs)

        # The check asks whether the service answers, not who it is: a local service's
        # certificate is often its own.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.sslsocket_class = BoundedTLS
        conn = http.client.HTTPSConnection(check.host, check.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(check.host, check.port, timeout=timeout)
    conn._create_connection = connect  # type: ignore[attr-defined]
    try:
        conn.request("GET", check.path, headers={"User-Agent": "auto-health"})
        status = conn.getresponse().status
    except http.client.HTTPException as err:
        return False, f"bad answer ({type(err).__name__}) {_took(began)}"
    finally:
        conn.close()
    return 200 <= status < 400, f"HTTP {status} {_took(began)}"


class Groups:
    """The process groups of one watcher's command checks in flight: killed when it exits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pgids: set[int] = set()
        self._closed = False

    def add(self, pgid: int) -> None:
        with self._lock:
            self._pgids.add(pgid)
            if not self._closed:
                return
        _kill_group(pgid)  # started as the watcher was exiting: goes at once

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._pgids.discard(pgid)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pgids = list(self._pgids)
        for pgid in pgids:
            _kill_group(pgid)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)  # the check's own group, never the service's
    except OSError:
        pass


def _command(command: str, workdir: str | None, env: dict | None, timeout: float,
             began: float, groups: Groups) -> tuple[bool, str]:
    proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=workdir or os.path.expanduser("~"),
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    groups.add(proc.pid)
    try:
        exited = _exited(proc, timeout)
        # Whatever the check left in its group (``cmd:sleep 300 & true``) goes with it. Until
        # the shell is reaped its pid, the group's id, cannot be reused: the group is the check's.
        _kill_group(proc.pid)
        code = proc.wait()
    finally:
        groups.discard(proc.pid)
    if not exited:
        return False, f"timed out {_took(began)}"
    return code == 0, f"exit {code} {_took(began)}" if code >= 0 else f"killed by signal {-code} {_took(began)}"


def _exited(proc: subprocess.Popen, timeout: float) -> bool:
    """Whether ``proc`` ends within ``timeout``, leaving it unreaped where the system can
    (``waitid`` with ``WNOWAIT``); elsewhere it is reaped, and its group outlives it only while
    something is left in it, which is what the kill is for."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        if sys.platform == "linux":
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
                return True
        elif proc.poll() is not None:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining, 0.05))  # as ``Popen.wait(timeout)`` does
        delay *= 2


Running = tuple[str, float, "model.Definition | None"]


def running(names: list[str], entries: dict[str, dict],
            services: dict[str, Service]) -> dict[str, Running | None]:
    """What ``Checks.tick`` follows: each of ``names`` (services with a check) that runs and is
    wanted, by its run (its mark, or its pid), start time and the definition it was started by
    (None: adopted); None while it is stopping."""
    found: dict[str, Running | None] = {}
    for name in names:
        svc = services.get(name)
        if svc is None or svc.run is None or entries[name].get("explicitly_stopped"):
            continue
        run = svc.run
        found[name] = None if svc.stopping else (run.run_id or str(run.pid), run.started_at, run.definition)
    return found


class Checks:
    """The health checks of one watcher.

    Args:
        home: for the services' captured environments (``cmd:`` checks).
        add_waker: the notifier's ``add_waker``: the results' pipe wakes the loop.
        monotonic, clock: the watcher's clocks.
        write: queue a change of the state (the watcher's ``_write``).
        restart: ``restart(name, line)``: the service turned unhealthy; ``line`` goes into its log.
        log: the watcher's event log.
    """

    def __init__(self, home: Home, add_waker: Callable[..., bool], monotonic: Callable[[], float],
                 clock: Callable[[], float], write: Callable, restart: Callable[[str, str], None],
                 log: Callable[[str], None]):
        self.home = home
        self._add_waker = add_waker
        self.monotonic, self.clock = monotonic, clock
        self._write, self._restart, self._log = write, restart, log
        self.trackers: dict[str, Tracker] = {}
        self._pool: Pool | None = None
        self._results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._pipe: tuple[int, int] | None = None
        self._pipe_lock = threading.Lock()
        self._groups = Groups()
        self._entries: dict | None = None
        self._busy: set[str] = set()  # services with a check in flight, for any tracker
        self._serials = itertools.count(1)
        self._taken_over = True  # the first pass: a run's recorded state is an earlier watcher's

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self._groups.close()  # a command check in flight is not left behind
        with self._pipe_lock:  # a check ending now must not write into a closed (reused) fd
            if self._pipe is not None:
                for fd in self._pipe:
                    os.close(fd)
                self._pipe = None

    def _submit(self, name: str, tracker: Tracker) -> None:
        if self._pool is None:
            r, w = os.pipe()
            for fd in (r, w):
                os.set_blocking(fd, False)
                os.set_inheritable(fd, False)
            self._pipe = (r, w)
            self._add_waker(r)  # unsupported: results are taken at the next pass all the same
            # Daemon threads: a check that hangs for its (long) timeout never delays the
            # watcher's exit, and a take-over by the login watcher with it.
            self._pool = Pool("health")
        env = None
        if tracker.check.kind == healthcheck.CMD:
            env = environ.service_env(environ.load(self.home, name), tracker.definition.env, os.environ)
        self._busy.add(name)
        assert self._pipe is not None
        key, serial, check, d = tracker.key, tracker.serial, tracker.check, tracker.definition
        monotonic, groups = self.monotonic, self._groups

        def job() -> None:
            try:
                ok, detail = probe(check, d, env, d.health_timeout, groups)
            except Exception as exc:  # a check that cannot run is a failed check
                ok, detail = False, f"check failed: {exc}"
            self._results.put(Result(name, key, serial, ok, detail, time.time()))
            if ok and tracker.state == HEALTHY and tracker.last_ok and monotonic() < tracker.due \
                    and self.trackers.get(name) is tracker:
                return  # nothing to act on: taken when the loop wakes for the next check
            with self._pipe_lock:
                if self._pipe is None:
                    return  # the watcher is exiting
                try:
                    os.write(self._pipe[1], b"\0")
                except OSError:
                    pass  # full: a wake is pending

        # A thread per service with a check at most: one whose check hangs holds no other's
        # for long.
        self._pool.submit(job, min(len(self.trackers), WORKERS))

    def tick(self, entries: dict[str, dict], runs: dict[str, Running | None]) -> float | None:
        """Take the results, follow the runs, start the checks that are due. ``runs``: the
        running services with a check: name -> (run key, started_at wall time, the definition
        it was started by), or None
        while one is stopping. Returns the monotonic time of the next check due, if any."""
        now = self.monotonic()
        self._take_results(entries, now)
        changed = entries is not self._entries  # the watcher's view is a new dict per read
        self._entries = entries
        for name in [n for n in self.trackers if n not in runs
                     or (changed and _settings(entries[n]) != self.trackers[n].settings)]:
            gone = self.trackers.pop(name)  # gone, or its check changed (``update``): starts over
            if name in entries and _settings(entries[name]) != gone.settings:
                self._reset(name, gone.run_id, bool(entries[name].get("health")))
        nearest = None
        for name, found in runs.items():
            tracker = self.trackers.get(name)
            if found is None:
                continue
            key, started_at, started_by = found
            if tracker is None or tracker.key != key:
                tracker = self._track(name, entries[name], key, started_at, started_by, now)
                if tracker is None:
                    continue
            if tracker.done:
                continue
            if name in self._busy:  # its result may come without a wake: looked at by its due
                if tracker.due > now:
                    nearest = tracker.due if nearest is None else min(nearest, tracker.due)
                continue
            # Checks due soon go with this one: the loop wakes once for a batch, not per check.
            if tracker.due <= now + min(BATCH, self._pace(tracker) * 0.05):
                tracker.due = now + self._pace(tracker)  # first: the check's thread reads it
                self._submit(name, tracker)
            nearest = tracker.due if nearest is None else min(nearest, tracker.due)
        self._taken_over = False
        if self._pool is not None:  # checks stuck since the last pass: threads for the others
            self._pool.grow(min(len(self.trackers), WORKERS))
            if self._pool.waiting:  # looked at again soon, whatever else wakes the loop
                soon = now + STUCK
                nearest = soon if nearest is None else min(nearest, soon)
        return nearest

    def _track(self, name: str, entry: dict, key: str, started_at: float,
               started_by: model.Definition | None, now: float) -> Tracker | None:
        d = model.definition(entry)
        if started_by is not None:  # the run's own port, workdir and env, its check's current
            d = model.Definition(**dict(d.to_dict(), port=started_by.port, workdir=started_by.workdir,
                                        env=started_by.env))
        elif isinstance(entry.get("started_with"), dict) and "port" in entry["started_with"]:
            d = model.Definition(**dict(d.to_dict(), port=entry["started_with"]["port"]))  # adopted
        try:
            check = healthcheck.parse(d.health)
        except Exception:
            check = None
        if check is None:
            return None
        started = now - max(0.0, self.clock() - started_at)
        run_id = entry.get("run") if isinstance(entry.get("run"), str) else None
        tracker = Tracker(key, run_id, check, d, started, 0.0, settings=_settings(entry),
                          serial=next(self._serials))
        if self._taken_over and entry.get("health_run") == run_id and entry.get("health_state") == HEALTHY:
            tracker.state, tracker.last_ok = HEALTHY, True  # an earlier watcher saw it healthy
        tracker.counted = started
        tracker.due = max(now, started + self._pace(tracker))
        self.trackers[name] = tracker
        return tracker

    @staticmethod
    def _pace(tracker: Tracker) -> float:
        interval = tracker.definition.health_interval
        return min(interval, STARTING_PACE) if tracker.state == STARTING else interval

    def _take_results(self, entries: dict[str, dict], now: float) -> None:
        if self._pipe is not None:
            try:
                while os.read(self._pipe[0], 4096):
                    pass
            except OSError:
                pass
        while True:
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                return
            self._busy.discard(result.name)
            tracker = self.trackers.get(result.name)
            if tracker is None or tracker.serial != result.serial:
                continue  # a run that is gone, or a check since changed
            if not tracker.done:
                self._judge(result, tracker, now)

    def _judge(self, result: Result, tracker: Tracker, now: float) -> None:
        d = tracker.definition
        before, was_ok = tracker.state, tracker.last_ok
        tracker.last_ok = result.ok
        if result.ok:
            tracker.failures = 0
            tracker.state = HEALTHY
        elif tracker.state == STARTING and now - tracker.started < d.health_start_period:
            pass  # inside the start period: does not count
        elif tracker.state != STARTING or now - tracker.counted >= d.health_interval - 0.05 \
                or d.health_interval <= STARTING_PACE:
            tracker.failures += 1
            tracker.counted = now
            if tracker.failures >= d.health_retries:
                tracker.state = UNHEALTHY
        if tracker.state != before or result.ok != was_ok:
            self._record(result, tracker)
        if tracker.state != before:
            self._log(f"health {result.name}: {tracker.state} ({result.detail})")
        if tracker.state == UNHEALTHY:
            tracker.done = True
            times = "time" if tracker.failures == 1 else "times"
            self._restart(result.name, f"[auto] health check failed {tracker.failures} {times} "
                                       f"({result.detail}); restarting")

    def _reset(self, name: str, run_id: str | None, checked: bool) -> None:
        """The check changed (``starting`` again, no result yet) or is gone (no state)."""

        def change(procs: dict) -> None:
            entry = procs.get(name)
            if entry is None or entry.get("run") != run_id:
                return
            entry.pop("last_health", None)
            if checked:
                entry.update(health_state=STARTING, health_run=run_id)
            else:
                entry.pop("health_state", None)
                entry.pop("health_run", None)

        self._write(change)

    def _record(self, result: Result, tracker: Tracker) -> None:
        name, run_id, state = result.name, tracker.run_id, tracker.state
        last = {"time": result.at, "ok": result.ok, "detail": result.detail}

        def change(procs: dict) -> None:
            entry = procs.get(name)
            if entry is not None and entry.get("run") == run_id:
                entry.update(health_state=state, health_run=run_id, last_health=last)

        self._write(change)
