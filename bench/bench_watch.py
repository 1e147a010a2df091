"""Watcher benchmark: ``auto watch`` side by side with supervisord and PM2, for N = 10, 200
and 2,000 supervised services, one manager at a time, in one run.

Every manager supervises N - 1 idle services (``sleep 100000``) and one marker service: a small
program (``harness.MARKER_C``) whose first action appends the wall clock and its pid to a file.
All three exec both commands directly (no ``sh -c``; auto's plain-command spawn). Measured per
manager and N:

- immediate restart, "kill -> the new process exec'd": from the wall clock just before
  ``os.kill(SIGKILL)`` of the marker service to its replacement's mark, minus the marker's own
  exec-to-mark cost (calibrated here: the marker posix_spawned directly in a new session, as
  auto spawns, once before each kill; the median of those samples is subtracted, so the
  correction follows the machine's load; 21 samples before and after the whole run are
  reported too). auto: ``backoff_base 0``; PM2:
  ``restart_delay 0``, ``autorestart``; supervisord: ``autorestart=true``, ``startsecs=0`` (it
  has no delay setting: it restarts at the pace of its own loop). A kill comes ``--spacing`` s
  after the previous mark, for every manager, and for auto once ``state.json`` records the new
  pid. The default spacing keeps auto's crash-loop bounds out of the measurement: two starts of
  one service at least ``timing.MIN_START_INTERVAL`` (0.1 s) apart, and ``timing.BURST_INTERVAL``
  (1 s) apart once it started ``timing.BURST`` (10) times within ``timing.BURST_WINDOW`` (10 s).
  Median and p90 (nearest rank); the raw kill-to-mark latency is reported too.
- scheduled restart (auto): the same kill with ``backoff_base 1, backoff_max 1``, so every
  restart is due 1 s after the death; lateness = mark - (kill + 1 s) - calibration.
- idle CPU: the manager's CPU time (every thread; schedstat's ns sum, the quantity that
  /proc/PID/stat gives as utime + stime in 10 ms ticks, also in ``--json``) per wall second over
  ``--idle`` s, starting ``--settle`` s after every service is up, with nothing happening.
- RSS (VmRSS) of the manager process: auto's watcher, supervisord, PM2's God daemon.
- CPU per immediate restart: the manager's CPU time from just before a kill to ``CPU_WINDOW``
  (0.3 s) after it, less its idle rate over that window; median over the kills (auto: the
  spawn and the state write that records it).
Then, for auto alone (``--long``): the watcher's RSS and CPU per restart over that many
restarts of ``--long-services`` services that exit at once, with ``backoff_base 0`` (each
restarts about once a second once its crash-loop bound applies).

Usage: ``.venv/bin/python bench/bench_watch.py [--n 10 200 2000] [--kills 20] [--idle 60] [--settle 35]
[--managers auto supervisord pm2] [--long 1000] [--json]``. supervisord comes from the pip extra
``bench``, PM2 from a ``pm2`` binary on PATH (or ``--pm2``); Linux (/proc). Every process it
starts is stopped at the end, also on a failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import math
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
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import (  # noqa: E402  (bench/ is the script's directory)
    IDLE_CMD,
    AutoWatcher,
    Calibrator,
    Cleanup,
    Marks,
    Pm2,
    StateReader,
    Supervisord,
    Timeout,
    build_marker,
    calibrate,
    define_auto,
    end_any_watcher,
    kill_tagged,
    live_children,
    new_tag,
    on_signals_exit,
    pid_alive,
    supervisord_exe,
    wait_for,
)
from procstats import cpu_seconds, rss_kib  # noqa: E402

from auto_core.errors import AutoError  # noqa: E402
from auto_core.lifecycle import Api  # noqa: E402
from auto_core.store.paths import Home  # noqa: E402

MANAGERS = ("auto", "supervisord", "pm2")
LOADED_MS = 2.0  # the static marker's exec-to-mark on an idle machine is well under 1 ms


class Skipped(Exception):
    """A manager that cannot be measured at this N (missing, or too slow to start)."""


# --- /proc helpers -----------------------------------------------------------------------------


def tick_cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process from /proc/PID/stat, in seconds (10 ms ticks)."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def room_for(n: int) -> str | None:
    """Why ``n`` more processes (and their manager's file descriptors) would not fit, or None."""
    uid = os.getuid()
    mine = total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            total += 1
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    mine += 1
            except OSError:
                pass
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if nproc != resource.RLIM_INFINITY and mine + n + 500 > nproc:
        return f"RLIMIT_NPROC {nproc} leaves no room for {n} more processes ({mine} running)"
    with open("/proc/sys/kernel/pid_max") as fh:
        pid_max = int(fh.read())
    if total + n + 500 > pid_max:
        return f"pid_max {pid_max} leaves no room for {n} more processes ({total} running)"
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if nofile != resource.RLIM_INFINITY and nofile < 6 * n + 256:
        return f"RLIMIT_NOFILE {nofile} is too low for a manager of {n} services (want {6 * n + 256})"
    return None


# --- measurements shared by every manager ------------------------------------------------------


def summary(seconds: list[float]) -> dict:
    """Median, p90 (nearest rank), min and max, in ms."""
    ms = sorted(s * 1000 for s in seconds)
    return {"median": round(statistics.median(ms), 2), "p90": round(ms[max(0, math.ceil(0.9 * len(ms)) - 1)], 2),
            "min": round(ms[0], 2), "max": round(ms[-1], 2), "n": len(ms)}


def measure_idle(pid: int, settle: float, idle: float) -> dict:
    """CPU per wall second over ``idle`` s from ``settle`` s on (a fixed window, not a wait for
    an event), and RSS."""
    time.sleep(settle)
    c0, k0, t0 = cpu_seconds(pid), tick_cpu_seconds(pid), time.monotonic()
    time.sleep(idle)
    wall = time.monotonic() - t0
    return {
        "idle_cpu_ms_per_s": round((cpu_seconds(pid) - c0) / wall * 1000, 3),
        "idle_cpu_ticks_ms_per_s": round((tick_cpu_seconds(pid) - k0) / wall * 1000, 2),
        "rss_mib": round(rss_kib(pid) / 1024, 1),
    }


CPU_WINDOW = 0.3  # seconds after a kill in which the manager's CPU is counted for that restart


def kill_and_time(marks: Marks, kills: int, spacing: float, recorded, calibrator: Calibrator,
                  manager_pid: int, delay: float = 0.0, due=None) -> SimpleNamespace:
    """SIGKILL the marker service ``kills`` times. Returns ``latencies``: seconds from just
    before each kill to its replacement's mark; ``extra``: marks beyond one per kill (a second
    copy started); ``cpu``: the manager's CPU seconds from just before each kill to
    ``CPU_WINDOW`` s after it (the restart and what the manager does right after it), with
    ``window``, the wall seconds each covered; and, with ``due(pid)`` (the time the manager
    scheduled the restart of the killed pid for, or None), ``dues``: (kill time, due time, mark
    time) per kill whose due time was seen. Before each kill, ``calibrator`` takes one sample
    of the marker's own exec-to-mark cost."""
    out = SimpleNamespace(latencies=[], extra=0, cpu=[], window=[], dues=[])
    for _ in range(kills):
        count = marks.poll()
        t_last, pid = marks.lines[-1]
        wait_for(lambda pid=pid: recorded(pid), 10, f"the manager to record pid {pid}")
        calibrator.sample()
        pause = t_last + spacing - time.time()
        if pause > 0:
            time.sleep(pause)  # pacing between kills
        now = marks.poll()
        if now != count:
            out.extra += now - count
            count = now
            t_last, pid = marks.lines[-1]
        if not pid_alive(pid):
            raise RuntimeError(f"the marker service (pid {pid}) is not running")
        c0, w0 = cpu_seconds(manager_pid), time.monotonic()
        t_kill = time.time()
        os.kill(pid, signal.SIGKILL)
        t_due = due(pid) if due is not None else None
        t_mark, new_pid = marks.wait_more(count, 30 + delay, "the restarted marker service")
        if new_pid == pid:
            raise RuntimeError(f"a mark with the killed pid {pid}")
        out.latencies.append(t_mark - t_kill)
        if t_due is not None:
            out.dues.append((t_kill, t_due, t_mark))
        rest = w0 + delay + CPU_WINDOW - time.monotonic()
        if rest > 0:
            time.sleep(rest)  # the end of the CPU window
        out.cpu.append(cpu_seconds(manager_pid) - c0)
        out.window.append(time.monotonic() - w0)
    return out


# --- the three managers: each brings N services up and returns what the measurement needs ----


def start_auto(n: int, ctx, cleanup: Cleanup):
    """N services defined without a watcher, then a watcher started by us, then ``start_all``
    (which waits for the watcher's outcomes)."""
    tag = new_tag(f"auto{n}")
    home_root = ctx.tmp / f"auto-{n}"
    marks = Marks(ctx.tmp / f"auto-{n}.marks")
    cleanup.push("kill what auto started", lambda: kill_tagged(tag))
    cleanup.push("stop a watcher started on demand", lambda: end_any_watcher(home_root))
    services = [(f"s{i:04d}", IDLE_CMD, {}) for i in range(n - 1)]
    services.append(("crash", f"{ctx.marker} {marks.path}", {"backoff_base": 0}))
    define_auto(home_root, services, tag, ctx.tmp)
    watcher = AutoWatcher(home_root, tag, ctx.tmp / f"auto-{n}.watch.log")
    cleanup.push("stop the watcher", watcher.stop)
    watcher.start()
    failed = [o.message for o in Api(Home(home_root)).start_all(wait=0) if not o.ok]
    if failed:
        raise RuntimeError(f"start-all: {len(failed)} failed, e.g. {failed[0]}")
    wait_for(lambda: live_children(watcher.pid) >= n, ctx.startup_timeout, f"{n} services of auto", step=0.1)
    marks.wait_more(0, 30, "the marker's first mark")
    reader = StateReader(home_root)

    def recorded(pid: int) -> bool:
        return reader.processes().get("crash", {}).get("pid") == pid

    def due(pid: int) -> float | None:
        """The ``next_restart_at`` the watcher wrote for the death of ``pid`` (None if the
        restart came first)."""
        def written():
            entry = reader.processes().get("crash", {})
            if entry.get("pid") != pid:
                return "gone"
            if (entry.get("last_exit") or {}).get("pid") == pid and entry.get("next_restart_at"):
                return entry["next_restart_at"]
            return None

        try:
            found = wait_for(written, 0.9, "next_restart_at", step=0.002)
        except Timeout:
            return None
        return found if isinstance(found, float) else None

    return SimpleNamespace(pid=watcher.pid, marks=marks, recorded=recorded, due=due, home=home_root,
                           watcher=watcher)


def start_supervisord(n: int, ctx, cleanup: Cleanup):
    if not supervisord_exe():
        raise Skipped("no supervisord (pip extra 'bench')")
    tag = new_tag(f"sv{n}")
    marks = Marks(ctx.tmp / f"sv-{n}.marks")
    programs = [(f"s{i:04d}", IDLE_CMD) for i in range(n - 1)]
    programs.append(("crash", f"{ctx.marker} {marks.path}"))
    sv = Supervisord(ctx.tmp / f"sv-{n}", tag, programs)
    cleanup.push("kill what supervisord started", lambda: kill_tagged(tag))
    cleanup.push("stop supervisord", sv.stop)
    pid = sv.start()
    wait_for(lambda: live_children(pid) >= n, ctx.startup_timeout, f"{n} programs of supervisord", step=0.1)
    marks.wait_more(0, 30, "the marker's first mark")
    return SimpleNamespace(pid=pid, marks=marks, recorded=lambda pid: True)


def start_pm2(n: int, ctx, cleanup: Cleanup):
    if not ctx.pm2 or not os.path.exists(ctx.pm2):
        raise Skipped("no pm2 binary (--pm2)")
    tag = new_tag(f"pm2{n}")
    marks = Marks(ctx.tmp / f"pm2-{n}.marks")
    pm2 = Pm2(ctx.pm2, ctx.tmp / f"pm2-{n}", tag)
    cleanup.push("kill what PM2 started", lambda: kill_tagged(tag))
    cleanup.push("pm2 kill", pm2.kill)
    sleep = shutil.which("sleep")
    apps = [{"name": f"s{i:04d}", "script": sleep, "args": IDLE_CMD.split()[1:]} for i in range(n - 1)]
    apps.append({"name": "crash", "script": str(ctx.marker), "args": [str(marks.path)]})
    began = time.monotonic()
    try:
        pm2.start_apps(apps, timeout=ctx.pm2_timeout)
        pid = pm2.pid
        left = max(1.0, ctx.pm2_timeout - (time.monotonic() - began))
        wait_for(lambda: live_children(pid) >= n, left, f"{n} apps of PM2", step=0.1)
    except (subprocess.TimeoutExpired, Timeout) as exc:
        raise Skipped(f"PM2 did not start {n} apps within {ctx.pm2_timeout:g} s ({exc})") from None
    marks.wait_more(0, 30, "the marker's first mark")
    return SimpleNamespace(pid=pid, marks=marks, recorded=lambda pid: True)


STARTERS = {"auto": start_auto, "supervisord": start_supervisord, "pm2": start_pm2}


def run_manager(manager: str, n: int, ctx) -> dict:
    """Everything measured for one manager at one N; every process it started is gone after."""
    with Cleanup() as cleanup:
        began = time.monotonic()
        m = STARTERS[manager](n, ctx, cleanup)
        result: dict = {"startup_s": round(time.monotonic() - began, 1)}
        result.update(measure_idle(m.pid, ctx.settle, ctx.idle))
        cal = Calibrator(ctx.marker, ctx.tmp)
        k = kill_and_time(m.marks, ctx.kills, ctx.spacing, m.recorded, cal, m.pid)
        extra = k.extra
        # The manager's CPU in the window after each kill, less its idle rate over that window.
        idle_rate = result["idle_cpu_ms_per_s"] / 1000
        result["cpu_ms_per_restart"] = round(statistics.median(
            (c - idle_rate * w) * 1000 for c, w in zip(k.cpu, k.window, strict=True)), 2)
        calib = statistics.median(cal.samples)
        result["calibration"] = summary(cal.samples)
        result["restart"] = summary([lat - calib for lat in k.latencies])
        result["kill_to_mark"] = summary(k.latencies)
        if manager == "auto" and ctx.sched_kills:
            # Every restart due 1 s after the death (base 1 s, capped at 1 s; no jitter under 4 s).
            Api(Home(m.home)).update("crash", backoff_base=1, backoff_max=1)
            cal = Calibrator(ctx.marker, ctx.tmp)
            s = kill_and_time(m.marks, ctx.sched_kills, ctx.spacing, m.recorded, cal, m.pid,
                              delay=1.0, due=m.due)
            late, more, dues = s.latencies, s.extra, s.dues
            calib = statistics.median(cal.samples)
            result["scheduled_calibration"] = summary(cal.samples)
            result["scheduled_lateness"] = summary([lat - 1.0 - calib for lat in late])
            if dues:
                # The split: when the watcher set the restart for (its next_restart_at, seen in
                # state.json before the restart clears it), and how late the start came after it.
                result["scheduled_due_after_kill_plus_1s"] = summary([d - k - 1.0 for k, d, _ in dues])
                result["scheduled_mark_after_due"] = summary([t - d - calib for _, d, t in dues])
            extra += more
            out = m.watcher.output()
            result["watcher_errors"] = out.count("Traceback") + out.count(" error: ")
            result["watcher_slow_iterations"] = out.count("loop iteration took")
        result["duplicate_starts"] = extra
        result["rss_after_mib"] = round(rss_kib(m.pid) / 1024, 1)
        return result


def run_auto_long(ctx, restarts: int, services: int) -> dict:
    """RSS of the watcher before/after ``restarts`` restarts of ``services`` services that exit
    at once (``backoff_base 0``), and its CPU per restart."""
    with Cleanup() as cleanup:
        tag = new_tag("autolong")
        home_root = ctx.tmp / "auto-long"
        cleanup.push("kill what auto started", lambda: kill_tagged(tag))
        cleanup.push("stop a watcher started on demand", lambda: end_any_watcher(home_root))
        names = [f"loop{i:02d}" for i in range(services)]
        define_auto(home_root, [(name, "exit 1", {"backoff_base": 0}) for name in names], tag, ctx.tmp)
        watcher = AutoWatcher(home_root, tag, ctx.tmp / "auto-long.watch.log")
        cleanup.push("stop the watcher", watcher.stop)
        watcher.start()
        Api(Home(home_root)).start(names, wait=0)
        reader = StateReader(home_root)

        def count() -> int:
            procs = reader.processes()
            return sum(int(procs.get(name, {}).get("restarts") or 0) for name in names)

        wait_for(lambda: count() >= 100, 300, "100 restarts", step=0.1)
        rss0, c0, t0, n0 = rss_kib(watcher.pid), cpu_seconds(watcher.pid), time.monotonic(), count()
        wait_for(lambda: count() >= n0 + restarts, 60 + 2 * restarts / services, f"{restarts} restarts", step=0.2)
        rss1, c1, t1, n1 = rss_kib(watcher.pid), cpu_seconds(watcher.pid), time.monotonic(), count()
        return {
            "restarts": n1 - n0,
            "rss_before_mib": round(rss0 / 1024, 1),
            "rss_after_mib": round(rss1 / 1024, 1),
            "cpu_ms_per_restart": round((c1 - c0) / (n1 - n0) * 1000, 2),
            "restarts_per_s": round((n1 - n0) / (t1 - t0), 1),
        }


# --- main --------------------------------------------------------------------------------------


def default_idle() -> float:
    """An idle watcher with inotify wakes once per ``watch.IDLE_TICK`` (30 s): the idle window
    spans two such ticks, so any window holds the same number of wakes, whatever its phase."""
    from auto_core.supervisor import watch

    return 2 * float(watch.IDLE_TICK)


def default_settle() -> float:
    """Idle means after the start-up's follow-up work (the first log retention pass, the
    first size checks of the new logs): one idle tick of auto's watcher and a little more,
    the same wait for every manager."""
    from auto_core.supervisor import watch

    return float(watch.IDLE_TICK) + 5.0


def default_spacing() -> float:
    """Seconds between a restart and the next kill that keep auto's crash-loop bounds out of
    the measurement: fewer than ``BURST`` starts within ``BURST_WINDOW``. Read from the code
    (no fallback: a constant that moved must break this, not quietly change the bench)."""
    from auto_core.supervisor import timing

    spacing = timing.MIN_START_INTERVAL + 0.2
    spacing = max(spacing, timing.BURST_WINDOW / (timing.BURST - 1) + 0.1)
    return round(spacing, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10, 200, 2000])
    parser.add_argument("--kills", type=int, default=20, help="immediate restarts timed per manager and N")
    parser.add_argument("--sched-kills", type=int, default=20, help="scheduled (1 s) restarts timed, auto only")
    parser.add_argument("--spacing", type=float, default=default_spacing(),
                        help="seconds from a mark to the next kill (default: clear of auto's crash-loop bounds)")
    parser.add_argument("--idle", type=float, default=default_idle(),
                        help="idle CPU window (s; default: two idle ticks of auto's watcher, which a "
                             "shorter window may miss)")
    parser.add_argument("--settle", type=float, default=default_settle(),
                        help="seconds from start-up to the idle window (default: one idle tick and 5 s)")
    parser.add_argument("--long", type=int, default=1000, help="restarts in the long RSS run (0: skip)")
    parser.add_argument("--long-services", type=int, default=20, help="crash-looping services in the long run")
    parser.add_argument("--pm2", default=shutil.which("pm2"), help="path of the pm2 binary")
    parser.add_argument("--pm2-timeout", type=float, default=300.0, help="give up on PM2 at an N after this (s)")
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--managers", nargs="+", default=list(MANAGERS), choices=MANAGERS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.n = list(dict.fromkeys(args.n))
    if args.kills < 1:
        parser.error("--kills must be at least 1")
    on_signals_exit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:  # the managers inherit it
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
    results: dict = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmpdir:
        tmp = Path(tmpdir)
        marker, kind = build_marker(tmp)
        calib = calibrate(marker, tmp)
        ctx = SimpleNamespace(tmp=tmp, marker=marker, calib=statistics.median(calib), kills=args.kills,
                              sched_kills=args.sched_kills, spacing=args.spacing, idle=args.idle,
                              settle=args.settle, pm2=args.pm2, pm2_timeout=args.pm2_timeout,
                              startup_timeout=args.startup_timeout)
        results["marker"] = kind
        print(f"marker ({kind}) exec-to-mark: median {ctx.calib * 1000:.2f} ms", file=sys.stderr)
        for n in args.n:
            no_room = room_for(n)
            for manager in args.managers:
                key = f"{manager}_N{n}"
                began = time.monotonic()
                try:
                    if no_room:
                        raise Skipped(no_room)
                    results[key] = run_manager(manager, n, ctx)
                except Skipped as exc:
                    results[key] = {"skipped": str(exc)}
                except (AutoError, RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
                    results[key] = {"error": f"{type(exc).__name__}: {exc}"}
                results[key]["took_s"] = round(time.monotonic() - began, 1)
                print(f"{manager} N={n}: {json.dumps(results[key])}", file=sys.stderr)
        if args.long and "auto" in args.managers:
            results["auto_long"] = run_auto_long(ctx, args.long, args.long_services)
            print(f"auto long: {results['auto_long']}", file=sys.stderr)
        after = calibrate(marker, tmp)
        results["marker_exec_to_mark_ms"] = {"before": summary(calib), "after": summary(after)}
    results["load_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(report(results, args.n))
    return 0


def _get(results: dict, manager: str, n: int, path: tuple):
    value = results.get(f"{manager}_N{n}")
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _cell(results: dict, manager: str, n: int, path: tuple) -> str:
    value = _get(results, manager, n, path)
    if value is not None:
        return f"{value:g}"
    entry = results.get(f"{manager}_N{n}") or {}
    return "skipped" if "skipped" in entry else "error" if "error" in entry else "-"


def _ratio(a, b) -> float | None:
    """a / b; None unless both are positive (a calibrated figure below 0 means the load
    changed between a sample and the calibration beside it: no ratio to take)."""
    ok = isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0 and b > 0
    return a / b if ok else None


def report(results: dict, ns: list[int]) -> str:
    cal = results["marker_exec_to_mark_ms"]
    out = [f"cpus {results['cpus']}, load {results['load_before'][0]:.2f} before, "
           f"{results['load_after'][0]:.2f} after; marker ({results['marker']}) exec-to-mark median "
           f"{cal['before']['median']} ms before, {cal['after']['median']} ms after", ""]
    blocks = {(m, n): _get(results, m, n, ("calibration", "median")) for m in MANAGERS for n in ns}
    quiet = min([cal["before"]["median"], cal["after"]["median"], *(v for v in blocks.values() if v)])
    loaded = [f"{m} N={n}" for (m, n), v in blocks.items() if v and (v > 2 * quiet + 0.5 or v > LOADED_MS)]
    if loaded:
        out += [f"WARNING: the marker's own exec-to-mark cost (quietest {quiet} ms) was over twice that, or "
                f"over {LOADED_MS:g} ms, during: {', '.join(loaded)}. The machine was loaded then (a new "
                "process waited for a CPU); those rows are unreliable.", ""]
    out += [
           "| metric | N | auto | supervisord | PM2 | auto / supervisord | auto / PM2 |",
           "|---|---|---|---|---|---|---|"]
    for path, label in (
        (("restart", "median"), "immediate restart: kill -> new process exec'd, median (ms)"),
        (("restart", "p90"), "immediate restart: kill -> new process exec'd, p90 (ms)"),
        (("kill_to_mark", "median"), "kill -> marker's mark, raw, median (ms)"),
        (("calibration", "median"), "marker exec-to-mark, direct spawn, beside the kills, median (ms)"),
        (("cpu_ms_per_restart",), f"manager CPU in the {CPU_WINDOW:g} s after a kill, idle rate deducted, median (ms)"),
        (("idle_cpu_ms_per_s",), "idle CPU (ms CPU per s)"),
        (("rss_mib",), "RSS (MiB)"),
        (("startup_s",), "start-up of N services (s)"),
    ):
        for n in ns:
            a, s, p = (_get(results, m, n, path) for m in MANAGERS)
            if a is None and s is None and p is None and not any(f"{m}_N{n}" in results for m in MANAGERS):
                continue
            rs, rp = _ratio(a, s), _ratio(a, p)
            out.append(f"| {label} | {n} | {_cell(results, 'auto', n, path)} | {_cell(results, 'supervisord', n, path)}"
                       f" | {_cell(results, 'pm2', n, path)} | {f'{rs:.2f}' if rs is not None else '-'}"
                       f" | {f'{rp:.2f}' if rp is not None else '-'} |")
    out += ["", "| auto: scheduled restart (due 1 s after the death) | N | median | p90 | max |", "|---|---|---|---|---|"]
    for n in ns:
        for key, label in (
            ("scheduled_lateness", "lateness: mark - (kill + 1 s) - calibration (ms)"),
            ("scheduled_due_after_kill_plus_1s", "of which: due time set - (kill + 1 s) (ms)"),
            ("scheduled_mark_after_due", "of which: mark - due time - calibration (ms)"),
        ):
            late = _get(results, "auto", n, (key,))
            if late:
                out.append(f"| {label} | {n} | {late['median']} | {late['p90']} | {late['max']} |")
    for m in MANAGERS:
        for n in ns:
            entry = results.get(f"{m}_N{n}") or {}
            why = entry.get("skipped") or entry.get("error")
            if why:
                out.append(f"{m} at N={n}: {'skipped' if 'skipped' in entry else 'error'}: {why}")
            if entry.get("duplicate_starts"):
                out.append(f"{m} at N={n}: {entry['duplicate_starts']} marks beyond one per kill")
            if entry.get("watcher_errors"):
                out.append(f"{m} at N={n}: {entry['watcher_errors']} error lines in the watcher's output")
            if entry.get("watcher_slow_iterations"):
                out.append(f"{m} at N={n}: the watcher logged {entry['watcher_slow_iterations']} slow loop iterations")
    out += ["", "targets:"]

    def verdict(value, limit) -> str:
        return "-" if value is None else f"{value:.2f} (target <= {limit:g}: {'met' if value <= limit else 'MISSED'})"

    def median(manager: str, n: int):
        return _get(results, manager, n, ("restart", "median"))

    for n in (200, 2000):
        if n in ns:
            ratio = _ratio(median("auto", n), median("pm2", n))
            out.append(f"- immediate restart median, auto / PM2 at N={n}: {verdict(ratio, 0.5)}")
    if 10 in ns and 2000 in ns:
        ratio = _ratio(median("auto", 2000), median("auto", 10))
        out.append(f"- immediate restart median, auto N=2000 / auto N=10: {verdict(ratio, 1.5)}")
    late = _get(results, "auto", 200, ("scheduled_lateness",))
    if late:
        out.append(f"- scheduled restart lateness at N=200, median (ms): {verdict(late['median'], 2)}; "
                   f"p90 {late['p90']} ms, max {late['max']} ms")
    if results.get("auto_long"):
        out += ["", f"auto long run: {results['auto_long']}"]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
