"""TUI benchmark: first paint, refresh tick cost, huge-log open, fast-log input lag.

Run: .venv/bin/python bench/bench_tui.py [--runs 7] [--gib 1]
Everything runs in temp dirs (cleaned up). Numbers go to docs/benchmarks.md, section "TUI".

1. First paint: a child process is timed from spawn until the app's first refresh has run
   (headless driver), for a bare Textual app with a DataTable and for ``auto tui``'s app on a
   home with 5 services (both the first frame and the first frame with rows), interleaved.
2. Refresh tick: UI-thread time of applying one snapshot of 500 processes in which every row
   changes (uptime, CPU, memory), i.e. the keyed diff; and the off-thread row build for context.
3. Huge log: time from asking the pane to show a process with a 1 GiB log until its last lines
   are in the pane, and the child's RSS growth for a 1 MiB vs a 1 GiB log.
4. Fast log: a writer appends 10 MB/s of coloured lines to the shown log while a key is
   pressed every 100 ms; latency from key to cursor move, and event-loop lag (50 ms timer).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BARE = r"""
import sys
from textual.app import App
from textual.widgets import DataTable, Footer
class Bare(App):
    def compose(self):
        t = DataTable()
        t.add_columns("NAME", "STATUS", "PID")
        yield t
        yield Footer()
    def on_mount(self):
        self.call_after_refresh(self.done)
    def done(self):
        sys.__stdout__.write("painted\n"); sys.__stdout__.flush(); self.exit()
Bare().run(headless=True)
"""

AUTO = r"""
import sys
import auto_core.cmdline.cli  # the real entry point's import cost
from auto_core.store.paths import Home
from auto_tui.app import AutoApp, SnapshotReady
class Timed(AutoApp):
    CSS_PATH = AutoApp.CSS_PATH
    first = False
    def on_mount(self):
        self.call_after_refresh(self.frame)
    def frame(self):
        sys.__stdout__.write("painted\n"); sys.__stdout__.flush()
    def on_snapshot_ready(self, message):
        if not self.first:
            self.first = True
            self.call_after_refresh(self.rows_painted)
    def rows_painted(self):
        sys.__stdout__.write("rows\n"); sys.__stdout__.flush(); self.exit()
