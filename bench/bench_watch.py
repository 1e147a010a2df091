"""Watcher benchmark: ``auto watch`` side by side with supervisord (and PM2 when
its binary is available), for N = 10 and 200 supervised services, in one run.

Measured per manager and N:
- restart overhead: SIGKILL a service, time until its replacement runs its first line, minus
  the cost of that first line itself (the same command spawned directly, calibrated here),
  minus the scheduled delay. auto runs this service with ``backoff_max 1`` (every restart
  scheduled exactly 1 s after the death); supervisord with ``startsecs=0`` and PM2 with
  ``restart_delay 0`` schedule an immediate restart (delay 0). The raw death-to-running
  latency is reported too. The calibration runs the command line as ``/bin/sh -c`` does, as
  the other managers are given it; auto execs a plain command's program with no shell, so
  its overhead is also reported against that program exec'd directly (the stricter figure);
- idle CPU: the manager's own CPU time (utime + stime from /proc) per wall second while all N
  services run and nothing happens;
- RSS of the manager process.
Then a long run for auto alone: RSS before/after 1,000 restarts of a crash-looping service.

Usage: ``.venv/bin/python bench/bench_watch.py [--n 10 200] [--kills 15] [--idle 10]
[--long 1000] [--pm2 PATH]``. Needs ``supervisor`` (pip extra ``bench``); PM2 is measured
when a ``pm2`` binary is given or on PATH (``npm install pm2``); Linux (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from procstats import cpu_seconds, procs_with_env, rss_kib  # noqa: E402  (bench/ is the script's directory)

from auto_core.lifecycle import Api  # noqa: E402
from auto_core.paths import Home  # noqa: E402

IDLE_CMD = "sleep 1000000"


def marker_cmd(mark: Path) -> str:
    # bash's $EPOCHREALTIME: the first line of the new instance, without an extra fork.
    return f"exec bash -c 'echo $EPOCHREALTIME >> {mark}; exec sleep 1000000'"


# --- /proc helpers -----------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    return rss_kib(pid) / 1024




def kill_tagged(tag: str) -> None:
    for pid in procs_with_env("BENCH_TAG", tag):
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except OSError:
            pass


def wait_for(predicate, timeout: float, what: str, step: float = 0.002):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(step)


def marks(path: Path) -> list[float]:
    try:
        return [float(x) for x in path.read_text().split()]
    except FileNotFoundError:
        return []


# --- measurements shared by every manager ------------------------------------------------------


def calibrate(tmp: Path, reps: int = 15, shell: bool = True) -> float:
    """Median time from spawning the marker command directly to its first line: as a command
    line (``/bin/sh -c``, how supervisord and PM2 are given it here), or with ``shell=False``
    its program exec'd with no shell at all (bash; auto's plain-command spawn does that)."""
    mark = tmp / f"calib-{shell}.marks"
    cmd = ["/bin/sh", "-c", marker_cmd(mark)] if shell else shlex.split(marker_cmd(mark))[1:]
    samples = []
    for i in range(reps):
        t0 = time.time()
        p = subprocess.Popen(cmd, start_new_session=True)
        got = wait_for(lambda i=i: len(marks(mark)) > i and marks(mark), 10, "calibration mark")
        samples.append(got[i] - t0)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    return statistics.median(samples)


def measure(manager_pid: int, crash_pid, mark: Path, kills: int, idle: float, calib: float,
            delay: float = 0.0, calib_exec: float | None = None) -> dict:
    """Idle CPU, RSS, and restart overhead over ``kills`` SIGKILLs of the marker service."""
    time.sleep(2.0)  # let start-up work settle before measuring idle
    c0, t0 = cpu_seconds(manager_pid), time.monotonic()
    time.sleep(idle)
    idle_ms_per_s = (cpu_seconds(manager_pid) - c0) / (time.monotonic() - t0) * 1000
    rss = rss_mib(manager_pid)
    overheads, latencies = [], []
    for _ in range(kills):
        before = len(marks(mark))
        pid = crash_pid()
        t_kill = time.time()
        os.kill(pid, signal.SIGKILL)
        got = wait_for(lambda before=before: len(marks(mark)) > before and marks(mark), 30, "restart mark")
        latencies.append((got[before] - t_kill) * 1000)
        overheads.append((got[before] - t_kill - calib - delay) * 1000)
        wait_for(lambda pid=pid: crash_pid() not in (None, pid), 10, "new pid recorded")
        time.sleep(0.3)
    result = {
        "idle_cpu_ms_per_s": round(idle_ms_per_s, 3),
        "rss_mib": round(rss, 1),
        "rss_after_mib": round(rss_mib(manager_pid), 1),
        "restart_overhead_ms_median": round(statistics.median(overheads), 2),
        "restart_overhead_ms_p90": round(sorted(overheads)[max(0, int(len(overheads) * 0.9) - 1)], 2),
        "scheduled_delay_s": delay,
        "death_to_running_ms_median": round(statistics.median(latencies), 1),
    }
    if calib_exec is not None:  # the stricter measure: against the program with no shell at all
        result["restart_overhead_vs_exec_ms_median"] = round(
            statistics.median(lat - (calib_exec + delay) * 1000 for lat in latencies), 2)
    return result


# --- auto --------------------------------------------------------------------------------------


def run_auto(n: int, tmp: Path, kills: int, idle: float, calib: float, calib_exec: float) -> dict:
    home_dir = tmp / f"auto-{n}"
    tag = f"auto-{n}-{os.getpid()}"
    env = dict(os.environ, AUTO_HOME=str(home_dir), BENCH_TAG=tag)
    old_env = dict(os.environ)
    os.environ.update(AUTO_HOME=str(home_dir), BENCH_TAG=tag)
    try:
        api = Api(Home(home_dir))
        mark = tmp / f"auto-{n}.marks"
        for i in range(n - 1):
            api.add(f"s{i:03d}", IDLE_CMD, workdir=str(tmp), start=False)
        # Default base (1 s) capped at 1 s: every restart is scheduled exactly 1 s after the
        # death (no jitter below 4 s), so overhead = latency - 1 s - calibration.
        api.add("crash", marker_cmd(mark), workdir=str(tmp), backoff_max=1, start=False)
        api.start_all()
    finally:
        os.environ.clear()
        os.environ.update(old_env)
    out = open(tmp / f"auto-{n}.watch.log", "wb")
    watcher = subprocess.Popen([sys.executable, "-m", "auto_core", "watch"], env=env, cwd=ROOT,
                               stdout=out, stderr=subprocess.STDOUT)
    try:
        log = tmp / f"auto-{n}.watch.log"
        wait_for(lambda: log.read_text().count(" adopt ") >= n, 60, "adoption", step=0.05)

        def crash_pid():
            entry = json.loads((home_dir / "local" / "state.json").read_text())["processes"]["crash"]
            pid = entry.get("pid")
            return pid if pid and os.path.exists(f"/proc/{pid}") else None

        return measure(watcher.pid, crash_pid, mark, kills, idle, calib, delay=1.0, calib_exec=calib_exec)
    finally:
        watcher.terminate()
        watcher.wait(10)
        out.close()
        kill_tagged(tag)


def run_auto_long(tmp: Path, restarts: int) -> dict:
    """RSS of the watcher before/after ``restarts`` restarts of a crash-looping service."""
    home_dir = tmp / "auto-long"
    tag = f"auto-long-{os.getpid()}"
    env = dict(os.environ, AUTO_HOME=str(home_dir), BENCH_TAG=tag)
    Api(Home(home_dir)).add("loop", "exit 1", workdir=str(tmp), backoff_base=0, start=False)
    with open(home_dir / "local" / "state.json") as fh:
        data = json.load(fh)
    data["processes"]["loop"]["explicitly_stopped"] = False  # let the watcher start it
    (home_dir / "local" / "state.json").write_text(json.dumps(data))
    out = open(tmp / "auto-long.watch.log", "wb")
    watcher = subprocess.Popen([sys.executable, "-m", "auto_core", "watch"], env=env, cwd=ROOT,
                               stdout=out, stderr=subprocess.STDOUT)

    def count() -> int:
        try:
            entry = json.loads((home_dir / "local" / "state.json").read_text())["processes"]["loop"]
        except (OSError, ValueError):
            return 0
        return int(entry.get("restarts") or 0)

    try:
        wait_for(lambda: count() >= 100, 300, "100 restarts", step=0.1)
        rss0, c0, t0, n0 = rss_mib(watcher.pid), cpu_seconds(watcher.pid), time.monotonic(), count()
        wait_for(lambda: count() >= 100 + restarts, 1800, f"{restarts} restarts", step=0.2)
        rss1, c1, t1, n1 = rss_mib(watcher.pid), cpu_seconds(watcher.pid), time.monotonic(), count()
        return {
            "restarts": n1 - n0,
            "rss_before_mib": round(rss0, 1),
            "rss_after_mib": round(rss1, 1),
            "cpu_ms_per_restart": round((c1 - c0) / (n1 - n0) * 1000, 2),
            "restarts_per_s": round((n1 - n0) / (t1 - t0), 1),
        }
    finally:
        watcher.terminate()
        watcher.wait(10)
        out.close()
        kill_tagged(tag)


# --- supervisord -------------------------------------------------------------------------------


def run_supervisord(n: int, tmp: Path, kills: int, idle: float, calib: float) -> dict | None:
    exe = shutil.which("supervisord", path=str(Path(sys.executable).parent)) or shutil.which("supervisord")
    if not exe:
        return None
    base = tmp / f"sv-{n}"
    base.mkdir()
    tag = f"sv-{n}-{os.getpid()}"
    mark = tmp / f"sv-{n}.marks"
    lines = [
        "[supervisord]", "nodaemon=true", f"logfile={base}/supervisord.log", f"pidfile={base}/sv.pid",
        f"childlogdir={base}", "loglevel=warn", "",
    ]
    programs = [(f"s{i:03d}", f"/bin/sh -c '{IDLE_CMD}'") for i in range(n - 1)]
    programs.append(("crash", "/bin/sh -c \"" + marker_cmd(mark) + "\""))
    for name, command in programs:
        lines += [
            f"[program:{name}]", f"command={command}", f"directory={tmp}", "autorestart=true",
            "startsecs=0", "startretries=1000000", "stopasgroup=true", "killasgroup=true",
            f"stdout_logfile={base}/{name}.log", "redirect_stderr=true",
            f'environment=BENCH_TAG="{tag}",BENCH_SVC="{name}"', "",
        ]
    conf = base / "supervisord.conf"
    conf.write_text("\n".join(lines))
    sv = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(procs_with_env("BENCH_TAG", tag)) >= n, 120, "supervisord programs", step=0.1)

        def crash_pid():
            pids = procs_with_env("BENCH_SVC", "crash")
            return next((p for p in pids if p in procs_with_env("BENCH_TAG", tag)), None)

        return measure(sv.pid, crash_pid, mark, kills, idle, calib)
    finally:
        sv.terminate()
        try:
            sv.wait(30)
        except subprocess.TimeoutExpired:
            sv.kill()
        kill_tagged(tag)


# --- PM2 --------------------------------------------------------------------------------------


def run_pm2(n: int, tmp: Path, kills: int, idle: float, calib: float, pm2: str | None) -> dict | None:
    if not pm2 or not os.path.exists(pm2):
        return None
    pm2_home = tmp / f"pm2-{n}"
    pm2_home.mkdir()
    tag = f"pm2-{n}-{os.getpid()}"
    mark = tmp / f"pm2-{n}.marks"
    apps = [
        {"name": f"s{i:03d}", "script": "/bin/sh", "args": ["-c", IDLE_CMD]} for i in range(n - 1)
    ] + [{"name": "crash", "script": "/bin/sh", "args": ["-c", marker_cmd(mark)]}]
    for app in apps:
        app.update(interpreter="none", autorestart=True, restart_delay=0, max_restarts=1000000,
                   min_uptime=0, cwd=str(tmp), env={"BENCH_TAG": tag, "BENCH_SVC": app["name"]})
    eco = pm2_home / "ecosystem.json"
    eco.write_text(json.dumps({"apps": apps}))
    env = dict(os.environ, PM2_HOME=str(pm2_home), BENCH_TAG=tag)
    subprocess.run([pm2, "start", str(eco)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=300, check=True)
    try:
        wait_for(lambda: len(procs_with_env("BENCH_TAG", tag)) >= n, 120, "pm2 apps", step=0.1)
        daemon = int((pm2_home / "pm2.pid").read_text())

        def crash_pid():
            pids = procs_with_env("BENCH_SVC", "crash")
            return next((p for p in pids if p in procs_with_env("BENCH_TAG", tag)), None)

        return measure(daemon, crash_pid, mark, kills, idle, calib)
    finally:
        subprocess.run([pm2, "kill"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        kill_tagged(tag)


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10, 200])
    parser.add_argument("--kills", type=int, default=15)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--long", type=int, default=1000, help="restarts in the long RSS run (0: skip)")
    parser.add_argument("--pm2", default=shutil.which("pm2"), help="path of the pm2 binary (optional)")
    parser.add_argument("--managers", nargs="+", default=["auto", "supervisord", "pm2"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # SIGTERM (e.g. `timeout`): unwind, so every finally block stops what it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmpdir:
        tmp = Path(tmpdir)
        calib, calib_exec = calibrate(tmp), calibrate(tmp, shell=False)
        results["marker_calibration_ms"] = round(calib * 1000, 2)
        results["marker_calibration_exec_ms"] = round(calib_exec * 1000, 2)
        print(f"first line of the marker command: {calib * 1000:.2f} ms via sh -c, "
              f"{calib_exec * 1000:.2f} ms exec'd directly", file=sys.stderr)
        runners = {
            "auto": lambda n: run_auto(n, tmp, args.kills, args.idle, calib, calib_exec),
            "supervisord": lambda n: run_supervisord(n, tmp, args.kills, args.idle, calib),
            "pm2": lambda n: run_pm2(n, tmp, args.kills, args.idle, calib, args.pm2),
        }
        for n in args.n:
            for manager in args.managers:
                results[f"{manager}_N{n}"] = runners[manager](n)
                print(f"{manager} N={n}: {results[f'{manager}_N{n}']}", file=sys.stderr)
        if args.long:
            results["auto_long"] = run_auto_long(tmp, args.long)
            print(f"auto long: {results['auto_long']}", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(table(results, args.n))
    return 0


def table(results: dict, ns: list[int]) -> str:
    rows = ["| metric | N | auto | supervisord | PM2 | auto / supervisord | auto / PM2 |",
            "|---|---|---|---|---|---|---|"]
    for key, label in (
        ("restart_overhead_ms_median", "restart overhead, median (ms)"),
        ("restart_overhead_ms_p90", "restart overhead, p90 (ms)"),
        ("restart_overhead_vs_exec_ms_median", "restart overhead vs the program exec'd with no shell, median (ms)"),
        ("idle_cpu_ms_per_s", "idle CPU (ms CPU per s)"),
        ("rss_mib", "RSS (MiB)"),
    ):
        for n in ns:
            if not results.get(f"auto_N{n}"):
                continue
            a = results[f"auto_N{n}"][key]
            s = (results.get(f"supervisord_N{n}") or {}).get(key)
            p = (results.get(f"pm2_N{n}") or {}).get(key)

            def ratio(other, a=a):
                return f"{a / other:.2f}" if other else "-"

            rows.append(f"| {label} | {n} | {a} | {s if s is not None else '-'} | "
                        f"{p if p is not None else '-'} | {ratio(s)} | {ratio(p)} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
