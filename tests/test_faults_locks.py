"""The state lock and the watch lock under faults: deleted lock files, a suspended holder.

Real processes and real files: writers are subprocesses using the lifecycle API, watchers are
``python -m auto_core watch``, a lock holder is a subprocess that stops itself with SIGSTOP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers import ROOT, auto, proc_state, read_state, run_cli, wait_until

from auto_core.store import state, watchlock
from auto_core.store.paths import Home

WRITERS = 8
ADDS = 25

WRITER = textwrap.dedent("""
    import sys
    from auto_core.errors import AutoError
    from auto_core.lifecycle import Api
    from auto_core.store.paths import Home

    api = Api(Home.resolve(sys.argv[1]), warn=lambda m: None, say=lambda m: None)
    w, n = int(sys.argv[2]), int(sys.argv[3])
    for i in range(n):
        try:
            outcome = api.add(f"w{w}-{i}", "sleep 1", workdir="/", start=False)
        except AutoError as exc:
            print(f"failed w{w}-{i}: {exc}", file=sys.stderr, flush=True)
            continue
        if outcome.ok:
            print(outcome.name, flush=True)
""")

# Takes the state lock, says so on stdout, then stops itself until SIGCONT (and then exits).
HOLDER = textwrap.dedent("""
    import os, signal, sys
    from auto_core.store import state
    from auto_core.store.paths import Home

    with state.locked(Home.resolve(sys.argv[1])):
        print("locked", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)
""")


def _env(home: Home) -> dict:
    return dict(os.environ, AUTO_HOME=str(home.root), PYTHONPATH=str(ROOT))


class _Deleter(threading.Thread):
    """Deletes ``path`` over and over until stopped; counts the deletions that hit a file."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.deleted = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                os.unlink(self.path)
                self.deleted += 1
            except FileNotFoundError:
                pass
            time.sleep(0.0002)


