"""Benchmark of log maintenance: 200 services, 50,000 old log files.

Measures, in CPU seconds of this process (user + system, ``time.process_time``):
- a whole retention pass over the tree with nothing to do (every file already compressed
  and within retention), and one that also deletes 10% of the files;
- the largest single tick during a pass (work is spread: bounded entries per tick);
- the cost of a tick when nothing is due (what the idle watcher pays every loop), and of a
  tick that runs the size check of 200 live logs (one os.stat each, every 5 s).

Run: ``.venv/bin/python bench/bench_logs.py [--services 200] [--files 50000]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auto_core.logtree.logmaint import DAY, Maintainer  # noqa: E402
from auto_core.store import state  # noqa: E402
from auto_core.store.paths import Home  # noqa: E402


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def build(home: Home, services: int, files: int, now: float, expired_share: float) -> dict[str, str]:
    """``files`` old run files spread over ``services`` processes; returns name -> live log."""
    per = files // services
    with state.transaction(home) as data:
        procs = state.processes(data)
        for s in range(services):
            procs[f"svc{s:03d}"] = {"command": "true", "pid": None, "create_time": None}
    live = {}
    expired_every = round(1 / expired_share) if expired_share else 0
    start = datetime(2026, 1, 1)
    made: set[Path] = set()
    for s in range(services):
        name = f"svc{s:03d}"
        for i in range(per):
            when = start + timedelta(minutes=37 * i)
            d = home.process_logs(name) / f"{when:%Y}" / f"{when:%m}"
            if d not in made:
                d.mkdir(parents=True, exist_ok=True)
                made.add(d)
            path = d / f"{name}_{when:%y%m%d_%H%M%S}.log.gz"
            path.write_bytes(b"\x1f\x8b")
            # ages between 1.5 and 29 days, or 31+ for the share that retention must delete
            days = 31 + i % 5 if expired_every and i % expired_every == 0 else 1.5 + (i % 27)
            t = now - days * DAY
            os.utime(path, (t, t))
        live_path = home.process_logs(name) / "2026" / "01" / f"{name}_260101_000000_1.log"
        live_path.parent.mkdir(parents=True, exist_ok=True)
        live_path.write_bytes(b"live\n")
        live[name] = str(live_path)
    return live


def full_pass(m: Maintainer, live: dict) -> tuple[float, float, int, int]:
    """CPU of one whole pass, the largest tick, the number of ticks and of deletions."""
    before = m.passes_done
    total = time.process_time()
    worst = 0.0
    ticks = deleted = 0
    while m.passes_done == before:
        t = time.process_time()
        events = m.tick(live, None)
        worst = max(worst, time.process_time() - t)
        ticks += 1
        deleted += sum(e.kind == "deleted" for e in events)
    return time.process_time() - total, worst, ticks, deleted


def tick_cost(m: Maintainer, live: dict, clock: Clock, n: int, step: float) -> float:
    """Average CPU of one tick, the clock moving by ``step`` between ticks."""
    t = time.process_time()
    for _ in range(n):
        clock.now += step
        m.tick(live, None)
    return (time.process_time() - t) / n


def roll_and_compress(home: Home, now: float) -> None:
    """Roll a 50 MiB live log, then gzip it as a finished run, 8 MiB per tick."""
    from auto_core.logtree.logmaint import MiB, roll

    path = home.process_logs("big") / "2026" / "01" / "big_260101_000000.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    line = b"2026-01-01 00:00:00 INFO request served in 12 ms path=/api/items?id=12345\n"
    with open(path, "wb") as fh:
        fh.write(line * (50 * MiB // len(line)))
    t, w = time.process_time(), time.perf_counter()
    part, _ = roll(path)
    print(f"roll of a 50 MiB log: {time.process_time() - t:.3f} s CPU, {time.perf_counter() - w:.3f} s wall")
    t = now - 2 * DAY
    os.utime(part, (t, t))
    clock = Clock(now)
    m = Maintainer(home, clock)
    cpu, worst, ticks, _ = full_pass(m, {})
    print(f"gzip of that 50 MiB part (within a pass): {cpu:.3f} s CPU over {ticks} ticks, "
          f"largest tick {worst * 1000:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=200)
    ap.add_argument("--files", type=int, default=50_000)
    args = ap.parse_args()
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp))
        t = time.perf_counter()
        live = build(home, args.services, args.files, now, expired_share=0.1)
        print(f"built {args.files} files for {args.services} services in {time.perf_counter() - t:.1f} s")

        clock = Clock(now)
        m = Maintainer(home, clock)
        cpu, worst, ticks, expired = full_pass(m, live)
        print(f"pass deleting {expired} expired files: {cpu:.3f} s CPU over {ticks} ticks, "
              f"largest tick {worst * 1000:.1f} ms")

        clock.now += 3601
        cpu, worst, ticks, _ = full_pass(m, live)
        print(f"pass with nothing to do over {args.files - expired} files: {cpu:.3f} s CPU over {ticks} ticks, "
              f"largest tick {worst * 1000:.1f} ms")

        idle = tick_cost(m, live, clock, 200_000, 0.0)
        print(f"idle tick (nothing due): {idle * 1e6:.2f} us")
        m.size_interval = 0.0
        m._next_size_check = 0.0  # due now, and at every tick below
        check = tick_cost(m, live, clock, 200, 0.001)
        print(f"tick with the size check of {len(live)} live logs: {check * 1e3:.2f} ms "
              f"(once per 5 s: {check / 5 * 100:.3f}% of a core)")
        with tempfile.TemporaryDirectory() as other:
            roll_and_compress(Home(Path(other)), now)
        print(f"idle watcher at 10 loops/s pays {idle * 10 * 100:.5f}% of a core for maintenance "
              f"between passes, plus the size checks above")


if __name__ == "__main__":
    main()
