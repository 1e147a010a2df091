"""Every process of one run, and signals that reach only them.

A run's processes are the ones that carry its marks (``AUTO_HOME`` and ``AUTO_RUN`` in the
environment, set at spawn and inherited by every descendant), wherever they went: children
that left the process group (``set -m`` job control, GNU ``timeout``, a ``setpgid`` worker)
and daemons that forked twice and called ``setsid`` are found as well as the group. Members of
the run's process group count too (a program may clear its environment), but only while the
group is known to be the run's: its leader is the run's process, or a marked process is in it.

On Linux each member is held by a pidfd, opened first and checked after (its marks or its
group are read once the descriptor pins the process), and signalled through it: a signal can
never reach a pid that was recycled meanwhile. Elsewhere (macOS) a member is held by its pid
and kernel start time, checked before each signal.

A run started before marks existed (``run_id`` None) is its process group alone.
"""

from __future__ import annotations

import errno
import os
import select
import signal
from collections.abc import Iterator
from dataclasses import dataclass

from auto_core.proc import identity, procfs

PIDFDS = hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")
_ME = os.getpid()


@dataclass
class _Member:
    pid: int
    fd: int | None  # pidfd, or None where pidfds are missing
    create_time: float | None  # checked before a signal when there is no pidfd


def _environ(pid: int) -> dict[bytes, bytes] | None:
    if procfs.AVAILABLE:
        return procfs.environ(pid)
    import psutil

    try:
        return {os.fsencode(k): os.fsencode(v) for k, v in psutil.Process(pid).environ().items()}
    except (psutil.Error, OSError):
        return None


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


class Table:
    """One pass over the process table: every process's group and start time, and, read only
    when asked and once, the run mark of the processes started since a run began (a run's
    processes all started after its leader: the old ones, most of a machine's, are never
    opened). Stopping 200 services reads it once, not 200 times; a process is checked again,
    exactly, when a tree takes hold of it."""

    def __init__(self, home_root: str | bytes):
        self.root = home_root if isinstance(home_root, bytes) else os.fsencode(home_root)
        self.groups: dict[int, list[int]] = {}
        self.started: list[tuple[int, int]] = []  # (start ticks since boot, pid), None: unknown
        self._marks: dict[int, bytes | None] = {}
        if procfs.AVAILABLE:
            for pid, fields in procfs.all_stat_fields():
                if pid == _ME or procfs.is_zombie(fields):
                    continue
                self.groups.setdefault(int(fields[procfs.PGRP]), []).append(pid)
                self.started.append((int(fields[procfs.STARTTIME]), pid))
        else:
            for pid in _pids():
                pgid = _pgid(pid)
                if pgid is not None:
                    self.groups.setdefault(pgid, []).append(pid)
                    self.started.append((0, pid))

    def run(self, run_id: bytes, since_ticks: int = 0) -> list[int]:
        """The processes marked with ``run_id`` of this home among those started at or after
        ``since_ticks`` (clock ticks since boot; 0: all)."""
        found = []
        for start, pid in self.started:
            if start >= since_ticks and self._mark(pid) == run_id:
                found.append(pid)
        return found

    def _mark(self, pid: int) -> bytes | None:
        if pid not in self._marks:
            env = _environ(pid)
            ok = env is not None and env.get(b"AUTO_HOME") == self.root
            self._marks[pid] = env.get(b"AUTO_RUN") if ok and env is not None else None
        return self._marks[pid]


def _pids() -> Iterator[int]:
    me = os.getpid()
    if procfs.AVAILABLE:
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != me:
                yield int(entry)
        return
    import psutil

    yield from (p for p in psutil.pids() if p != me)


