"""A corrupt state file is never overwritten, never crashes auto.

Cases: empty, truncated mid-write, random bytes, valid JSON of the wrong shape (file and
field level), unknown extra fields (kept on write), a seed-era file. Without a usable
``.bak`` auto refuses with one ``auto: error:`` line and leaves the file byte for byte; with
one it falls back to it with a warning and keeps the broken file aside.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
from helpers import assert_one_error, auto, pid_alive, read_state, run_cli, wait_until

SLEEP = "sleep 1000"


def _valid_state() -> bytes:
    data = {"version": 1, "processes": {"web": {"command": "sleep 1000", "workdir": "/", "port": 8080,
                                                 "env": {}, "explicitly_stopped": True}}}
    return (json.dumps(data, indent=2) + "\n").encode()


def _corrupt_cases() -> dict[str, bytes]:
    good = _valid_state()
    rng = random.Random(6)
    return {
        "empty": b"",
        "whitespace": b"  \n",
        "truncated": good[: len(good) // 2],
        "truncated-1": good[:-3],
        "random-bytes": bytes(rng.randrange(256) for _ in range(300)),
        "nul-bytes": b"\0" * 64,
        "list": b"[]",
        "string": b'"processes"',
        "null": b"null",
        "number": b"42",
        "processes-list": b'{"processes": []}',
        "entry-string": b'{"processes": {"web": "sleep 1"}}',
        "entry-no-command": b'{"processes": {"web": {"port": 80}}}',
        "command-number": b'{"processes": {"web": {"command": 5}}}',
    }


CASES = _corrupt_cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_unparseable_without_backup_is_refused_and_left_untouched(capsys, home, case):
    home.local.mkdir(parents=True)
    home.state_file.write_bytes(CASES[case])
    before = home.state_file.read_bytes()

    code, _, err = auto(capsys, "ps")
    assert_one_error(code, err)
    assert str(home.state_file) in err and "will not overwrite" in err

    for argv in (["add", "new", SLEEP, "--no-start"], ["stop", "web"], ["start", "web"],
                 ["remove", "web"], ["update", "web", "--port", "81"], ["stop-all"], ["show", "web"]):
        code, _, err = auto(capsys, *argv)
        assert_one_error(code, err)
        assert home.state_file.read_bytes() == before, argv
    assert not home.state_bak.exists()


def test_unparseable_refusal_from_a_real_process(home):
    """The installed entry point, not just main(): no traceback, exit 1, file untouched."""
    home.local.mkdir(parents=True)
    home.state_file.write_bytes(CASES["truncated"])
    r = run_cli("add", "x", SLEEP, "--no-start", home=home.root)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("auto: error: ") and len(r.stderr.splitlines()) == 1
    assert home.state_file.read_bytes() == CASES["truncated"]


@pytest.mark.parametrize("case", ["empty", "truncated", "random-bytes", "entry-no-command"])
def test_falls_back_to_bak_with_a_warning_and_keeps_the_broken_file(capsys, home, case):
    assert auto(capsys, "add", "web", SLEEP, "--no-start", "--port", "8080")[0] == 0
    assert auto(capsys, "add", "db", SLEEP, "--no-start")[0] == 0
    good = home.state_file.read_bytes()
    assert home.state_bak.read_bytes() == good
    home.state_file.write_bytes(CASES[case])

    code, out, err = auto(capsys, "-q", "ps")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["db", "web"]
    assert err.startswith("auto: warning: ") and "state.json.bak" in err and "Traceback" not in err
    # Reading never touches the broken file.
    assert home.state_file.read_bytes() == CASES[case]

    # The first write keeps the broken file aside and writes the backup's content plus the change.
    code, _, err = auto(capsys, "add", "cache", SLEEP, "--no-start")
    assert code == 0, err
    kept = list(home.local.glob("state.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == CASES[case]
    assert sorted(read_state(home.root)["processes"]) == ["cache", "db", "web"]
    assert read_state(home.root)["processes"]["web"]["port"] == 8080
    code, _, err = auto(capsys, "-q", "ps")
    assert code == 0 and err == ""


def test_broken_main_and_broken_bak_are_both_left_alone(capsys, home):
    home.local.mkdir(parents=True)
    home.state_file.write_bytes(b'{"processes": {"a": ')
    home.state_bak.write_bytes(b"\x00garbage")
    code, _, err = auto(capsys, "add", "x", SLEEP, "--no-start")
    assert_one_error(code, err)
    assert home.state_file.read_bytes() == b'{"processes": {"a": '
    assert home.state_bak.read_bytes() == b"\x00garbage"


def test_leftover_temp_file_of_an_interrupted_write_is_ignored(capsys, home):
    """A writer killed between creating its temp file and the rename leaves a partial temp."""
    assert auto(capsys, "add", "web", SLEEP, "--no-start")[0] == 0
    (home.local / ".state.json.4242.deadbeef.tmp").write_bytes(CASES["truncated"])
    code, out, err = auto(capsys, "-q", "ps")
    assert code == 0 and err == "" and out.splitlines()[1].split()[:2] == ["web", "stopped"]
    assert auto(capsys, "update", "web", "--port", "9000")[0] == 0
    assert read_state(home.root)["processes"]["web"]["port"] == 9000


def test_unknown_fields_are_kept_on_write(capsys, home):
    assert auto(capsys, "add", "web", SLEEP, "--no-start")[0] == 0
    data = read_state(home.root)
    data["future_top_level"] = {"keep": [1, 2, 3]}
    data["processes"]["web"]["owner_note"] = "from a newer auto"
    data["processes"]["web"]["nested"] = {"a": {"b": None}}
    home.state_file.write_text(json.dumps(data))

    for argv in (["update", "web", "--port", "8081"], ["add", "db", SLEEP, "--no-start"],
                 ["start", "web"], ["stop", "web"], ["restart", "web"], ["stop", "web"],
                 ["remove", "db"]):
        code, _, err = auto(capsys, *argv)
        assert code == 0, (argv, err)
        after = read_state(home.root)
        assert after["future_top_level"] == {"keep": [1, 2, 3]}, argv
        assert after["processes"]["web"]["owner_note"] == "from a newer auto", argv
        assert after["processes"]["web"]["nested"] == {"a": {"b": None}}, argv
    assert read_state(home.root)["processes"]["web"]["port"] == 8081


def test_seed_era_file_loads_and_its_stale_pid_is_never_signalled(capsys, home, tmp_path, stranger):
    """The seed's own example file: no version, no create_time, a pid that now belongs to
    someone else. It loads, shows as dead (not running), and stop never signals it. Its log
    path names a tree that is not this home's: said once, ignored, and left out by the first
    write; every other field is kept."""
    log_path = "/path/to/auto/output/logs/myapp/2024/01/myapp_240115_143022.log"
    seed = {
        "processes": {
            "myapp": {
                "command": "sleep 1000",
                "workdir": str(tmp_path),
                "port": 8080,
                "pid": stranger.pid,
                "explicitly_stopped": False,
                "restart_attempt": 0,
                "last_restart_time": None,
                "log_path": log_path,
            }
        }
    }
    home.local.mkdir(parents=True)
    home.state_file.write_text(json.dumps(seed, indent=2))

    code, out, err = auto(capsys, "-q", "ps")
    assert code == 0 and err == (f"auto: warning: state.json: myapp: log_path: not a file in {home.logs}/myapp/;"
                                 " ignored (nothing outside it is read, written or rolled)\n")
    assert out.splitlines()[1].split()[:3] == ["myapp", "dead", "8080"]
    code, out, err = auto(capsys, "show", "myapp", "--json")
    assert code == 0 and json.loads(out)["pid"] is None
    code, _, err = auto(capsys, "log", "myapp")
    assert_one_error(code, _errors_only(err))

    code, _, err = auto(capsys, "stop", "myapp")
    assert code == 0, err
    assert stranger.poll() is None and pid_alive(stranger.pid)
    after = read_state(home.root)
    assert after["version"] == 1
    entry = after["processes"]["myapp"]
    assert entry["explicitly_stopped"] is True
    for key in ("command", "workdir", "port", "restart_attempt", "last_restart_time"):
        assert entry[key] == seed["processes"]["myapp"][key]
    assert entry["log_path"] is None

    code, _, err = auto(capsys, "start", "myapp")
    assert code == 0, err
    new_pid = read_state(home.root)["processes"]["myapp"]["pid"]
    assert new_pid != stranger.pid and pid_alive(new_pid)
    assert auto(capsys, "remove", "myapp")[0] == 0
    wait_until(lambda: not pid_alive(new_pid), 10, message="myapp to stop")
    assert stranger.poll() is None


BAD_FIELDS = {
    "pid": "12x",
    "create_time": "yesterday",
    "restarts": "many",
    "restart_attempt": "x",
    "last_restart_time": "noon",
    "port": "http",
    "env": ["A=1"],
    "workdir": 5,
    "last_exit": "boom",
    "log_path": 7,
    "starting_since": "now",
    "next_restart_at": "later",
    "explicitly_stopped": "yes",
    "stop_signal": "SIGNOPE",
    "stop_timeout": "soon",
    "backoff_max": -1,
    "backoff_base": "x",
    "restart_every": "often",
    "started_at": [],
}


def _errors_only(err: str) -> str:
    """``err`` without the warnings about the state file's values (said before an error)."""
    return "".join(line for line in err.splitlines(keepends=True)
                   if not line.startswith("auto: warning: state.json: "))


