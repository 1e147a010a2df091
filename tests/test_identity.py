"""Identity = pid + kernel create time: a recycled pid is never ours."""

from __future__ import annotations

import json
import os
import subprocess
import time

import psutil
import pytest
from helpers import auto, pid_alive, read_state, wait_until

from auto_core.proc import identity


def test_is_ours_matches_live_process_with_its_create_time(stranger):
    ct = psutil.Process(stranger.pid).create_time()
    assert identity.is_ours(stranger.pid, ct)
    assert identity.create_time(stranger.pid) == ct


@pytest.mark.parametrize("offset", [-3600.0, -5.0, 5.0, 86400.0])
def test_wrong_create_time_is_not_ours(stranger, offset):
    ct = psutil.Process(stranger.pid).create_time()
    assert not identity.is_ours(stranger.pid, ct + offset)


@pytest.mark.parametrize("pid, ct", [
    (None, 1.0), (True, 1.0), ("123", 1.0), (0, 1.0), (1, None), (-5, 1.0), (2**22 + 12345, 1.0),
])
def test_malformed_or_missing_identity_is_not_ours(pid, ct):
    assert not identity.is_ours(pid, ct)


def test_missing_create_time_is_not_ours_even_for_a_live_pid(stranger):
    assert not identity.is_ours(stranger.pid, None)
    assert not identity.is_ours(stranger.pid, "1700000000")


@pytest.fixture
def zombie():
    """A child of this test that has exited and is not reaped yet: (pid, its create time)."""
    child = subprocess.Popen(["true"])
    ct = psutil.Process(child.pid).create_time()
    try:
        wait_until(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, message="zombie")
        yield child.pid, ct
    finally:
        child.wait()


def test_zombie_is_not_ours(zombie):
    pid, ct = zombie
    assert not identity.is_ours(pid, ct)
    assert identity.create_time(pid) is None


def test_describe_names_pid_and_command(stranger):
    assert identity.describe(stranger.pid) == f"pid {stranger.pid} (sleep 1000)"


def test_recycled_pid_shows_dead_and_is_never_signalled(auto_home, capsys, stranger):
    """A state entry pointing at another live process (wrong create time) is dead, not running,
    and stop / restart / remove never signal that process."""
    assert auto(capsys, "add", "svc", "sleep 1000", "--no-start")[0] == 0
    path = auto_home / "local" / "state.json"
    data = json.loads(path.read_text())
    real_ct = psutil.Process(stranger.pid).create_time()
    data["processes"]["svc"].update(pid=stranger.pid, create_time=real_ct - 1000, explicitly_stopped=False)
    path.write_text(json.dumps(data))

    code, out, _ = auto(capsys, "-q", "ps")
    assert out.splitlines()[1].split()[:2] == ["svc", "dead"]
    code, out, _ = auto(capsys, "ps", "--json")
    row = json.loads(out)[0]
    assert row["status"] == "dead" and row["pid"] is None

    assert auto(capsys, "stop", "svc")[0] == 0
    assert pid_alive(stranger.pid) and stranger.poll() is None

    data = json.loads(path.read_text())
    data["processes"]["svc"].update(pid=stranger.pid, create_time=real_ct - 1000)
    path.write_text(json.dumps(data))
    code, out, err = auto(capsys, "restart", "svc")
    assert code == 0, err
    new_pid = read_state(auto_home)["processes"]["svc"]["pid"]
    assert new_pid != stranger.pid and pid_alive(new_pid)
    assert pid_alive(stranger.pid)

    assert auto(capsys, "stop", "svc")[0] == 0
    data = json.loads(path.read_text())
    data["processes"]["svc"].update(pid=stranger.pid, create_time=real_ct + 1000)
    path.write_text(json.dumps(data))
    code, out, err = auto(capsys, "remove", "svc")
    assert code == 0, err
    assert "svc" not in read_state(auto_home)["processes"]
    assert pid_alive(stranger.pid) and stranger.poll() is None


