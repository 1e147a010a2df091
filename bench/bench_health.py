"""Health-check bench: what the watcher's checks cost while nothing changes.

N services (default 200, ``sleep 100000``) each with ``--health http://127.0.0.1:PORT/`` every
``--interval`` s (default 10) against one small threaded HTTP server in this process (its CPU
is not the watcher's). Once every service is healthy and ``--settle`` s more have passed, the
watcher's CPU time (every thread, its health pool included) per wall second is measured over
``--idle`` s, and the same again for the same N services without checks, as the baseline.
Reported: CPU in ms per second and in % of one core for both, the checks the server answered
in the window, and how often ``state.json`` was replaced in it (a healthy service is not
written again: 0 expected). Verdict: the watcher with checks under ``--budget`` % of a core
(default 1).

Usage: ``.venv/bin/python bench/bench_health.py [--n 200] [--interval 10] [--idle 60]
[--json]``. Linux (/proc). Every process it starts is stopped at the end, also on a failure,
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness import (
    AutoWatcher,
    Cleanup,
    StateReader,
    define_auto,
    end_any_watcher,
    kill_tagged,
    new_tag,
    on_signals_exit,
    wait_for,
)
from procstats import cpu_seconds, rss_kib

from auto_core.lifecycle import Api  # noqa: E402
from auto_core.store.paths import Home  # noqa: E402


class _Answers(BaseHTTPRequestHandler):
    count = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).count += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def run(n: int, interval: float | None, settle: float, idle: float, port: int) -> dict:
    """One case: N services, with an HTTP check every ``interval`` s (None: no check)."""
    with tempfile.TemporaryDirectory(prefix="auto-health-") as tmpdir, Cleanup() as cleanup:
        tmp = Path(tmpdir)
        tag = new_tag("health")
        root = tmp / "home"
        cleanup.push("kill what auto started", lambda: kill_tagged(tag))
        cleanup.push("stop a watcher started on demand", lambda: end_any_watcher(root))
        options = {} if interval is None else {
            "health": f"http://127.0.0.1:{port}/", "health_interval": interval}
        define_auto(root, [(f"s{i:04d}", "sleep 100000", options) for i in range(n)], tag, Path("/"))
        watcher = AutoWatcher(root, tag, tmp / "watch.out")
        cleanup.push("stop the watcher", watcher.stop)
        watcher.start()
        api = Api(Home(root), warn=lambda m: None, say=lambda m: None)
        api.start_all(wait=0)
        reader = StateReader(root)

        def ready() -> bool:
            procs = reader.processes()
            return len(procs) == n and all(
                e.get("pid") and (interval is None or e.get("health_state") == "healthy")
                for e in procs.values())

        wait_for(ready, 120, "every service up (and healthy)", step=0.2)
        time.sleep(settle)  # fixed windows, not waits for an event
        state = root / "local" / "state.json"
        ino0, answered0 = os.stat(state).st_ino, _Answers.count
        c0, t0 = cpu_seconds(watcher.pid), time.monotonic()
        replaced, last = 0, ino0
        end = t0 + idle
        while time.monotonic() < end:
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
            now = os.stat(state).st_ino
            if now != last:
                replaced, last = replaced + 1, now
        wall = time.monotonic() - t0
        cpu = cpu_seconds(watcher.pid) - c0
        result = {
            "services": n,
            "interval_s": interval,
            "cpu_ms_per_s": round(cpu / wall * 1000, 3),
            "cpu_percent_of_a_core": round(cpu / wall * 100, 3),
            "checks_answered": _Answers.count - answered0,
            "state_writes": replaced,
            "rss_mib": round(rss_kib(watcher.pid) / 1024, 1),
            "window_s": round(wall, 1),
        }
        api.stop_all()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--budget", type=float, default=1.0, help="%% of one core")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    on_signals_exit()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        checked = run(args.n, args.interval, args.settle, args.idle, port)
        plain = run(args.n, None, args.settle, args.idle, port)
    finally:
        server.shutdown()
        server.server_close()
    ok = checked["cpu_percent_of_a_core"] < args.budget
    if args.json:
        print(json.dumps({"with_checks": checked, "without": plain, "pass": ok}, indent=2))
    else:
        print("| | with checks | without |\n|---|---|---|")
        for key in checked:
            print(f"| {key} | {checked[key]} | {plain[key]} |")
    print("PASS" if ok else "FAIL", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
