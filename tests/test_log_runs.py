"""Browsing runs: runs() grouping, transparent .gz reading, `auto log --runs/--run`,
`auto logs prune`. Real files in the per-test AUTO_HOME, real CLI subprocesses."""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from helpers import read_state, run_cli, state_bytes, wait_until

from auto_core.logtree import logs

DAY = 86400


def run_file(home, name: str, started: datetime, suffix: str = ".log", body: bytes = b"", age_days: float = 0) -> Path:
    directory = home.process_logs(name) / f"{started:%Y}" / f"{started:%m}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}_{started:%y%m%d_%H%M%S}{suffix}"
    path.write_bytes(gzip.compress(body) if suffix.endswith(".gz") else body)
    t = time.time() - age_days * DAY
    os.utime(path, (t, t))
    return path


def test_runs_groups_parts_and_gz_oldest_first(home):
    a = datetime(2026, 10, 30, 23, 59, 59)
    b = datetime(2026, 11, 1, 8, 0, 0)
    a_main = run_file(home, "web", a, ".log.gz", b"a3\n[auto] exit code 3\n")
    a_p1 = run_file(home, "web", a, ".log.1.gz", b"a1\n")
    a_p2 = run_file(home, "web", a, ".log.2", b"a2\n")
    b_main = run_file(home, "web", b, ".log", b"b1\n")
    b2_main = run_file(home, "web", b, "_1.log", b"b2\n")  # a second start in the same second
    run_file(home, "web_other", b, ".log", b"not web\n")  # another process: its own directory
    (b_main.parent / "notes.txt").write_text("ignored")

    found = logs.runs(home, "web")
    assert [r.path for r in found] == [a_main, b_main, b2_main]
    first = found[0]
    assert first.files == (a_p1, a_p2, a_main)
    assert first.size == sum(p.stat().st_size for p in (a_main, a_p1, a_p2))
    assert first.started == a
    assert b"".join(logs.iter_run_chunks(first)) == b"a1\na2\na3\n[auto] exit code 3\n"
    assert logs.tail_run(first, 3) == ["a2", "a3", "[auto] exit code 3"]
    assert logs.run_end(first) == "exit code 3"
    assert logs.run_end(found[1]) is None


def test_plain_file_wins_over_half_written_gz(home):
    started = datetime(2026, 11, 2, 9, 0, 0)
    plain = run_file(home, "svc", started, ".log", b"whole\n")
    run_file(home, "svc", started, ".log.gz", b"who")
    assert [r.path for r in logs.runs(home, "svc")] == [plain]


def test_tail_lines_reads_gz_and_reports_corrupt_gz(home):
    started = datetime(2026, 11, 2, 9, 0, 0)
    good = run_file(home, "svc", started, ".log.gz", b"".join(b"%d\n" % i for i in range(1000)))
    lines, end = logs.tail_lines(good, 3)
    assert lines == ["997", "998", "999"] and end == good.stat().st_size
    bad = good.with_name("svc_261102_090001.log.gz")
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage that is not deflate")
    with pytest.raises(logs.CorruptLog, match="corrupt compressed log"):
        logs.tail_lines(bad, 3)
    assert logs.run_end(logs.runs(home, "svc")[-1]) == "corrupt .gz"


