"""CPU % and memory per service, sampled off the UI thread.

A service is its whole process group (the ``sh -c`` wrapper, a reloader, its workers):
``auto_core.proc.usage`` sums the group's CPU time and resident memory; CPU % is the change in
that sum between two samples of the same run (pid and create time).
"""

from __future__ import annotations

import time
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

