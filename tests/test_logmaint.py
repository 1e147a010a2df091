"""Log maintenance: rolling live files, retention, compression, faults.

Real files in the per-test AUTO_HOME, ages set with os.utime, real services started via the Api.
"""

from __future__ import annotations

import gzip
import os
import re
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers import read_state, wait_until

from auto_core.logtree import logmaint, logs
from auto_core.logtree.logmaint import DAY, Maintainer
from auto_core.store import state

WRITER = """\
import itertools, time
for i in itertools.count():
    print("n", i, flush=True)
    time.sleep(0.0005)
"""


class Clock:
    """A settable wall clock (the Maintainer's only notion of 'now')."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def set_entry(home, name: str, **fields) -> None:
    with state.transaction(home) as data:
        state.processes(data)[name].update(fields)


def make_log(home, name: str, started: datetime, age_days: float, body: bytes = b"hello\n",
             suffix: str = ".log", now: float | None = None) -> Path:
    """A run file as auto names it, with its mtime ``age_days`` before ``now``."""
    directory = home.process_logs(name) / f"{started:%Y}" / f"{started:%m}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}_{started:%y%m%d_%H%M%S}{suffix}"
    path.write_bytes(body)
    age(path, age_days, now)
    return path


def age(path: Path, days: float, now: float | None = None) -> None:
    t = (now if now is not None else time.time()) - days * DAY
    os.utime(path, (t, t))


def run_pass(m: Maintainer, live=None, watcher_log=None, timeout: float = 30) -> list:
    """Tick until the pass that the first tick starts has finished, and the rolls (which run
    in a worker thread) with it; return all events."""
    before = m.passes_done
    events = []

    def finished():
        events.extend(m.tick(live or {}, watcher_log))
        return m.passes_done > before and not m.rolling

    wait_until(finished, timeout, step=0.001, message="the retention pass and its rolls")
    return events


def bounded(limit: int = 10_000):
    """Loop counter that fails instead of hanging when a pass never ends."""
    yield from range(limit)
    raise AssertionError("the retention pass did not finish")


def numbers(data: bytes) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(rb"^n (\d+)$", data, re.M)]


@pytest.mark.slow
def test_roll_keeps_a_live_writer_on_the_same_path_and_loses_at_most_the_truncate_gap(api, home, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    api.add("writer", f"{sys.executable} -u {script}", workdir=str(tmp_path))
    set_entry(home, "writer", log_max_bytes=20_000, log_keep_parts=2)
    entry = read_state(home.root)["processes"]["writer"]
    path = Path(entry["log_path"])
    m = Maintainer(home, size_interval=0.0)
    rolled = []

    def roll_some():
        events = m.tick({"writer": str(path)}, None)
        rolled.extend(e for e in events if e.kind == "rolled")
        assert not [e for e in events if e.error], events
        return len(rolled) >= 4

    wait_until(roll_some, 30, step=0.05, message="four rolls of a live log")
    size_after_roll = path.stat().st_size
    wait_until(lambda: path.stat().st_size > size_after_roll + 200, 10, message="the writer to go on writing")
    api.stop(["writer"])

    entry = read_state(home.root)["processes"]["writer"]
    assert entry["log_path"] == str(path), "the run keeps its file"
    parts = sorted(path.parent.glob(path.name + ".*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    assert [p.name.rsplit(".", 1)[1] for p in parts] == ["3", "4"], "only log_keep_parts parts are kept"
    data = b"".join(p.read_bytes() for p in parts) + path.read_bytes()
    seen = numbers(data[: data.rfind(b"\n") + 1])  # a line cut short by the stop is not a number
    assert seen == sorted(seen) and len(seen) == len(set(seen)), "nothing duplicated or reordered"
    # Two rolls lie inside the kept text (part 3 -> 4 -> main). What is written while a roll
    # copies is copied too; only a line written between its last size check and the truncate
    # (two system calls apart; one line every 0.5 ms here) could be lost.
    lost = (seen[-1] - seen[0] + 1) - len(seen)
    assert lost <= 2, f"lost {lost} lines"
    assert seen[-1] > numbers(parts[-1].read_bytes())[-1], "the writer kept writing after the roll"
    # The stop marker goes in before the signal: after it, only what the writer printed
    # before SIGTERM ended it (maybe a line cut short), then the watcher's end line.
    before, marker, after = path.read_bytes().partition(b"[auto] stopped by user\n")
    assert marker and before.endswith(b"\n"), "the stop marker is a line of the run's log"
    assert re.fullmatch(rb"(n \d+\n)*(n( \d*)?)?\[auto\] killed by SIGTERM after \d+(\.\d)? s\n", after), \
        after[-200:]


def test_roll_function_numbers_parts_and_caps_them(home):
    path = make_log(home, "svc", datetime(2026, 11, 1, 10, 0, 0), 0, b"first\n")
    for i in range(4):
        path.write_bytes(f"content {i}\n".encode())
        part, removed = logmaint.roll(path, keep_parts=2)
        assert part.name == f"{path.name}.{i + 1}"
        assert path.read_bytes() == b"" and part.read_bytes() == f"content {i}\n".encode()
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, path.name + ".3", path.name + ".4"])
    run = logs.runs(home, "svc")[0]
    assert [p.name for p in run.files] == [path.name + ".3", path.name + ".4", path.name]


def test_service_running_across_midnight_keeps_its_file(api, home):
    """A live log must never look finished: an archiver that went by the date alone compressed
    and deleted a live log after midnight."""
    api.add("ticker", "while :; do echo tick; sleep 0.2; done")
    live_path = Path(read_state(home.root)["processes"]["ticker"]["log_path"])
    # A clock 40 days ahead, two seconds before local midnight: the live file looks 40 days old.
    midnight = datetime.combine(datetime.now().date() + timedelta(days=41), datetime.min.time())
    clock = Clock(midnight.timestamp() - 2)
    old_finished = make_log(home, "ticker", datetime(2026, 1, 2, 3, 4, 5), 2, b"yesterday\n", now=clock.now)
    ancient = make_log(home, "ticker", datetime(2026, 1, 1, 3, 4, 5), 45, now=clock.now)

    m = Maintainer(home, clock)
    live = {"ticker": str(live_path)}
    events = run_pass(m, live)
    assert not old_finished.exists() and gzip.decompress(Path(str(old_finished) + ".gz").read_bytes()) == b"yesterday\n"
    assert not ancient.exists()
    assert {e.kind for e in events} == {"compressed", "deleted"}

    clock.now = midnight.timestamp() + 2  # across the boundary: the date changed, a new pass runs
    age(live_path, 40, clock.now)
    events = run_pass(m, live)
    assert m.passes_done == 2
    assert all(str(live_path) not in e.path for e in events), events
    assert live_path.exists() and not Path(str(live_path) + ".gz").exists()
    size = live_path.stat().st_size
    wait_until(lambda: live_path.stat().st_size > size, 10, message="the service to go on writing to its file")
    # `auto logs prune` (no watcher: live services are found by identity) leaves it alone too.
    age(live_path, 40, clock.now)
    assert all(str(live_path) not in e.path for e in Maintainer(home, clock).prune())
    assert live_path.exists()


def test_recorded_log_of_a_dead_service_is_never_deleted(api, home):
    api.add("once", "echo done", start=True)
    path = Path(read_state(home.root)["processes"]["once"]["log_path"])
    wait_until(lambda: b"done" in path.read_bytes(), 10, message="the run to finish")
    age(path, 60)
    events = Maintainer(home).prune()
    assert path.exists() and events == []


def test_passes_run_at_most_hourly_or_on_date_change(home):
    noon = datetime.combine(datetime.now().date(), datetime.min.time()) + timedelta(hours=12)
    clock = Clock(noon.timestamp())
    m = Maintainer(home, clock)
    run_pass(m)
    late = make_log(home, "svc", datetime(2026, 1, 1, 0, 0, 0), 40, now=clock.now)
    clock.now += 1800
    for _ in range(5):
        assert m.tick({}, None) == []
    assert late.exists() and m.passes_done == 1, "no second pass within the hour"
    clock.now += 1801
    events = run_pass(m)
    assert not late.exists() and [e.kind for e in events] == ["deleted"]

    # A date change starts a pass even within the hour.
    clock.now = (noon + timedelta(hours=11, minutes=59, seconds=59)).timestamp()
    run_pass(m)
    again = make_log(home, "svc", datetime(2026, 1, 2, 0, 0, 0), 40, now=clock.now)
    clock.now += 2
    run_pass(m)
    assert not again.exists()


def test_work_is_bounded_per_tick(home):
    clock = Clock(time.time())
    for i in range(450):
        make_log(home, f"s{i % 3}", datetime(2026, 1, 1, 0, 0, 0) + timedelta(seconds=i), 40, now=clock.now)
    m = Maintainer(home, clock, delete_batch=100)
    per_tick = []
    for _ in bounded():
        if m.passes_done:
            break
        per_tick.append(sum(e.kind == "deleted" for e in m.tick({}, None)))
    assert max(per_tick) <= 100 and sum(per_tick) == 450 and len(per_tick) >= 5
    # Emptied past months go; the year directory of this year stays (a start may need it).
    assert list(home.process_logs("s0").glob("*/*")) == [], "emptied months are removed"
    if datetime.fromtimestamp(clock.now).year == 2026:
        assert (home.process_logs("s0") / "2026").is_dir()
    old_year = make_log(home, "s0", datetime(2024, 5, 1, 0, 0, 0), 40, now=clock.now)
    clock.now += 3601
    run_pass(m)
    assert not old_year.parent.parent.exists()


def test_compression_is_spread_and_exact(home):
    clock = Clock(time.time())
    body = b"".join(b"line %d of a finished run\n" % i for i in range(60_000))  # ~1.5 MB
    path = make_log(home, "big", datetime(2026, 1, 1, 0, 0, 0), 2, body, now=clock.now)
    mtime = path.stat().st_mtime_ns
    m = Maintainer(home, clock, compress_budget=256 * 1024)
    ticks = 0
    for _ in bounded():
        if m.passes_done:
            break
        m.tick({}, None)
        ticks += 1
    assert ticks >= 5, "a large file is compressed over several ticks"
    gz = Path(str(path) + ".gz")
    assert not path.exists() and gzip.decompress(gz.read_bytes()) == body
    assert gz.stat().st_mtime_ns == mtime, "compression keeps the file's age"
    assert logs.tail_lines(gz, 1)[0] == ["line 59999 of a finished run"]


def test_compression_gives_up_when_the_file_is_written_meanwhile(home):
    clock = Clock(time.time())
    body = b"x" * 2_000_000
    path = make_log(home, "racy", datetime(2026, 1, 1, 0, 0, 0), 2, body, now=clock.now)
    m = Maintainer(home, clock, compress_budget=256 * 1024)
    m.tick({}, None)
    with open(path, "ab") as fh:  # someone we did not know about writes to it
        fh.write(b"late line\n")
    events = []
    for _ in bounded():
        if m.passes_done:
            break
        events += m.tick({}, None)
    assert [e.kind for e in events] == ["skipped"]
    assert path.read_bytes().endswith(b"late line\n") and not Path(str(path) + ".gz").exists()
    assert not list(path.parent.glob("*.tmp"))


def test_a_file_where_a_directory_belongs_is_reported_and_work_goes_on(home):
    clock = Clock(time.time())
    (home.process_logs("bad")).mkdir(parents=True)
    blocker = home.process_logs("bad") / "2026"
    blocker.write_text("not a directory")
    good = make_log(home, "good", datetime(2026, 1, 1, 0, 0, 0), 2, now=clock.now)
    m = Maintainer(home, clock, size_interval=0.0)
    live = {"bad": str(blocker / "11" / "bad_261101_000000.log")}
    events = run_pass(m, live)
    errors = [e for e in events if e.error]
    assert {e.path for e in errors} == {str(blocker), live["bad"]}
    assert any("a file where a log directory belongs" in e.detail for e in errors)
    assert any("Not a directory" in e.detail for e in errors)
    assert not good.exists() and Path(str(good) + ".gz").exists(), "the other process's logs were maintained"
    assert [e for e in m.tick(live, None) if e.error] == [], "a standing error is reported once"


def test_a_roll_that_cannot_write_is_reported_and_nothing_is_truncated(home):
    path = make_log(home, "full", datetime(2026, 1, 1, 0, 0, 0), 0, b"y" * 5000)
    # A directory where the part's temp file must go: the copy cannot be written.
    Path(str(path) + ".1.tmp").mkdir()
    with state.transaction(home) as data:
        state.processes(data)["full"] = {"command": "true", "log_max_bytes": 1024}
    m = Maintainer(home, size_interval=0.0)
    events: list = []
    wait_until(lambda: events.extend(m.tick({"full": str(path)}, None)) or events, 10, step=0.001,
               message="the roll's outcome")
    assert [e.kind for e in events if e.path == str(path)] == ["error"]
    assert "cannot roll" in events[0].detail
    assert path.stat().st_size == 5000, "nothing lost when the copy fails"


def test_watcher_log_is_capped_and_its_old_parts_compressed(home):
    clock = Clock(time.time())
    wlog = home.watcher_log
    wlog.parent.mkdir(parents=True)
    wlog.write_bytes(b"w" * 3000)
    old_part = wlog.with_name("auto.log.1")
    old_part.write_bytes(b"old watcher lines\n")
    age(old_part, 2, clock.now)
    age(wlog, 50, clock.now)  # an idle watcher's own log is never deleted
    m = Maintainer(home, clock, watcher_settings=logmaint.Settings(max_bytes=2048, keep_parts=5))
    events = run_pass(m, {}, wlog)
    assert wlog.exists() and wlog.stat().st_size == 0
    assert wlog.with_name("auto.log.2").read_bytes() == b"w" * 3000
    assert gzip.decompress(wlog.with_name("auto.log.1.gz").read_bytes()) == b"old watcher lines\n"
    assert sorted(e.kind for e in events) == ["compressed", "rolled"]


def test_idle_tick_does_nothing(home):
    clock = Clock(time.time())
    m = Maintainer(home, clock)
    run_pass(m)
    path = make_log(home, "svc", datetime(2026, 1, 1, 0, 0, 0), 2, now=clock.now)
    for _ in range(100):
        clock.now += 1
        assert m.tick({}, None) == []
    assert path.exists()


def test_log_options_are_validated_and_stored(home):
    from helpers import run_cli, state_bytes

    r = run_cli("add", "opt", "sleep 1000", "--no-start", "--log-max-bytes", "2M", "--log-keep-parts", "2",
                "--log-keep-days", "7", home=home.root)
    assert r.returncode == 0, r.stderr
    entry = read_state(home.root)["processes"]["opt"]
    assert (entry["log_max_bytes"], entry["log_keep_parts"], entry["log_keep_days"]) == (2 * 1024 * 1024, 2, 7.0)
    assert logmaint.settings(entry) == logmaint.Settings(2 * 1024 * 1024, 2, 7.0)
    assert run_cli("update", "opt", "--log-max-bytes", "300k", home=home.root).returncode == 0
    assert read_state(home.root)["processes"]["opt"]["log_max_bytes"] == 300 * 1024
    before = state_bytes(home.root)
    for flag, value in (("--log-max-bytes", "12"), ("--log-max-bytes", "lots"), ("--log-keep-parts", "-1"),
                        ("--log-keep-days", "0")):
        bad = run_cli("update", "opt", flag, value, home=home.root)
        assert bad.returncode == 2 and bad.stderr.startswith("auto: error: invalid log ") and bad.stderr.count("\n") == 1
    assert state_bytes(home.root) == before


def test_unreadable_state_stops_retention_but_not_the_caller(home):
    from auto_core.errors import StateError

    clock = Clock(time.time())
    old = make_log(home, "svc", datetime(2026, 1, 1, 0, 0, 0), 40, now=clock.now)
    home.local.mkdir(parents=True)
    home.state_file.write_text("{not json")
    m = Maintainer(home, clock)
    for _ in range(20):
        clock.now += 1
        m.tick({}, None)
    assert old.exists(), "no retention without knowing every recorded log path"
    try:
        m.prune()
    except StateError as exc:
        assert "state.json" in str(exc)
    else:
        raise AssertionError("prune must refuse an unreadable state file")
    assert old.exists()


@pytest.mark.slow
def test_real_watcher_rolls_a_live_log(api, home, tmp_path):
    """The watcher (``auto watch``) calls the Maintainer: an oversized live log is rolled and
    the service goes on writing to the same file; the roll is in the watcher's own log."""
    import subprocess

    from auto_core.store import watchlock

    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    api.add("writer", f"{sys.executable} -u {script}", workdir=str(tmp_path))
    set_entry(home, "writer", log_max_bytes=4096, log_keep_parts=2)
    entry = read_state(home.root)["processes"]["writer"]
    path = Path(entry["log_path"])
    wait_until(lambda: path.stat().st_size > 8192, 10, message="the log to pass log_max_bytes")
    # The watcher `add` started on demand checked sizes when the log was small, and checks
    # again only every LOG_SIZE_INTERVAL. A login watcher takes over from it; its first
    # iteration adopts the writer and checks the sizes.
    on_demand = watchlock.holder(home)
    assert on_demand is not None
    wlog = home.watcher_log
    fd = os.open(wlog, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # as systemd's append:
    watcher = subprocess.Popen([sys.executable, "-m", "auto_core", "watch", "--login"], stdout=fd, stderr=fd,
                               env=dict(os.environ, AUTO_HOME=str(home.root)))
    os.close(fd)
    try:
        wait_until(lambda: watchlock.holder(home) == watcher.pid, 20, message="the login watcher to take over")
        part = Path(str(path) + ".1")
        wait_until(part.exists, 20, message="the watcher to roll the live log")
        wait_until(lambda: f"logs: rolled {path}" in wlog.read_text(), 10, message="the roll in auto.log")
        assert numbers(part.read_bytes())[0] == 0
        last_in_part = numbers(part.read_bytes())[-1]
        wait_until(lambda: (numbers(path.read_bytes()) or [0])[-1] > last_in_part + 100, 10,
                   message="the service to go on writing to its file")
        after = read_state(home.root)["processes"]["writer"]
        assert (after["log_path"], after["pid"]) == (str(path), entry["pid"]), "the same run, adopted"
    finally:
        watcher.terminate()
        watcher.wait(10)
    assert "Traceback" not in wlog.read_text()


# --- rolls under faults ------------------------------------------------------------------------

# Rolls (or recovers) argv[1] in this process, in small chunks so that a copy has many steps.
# At each step it appends a line "w K" to the log as its service would (at "copied" only the
# first 3 times, or the copy would never catch up), and ends the process abruptly (exit 17,
# nothing cleaned up) the argv[4]-th time it reaches step argv[3], saying how many lines it wrote
# (numbered on from argv[5]).
ROLLER = """\
import os, sys
from auto_core.logtree import logmaint

path, mode, kill_at, nth, first = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
logmaint.CHUNK = 1024
logmaint._SYNC_ABOVE = 1024
calls = {"written": first}

def step(name):
    calls[name] = calls.get(name, 0) + 1
    if name != "copied" or calls[name] <= 3:
        calls["written"] += 1
        with open(path, "ab") as fh:
            fh.write(b"w %d\\n" % calls["written"])
    if name == kill_at and calls[name] == nth:
        print(calls["written"], flush=True)
        os._exit(17)

logmaint.roll(path, on_step=step) if mode == "roll" else logmaint.recover(path, on_step=step)
"""

# Every step of a roll of a_run_log: the copy's first and middle chunks, its first round
# synced, the catch-up round (copied #4: the lines written meanwhile), the truncate, the rename.
STEPS = [("created", 1), ("copied", 1), ("copied", 2), ("synced", 1), ("copied", 4), ("truncated", 1),
         ("renamed", 1)]


def killed_roll(path: Path, kill_at: str, nth: int = 1, mode: str = "roll", written: int = 0) -> int:
    """Run ROLLER on ``path`` in a child process that ends itself at that step; returns the
    number of the last line it wrote."""
    import subprocess

    r = subprocess.run([sys.executable, "-c", ROLLER, str(path), mode, kill_at, str(nth), str(written)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 17, f"the roll did not reach {kill_at} #{nth}: {r.returncode} {r.stderr}"
    return int(r.stdout)


def a_run_log(home, name: str = "svc") -> Path:
    """A run's log: its header, then 400 numbered lines (~3 KiB: several copy chunks)."""
    header = b"[auto] start svc pid 4242 at 2026-01-01 00:00:00: python svc.py\n"
    body = header + b"".join(b"n %d\n" % i for i in range(400))
    return make_log(home, name, datetime(2026, 1, 1, 0, 0, 0), 0, body)


def run_bytes(path: Path) -> bytes:
    """Every byte of the run in reading order: its parts (gzipped or not), then the file."""
    data = b""
    for number in sorted(logs.parts_by_number(path)):
        plain = path.with_name(f"{path.name}.{number}")
        data += plain.read_bytes() if plain.exists() else gzip.decompress(Path(f"{plain}.gz").read_bytes())
    return data + path.read_bytes()


def expected_lines(data: bytes) -> None:
    """The header, n 0..399, then the lines the roller and the test wrote, each once, in order."""
    lines = data.decode().splitlines()
    assert lines[0].startswith("[auto] start svc pid 4242"), lines[:2]
    assert lines[1:401] == [f"n {i}" for i in range(400)], "no line of the run lost or doubled"
    written = lines[401:-1]
    assert written == [f"w {i}" for i in range(1, len(written) + 1)], written
    assert lines[-1] == "after", lines[-3:]


@pytest.mark.parametrize(("kill_at", "nth"), STEPS, ids=[f"{s}-{n}" for s, n in STEPS])
def test_a_roll_killed_at_any_step_is_finished_by_the_next_maintainer(home, kill_at, nth):
    path = a_run_log(home)
    killed_roll(path, kill_at, nth)
    with open(path, "ab") as fh:
        fh.write(b"after\n")  # the service writes on while no watcher runs
    copy = Path(f"{path}.1.tmp")
    assert copy.exists() == (kill_at != "renamed")
    if copy.exists():
        age(copy, 3)  # older than the day after which retention deleted such copies
    events = run_pass(Maintainer(home), {"svc": str(path)})  # what a watcher that starts does
    assert not [e for e in events if e.kind not in ("recovered", "compressed")], events
    if kill_at != "renamed":
        assert [e.kind for e in events if e.kind == "recovered"] == ["recovered"]
    assert not list(path.parent.glob("*.tmp")), "the copy is in its place"
    assert list(logs.parts_by_number(path)) == [1], "one part, the roll's"
    expected_lines(run_bytes(path))
    if kill_at in ("truncated", "renamed"):
        assert path.read_bytes().endswith(b"after\n") and b"n 399" not in path.read_bytes()


@pytest.mark.parametrize("kill_at", ["copied", "synced", "truncated", "renamed"])
def test_a_recovery_killed_at_any_step_is_finished_by_the_next(home, kill_at):
    path = a_run_log(home)
    written = killed_roll(path, "copied", 1)
    killed_roll(path, kill_at, 1, mode="recover", written=written)
    with open(path, "ab") as fh:
        fh.write(b"after\n")
    events = run_pass(Maintainer(home))
    assert not [e for e in events if e.error or e.kind == "deleted"], events
    assert not list(path.parent.glob("*.tmp")) and list(logs.parts_by_number(path)) == [1]
    expected_lines(run_bytes(path))


def test_a_copy_whose_file_was_emptied_is_put_in_place(home):
    """A copy complete when its file was truncated holds lines found nowhere else: it becomes
    the part before the file, whatever its age; nothing is deleted."""
    path = a_run_log(home)
    body = path.read_bytes()
    copy = Path(f"{path}.1.tmp")
    copy.write_bytes(body)
    path.write_bytes(b"w 1\nw 2\nw 3\nafter\n")  # what the service wrote after the truncate
    age(copy, 3)
    assert [e.kind for e in Maintainer(home).prune(dry_run=True)] == ["would recover"]
    events = run_pass(Maintainer(home))
    assert [(e.kind, e.detail) for e in events] == [("recovered", f"an interrupted roll, put in place: {path.name}.1")]
    assert Path(f"{path}.1").read_bytes() == body and not copy.exists()
    expected_lines(run_bytes(path))


def test_a_roll_under_way_in_another_process_is_left_to_it(home):
    """The copy is locked while its roll runs: a second roller (another watcher, ``auto logs
    prune``) leaves it alone, and nothing is lost."""
    import subprocess

    path = a_run_log(home)
    # The roller stops after its first synced round (and says so) until we close its stdin.
    script = ROLLER.replace("os._exit(17)", "sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", script, str(path), "roll", "synced", "1", "0"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip().isdigit(), "the roller paused"
        with pytest.raises(BlockingIOError, match="another roll of this log is under way"):
            logmaint.recover(path)
        m = Maintainer(home, size_interval=0.0)
        with state.transaction(home) as data:
            state.processes(data)["svc"] = {"command": "true", "log_max_bytes": 1024}
        events: list = []
        wait_until(lambda: events.extend(m.tick({"svc": str(path)}, None)) or [e for e in events if e.error], 10,
                   step=0.001, message="the second roll's refusal")
        assert "another roll of this log is under way" in events[-1].detail
        assert Path(f"{path}.1.tmp").exists() and b"n 399" in path.read_bytes(), "left as it was"
        child.stdin.close()
        assert child.wait(30) == 0
    finally:
        child.kill()
        child.wait()
    with open(path, "ab") as fh:
        fh.write(b"after\n")
    assert list(logs.parts_by_number(path)) == [1] and not list(path.parent.glob("*.tmp"))
    expected_lines(run_bytes(path))


@pytest.mark.slow
def test_a_2_gib_live_log_rolls_without_holding_up_the_caller(home):
    """A roll copies in a worker thread: no tick takes long, and the lines at the end of a huge
    file (sparse here: 2 GiB of holes, then real lines) are in the part. The files are deleted
    at the end (pytest keeps the last temporary directories)."""
    path = make_log(home, "big", datetime(2026, 1, 1, 0, 0, 0), 0, b"")
    tail = b"".join(b"last line %d\n" % i for i in range(1000))
    part = Path(f"{path}.1")
    try:
        with open(path, "r+b") as fh:
            fh.truncate(2 << 30)
        with open(path, "ab") as fh:
            fh.write(tail)
        size = path.stat().st_size
        with state.transaction(home) as data:
            state.processes(data)["big"] = {"command": "true", "log_max_bytes": 1 << 20}
        m = Maintainer(home, size_interval=0.0)
        worst = 0.0
        events: list = []

        def rolled():
            nonlocal worst
            before = time.monotonic()
            events.extend(m.tick({"big": str(path)}, None))
            worst = max(worst, time.monotonic() - before)
            return any(e.kind == "rolled" for e in events)

        wait_until(rolled, 300, step=0.005, message="the roll of 2 GiB")
        assert [e.kind for e in events] == ["rolled"], events
        assert worst < 0.1, f"a tick took {worst * 1000:.0f} ms"
        assert part.stat().st_size == size and path.stat().st_size == 0
        with open(part, "rb") as fh:
            fh.seek(size - len(tail))
            assert fh.read() == tail
    finally:
        for leftover in (path, part, Path(f"{part}.tmp")):
            leftover.unlink(missing_ok=True)


def test_a_fast_growing_log_is_checked_sooner(home):
    """The next size check comes when the log would reach its limit at the rate it grew, so its
    parts stay near the limit; once it stops growing, checks go back to ``size_interval``."""
    clock = Clock(time.time())
    path = make_log(home, "fast", datetime(2026, 1, 1, 0, 0, 0), 0, b"")
    with state.transaction(home) as data:
        state.processes(data)["fast"] = {"command": "true", "log_max_bytes": 1 << 20, "log_keep_parts": 50}
    m = Maintainer(home, clock, size_interval=30.0, min_size_interval=1.0)
    live = {"fast": str(path)}

    for _ in range(120):  # two minutes at 100 KiB a second, a tick a second
        with open(path, "ab") as fh:
            fh.write(b"x" * (100 * 1024 - 1) + b"\n")
        clock.now += 1
        m.tick(live, None)
        wait_until(lambda: m.tick(live, None) == [] and not m.rolling, 10, step=0.001, message="the roll")
    assert m.busy, "the caller is asked back soon while the log grows fast"
    sizes = [files[0].stat().st_size for _, files in sorted(logs.parts_by_number(path).items())]
    assert sizes[0] > 2 << 20, "the first check came after the long interval: no rate known yet"
    assert len(sizes) >= 6 and all(size <= (1 << 20) + 2 * 100 * 1024 for size in sizes[1:]), sizes
    for _ in range(60):  # idle
        clock.now += 1
        m.tick(live, None)
    assert not m.busy, "a log that stopped growing is checked every size_interval again"
