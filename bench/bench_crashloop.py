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

Usage: ``.venv/bin/python bench/bench_crashloop.py [--seconds 60] [--base 0.05] [--max 5]
[--json]``. Linux (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from procstats import cpu_seconds, rss_kib  # noqa: E402  (bench/ is the script's directory)

from auto_core.lifecycle import Api  # noqa: E402
from auto_core.paths import Home  # noqa: E402

EXIT_RE = re.compile(r"^(\S+ \S+) exit crashy pid \d+ .*restarting in ([\d.]+) s$")
START_RE = re.compile(r"^(\S+ \S+) start crashy pid \d+")


def stamp(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def run(seconds: float, base: float, cap: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="auto-crashloop-") as tmp:
        home = Home(Path(tmp) / "home")
        env = dict(os.environ, AUTO_HOME=str(home.root))
        api = Api(home, warn=lambda m: None)
        api.add("crashy", "exit 1", workdir="/", backoff_base=base, backoff_max=cap, start=False)
        out = Path(tmp) / "watch.out"
        with open(out, "wb") as fh:
            watcher = subprocess.Popen([sys.executable, "-m", "auto_core", "watch"], stdout=fh,
                                       stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try:
            deadline = time.monotonic() + 15
            while b"watcher started" not in out.read_bytes():
                if time.monotonic() > deadline or watcher.poll() is not None:
                    raise SystemExit(f"watcher did not start:\n{out.read_text()}")
                time.sleep(0.05)
            rss0 = rss_kib(watcher.pid)
            api.start(["crashy"])
            api.reap()
            t_start = time.monotonic()
            # The loop reaches the cap after about 2 * cap seconds; measure CPU from then on.
            warm = min(seconds / 2, 2 * cap + 1)
            time.sleep(warm)
            cpu0, wall0 = cpu_seconds(watcher.pid), time.monotonic()
            time.sleep(max(0.0, seconds - warm))
            cpu1, wall1 = cpu_seconds(watcher.pid), time.monotonic()
            rss1 = rss_kib(watcher.pid)
            alive = watcher.poll() is None
        finally:
            watcher.kill()
            watcher.wait()
            api.stop(["crashy"])
        text = out.read_text(errors="replace")
        state = json.loads(home.state_file.read_text())["processes"]["crashy"]
    exits = [(stamp(m.group(1)), float(m.group(2))) for line in text.splitlines() if (m := EXIT_RE.match(line))]
    starts = [stamp(m.group(1)) for line in text.splitlines() if (m := START_RE.match(line))]
    delays = [d for _, d in exits]
    # Gap between a death being logged and the next start being logged, vs the scheduled delay.
    early = []
    for (t_exit, delay), t_next in zip(exits, starts, strict=False):
        if t_next < t_exit + delay - 0.05:  # log stamps are to the millisecond
            early.append((t_exit, delay, t_next))
    cap_at = next((i for i, d in enumerate(delays) if d >= cap - 1e-9), None)
    return {
        "seconds": round(time.monotonic() - t_start, 1),
        "base": base,
        "cap": cap,
        "restarts": len(starts),
        "restart_attempt": state.get("restart_attempt"),
        "delays_first": delays[:10],
        "delays_at_cap": sum(1 for d in delays if abs(d - cap) < 1e-9),
        "cap_reached_after_restarts": cap_at,
        "delays_above_cap": [d for d in delays if d > cap + 1e-9],
        "early_restarts": len(early),
        "watcher_cpu_percent_at_cap": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 3),
        "measured_window_s": round(wall1 - wall0, 1),
        "watcher_rss_kib": [rss0, rss1],
        "watcher_alive": alive,
        "tracebacks": text.count("Traceback"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--base", type=float, default=0.05)
    parser.add_argument("--max", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.seconds, args.base, args.max)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")
    ok = (result["watcher_alive"] and result["cap_reached_after_restarts"] is not None
          and not result["delays_above_cap"] and not result["early_restarts"]
          and result["watcher_cpu_percent_at_cap"] < 1.0 and not result["tracebacks"])
    print("PASS" if ok else "FAIL", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
