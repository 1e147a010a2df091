"""CPU % and memory per process, sampled with psutil off the UI thread.

``cpu_percent`` measures between two calls on the *same* ``psutil.Process`` object, so
objects are cached per (pid, create time) and dropped when their process goes away.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Facts:
    cpu: float | None  # percent of one core since the previous sample
    rss: int | None  # resident memory of the recorded process, in bytes


class Sampler:
    """Samples the processes named by (pid, create_time); call from one thread only."""

    def __init__(self) -> None:
        self._procs: dict = {}  # pid -> psutil.Process

    def sample(self, wanted: dict[int, float | None]) -> dict[int, Facts]:
        """Facts for each wanted ``pid -> create_time``; unknown or recycled pids are skipped."""
        import psutil  # here, in the worker thread: keeps it out of the TUI's start-up

        for pid in list(self._procs):
            if pid not in wanted:
                del self._procs[pid]
        found: dict[int, Facts] = {}
        for pid, create_time in wanted.items():
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = psutil.Process(pid)
                    # A recycled pid is someone else's process: never report it as ours.
                    if create_time is not None and abs(proc.create_time() - create_time) > 0.01:
                        continue
                    proc.cpu_percent(None)  # primes the counter; the first reading is 0
                    self._procs[pid] = proc
                    cpu = None
                else:
                    cpu = proc.cpu_percent(None)
                rss = proc.memory_info().rss
            except (psutil.Error, OSError):
                self._procs.pop(pid, None)
                continue
            found[pid] = Facts(cpu, rss)
        return found


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit in ("B", "K") else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}G"