@pytest.mark.slow
def test_deleting_the_state_lock_under_parallel_writers_loses_no_add(home, tmp_path):
    """8 writer processes add 25 services each while the lock file is deleted again and
    again: every add that reported success is in state.json."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    with state.transaction(home):  # local/ and the lock file, for the deleter to find
        pass
    deleter = _Deleter(home.state_lock)
    deleter.start()
    procs = [subprocess.Popen([sys.executable, str(script), str(home.root), str(w), str(ADDS)],
                              env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(WRITERS)]
    reported: set[str] = set()
    errors = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            reported.update(out.split())
            errors.append(err)
    finally:
        deleter.stop.set()
        deleter.join(10)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert deleter.deleted > 0, "the lock file was never deleted: the test proves nothing"
    stored = set(read_state(home.root)["processes"])
    assert reported - stored == set(), f"{len(reported - stored)} reported adds are missing"
    assert len(reported) == WRITERS * ADDS, "".join(errors)
    assert stored == reported
    print(f"\nlocks: {len(reported)} adds by {WRITERS} writers, lock file deleted {deleter.deleted} times,"
          f" {len(reported - stored)} missing")


def _holder(home: Home) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(home.root)], env=_env(home),
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    assert holder.stdout.readline() == "locked\n"
    wait_until(lambda: proc_state(holder.pid) == "T", 5, message="the holder to stop itself")
    return holder


def _end(proc: subprocess.Popen) -> None:
    """SIGCONT then SIGKILL: a stopped process must be woken to die promptly everywhere."""
    if proc.poll() is None:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
    proc.wait(10)


@pytest.mark.slow
def test_a_suspended_lock_holder_is_named_within_3_s(home):
    """A command waiting for the state lock says once who holds it (pid, command, stopped)
    after 2 s, and goes on once the holder is gone."""
    holder = _holder(home)
    lines: list[str] = []
    began = time.monotonic()
    adder = subprocess.Popen([sys.executable, "-m", "auto_core", "add", "api", "sleep 1000", "--no-start"],
                             env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def read() -> None:
        assert adder.stderr is not None
        for line in adder.stderr:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(lambda: lines, 3.0, step=0.01, message="the waiting notice")
        took = time.monotonic() - began
        assert lines[0].startswith(f"auto: warning: waiting for the state lock held by pid {holder.pid} ("
                                   f"{sys.executable} -c"), lines
        assert lines[0].endswith(", stopped)\n"), lines
        assert 2.0 <= took < 3.0, took
        assert adder.poll() is None  # still waiting, not failed
        _end(holder)
        assert adder.wait(30) == 0, lines
    finally:
        _end(holder)
        if adder.poll() is None:
            adder.kill()
            adder.wait()
        reader.join(5)
    assert len(lines) == 1, lines  # said once
    assert "api" in read_state(home.root)["processes"]
    print(f"\nlocks: waiting notice after {took:.2f} s")


def test_a_lock_held_past_the_bound_ends_with_one_error_line(home, capsys, monkeypatch):
    monkeypatch.setattr(state, "LOCK_WAIT", 1.0)
    monkeypatch.setattr(state, "LOCK_NOTICE", 0.3)
    holder = _holder(home)
    try:
        before = home.state_file.read_bytes() if home.state_file.exists() else None
        began = time.monotonic()
        code, _, err = auto(capsys, "add", "api", "sleep 1000", "--no-start")
        took = time.monotonic() - began
    finally:
        _end(holder)
    assert code == 1, err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(f"auto: warning: waiting for the state lock held by pid {holder.pid} (")
    assert lines[1] == (f"auto: error: the state lock is still held by pid {holder.pid}"
                        f" ({lines[0].split('(', 1)[1][:-1]}) after 1 s; nothing was changed")
    assert 1.0 <= took < 5.0
    after = home.state_file.read_bytes() if home.state_file.exists() else None
    assert after == before


def test_the_non_blocking_transaction_never_waits(home):
    with state.transaction(home) as data:
        data["processes"]["a"] = {"command": "true"}
    holder = _holder(home)
    try:
        began = time.monotonic()
        with pytest.raises(state.Busy):
            with state.StateFile(home).transaction(blocking=False) as data:
                data["processes"]["b"] = {"command": "true"}
        assert time.monotonic() - began < 0.1
    finally:
        _end(holder)
    with state.StateFile(home).transaction(blocking=False) as data:
        data["processes"]["b"] = {"command": "true"}
    assert sorted(read_state(home.root)["processes"]) == ["a", "b"]


def test_a_deleted_lock_file_is_made_again_and_locking_still_excludes(home):
    with state.transaction(home):
        pass
    os.unlink(home.state_lock)
    holder = _holder(home)
    try:
        assert home.state_lock.exists()  # the holder made it again
        os.unlink(home.state_lock)  # deleted under the holder: the next writer must still wait
        with pytest.raises(state.Busy):
            with state.transaction(home, blocking=False):
                pass
    finally:
        _end(holder)
    with state.transaction(home, blocking=False):
        pass


@pytest.mark.slow
def test_a_second_watcher_refuses_when_watch_lock_was_deleted(home, watcher):
    home.local.mkdir(parents=True)
    first = watcher()
    assert watchlock.holder(home) == first.pid
    os.unlink(home.watch_lock)
    assert watchlock.holder(home) == first.pid  # still known: by the home's lock
    second = run_cli("watch", home=home.root, timeout=30)
    assert second.returncode == 1, second.stderr
    assert second.stderr == (f"auto: error: a watcher is already running for {home.root}"
                             f" (pid {first.pid})\n")
    # A face that needs a watcher does not start another one either.
    r = run_cli("add", "api", "sleep 1000", home=home.root, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "started the watcher" not in r.stderr
    assert read_state(home.root)["processes"]["api"]["pid"]
    assert first.proc.poll() is None
