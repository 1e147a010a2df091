"""Bad input: one `auto: error:` line on stderr, exit 1 (2 for usage), state.json untouched."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_error, auto, read_state, run_cli, state_bytes

BAD_NAMES = ["a/b", "..", ".hidden", "-x", "a b", "a\nb", "a\x01b", "a\tb", "", "x" * 65, "é"]
COMMANDS_WITH_NAME = {
    "add": lambda n: ["add", n, "sleep 1000", "--no-start"],
    "start": lambda n: ["start", n],
    "stop": lambda n: ["stop", n],
    "restart": lambda n: ["restart", n],
    "show": lambda n: ["show", n],
    "remove": lambda n: ["remove", n],
    "update": lambda n: ["update", n, "--port", "8080"],
    "log": lambda n: ["log", n],
}


@pytest.fixture
def existing(auto_home, capsys):
    """A state with one stopped definition; returns the state bytes to compare against."""
    assert auto(capsys, "add", "existing", "sleep 1000", "--no-start")[0] == 0
    return state_bytes(auto_home)


@pytest.mark.parametrize("command", sorted(COMMANDS_WITH_NAME))
@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_invalid_name_is_refused(auto_home, capsys, existing, command, bad):
    argv = COMMANDS_WITH_NAME[command](bad)
    if bad.startswith("-"):
        argv.insert(1, "--")  # otherwise argparse reads it as an option
        if command == "update":
            argv = ["update", "--port", "8080", "--", bad]
    code, out, err = auto(capsys, *argv)
    assert_one_error(code, err, 2)
    if bad and not bad.startswith("-"):
        assert "invalid name" in err
    assert state_bytes(auto_home) == existing


@pytest.mark.parametrize("command", sorted(set(COMMANDS_WITH_NAME) - {"add"}))
def test_unknown_name_is_an_error(auto_home, capsys, existing, command):
    code, out, err = auto(capsys, *COMMANDS_WITH_NAME[command]("nosuch"))
    assert_one_error(code, err, 1)
    assert "no process named 'nosuch'" in err
    assert state_bytes(auto_home) == existing


def test_unknown_name_in_a_batch_changes_nothing(auto_home, capsys, existing):
    code, out, err = auto(capsys, "start", "existing", "nosuch")
    assert_one_error(code, err, 1)
    assert state_bytes(auto_home) == existing


def test_duplicate_add_is_refused(auto_home, capsys, existing):
    code, out, err = auto(capsys, "add", "existing", "sleep 5")
    assert_one_error(code, err, 1)
    assert "already exists" in err
    assert state_bytes(auto_home) == existing


@pytest.mark.parametrize("argv, needle", [
    (["add", "new", ""], "command is empty"),
    (["add", "new", "   "], "command is empty"),
    (["add", "new", "sleep 1", "--port", "0"], "invalid port"),
    (["add", "new", "sleep 1", "--port", "70000"], "invalid port"),
    (["add", "new", "sleep 1", "--port", "abc"], "invalid port"),
    (["add", "new", "sleep 1", "--port", "-1"], "invalid port"),
    (["add", "new", "sleep 1", "--workdir", "/nonexistent/dir/x"], "does not exist"),
    (["add", "new", "sleep 1", "--env", "NOEQUALS"], "KEY=VALUE"),
    (["add", "new", "sleep 1", "--env", "1BAD=x"], "invalid environment variable name"),
    (["add", "new", "sleep 1", "--restart-every", "soon"], "invalid interval"),
    (["add", "new", "sleep 1", "--stop-timeout", "-1"], "stop timeout"),
    (["add", "new", "sleep 1", "--stop-signal", "SIGNOPE"], "invalid signal"),
    (["update", "existing", "--port", "0"], "invalid port"),
    (["update", "existing", "--port", "70000"], "invalid port"),
    (["update", "existing", "--port", "abc"], "invalid port"),
    (["update", "existing", "--command", ""], "command is empty"),
    (["update", "existing", "--workdir", "/nonexistent/dir/x"], "does not exist"),
    (["update", "existing", "--env", "NOEQUALS"], "KEY=VALUE"),
    (["update", "existing"], "nothing to update"),
    (["log", "existing", "-n", "many"], "invalid int value"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["start"], "--all"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_invalid_values_are_usage_errors(auto_home, capsys, existing, argv, needle):
    code, out, err = auto(capsys, *argv)
    assert_one_error(code, err, 2)
    assert needle in err
    assert state_bytes(auto_home) == existing


@pytest.mark.parametrize("command", ["add", "update"])
def test_workdir_that_is_a_file_is_refused(auto_home, capsys, existing, tmp_path, command):
    f = tmp_path / "afile"
    f.write_text("x")
    argv = ["add", "new", "sleep 1", "--workdir", str(f)] if command == "add" else ["update", "existing", "--workdir", str(f)]
    code, out, err = auto(capsys, *argv)
    assert_one_error(code, err, 2)
    assert "not a directory" in err
    assert state_bytes(auto_home) == existing


def test_bad_input_through_the_real_entry_point(auto_home, existing):
    r = run_cli("add", "a/b", "sleep 1", home=auto_home)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [r.stderr.strip()] and r.stderr.startswith("auto: error: invalid name")
    r = run_cli("stop", "nosuch", home=auto_home)
    assert r.returncode == 1 and r.stderr.startswith("auto: error: no process named")
    assert state_bytes(auto_home) == existing


CORRUPT = {
    "empty": b"",
    "truncated": b'{"version": 1, "processes": {"x": {"command": "sl',
    "not-an-object": b"[1, 2, 3]\n",
    "processes-a-list": b'{"version": 1, "processes": ["x"]}\n',
    "entry-not-an-object": b'{"version": 1, "processes": {"x": 5}}\n',
    "binary": b"\xff\xfe\x00garbage",
}


@pytest.mark.parametrize("kind", sorted(CORRUPT))
@pytest.mark.parametrize("argv", [["ps"], ["add", "new", "sleep 1000", "--no-start"], ["stop", "x"]])
def test_corrupt_state_without_backup_is_never_overwritten(auto_home, capsys, kind, argv):
    local = auto_home / "local"
    local.mkdir(parents=True)
    state = local / "state.json"
    state.write_bytes(CORRUPT[kind])
    code, out, err = auto(capsys, *argv)
    assert_one_error(code, err, 1)
    assert str(state) in err
    assert state.read_bytes() == CORRUPT[kind]
    assert sorted(p.name for p in local.iterdir() if p.name != "state.lock") == ["state.json"]


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_corrupt_state_falls_back_to_backup_and_moves_the_broken_file_aside(auto_home, capsys, kind):
    assert auto(capsys, "add", "kept", "sleep 1000", "--no-start")[0] == 0
    local = auto_home / "local"
    state = local / "state.json"
    assert json.loads((local / "state.json.bak").read_text())["processes"]["kept"]
    state.write_bytes(CORRUPT[kind])

    # Reading: a warning, the backup's content, and nothing written.
    code, out, err = auto(capsys, "-q", "ps")
    assert code == 0
    assert err.startswith("auto: warning: ") and "state.json.bak" in err
    assert out.splitlines()[1].split()[:2] == ["kept", "stopped"]
    assert state.read_bytes() == CORRUPT[kind]

    # Writing: the broken file is moved aside, never overwritten.
    code, out, err = auto(capsys, "add", "new", "sleep 1000", "--no-start")
    assert code == 0, err
    assert "auto: warning:" in err
    aside = [p for p in local.iterdir() if p.name.startswith("state.json.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == CORRUPT[kind]
    assert sorted(json.loads(state.read_text())["processes"]) == ["kept", "new"]


def assert_error_after_watcher(code: int, err: str, want_code: int) -> str:
    """A failure the watcher reports: the error line, after the notice that a watcher was
    started on demand (when this command started it). Returns the error line."""
    assert code == want_code, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) in (1, 2), err
    if len(lines) == 2:
        assert lines[0].startswith("auto: started the watcher (pid "), err
    assert lines[-1].startswith("auto: error: "), err
    return lines[-1]


def test_unwritable_log_directory_is_a_clear_error(auto_home, capsys, existing):
    logs = auto_home / "output" / "logs"
    logs.mkdir(parents=True)
    (logs / "existing").write_text("a file where the log directory belongs")
    code, out, err = auto(capsys, "start", "existing")
    line = assert_error_after_watcher(code, err, 1)
    assert "cannot create the log file for existing" in line
    entry = json.loads(state_bytes(auto_home))["processes"]["existing"]
    assert entry["pid"] is None and "request" not in entry  # answered: nothing started
    assert "cannot create the log file for existing" in entry["last_exit"]["error"]
    r = run_cli("add", "other", "sleep 1000", home=auto_home)
    assert r.returncode == 0, r.stderr  # a different name is unaffected


def test_unwritable_log_directory_via_real_cli_add(auto_home):
    logs = auto_home / "output" / "logs"
    logs.mkdir(parents=True)
    (logs / "svc").write_text("not a directory")
    r = run_cli("add", "svc", "sleep 1000", home=auto_home)
    line = assert_error_after_watcher(r.returncode, r.stderr, 1)
    assert "cannot create the log file for svc" in line


def test_unquoted_command_with_options_gets_a_hint(auto_home, capsys):
    before = state_bytes(auto_home)
    code, out, err = auto(capsys, "add", "web", "python3", "-m", "http.server")
    assert code == 2 and out == ""
    assert err.splitlines() == ["auto: error: unrecognized arguments: -m http.server (quote the command, or put it after --)"]
    assert state_bytes(auto_home) == before
    # The hint's two ways both work.
    assert auto(capsys, "add", "web", "--no-start", "--", "python3", "-m", "http.server")[0] == 0
    assert auto(capsys, "add", "web2", "python3 -m http.server", "--no-start")[0] == 0


# --- the command lines argparse does not see ---------------------------------------------------

PLAIN_LINES = [
    ["ps"], ["ps", "--json"], ["-q", "ps"], ["--quiet", "ps", "--json", "--json"], ["--home", "/x", "ps"],
    ["--home=/x", "-q", "stop-all"], ["-q", "--home", "/x", "-q", "stop-all"], ["stop-all"],
    ["status"], ["tui"], ["watch"], ["watch", "--poll"], ["watch", "--login"], ["--home=", "ps"],
]
NOT_PLAIN = [
    [], ["-h"], ["ps", "-h"], ["ps", "--js"], ["ps", "--json", "x"], ["ps", "-q"], ["--qu", "ps"],
    ["--home"], ["--home", "-q", "ps"], ["--", "ps"], ["start", "x"], ["add", "a", "b"], ["--version"],
    ["stop-all", "--poll"], ["watch", "--json"], ["logs", "prune"], ["install"],
    ["start-all"], ["-q", "--home", "/x", "-q", "start-all"], ["start-all", "--wait", "0"],
]


@pytest.mark.parametrize("argv", PLAIN_LINES)
def test_a_plain_command_line_parses_as_argparse_would(argv):
    from auto_core.cmdline import cli
    from auto_core.cmdline.cliparse import build_parser

    plain = cli._plain_args(argv)
    assert plain is not None
    assert vars(plain) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", NOT_PLAIN)
def test_anything_else_goes_through_argparse(argv):
    from auto_core.cmdline import cli

    assert cli._plain_args(argv) is None


@pytest.mark.parametrize("argv, wait", [
    (["start-all"], None), (["-q", "--home", "/x", "-q", "start-all"], None),
    (["start-all", "--wait", "0"], 0.0), (["start-all", "--wait", "2.5"], 2.5),
])
def test_start_all_goes_through_argparse_for_its_wait(argv, wait):
    from auto_core.cmdline.cliparse import build_parser

    args = build_parser().parse_args(argv)
    assert args.cmd == "start-all" and args.wait == wait
    assert args.quiet == ("-q" in argv) and args.home == ("/x" if "--home" in argv else None)


def test_start_all_leaves_out_a_hand_edited_name_that_is_a_path(auto_home):
    """A name no `add` would accept (here `../evil`, which would put its log directory outside
    the logs) is set aside when the state is loaded (store/sanitize.py): start-all says so once,
    starts the others, the watcher never sees it, and the entry stays in the file as it was."""
    assert run_cli("add", "good", "sleep 40960", "--no-start", home=auto_home).returncode == 0
    data = read_state(auto_home)
    data["processes"]["../evil"] = dict(data["processes"]["good"], command="sleep 40959")
    (auto_home / "local" / "state.json").write_text(json.dumps(data))
    r = run_cli("start-all", home=auto_home)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("'../evil': not a valid process name") == 1 and "Traceback" not in r.stderr
    after = read_state(auto_home)["processes"]
    assert after["../evil"] == data["processes"]["../evil"] and after["good"]["pid"]
    assert not (auto_home / "output" / "evil").exists()
