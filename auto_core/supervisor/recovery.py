"""What a watcher that starts does with the processes an earlier one left.

Two sources, in this order:

1. **Recorded runs** (``recorded_alive``): an entry's pid that is still the process auto
   started (same kernel start time) is adopted: watched, not restarted.
2. **Marked runs no entry records** (``sort_marked``): a watcher that died between a spawn
   and its record left a run that only its marks (``AUTO_HOME``, ``AUTO_SERVICE``,
   ``AUTO_RUN``) identify. It is claimed (recorded and adopted) when its service is defined,
   wanted (not stopped, no request pending) and not already running, and it leads its own
   group; any other such process is a stray copy and is stopped.

Both are decisions on data; the watcher carries them out.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from auto_core import model
from auto_core.proc.marks import Marked
from auto_core.supervisor.runs import number


@dataclass(frozen=True)
class Recorded:
    name: str
    pid: int
    create_time: float
    started_at: float
    log_path: str | None
    run_id: str | None
    followed: bool  # a daemon its run's leader left running
    stamp: str | None


def recorded_alive(entries: dict[str, dict],
                   is_ours: Callable[[object, object, object], bool]) -> list[Recorded]:
    """The recorded runs that still live, in name order."""
    found = []
    for name in sorted(entries):
        entry = entries[name]
        pid, ct = entry.get("pid"), number(entry.get("create_time"))
        if isinstance(pid, int) and ct is not None and is_ours(pid, ct, entry.get("stamp")):
            log_path, run_id = entry.get("log_path"), entry.get("run")
            found.append(Recorded(name, pid, ct, number(entry.get("started_at")) or ct,
                                  log_path if isinstance(log_path, str) else None,
                                  run_id if isinstance(run_id, str) else None,
                                  entry.get("daemon_of") is not None,
                                  entry.get("stamp") if isinstance(entry.get("stamp"), str) else None))
    return found


def recorded_runs(entries: dict[str, dict]) -> dict[str, str | None]:
    """Each service's recorded run id (what ``marks.find`` leaves out)."""
    return {n: e.get("run") if isinstance(e.get("run"), str) else None for n, e in entries.items()}


def sort_marked(found: list[Marked], entries: dict[str, dict], running: Collection[str],
                watched_pids: Collection[int]) -> tuple[list[Marked], list[Marked], list[Marked]]:
    """(claims, strays, unknown): the marked runs to record and adopt, the ones to stop, and
    the ones of services the state does not define, which are left alone (as the running
    watcher leaves the process of an entry removed by hand). ``running``: services with a
    live run adopted already; ``watched_pids``: their pids."""
    claims: list[Marked] = []
    strays: list[Marked] = []
    unknown: list[Marked] = []
    claimed: set[str] = set()
    for run in found:
        if run.pid in watched_pids:
            continue
        entry = entries.get(run.service)
        if entry is None:
            unknown.append(run)
            continue
        wanted = (entry is not None and not entry.get("explicitly_stopped")
                  and model.request(entry) is None
                  and run.service not in running and run.service not in claimed)
        if wanted and run.pgid == run.pid:
            claims.append(run)
            claimed.add(run.service)
        else:
            strays.append(run)
    return claims, strays, unknown
