"""Benchmark of ``auto log -f`` over many services at once (the merged follower).

50 services (defined in a temp home, each with a run log) are written by one writer process at
1,000 lines/s each (10 lines per service every 10 ms, one O_APPEND write each, as a service's
stdout would), while the real ``auto log -f -n 0`` follows them all into a pipe that this
process drains and counts. Measures:

- lines/s printed while the writer runs, against lines/s written;
- catch-up: how long after the writer stops the follower has printed every line written
  (every line exactly once: the total must match);
- the follower's CPU (share of one core) and its peak RSS (VmHWM), plus its RSS sampled every
  0.5 s (bounded memory: flat, not growing with the lines passed through).

Run: ``.venv/bin/python bench/bench_logs_merged.py [--services 50] [--rate 1000] [--seconds 20]
[--json]``. Linux (/proc). Every process it starts is ended at the end, also on a failure,
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Cleanup, end_process, kill_tagged, new_tag, on_signals_exit, wait_for  # noqa: E402
from procstats import cpu_seconds, rss_kib  # noqa: E402

from auto_core.lifecycle import Api  # noqa: E402
from auto_core.logtree import logs  # noqa: E402
from auto_core.store.paths import Home  # noqa: E402

WRITER = r"""
import os, sys, time
paths, rate, seconds = sys.argv[3:], int(sys.argv[1]), float(sys.argv[2])
fds = [os.open(p, os.O_WRONLY | os.O_APPEND) for p in paths]
names = [os.path.basename(p).rsplit("_", 2)[0] for p in paths]
per_tick, tick = rate // 100, 0.01
seq = [0] * len(fds)
start = time.monotonic()
ticks = int(seconds / tick)
for t in range(ticks):
    for i, fd in enumerate(fds):
        base = seq[i]
        os.write(fd, "".join(f"{names[i]} {base + k:09d} {'.' * 60}\n" for k in range(per_tick)).encode())
        seq[i] = base + per_tick
    delay = start + (t + 1) * tick - time.monotonic()
    if delay > 0:
        time.sleep(delay)
print(sum(seq), time.monotonic() - start, flush=True)
"""


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next((int(line.split()[1]) for line in fh if line.startswith("VmHWM:")), 0)


class Counter:
    """Drains a pipe on a thread, counting its lines."""

    def __init__(self, fd: int):
        self.fd = fd
        self.lines = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except OSError:
                return
            if not chunk:
                return
            self.lines += chunk.count(b"\n")


def open_fds(pid: int, paths: set[str]) -> int:
    found = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in paths:
                    found += 1
            except OSError:
                pass
    except OSError:
        return 0
    return found


def run(services: int, rate: int, seconds: float) -> dict:
    tag = new_tag("logs-merged")
    with tempfile.TemporaryDirectory(prefix="bench-logs-merged-") as tmp, Cleanup() as cleanup:
        cleanup.push("kill tagged processes", lambda: kill_tagged(tag))
        home = Home(Path(tmp) / "home")
        api = Api(home, say=lambda _: None)
        paths = []
        for s in range(services):
            name = f"svc{s:02d}"
            api.add(name, "true", workdir="/", start=False)
            path, fd = logs.create_run_log(home, name)
            os.close(fd)
            paths.append(str(path))
        env = {**os.environ, "AUTO_HOME": str(home.root), "BENCH_TAG": tag}
        env.pop("NO_COLOR", None)
        follower = subprocess.Popen([sys.executable, "-m", "auto_core", "log", "-f", "-n", "0"],
                                    stdout=subprocess.PIPE, env=env)
        cleanup.push("end the follower", lambda: end_process(follower.pid))
        assert follower.stdout is not None
        counter = Counter(follower.stdout.fileno())
        wanted = set(paths)
        wait_for(lambda: open_fds(follower.pid, wanted) == len(wanted), 30, "the follower to open every log")

        cpu0, wall0 = cpu_seconds(follower.pid), time.monotonic()
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(rate), str(seconds), *paths],
                                  stdout=subprocess.PIPE, text=True, env=env)
        cleanup.push("end the writer", lambda: end_process(writer.pid) if writer.poll() is None else None)
        rss_samples = []
        while writer.poll() is None:
            rss_samples.append(rss_kib(follower.pid))
            time.sleep(0.5)
        out, _ = writer.communicate()
        written, writer_seconds = out.split()
        written, writer_seconds = int(written), float(writer_seconds)
        printed_at_end = counter.lines
        stopped = time.monotonic()
        wait_for(lambda: counter.lines >= written, 120, "the follower to print every line", step=0.01)
        caught_up = time.monotonic() - stopped
        cpu = cpu_seconds(follower.pid) - cpu0
        wall = time.monotonic() - wall0
        peak = peak_rss_kib(follower.pid)
        time.sleep(0.3)  # anything more than written would be a line printed twice
        extra = counter.lines - written
        return {
            "services": services,
            "rate_per_service": rate,
            "seconds": round(writer_seconds, 2),
            "written_lines": written,
            "written_lines_per_s": round(written / writer_seconds),
            "printed_while_writing_per_s": round(printed_at_end / writer_seconds),
            "catch_up_s": round(caught_up, 3),
            "extra_lines": extra,
            "follower_cpu_share": round(cpu / wall, 3),
            "follower_peak_rss_mib": round(peak / 1024, 1),
            "follower_rss_mib_first_last": [round(rss_samples[0] / 1024, 1), round(rss_samples[-1] / 1024, 1)]
            if rss_samples else None,
        }


def main() -> None:
    on_signals_exit()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--rate", type=int, default=1000, help="lines per second per service (a multiple of 100)")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.services, args.rate, args.seconds)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
