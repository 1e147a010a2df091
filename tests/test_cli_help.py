"""Help that teaches: each command's -h describes every argument and ends with examples, and
update takes a new command the way add does."""

from __future__ import annotations

import re

import pytest
from helpers import auto, read_state

from auto_core.cmdline import cliparse

COMMANDS = [c for c, _ in cliparse.build_parser().commands]


def help_of(capsys, *argv: str) -> str:
    from auto_core.cmdline import cli

    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "-h"])
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_and_argument_is_described(capsys, command):
    lines = help_of(capsys, command).split("examples:")[0].splitlines()
    # An entry with no description is its names alone on a line, and no indented text under.
    bare = [line.strip() for line, after in zip(lines, [*lines[1:], ""], strict=True)
            if re.fullmatch(r"  (-\S+(?: [A-Z_.]+)?,? ?)+|  [a-z_]+", line)
            and not after.startswith(" " * 8) and line.strip() != "-h, --help"]
    assert bare == [], f"{command}: undescribed {bare}"


@pytest.mark.parametrize("command", sorted(cliparse.EXAMPLES))
def test_help_ends_with_examples(capsys, command):
    text = help_of(capsys, command)
    examples = text.split("examples:\n", 1)[1].splitlines()
    assert 1 <= len(examples) <= 6 and all(e.startswith("  auto ") for e in examples)


def test_env_says_it_repeats_and_update_takes_a_command_after_dashes(auto_home, capsys):
    options = help_of(capsys, "add").split("options:", 1)[1]
    assert "(repeatable)" in options.split("--env K=V", 1)[1].split("\n  -")[0]
    assert "-- NEW COMMAND" in help_of(capsys, "update")
    assert auto(capsys, "add", "svc", "--no-start", "--", "sleep", "100")[0] == 0
    code, _, err = auto(capsys, "update", "svc", "--port", "8123", "--", "sleep", "200")
    assert code == 0, err
    entry = read_state(auto_home)["processes"]["svc"]
    assert entry["command"] == "sleep 200" and entry["port"] == 8123
