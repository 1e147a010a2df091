"""Drive a real ``Watcher`` over simulated processes and simulated time.

The watcher reads and writes the real state file of a test's home and real log files; only
what it does to processes (``System``), how it hears of deaths (the notifier) and its two
clocks are stand-ins. A simulated process follows a ``Behaviour``: exit after some seconds,
or run until a signal it does not ignore. Simulated time moves only when the watcher blocks
in the notifier, by exactly the time it asked to block (or less, to the next death), so a
test of a 20 s stop timeout takes milliseconds and its timings are exact.

Entries and requests are written the way faces write them: under the state lock, with
``state.transaction`` (``define``, ``ask``).
"""

from __future__ import annotations

import io
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from auto_core.proc.marks import Marked
from auto_core.store import state
from auto_core.store.paths import Home
from auto_core.supervisor import launch
from auto_core.supervisor.watch import Watcher

EPOCH = 1_800_000_000.0  # the simulated wall clock at monotonic 0


# --- state as faces write it -------------------------------------------------------------------


def define(home: Home, name: str, command: str, **fields) -> None:
    """A definition as ``add`` writes it, never started (no pid, no request)."""
    entry = {"command": command, "workdir": "/", "env": {}, "explicitly_stopped": False,
             "restart_attempt": 0, "restarts": 0, "last_restart_time": None, "pid": None,
             "create_time": None, "log_path": None}
    entry.update(fields)
    with state.transaction(home) as data:
        state.processes(data)[name] = entry


def ask(home: Home, name: str, op: str, rid: str, at: float | None = None) -> None:
    """A request as a face writes it (a stop records its intent in the same write)."""
    with state.transaction(home) as data:
        entry = state.processes(data)[name]
        entry["request"] = {"id": rid, "op": op, "at": at if at is not None else time.time(),
                            "by": os.getpid()}
        entry["explicitly_stopped"] = op == "stop"
        entry.pop("next_restart_at", None)


def entry_of(home: Home, name: str) -> dict:
    with state.transaction(home) as data:
        return dict(state.processes(data)[name])


# --- simulated processes -----------------------------------------------------------------------


@dataclass
class Behaviour:
    """``exit_after``: seconds until it exits with ``code`` by itself (None: never).
    ``ignores``: signals it ignores (SIGKILL cannot be ignored)."""

    exit_after: float | None = None
    code: int = 0
    ignores: frozenset[int] = frozenset()


SERVES = Behaviour()
STUBBORN = Behaviour(ignores=frozenset({signal.SIGTERM, signal.SIGINT}))


def crashes(after: float = 0.0, code: int = 1) -> Behaviour:
    return Behaviour(exit_after=after, code=code)


@dataclass
class Proc:
    pid: int
    name: str
    behaviour: Behaviour
    started: float  # monotonic
    create_time: float
    env: dict = field(default_factory=dict)
    code: int | None = None  # set when it ended
    ended: float | None = None
    signals: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, signal)

    @property
    def alive(self) -> bool:
        return self.code is None

    def due(self) -> float | None:
        if not self.alive or self.behaviour.exit_after is None:
            return None
        return self.started + self.behaviour.exit_after


class Child:
    """``spawn.Child`` for a simulated process: poll() and wait(timeout)."""

    def __init__(self, proc: Proc):
        self.proc = proc

    def poll(self) -> int | None:
        return self.proc.code

    def wait(self, timeout: float) -> int:
        if self.proc.code is None:
            raise TimeoutError(f"pid {self.proc.pid} still running")
        return self.proc.code


class World:
    """The simulated machine: its clocks, its processes, and what the watcher did to them."""

    def __init__(self, logs: Path):
        self.now = 0.0  # monotonic
        self.logs = logs
        self.procs: dict[int, Proc] = {}
        self.behaviours: dict[str, Behaviour] = {}  # by service name; SERVES if absent
        self.next_pid = 1000
        self.launches: list[tuple[float, str, int]] = []  # (monotonic, name, pid)

    def wall(self) -> float:
        return EPOCH + self.now

    def monotonic(self) -> float:
        return self.now

    def spawn(self, name: str, behaviour: Behaviour, env: dict | None = None) -> Proc:
        self.next_pid += 1
        proc = Proc(self.next_pid, name, behaviour, self.now, EPOCH + self.now, env or {})
        self.procs[proc.pid] = proc
        return proc

    def end(self, proc: Proc, code: int) -> None:
        if proc.alive:
            proc.code, proc.ended = code, self.now

    def run_due(self) -> None:
        for proc in self.procs.values():
            due = proc.due()
            if due is not None and due <= self.now:
                self.end(proc, proc.behaviour.code)

    def next_due(self) -> float | None:
        return min((d for p in self.procs.values() if (d := p.due()) is not None), default=None)

    def starts_of(self, name: str) -> list[float]:
        return [t for t, n, _ in self.launches if n == name]


