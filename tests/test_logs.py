"""Per-run log files and `auto log`."""

from __future__ import annotations

import os
import queue
import re
import stat
import subprocess
import sys
import threading
import time
from datetime import datetime

import pytest
from helpers import auto, read_state, run_cli, wait_until

from auto_core.logtree import logs
from auto_core.store.paths import Home

WHEN = datetime(2026, 3, 7, 9, 5, 2)


def test_create_run_log_layout_and_same_second_suffixes(auto_home):
    home = Home(auto_home)
    made = []
    for _ in range(3):
        path, fd = logs.create_run_log(home, "web", WHEN)
        os.write(fd, f"run {len(made)}\n".encode())
        os.close(fd)
        made.append(path)
    base = auto_home / "output" / "logs" / "web" / "2026" / "03"
    assert made == [base / "web_260307_090502.log", base / "web_260307_090502_1.log", base / "web_260307_090502_2.log"]
    assert [p.read_text() for p in made] == ["run 0\n", "run 1\n", "run 2\n"], "a same-second start clobbered a log"
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in made)
    assert stat.S_IMODE(base.stat().st_mode) == 0o700
    assert [r.path for r in logs.runs(home, "web")] == made


def test_create_run_log_never_follows_a_planted_symlink(auto_home, tmp_path):
    home = Home(auto_home)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    base = auto_home / "output" / "logs" / "web" / "2026" / "03"
    base.mkdir(parents=True)
    (base / "web_260307_090502.log").symlink_to(victim)
    path, fd = logs.create_run_log(home, "web", WHEN)
    os.write(fd, b"x\n")
    os.close(fd)
    assert path.name == "web_260307_090502_1.log"
    assert victim.read_text() == "precious\n"


def test_service_log_has_header_stdout_and_stderr(auto_home, capsys):
    cmd = "echo to-stdout; echo to-stderr >&2; exec sleep 1000"
    assert auto(capsys, "add", "web", cmd)[0] == 0
    entry = read_state(auto_home)["processes"]["web"]
    rel = os.path.relpath(entry["log_path"], auto_home)
    m = re.fullmatch(r"output/logs/web/(\d{4})/(\d{2})/web_(\d{6}_\d{6})\.log", rel)
    assert m, rel
    stamp = datetime.strptime(m.group(3), "%y%m%d_%H%M%S")
    assert (m.group(1), m.group(2)) == (f"{stamp:%Y}", f"{stamp:%m}")
    assert abs((datetime.now() - stamp).total_seconds()) < 60

    def content():
        text = open(entry["log_path"]).read()
        # The header quotes the command, so look for the output in the lines after it.
        return text if {"to-stdout", "to-stderr"} <= set(text.splitlines()[1:]) else None

    lines = wait_until(content, message="stdout and stderr in the log").splitlines()
    assert re.fullmatch(rf"\[auto\] start web pid {entry['pid']} at \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d: {re.escape(cmd)}",
                        lines[0]), lines[0]
    assert set(lines[1:]) == {"to-stdout", "to-stderr"}


def test_each_start_makes_a_new_log_file(auto_home, capsys):
    assert auto(capsys, "add", "svc", "echo run; exec sleep 1000")[0] == 0
    first = read_state(auto_home)["processes"]["svc"]["log_path"]
    assert auto(capsys, "restart", "svc")[0] == 0
    second = read_state(auto_home)["processes"]["svc"]["log_path"]
    assert auto(capsys, "stop", "svc")[0] == 0
    assert auto(capsys, "start", "svc")[0] == 0
    third = read_state(auto_home)["processes"]["svc"]["log_path"]
    assert len({first, second, third}) == 3
    for path in (first, second, third):
        wait_until(lambda p=path: "run" in open(p).read().splitlines(), message=f"output in {path}")
    # Each ended run names why it ended (written before the signal), then how (once gone).
    end = r"\[auto\] killed by SIGTERM after \d+(\.\d)? s"
    assert open(first).read().splitlines()[-2] == "[auto] restarting"
    assert re.fullmatch(end, open(first).read().splitlines()[-1])
    assert open(second).read().splitlines()[-2] == "[auto] stopped by user"
    assert re.fullmatch(end, open(second).read().splitlines()[-1])
    assert [str(r.path) for r in logs.runs(Home(auto_home), "svc")] == [first, second, third]


@pytest.fixture
def counted(auto_home, capsys):
    """A service that printed 50 numbered lines and then sleeps."""
    cmd = "i=1; while [ $i -le 50 ]; do echo line$i; i=$((i+1)); done; exec sleep 1000"
    assert auto(capsys, "add", "svc", cmd)[0] == 0
    path = read_state(auto_home)["processes"]["svc"]["log_path"]
    wait_until(lambda: "line50" in open(path).read(), message="50 lines")
    return path


