"""Process identity: a pid is ours only if it is alive, not a zombie, and was created when we
recorded (DESIGN.md §4, LESSONS 3-4). Numbers are compared, never formatted text."""

from __future__ import annotations

import psutil

# psutil derives create_time from the boot time, which the kernel reports to the second and
# which can shift by a second; a pid reused within the same second is not a realistic risk.
CREATE_TIME_TOLERANCE = 1.0


def create_time(pid: int) -> float | None:
    """The kernel start time of ``pid``, or None if it does not exist or is a zombie."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None


def same_time(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(float(a) - float(b)) < CREATE_TIME_TOLERANCE


def is_ours(pid: object, recorded_create_time: object) -> bool:
    """True only if ``pid`` is alive, not a zombie and matches ``recorded_create_time``."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return False
    if not isinstance(recorded_create_time, (int, float)) or isinstance(recorded_create_time, bool):
        return False
    return same_time(create_time(pid), recorded_create_time)


def describe(pid: int) -> str:
    """A short 'pid N (command line)' for error messages."""
    try:
        proc = psutil.Process(pid)
        cmd = " ".join(proc.cmdline()) or proc.name()
    except (psutil.Error, OSError):
        cmd = "?"
    if len(cmd) > 80:
        cmd = cmd[:77] + "..."
    return f"pid {pid} ({cmd})"
