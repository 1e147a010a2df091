"""Crash-loop soak (docs/reliability.md, scenario 9): a service that exits immediately, under the
real ``auto watch``, for a stretch of wall time with small backoff settings so the cap is reached
quickly. Reports the sequence of restart delays the watcher scheduled (they must double up to
``backoff_max`` and stay there), the measured gaps between restarts (never earlier than scheduled),
and the watcher's own CPU use (utime + stime of its threads, ns precision from schedstat) per wall
second once the loop runs at the cap.

Time scale: the default cap is 7200 s and the first delay 1 s. With ``--base 0.05 --max 5`` the
delays run 0.05, 0.1, ... 3.2, 5, 5, ...: the same doubling, 1440 times faster at the cap, so
each wall second at the cap stands for 24 minutes of a real crash loop at the default cap
(--seconds 60 ~ 24 h). The CPU figure is therefore an upper bound: at the real cap the watcher
does the same work 1440 times less often.

Two cases by default, side by side: ``--base 0.05`` (the doubling above) and ``--base 0``
(restart at once: only the watcher's crash-loop bounds pace it, two starts of one service at
least ``timing.MIN_START_INTERVAL`` apart, ``timing.BURST_INTERVAL`` apart once it started
``timing.BURST`` times within ``timing.BURST_WINDOW``; the watcher must stay under 1% of a core).
The service is the bench's marker program (``harness.MARKER_C``) in its crashing form, exec'd
directly: its first action stamps the wall clock and its pid into a file, then it exits 1, so
every start time is exact (not the watcher's log line, written after the state).

Usage: ``.venv/bin/python bench/bench_crashloop.py [--seconds 60] [--base 0.05 0] [--max 5]
[--json]``. Linux (/proc). Every process it starts is stopped at the end, also on a failure,
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import (  # noqa: E402  (bench/ is the script's directory)
    AutoWatcher,
    Cleanup,
    Marks,
    build_marker,
    define_auto,
    end_any_watcher,
    kill_tagged,
    new_tag,
    on_signals_exit,
    state_processes,
)
from procstats import cpu_seconds, rss_kib  # noqa: E402

from auto_core.lifecycle import Api  # noqa: E402
from auto_core.store.paths import Home  # noqa: E402
from auto_core.supervisor import timing  # noqa: E402

EXIT_RE = re.compile(r"^(\S+ \S+) exit crashy pid (\d+) .*restarting in ([\d.]+) s$")
EARLY_SLACK = 0.02  # the exit line is stamped (to the ms) after the watcher set the due time
GAP_SLACK = 0.005  # the watcher times a start at its spawn, the marker after its exec


def stamp(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def bounds() -> tuple[float, int | None, float | None, float | None]:
    """The watcher's crash-loop bounds: (min interval, burst, burst window, burst interval)."""
    return (timing.MIN_START_INTERVAL, timing.BURST, timing.BURST_WINDOW, timing.BURST_INTERVAL)