@pytest.mark.slow
def test_cli_runs_lists_runs_and_run_prints_previous(api, home):
    api.add("svc", "echo first-run-output; exec sleep 1000")
    first = read_state(home.root)["processes"]["svc"]
    wait_until(lambda: b"first-run-output" in Path(first["log_path"]).read_bytes(), 10, message="output")
    time.sleep(1.1)  # runs are named by the second they started in; let the next one differ
    api.restart(["svc"])
    second = read_state(home.root)["processes"]["svc"]
    assert second["log_path"] != first["log_path"]

    r = run_cli("log", "svc", "--runs", home=home.root)
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["RUN", "STARTED", "SIZE", "PARTS", "ENDED", "FILE"]
    assert [row.split()[0] for row in rows] == ["-2", "-1"]
    # A restart's run ends with the watcher's end line: how its processes went, in short.
    logs_dir = str(home.process_logs("svc")) + "/"
    assert rows[0].endswith(first["log_path"].removeprefix(logs_dir)) and "  SIGTERM (restart)  " in rows[0]
    assert rows[1].endswith(second["log_path"].removeprefix(logs_dir)) and " running " in rows[1]
    assert max(len(line) for line in r.stdout.splitlines()) <= 100
    detail = json.loads(run_cli("log", "svc", "--runs", "--json", home=home.root).stdout)
    assert detail[0]["path"] == first["log_path"] and detail[0]["ended"] == "SIGTERM (restart)"
    assert re.fullmatch(r"killed by SIGTERM after \d+(\.\d)? s", detail[0]["how"])

    prev = run_cli("log", "svc", "--run", "-2", home=home.root)
    assert prev.returncode == 0, prev.stderr
    assert prev.stdout.splitlines()[0].startswith(f"[auto] start svc pid {first['pid']} ")
    assert "first-run-output" in prev.stdout
    assert prev.stdout.splitlines()[-2] == "[auto] restarting"
    assert re.fullmatch(r"\[auto\] killed by SIGTERM after \d+(\.\d)? s", prev.stdout.splitlines()[-1])
    oldest = run_cli("log", "svc", "--run", "1", home=home.root)
    assert oldest.stdout == prev.stdout
    cur = run_cli("log", "svc", "--run", "-1", "-n", "1", home=home.root)
    assert cur.stdout == "first-run-output\n"

    before = state_bytes(home.root)
    missing = run_cli("log", "svc", "--run", "-5", home=home.root)
    assert missing.returncode == 1 and missing.stderr == "auto: error: there is no run -5 (there are 2)\n"
    zero = run_cli("log", "svc", "--run", "0", home=home.root)
    assert zero.returncode == 2 and zero.stderr.startswith("auto: error: --run counts from -1")
    assert state_bytes(home.root) == before


def test_cli_reads_rolled_and_compressed_runs_and_reports_corrupt_gz(api, home):
    api.add("old", "true", start=False)
    a = datetime(2026, 11, 1, 10, 0, 0)
    run_file(home, "old", a, ".log.1.gz", b"[auto] start old pid 1 at x: true\npart one\n")
    run_file(home, "old", a, ".log.gz", b"main part\n[auto] exit code 0\n")
    corrupt = run_file(home, "old", datetime(2026, 11, 2, 10, 0, 0), ".log.gz", b"")
    corrupt.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03broken")

    r = run_cli("log", "old", "--run", "1", home=home.root)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[auto] start old pid 1 at x: true\npart one\nmain part\n[auto] exit code 0\n"

    listing = run_cli("log", "old", "--runs", home=home.root)
    assert listing.returncode == 0, listing.stderr
    rows = listing.stdout.splitlines()[1:]
    assert rows[0].split()[4:7] == ["1", "exit", "0"] and "corrupt .gz" in rows[1]

    bad = run_cli("log", "old", "--run", "-1", home=home.root)
    assert bad.returncode == 1
    assert bad.stderr.startswith("auto: error: corrupt compressed log ") and bad.stderr.count("\n") == 1
    assert "Traceback" not in bad.stderr


def test_cli_log_default_still_tails_100_lines(api, home):
    api.add("many", "i=0; while [ $i -lt 150 ]; do echo line $i; i=$((i+1)); done; exec sleep 1000")
    path = Path(read_state(home.root)["processes"]["many"]["log_path"])
    wait_until(lambda: b"line 149" in path.read_bytes(), 10, message="150 lines")
    r = run_cli("log", "many", home=home.root)
    assert r.returncode == 0 and r.stdout.splitlines() == [f"line {i}" for i in range(50, 150)]


