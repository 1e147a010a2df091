"""auto apply killed half-way: 200 services applied by a real ``auto apply`` process that is
SIGKILLed at chosen points (from a hook inside it) and at random times. The state must then
hold the old set of definitions or the new one, never a mix, and stay readable."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from helpers import read_state

from auto_core.store.paths import Home

N = 200

# Runs `auto apply FILE --no-start` with a hook that SIGKILLs the process at one point:
# define:K  after K services' definitions were changed in memory, inside the transaction;
# replace   when the new state file is written in full but not yet renamed over the old one;
# renamed   right after that rename (the backup not written yet);
# none      no hook (killed from outside, at a random time).
DRIVER = r"""
import os, signal, sys
hook, path = sys.argv[1], sys.argv[2]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if hook.startswith("define:"):
    from auto_core import setupfile
    left, define = [int(hook.split(":")[1])], setupfile.define
    def counted(entry, fields):
        define(entry, fields)
        left[0] -= 1
        if left[0] == 0:
            die()
    setupfile.define = counted
elif hook in ("replace", "renamed"):
    from auto_core.store import atomic
    replace = os.replace
    def hooked(src, dst):
        if str(dst).endswith("state.json") and hook == "replace":
            die()
        replace(src, dst)
        if str(dst).endswith("state.json"):
            die()
    atomic.os = type(sys)("os_hooked")
    atomic.os.__dict__.update(os.__dict__)
    atomic.os.replace = hooked
from auto_core.cmdline import cli
sys.exit(cli.main(["apply", path, "--no-start"]))
"""


def setup_file(tmp_path, name: str, base: int, extra: int) -> tuple:
    """A file of N services (``sleep BASE+i``), plus ``extra`` more; and its name -> command."""
    commands = {f"s{i:03d}": f"sleep {base + i}" for i in range(N + extra)}
    text = "".join(f'[services.{n}]\ncommand = "{c}"\nenv = {{ SET = "{base}" }}\n\n'
                   for n, c in commands.items())
    path = tmp_path / name
    path.write_text(text)
    return path, commands


def definitions(home) -> dict[str, str]:
    return {n: e["command"] for n, e in read_state(home)["processes"].items()}


def run_apply(home, hook: str, path) -> subprocess.Popen:
    env = dict(os.environ, AUTO_HOME=str(home))
    return subprocess.Popen([sys.executable, "-c", DRIVER, hook, str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> int:
    try:
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode


class Snapshot:
    """The state files as they are now, to put back before each run: every run then goes
    from the same old set to the same new one."""

    def __init__(self, home):
        self.files = [Home(home).state_file, Home(home).state_bak]
        self.data = [f.read_bytes() for f in self.files]

    def restore(self) -> None:
        for path, data in zip(self.files, self.data, strict=True):
            path.write_bytes(data)


@pytest.mark.slow
def test_apply_killed_half_way_leaves_the_old_set_or_the_new_one(tmp_path, auto_home):
    old_path, old = setup_file(tmp_path, "old.toml", 3000, 0)
    new_path, new = setup_file(tmp_path, "new.toml", 5000, 20)  # every command changed, 20 more
    assert finish(run_apply(auto_home, "none", old_path)) == 0
    assert definitions(auto_home) == old
    snapshot = Snapshot(auto_home)

    # Points inside: before the rename the old set stays, from it on the new one is there.
    for hook, want in (("define:1", old), (f"define:{N // 2}", old), (f"define:{N + 19}", old),
                       ("replace", old), ("renamed", new)):
        snapshot.restore()
        assert finish(run_apply(auto_home, hook, new_path)) == -signal.SIGKILL, hook
        assert definitions(auto_home) == want, hook
        base = "3000" if want is old else "5000"
        for name, entry in read_state(auto_home)["processes"].items():  # env moved with it
            assert entry["env"] == {"SET": base}, (hook, name)

    # Killed from outside at random points of a run: never a mix.
    snapshot.restore()
    began = time.monotonic()
    assert finish(run_apply(auto_home, "none", new_path)) == 0
    whole = time.monotonic() - began
    assert definitions(auto_home) == new
    rng = random.Random(1234)
    seen = {"old": 0, "new": 0, "finished": 0}
    for _ in range(40):
        snapshot.restore()
        proc = run_apply(auto_home, "none", new_path)
        try:
            proc.wait(timeout=rng.uniform(0.4, 1.05) * whole)
        except subprocess.TimeoutExpired:  # still running: the kill point
            proc.send_signal(signal.SIGKILL)
        code = finish(proc)
        now = definitions(auto_home)
        assert now in (old, new), f"a mix after a kill (exit {code})"
        seen["finished" if code == 0 else ("new" if now == new else "old")] += 1
    assert seen["old"] + seen["new"] > 0, seen  # some runs were killed, not all finished
