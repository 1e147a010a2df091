"""The one log follower (auto_core.logtree.follow) and bounded reading, on real files: a reader
slower than the writer across rolls, parts deleted before they were read, a reader far behind,
and lines far longer than anything shown."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

from helpers import wait_until

from auto_core.logtree import logmaint, logs
from auto_core.logtree.follow import RunReader

STARTED = datetime(2026, 11, 3, 10, 0, 0)


def run_file(home, name: str = "svc", body: bytes = b"") -> Path:
    directory = home.process_logs(name) / f"{STARTED:%Y}" / f"{STARTED:%m}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}_{STARTED:%y%m%d_%H%M%S}.log"
    path.write_bytes(body)
    return path


def numbered(prefix: str, count: int) -> list[str]:
    """``count`` distinct lines of about 100 bytes each."""
    return [f"{prefix} {i:07d} " + "." * 88 for i in range(count)]


def append(path: Path, lines: list[str]) -> None:
    with open(path, "ab") as fh:  # O_APPEND, as a service writes
        fh.write("".join(line + "\n" for line in lines).encode())


def read_until_idle(reader: RunReader, budget: int = logs.CHUNK) -> list[str]:
    got: list[str] = []
    for _ in range(10_000):
        got += reader.read(budget)
        if reader.idle:
            return got
    raise AssertionError("the reader never caught up")


def test_a_slow_follower_reads_every_byte_of_a_rolled_part(home):
    """3 MB written while the reader has taken 64 KiB of it, then rolled, then more: every line
    of the part comes before any of the emptied file, none lost, none twice."""
    path = run_file(home)
    reader = RunReader(path, 0)
    first, second, third = numbered("a", 30_000), numbered("b", 2_000), numbered("c", 20)
    append(path, first)
    got = reader.read(64 * 1024)  # the slow reader's first helping
    assert 0 < len(got) < len(first)
    logmaint.roll(path)
    append(path, second)
    logmaint.roll(path)  # and a second roll before the reader came back
    append(path, third)
    got += read_until_idle(reader, 256 * 1024)
    assert got == first + second + third
    reader.close()


def test_auto_log_follow_behind_a_roll_prints_every_line(api, home):
    """The real `auto log -f`, whose output nobody reads while the service writes 3 MB and the
    log is rolled: its pipe fills and it falls behind (it can be at most its read budget, 1 MiB,
    plus a pipe's worth ahead). Read afterwards, it has printed every line of the rolled part,
    then the emptied file's, in order."""
    api.add("svc", "true", start=False)
    path = run_file(home, body=b"[auto] start svc pid 1 at x: true\n")
    follower = subprocess.Popen([sys.executable, "-m", "auto_core", "log", "svc", "-f", "-n", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        fds = Path(f"/proc/{follower.pid}/fd")
        # It holds the file open once it has found its end: what is appended now is new to it.
        wait_until(lambda: any(os.path.realpath(fd) == str(path) for fd in fds.iterdir()),
                   message="the follower opened the log")
        first, second = numbered("a", 30_000), numbered("b", 500)
        append(path, first)
        logmaint.roll(path)
        append(path, second)
        seen: list[str] = []
        last = threading.Event()

        def pump() -> None:
            for line in follower.stdout:
                seen.append(line.rstrip("\n"))
                if seen[-1] == second[-1]:
                    last.set()
                    return

        threading.Thread(target=pump, daemon=True).start()
        assert last.wait(60), f"the last line never came; {len(seen)} lines printed"
        assert seen == first + second
        assert follower.poll() is None, "log -f must keep following"
    finally:
        follower.terminate()
        follower.wait(timeout=10)
        follower.stdout.close()
        follower.stderr.close()


def test_a_reader_racing_a_writer_and_rolls_prints_exactly_what_the_files_hold(home):
    """A writer that never stops, ten rolls meanwhile (kept), a reader taking 64 KiB at a time:
    whatever the interleaving, the reader's lines are the parts' and the file's, in order. (What
    a roll itself loses, between its copy and its truncate, is in neither.)"""
    path = run_file(home)
    reader = RunReader(path, 0)
    stop = threading.Event()

    def write() -> None:
        with open(path, "ab", buffering=0) as fh:
            i = 0
            while not stop.is_set():
                fh.write(b"".join(b"L %09d %s\n" % (j, b"." * 60) for j in range(i, i + 50)))
                i += 50
                if i % 1000 == 0:
                    stop.wait(0.0005)  # a roll's copy finds the size still between bursts

    writer = threading.Thread(target=write)
    writer.start()
    got: list[str] = []
    try:
        for k in range(10):
            wait_until(lambda: path.stat().st_size > 200_000, message="output since the last roll")
            logmaint.roll(path, keep_parts=100)
            if k % 2:  # two rolls between reads, and the reader ever further behind
                got += reader.read(64 * 1024)
    finally:
        stop.set()
        writer.join(10)
    got += read_until_idle(reader) + reader.flush()
    parts = logs.parts_by_number(path)
    assert len(parts) == 10
    on_disk = b"".join(parts[k][0].read_bytes() for k in sorted(parts)) + path.read_bytes()
    assert got == on_disk.decode().splitlines()
    reader.close()


def test_a_part_deleted_before_it_was_read_is_one_marker_line(home):
    path = run_file(home)
    reader = RunReader(path, 0)
    first, second, third = numbered("a", 20_000), numbered("b", 300), numbered("c", 5)
    append(path, first)
    got = reader.read(64 * 1024)
    logmaint.roll(path, keep_parts=1)
    append(path, second)
    logmaint.roll(path, keep_parts=1)  # deletes part 1, where the reader's place was
    append(path, third)
    assert not Path(f"{path}.1").exists() and Path(f"{path}.2").exists()
    got += read_until_idle(reader)
    marker = next(i for i, line in enumerate(got) if line.startswith("[auto] skipped"))
    # What the reader had seen of the file before the roll, past its place: at least this much.
    behind = len("".join(line + "\n" for line in first).encode()) - 64 * 1024
    assert got[marker] == (f"[auto] skipped at least {logs.amount(behind)} of output; "
                           f"{path.name}.1 was deleted before it could be read")
    # Before it: whole lines of the first batch in order, then the line cut at the reader's place.
    whole = got[:marker - 1]
    assert whole == first[:len(whole)] and first[len(whole)].startswith(got[marker - 1])
    assert got[marker + 1:] == second + third
    reader.close()


def test_a_reader_far_behind_skips_to_the_end_and_counts_what_it_skipped(home):
    """With a bound (the TUI's pane uses one), a reader further behind than it skips, with one
    line saying how many bytes and lines, and where they start."""
    path = run_file(home)
    reader = RunReader(path, 0, max_behind=1 << 20)
    first, second = numbered("a", 30_000), numbered("b", 100)
    append(path, first)
    logmaint.roll(path)
    append(path, second)
    part = Path(f"{path}.1")
    got = read_until_idle(reader)
    assert got[0] == f"[auto] skipped {logs.amount(part.stat().st_size)} (30,000 lines) of output; see {part}"
    assert got[1:] == second  # the newest output (under 64 KiB) is kept whole
    reader.close()


def test_a_long_line_is_cut_for_a_follower(home):
    path = run_file(home)
    reader = RunReader(path, 0)
    with open(path, "ab") as fh:
        fh.write(b"x" * 1_000_000)
    assert reader.read() == []  # still being written: nothing shown, only its head held
    with open(path, "ab") as fh:
        fh.write("é".encode() * 100_000 + b"\nnext\n")
    got = read_until_idle(reader)
    assert got == ["x" * 65536 + " [auto] line cut: 1.1 MB more", "next"]
    reader.close()


def test_a_cut_never_splits_a_character(home):
    path = run_file(home, body=b"a" + "é".encode() * 40_000 + b"\n")
    lines, _ = logs.tail_lines(path, 1)
    head, marker = lines[0].split(" [auto] line cut: ")
    assert "\ufffd" not in head and len(head.encode()) == 65535
    assert marker == f"{logs.amount(80_001 - 65535)} more"


PEAK_RSS = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
sys.stdout.buffer.write(b"%d %d\\n" % (done.returncode, peak) + done.stdout)
"""


def test_tail_of_a_200_mb_line_keeps_memory_flat(api, home):
    """`auto log -n 10` of a log that is one 200 MB line: 64 KiB of it and a marker, and the
    command's peak RSS (measured by a parent whose only child it is) stays far below 100 MB."""
    api.add("svc", "true", start=False)
    path = run_file(home)
    block = b"x" * (1 << 20)
    try:
        with open(path, "wb") as fh:
            left = 200_000_000
            while left:
                left -= fh.write(block[:left])
        done = subprocess.run([sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "auto_core",
                               "log", "svc", "-n", "10"], capture_output=True, timeout=120)
        status, out = done.stdout.split(b"\n", 1)
        code, peak_kib = map(int, status.split())
        assert code == 0, done.stderr
        assert out == b"x" * 65536 + b" [auto] line cut: 199.9 MB more\n"
        assert peak_kib < 100 * 1024, f"peak RSS {peak_kib} KiB"
    finally:
        path.unlink()


def test_tail_lines_counts_only_real_lines(tmp_path):
    path = tmp_path / "mixed.log"
    path.write_bytes(b"one\n" + b"y" * 70_000 + b"\nthree\r\nfour")
    lines, end = logs.tail_lines(path, 3)
    assert lines == ["y" * 65536 + f" [auto] line cut: {logs.amount(70_000 - 65536)} more", "three", "four"]
    assert end == path.stat().st_size
    assert logs.tail_lines(path, 0) == ([], end)
    assert list(logs.iter_tail(path, 2)) == ["three", "four"]
    assert re.fullmatch(r"4\.5 kB", logs.amount(4464))


def test_a_roll_copy_counts_as_a_roll_under_way_only_while_its_roller_holds_it(home):
    """A roll locks its temporary copy until it is done; a copy nobody holds was left by a
    roller that died (the next roll puts it in place) and must not keep a reader waiting."""
    import fcntl

    from auto_core.logtree.follow import _Rolls

    path = run_file(home, body=b"line\n")
    copy = path.with_name(path.name + ".1.tmp")
    copy.write_bytes(b"line\n")
    rolls = _Rolls(path)
    fd = os.open(copy, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert rolls.look().rolling
    finally:
        os.close(fd)  # the roller is gone
    assert not rolls.look().rolling