def test_log_prints_tail_n_and_path(auto_home, capsys, counted):
    code, out, _ = auto(capsys, "log", "svc")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("[auto] start svc pid ") and lines[-1] == "line50" and len(lines) == 51
    code, out, _ = auto(capsys, "log", "svc", "-n", "3")
    assert out.splitlines() == ["line48", "line49", "line50"]
    code, out, _ = auto(capsys, "log", "svc", "-n", "0")  # like tail -n 0: nothing
    assert (code, out) == (0, "")
    code, out, _ = auto(capsys, "log", "svc", "--run", "-1")  # the whole run
    assert len(out.splitlines()) == 51
    code, out, _ = auto(capsys, "-q", "log", "svc", "--path")
    assert out == counted + "\n"
    code, out, _ = auto(capsys, "log", "svc", "--file")  # seed alias
    assert out == counted + "\n"


@pytest.mark.parametrize("argv", [
    ["-n", "-1"], ["-n=-5"], ["--lines", "-100"],  # negative
    ["-n", "３"], ["-n", "٣"], ["-n", "1_0"], ["-n", " 5"], ["-n", "+5"], ["-n", "5x"],  # not plain digits
    ["--run", "-２"], ["--run", "1_0"], ["--wait", "１"],
], ids=repr)
def test_log_counts_take_plain_ascii_digits_only(auto_home, capsys, argv):
    """int() reads full-width and other Unicode digits, and "1_0" or " 5": a count must be
    what it looks like in any terminal."""
    assert auto(capsys, "add", "svc", "true", "--no-start")[0] == 0
    before = (auto_home / "local" / "state.json").read_bytes()
    code, out, err = auto(capsys, *(["start", "svc"] if argv[0] == "--wait" else ["log", "svc"]), *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("auto: error: "), err
    negative = argv[-1].startswith("-") and argv[0] != "--run"
    assert ("cannot be negative" if negative else "invalid") in err
    assert (auto_home / "local" / "state.json").read_bytes() == before


def test_log_negative_count_through_the_real_entry_point(auto_home):
    r = run_cli("log", "svc", "-n", "-3", home=auto_home)
    assert r.returncode == 2
    assert r.stderr == "auto: error: argument -n/--lines: the number of lines cannot be negative: -3\n"


def test_log_of_never_started_process_is_a_clear_error(auto_home, capsys):
    assert auto(capsys, "add", "svc", "sleep 1", "--no-start")[0] == 0
    for argv in (["log", "svc"], ["log", "svc", "--path"]):
        code, out, err = auto(capsys, *argv)
        assert code == 1 and err == "auto: error: svc has no log file yet\n"


def test_tail_lines_reads_only_the_end(tmp_path):
    path = tmp_path / "big.log"
    with open(path, "wb") as fh:
        for i in range(200_000):
            fh.write(b"x" * 20 + b" %d\n" % i)
    lines, end = logs.tail_lines(path, 3)
    assert lines == ["x" * 20 + " 199997", "x" * 20 + " 199998", "x" * 20 + " 199999"]
    assert end == path.stat().st_size


class LineStream:
    """Reads a subprocess's stdout lines on a thread, so tests can wait with a deadline."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.seen:
                if predicate(line):
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching line within {timeout} s; got {self.seen!r}")
            try:
                self.seen.append(self.lines.get(timeout=left))
            except queue.Empty:
                pass


def test_log_follow_switches_to_the_new_file_after_restart(auto_home, capsys):
    assert auto(capsys, "add", "svc", "echo first-run; exec sleep 1000")[0] == 0
    follower = subprocess.Popen([sys.executable, "-m", "auto_core", "log", "-f", "svc"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stream = LineStream(follower)
        stream.wait_for(lambda line: line == "first-run")
        assert auto(capsys, "restart", "svc")[0] == 0
        entry = read_state(auto_home)["processes"]["svc"]
        stream.wait_for(lambda line: line == "[auto] restarting")
        divider = stream.wait_for(lambda line: line.startswith("----- new run"))
        assert entry["log_path"] in divider
        stream.wait_for(lambda line: line.startswith(f"[auto] start svc pid {entry['pid']} "))
        stream.wait_for(lambda line: line == "first-run" and stream.seen.count("first-run") == 2)
        assert follower.poll() is None, "log -f must keep following"
    finally:
        follower.terminate()
        follower.wait(timeout=10)


@pytest.mark.parametrize("recorded", ["an open fd", 7, 0, 1, True, ["x"], {"a": 1}])
def test_current_log_ignores_a_recorded_path_that_is_not_a_string(auto_home, tmp_path, recorded):
    """os.path.isfile(7) tests file descriptor 7: a wrong-typed log_path must not reach it."""
    home = Home(auto_home)
    held = open(tmp_path / "held", "w")  # an fd that is an open regular file
    if recorded == "an open fd":
        recorded = held.fileno()
    try:
        assert logs.current_log(home, "svc", recorded) is None
        path, fd = logs.create_run_log(home, "svc", WHEN)
        os.close(fd)
        assert logs.current_log(home, "svc", recorded) == path
    finally:
        held.close()
