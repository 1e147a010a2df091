"""Process identity: a pid is ours only if it is alive, not a zombie, and was created when we
recorded: pids are recycled, and signalling a stranger is the worst thing a process manager
can do (docs/decisions.md, 9).

Each run's entry records a ``stamp`` (``stamp``), compared exactly: on Linux the boot id and
the start time in clock ticks from ``/proc/PID/stat``, which no other process of this boot
can share with it; on macOS the start time to the microsecond. The ``create_time`` in
seconds is kept for display and for entries written before stamps: it is derived from the
boot time, which the kernel reports to the second and which moves when the clock is set, so
it is compared with a 1 s tolerance, and only where no stamp was recorded."""

from __future__ import annotations

from collections.abc import Mapping

from auto_core.proc import procfs

# create_time is derived from the boot time, which the kernel reports to the second and which
# shifts when the clock is set: two processes reading it may differ by a second. Compared
# with this tolerance only where no stamp was recorded (see the module docstring).
CREATE_TIME_TOLERANCE = 1.0

# On Linux we read /proc directly with psutil's own formula (starttime / CLK_TCK + btime):
# `auto ps` checks every service, and importing psutil plus three /proc reads per pid was
# the largest cost of a 200-service `ps` (docs/benchmarks.md, Core CLI).
_BOOT: list[float] = []
_BOOT_ID: list[str] = []


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


def _boot_id() -> str:
    if not _BOOT_ID:
        try:
            with open("/proc/sys/kernel/random/boot_id", "rb") as fh:
                _BOOT_ID.append(fh.read().strip().decode())
        except OSError:
            _BOOT_ID.append(f"btime{_boot_time():.0f}")
    return _BOOT_ID[0]


def stamp(pid: int, zombie_ok: bool = False) -> str | None:
    """The exact identity of the process that has ``pid`` now, or None if there is none (or
    it is a zombie, unless ``zombie_ok``: a child just spawned may already be one)."""
    if procfs.AVAILABLE:
        fields = procfs.stat_fields(pid)
        if fields is None or (procfs.is_zombie(fields) and not zombie_ok):
            return None
        return f"{_boot_id()}:{int(fields[procfs.STARTTIME])}"
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE and not zombie_ok:
            return None
        return f"{proc.create_time():.6f}"
    except (psutil.Error, ValueError):
        return None


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


def is_ours(pid: object, recorded_create_time: object, recorded_stamp: object = None) -> bool:
    """True only if ``pid`` is alive, not a zombie and is the process recorded: the same
    ``recorded_stamp`` exactly when one was recorded, else the same ``recorded_create_time``."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return False
    if isinstance(recorded_stamp, str):
        return stamp(pid) == recorded_stamp
    if not isinstance(recorded_create_time, (int, float)) or isinstance(recorded_create_time, bool):
        return False
    return same_time(create_time(pid), recorded_create_time)


def runs(entry: Mapping) -> bool:
    """The process an entry records (``pid``, ``stamp``, ``create_time``) is running."""
    return is_ours(entry.get("pid"), entry.get("create_time"), entry.get("stamp"))


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
