"""Core CLI benchmark: auto's CLI side by side with supervisorctl, each managing the same N
(200) services of ``sleep 100000``, in one run.

Both daemons run before anything is timed: auto's watcher (``auto watch``, started by this
bench) and supervisord (``startsecs=0``). What is timed is the wall clock of the real command as
a subprocess, with the CPU of that command itself (not its daemon's) beside it; the two
managers' commands alternate within every round, so both see the same load. A first round
warms the page cache and is not counted. Median (min, max) over ``--rounds``:

- start one: ``auto start svc000 --wait 0`` vs ``supervisorctl start svc000`` (stopped just
  before, untimed);
- start all: ``auto start-all --wait 0`` vs ``supervisorctl start all``, all N stopped before;
- stop all: ``auto stop-all`` vs ``supervisorctl stop all``, all N running before;
- ps: ``auto ps`` vs ``supervisorctl status``, all N running (three of each per round);
- auto alone: ``auto start svc000 --wait 0`` when no watcher runs (the command brings one up;
  the other services stopped), measured ``--cold`` times before the rest; ``auto ps --json``,
  ``auto ps`` with all N stopped, ``auto --version``; and two floors for start-all: N bare
  posix_spawns of ``sh -c 'exec sleep'`` and of ``sleep`` itself.

Run: .venv/bin/python bench/bench_cli.py [--n 200] [--rounds 10] [--cold 3] [--json]
Needs the ``bench`` extra (supervisor). Everything runs in temp dirs; every process it starts
is stopped at the end, also on a failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from harness import (  # bench/ is the script's directory
    IDLE_CMD,
    AutoWatcher,
    Cleanup,
    Supervisord,
    Timeout,
    define_auto,
    end_any_watcher,
    live_children,
    new_tag,
    on_signals_exit,
    supervisord_exe,
    wait_for,
)
from harness import clean_env as harness_env
from harness import kill_tagged as kill_bench_tag

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
AUTO = str(BIN / "auto")
SLEEP = IDLE_CMD


def timed(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    r = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - started
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return took


def timed_cpu(argv: list[str], env: dict) -> tuple[float, float]:
    """(wall ms, CPU user+sys ms of the command itself; its detached services are not counted)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(argv, env) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


# The same 200 starts with no bookkeeping: a fresh Python that posix_spawns them in new
# sessions, output to a file, then exits. Two floors: `sh -c 'exec sleep'` (a command line run
# the usual way: two execs per service, as auto's prologue), and `sleep` exec'd directly (one
# exec, as auto now spawns a plain command). auto's start-all is measured against both in the
# same rounds.
FLOOR = """
import os, shutil, sys
n, out, direct = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "direct"
fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
acts = [(os.POSIX_SPAWN_DUP2, fd, 1), (os.POSIX_SPAWN_DUP2, fd, 2)]
path, argv = (shutil.which("sleep"), ["sleep", "100000"]) if direct else ("/bin/sh", ["/bin/sh", "-c", "exec sleep 100000"])
for i in range(n):
    os.posix_spawn(path, argv, os.environ, file_actions=acts, setsid=True)
"""


def floor_round(n: int, env: dict, tmp: Path, how: str = "sh") -> tuple[float, float]:
    """(wall ms, CPU ms) of one floor run; its sleeps are killed after."""
    sample = timed_cpu([sys.executable, "-c", FLOOR, str(n), str(tmp / "floor.out"), how], env)
    kill_bench_tag(str(tmp), key="BENCH_FLOOR")
    return sample


def quiet(argv: list[str], env: dict) -> None:
    """An untimed step; a failure ends the bench."""
    r = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")


def expect_children(pid: int, count: int, what: str) -> None:
    """The daemon ``pid`` has exactly ``count`` live children (soon after a command returned)."""
    try:
        wait_for(lambda: live_children(pid) == count, 5, f"{what}: {count} live services", step=0.01)
    except Timeout as exc:
        raise SystemExit(f"{exc} (there are {live_children(pid)})") from None