def test_start_over_a_recycled_pid_starts_a_fresh_instance(auto_home, capsys, stranger):
    assert auto(capsys, "add", "svc", "sleep 1000", "--no-start")[0] == 0
    path = auto_home / "local" / "state.json"
    data = json.loads(path.read_text())
    data["processes"]["svc"].update(pid=stranger.pid, create_time=None, explicitly_stopped=False)
    path.write_text(json.dumps(data))
    code, out, err = auto(capsys, "start", "svc")
    assert code == 0, err
    entry = read_state(auto_home)["processes"]["svc"]
    assert entry["pid"] != stranger.pid and pid_alive(entry["pid"])
    assert identity.is_ours(entry["pid"], entry["create_time"])
    assert pid_alive(stranger.pid)


def test_proc_reader_agrees_with_psutil(stranger):
    """The /proc fast path computes exactly psutil's create_time (spawn and ps must agree)."""
    for pid in (os.getpid(), stranger.pid, 1):
        assert identity.create_time(pid) == pytest.approx(psutil.Process(pid).create_time(), abs=1e-6)
        assert identity.start_time(pid) == identity.create_time(pid)


def test_start_time_of_a_zombie_is_still_known(zombie):
    pid, ct = zombie
    assert identity.start_time(pid) == pytest.approx(ct, abs=1e-6)


NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"


def _recycled(pid: int, argv: list[str]) -> subprocess.Popen | None:
    """A new process given ``pid`` (the kernel hands out ns_last_pid + 1), or None if
    another process took it first."""
    for _ in range(20):
        with open(NS_LAST_PID, "w") as fh:
            fh.write(str(pid - 1))
        proc = subprocess.Popen(argv, start_new_session=True)
        if proc.pid == pid:
            return proc
        proc.kill()
        proc.wait()
    return None


@pytest.mark.skipif(os.geteuid() != 0 or not os.access(NS_LAST_PID, os.W_OK),
                    reason="choosing the next pid needs root (ns_last_pid)")
def test_a_pid_recycled_within_the_same_second_is_not_ours(auto_home, capsys):
    """The run auto recorded is gone and a stranger got its pid within the same second, so
    its start time in whole seconds is the run's: the stamp (boot id and start time in
    clock ticks, the kernel's resolution) still tells them apart, and ps, stop and the
    watcher leave it alone."""
    assert auto(capsys, "add", "svc", "sleep 31004", "--no-start")[0] == 0
    first = subprocess.Popen(["sleep", "31004"], start_new_session=True)
    ct, stamp = identity.create_time(first.pid), identity.stamp(first.pid)
    first.kill()
    first.wait()
    # The kernel counts start times in clock ticks (10 ms at USER_HZ 100): the stranger comes
    # a few ticks later, still within the same second.
    time.sleep(0.05)
    stranger = _recycled(first.pid, ["sleep", "31005"])
    if stranger is None:
        pytest.skip("the pid was taken by another process meanwhile")
    try:
        assert identity.create_time(stranger.pid) is not None
        assert abs(identity.create_time(stranger.pid) - ct) < 1.0  # the same second
        assert not identity.is_ours(stranger.pid, ct, stamp)
        assert identity.is_ours(stranger.pid, identity.create_time(stranger.pid),
                                identity.stamp(stranger.pid))
        path = auto_home / "local" / "state.json"
        data = json.loads(path.read_text())
        data["processes"]["svc"].update(pid=stranger.pid, create_time=ct, stamp=stamp,
                                        explicitly_stopped=False)
        path.write_text(json.dumps(data))
        code, out, _ = auto(capsys, "ps", "--json")
        assert json.loads(out)[0]["status"] == "dead"
        assert auto(capsys, "stop", "svc")[0] == 0
        assert stranger.poll() is None
        code, _, err = auto(capsys, "restart", "svc")  # the watcher starts, finds no run of svc
        assert code == 0, err
        assert read_state(auto_home)["processes"]["svc"]["pid"] != stranger.pid
        assert auto(capsys, "remove", "svc")[0] == 0
        assert stranger.poll() is None and pid_alive(stranger.pid)
    finally:
        stranger.kill()
        stranger.wait()
