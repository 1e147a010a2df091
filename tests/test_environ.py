"""A service's environment: what is captured, read from env files, masked, merged and kept on disk."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from auto_core.errors import AutoError, UsageError
from auto_core.store import environ


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


# capture


def test_capture_drops_every_session_variable_and_keeps_the_rest():
    source = {key: "x" for key in environ.SESSION_ONLY}
    source |= {"PATH": "/usr/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "TERM": "xterm"}
    captured = environ.capture(source)
    assert captured == {"PATH": "/usr/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "TERM": "xterm"}
    assert len(source) == len(environ.SESSION_ONLY) + 4  # a copy: the source is untouched


def test_session_only_names_auto_run_marks_and_terminal_variables():
    for key in ("AUTO_SERVICE", "AUTO_RUN", "AUTO_CLAIM", "SSH_AUTH_SOCK", "TMUX", "PWD", "_", "DISPLAY"):
        assert key in environ.SESSION_ONLY
    assert "PATH" not in environ.SESSION_ONLY and "HOME" not in environ.SESSION_ONLY


def test_capture_defaults_to_this_process_environment(monkeypatch):
    monkeypatch.setenv("ENVIRON_TEST_KEPT", "yes")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
    monkeypatch.setenv("AUTO_SERVICE", "outer")
    captured = environ.capture()
    assert captured["ENVIRON_TEST_KEPT"] == "yes"
    assert "SSH_AUTH_SOCK" not in captured and "AUTO_SERVICE" not in captured
    captured["ENVIRON_TEST_KEPT"] = "changed"
    assert os.environ["ENVIRON_TEST_KEPT"] == "yes"


# read_env_file


def test_env_file_syntax(tmp_path):
    path = write(tmp_path / ".env", (
        "# a comment line\n"
        "\n"
        "PLAIN=value\n"
        "export EXPORTED=1\n"
        "SINGLE='single quoted # not a comment'\n"
        'DOUBLE="double \\"quoted\\""\n'
        "URL=postgres://u:p@h/db?sslmode=require&a=b\n"
        "EMPTY=\n"
        "TRAILING=kept # an inline comment\n"
        "NOT_EXPANDED=${HOME}/x\n"
    ))
    assert environ.read_env_file(path) == {
        "PLAIN": "value",
        "EXPORTED": "1",
        "SINGLE": "single quoted # not a comment",
        "DOUBLE": 'double "quoted"',
        "URL": "postgres://u:p@h/db?sslmode=require&a=b",
        "EMPTY": "",
        "TRAILING": "kept",
        "NOT_EXPANDED": "${HOME}/x",
    }


def test_env_file_accepts_str_paths_and_keeps_the_last_of_a_repeated_key(tmp_path):
    path = write(tmp_path / "app.env", "A=1\nB=2\nA=3\n")
    assert environ.read_env_file(str(path)) == {"A": "3", "B": "2"}


def test_empty_env_file_gives_no_variables(tmp_path):
    assert environ.read_env_file(write(tmp_path / ".env", "")) == {}
    assert environ.read_env_file(write(tmp_path / "c.env", "# only a comment\n\n")) == {}


def test_missing_env_file_is_a_one_line_usage_error(tmp_path):
    path = tmp_path / "nope.env"
    with pytest.raises(UsageError) as info:
        environ.read_env_file(path)
    message = str(info.value)
    assert message == f"cannot read env file {path}: No such file or directory"
    assert "\n" not in message


def test_directory_as_env_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read env file .*: Is a directory"):
        environ.read_env_file(tmp_path)


def test_env_file_that_is_not_utf8_is_a_usage_error(tmp_path):
    path = tmp_path / ".env"
    path.write_bytes(b"A=\xff\xfe\n")
    with pytest.raises(UsageError, match="not UTF-8"):
        environ.read_env_file(path)


@pytest.mark.parametrize("text, line, error", [
    ("A=1\n\nFOO\n", 3, "FOO has no value (write FOO= for an empty one)"),
    ("OK=1\nMY.KEY=2\n", 2, "invalid environment variable name 'MY.KEY'"),
])
def test_a_bad_line_is_a_usage_error_naming_file_line_and_key(tmp_path, text, line, error):
    path = write(tmp_path / ".env", text)
    with pytest.raises(UsageError) as info:
        environ.read_env_file(path)
    assert str(info.value) == f"env file {path}, line {line}: {error}"


def test_exported_bare_key_is_a_usage_error(tmp_path):
    path = write(tmp_path / ".env", "export FOO\n")
    with pytest.raises(UsageError, match="FOO has no value"):
        environ.read_env_file(path)




def test_unparsable_line_is_a_usage_error_and_nothing_is_logged(tmp_path, caplog):
    path = write(tmp_path / ".env", "A=1\n\n\nFOO BAR=1\nB=2\n")
    with caplog.at_level(logging.DEBUG), pytest.raises(UsageError) as info:
        environ.read_env_file(path)
    message = str(info.value)
    assert message == f"env file {path}, line 4: cannot parse 'FOO BAR=1'"
    assert "\n" not in message
    assert caplog.records == []


def test_unclosed_quote_is_a_usage_error(tmp_path):
    path = write(tmp_path / ".env", "A='never closed\n")
    with pytest.raises(UsageError, match="line 1: cannot parse"):
        environ.read_env_file(path)


def test_nul_in_a_value_is_a_usage_error(tmp_path):
    path = write(tmp_path / ".env", 'A="x\\0y"\nB=a\x00b\n')
    with pytest.raises(UsageError, match="line 2: the value of B contains a NUL byte"):
        environ.read_env_file(path)


def test_path_with_a_newline_stays_on_one_line(tmp_path):
    path = tmp_path / "odd\nname.env"
    with pytest.raises(UsageError) as info:
        environ.read_env_file(path)
    assert "\n" not in str(info.value)


# masking


@pytest.mark.parametrize("key", ["DB_PASSWORD", "API_KEY", "GITHUB_TOKEN", "MY_SECRET", "db_pass", "api_key"])
def test_secret_names(key):
    assert environ.is_secret(key)


@pytest.mark.parametrize("key", ["PATH", "HOME", "PORT", "LANG", "USER"])
def test_plain_names(key):
    assert not environ.is_secret(key)


def test_masked_replaces_only_secret_values():
    env = {"DB_PASSWORD": "hunter2", "API_KEY": "k", "GITHUB_TOKEN": "ghp_x", "MY_SECRET": "s",
           "PATH": "/bin", "HOME": "/home/u", "PORT": "8080"}
    assert environ.masked(env) == {
        "DB_PASSWORD": environ.MASK, "API_KEY": environ.MASK, "GITHUB_TOKEN": environ.MASK,
        "MY_SECRET": environ.MASK, "PATH": "/bin", "HOME": "/home/u", "PORT": "8080",
    }
    assert env["DB_PASSWORD"] == "hunter2"  # the input is not changed


# service_env


def test_own_values_win_over_captured():
    env = environ.service_env({"PORT": "1", "PATH": "/bin"}, {"PORT": "2"}, {"IGNORED": "x"})
    assert env == {"PORT": "2", "PATH": "/bin", "PYTHONUNBUFFERED": "1"}


def test_pythonunbuffered_set_by_the_user_is_kept():
    assert environ.service_env({}, {"PYTHONUNBUFFERED": "0"}, {})["PYTHONUNBUFFERED"] == "0"
    assert environ.service_env({"PYTHONUNBUFFERED": "0"}, {}, {})["PYTHONUNBUFFERED"] == "0"


def test_fallback_without_session_variables_when_nothing_was_captured():
    fallback = {"PATH": "/usr/bin", "SSH_AUTH_SOCK": "/tmp/a", "AUTO_SERVICE": "outer", "TMUX": "t"}
    env = environ.service_env(None, {"A": "1"}, fallback)
    assert env == {"PATH": "/usr/bin", "A": "1", "PYTHONUNBUFFERED": "1"}
    assert "SSH_AUTH_SOCK" in fallback  # not changed


def test_fallback_unused_when_a_capture_exists_even_an_empty_one():
    assert environ.service_env({}, {}, {"PATH": "/bin"}) == {"PYTHONUNBUFFERED": "1"}


def test_captured_run_marks_are_dropped_but_own_values_may_set_session_variables():
    env = environ.service_env({"AUTO_RUN": "3", "A": "1"}, {"DISPLAY": ":0"}, {})
    assert env == {"A": "1", "DISPLAY": ":0", "PYTHONUNBUFFERED": "1"}


def test_service_env_returns_a_new_dict():
    captured = {"A": "1"}
    env = environ.service_env(captured, {"B": "2"}, {})
    env["A"] = "changed"
    assert captured == {"A": "1"}


# storage


def test_env_path_is_beside_the_state_file(home):
    assert environ.env_path(home, "web") == home.local / "env" / "web.json"


@pytest.mark.parametrize("bad", ["", ".", "..", "../state", "a/b", ".hidden"])
def test_env_path_refuses_names_that_are_not_service_names(home, bad):
    with pytest.raises(UsageError):
        environ.env_path(home, bad)


def test_save_load_round_trip_with_private_modes(home):
    env = {"PATH": "/usr/bin", "EMPTY": "", "UNICODE": "héllo ✓", "MULTI": "a\nb",
           "NOT_UTF8": os.fsdecode(b"\xff\xfe")}  # os.environ's form of bytes that are not UTF-8
    old_umask = os.umask(0)  # the modes must not depend on a permissive umask
    try:
        environ.save(home, "web", env)
    finally:
        os.umask(old_umask)
    assert environ.load(home, "web") == env
    path = environ.env_path(home, "web")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(home.local.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == env
    assert sorted(os.listdir(path.parent)) == ["web.json"]  # no temp file left


def test_save_replaces_and_leaves_no_temp_file(home):
    environ.save(home, "web", {"A": "1"})
    environ.save(home, "web", {"B": "2"})
    environ.save(home, "api", {})
    assert environ.load(home, "web") == {"B": "2"}
    assert environ.load(home, "api") == {}
    assert sorted(os.listdir(home.local / "env")) == ["api.json", "web.json"]


def test_save_that_cannot_write_is_a_one_line_auto_error(home):
    home.local.mkdir(parents=True)
    (home.local / "env").write_text("a file where the directory should be")
    with pytest.raises(AutoError) as info:
        environ.save(home, "web", {"A": "1"})
    assert not isinstance(info.value, UsageError)
    assert str(info.value).startswith("cannot save the environment of web to ")
    assert "\n" not in str(info.value)


def test_load_missing_is_none(home):
    assert environ.load(home, "web") is None


@pytest.mark.parametrize("content", [b"", b"{not json", b"[]", b'"text"', b'{"A": 1}', b'{"A": null}',
                                     b"\xff\xfe", b'{"A": "1"'])
def test_load_of_a_corrupt_file_is_none(home, content):
    path = environ.env_path(home, "web")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert environ.load(home, "web") is None


def test_delete_is_idempotent(home):
    environ.delete(home, "web")  # nothing saved yet, not even the directory
    environ.save(home, "web", {"A": "1"})
    environ.save(home, "api", {"B": "2"})
    environ.delete(home, "web")
    environ.delete(home, "web")
    assert environ.load(home, "web") is None
    assert not environ.env_path(home, "web").exists()
    assert environ.load(home, "api") == {"B": "2"}
