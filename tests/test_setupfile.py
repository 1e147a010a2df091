"""auto apply and auto export: services defined in auto.toml, with real processes through the
real CLI and a temporary AUTO_HOME per test (conftest stops everything afterwards)."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_error, auto, free_port, read_state, state_bytes, wait_until

from auto_core.proc import identity

RUNTIME = {"status", "pid", "uptime_s", "restarts", "restart_attempt", "next_restart_in_s",
           "log_path", "last_exit", "create_time", "starting", "pending", "pending_since",
           "environment"}


def write(path, text: str):
    path.write_text(text)
    return path


def pids(home) -> dict[str, int]:
    return {n: e["pid"] for n, e in read_state(home)["processes"].items()}


def running(home, name: str) -> bool:
    return identity.runs(read_state(home)["processes"][name])


TWO = """\
[services.api]
command = "sleep 1001"
port = {port}

[services.worker]
command = "sleep 1002"
env = {{ QUEUE = "jobs" }}
"""


@pytest.fixture
def two(tmp_path, capsys, auto_home):
    """auto.toml with api and worker, applied on an empty home: both running."""
    path = write(tmp_path / "auto.toml", TWO.format(port=free_port()))
    code, out, err = auto(capsys, "apply", str(path))
    assert code == 0, err
    assert "+ api (add)" in out and "+ worker (added; started" in out
    assert running(auto_home, "api") and running(auto_home, "worker")
    return path


def test_apply_on_an_empty_home_starts_every_service(two, auto_home, tmp_path):
    entry = read_state(auto_home)["processes"]["worker"]
    assert entry["env"] == {"QUEUE": "jobs"} and entry["workdir"] == str(tmp_path)
    assert entry["command"] == "sleep 1002"


def test_reapply_touches_nothing(two, auto_home, capsys):
    before = state_bytes(auto_home)
    code, out, err = auto(capsys, "apply", str(two))
    assert code == 0, err
    assert out.splitlines() == ["= api (unchanged)", "= worker (unchanged)"]
    assert state_bytes(auto_home) == before  # same pids, no entry rewritten


def test_a_changed_command_restarts_that_service_only(two, auto_home, capsys):
    old = pids(auto_home)
    two.write_text(two.read_text().replace("sleep 1002", "sleep 1003"))
    code, out, err = auto(capsys, "apply", str(two))
    assert code == 0, err
    assert "= api (unchanged)" in out and "~ worker (command changed; restarted" in out
    new = pids(auto_home)
    assert new["api"] == old["api"] and new["worker"] != old["worker"]
    assert running(auto_home, "worker") and not identity.runs({"pid": old["worker"]})
    assert read_state(auto_home)["processes"]["worker"]["command"] == "sleep 1003"


def test_prune_removes_what_the_file_does_not_define(two, auto_home, capsys, tmp_path):
    one = write(tmp_path / "one.toml", two.read_text().split("[services.worker]")[0])
    worker = pids(auto_home)["worker"]
    code, out, err = auto(capsys, "apply", str(one))  # without --prune: kept
    assert code == 0, err
    assert "= worker (not in the file; kept without --prune)" in out
    assert running(auto_home, "worker")
    code, out, err = auto(capsys, "apply", str(one), "--prune")
    assert code == 0, err
    assert "- worker (removed, --prune)" in out
    assert set(read_state(auto_home)["processes"]) == {"api"}
    wait_until(lambda: not running_pid(worker), message="the removed worker's end")


def running_pid(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_dry_run_changes_nothing(two, auto_home, capsys, tmp_path):
    before = state_bytes(auto_home)
    other = write(tmp_path / "other.toml", '[services.new]\ncommand = "sleep 1004"\n'
                  + two.read_text().replace("sleep 1001", "sleep 1005"))
    code, out, err = auto(capsys, "apply", str(other), "--dry-run", "--prune")
    assert code == 0, err
    assert out.splitlines() == ["+ new (add)", "~ api (command changed)",
                               "= worker (unchanged)"]
    assert state_bytes(auto_home) == before


def test_no_start_defines_new_services_stopped(tmp_path, auto_home, capsys):
    path = write(tmp_path / "auto.toml", '[services.idle]\ncommand = "sleep 1006"\n')
    code, out, err = auto(capsys, "apply", str(path), "--no-start")
    assert code == 0, err
    entry = read_state(auto_home)["processes"]["idle"]
    assert entry["explicitly_stopped"] is True and entry["pid"] is None


@pytest.mark.parametrize("text, line, key", [
    ('[services.api]\ncommand = "sleep 1"\nport = "abc\n', 3, None),  # TOML syntax
    ('[services.api]\ncommand = "sleep 1"\n\nprot = 80\n', 4, "prot: unknown key (did you mean 'port'?)"),
    ('[services.api]\ncommand = "sleep 1"\nport = "abc"\n', 3, "port: invalid port 'abc'"),
    ('[services.a]\ncommand = "sleep 1"\n[services.b]\nport = 80\n', 3, "command: missing"),
    ('[services.api]\ncommand = "sleep 1"\nworkdir = "no/such/dir"\n', 3, "workdir: workdir"),
    ('[services.api]\ncommand = "sleep 1"\nstop_signal = "SIGNOPE"\n', 3, "stop_signal: invalid signal"),
    ('[services.api]\ncommand = "sleep 1"\nbackoff_base = true\n', 3, "backoff_base: invalid value True"),
    ('[services.api]\ncommand = "sleep 1"\n[services.api.env]\nA = 1\n', 3, "env: invalid value of A"),
    ('[services.api]\ncommand = "no-such-program-here"\n', 2, "command: api: program"),
    ('[services."bad name"]\ncommand = "sleep 1"\n', 1, "services.bad name: invalid name"),
])
def test_a_bad_file_is_one_line_naming_file_line_and_key(two, auto_home, capsys, tmp_path,
                                                         text, line, key):
    before = state_bytes(auto_home)
    bad = write(tmp_path / "bad.toml", text)
    code, out, err = auto(capsys, "apply", str(bad))
    message = assert_one_error(code, err, 2)
    assert message.startswith(f"auto: error: {bad}:{line}: "), message
    if key:
        assert message.split(f"{bad}:{line}: ", 1)[1].startswith(key), message
    assert out == "" and state_bytes(auto_home) == before


def test_paths_are_relative_to_the_file(tmp_path, auto_home, capsys):
    folder = tmp_path / "proj"
    (folder / "srv").mkdir(parents=True)
    (folder / "srv" / ".env").write_text("FROM_FILE=1\nBOTH=file\n")
    path = write(folder / "auto.toml", '[services.s]\ncommand = "sleep 1007"\nworkdir = "srv"\n'
                 'env_file = "srv/.env"\nenv = { BOTH = "table" }\n')
    code, _, err = auto(capsys, "apply", str(path), "--no-start")
    assert code == 0, err
    entry = read_state(auto_home)["processes"]["s"]
    assert entry["workdir"] == str(folder / "srv")
    assert entry["env"] == {"FROM_FILE": "1", "BOTH": "table"}


def test_export_then_apply_gives_the_same_definitions(tmp_path, auto_home, capsys, monkeypatch):
    """Every option, set by add's flags, survives export and apply into an empty home."""
    env_file = write(tmp_path / "vars.env", "FROM_FILE=yes\n")
    work = tmp_path / "work dir"
    work.mkdir()
    code, _, err = auto(capsys, "add", "full", "--no-start", "--workdir", str(work),
                        "--port", str(free_port()), "--env", "A=1", "--env", "B=two words",
                        "--env-file", str(env_file), "--restart-every", "2h",
                        "--backoff-base", "0.5", "--backoff-max", "60", "--stop-signal", "INT",
                        "--stop-timeout", "3", "--no-daemon-follow", "--log-max-bytes", "2M",
                        "--log-keep-parts", "2", "--log-keep-days", "7", "--", "sleep", "1008")
    assert code == 0, err
    assert auto(capsys, "add", "plain", "--no-start", "--", "sleep", "1009")[0] == 0
    code, exported, err = auto(capsys, "export", "--format", "toml")
    assert code == 0, err
    before_state = read_state(auto_home)["processes"]
    before_show = {n: show(capsys, n) for n in ("full", "plain")}

    other = tmp_path / "other-home"
    monkeypatch.setenv("AUTO_HOME", str(other))
    path = write(tmp_path / "exported.toml", exported)
    code, out, err = auto(capsys, "apply", str(path), "--no-start")
    assert code == 0, err
    assert out.splitlines()[:2] == ["+ full (add)", "+ plain (add)"]
    after_state = read_state(other)["processes"]
    assert {n: show(capsys, n) for n in ("full", "plain")} == before_show
    keys = ("command", "workdir", "port", "env", "restart_every", "backoff_base", "backoff_max",
            "stop_signal", "stop_timeout", "daemon_follow", "log_max_bytes", "log_keep_parts",
            "log_keep_days")
    for name in ("full", "plain"):
        assert {k: after_state[name].get(k) for k in keys} == \
            {k: before_state[name].get(k) for k in keys}
    assert after_state["full"]["log_max_bytes"] == 2 * 1024 * 1024
    assert after_state["full"]["daemon_follow"] is False
    # Applied again, the exported file changes nothing.
    code, out, err = auto(capsys, "apply", str(path))
    assert code == 0 and out.splitlines() == ["= full (unchanged)", "= plain (unchanged)"], err


def show(capsys, name: str) -> dict:
    code, out, err = auto(capsys, "show", name, "--json")
    assert code == 0, err
    return {k: v for k, v in json.loads(out).items() if k not in RUNTIME}


def test_export_of_a_name_and_of_an_unknown_one(tmp_path, auto_home, capsys):
    assert auto(capsys, "add", "a", "--no-start", "--", "sleep", "1010")[0] == 0
    assert auto(capsys, "add", "b", "--no-start", "--", "sleep", "1011")[0] == 0
    code, out, _ = auto(capsys, "export", "a")
    assert code == 0 and "[services.a]" in out and "services.b" not in out
    code, out, err = auto(capsys, "export", "nope")
    assert_one_error(code, err, 1)
    assert out == ""