Timed.CSS_PATH = str(__import__("pathlib").Path(__import__("auto_tui.app").app.__file__).with_name("app.tcss"))
Timed(home=Home.resolve()).run(headless=True)
"""


def time_child(code: str, env: dict, markers: tuple[str, ...]) -> dict[str, float]:
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    got: dict[str, float] = {}
    for line in proc.stdout:
        word = line.strip()
        if word in markers and word not in got:
            got[word] = (time.perf_counter() - started) * 1000
    proc.wait(timeout=30)
    return got


def bench_first_paint(runs: int) -> None:
    from harness import AutoWatcher, Cleanup, end_any_watcher, kill_tagged, new_tag

    from auto_core.lifecycle import Api
    from auto_core.store.paths import Home

    # The watcher runs before the services are added (each add waits for it to start its
    # service) and before the app opens (so the app finds it and starts none of its own).
    tag = new_tag("tui")
    with tempfile.TemporaryDirectory() as tmp, Cleanup() as cleanup:
        env = dict(os.environ, AUTO_HOME=tmp)
        cleanup.push("kill what auto started", lambda: kill_tagged(tag))
        cleanup.push("stop a watcher started on demand", lambda: end_any_watcher(Path(tmp)))
        watcher = AutoWatcher(Path(tmp), tag, Path(tmp) / "watch.out")
        cleanup.push("stop the watcher", watcher.stop)
        watcher.start()
        api = Api(Home(Path(tmp)), warn=lambda m: None)
        for i in range(5):
            api.add(f"svc{i}", "sleep 100000", env={"BENCH_TAG": tag}, wait=0)
        bare, frame, rows = [], [], []
        for _ in range(runs):
            bare.append(time_child(BARE, env, ("painted",))["painted"])
            got = time_child(AUTO, env, ("painted", "rows"))
            frame.append(got["painted"])
            rows.append(got["rows"])
        api.stop_all()
    med = statistics.median
    print(f"first paint, bare Textual + DataTable: median {med(bare):.0f} ms (min {min(bare):.0f}, max {max(bare):.0f})")
    print(f"first paint, auto tui (frame):         median {med(frame):.0f} ms (min {min(frame):.0f}, max {max(frame):.0f})")
    print(f"first paint, auto tui (with rows):     median {med(rows):.0f} ms (min {min(rows):.0f}, max {max(rows):.0f})")


class Source:
    def __init__(self, views, logs=None, home=None):
        from auto_core.store.paths import Home

        self.views = views
        self.logs = logs or {}
        self.home = home or Home(Path("/nonexistent/auto-bench"))

    def snapshot(self):
        return list(self.views)

    def log_path(self, name):
        return self.logs.get(name)

    def watcher(self):
        return None


def make_views(n: int, tick: int):
    from auto_core.model import ProcessView

    views = []
    for i in range(n):
        running = i % 5 != 0
        views.append(ProcessView(
            name=f"svc{i:03d}", status="running" if running else "stopped", pid=10000 + i if running else None,
            port=None, command="sleep 100000", workdir="/tmp", uptime_s=100.0 + tick if running else None,
            restarts=0, next_restart_in_s=None, log_path=None, last_exit=None,
        ))
    return views


def bench_tick(n: int = 500, ticks: int = 30) -> None:
    from auto_tui.app import AutoApp, SnapshotReady
    from auto_tui.facts import Facts
    from auto_tui.rows import cells

    async def main():
        app = AutoApp(api=Source(make_views(n, 0)), poll_interval=3600)
        async with app.run_test(size=(120, 40)) as pilot:
            while app.query_one("#table").row_count < n:
                await pilot.pause(0.05)
            build, apply_ms = [], []
            for t in range(1, ticks + 1):
                views = make_views(n, t)
                t0 = time.perf_counter()
                rows = {v.name: cells(v, Facts(float(t % 7), (50 + t) << 20) if v.pid else None, 0.0) for v in views}
                build.append((time.perf_counter() - t0) * 1000)
                message = SnapshotReady({v.name: v for v in views}, rows, None, None)
                t0 = time.perf_counter()
                app._on_snapshot(message)
                apply_ms.append((time.perf_counter() - t0) * 1000)
                await pilot.pause(0.02)
            assert app.query_one("#table").row_count == n
        med = statistics.median
        print(f"refresh tick, {n} processes, every row changed: UI thread median {med(apply_ms):.1f} ms, "
              f"max {max(apply_ms):.1f} ms; row build (worker thread) median {med(build):.1f} ms")

    asyncio.run(main())


HUGE = r"""
import asyncio, sys, time, psutil
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from bench.bench_tui import Source, make_views
from auto_tui.app import AutoApp
path = sys.argv[1]
async def main():
    app = AutoApp(api=Source([], {"big": path}), poll_interval=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        pane = app.query_one("#logpane")
        rss0 = psutil.Process().memory_info().rss
        t0 = time.perf_counter()
        pane.show("big")
        while not pane.entries:
            await pilot.pause(0.001)
        ms = (time.perf_counter() - t0) * 1000
        await pilot.pause(0.3)
        rss1 = psutil.Process().memory_info().rss
        print(f"{ms:.1f} {(rss1 - rss0) / 2**20:.1f} {pane.entries[-1][1].plain}")
asyncio.run(main())
"""


def bench_huge_log(gib: float, runs: int) -> None:
    line = b"2026-11-26 10:00:00 INFO \x1b[32mrequest\x1b[0m GET /api/items?page=1 -> 200 in 3 ms\n"
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "small.log", Path(tmp) / "big.log"
        block = line * ((8 << 20) // len(line))
        with open(small, "wb") as fh:
            fh.write(block[: (1 << 20) - (1 << 20) % len(line)])
        t0 = time.perf_counter()
        with open(big, "wb") as fh:
            while fh.tell() < gib * (1 << 30):
                fh.write(block)
            fh.write(b"the very last line\n")
        size = big.stat().st_size
        print(f"wrote {size / 2**30:.2f} GiB test log in {time.perf_counter() - t0:.1f} s")
        for label, path in (("1 MiB", small), (f"{size / 2**30:.2f} GiB", big)):
            samples = []
            for _ in range(runs):
                out = subprocess.run([sys.executable, "-c", HUGE, str(path), str(ROOT)], capture_output=True,
                                     text=True, cwd=ROOT, timeout=60)
                ms, rss, last = out.stdout.split(" ", 2)
                samples.append((float(ms), float(rss)))
            ms = statistics.median(s[0] for s in samples)
            rss = statistics.median(s[1] for s in samples)
            print(f"open log pane on {label}: last lines shown in median {ms:.1f} ms (max {max(s[0] for s in samples):.1f}); "
                  f"RSS growth median {rss:.1f} MiB; last line {last.strip()!r}")


WRITER = r"""
import sys, time
path, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
line = b"2026-11-26 10:00:00 \x1b[33mWARN\x1b[0m worker-7 processed batch 123456 of 999999 in 12 ms ok\n"
chunk = line * int(rate / 100 / len(line))
end = time.monotonic() + seconds
with open(path, "ab", buffering=0) as fh:
    nxt = time.monotonic()
    while time.monotonic() < end:
        fh.write(chunk)
        nxt += 0.01
        time.sleep(max(0.0, nxt - time.monotonic()))
"""


def bench_fast_log(seconds: float = 5.0, rate: float = 10e6) -> None:
    from auto_tui.app import AutoApp

    async def main(tmp: Path):
        log = tmp / "fast.log"
        log.write_text("start\n")
        app = AutoApp(api=Source(make_views(20, 0), {f"svc{i:03d}": str(log) for i in range(20)}), poll_interval=0.5)
        lags: list[float] = []
        async with app.run_test(size=(120, 40)) as pilot:
            while app.query_one("#table").row_count < 20:
                await pilot.pause(0.05)
            last = [time.perf_counter()]

            def tick():
                now = time.perf_counter()
                lags.append((now - last[0] - 0.05) * 1000)
                last[0] = now

            app.set_interval(0.05, tick)
            writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(rate), str(seconds)])
            latencies = []
            lost = 0
            table = app.query_one("#table")
            try:
                end = time.monotonic() + seconds - 0.5
                key = "down"
                while time.monotonic() < end:
                    before = table.cursor_row
                    t0 = time.perf_counter()
                    app.simulate_key(key)  # not pilot.press, which also waits for the app to go idle
                    give_up = time.perf_counter() + 5
                    while table.cursor_row == before and time.perf_counter() < give_up:
                        await asyncio.sleep(0.001)
                    if table.cursor_row == before:
                        lost += 1
                    latencies.append((time.perf_counter() - t0) * 1000)
                    key = "up" if key == "down" else "down"
                    await pilot.pause(0.1)
            finally:
                writer.wait(timeout=seconds + 10)
            size = log.stat().st_size
            pane = app.query_one("#logpane")
            med = statistics.median
        print(f"log growing at {size / seconds / 1e6:.1f} MB/s for {seconds:.0f} s: key -> cursor latency median "
              f"{med(latencies):.1f} ms, max {max(latencies):.1f} ms ({len(latencies)} presses, {lost} lost); "
              f"50 ms timer lag median {med(lags):.1f} ms, max {max(lags):.1f} ms; pane holds {len(pane.entries)} lines")

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(Path(tmp)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--only", choices=["paint", "tick", "huge", "fast"])
    args = parser.parse_args()
    from harness import on_signals_exit

    on_signals_exit()  # SIGTERM unwinds too: the first-paint bench stops its watcher and services
    if args.only in (None, "paint"):
        bench_first_paint(args.runs)
    if args.only in (None, "tick"):
        bench_tick()
    if args.only in (None, "huge"):
        bench_huge_log(args.gib, max(3, args.runs // 2))
    if args.only in (None, "fast"):
        bench_fast_log()


if __name__ == "__main__":
    main()
