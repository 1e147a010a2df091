"""Stopping process trees three levels deep.

100 stop cycles (10 services x 10 rounds) of ``sh -c`` trees: the service shell (level 1)
starts shells (level 2) that start sleeps (level 3). Each round uses one variant for all ten
services: plain trees, trees whose level 2 or level 3 ignores SIGTERM (so stop must take the
timeout path and SIGKILL the group), and trees where a child calls ``setsid``. The setsid'd
processes leave the service's process group, but they carry the run's marks, so the stop
reaches them too: nothing of any tree may be left when stop returns.

Every process of a tree carries the inherited ``AUTO_SERVICE=<name>`` and ``AUTO_HOME``
variables, which is how survivors are found (an exact match of the variable, never a substring). Processes that
leave the group run ``sleep 1001`` (or a shell running it) instead of ``sleep 1000``.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from helpers import wait_until

from auto_core.lifecycle import Api
from auto_core.proc import procfs

STOP_TIMEOUT = 1.5
SERVICES = [f"t{i}" for i in range(10)]
ROUNDS = 10

# (command, processes in the tree, processes that leave the group, ignores TERM somewhere)
VARIANTS = [
    ("sh -c 'sleep 1000 & sleep 1000 & wait' & sh -c 'sleep 1000 & wait' & wait", 6, 0, False),
    ("sh -c 'trap \"\" TERM; sleep 1000 & sleep 1000 & wait' & sleep 1000 & wait", 5, 0, True),
    ("sh -c '(trap \"\" TERM; exec sleep 1000) & sleep 1000 & wait' & wait", 4, 0, True),
    ("setsid sh -c 'sleep 1001 & wait' & sh -c 'sleep 1000 & wait' & wait", 5, 2, False),
    ("sh -c 'trap \"\" TERM; setsid sleep 1001 & sleep 1000 & wait' & wait", 4, 1, True),
]


def tree_members(home: str) -> dict[str, list[tuple[int, int, list[bytes]]]]:
    """Live processes started under ``home``, by service: [(pid, pgid, argv)]."""
    want_home = f"AUTO_HOME={home}".encode()
    found: dict[str, list] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")[:-1]
        except OSError:
            continue
        if want_home not in env:
            continue
        service = next((v[len(b"AUTO_SERVICE="):].decode() for v in env if v.startswith(b"AUTO_SERVICE=")), None)
        fields = procfs.stat_fields(entry)
        if service is None or fields is None or procfs.is_zombie(fields):
            continue
        found.setdefault(service, []).append((int(entry), int(fields[procfs.PGRP]), argv))
    return found


def kill_survivors(members: dict[str, list]) -> None:
    for procs in members.values():
        for pid, _, _ in procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.slow
def test_stop_leaves_nothing_of_the_tree_not_even_what_left_the_group(home):
    api = Api(home)
    root = str(home.root)
    for name in SERVICES:
        api.add(name, "true", workdir="/", stop_timeout=STOP_TIMEOUT, start=False)
    report = {"cycles": 0, "left_the_group": 0, "survivors": 0, "timeout_stops": 0}
    for rnd in range(ROUNDS):
        command, size, escapes, ignores_term = VARIANTS[rnd % len(VARIANTS)]
        for name in SERVICES:
            api.update(name, command=command)
        outcomes = api.start(SERVICES)
        assert all(o.ok for o in outcomes), [o.message for o in outcomes]
        leaders = {o.name: o.pid for o in outcomes}
        wait_until(lambda size=size: all(len(tree_members(root).get(n, [])) == size for n in SERVICES),
                   15, message=f"round {rnd}: every tree of {size} processes up")
        outside = [p for n, procs in tree_members(root).items() for p in procs if p[1] != leaders[n]]
        assert len(outside) == escapes * len(SERVICES)
        report["left_the_group"] += len(outside)

        t0 = time.monotonic()
        outcomes = api.stop(SERVICES)
        took = time.monotonic() - t0
        assert all(o.ok for o in outcomes), [o.message for o in outcomes]
        report["cycles"] += len(SERVICES)

        left = tree_members(root)
        try:
            assert left == {}, f"round {rnd}: processes of stopped services survived: {left}"
        finally:
            report["survivors"] += sum(len(p) for p in left.values())
            kill_survivors(left)
        if ignores_term:
            # Only SIGKILL, sent after stop_timeout, ends a TERM-ignoring group.
            assert took >= STOP_TIMEOUT, f"round {rnd}: stop took {took:.2f} s, no timeout path"
            report["timeout_stops"] += len(SERVICES)
        else:
            assert took < STOP_TIMEOUT, f"round {rnd}: a TERM-obeying stop took {took:.2f} s"
        views = {v.name: v.status for v in api.snapshot()}
        assert set(views.values()) == {"stopped"}, views
    print(f"\ntree stop report: {report}")
    assert report == {"cycles": 100, "left_the_group": 2 * (2 * 2 + 2 * 1) * 5, "survivors": 0,
                      "timeout_stops": 60}


# The leader fails soon; its children stay in its process group and ignore SIGTERM, so the
# SIGTERM the watcher sends to a dead leader's leftovers does not end them. The leader waits
# a moment first: a SIGTERM that came before the child's trap would end it. (A leader that
# exits 0 leaving its children is a daemon, followed instead: test_daemon_follow.py.)
LEADERLESS = "sh -c 'trap \"\" TERM; sleep 1000 & sleep 1000 & wait' & sleep 0.5; exit 3"


def leaderless_recorded(api: Api, root: str, leader: int) -> bool:
    """The watcher recorded the leader's exit while its three children live on."""
    last = api.entry("orphans").get("last_exit") or {}
    return last.get("pid") == leader and len(tree_members(root).get("orphans", [])) == 3


