"""Concurrent clients under a running watcher.

8 worker processes each run 50 random lifecycle operations (add, start, stop, restart, update,
remove) through the lifecycle API on 10 shared names, while a watcher runs, a reader parses
``state.json`` continuously and a sampler scans every process for each service's marker
argument. Checked:

- every read of ``state.json`` parses;
- no worker ever sees anything but an ``AutoError`` (no crash);
- at the end the definitions equal a replay of the operations that succeeded (a field's final
  value was written by one of its last successful writers: no write that started after it
  ended changed the field again);
- never two live copies of one service, at any sample; at the end every service that is not
  stopped runs exactly once and every stopped or removed one runs zero times.

Service ``nK`` runs ``exec sleep 3000K``: its marker is the argv ``["sleep", "3000K"]``.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import ROOT, pid_alive, procs_with_argv, read_state, sleeps, wait_until

WORKERS = 8
OPS = 50
NAMES = [f"n{i}" for i in range(10)]

WORKER = r"""
import json, random, sys, time
from auto_core.errors import AutoError
from auto_core.lifecycle import Api
from auto_core.store.paths import Home

home, seed, count, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
names = [f"n{i}" for i in range(10)]
rng = random.Random(seed)
api = Api(Home.resolve(home), warn=lambda m: None)
with open(out, "w") as fh:
    for seq in range(count):
        op = rng.choice(["add", "add", "start", "start", "start", "stop", "stop", "restart", "restart",
                         "update", "update", "remove"])
        name = rng.choice(names)
        rec = {"worker": seed, "seq": seq, "op": op, "name": name}
        if op in ("add", "update"):
            rec["port"] = rng.randrange(20000, 60000)
            rec["token"] = f"{seed}-{seq}"
        rec["t0"] = time.monotonic()
        try:
            if op == "add":
                out_ = api.add(name, f"exec sleep {30000 + int(name[1:])}", workdir="/",
                               port=rec["port"], env={"TOKEN": rec["token"]}, start=False,
                               stop_timeout=5, backoff_base=0.1, backoff_max=1)
                outs = [out_]
            elif op == "update":
                outs = [api.update(name, port=rec["port"], env={"TOKEN": rec["token"]})]
            elif op == "remove":
                outs = [api.remove(name)]
            else:
                outs = getattr(api, op)([name])
            rec["ok"] = all(o.ok for o in outs)
            rec["msg"] = "; ".join(o.message for o in outs)
        except AutoError as exc:
            rec["ok"], rec["msg"] = False, str(exc)
        except BaseException as exc:
            rec["ok"], rec["msg"], rec["crash"] = False, repr(exc), True
        rec["t1"] = time.monotonic()
        fh.write(json.dumps(rec) + "\n")
        fh.flush()
