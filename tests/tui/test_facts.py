"""CPU and memory are those of the whole service (its process group), not the shell leader."""

from __future__ import annotations

from helpers import read_state, wait_until

from auto_core.lifecycle import Api
from auto_tui.facts import Sampler

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
