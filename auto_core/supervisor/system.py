"""The processes the watcher acts on, behind one object.

Every spawn, signal and look at another process that the watcher makes goes through a
``System``: a run's launch, a signal to a process group, which groups still have members,
whether a recorded pid is still the process auto started, who holds a port, and which
processes carry this home's marks. The watcher's rules (backoff, the crash-loop floor, stop
escalation, recovery) are then testable with a stand-in that simulates processes, and the
real one is this thin layer over ``proc`` and ``launch``.
"""

from __future__ import annotations

from collections.abc import Iterable

from auto_core.proc import identity, marks, ports, procgroup
from auto_core.store.paths import Home
from auto_core.supervisor import launch


class System:
    def __init__(self, home: Home):
        self.home = home
        self.launcher = launch.Launcher(home)

    def launch(self, name: str, entry: dict) -> launch.Launched | str:
        """Start a run; the reason as text when it cannot start."""
        return self.launcher.launch(name, entry)

    def ask_group(self, pgid: int, sig: int) -> bool:
        """Send the stop signal to a group (SIGCONT after it, so a stopped group hears it)."""
        return procgroup.ask_group(pgid, sig)

    def kill_group(self, pgid: int, sig: int) -> bool:
        return procgroup.signal_group(pgid, sig)

    def live_groups(self, pgids: Iterable[int]) -> set[int]:
        """The groups of ``pgids`` that still have a member."""
        return procgroup.live_groups(pgids)

    def terminate_group(self, pgid: int, timeout: float) -> None:
        """TERM, then KILL after ``timeout``: for a run that must not live (never recorded)."""
        procgroup.terminate_groups([pgid], timeout=timeout)

    def is_ours(self, pid: object, create_time: object) -> bool:
        """``pid`` is alive and is the process started at ``create_time``."""
        return identity.is_ours(pid, create_time)

    def create_time(self, pid: int) -> float | None:
        return identity.create_time(pid)

    def port_holders(self, port: int) -> list[str]:
        """Who listens on ``port``, as 'pid N (command)'; empty when it is free."""
        holders = ports.listeners(port)
        return [identity.describe(h.pid) if h.pid else "another process" for h in holders]

    def marked(self, recorded: dict[str, str | None]) -> list[marks.Marked]:
        """Live processes with this home's marks whose run ``recorded`` does not name."""
        return marks.find(self.home, recorded)
