"""The entry point works and one-shot commands never load the UI toolkit."""

import subprocess
import sys

from helpers import pid_alive, read_state, run_cli, wait_until


def test_add_ps_stop_roundtrip(auto_home):
    r = run_cli("add", "sleeper", "sleep 1000", home=auto_home)
    assert r.returncode == 0, r.stderr
    pid = read_state(auto_home)["processes"]["sleeper"]["pid"]
    assert pid_alive(pid)
    ps = run_cli("-q", "ps", home=auto_home)
    header, row = ps.stdout.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "PID", "PORT"]
    assert row.split()[:3] == ["sleeper", str(pid), "-"]
    assert run_cli("stop", "sleeper", home=auto_home).returncode == 0
    wait_until(lambda: not pid_alive(pid), 5, message="sleeper to exit")
    assert run_cli("-q", "ps", home=auto_home).stdout.splitlines()[1].split()[1] == "stopped"


def test_ps_imports_nothing_heavy(auto_home):
    """`auto ps` is a read (docs/benchmarks.md, Core CLI): no Textual, no psutil, no spawning,
    no pathlib (~3.5 ms), no argparse (~5 ms with its parser), no dataclasses (~9 ms), with a
    running and a stopped service."""
    assert run_cli("add", "on", "sleep 40961", home=auto_home).returncode == 0
    assert run_cli("add", "off", "sleep 40962", "--no-start", home=auto_home).returncode == 0
    heavy = ["textual", "rich", "psutil", "pathlib", "dataclasses", "subprocess", "argparse", "auto_core.lifecycle"]
    code = (f"import sys, auto_core.cmdline.cli as c; c.main(['-q', 'ps']); c.main(['ps', '--json'])\n"
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "[]" and lines[1].split()[0] == "off" and lines[2].split()[0] == "on"


def test_tests_cannot_reach_the_real_home(auto_home, tmp_path, monkeypatch):
    import os
    from pathlib import Path

    from auto_core.store import paths

    assert Path(os.environ["HOME"]).is_relative_to(tmp_path)
    monkeypatch.delenv("AUTO_HOME")
    assert Path(paths.home_dir()).is_relative_to(tmp_path)


def test_durations_and_countdowns():
    from auto_core.humanize import countdown, duration

    assert [duration(s) for s in (None, 0.9, 59, 61, 3725, 90061)] == ["-", "0s", "59s", "1m01s", "1h02m", "1d01h"]
    assert [countdown(s) for s in (None, 0.0, 0.4, 1.0, 59.2)] == ["-", "0s", "1s", "1s", "1m00s"]
