"""The processes the watcher acts on, behind one object.

Every spawn, signal and look at another process that the watcher makes goes through a
``System``: a run's launch, a signal to a process group, which groups still have members,
whether a recorded pid is still the process auto started, who holds a port, and which
processes carry this home's marks. The watcher's rules (backoff, the crash-loop floor, stop
escalation, recovery) are then testable with a stand-in that simulates processes, and the
real one is this thin layer over ``proc`` and ``launch``.
"""

from __future__ import annotations

from auto_core.model import Definition
from auto_core.proc import identity, marks, ports, procgroup
from auto_core.proc.tree import Table, Tree
from auto_core.store.paths import Home
from auto_core.supervisor import launch


class System:
    def __init__(self, home: Home):
        self.home = home
        self.launcher = launch.Launcher(home)

    def launch(self, name: str, definition: Definition) -> launch.Launched | str:
        """Start a run; the reason as text when it cannot start."""
        return self.launcher.launch(name, definition)

    def tree(self, run_id: str | None, leader: int, create_time: float | None,
             stamp: str | None = None) -> Tree:
        """The processes of a run, to signal and watch (``proc.tree``): its group and every
        process that carries its marks."""
        return Tree(str(self.home.root), run_id, leader, create_time, stamp)

    def group_exists(self, pgid: int) -> bool:
        """The group has a member (one syscall, no read of the process table)."""
        return procgroup.exists(pgid)

    def table(self) -> Table:
        """One read of the process table, for ``Tree.refresh``."""
        return Table(str(self.home.root))

    def is_ours(self, pid: object, create_time: object, stamp: object) -> bool:
        """``pid`` is alive and is the process recorded (``identity.is_ours``)."""
        return identity.is_ours(pid, create_time, stamp)

    def stamp(self, pid: int) -> str | None:
        return identity.stamp(pid)

    def create_time(self, pid: int) -> float | None:
        return identity.create_time(pid)

    def port_holders(self, port: int) -> list[str]:
        """Who listens on ``port``, as 'pid N (command)'; empty when it is free."""
        holders = ports.listeners(port)
        return [identity.describe(h.pid) if h.pid else "another process" for h in holders]

    def marked(self, recorded: dict[str, str | None]) -> list[marks.Marked]:
        """Live processes with this home's marks whose run ``recorded`` does not name."""
        return marks.find(self.home, recorded)