def bench(n: int, rounds: int, cold: int, ps_per_round: int, tmp: Path) -> dict[str, list[tuple[float, float]]]:
    """Samples (wall ms, CPU ms of the command) per measurement key."""
    samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
    tag = new_tag("cli")
    home = tmp / "auto-home"
    env = harness_env(tag, AUTO_HOME=str(home))
    floor_env = harness_env(tag, BENCH_FLOOR=str(tmp))
    with Cleanup() as cleanup:
        cleanup.push("kill every process the bench started", lambda: kill_bench_tag(tag))
        cleanup.push("stop a watcher started on demand", lambda: end_any_watcher(home))
        names = [f"svc{i:03d}" for i in range(n)]
        define_auto(home, [(name, SLEEP, {}) for name in names], tag, tmp)
        first = names[0]

        # auto start with no watcher: the command brings one up (every service stopped).
        for _ in range(cold):
            samples["auto_start_cold"].append(timed_cpu([AUTO, "start", first, "--wait", "0"], env))
            quiet([AUTO, "stop", first], env)
            end_any_watcher(home)

        watcher = AutoWatcher(home, tag, tmp / "watch.out")
        cleanup.push("stop the watcher", watcher.stop)
        watcher.start()
        quiet([AUTO, "start-all", "--wait", "0"], env)
        expect_children(watcher.pid, n, "auto start-all")

        sv = Supervisord(tmp / "supervisor", tag, [(name, SLEEP) for name in names])
        if supervisord_exe():
            cleanup.push("stop supervisord", sv.stop)
            sv.start()
            wait_for(lambda: live_children(sv.pid) >= n, 120, f"{n} programs of supervisord", step=0.1)
            wait_for(lambda: sv.running() == n, 60, f"{n} RUNNING in supervisorctl status", step=0.2)
        else:
            sv = None

        for r in range(rounds + 1):
            keep = r > 0  # round 0 warms the page cache

            def take(key: str, argv: list[str], keep: bool = keep) -> None:
                sample = timed_cpu(argv, env)
                if keep:
                    samples[key].append(sample)

            def both(auto_step, sv_step, r: int = r) -> None:
                """The two managers' steps, in turns: auto first in even rounds, supervisorctl in odd."""
                steps = [auto_step] + ([sv_step] if sv else [])
                for step in (steps if r % 2 == 0 else steps[::-1]):
                    step()

            def auto_start() -> None:
                quiet([AUTO, "stop", first], env)
                take("auto_start", [AUTO, "start", first, "--wait", "0"])
                expect_children(watcher.pid, n, "auto start")

            def sv_start() -> None:
                sv.ctl_run("stop", first, check=True)
                take("sv_start", [*sv.ctl, "start", first])
                expect_children(sv.pid, n, "supervisorctl start")

            def auto_stop_all() -> None:
                take("auto_stop_all", [AUTO, "stop-all"])
                expect_children(watcher.pid, 0, "auto stop-all")

            def sv_stop_all() -> None:
                take("sv_stop_all", [*sv.ctl, "stop", "all"])
                expect_children(sv.pid, 0, "supervisorctl stop all")

            def auto_start_all() -> None:
                take("auto_start_all", [AUTO, "start-all", "--wait", "0"])
                expect_children(watcher.pid, n, "auto start-all")

            def sv_start_all() -> None:
                take("sv_start_all", [*sv.ctl, "start", "all"])
                expect_children(sv.pid, n, "supervisorctl start all")

            both(auto_start, sv_start)
            for _ in range(ps_per_round):
                both(lambda: take("auto_ps", [AUTO, "ps"]), lambda: take("sv_status", [*sv.ctl, "status"]))
            take("auto_ps_json", [AUTO, "ps", "--json"])
            take("auto_version", [AUTO, "--version"])
            both(auto_stop_all, sv_stop_all)
            take("auto_ps_stopped", [AUTO, "ps"])
            for how in ("sh", "direct"):
                sample = floor_round(n, floor_env, tmp, how)
                if keep:
                    samples[f"floor_{how}"].append(sample)
            both(auto_start_all, sv_start_all)
    return samples