class Tree:
    """The processes of the run ``run_id`` of this home, led by ``leader`` (its pid, which
    is also its process group). ``leader_create_time``: the leader's recorded start time."""

    def __init__(self, home_root: str, run_id: str | None, leader: int,
                 leader_create_time: float | None, leader_stamp: str | None = None):
        self.root = os.fsencode(home_root)
        self.run_id = os.fsencode(run_id) if run_id else None
        self.leader = leader
        self.leader_create_time = leader_create_time
        self.leader_stamp = leader_stamp
        self.members: dict[int, _Member] = {}

    # --- finding ---------------------------------------------------------------------------

    def _marked(self, pid: int) -> bool:
        if self.run_id is None:
            return False
        env = _environ(pid)
        return env is not None and env.get(b"AUTO_HOME") == self.root and env.get(b"AUTO_RUN") == self.run_id

    def _belongs(self, pid: int, group_is_ours: bool) -> bool:
        if self._marked(pid):
            return True
        return group_is_ours and _pgid(pid) == self.leader

    def refresh(self, table: Table | None = None) -> list[int]:
        """Look for members not held yet in ``table`` (a fresh one if None); returns them."""
        table = table if table is not None else Table(self.root)
        seen = set(self.members)
        since = self._leader_ticks()
        marked = [p for p in table.run(self.run_id, since) if p not in seen] if self.run_id else []
        grouped = [p for p in table.groups.get(self.leader, ()) if p not in seen and p not in marked]
        # The group is the run's while its leader is the run's process, or while a process
        # of the run is in it; otherwise its id may have been taken by a stranger's group.
        in_group = set(table.groups.get(self.leader, ()))
        group_is_ours = (any(p in in_group for p in marked) or self._held_in_group()
                         or identity.is_ours(self.leader, self.leader_create_time, self.leader_stamp))
        found = []
        for pid in marked + (grouped if group_is_ours else []):
            member = self._hold(pid, group_is_ours)
            if member is not None:
                self.members[pid] = member
                found.append(pid)
        return found

    def _leader_ticks(self) -> int:
        """When the leader started, in clock ticks since boot (a little before, for safety);
        0 when not known: every process is looked at."""
        if not procfs.AVAILABLE:
            return 0
        if self.leader_stamp and ":" in self.leader_stamp:
            ticks = self.leader_stamp.rsplit(":", 1)[1]
            if ticks.isdigit():
                return max(0, int(ticks) - procfs.TICKS)
        return 0

    def _held_in_group(self) -> bool:
        return any(_pgid(m.pid) == self.leader for m in self.members.values() if self._alive(m))

    def _hold(self, pid: int, group_is_ours: bool) -> _Member | None:
        if PIDFDS:
            try:
                fd = os.pidfd_open(pid)  # type: ignore[attr-defined,unused-ignore]
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):  # no descriptor left: by pid
                    return self._hold_by_pid(pid, group_is_ours)
                return None
            # Checked after the open: the descriptor now pins whatever process has the pid.
            if not self._belongs(pid, group_is_ours) or identity.create_time(pid) is None:
                os.close(fd)
                return None
            return _Member(pid, fd, None)
        return self._hold_by_pid(pid, group_is_ours)

    def _hold_by_pid(self, pid: int, group_is_ours: bool) -> _Member | None:
        ct = identity.create_time(pid)
        if ct is None or not self._belongs(pid, group_is_ours):
            return None
        return _Member(pid, None, ct)

    # --- acting ----------------------------------------------------------------------------

    @staticmethod
    def _alive(member: _Member) -> bool:
        if member.fd is not None:
            # A pidfd polls readable once its process has exited (a zombie counts as gone).
            readable, _, _ = select.select([member.fd], [], [], 0)
            return not readable
        return identity.is_ours(member.pid, member.create_time)

    def _send(self, member: _Member, sig: int) -> bool:
        try:
            if member.fd is not None:
                signal.pidfd_send_signal(member.fd, sig)  # type: ignore[attr-defined,unused-ignore]
            elif identity.is_ours(member.pid, member.create_time):
                os.kill(member.pid, sig)
            else:
                return False
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def alive(self) -> list[int]:
        """The members still running (the ones that ended are let go)."""
        for pid, member in list(self.members.items()):
            if not self._alive(member):
                self._drop(pid)
        return sorted(self.members)

    def signal(self, sig: int) -> list[int]:
        """Send ``sig`` to every live member, then SIGCONT unless it was SIGKILL or SIGCONT
        (a stopped process would not act on it). Returns the pids signalled."""
        sent = [pid for pid, m in list(self.members.items()) if self._send(m, sig)]
        if sig not in (signal.SIGKILL, signal.SIGCONT):
            for pid in sent:
                self._send(self.members[pid], signal.SIGCONT)
        return sent

    def main(self) -> tuple[int, float] | None:
        """(pid, start time) of the process to follow once the leader is gone: a daemon that
        made itself a session leader (``setsid``), else the oldest member."""
        found = []
        for pid in self.alive():
            ct = identity.create_time(pid)
            try:
                daemon = os.getsid(pid) == pid
            except OSError:
                continue
            if ct is not None:
                found.append((not daemon, ct, pid))
        if not found:
            return None
        _, ct, pid = min(found)
        return pid, ct

    def _drop(self, pid: int) -> None:
        member = self.members.pop(pid)
        if member.fd is not None:
            os.close(member.fd)

    def close(self) -> None:
        for pid in list(self.members):
            self._drop(pid)
