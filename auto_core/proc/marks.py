"""Finding a home's runs by the marks in their environment.

Every run carries ``AUTO_HOME``, ``AUTO_SERVICE`` and ``AUTO_RUN`` (``launch``), and every
process it starts inherits them. A watcher that starts looks for marked processes whose run
no entry records: what a watcher spawned and died before recording.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from auto_core.proc import procfs
from auto_core.store.paths import Home


@dataclass(frozen=True)
class Marked:
    pid: int
    pgid: int
    service: str
    run_id: str


def _candidates() -> list[tuple[int, dict[bytes, bytes]]]:
    me = os.getpid()
    if procfs.AVAILABLE:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != me:
                env = procfs.environ(entry)
                if env is not None and b"AUTO_RUN" in env:
                    found.append((int(entry), env))
        return found
    import psutil

    found = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            text_env = proc.environ()
        except (psutil.Error, OSError):
            continue
        if "AUTO_RUN" in text_env:
            found.append((proc.pid, {os.fsencode(k): os.fsencode(v) for k, v in text_env.items()}))
    return found


def find(home: Home, recorded: dict[str, str | None]) -> list[Marked]:
    """Live processes marked with this home whose run is not ``recorded[service]``."""
    root = os.fsencode(str(home.root))
    found = []
    for pid, env in _candidates():
        if env.get(b"AUTO_HOME") != root:
            continue
        service = os.fsdecode(env.get(b"AUTO_SERVICE", b""))
        run_id = os.fsdecode(env[b"AUTO_RUN"])
        if not service or recorded.get(service) == run_id:
            continue
        fields = procfs.stat_fields(pid) if procfs.AVAILABLE else None
        if fields is not None and procfs.is_zombie(fields):
            continue
        try:
            pgid = os.getpgid(pid)
        except OSError:
            continue
        found.append(Marked(pid, pgid, service, run_id))
    return found
