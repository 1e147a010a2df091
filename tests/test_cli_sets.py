"""Sets of services through the real CLI, as pm2 and supervisord users type them: globs,
``--all``, ``restart-all``, one line per service and a summary, one rule for idempotence,
and global options after the command."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import assert_one_error, auto, pid_alive, read_state


@pytest.fixture
def three(auto_home, capsys):
    for name in ("web-1", "web-2", "db"):
        code, _, err = auto(capsys, "add", name, "sleep 1000")
        assert code == 0, err
    return read_state(auto_home)["processes"]


def pids(auto_home) -> dict[str, int | None]:
    return {n: e.get("pid") for n, e in read_state(auto_home)["processes"].items()}


def test_a_glob_restarts_only_its_matches_with_a_summary(auto_home, capsys, three):
    before = pids(auto_home)
    code, out, err = auto(capsys, "restart", "web-*")
    assert code == 0, err
    after = pids(auto_home)
    assert after["db"] == before["db"]
    assert after["web-1"] != before["web-1"] and after["web-2"] != before["web-2"]
    lines = out.splitlines()
    assert lines[:2] == [f"restarted web-1 (pid {after['web-1']})", f"restarted web-2 (pid {after['web-2']})"]
    assert lines[2] == "2 restarted"


def test_a_glob_matching_nothing_is_an_error_naming_it(auto_home, capsys, three):
    before = read_state(auto_home)
    code, _, err = auto(capsys, "stop", "api-*")
    assert_one_error(code, err, 1)
    assert "'api-*'" in err
    assert read_state(auto_home) == before


def test_all_and_idempotence(auto_home, capsys, three):
    code, out, err = auto(capsys, "stop", "db")
    assert code == 0, err
    code, out, err = auto(capsys, "stop", "--all")
    assert code == 0, err
    assert out.splitlines()[-1] == "1 already stopped, 2 stopped"
    assert not any(pid_alive(p) for p in three_pids(three))
    code, out, err = auto(capsys, "start", "db")
    assert code == 0, err
    code, out, err = auto(capsys, "start", "--all")
    assert code == 0, err
    assert out.splitlines()[-1] == "1 already running, 2 started"
    assert "db is already running (pid " in out


def test_pm2s_all_means_every_service_unless_one_is_named_all(auto_home, capsys, three):
    code, out, err = auto(capsys, "stop", "all")
    assert code == 0, err
    assert out.splitlines()[-1] == "3 stopped"
    assert not any(pid_alive(p) for p in three_pids(three))
    assert auto(capsys, "add", "all", "sleep 1000")[0] == 0
    assert auto(capsys, "start", "--all")[0] == 0
    code, out, err = auto(capsys, "stop", "all")
    assert code == 0, err
    assert out.startswith("stopped all (SIGTERM") and len(out.splitlines()) == 1
    running = {n for n, e in read_state(auto_home)["processes"].items() if not e.get("explicitly_stopped")}
    assert running == {"web-1", "web-2", "db"}


def test_supervisors_group_spelling_is_one_error_pointing_at_a_glob(auto_home, capsys, three):
    before = read_state(auto_home)
    code, _, err = auto(capsys, "restart", "web:*")
    line = assert_one_error(code, err, 1)
    assert "auto has no groups" in line and "'web*'" in line
    assert read_state(auto_home) == before


def three_pids(entries: dict) -> list[int]:
    return [e["pid"] for e in entries.values() if e.get("pid")]


def test_restart_all_leaves_stopped_services_stopped(auto_home, capsys, three):
    assert auto(capsys, "stop", "db")[0] == 0
    before = pids(auto_home)
    code, out, err = auto(capsys, "restart-all")
    assert code == 0, err
    after = pids(auto_home)
    assert after["web-1"] != before["web-1"] and after["web-2"] != before["web-2"]
    assert read_state(auto_home)["processes"]["db"]["explicitly_stopped"] is True
    assert not pid_alive(before["db"])
    assert out.splitlines()[-1] == "2 restarted"


def test_remove_takes_globs_and_names_and_needs_one_or_all(auto_home, capsys, three):
    code, _, err = auto(capsys, "remove")
    assert_one_error(code, err, 2)
    code, _, err = auto(capsys, "remove", "db", "--all")
    assert_one_error(code, err, 2)
    code, out, err = auto(capsys, "remove", "web-?")
    assert code == 0, err
    assert sorted(read_state(auto_home)["processes"]) == ["db"]


def test_global_options_work_after_the_command(auto_home, capsys, three):
    def columns(result):  # NAME PID PORT: UPTIME may tick between the two
        code, out, err = result
        return code, [line.split()[:3] for line in out.splitlines()], err

    assert columns(auto(capsys, "ps", "-q")) == columns(auto(capsys, "-q", "ps"))
    code, out, _ = auto(capsys, "stop", "db", "-q")
    assert code == 0 and out == ""


def test_ps_shows_cpu_and_memory_after_the_columns_scripts_parse(auto_home, capsys):
    assert auto(capsys, "add", "busy", "while :; do :; done")[0] == 0
    assert auto(capsys, "add", "idle", "sleep 1000")[0] == 0
    code, out, err = auto(capsys, "ps", "--json", "--sort", "cpu")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["busy", "idle"]
    assert rows[0]["cpu_percent"] > rows[1]["cpu_percent"] >= 0
    assert all(isinstance(r["rss_bytes"], int) and r["rss_bytes"] > 0 for r in rows)
    code, out, _ = auto(capsys, "-q", "ps")
    header, *lines = out.splitlines()
    assert header.split()[:5] == ["NAME", "PID", "PORT", "CPU", "MEM"]
    # What a shell script does: awk '{print $1, $2}' of `auto -q ps`.
    awk = subprocess.run(["awk", "NR > 1 {print $1, $2}"], input=out, capture_output=True,
                         text=True, check=True).stdout.split("\n")
    state = read_state(auto_home)["processes"]
    assert awk[:2] == [f"busy {state['busy']['pid']}", f"idle {state['idle']['pid']}"]
    assert auto(capsys, "stop", "--all")[0] == 0
    code, out, _ = auto(capsys, "-q", "ps")
    assert [line.split()[:5] for line in out.splitlines()[1:]] == [
        ["busy", "stopped", "-", "-", "-"], ["idle", "stopped", "-", "-", "-"]]
