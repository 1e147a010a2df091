"""CPU % and memory per service, sampled off the UI thread.

A service is its whole process group (the ``sh -c`` wrapper, a reloader, its workers):
``auto_core.proc.usage`` sums the group's CPU time and resident memory; CPU % is the change in
that sum between two samples of the same run (pid and create time). ``History`` keeps the last
few minutes of those samples for the details view's sparklines.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from auto_core.proc import usage


@dataclass(frozen=True)
class Facts:
    cpu: float | None  # percent of one core since the previous sample
    rss: int | None  # resident memory of the service's process group, in bytes


class Sampler:
    """Samples the services named by (pid, create_time); call from one thread only."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._last: dict[int, tuple[float | None, float, float]] = {}  # pid -> (create, cpu s, at)

    def sample(self, wanted: dict[int, float | None]) -> dict[int, Facts]:
        """Facts for each wanted ``pid -> create_time`` (a service's pid is its group id)."""
        now = self.clock()
        totals = usage.group_usage(set(wanted))
        found: dict[int, Facts] = {}
        last: dict[int, tuple[float | None, float, float]] = {}
        for pid, (cpu_s, rss) in totals.items():
            create_time = wanted[pid]
            before = self._last.get(pid)
            cpu = None
            if before is not None and before[0] == create_time and now > before[2]:
                # A member that exited takes its CPU time with it: never show a negative rate.
                cpu = max(0.0, (cpu_s - before[1]) / (now - before[2]) * 100.0)
            last[pid] = (create_time, cpu_s, now)
            found[pid] = Facts(cpu, rss)
        self._last = last
        return found



SPAN = 300.0  # seconds of history the details view draws


class History:
    """The last ``points * step`` seconds of each process's CPU % and memory: one point per
    ``step`` seconds (the highest CPU % and the last memory of the samples in it). A new run
    (another pid or create time) starts a new history. The refresh worker adds what it sampled
    anyway; the UI reads: a lock keeps the two apart."""

    def __init__(self, points: int = 150, step: float = SPAN / 150, clock=time.monotonic) -> None:
        self.points = points
        self.step = step
        self.clock = clock
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[int, float | None]] = {}
        self._at: dict[str, float] = {}  # when each process's newest point began
        self._cpu: dict[str, deque[float | None]] = {}
        self._rss: dict[str, deque[int | None]] = {}

    def add(self, samples: dict[str, tuple[int, float | None, Facts]]) -> None:
        """One poll's facts, ``name -> (pid, create_time, facts)``; processes not in it keep
        their history until they are gone from ``keep``."""
        now = self.clock()
        with self._lock:
            for name, (pid, create_time, facts) in samples.items():
                run = (pid, create_time)
                if self._runs.get(name) != run:
                    self._runs[name] = run
                    self._cpu[name] = deque(maxlen=self.points)
                    self._rss[name] = deque(maxlen=self.points)
                    self._at[name] = -float("inf")
                cpu, rss = self._cpu[name], self._rss[name]
                if cpu and now - self._at[name] < self.step:
                    if facts.cpu is not None:
                        cpu[-1] = max(cpu[-1] or 0.0, facts.cpu)
                    rss[-1] = facts.rss if facts.rss is not None else rss[-1]
                else:
                    cpu.append(facts.cpu)
                    rss.append(facts.rss)
                    self._at[name] = now

    def keep(self, names: set[str]) -> None:
        """Forget the processes not in ``names`` (removed)."""
        with self._lock:
            for name in [n for n in self._runs if n not in names]:
                for store in (self._runs, self._at, self._cpu, self._rss):
                    del store[name]

    def series(self, name: str) -> tuple[list[float], list[float]]:
        """``(cpu %, memory bytes)`` points of ``name``, oldest first (a gap reads 0)."""
        with self._lock:
            cpu = list(self._cpu.get(name, ()))
            rss = list(self._rss.get(name, ()))
        return [c or 0.0 for c in cpu], [float(r or 0) for r in rss]
