"""What the watcher knows of each service besides its entry, and the timing rules that need
no process to decide: the crash-loop floor between two starts, and a stop's escalation from
its stop signal to SIGKILL. The watcher (``watch``) acts on what these decide."""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from auto_core.supervisor.timing import (
    BURST,
    BURST_INTERVAL,
    BURST_WINDOW,
    KILL_WAIT,
    MIN_START_INTERVAL,
)

if TYPE_CHECKING:
    from auto_core.model import Definition
    from auto_core.proc.tree import Tree


def fmt_seconds(seconds: float) -> str:
    """``4`` for whole seconds, ``2.1`` otherwise (log lines: 'after 2.1 s; restarting in 4 s')."""
    text = f"{seconds:.1f}"
    return text[:-2] if text.endswith(".0") else text


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def exit_fields(code: int | None) -> dict:
    """``last_exit`` fields from a returncode (negative: killed by that signal)."""
    if code is None:
        return {"code": None, "signal": None}
    if code < 0:
        return {"code": None, "signal": -code}
    return {"code": code, "signal": None}


def exit_text(code: int | None, known: bool) -> str:
    if not known:
        return "exited (exit status unknown: not a child of this watcher)"
    if code is not None and code < 0:
        return f"killed by {signal_name(-code)}"
    return f"exited with code {code}"


def number(value: object) -> float | None:
    """A finite number from a (possibly hand-edited) state field, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass
class Run:
    """A live run the watcher watches. ``child`` is None for a run it adopted."""

    pid: int
    create_time: float
    started_at: float
    child: object | None = None  # spawn.Child: poll() and wait(timeout)
    log_path: str | None = None
    run_id: str | None = None  # its AUTO_RUN mark (None: started before marks existed)
    followed: bool = False  # a process the run's leader left running when it exited (a daemon)
    # identity.stamp of the leader: exact identity, and when the run began (a run's other
    # processes started after it). None for a followed daemon: the run began before it.
    stamp: str | None = None
    # The definition it was started by: its port, workdir and env are the run's until its next
    # start, whatever ``update`` changes meanwhile (its health checks use them). None: adopted.
    definition: Definition | None = None


# What a stop in progress needs next (``Stopping.step``).
WAIT, KILL, GONE, SURVIVED = "wait", "kill", "gone", "survived"


@dataclass
class Stopping:
    """A stop in progress: the stop signal was sent to the run's processes (``tree``) at
    ``began``; SIGKILL goes at ``deadline`` (``began`` + the stop timeout); once killed, they
    have KILL_WAIT to go before the stop is reported as failed. Times are monotonic."""

    pgid: int  # the run's leader (its process group, or the daemon it followed)
    tree: Tree  # every process of the run, signalled and watched
    signal: int
    timeout: float
    began: float
    deadline: float
    # "start" (restart, periodic), "backoff" (a restart after a backoff, as after a crash),
    # "remove", or None (stop)
    then: str | None = None
    request: dict | None = None
    periodic: bool = False
    why: str = "unhealthy"  # of a restart after a backoff ("backoff"), as its schedule says
    killed: bool = False
    code: int | None = None
    known: bool = False
    leader_gone: bool = False

    def step(self, now: float, alive: bool) -> str:
        """WAIT, KILL (send SIGKILL now), GONE (the stop is done) or SURVIVED (it failed)."""
        if not alive:
            return GONE
        if now < self.deadline:
            return WAIT
        if self.killed:
            return SURVIVED
        self.killed = True
        self.deadline = now + KILL_WAIT
        return KILL


@dataclass
class Service:
    """What the watcher knows of one service besides its entry."""

    name: str
    run: Run | None = None
    stopping: Stopping | None = None
    handled: str | None = None  # id of the last request carried out
    wake: float | None = None  # clock time to evaluate it again
    periodic_anchor: float | None = None
    leftover: Tree | None = None  # processes a dead leader left behind, asked to stop
    # A crashed run whose group was empty: what it may have left outside the group is looked
    # for after the next spawn, so an immediate restart waits for no read of every process.
    unchecked: Tree | None = None
    starts: list[float] = field(default_factory=list)  # monotonic times of recent spawns
    port_wait_until: float | None = None  # monotonic: a start waiting for its port
    waiting: tuple | None = None  # (request, periodic, ended) of that start
    unrecorded: bool = False  # a start is queued, not yet written: the entry is not current
    changed: bool = False  # the restart under way is for changed files: no backoff (``changes``)
    change_restarts: list[float] = field(default_factory=list)  # monotonic: recent ones
    change_loop_said: bool = False  # the loop of restarts for changes was warned of

    def started(self, now: float) -> None:
        """Note a spawn at monotonic ``now`` (only the last BURST count)."""
        self.starts = self.starts[-(BURST - 1):] + [now]

    def earliest_start(self) -> float:
        """The monotonic time before which this service is not started again."""
        if not self.starts:
            return 0.0
        recent = [t for t in self.starts if t > self.starts[-1] - BURST_WINDOW]
        gap = BURST_INTERVAL if len(recent) >= BURST else MIN_START_INTERVAL
        return self.starts[-1] + gap