def run(seconds: float, base: float, cap: float) -> dict:
    min_gap, burst, window, burst_gap = bounds()
    with tempfile.TemporaryDirectory(prefix="auto-crashloop-") as tmpdir, Cleanup() as cleanup:
        tmp = Path(tmpdir)
        tag = new_tag("crashloop")
        root = tmp / "home"
        cleanup.push("kill what auto started", lambda: kill_tagged(tag))
        cleanup.push("stop a watcher started on demand", lambda: end_any_watcher(root))
        marker, _ = build_marker(tmp)
        marks = Marks(tmp / "starts")
        define_auto(root, [("crashy", f"{marker} {marks.path} exit", {"backoff_base": base, "backoff_max": cap})],
                    tag, Path("/"))
        watcher = AutoWatcher(root, tag, tmp / "watch.out")
        cleanup.push("stop the watcher", watcher.stop)
        watcher.start()
        api = Api(Home(root), warn=lambda m: None)
        rss0 = rss_kib(watcher.pid)
        api.start(["crashy"], wait=0)
        t_start = time.monotonic()
        # CPU is measured once the loop runs at its steady pace: at the cap (reached after
        # about 2 * cap s), or for base 0 once the burst bound applies (about 1 s).
        warm = min(seconds / 2, 2 * cap + 1 if base > 0 else 3.0)
        time.sleep(warm)  # fixed windows, not waits for an event
        cpu0, wall0, when0 = cpu_seconds(watcher.pid), time.monotonic(), time.time()
        time.sleep(max(0.0, seconds - warm))
        cpu1, wall1, when1 = cpu_seconds(watcher.pid), time.monotonic(), time.time()
        rss1 = rss_kib(watcher.pid)
        alive = watcher.proc is not None and watcher.proc.poll() is None
        if alive:
            api.stop(["crashy"])
        text = watcher.output()
        entry = state_processes(root)["crashy"]
        marks.poll()
    starts = [t for t, _ in marks.lines]
    index = {pid: i for i, (_, pid) in enumerate(marks.lines)}
    exits = [(stamp(m.group(1)), int(m.group(2)), float(m.group(3)))
             for line in text.splitlines() if (m := EXIT_RE.match(line))]
    delays = [d for _, _, d in exits]
    early = 0  # a restart sooner than the delay the watcher announced for it
    for t_exit, pid, delay in exits:
        i = index.get(pid)
        if i is not None and i + 1 < len(starts) and starts[i + 1] < t_exit + delay - EARLY_SLACK:
            early += 1
    too_close = 0  # two starts closer than the crash-loop bounds allow
    for i in range(1, len(starts)):
        need = min_gap
        if burst and window and burst_gap:
            recent = [t for t in starts[max(0, i - burst):i] if t > starts[i - 1] - window]
            if len(recent) >= burst:
                need = burst_gap
        if starts[i] - starts[i - 1] < need - GAP_SLACK:
            too_close += 1
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    in_window = sum(1 for t in starts if when0 <= t < when1)
    cap_at = next((i for i, d in enumerate(delays) if d >= cap - 1e-9), None)
    cpu = cpu1 - cpu0
    return {
        "seconds": round(time.monotonic() - t_start, 1),
        "base": base,
        "cap": cap,
        "restarts": max(0, len(starts) - 1),
        "restart_attempt": entry.get("restart_attempt"),
        "delays_first": delays[:12],
        "delays_at_cap": sum(1 for d in delays if abs(d - cap) < 1e-9),
        "cap_reached_after_restarts": cap_at,
        "delays_above_cap": [d for d in delays if d > cap + 1e-9],
        "early_restarts": early,
        "start_gap_min_s": round(min(gaps), 4) if gaps else None,
        "start_gap_median_s": round(statistics.median(gaps), 4) if gaps else None,
        "starts_closer_than_bounds": too_close,
        "starts_per_s_measured": round(in_window / (wall1 - wall0), 2),
        "watcher_cpu_percent": round(100 * cpu / (wall1 - wall0), 3),
        "watcher_cpu_ms_per_start": round(cpu * 1000 / in_window, 2) if in_window else None,
        "measured_window_s": round(wall1 - wall0, 1),
        "watcher_rss_kib": [rss0, rss1],
        "watcher_alive": alive,
        "tracebacks": text.count("Traceback"),
        "slow_iterations": text.count("loop iteration took"),
    }


def verdict(result: dict) -> bool:
    ok = (result["watcher_alive"] and not result["early_restarts"] and not result["starts_closer_than_bounds"]
          and result["watcher_cpu_percent"] < 1.0 and not result["tracebacks"])
    if result["base"] > 0:
        ok = ok and result["cap_reached_after_restarts"] is not None and not result["delays_above_cap"]
    return bool(ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="wall time of each case")
    parser.add_argument("--base", type=float, nargs="+", default=[0.05, 0.0], help="one case per backoff base")
    parser.add_argument("--max", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    on_signals_exit()
    results = [run(args.seconds, base, args.max) for base in args.base]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        rows = ["| | " + " | ".join(f"base {r['base']:g}, cap {r['cap']:g}" for r in results) + " |",
                "|---" * (len(results) + 1) + "|"]
        for key in results[0]:
            if key in ("base", "cap"):
                continue
            rows.append(f"| {key} | " + " | ".join(str(r[key]) for r in results) + " |")
        rows.append("| verdict | " + " | ".join("PASS" if verdict(r) else "FAIL" for r in results) + " |")
        print("\n".join(rows))
    ok = all(verdict(r) for r in results)
    print("PASS" if ok else "FAIL", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
