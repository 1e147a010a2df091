"""CPU and memory are those of the whole service (its process group), not the shell leader."""

from __future__ import annotations

from helpers import read_state, wait_until

from auto_core.lifecycle import Api
from auto_tui.facts import Facts, History, Sampler

# The leader is a shell; the memory and the busy loop live in its children.
SERVICE = (
    "python3 -c 'b = bytearray(80 * 2**20); b[::4096] = b\"x\" * len(b[::4096]); import time; time.sleep(300)' & "
    "python3 -c 'while True: pass' & wait"
)


def test_sampler_sums_the_process_group(home, tmp_path):
    Api(home).add("heavy", SERVICE, workdir=str(tmp_path))
    entry = read_state(home.root)["processes"]["heavy"]
    want = {entry["pid"]: entry["create_time"]}
    wait_until(lambda: (f := Sampler().sample(want)) and f[entry["pid"]].rss > 80 * 2**20,
               message="the children's memory to count")
    sampler = Sampler()
    assert sampler.sample(want)[entry["pid"]].cpu is None  # no rate before a second sample
    # A rate needs time between two samples: polled every 0.3 s.
    wait_until(lambda: (sampler.sample(want)[entry["pid"]].cpu or 0.0) >= 40, timeout=10, step=0.3,
               message="the busy child's CPU to reach 40%")


def test_sampler_skips_groups_that_are_gone(home, tmp_path):
    assert Sampler().sample({2**22 + 12345: 1.0}) == {}


def test_history_keeps_one_point_per_step_per_run_and_forgets_removed_processes():
    now = [100.0]
    history = History(points=3, step=2.0, clock=lambda: now[0])
    for t, cpu, rss in ((100.0, None, 10), (101.0, 5.0, 11), (102.0, 1.0, 12), (103.5, 9.0, 13),
                        (104.0, 2.0, 14), (106.0, 3.0, 15)):
        now[0] = t
        history.add({"web": (7, 1.0, Facts(cpu, rss))})
    # Points began at 100, 102, 104 and 106 (the first one went: 3 points); within a step the
    # highest CPU % and the last memory count.
    assert history.series("web") == ([9.0, 2.0, 3.0], [13.0, 14.0, 15.0])
    history.add({"web": (8, 2.0, Facts(None, 20))})  # a new run: a new history
    assert history.series("web") == ([0.0], [20.0])
    history.keep({"db"})
    assert history.series("web") == ([], [])
