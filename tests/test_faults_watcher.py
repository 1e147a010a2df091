"""The watcher under faults: killed at random moments, a recycled pid, disk faults, a crash loop.

Killed at random moments: the watcher is SIGKILLed while services crash and restart and
other faces stop, start, remove and add services (through it: it is the one that spawns and
signals); then a new watcher starts. Within 5 s every service that is not stopped runs
exactly once, no stopped service runs, and nothing of a removed service remains.

Each test starts its own watcher before the first call that needs one, so no face starts
one on demand; services that exit on purpose are added with ``wait=0``.

Service ``sK`` runs ``exec sleep 40000+K``; that argv is its marker.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, pid_alive, read_state, wait_until

from auto_core.lifecycle import Api
from auto_core.store import state

ROUNDS = 50
SETTLE = 5.0  # the bound for a new watcher to restore the invariant


class Watcher:
    """A real ``python -m auto_core watch`` whose output goes to a file."""

    def __init__(self, home: Path, out: Path):
        self.out = out
        self._fh = open(out, "ab")
        env = dict(os.environ, AUTO_HOME=str(home))
        self.proc = subprocess.Popen([sys.executable, "-m", "auto_core", "watch"], stdout=self._fh,
                                     stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.mark = out.stat().st_size
        wait_until(lambda: b"watcher started" in out.read_bytes()[self.mark:] or self.proc.poll() is not None,
                   15, message="watcher started")
        assert self.proc.poll() is None, self.text()

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._fh.close()


def _ours(pid: str) -> bool:
    """Started under this test's AUTO_HOME (another run of this suite may be going on)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return f"AUTO_HOME={os.environ['AUTO_HOME']}".encode() in fh.read().split(b"\0")
    except OSError:
        return False


def markers() -> dict[int, list[int]]:
    """Live ``sleep 40000+K`` processes of this AUTO_HOME, by K."""
    found: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if len(argv) != 3 or argv[0] != b"sleep" or not argv[1].isdigit():
            continue
        k = int(argv[1]) - 40000
        if 0 <= k < 1000 and pid_alive(int(entry)) and _ours(entry):
            found.setdefault(k, []).append(int(entry))
    return found


def violations(home, removed: set[int]) -> list[str]:
    procs = read_state(home.root)["processes"]
    live = markers()
    bad = []
    for name, entry in procs.items():
        k = int(name[1:])
        want = 0 if entry.get("explicitly_stopped") else 1
        if len(live.get(k, [])) != want:
            bad.append(f"{name}: {len(live.get(k, []))} copies, want {want}")
    bad += [f"s{k} (removed): {len(live[k])} left" for k in removed if live.get(k)]
    return bad


def describe(home, bad: list[str]) -> str:
    """The recorded pid of each violating service and what /proc says about it."""
    procs = read_state(home.root)["processes"]
    lines = []
    for item in bad:
        name = item.split(":")[0].split()[0]
        entry = procs.get(name, {})
        pid = entry.get("pid")
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[:3]
        except OSError:
            stat = "gone"
        lines.append(f"{name}: pid {pid} /proc: {stat} starting_since {entry.get('starting_since')}")
    return "\n".join(lines)