@pytest.mark.parametrize("field", sorted(BAD_FIELDS))
def test_wrong_field_types_never_crash(capsys, home, tmp_path, field):
    """A parseable file whose fields have the wrong types: every command answers, no traceback;
    the bad value is named in one warning per load."""
    entry = {"command": "sleep 1000", "workdir": str(tmp_path), "env": {}}
    entry[field] = BAD_FIELDS[field]
    home.local.mkdir(parents=True)
    home.state_file.write_text(json.dumps({"version": 1, "processes": {"web": entry}}))
    code, _, err = auto(capsys, "ps")
    assert code == 0 and err.startswith(f"auto: warning: state.json: web: {field}: ") and len(err.splitlines()) == 1, err

    for argv in (["ps"], ["ps", "--json"], ["show", "web"], ["show", "web", "--json"],
                 ["log", "web", "--path"], ["start", "web"], ["ps"], ["restart", "web"],
                 ["stop", "web"], ["update", "web", "--port", "81"], ["remove", "web"]):
        try:
            code, _, err = auto(capsys, *argv)
        except Exception as exc:  # noqa: BLE001 - the point: nothing may escape main()
            pytest.fail(f"auto {' '.join(argv)} with {field}={BAD_FIELDS[field]!r} raised {exc!r}")
        assert "Traceback" not in err
        if code != 0:
            assert_one_error(code, _errors_only(err), code)
    assert "web" not in read_state(home.root)["processes"]


def test_traceback_free_in_a_real_process_for_a_bad_field(home, tmp_path):
    entry = {"command": "sleep 1000", "workdir": str(tmp_path), "env": "A=1", "restarts": "x"}
    home.local.mkdir(parents=True)
    home.state_file.write_text(json.dumps({"processes": {"web": entry}}))
    for argv in (["ps"], ["show", "web"], ["stop", "web"]):
        r = subprocess.run([sys.executable, "-m", "auto_core", *argv], capture_output=True, text=True,
                           env=dict(os.environ, AUTO_HOME=str(home.root)), timeout=60)
        assert "Traceback" not in r.stderr, (argv, r.stderr)
        assert r.returncode in (0, 1), (argv, r.stderr)
