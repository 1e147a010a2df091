"""Process identity: a pid is ours only if it is alive, not a zombie, and was created when we
recorded: pids are recycled, and signalling a stranger is the worst thing a process manager
can do (docs/decisions.md, 9). Numbers are compared, never formatted text."""

from __future__ import annotations

from auto_core.proc import procfs

# psutil derives create_time from the boot time, which the kernel reports to the second and
# which can shift by a second; a pid reused within the same second is not a realistic risk.
CREATE_TIME_TOLERANCE = 1.0

# On Linux we read /proc directly with psutil's own formula (starttime / CLK_TCK + btime):
# `auto ps` checks every service, and importing psutil plus three /proc reads per pid was
# the largest cost of a 200-service `ps` (docs/benchmarks.md, Core CLI).
_BOOT: list[float] = []


def _boot_time() -> float:
    if not _BOOT:
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"btime"):
                    _BOOT.append(float(line.split()[1]))
                    break
            else:
                raise OSError("no btime in /proc/stat")
    return _BOOT[0]


def _proc_stat(pid: int) -> tuple[bytes, float] | None:
    """(state letter, create time) from /proc/PID/stat, or None if there is no such pid."""
    fields = procfs.stat_fields(pid)
    if fields is None:
        return None
    try:
        return fields[procfs.STATE], int(fields[procfs.STARTTIME]) / procfs.TICKS + _boot_time()
    except (ValueError, OSError):
        return None


def start_time(pid: int) -> float | None:
    """The kernel start time of ``pid`` even if it is a zombie (what ``spawn`` records)."""
    if procfs.AVAILABLE:
        found = _proc_stat(pid)
        if found is not None:
            return found[1]
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, ValueError):
        return None


def create_time(pid: int) -> float | None:
    """The kernel start time of ``pid``, or None if it does not exist or is a zombie."""
    if procfs.AVAILABLE:
        found = _proc_stat(pid)
        if found is None:
            return None
        return None if found[0] in (b"Z", b"X") else found[1]
    import psutil

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
    import psutil

    try:
        proc = psutil.Process(pid)
        cmd = " ".join(proc.cmdline()) or proc.name()
    except (psutil.Error, OSError):
        cmd = "?"
    if len(cmd) > 80:
        cmd = cmd[:77] + "..."
    return f"pid {pid} ({cmd})"