@pytest.mark.slow
def test_watcher_killed_at_random_points(home, tmp_path):
    rng = random.Random(2)
    api = Api(home, warn=lambda m: None, say=lambda m: None)
    out = tmp_path / "watch.out"
    next_k = 0

    def add_one(start: bool = True) -> None:
        nonlocal next_k
        api.add(f"s{next_k}", f"exec sleep {40000 + next_k}", workdir="/", backoff_base=0.05,
                backoff_max=1, stop_timeout=2, start=start, wait=0)
        next_k += 1

    removed: set[int] = set()
    watcher = Watcher(home.root, out)
    for _ in range(6):
        add_one()
    stats = {"rounds": 0, "service_kills": 0, "api_ops": 0, "worst_settle_s": 0.0}
    try:
        for rnd in range(ROUNDS):
            deadline = time.monotonic() + rng.uniform(0.1, 1.0)
            while time.monotonic() < deadline:
                live = [p for pids in markers().values() for p in pids]
                if live and rng.random() < 0.7:
                    try:
                        os.kill(rng.choice(live), signal.SIGKILL)
                        stats["service_kills"] += 1
                    except ProcessLookupError:
                        pass
                if rng.random() < 0.15:
                    names = api.names()
                    op = rng.choice(["stop", "start", "remove-add"])
                    name = rng.choice(names)
                    if op == "remove-add":
                        if api.remove(name).ok:
                            removed.add(int(name[1:]))
                        add_one()
                    elif op == "start":
                        api.start([name], wait=0)
                    else:
                        api.stop([name])
                    stats["api_ops"] += 1
                time.sleep(rng.uniform(0.0, 0.08))
            watcher.kill()  # SIGKILL, at a random moment of its work
            # Deaths meanwhile go unseen until the next watcher.
            live = [p for pids in markers().values() for p in pids]
            if live and rng.random() < 0.5:
                os.kill(rng.choice(live), signal.SIGKILL)
                stats["service_kills"] += 1
            watcher = Watcher(home.root, out)
            t0 = time.monotonic()  # the 5 s count from the moment the new watcher runs
            try:
                wait_until(lambda: not violations(home, removed), SETTLE, step=0.05,
                           message=f"round {rnd}: invariant")
            except AssertionError:
                bad = violations(home, removed)
                raise AssertionError(f"round {rnd}: {bad}\n{describe(home, bad)}\n"
                                     f"{watcher.text()[-4000:]}") from None
            stats["worst_settle_s"] = max(stats["worst_settle_s"], round(time.monotonic() - t0, 2))
            stats["rounds"] += 1
    finally:
        watcher.kill()
    text = out.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    print(f"\nwatcher-kill report: {stats}")
    assert stats["rounds"] == ROUNDS and stats["service_kills"] > ROUNDS


def test_watcher_never_signals_a_recycled_pid(home, tmp_path):
    """A recycled pid: an entry whose pid now belongs to an unrelated process (wrong
    create time) is a dead service to the watcher: it starts a fresh copy and never signals
    the unrelated process."""
    from test_faults_pidreuse import Sentinel

    sentinel = Sentinel(tmp_path)
    api = Api(home, warn=lambda m: None)
    try:
        api.add("svc", "exec sleep 40999", workdir="/", start=False)
        data = read_state(home.root)
        data["processes"]["svc"].update(pid=sentinel.pid, create_time=sentinel.create_time - 3600,
                                        explicitly_stopped=False)
        home.state_file.write_text(json.dumps(data))
        watcher = Watcher(home.root, tmp_path / "watch.out")
        try:
            copy = wait_until(lambda: markers().get(999), 10, message="a fresh copy")
            # The copy runs from its spawn on; the watcher records its pid just after.
            wait_until(lambda: read_state(home.root)["processes"]["svc"]["pid"] == copy[0], 10,
                       message="the fresh copy recorded")
            assert copy[0] != sentinel.pid
            assert api.stop(["svc"])[0].ok
            wait_until(lambda: not markers().get(999), 10, message="svc stopped")
        finally:
            watcher.kill()
        sentinel.assert_untouched()
    finally:
        sentinel.close()


