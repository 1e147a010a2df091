"""Signalling and waiting for whole process groups: a stop must reach a service's children
(the program of a ``sh -c`` wrapper, a reloader's workers), not only its leader.

A service runs in its own session, so its process group id is its leader's pid. A group is
"alive" while it has a member that is not a zombie.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable

from auto_core.proc import procfs

POLL = 0.02


def _live_groups_proc(pgids: set[int]) -> set[int]:
    """Linux: one pass over /proc, reading each process's pgid and state from ``stat``."""
    found: set[int] = set()
    try:
        for _pid, fields in procfs.all_stat_fields():
            pgrp = int(fields[procfs.PGRP])
            if pgrp in pgids and not procfs.is_zombie(fields):
                found.add(pgrp)
                if found == pgids:
                    break
    except OSError:
        return _live_groups_generic(pgids)
    return found


def _live_groups_generic(pgids: set[int]) -> set[int]:
    import psutil

    found: set[int] = set()
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            pgrp = os.getpgid(proc.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
        if pgrp in pgids:
            found.add(pgrp)
    return found


def exists(pgid: int) -> bool:
    """Whether group ``pgid`` has any member (maybe only a zombie); no /proc scan."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's: it exists
    return True


def live_groups(pgids: Iterable[int]) -> set[int]:
    """The subset of ``pgids`` that still has a non-zombie member."""
    wanted = {pgid for pgid in pgids if exists(pgid)}
    if not wanted:
        return set()
    if procfs.AVAILABLE:
        return _live_groups_proc(wanted)
    return _live_groups_generic(wanted)


def members(pgid: int) -> list[int]:
    """Pids of the live (non-zombie) members of group ``pgid``."""
    if procfs.AVAILABLE:
        return [pid for pid, fields in procfs.all_stat_fields()
                if int(fields[procfs.PGRP]) == pgid and not procfs.is_zombie(fields)]
    import psutil

    found = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                found.append(proc.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the group; False if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def ask_group(pgid: int, sig: int) -> bool:
    """Send a stop signal to the group, then SIGCONT unless it was SIGKILL: a stopped (^Z)
    member would never see it. False if the group no longer exists."""
    if not signal_group(pgid, sig):
        return False
    if sig not in (signal.SIGKILL, signal.SIGCONT):
        signal_group(pgid, signal.SIGCONT)
    return True


def wait_gone(
    pgids: Iterable[int], timeout: float, reap: Callable[[], None] | None = None
) -> set[int]:
    """Wait until every group is gone or ``timeout`` passes; return the survivors."""
    remaining = set(pgids)
    deadline = time.monotonic() + timeout
    while remaining:
        if reap:
            reap()
        remaining = live_groups(remaining)
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
    return remaining


def terminate_groups(
    pgids: Iterable[int],
    sig: int = signal.SIGTERM,
    timeout: float = 10.0,
    reap: Callable[[], None] | None = None,
    kill_timeout: float = 5.0,
) -> set[int]:
    """Signal every group, wait ``timeout``, SIGKILL the survivors, wait again.

    Returns the groups that survived SIGKILL (normally empty).
    """
    groups = {g for g in pgids if g > 1}
    for pgid in groups:
        ask_group(pgid, sig)
    survivors = wait_gone(groups, timeout, reap)
    if not survivors:
        return set()
    for pgid in survivors:
        signal_group(pgid, signal.SIGKILL)
    return wait_gone(survivors, kill_timeout, reap)