def test_cli_logs_prune_dry_run_then_prune(api, home):
    api.add("keep", "true", start=False)
    old = run_file(home, "keep", datetime(2026, 9, 1, 10, 0, 0), ".log", b"ancient\n", age_days=40)
    old_gz = run_file(home, "keep", datetime(2026, 9, 2, 10, 0, 0), ".log.gz", b"ancient gz\n", age_days=40)
    finished = run_file(home, "keep", datetime(2026, 11, 20, 10, 0, 0), ".log", b"finished\n", age_days=2)
    fresh = run_file(home, "keep", datetime(2026, 11, 26, 1, 0, 0), ".log", b"fresh\n", age_days=0.1)

    dry = run_cli("logs", "prune", "--dry-run", home=home.root)
    assert dry.returncode == 0, dry.stderr
    assert sorted(dry.stdout.splitlines()) == sorted(
        [f"would delete {old}", f"would delete {old_gz}", f"would compress {finished}"])
    assert old.exists() and old_gz.exists() and finished.exists()

    real = run_cli("logs", "prune", home=home.root)
    assert real.returncode == 0, real.stderr
    lines = real.stdout.splitlines()
    assert f"deleted {old} (older than 30 days)" in lines and f"deleted {old_gz} (older than 30 days)" in lines
    assert f"compressed {finished} (to {finished.name}.gz)" in lines and len(lines) == 3
    assert not old.exists() and not old_gz.exists() and fresh.exists()
    assert gzip.decompress(Path(str(finished) + ".gz").read_bytes()) == b"finished\n"

    again = run_cli("logs", "prune", home=home.root)
    assert again.returncode == 0 and again.stdout == "nothing to prune\n"


def test_cli_logs_prune_reports_a_broken_tree_and_goes_on(home):
    (home.process_logs("bad")).mkdir(parents=True)
    (home.process_logs("bad") / "2026").write_text("a file, not a directory")
    old = run_file(home, "fine", datetime(2026, 9, 1, 10, 0, 0), ".log", b"x\n", age_days=40)
    r = run_cli("logs", "prune", home=home.root)
    assert r.returncode == 1
    assert r.stderr.startswith("auto: error: ") and "a file where a log directory belongs" in r.stderr
    assert f"deleted {old} (older than 30 days)" in r.stdout and not old.exists()


def test_cli_log_all_lines_of_a_compressed_last_run(api, home):
    api.add("gone", "true", start=False)
    run_file(home, "gone", datetime(2026, 11, 1, 10, 0, 0), ".log.gz", b"one\ntwo\n")
    r = run_cli("log", "gone", home=home.root)
    assert r.returncode == 0 and r.stdout == "one\ntwo\n"
    r = run_cli("log", "gone", "-n", "1", home=home.root)
    assert r.returncode == 0 and r.stdout == "two\n"


def test_run_reader_follows_across_a_roll_without_losing_lines(home):
    from auto_core.logtree import logmaint
    from auto_core.logtree.follow import RunReader

    path = run_file(home, "f", datetime(2026, 11, 3, 10, 0, 0), ".log", b"a\nb\n")
    reader = RunReader(path, 0)
    assert reader.read() == ["a", "b"]
    with open(path, "ab") as fh:
        fh.write(b"c\nd")  # written after our read, then rolled away with a partial line
    logmaint.roll(path)
    with open(path, "ab") as fh:
        fh.write(b"-end\ne\n")
    assert reader.read() == ["c", "d-end", "e"]
    with open(path, "ab") as fh:
        fh.write(b"f\n")
    assert reader.read() == ["f"]
    # Two rolls between reads: both parts are read, in order, then the emptied file.
    with open(path, "ab") as fh:
        fh.write(b"g\n" * 10)
    logmaint.roll(path)
    with open(path, "ab") as fh:
        fh.write(b"h\n" * 20)
    logmaint.roll(path)
    with open(path, "ab") as fh:
        fh.write(b"i\n")
    assert reader.read() == ["g"] * 10 + ["h"] * 20 + ["i"]
    reader.close()