@pytest.mark.slow
def test_watcher_survives_disk_faults(home, tmp_path):
    """Disk faults: a service whose log cannot grow (SIGXFSZ), a log directory
    replaced by a file, state.json replaced by a directory and then garbage: the watcher keeps
    running, records what it can, and loses no definition."""
    api = Api(home, warn=lambda m: None, say=lambda m: None)
    watcher = Watcher(home.root, tmp_path / "watch.out")
    try:
        api.add("chatty", "ulimit -f 1; while :; do echo 0123456789abcdef; done", workdir="/",
                backoff_base=0.2, backoff_max=1, wait=0)
        api.add("steady", "exec sleep 40998", workdir="/", wait=0)
        api.add("nolog", "exec sleep 40997", workdir="/", start=False, backoff_base=0.2, backoff_max=1)
        # 1. RLIMIT_FSIZE in the child: killed by SIGXFSZ, recorded, restarted.
        wait_until(lambda: (read_state(home.root)["processes"]["chatty"].get("last_exit") or {}).get("signal")
                   == signal.SIGXFSZ, 10, message="SIGXFSZ recorded")
        wait_until(lambda: re.search(r"exit chatty pid \d+ killed by SIGXFSZ", watcher.text()), 10,
                   message="the watcher's exit line")
        # 2. The log directory of a service the watcher must start is a file.
        logs = home.root / "output" / "logs"
        (logs / "nolog").write_text("in the way\n")
        with state.transaction(home) as data:  # as if it had crashed: the watcher starts it
            data["processes"]["nolog"]["explicitly_stopped"] = False
        wait_until(lambda: "cannot create the log file for nolog" in watcher.text(), 10,
                   message="the watcher's log-file error")
        (logs / "nolog").unlink()
        wait_until(lambda: markers().get(997), 10, message="nolog started once its log dir can exist")
        # 3. state.json replaced by a directory, then by garbage: falls back to the backup.
        steady_pid = read_state(home.root)["processes"]["steady"]["pid"]
        bak = home.state_bak.read_bytes()
        # The swaps hold the state lock: the crash-looping service keeps the watcher writing,
        # and a write landing between unlink and mkdir would undo the fault before it exists.
        with state.locked(home):
            home.state_file.unlink()
            home.state_file.mkdir()
        wait_until(lambda: "is a directory" in watcher.text(), 10, message="the watcher notices")
        with state.locked(home):
            # (a watcher write may already have moved the directory aside and written a file)
            home.state_file.rmdir() if home.state_file.is_dir() else home.state_file.unlink()
            home.state_file.write_bytes(b"\x00\x01 not json")
        wait_until(lambda: "not valid JSON" in watcher.text(), 10, message="the watcher notices garbage")
        assert watcher.proc.poll() is None
        assert pid_alive(steady_pid), "a state fault made the watcher touch a running service"
        os.kill(steady_pid, signal.SIGKILL)  # a crash while the state file is garbage
        wait_until(lambda: (m := markers().get(998)) and m != [steady_pid], 15,
                   message="steady restarted from the backup's definitions")
        names = set(json.loads(bak)["processes"])
        procs = read_state(home.root)["processes"]
        assert set(procs) == names == {"chatty", "steady", "nolog"}
        assert list(home.local.glob("state.json.corrupt-*")), "the broken file was not kept"
        assert watcher.proc.poll() is None
    finally:
        watcher.kill()
    assert "Traceback" not in watcher.text(), watcher.text()[-3000:]


@pytest.mark.slow
def test_crash_loop_backoff_reaches_the_cap(home, tmp_path):
    """A crash loop in small: a service that exits at once; delays double up to backoff_max
    and stay there (the full soak with CPU numbers is bench/bench_crashloop.py)."""
    api = Api(home, warn=lambda m: None, say=lambda m: None)
    watcher = Watcher(home.root, tmp_path / "watch.out")
    try:
        api.add("crashy", "exit 3", workdir="/", backoff_base=0.05, backoff_max=1, wait=0)
        wait_until(lambda: len(re.findall(r"exit crashy .*restarting in ([\d.]+) s", watcher.text())) >= 9,
                   20, message="8 crash-loop restarts")
    finally:
        watcher.kill()
    delays = [float(d) for d in re.findall(r"exit crashy .*restarting in ([\d.]+) s", watcher.text())]
    # fmt_seconds prints one decimal: 0.05 s shows as 0.1 (or 0 when it is already due)
    assert delays[1:5] == [0.1, 0.2, 0.4, 0.8], delays
    assert all(d == 1 for d in delays[5:]), delays
    assert read_state(home.root)["processes"]["crashy"]["restart_attempt"] >= 8
