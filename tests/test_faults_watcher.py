"""The watcher under faults: killed at random moments, a recycled pid, disk faults, a crash loop.

Killed at random moments: the watcher is SIGKILLed while services crash and restart and
other faces stop, start, remove and add services (through it: it is the one that spawns and
signals); then a new watcher starts. Within 5 s every service that is not stopped runs
exactly once, no stopped service runs, and nothing of a removed service remains.

Each test starts its own watcher (the ``watcher`` fixture) before the first call that needs
one, so no face starts one on demand; services that exit on purpose are added with ``wait=0``.

Service ``sK`` runs ``exec sleep 40000+K``; that argv is its marker.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from pathlib import Path

import pytest
from helpers import pid_alive, read_state, sleeps, wait_until

from auto_core.lifecycle import Api
from auto_core.store import state

ROUNDS = 50
SETTLE = 5.0  # the bound for a new watcher to restore the invariant


def markers() -> dict[int, list[int]]:
    """Live ``sleep 40000+K`` processes of this AUTO_HOME, by K."""
    return {n - 40000: pids for n, pids in sleeps(os.environ["AUTO_HOME"]).items() if 40000 <= n < 41000}


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
def test_watcher_killed_at_random_points(home, tmp_path, watcher):
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
    w = watcher(out=out)
    for _ in range(6):
        add_one()
    stats = {"rounds": 0, "service_kills": 0, "api_ops": 0, "worst_settle_s": 0.0}
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
        w.kill()  # SIGKILL, at a random moment of its work
        # Deaths meanwhile go unseen until the next watcher.
        live = [p for pids in markers().values() for p in pids]
        if live and rng.random() < 0.5:
            os.kill(rng.choice(live), signal.SIGKILL)
            stats["service_kills"] += 1
        w = watcher(out=out)
        t0 = time.monotonic()  # the 5 s count from the moment the new watcher runs
        try:
            wait_until(lambda: not violations(home, removed), SETTLE, step=0.05,
                       message=f"round {rnd}: invariant")
        except AssertionError:
            bad = violations(home, removed)
            raise AssertionError(f"round {rnd}: {bad}\n{describe(home, bad)}\n"
                                 f"{w.text()[-4000:]}") from None
        stats["worst_settle_s"] = max(stats["worst_settle_s"], round(time.monotonic() - t0, 2))
        stats["rounds"] += 1
    w.kill()
    text = out.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    print(f"\nwatcher-kill report: {stats}")
    assert stats["rounds"] == ROUNDS and stats["service_kills"] > ROUNDS


def test_watcher_never_signals_a_recycled_pid(home, sentinel, watcher):
    """A recycled pid: an entry whose pid now belongs to an unrelated process (wrong
    create time) is a dead service to the watcher: it starts a fresh copy and never signals
    the unrelated process."""
    api = Api(home, warn=lambda m: None)
    api.add("svc", "exec sleep 40999", workdir="/", start=False)
    data = read_state(home.root)
    data["processes"]["svc"].update(pid=sentinel.pid, create_time=sentinel.create_time - 3600,
                                    explicitly_stopped=False)
    home.state_file.write_text(json.dumps(data))
    w = watcher()
    copy = wait_until(lambda: markers().get(999), 10, message="a fresh copy")
    # The copy runs from its spawn on; the watcher records its pid just after.
    wait_until(lambda: read_state(home.root)["processes"]["svc"]["pid"] == copy[0], 10,
               message="the fresh copy recorded")
    assert copy[0] != sentinel.pid
    assert api.stop(["svc"])[0].ok
    wait_until(lambda: not markers().get(999), 10, message="svc stopped")
    w.kill()
    sentinel.assert_untouched()


@pytest.mark.slow
def test_watcher_survives_disk_faults(home, watcher):
    """Disk faults: a service whose log cannot grow (SIGXFSZ), a log directory
    replaced by a file, state.json replaced by a directory and then garbage: the watcher keeps
    running, records what it can, and loses no definition."""
    api = Api(home, warn=lambda m: None, say=lambda m: None)
    w = watcher()
    api.add("chatty", "ulimit -f 1; while :; do echo 0123456789abcdef; done", workdir="/",
            backoff_base=0.2, backoff_max=1, wait=0)
    api.add("steady", "exec sleep 40998", workdir="/", wait=0)
    api.add("nolog", "exec sleep 40997", workdir="/", start=False, backoff_base=0.2, backoff_max=1)
    # 1. RLIMIT_FSIZE in the child: killed by SIGXFSZ, recorded, restarted.
    wait_until(lambda: (read_state(home.root)["processes"]["chatty"].get("last_exit") or {}).get("signal")
               == signal.SIGXFSZ, 10, message="SIGXFSZ recorded")
    wait_until(lambda: re.search(r"exit chatty pid \d+ killed by SIGXFSZ", w.text()), 10,
               message="the watcher's exit line")
    # 2. The log directory of a service the watcher must start is a file.
    logs = home.root / "output" / "logs"
    (logs / "nolog").write_text("in the way\n")
    with state.transaction(home) as data:  # as if it had crashed: the watcher starts it
        data["processes"]["nolog"]["explicitly_stopped"] = False
    wait_until(lambda: "cannot create the log file for nolog" in w.text(), 10,
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
    wait_until(lambda: "is a directory" in w.text(), 10, message="the watcher notices")
    with state.locked(home):
        # (a watcher write may already have moved the directory aside and written a file)
        home.state_file.rmdir() if home.state_file.is_dir() else home.state_file.unlink()
        home.state_file.write_bytes(b"\x00\x01 not json")
    wait_until(lambda: "not valid JSON" in w.text(), 10, message="the watcher notices garbage")
    assert w.proc.poll() is None
    assert pid_alive(steady_pid), "a state fault made the watcher touch a running service"
    os.kill(steady_pid, signal.SIGKILL)  # a crash while the state file is garbage
    wait_until(lambda: (m := markers().get(998)) and m != [steady_pid], 15,
               message="steady restarted from the backup's definitions")
    names = set(json.loads(bak)["processes"])
    procs = read_state(home.root)["processes"]
    assert set(procs) == names == {"chatty", "steady", "nolog"}
    assert list(home.local.glob("state.json.corrupt-*")), "the broken file was not kept"
    assert w.proc.poll() is None
    w.kill()
    assert "Traceback" not in w.text(), w.text()[-3000:]


@pytest.mark.slow
def test_crash_loop_backoff_reaches_the_cap(home, watcher):
    """A crash loop in small: a service that exits at once; delays double up to backoff_max
    and stay there (the full soak with CPU numbers is bench/bench_crashloop.py)."""
    api = Api(home, warn=lambda m: None, say=lambda m: None)
    w = watcher()
    api.add("crashy", "exit 3", workdir="/", backoff_base=0.05, backoff_max=1, wait=0)
    wait_until(lambda: len(re.findall(r"exit crashy .*restarting in ([\d.]+) s", w.text())) >= 9,
               20, message="8 crash-loop restarts")
    w.kill()
    delays = [float(d) for d in re.findall(r"exit crashy .*restarting in ([\d.]+) s", w.text())]
    # fmt_seconds prints one decimal: 0.05 s shows as 0.1 (or 0 when it is already due)
    assert delays[1:5] == [0.1, 0.2, 0.4, 0.8], delays
    assert all(d == 1 for d in delays[5:]), delays
    assert read_state(home.root)["processes"]["crashy"]["restart_attempt"] >= 8