class SimTree:
    """``proc.tree.Tree`` over a ``World``: the run's leader and every process with its mark."""

    def __init__(self, world: World, run_id: str | None, leader: int):
        self.world = world
        self.run_id = run_id
        self.leader = leader
        self.members: set[int] = set()

    def refresh(self, table: object = None) -> list[int]:
        found = [p.pid for p in self.world.procs.values()
                 if p.alive and p.pid not in self.members
                 and (p.pid == self.leader or (self.run_id and p.env.get("AUTO_RUN") == self.run_id))]
        self.members.update(found)
        return sorted(found)

    def alive(self) -> list[int]:
        self.members = {p for p in self.members if self.world.procs[p].alive}
        return sorted(self.members)

    def signal(self, sig: int) -> list[int]:
        sent = []
        for pid in self.alive():
            proc = self.world.procs[pid]
            proc.signals.append((self.world.now, sig))
            if sig == signal.SIGKILL or sig not in proc.behaviour.ignores:
                self.world.end(proc, -sig)
            sent.append(pid)
        return sent

    def main(self) -> tuple[int, float] | None:
        alive = self.alive()
        return (alive[0], self.world.procs[alive[0]].create_time) if alive else None

    def close(self) -> None:
        self.members.clear()


class SimSystem:
    """``System`` over a ``World``."""

    def __init__(self, world: World):
        self.world = world

    def launch(self, name: str, definition: object) -> launch.Launched:
        w = self.world
        proc = w.spawn(name, w.behaviours.get(name, SERVES),
                       {"AUTO_SERVICE": name, "AUTO_RUN": launch.new_run_id()})
        w.launches.append((w.now, name, proc.pid))
        log = w.logs / f"{name}-{proc.pid}.log"
        log.write_text(f"[auto] start {name}\n")
        return launch.Launched(proc.pid, Child(proc), str(log), w.wall(),  # type: ignore[arg-type]
                               proc.create_time, proc.env["AUTO_RUN"], f"sim:{proc.create_time}")

    def table(self) -> None:
        return None

    def group_exists(self, pgid: int) -> bool:
        proc = self.world.procs.get(pgid)
        return proc is not None and proc.alive

    def tree(self, run_id: str | None, leader: int, create_time: float | None,
             stamp: str | None = None) -> SimTree:
        return SimTree(self.world, run_id, leader)

    def is_ours(self, pid: object, create_time: object, stamp: object) -> bool:
        proc = self.world.procs.get(pid) if isinstance(pid, int) else None
        return proc is not None and proc.alive and proc.create_time == create_time

    def stamp(self, pid: int) -> str | None:
        proc = self.world.procs.get(pid)
        return f"sim:{proc.create_time}" if proc is not None and proc.alive else None

    def create_time(self, pid: int) -> float | None:
        proc = self.world.procs.get(pid)
        return proc.create_time if proc is not None and proc.alive else None

    def port_holders(self, port: int) -> list[str]:
        return []

    def marked(self, recorded: dict[str, str | None]) -> list[Marked]:
        return [Marked(p.pid, p.pid, p.env["AUTO_SERVICE"], p.env["AUTO_RUN"])
                for p in self.world.procs.values()
                if p.alive and "AUTO_RUN" in p.env and p.env["AUTO_RUN"] != recorded.get(p.name)]


class SimNotifier:
    """The death notifier: blocking moves simulated time, to the next death at most."""

    kind = "simulated"

    def __init__(self, world: World):
        self.world = world
        self.watched: set[int] = set()

    def watch(self, pid: int, create_time: float | None = None) -> bool:
        proc = self.world.procs.get(pid)
        if proc is None or not proc.alive:
            return False
        self.watched.add(pid)
        return True

    def unwatch(self, pid: int) -> None:
        self.watched.discard(pid)

    def wait(self, timeout: float) -> list[int]:
        w = self.world
        # As epoll does (through selectors): the timeout is rounded up to whole milliseconds.
        until = w.now + math.ceil(max(0.0, timeout) * 1000) / 1000
        due = w.next_due()
        w.now = min(until, due) if due is not None else until
        w.run_due()
        return self._reap()

    def _reap(self) -> list[int]:
        dead = [p for p in self.watched if not self.world.procs[p].alive]
        self.watched.difference_update(dead)
        return sorted(dead)

    def add_waker(self, fd: int, drain: bool = True) -> bool:
        return False

    def close(self) -> None:
        pass


class Sim:
    """A watcher over a simulated world, and the loop that drives it."""

    def __init__(self, home: Home, tmp: Path):
        self.home = home
        tmp.mkdir(parents=True, exist_ok=True)
        self.world = World(tmp)
        self.out = io.StringIO()
        self.notifier = SimNotifier(self.world)
        self.watcher = Watcher(home, clock=self.world.wall, monotonic=self.world.monotonic,
                               out=self.out, system=SimSystem(self.world),  # type: ignore[arg-type]
                               notifier=self.notifier, poll_only=True)  # type: ignore[arg-type]

    def step(self) -> None:
        """One iteration, then block in the notifier for as long as the watcher asks."""
        w = self.watcher
        block = w.iterate()
        w.dead_pids.extend(self.notifier.wait(block))

    def until(self, condition, within: float, what: str = "the condition"):
        """Step until ``condition()`` is true; fail if simulated ``within`` seconds pass first."""
        limit = self.world.now + within
        for _ in range(100_000):
            value = condition()
            if value:
                return value
            assert self.world.now <= limit, (
                f"{what}: not within {within} s of simulated time\n{self.out.getvalue()}")
            self.step()
        raise AssertionError(f"{what}: the loop did not advance time\n{self.out.getvalue()}")

    def close(self) -> None:
        self.watcher.close()
