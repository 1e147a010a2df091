"""Core CLI benchmark: `auto ps`, `start-all`, `stop-all` with 200 services,
side by side with supervisord/supervisorctl managing the same 200 sleeps.

Run: .venv/bin/python bench/bench_cli.py [--n 200] [--runs 15]
Needs the `bench` extra (supervisor). Everything runs in temp dirs and is cleaned up.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procstats import procs_with_env  # bench/ is the script's directory

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
AUTO = str(BIN / "auto")
SLEEP = "sleep 100000"


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


def median_ms(argv: list[str], env: dict, runs: int) -> tuple[float, float, float, float]:
    """(median wall, min wall, max wall, median CPU user+sys) in ms. CPU time is the figure
    least disturbed by other load on a shared machine."""
    timed(argv, env)  # warm the page cache
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        walls.append(timed(argv, env) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    walls.sort()
    return statistics.median(walls), walls[0], walls[-1], statistics.median(cpus)


def kill_tagged(key: str, value: str) -> None:
    for _ in range(50):
        pids = [p for p in procs_with_env(key, value) if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)


def count_running_auto(env: dict) -> int:
    out = subprocess.run([AUTO, "-q", "ps"], env=env, capture_output=True, text=True, check=True).stdout
    return sum(1 for line in out.splitlines()[1:] if line.split()[1].isdigit())


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


def floor_round(n: int, env: dict, tmp: Path, how: str = "sh") -> float:
    wall = timed([sys.executable, "-c", FLOOR, str(n), str(tmp / "floor.out"), how], env)
    kill_tagged("BENCH_FLOOR", str(tmp))
    return wall * 1000


def bench_auto(n: int, runs: int, tmp: Path, rounds: int = 5) -> dict:
    from auto_core.lifecycle import Api
    from auto_core.paths import Home

    home = tmp / "auto-home"
    env = dict(os.environ, AUTO_HOME=str(home), BENCH_TAG=str(tmp))
    # An installed wheel has its bytecode compiled; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE would recompile auto_core on every call (~15 ms), which no user pays.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["AUTO_HOME"] = str(home)
    api = Api(Home(home))
    for i in range(n):
        api.add(f"svc{i:03d}", SLEEP, workdir=str(tmp), start=False)
    res: dict = {}
    try:
        starts, stops, start_cpu, stop_cpu, floors, direct_floors = [], [], [], [], [], []
        floor_env = dict(env, BENCH_FLOOR=str(tmp))
        for _ in range(rounds):
            floors.append(floor_round(n, floor_env, tmp))
            direct_floors.append(floor_round(n, floor_env, tmp, "direct"))
            wall, cpu = timed_cpu([AUTO, "start-all"], env)
            starts.append(wall)
            start_cpu.append(cpu)
            assert count_running_auto(env) == n, "start-all did not start everything"
            if _ < rounds - 1:
                wall, cpu = timed_cpu([AUTO, "stop-all"], env)
                stops.append(wall)
                stop_cpu.append(cpu)
                assert count_running_auto(env) == 0
        res["start_all_ms"] = statistics.median(starts)
        res["start_all_samples"] = starts
        res["floor_ms"] = statistics.median(floors)
        res["floor_samples"] = floors
        res["floor_direct_ms"] = statistics.median(direct_floors)
        res["floor_direct_samples"] = direct_floors
        res["ps_ms"] = median_ms([AUTO, "ps"], env, runs)
        res["ps_json_ms"] = median_ms([AUTO, "ps", "--json"], env, runs)
        wall, cpu = timed_cpu([AUTO, "stop-all"], env)
        stops.append(wall)
        stop_cpu.append(cpu)
        assert count_running_auto(env) == 0
        res["start_all_cpu"] = statistics.median(start_cpu)
        res["stop_all_cpu"] = statistics.median(stop_cpu)
        res["stop_all_ms"] = statistics.median(stops)
        res["stop_all_samples"] = stops
        res["ps_stopped_ms"] = median_ms([AUTO, "ps"], env, runs)
        res["version_ms"] = median_ms([AUTO, "--version"], env, runs)
    finally:
        subprocess.run([AUTO, "-q", "stop-all"], env=env, capture_output=True)
        kill_tagged("BENCH_TAG", str(tmp))
    return res


def bench_supervisor(n: int, runs: int, tmp: Path) -> dict:
    sdir = tmp / "supervisor"
    sdir.mkdir()
    conf = sdir / "supervisord.conf"
    sock = sdir / "s.sock"
    lines = [
        "[unix_http_server]", f"file={sock}", "",
        "[supervisord]", f"logfile={sdir}/supervisord.log", f"pidfile={sdir}/supervisord.pid",
        f"childlogdir={sdir}", "nodaemon=true", "minfds=1024", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{sock}", "",
    ]
    for i in range(n):
        lines += [f"[program:svc{i:03d}]", f"command={SLEEP}", "autostart=true", "startsecs=0",
                  f"stdout_logfile={sdir}/svc{i:03d}.log", "redirect_stderr=true", ""]
    conf.write_text("\n".join(lines))
    env = dict(os.environ, BENCH_TAG=str(tmp))
    env.pop("AUTO_HOME", None)
    ctl = [str(BIN / "supervisorctl"), "-c", str(conf)]
    daemon = subprocess.Popen([str(BIN / "supervisord"), "-c", str(conf)], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    res: dict = {}

    def running() -> int:
        out = subprocess.run([*ctl, "status"], env=env, capture_output=True, text=True).stdout
        return sum(1 for line in out.splitlines() if " RUNNING " in line)

    try:
        deadline = time.monotonic() + 60
        while running() < n:
            if time.monotonic() > deadline:
                raise SystemExit("supervisord did not start the programs")
            time.sleep(0.2)
        res["status_ms"] = median_ms([*ctl, "status"], env, runs)
        t = time.perf_counter()
        subprocess.run([*ctl, "stop", "all"], env=env, capture_output=True, check=False)
        res["stop_all_ms"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        subprocess.run([*ctl, "start", "all"], env=env, capture_output=True, check=False)
        res["start_all_ms"] = (time.perf_counter() - t) * 1000
        assert running() == n
    finally:
        subprocess.run([*ctl, "shutdown"], env=env, capture_output=True)
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        kill_tagged("BENCH_TAG", str(tmp))
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--rounds", type=int, default=5, help="start-all/stop-all rounds")
    p.add_argument("--no-supervisor", action="store_true")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="auto-bench-"))
    try:
        a = bench_auto(args.n, args.runs, tmp, args.rounds)
        s = None if args.no_supervisor or not (BIN / "supervisord").exists() else bench_supervisor(args.n, args.runs, tmp)
    finally:
        kill_tagged("BENCH_TAG", str(tmp))
        shutil.rmtree(tmp, ignore_errors=True)
    fmt = lambda t: f"{t[0]:.1f} ms (min {t[1]:.1f}, max {t[2]:.1f}; cpu {t[3]:.1f})"  # noqa: E731
    print(f"services: {args.n}, runs: {args.runs}, cpus: {os.cpu_count()}, load: {os.getloadavg()[0]:.2f}")
    print(f"auto --version           median {fmt(a['version_ms'])}")
    print(f"auto ps (all running)    median {fmt(a['ps_ms'])}   target <= 50 ms")
    print(f"auto ps --json           median {fmt(a['ps_json_ms'])}")
    print(f"auto ps (all stopped)    median {fmt(a['ps_stopped_ms'])}")
    print(f"auto start-all           median {a['start_all_ms']:.0f} ms {[round(x) for x in a['start_all_samples']]} cpu {a['start_all_cpu']:.0f}   target <= 250 ms")
    print(f"floor: {args.n} bare spawns of sh -c 'exec sleep' median {a['floor_ms']:.0f} ms {[round(x) for x in a['floor_samples']]}"
          f"   ratio start-all/floor = {a['start_all_ms'] / a['floor_ms']:.2f}")
    print(f"floor: {args.n} bare spawns of sleep itself median {a['floor_direct_ms']:.0f} ms "
          f"{[round(x) for x in a['floor_direct_samples']]}"
          f"   ratio start-all/floor = {a['start_all_ms'] / a['floor_direct_ms']:.2f}")
    print(f"auto stop-all            median {a['stop_all_ms']:.0f} ms {[round(x) for x in a['stop_all_samples']]} cpu {a['stop_all_cpu']:.0f}   target <= 1000 ms")
    if s:
        print(f"supervisorctl status     median {fmt(s['status_ms'])}   ratio auto/supervisorctl = {a['ps_ms'][0] / s['status_ms'][0]:.2f}")
        print(f"supervisorctl start all  {s['start_all_ms']:.0f} ms   ratio = {a['start_all_ms'] / s['start_all_ms']:.2f}")
        print(f"supervisorctl stop all   {s['stop_all_ms']:.0f} ms   ratio = {a['stop_all_ms'] / s['stop_all_ms']:.2f}")


if __name__ == "__main__":
    main()
