"""``proc.tree``: a run's processes are its group and everything that carries its marks, held
by pidfds; a process without the marks outside the group is never touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from helpers import pid_alive, wait_until

from auto_core.proc import identity, tree

# A leader that starts three children: one stays in its group, one leaves the group
# (setpgid, as `set -m` job control does), one leaves the session (setsid, as a daemon does).
# Each writes its pid to the file named by argv[1].
SPREAD = r"""
import os, subprocess, sys, time
out = sys.argv[1]
kids = [subprocess.Popen(["sleep", "1000"]),
        subprocess.Popen(["sleep", "1000"], process_group=0),
        subprocess.Popen(["sleep", "1000"], start_new_session=True)]
with open(out + ".tmp", "w") as fh:
    fh.write(" ".join(str(k.pid) for k in kids))
os.rename(out + ".tmp", out)
time.sleep(1000)
"""


@pytest.fixture
def spawned():
    procs: list[subprocess.Popen] = []
    extra: list[int] = []

    def spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        proc = subprocess.Popen(argv, env=dict(os.environ, **env), start_new_session=True)
        procs.append(proc)
        return proc

    yield spawn, extra
    for pid in [p.pid for p in procs] + extra:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for proc in procs:
        proc.wait()


def spread(spawn, tmp_path, home: str, run: str) -> tuple[subprocess.Popen, list[int]]:
    out = tmp_path / f"kids-{run}"
    leader = spawn([sys.executable, "-c", SPREAD, str(out)], {"AUTO_HOME": home, "AUTO_RUN": run})
    wait_until(out.exists, message="the children started")
    return leader, [int(p) for p in out.read_text().split()]


def test_finds_the_group_and_marked_escapes_and_signals_them_all(spawned, tmp_path):
    spawn, extra = spawned
    home = str(tmp_path / "home")
    leader, kids = spread(spawn, tmp_path, home, "run-a")
    extra.extend(kids)
    other, other_kids = spread(spawn, tmp_path, home, "run-b")  # another run of the same home
    extra.extend(other_kids)
    t = tree.Tree(home, "run-a", leader.pid, identity.create_time(leader.pid))
    try:
        assert sorted(t.refresh()) == sorted([leader.pid, *kids])
        assert t.refresh() == []  # held already
        assert t.signal(signal.SIGTERM) == sorted([leader.pid, *kids])
        wait_until(lambda: t.alive() == [], message="every process of run-a gone")
        assert leader.wait(5) == -signal.SIGTERM
        assert pid_alive(other.pid) and all(pid_alive(p) for p in other_kids)
    finally:
        t.close()


def test_an_unmarked_group_member_counts_only_while_the_leader_is_the_run(spawned, tmp_path):
    spawn, extra = spawned
    home = str(tmp_path / "home")
    # Started before marks existed: no AUTO_RUN, the group is all there is.
    leader = spawn(["sh", "-c", "sleep 1000 & wait"], {})
    wait_until(lambda: len(_group(leader.pid)) == 2, message="the child started")
    ct = identity.create_time(leader.pid)
    assert sorted(tree.Tree(home, None, leader.pid, ct).refresh()) == _group(leader.pid)
    marked = tree.Tree(home, "run-x", leader.pid, ct)
    assert sorted(marked.refresh()) == _group(leader.pid)  # the leader is still the run
    marked.close()
    # A recorded start time that is not the leader's: the group is a stranger's.
    stranger = tree.Tree(home, "run-x", leader.pid, (ct or 0) - 5)
    assert stranger.refresh() == [] and stranger.signal(signal.SIGKILL) == []
    assert pid_alive(leader.pid)


def test_a_member_that_ended_is_never_signalled(spawned, tmp_path):
    spawn, _ = spawned
    home = str(tmp_path / "home")
    proc = spawn(["sleep", "1000"], {"AUTO_HOME": home, "AUTO_RUN": "r"})
    t = tree.Tree(home, "r", proc.pid, identity.create_time(proc.pid))
    try:
        assert t.refresh() == [proc.pid]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert t.alive() == [] and t.signal(signal.SIGTERM) == []
    finally:
        t.close()


def _group(pgid: int) -> list[int]:
    from auto_core.proc import procgroup

    return sorted(procgroup.members(pgid))
