"""The no-shell fast path: ``simple_argv`` must agree with /bin/sh word for word, or decline."""

import os
import subprocess

import pytest
from helpers import header_by, read_state, run_cli, wait_until

from auto_core.errors import AutoError
from auto_core.lifecycle import Api
from auto_core.proc.shellwords import simple_argv

PLAIN = [
    "sleep 100000",
    "uvicorn main:app --port 8000",
    "python3 -m http.server 8765 --bind 127.0.0.1",
    """python3 -c "print('hi there')" """,
    "node  server.js\t--x=1",
    "a'b c'd \"e f\"g",
    'prog "" x',
    "/usr/bin/env FOO=1 prog",
    "prog user@host:/srv/x,y 50% +1 '$HOME' '*' \"!\" \"a;b\" 'it''s'",
    "prog 'multi\nline'",
]


def sh_words(command: str) -> list[str]:
    """How /bin/sh splits ``command``: the same text after a printf that prints each word."""
    out = subprocess.run(["/bin/sh", "-c", "printf '%s\\0' " + command], capture_output=True,
                         check=True).stdout
    return out.decode().split("\0")[:-1]


@pytest.mark.parametrize("command", PLAIN)
def test_plain_commands_split_exactly_as_sh_does(command):
    words = simple_argv(command)
    assert words is not None
    assert words == sh_words(command)


@pytest.mark.parametrize("command", [
    "", "   ", "exec", "sleep 1; echo x", "a && b", "a || b", "a | b", "a & b", "cmd > out", "cmd < in",
    "cmd 2>&1", "FOO=1 prog", "echo hi", "cd /tmp", "exit 3", "exec exec x", "true", "kill 1",
    "ls *.py", "ls ?", "ls [ab]", "~/bin/x", "prog ~", "prog $HOME", 'prog "$HOME"', "prog `id`",
    'prog "`id`"', "prog a\\ b", 'prog "a\\"b"', "prog # comment", "a\nb", "'unterminated",
    '"unterminated', "if true", "(sub)", "prog {a,b}", "! prog", "'' x", "prog $(id)",
])
def test_anything_with_shell_syntax_or_a_builtin_needs_the_shell(command):
    assert simple_argv(command) is None


def test_a_plain_service_is_its_own_leader_and_a_shell_one_keeps_the_shell(home, tmp_path):
    for name, command in (("plain", "sleep 40977"), ("shell", "sleep 40976; true")):
        assert run_cli("add", name, command, "--workdir", str(tmp_path), home=home.root).returncode == 0
    procs = read_state(home.root)["processes"]
    for name, comm in (("plain", "sleep"), ("shell", "sh")):
        pid = procs[name]["pid"]
        wait_until(lambda pid=pid, comm=comm: open(f"/proc/{pid}/comm").read().strip() == comm, 5,
                   message=f"{name}'s leader runs {comm}")
        assert os.getpgid(pid) == pid
        log = procs[name]["log_path"]
        wait_until(lambda log=log: open(log).read(), 5)
        first = open(log).read().splitlines()[0]
        # The watcher spawns a plain command itself and writes its header, with room for a 7-digit pid.
        assert header_by(first, name, pid, procs[name]["command"]) == {"plain": "direct", "shell": "shell"}[name]
    assert os.readlink(f"/proc/{procs['plain']['pid']}/cwd") == str(tmp_path)


def test_a_plain_command_that_does_not_exist_is_refused_by_add(home, tmp_path):
    api = Api(home, warn=lambda m: None)
    with pytest.raises(AutoError, match="program 'no-such-program-xyz' not found on the service's PATH"):
        api.add("nocmd", "no-such-program-xyz --flag", workdir=str(tmp_path))
    assert "nocmd" not in api.names()


def test_a_plain_program_gone_after_add_exits_127_with_the_shells_message(home, tmp_path):
    """`add` and `start` check the program, but it may vanish later (`start-all` leaves each
    service to the watcher): the spawn falls back to the shell's prologue, which logs the
    shell's own message, and the exit code is 127."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    program = bindir / "vanishing-prog-xyz"
    program.write_text("#!/bin/sh\nexec sleep 1000\n")
    program.chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin"}
    added = run_cli("add", "nocmd", "vanishing-prog-xyz --flag", "--no-start", "--backoff-base", "600",
                    "--workdir", str(tmp_path), home=home.root, env=env)
    assert added.returncode == 0, added.stderr
    program.unlink()
    before = read_state(home.root)
    refused = run_cli("start", "nocmd", "--wait", "0", home=home.root, env=env)
    assert refused.returncode == 1
    assert refused.stderr == "auto: error: nocmd: program 'vanishing-prog-xyz' not found on the service's PATH\n"
    assert read_state(home.root) == before
    started = run_cli("start-all", "--wait", "0", home=home.root, env=env)
    assert started.returncode == 0, started.stderr
    entry = read_state(home.root)["processes"]["nocmd"]
    log = entry["log_path"]
    wait_until(lambda: "not found" in open(log).read(), 5, message="the shell's not-found line")
    lines = open(log).read().splitlines()
    assert header_by(lines[0], "nocmd", entry["pid"], entry["command"]) == "shell"
    assert "vanishing-prog-xyz" in lines[1] and "not found" in lines[1]

    def recorded_exit():
        last = read_state(home.root)["processes"]["nocmd"].get("last_exit") or {}
        return last if last.get("pid") == entry["pid"] else None

    last = wait_until(recorded_exit, 5, message="the exit recorded")
    assert (last["code"], last["signal"], "unknown" in last) == (127, None, False)
