"""A state file is input like any other: hand-edited values that once crashed auto or made
it touch files that are not its own.

Each test writes one bad value into a real ``state.json`` (valid JSON: ``1e999`` parses as
infinity) and runs the real CLI and a real watcher (``python -m auto_core watch``) on the home:
no traceback, a sensible exit code, one warning per load naming the entry and the field, the
other entries unaffected, no foreign file touched, and the watcher still running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import pid_alive, read_state, run_cli, wait_until

from auto_core.store import state
from auto_core.store.paths import Home

INF = "1e999"  # what the hand edit types; Python's json reads it as infinity
# A service writing about 7 KB a second: past a 1K cap at every size check.
CHATTY = "while :; do echo 0123456789012345678901234567890123456789012345678901234567890123456789; sleep 0.01; done"


def hand_edit(home: Home, name: str, **fields: object) -> None:
    """Set ``fields`` of ``name``'s entry as an editor would, but under the state lock (a
    watcher may be writing). A value of ``INF`` is written as the literal ``1e999``."""
    with state.locked(home):
        data = json.loads(home.state_file.read_text())
        data["processes"][name].update(fields)
        text = json.dumps(data, indent=2).replace(f'"{INF}"', INF)
        tmp = home.local / "hand-edit.tmp"
        tmp.write_text(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, home.state_file)


def cli(home: Home, *args: str) -> subprocess.CompletedProcess:
    r = run_cli(*args, home=home.root, timeout=60)
    assert "Traceback" not in r.stderr, (args, r.stderr)
    return r


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("auto: warning: ")]


def stop_on_demand_watcher(home: Home) -> None:
    """End the watcher a command started (services keep running)."""
    from auto_core.store import watchlock

    pid = watchlock.holder(home)
    assert pid and pid > 0
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: watchlock.holder(home) is None and not pid_alive(pid), 10, message="the watcher to exit")


def test_an_infinite_next_restart_at(home, watcher):
    """``ps`` and ``show`` crashed with a traceback and ``ps --json`` printed ``Infinity``."""
    assert cli(home, "add", "api", "sleep 1000", "--no-start").returncode == 0
    assert cli(home, "add", "web", "sleep 1000", "--no-start").returncode == 0
    hand_edit(home, "api", next_restart_at=INF, explicitly_stopped=False)
    warning = "auto: warning: state.json: api: next_restart_at: not a finite number; using now"

    r = cli(home, "-q", "ps")
    assert r.returncode == 0 and warnings(r.stderr) == [warning], r.stderr
    assert [line.split()[:2] for line in r.stdout.splitlines()[1:]] == [["api", "dead"], ["web", "stopped"]]
    r = cli(home, "ps", "--json")
    assert r.returncode == 0 and warnings(r.stderr) == [warning], r.stderr

    def refuse(constant: str) -> None:
        raise AssertionError(f"ps --json printed {constant}")

    rows = {row["name"]: row for row in json.loads(r.stdout, parse_constant=refuse)}
    assert rows["api"]["next_restart_in_s"] == 0 and rows["web"]["next_restart_in_s"] is None
    for args in (["show", "api"], ["show", "api", "--json"], ["show", "web"]):
        r = cli(home, *args)
        assert r.returncode == 0 and warnings(r.stderr) == [warning], (args, r.stderr)
    json.loads(cli(home, "show", "api", "--json").stdout, parse_constant=refuse)
    assert INF in home.state_file.read_text()  # reading changed nothing

    # The watcher takes "now" for it: api starts, web stays stopped, the value is gone.
    running = watcher()
    pid = wait_until(lambda: read_state(home.root)["processes"]["api"].get("pid"), 10, message="api started")
    assert pid_alive(pid)
    assert read_state(home.root)["processes"]["web"]["pid"] is None
    assert INF not in home.state_file.read_text() and "Infinity" not in home.state_file.read_text()
    assert running.text().count("warning: state.json: api: next_restart_at: not a finite number; using now") == 1
    assert running.proc.poll() is None
    r = cli(home, "-q", "ps")
    assert r.returncode == 0 and r.stderr == ""


@pytest.mark.slow
def test_a_pid_beyond_any_process_id(home, watcher):
    """``start`` and ``restart`` crashed on a pid that overflows the C type."""
    assert cli(home, "add", "web", "sleep 1000").returncode == 0
    web = read_state(home.root)["processes"]["web"]["pid"]
    assert cli(home, "add", "api", "sleep 1000", "--no-start").returncode == 0
    stop_on_demand_watcher(home)
    running = watcher()
    warning = "auto: warning: state.json: api: pid: not a process id from 1 to 4194304; taken as not running"

    for first, then in (("start", "stop"), ("restart", "stop")):
        hand_edit(home, "api", pid=2**64)
        r = cli(home, "-q", "ps")
        assert r.returncode == 0 and warnings(r.stderr) == [warning], r.stderr
        assert r.stdout.splitlines()[1].split()[:2] == ["api", "stopped"]
        r = cli(home, first, "api")
        assert r.returncode == 0, r.stderr
        assert warnings(r.stderr) == [warning], r.stderr  # once, though the command read twice
        pid = read_state(home.root)["processes"]["api"]["pid"]
        assert r.stdout.strip().endswith(f"api (pid {pid})") and pid_alive(pid), r.stdout
        r = cli(home, then, "api")  # the bad value was replaced by the first write: no warning
        assert r.returncode == 0 and r.stderr == "", r.stderr
    assert read_state(home.root)["processes"]["web"]["pid"] == web and pid_alive(web)
    assert running.proc.poll() is None


def test_an_infinite_log_max_bytes_leaves_the_other_services_rolling(home, watcher):
    """One entry's ``log_max_bytes: 1e999`` stopped log rolling for every service."""
    assert cli(home, "add", "chatty", CHATTY, "--log-max-bytes", "1K", "--wait", "0").returncode == 0
    assert cli(home, "add", "bad", "sleep 1000", "--no-start").returncode == 0
    stop_on_demand_watcher(home)
    hand_edit(home, "bad", log_max_bytes=INF)
    running = watcher()
    log = Path(read_state(home.root)["processes"]["chatty"]["log_path"])
    wait_until(lambda: list(log.parent.glob(log.name + ".*")), 60, step=0.2, message="chatty's log rolled")
    text = running.text()
    assert "warning: state.json: bad: log_max_bytes: not a whole number from 1024 to 2**50; using the default" in text
    assert "Traceback" not in text and running.proc.poll() is None