"""


def marker_copies() -> dict[str, list[int]]:
    """Live processes of this AUTO_HOME whose argv is exactly ``sleep 3000K``, by name."""
    return {f"n{n - 30000}": pids for n, pids in sleeps(os.environ["AUTO_HOME"]).items()
            if 30000 <= n < 30000 + len(NAMES)}


class Background(threading.Thread):
    def __init__(self, fn, pause: float):
        super().__init__(daemon=True)
        self.fn, self.pause = fn, pause
        self.stop = threading.Event()
        self.count = 0

    def run(self):
        while not self.stop.is_set():
            self.fn()
            self.count += 1
            self.stop.wait(self.pause)


def last_writers(ops: list[dict], field: str) -> list[dict]:
    """Successful writes of ``field`` that no later successful write (started after it ended)
    superseded: the only ones whose value may be final."""
    writes = [o for o in ops if o["ok"] and field in o]
    return [w for w in writes if not any(o["t0"] > w["t1"] for o in writes)]


@pytest.mark.slow
def test_concurrent_clients_with_watcher_reader_and_sampler(home, tmp_path, watcher):
    home.local.mkdir(parents=True)
    env = dict(os.environ, AUTO_HOME=str(home.root))
    w = watcher()

    bad_reads: list[str] = []

    def read_state():
        try:
            raw = home.state_file.read_bytes()
        except FileNotFoundError:
            return
        try:
            json.loads(raw)
        except ValueError as exc:
            bad_reads.append(f"{exc}: {raw[:80]!r}")

    doubles: list[dict] = []

    def sample():
        many = {n: p for n, p in marker_copies().items() if len(p) > 1}
        if many:
            doubles.append(many)

    crashes = []

    def crash():
        """Kill one running service now and then, so the watcher restarts things meanwhile."""
        live = [p for pids in marker_copies().values() for p in pids]
        if live:
            victim = live[len(crashes) * 7919 % len(live)]
            try:
                os.kill(victim, signal.SIGKILL)
                crashes.append(victim)
            except ProcessLookupError:
                pass

    reader, sampler, killer = Background(read_state, 0.002), Background(sample, 0.002), Background(crash, 0.15)
    for thread in (reader, sampler, killer):
        thread.start()
    try:
        outs = [tmp_path / f"worker{w}.jsonl" for w in range(WORKERS)]
        procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(home.root), str(w), str(OPS), str(outs[w])],
                                  env=env, cwd=ROOT) for w in range(WORKERS)]
        for p in procs:
            assert p.wait(timeout=400) == 0
    finally:
        for thread in (reader, sampler, killer):
            thread.stop.set()
            thread.join()
    ops = [json.loads(line) for path in outs for line in path.read_text().splitlines()]
    Path(tmp_path / "ops.json").write_text(json.dumps(ops))
    assert len(ops) == WORKERS * OPS
    assert [o for o in ops if o.get("crash")] == []
    assert bad_reads == [], bad_reads[:3]
    assert reader.count > 100 and sampler.count > 20
    assert doubles == [], f"two live copies seen: {doubles[:3]}"

    # Replay: definitions.
    final = json.loads(home.state_file.read_text())["processes"]
    for name in NAMES:
        mine = [o for o in ops if o["name"] == name]
        for o in mine:  # fields each successful op wrote
            if o["op"] == "add":
                o["exists"], o["def"] = True, (o["port"], o["token"])
            elif o["op"] == "remove":
                o["exists"] = False
            elif o["op"] == "update":
                o["def"] = (o["port"], o["token"])
        exists = {w["exists"] for w in last_writers(mine, "exists")}
        assert (name in final) in exists or not exists and name not in final, (name, exists)
        if name in final:
            got = (final[name]["port"], final[name]["env"]["TOKEN"])
            allowed = {w["def"] for w in last_writers(mine, "def")}
            assert got in allowed, (name, got, allowed)

    # Quiescent end: the watcher brings back every service that is not stopped, exactly once.
    def settled():
        procs_now = json.loads(home.state_file.read_text())["processes"]
        copies = marker_copies()
        return all(len(copies.get(n, [])) == (0 if n not in procs_now or procs_now[n].get("explicitly_stopped") else 1)
                   for n in NAMES)

    wait_until(settled, 15, message="one copy of each running service, none of the others")
    text = w.text()
    assert w.proc.poll() is None, text
    assert "Traceback" not in text, text[-3000:]
    print(f"\nconcurrency: {len(ops)} ops, {sum(o['ok'] for o in ops)} succeeded, "
          f"{reader.count} reads, {sampler.count} process samples, {len(crashes)} crashes, "
          f"{text.count(' (automatic restart)')} watcher restarts")
    Path(tmp_path / "ops.json").write_text(json.dumps(ops))


def test_a_remove_requested_while_the_watcher_starts_the_service_leaves_no_copy(home):
    """Another face's ``remove`` lands after the watcher spawned a requested start and before
    it recorded the run: the remove wins, the copy just spawned is stopped and the definition
    goes, instead of a run without a definition living on. The watcher runs in this process
    (holding the watch lock) so that the remove can be placed exactly in that window."""
    from auto_core.lifecycle import Api
    from auto_core.store import watchlock
    from auto_core.supervisor.watch import Watcher

    Api(home, warn=lambda m: None).add("svc", "exec sleep 30998", workdir="/", start=False)
    lock = watchlock.acquire(home)
    watcher = Watcher(home, out=io.StringIO())
    spawned: list[int] = []
    removal: dict = {}

    def remove():
        try:
            removal["outcome"] = Api(home, warn=lambda m: None, say=lambda m: None).remove("svc")
        except BaseException as exc:  # reported by the assertion below
            removal["error"] = exc

    remover = threading.Thread(target=remove, daemon=True)
    real_launch = watcher.system.launch

    def launch(name, entry):
        launched = real_launch(name, entry)
        spawned.append(launched.pid)
        remover.start()
        wait_until(lambda: (read_state(home.root)["processes"]["svc"].get("request") or {}).get("op") == "remove",
                   5, message="the remove request written")
        return launched

    watcher.system.launch = launch
    done = threading.Event()

    def loop():
        while not done.is_set():
            watcher.dead_pids.extend(watcher.notifier.wait(min(watcher.iterate(), 0.05)))

    looper = threading.Thread(target=loop, daemon=True)
    looper.start()
    try:
        outcomes = Api(home, warn=lambda m: None, say=lambda m: None).start(["svc"], wait=0)
        assert spawned, f"the watcher did not spawn svc: {outcomes}"
        remover.join(30)
        assert not remover.is_alive()
    finally:
        done.set()
        looper.join(10)
        watcher.close()
        os.close(lock)
    assert [(o.ok, o.message) for o in outcomes] == [(False, "svc: another command came first")]
    assert "error" not in removal, removal
    assert removal["outcome"].ok and removal["outcome"].message.startswith("removed svc ")
    assert len(spawned) == 1
    assert not pid_alive(spawned[0])
    assert not procs_with_argv(["sleep", "30998"])
    assert "svc" not in read_state(home.root)["processes"]