def stats(values: list[tuple[float, float]]) -> dict:
    walls = sorted(w for w, _ in values)
    return {"median": round(statistics.median(walls), 1), "min": round(walls[0], 1), "max": round(walls[-1], 1),
            "cpu": round(statistics.median(c for _, c in values), 1), "n": len(walls)}


ROWS = [
    # (label, auto key, supervisorctl label, supervisorctl key, target ratio)
    ("start one service (watcher running)", "auto_start", "supervisorctl start NAME", "sv_start", 0.5),
    ("start-all, N stopped", "auto_start_all", "supervisorctl start all", "sv_start_all", 0.5),
    ("stop-all, N running", "auto_stop_all", "supervisorctl stop all", "sv_stop_all", None),
    ("ps, N running", "auto_ps", "supervisorctl status", "sv_status", 0.4),
    ("start one service, no watcher running (brings it up)", "auto_start_cold", None, None, None),
    ("ps --json, N running", "auto_ps_json", None, None, None),
    ("ps, N stopped", "auto_ps_stopped", None, None, None),
    ("--version", "auto_version", None, None, None),
    ("floor: N bare spawns of sh -c 'exec sleep'", "floor_sh", None, None, None),
    ("floor: N bare spawns of sleep itself", "floor_direct", None, None, None),
]


def report(res: dict, n: int) -> str:
    def cell(s: dict | None) -> str:
        return "-" if not s else f"{s['median']} ({s['min']}-{s['max']}; cpu {s['cpu']})"

    out = [f"services: {n}, rounds: {res['rounds']}, cpus: {os.cpu_count()}, load: {res['load_before']:.2f} before, "
           f"{res['load_after']:.2f} after; wall ms median (min-max; CPU ms of the command itself)", "",
           "| auto | wall ms | supervisorctl | wall ms | auto / supervisorctl | target |",
           "|---|---|---|---|---|---|"]
    for label, akey, slabel, skey, target in ROWS:
        a, s = res["stats"].get(akey), res["stats"].get(skey) if skey else None
        ratio = a["median"] / s["median"] if a and s else None
        verdict = "-"
        if target is not None and ratio is not None:
            verdict = f"<= {target:g}: {'met' if ratio <= target else 'MISSED'}"
        out.append(f"| {label} | {cell(a)} | {slabel or '-'} | {cell(s)} | "
                   f"{f'{ratio:.2f}' if ratio is not None else '-'} | {verdict} |")
    a = res["stats"].get("auto_start_all")
    for key, what in (("floor_sh", "sh -c 'exec sleep'"), ("floor_direct", "sleep itself")):
        f = res["stats"].get(key)
        if a and f:
            out.append(f"start-all / floor ({what}): {a['median'] / f['median']:.2f}")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--rounds", type=int, default=10, help="rounds of every command (after one warm-up round)")
    p.add_argument("--cold", type=int, default=3, help="auto start with no watcher running, this many times")
    p.add_argument("--ps-per-round", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    on_signals_exit()
    tmp = Path(tempfile.mkdtemp(prefix="auto-bench-"))
    load_before = os.getloadavg()[0]
    try:
        samples = bench(args.n, args.rounds, args.cold, args.ps_per_round, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res = {"n": args.n, "rounds": args.rounds, "load_before": load_before, "load_after": os.getloadavg()[0],
           "stats": {key: stats(values) for key, values in samples.items()}}
    if args.json:
        print(json.dumps(dict(res, samples=samples), indent=2))
    else:
        print(report(res, args.n))


if __name__ == "__main__":
    main()