@pytest.mark.slow
def test_stop_of_a_tree_whose_leader_already_exited(home):
    """The level-1 shell is gone but its children still run in the group: the service is
    shown dead and stopping it must not leave those children running."""
    api = Api(home, say=lambda m: None)
    api.add("orphans", LEADERLESS, workdir="/", stop_timeout=STOP_TIMEOUT, backoff_base=60, wait=0)
    root = str(home.root)
    leader = api.entry("orphans")["pid"]
    wait_until(lambda: leaderless_recorded(api, root, leader), 10, message="leader gone, children alive")
    assert api.view("orphans").status == "dead"
    assert {pgid for _, pgid, _ in tree_members(root)["orphans"]} == {leader}
    t0 = time.monotonic()
    outcome = api.stop(["orphans"])[0]
    assert outcome.ok, outcome.message
    assert time.monotonic() - t0 >= STOP_TIMEOUT  # they ignore SIGTERM: only the SIGKILL ends them
    assert not tree_members(root).get("orphans")  # gone by the time the stop returns
    log = home.watcher_log.read_text()
    assert "leftovers of orphans (pids " in log and "): sent SIGTERM" in log


@pytest.mark.parametrize("how", ["start", "automatic restart"])
def test_start_clears_a_leaderless_group_first(home, tmp_path, how):
    """A start (manual or the watcher's restart) of a service whose leader died while its
    children live on stops those children first: never two copies side by side. Only the
    first run leaves children behind; later runs are one long-lived process."""
    mark = tmp_path / "ran-once"
    command = f"if [ -e '{mark}' ]; then exec sleep 1000; fi; touch '{mark}'; {LEADERLESS}"
    api = Api(home, say=lambda m: None)
    api.add("orphans", command, workdir="/", stop_timeout=STOP_TIMEOUT, wait=0,
            backoff_base=60 if how == "start" else 1)
    root = str(home.root)
    old_leader = api.entry("orphans")["pid"]
    if how == "start":
        wait_until(lambda: leaderless_recorded(api, root, old_leader), 10, message="leader gone, children alive")
        outcome = api.start(["orphans"], wait=0)[0]
        assert outcome.ok, outcome.message
    wait_until(lambda: api.entry("orphans")["pid"] != old_leader, 10, message="a new instance")
    new_leader = api.entry("orphans")["pid"]
    wait_until(lambda: {pgid for _, pgid, _ in tree_members(root).get("orphans", [])} == {new_leader},
               10, message="only the new instance's group to remain")
    assert new_leader != old_leader
    log = home.watcher_log.read_text()
    assert "leftovers of orphans (pids " in log and "): sent SIGKILL" in log
