"""CPU time and memory of whole services (a service is its process group).

A ``sh -c`` wrapper, a reloader and its workers all count: the leader alone can be a 1 MiB
shell while the real work happens in its children. Linux reads every ``/proc/PID/stat`` once
per call; elsewhere psutil walks each leader's descendants.
"""

from __future__ import annotations

from auto_core.proc import procfs


def group_usage(pgids: set[int]) -> dict[int, tuple[float, int]]:
    """``pgid -> (cpu seconds used so far, resident bytes)`` summed over the live members."""
    if not pgids:
        return {}
    if procfs.AVAILABLE:
        return _proc_usage(pgids)
    return _psutil_usage(pgids)


def _proc_usage(pgids: set[int]) -> dict[int, tuple[float, int]]:
    totals: dict[int, list] = {}
    for _pid, fields in procfs.all_stat_fields():
        pgrp = int(fields[procfs.PGRP])
        if pgrp not in pgids or procfs.is_zombie(fields):
            continue
        acc = totals.setdefault(pgrp, [0, 0])
        acc[0] += int(fields[procfs.UTIME]) + int(fields[procfs.STIME])
        acc[1] += int(fields[procfs.RSS])
    return {g: (ticks / procfs.TICKS, pages * procfs.PAGE) for g, (ticks, pages) in totals.items()}


def _psutil_usage(pgids: set[int]) -> dict[int, tuple[float, int]]:
    import psutil

    found: dict[int, tuple[float, int]] = {}
    for leader in pgids:
        cpu, rss = 0.0, 0
        try:
            root = psutil.Process(leader)
            members = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in members:
            try:
                times = proc.cpu_times()
                cpu += times.user + times.system
                rss += proc.memory_info().rss
            except psutil.Error:
                continue
        found[leader] = (cpu, rss)
    return found
