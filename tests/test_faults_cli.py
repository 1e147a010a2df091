"""Bad CLI input, property-based (Hypothesis).

Random names, commands, ports, env pairs, intervals, signals and flag combinations are fed
to ``auto_core.cmdline.cli.main(argv)`` in-process. Whatever the input:

- nothing escapes ``main`` (no traceback);
- a failure is exactly one ``auto: error:`` line on stderr with exit 1 or 2;
- a failure leaves ``state.json`` and its backup byte for byte as they were;
- nothing is spawned, not even a watcher (``add`` always carries ``--no-start``;
  ``start``/``restart`` only ever name processes that do not exist; a stop or remove of a
  service that is not running needs no watcher).

A handful of the same inputs also go through a real ``python -m auto_core`` process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import procs_with_env, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auto_core.cmdline import cli

EXISTING = ["web", "db"]
SETTINGS = settings(max_examples=250, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Text that a shell could hand us: anything printable, control characters, surrogate-escaped
# bytes (how Python decodes undecodable argv bytes), shell metacharacters.
weird_text = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.sampled_from(list(" -=./\\$`'\"*?;|&<>()[]{}~!#\t\n\r\x00\x1b\udcff\u00e9\u202e0aZ_")),
            max_size=12),
)
valid_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True)
name = st.one_of(st.sampled_from(EXISTING), valid_name, weird_text)
missing_name = st.one_of(valid_name.map(lambda n: "zz-missing-" + n[:40]), weird_text)
port = st.one_of(st.integers(-10, 70000).map(str), st.sampled_from(["off", "0", "65535", "65536", " 80",
                                                                    "8080.0", "0x50", "1e3", "", "-"]),
                 weird_text)
env_pair = st.one_of(
    st.tuples(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), weird_text).map("=".join),
    weird_text,
)
interval = st.one_of(st.sampled_from(["30m", "2h", "1d", "0", "0s", "367d", "1.5h", "off", "-5m", "nan"]),
                     weird_text)
seconds = st.one_of(st.sampled_from(["0", "1", "nan", "inf", "-1", "1e8", "1e-9"]), weird_text)
signame = st.one_of(st.sampled_from(["TERM", "SIGINT", "kill", "SIGNOPE", "0", "HUP"]), weird_text)
workdir = st.one_of(st.sampled_from(["/", "/tmp", ".", "/nonexistent/dir", "/etc/passwd", "~", ""]), weird_text)


@st.composite
def definition_flags(draw, update: bool = False) -> list[str]:
    flags: list[str] = []
    for flag, values in (("--workdir", workdir), ("--port", port), ("--restart-every", interval),
                         ("--backoff-max", seconds), ("--backoff-base", seconds),
                         ("--stop-timeout", seconds), ("--stop-signal", signame)):
        if draw(st.booleans()):
            flags += [flag, draw(values)]
    for pair in draw(st.lists(env_pair, max_size=3)):
        flags += ["--env", pair]
    if update:
        if draw(st.booleans()):
            flags += ["--command", draw(weird_text)]
        for key in draw(st.lists(weird_text, max_size=2)):
            flags += ["--unset-env", key]
    return flags


# Commands a random token may name that act (spawn, follow, install) or, like `status`, use
# exit code 1 for an answer rather than an error.
ACTING = {"start", "restart", "start-all", "add", "watch", "tui", "install", "uninstall",
          "log", "logs", "status", "stop-all", "update", "stop", "remove"}


@st.composite
def argv(draw) -> list[str]:
    kind = draw(st.sampled_from(["add", "update", "stop", "remove", "show", "log", "ps", "start",
                                 "restart", "garbage"]))
    if kind == "add":
        words = draw(st.lists(weird_text, min_size=0, max_size=3))
        args = ["add", draw(name), *words, *draw(definition_flags()), "--no-start"]
        if draw(st.booleans()):  # also the `--` form, so dash-led commands get through
            args = ["add", *draw(definition_flags()), "--no-start", "--", draw(name), *words]
    elif kind == "update":
        args = ["update", draw(name), *draw(definition_flags(update=True))]
    elif kind in ("stop", "remove", "show"):
        args = [kind, *draw(st.lists(name, min_size=0 if kind == "stop" else 1, max_size=3))]
        if kind == "remove":
            args = args[:2]
        if kind == "show" and draw(st.booleans()):
            args.append("--json")
    elif kind == "log":
        args = ["log", draw(name)] + draw(st.sampled_from([[], ["--path"], ["-n", "5"], ["-n", "x"], ["-n", "-1"]]))
    elif kind == "ps":
        args = ["ps"] + draw(st.sampled_from([[], ["--json"], ["--jsn"], ["extra"]]))
    elif kind in ("start", "restart"):
        args = [kind, *draw(st.lists(missing_name, max_size=3))]
    else:
        args = draw(st.lists(weird_text, max_size=4))
        if set(args) & ACTING:
            args = ["show", *args]  # garbage, not a real command (`status` exits 1 by design)
    # Random extra tokens and flags around the command, but never an exit through --help/--version.
    if draw(st.booleans()):
        # No "--" for add: it would turn the trailing --no-start into part of the command.
        noise = ["--bogus", "-x", "--port", "-q"] + ([] if kind == "add" else ["--"])
        args.insert(draw(st.integers(0, len(args))), draw(st.sampled_from(noise)))
    if draw(st.booleans()):
        args = ["-q", *args]
    return args


def _is_help_or_version(args: list[str]) -> bool:
    return any(a.startswith("--h") or a.startswith("--v") or a == "-h" for a in args)


@pytest.fixture
def baseline(home, capsys):
    """A state with two stopped definitions; returns a function that restores it."""
    for n in EXISTING:
        assert cli.main(["add", n, "sleep 1000", "--no-start", "--workdir", "/", "--port",
                         str(8000 + len(n))]) == 0
    capsys.readouterr()
    saved = {p: p.read_bytes() for p in (home.state_file, home.state_bak)}

    def restore():
        for p, data in saved.items():
            p.write_bytes(data)
        return saved[home.state_file], saved[home.state_bak]

    return restore


def check_one(capsys, home, args: list[str]) -> tuple[int, str]:
    before = (home.state_file.read_bytes(), home.state_bak.read_bytes())
    try:
        code = cli.main(args)
    except SystemExit as exc:  # argparse's own help/version exits
        out, err = capsys.readouterr()
        assert exc.code == 0 and _is_help_or_version(args), (args, exc.code, err)
        return 0, err
    except BaseException as exc:  # noqa: BLE001 - the property: nothing escapes
        raise AssertionError(f"auto {args!r} raised {exc!r}") from exc
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    if code != 0:
        assert code in (1, 2), (args, code, err)
        lines = err.splitlines()
        if lines and lines[0].startswith("usage: auto ") and code == 2:
            # No command given (`auto`, `auto -q`): the commands are listed, as documented.
            assert cli._globals(args)[2] is None or args[cli._globals(args)[2]] not in cli.HANDLERS, (args, err)
        else:
            assert len(lines) == 1 and lines[0].startswith("auto: error: ") and err.endswith("\n"), (args, err)
        assert (home.state_file.read_bytes(), home.state_bak.read_bytes()) == before, (args, err)
    else:
        assert not [line for line in err.splitlines() if not line.startswith("auto: warning: ")], (args, err)
    return code, err


@pytest.mark.slow
@given(args=argv())
@SETTINGS
def test_random_cli_input(capsys, home, baseline, args):
    baseline()
    check_one(capsys, home, args)
    # --no-start and missing names: nothing was ever spawned, and no watcher was needed.
    assert not (home.root / "output" / "logs").exists() or not list((home.root / "output" / "logs").rglob("*.log"))
    assert procs_with_env("AUTO_HOME", str(home.root)) == []


@given(args=st.lists(weird_text, min_size=1, max_size=6))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_tokens(capsys, home, baseline, args):
    """Unstructured argv: whatever parses must still honour the contract."""
    baseline()
    if set(args) & ACTING:
        args = ["show", *args]  # keep the unstructured run side-effect free (no spawn, no follow)
    check_one(capsys, home, args)


@given(key=weird_text, value=weird_text, port_text=port, n=name)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_update_failures_change_nothing(capsys, home, baseline, key, value, port_text, n):
    state_before, _ = baseline()
    code, _ = check_one(capsys, home, ["update", n, "--env", f"{key}={value}", "--port", port_text])
    if code != 0:
        assert home.state_file.read_bytes() == state_before


SUBPROCESS_CASES = [
    ["add", "../x", "true", "--no-start"],
    ["add", "ok", "true", "--port", "http", "--no-start"],
    ["add", "ok", "true", "--env", "1BAD=x", "--no-start"],
    ["add", "ok", "true", "--env", "NOEQUALS", "--no-start"],
    ["add", "ok", "true", "--restart-every", "soon", "--no-start"],
    ["add", "ok", "true", "--stop-signal", "SIGNOPE", "--no-start"],
    ["add", "ok", "true", "--workdir", "/nonexistent", "--no-start"],
    ["add", "web", "true", "--no-start"],
    ["update", "web"],
    ["update", "nope", "--port", "1"],
    ["start", "nope"],
    ["stop", "web", "nope"],
    ["remove", "nope"],
    ["log", "web", "-n", "many"],
    ["frobnicate"],
    ["ps", "--bogus"],
    ["add", "\udcff\udcfe", "true"],
]


@pytest.mark.parametrize("args", SUBPROCESS_CASES, ids=lambda a: " ".join(a).encode("ascii", "replace").decode())
def test_bad_input_in_a_real_process(home, baseline, args):
    before = (home.state_file.read_bytes(), home.state_bak.read_bytes())
    if any("\udc80" <= ch <= "\udcff" for a in args for ch in a):
        # Undecodable argv bytes, as a shell would pass them.
        env = dict(os.environ, AUTO_HOME=str(home.root))
        raw = [sys.executable.encode(), b"-m", b"auto_core"] + [os.fsencode(a) for a in args]
        r = subprocess.run(raw, capture_output=True, env=env, timeout=60)
        stderr = r.stderr.decode("utf-8", "replace")
    else:
        r = run_cli(*args, home=home.root)
        stderr = r.stderr
    assert r.returncode in (1, 2), stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("auto: error: "), stderr
    assert (home.state_file.read_bytes(), home.state_bak.read_bytes()) == before
    assert procs_with_env("AUTO_HOME", str(home.root)) == []


@pytest.mark.parametrize("command", ["echo é ☃", "echo \udcff\udcfe"])
def test_unencodable_output_in_an_ascii_locale(home, command):
    """A command with non-ASCII or undecodable bytes, shown by a CLI whose locale is ASCII
    (cron, a bare launchd job): printed with escapes, never a UnicodeEncodeError traceback."""
    env = dict(os.environ, AUTO_HOME=str(home.root), LC_ALL="C", LANG="C", PYTHONUTF8="0",
               PYTHONCOERCECLOCALE="0", PYTHONIOENCODING="")
    raw = [sys.executable.encode(), b"-m", b"auto_core", b"add", b"web", os.fsencode(command),
           b"--no-start", b"--workdir", b"/"]
    assert subprocess.run(raw, capture_output=True, env=env, timeout=60).returncode == 0
    for args in (["show", "web"], ["ps", "--json"], ["ps"], ["add", "web", command, "--no-start"]):
        r = subprocess.run([sys.executable.encode(), b"-m", b"auto_core", *map(os.fsencode, args)],
                           capture_output=True, env=env, timeout=60)
        assert b"Traceback" not in r.stderr, (args, r.stderr)
        assert r.returncode == (1 if args[0] == "add" else 0), (args, r.stderr)