def newest_part(log: Path) -> int:
    """The highest ``N`` of ``log``'s rolled parts ``LOG.N`` (0: none yet)."""
    numbers = [int(p.name.rsplit(".", 1)[1]) for p in log.parent.glob(log.name + ".*")
               if p.name.rsplit(".", 1)[1].isdigit()]
    return max(numbers, default=0)


@pytest.mark.slow
def test_a_log_path_outside_the_log_tree_is_never_touched(home, watcher, tmp_path):
    """A ``log_path`` naming a file outside the log tree: the watcher that adopted the run
    rolled (truncated) it and appended its stop lines to it; ``log`` printed it."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n" * 467)  # 4.2 KB, past the 1K cap below
    os.utime(victim, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    before = (victim.stat().st_size, victim.stat().st_mtime_ns)
    assert cli(home, "add", "api", "sleep 1000", "--log-max-bytes", "1K").returncode == 0
    assert cli(home, "add", "web", CHATTY, "--log-max-bytes", "1K").returncode == 0
    web = read_state(home.root)["processes"]["web"]
    web_log = Path(web["log_path"])
    own_log = read_state(home.root)["processes"]["api"]["log_path"]
    stop_on_demand_watcher(home)  # the next watcher adopts api with the edited entry
    hand_edit(home, "api", log_path=str(victim))
    warning = (f"state.json: api: log_path: not a file in {home.logs}/api/; ignored"
               " (nothing outside it is read, written or rolled)")

    rolled = newest_part(web_log)  # nothing rolls while no watcher runs
    running = watcher()
    running.wait_line(r"^adopt api ")
    # A roll of web's log by this watcher: the size check that rolled the victim ran.
    wait_until(lambda: newest_part(web_log) > rolled, 30, step=0.1, message="web's log rolled")
    r = cli(home, "log", "api", "--path")
    assert r.returncode == 0 and r.stdout.strip() == own_log, r.stdout  # its own newest run
    assert warnings(r.stderr) == [f"auto: warning: {warning}"]
    r = cli(home, "log", "api")
    assert r.returncode == 0 and "precious" not in r.stdout
    r = cli(home, "show", "api")
    assert r.returncode == 0 and str(victim) not in r.stdout
    for args in (["stop", "api"], ["start", "api"], ["restart", "api"]):
        r = cli(home, *args)
        assert r.returncode == 0, (args, r.stderr)
    assert (victim.stat().st_size, victim.stat().st_mtime_ns) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("victim")] == ["victim.txt"]
    assert read_state(home.root)["processes"]["web"]["pid"] == web["pid"] and pid_alive(web["pid"])
    assert running.text().count(f"warning: {warning}") == 1
    assert "Traceback" not in running.text() and running.proc.poll() is None
