"""auto export --format procfile|systemd|launchd|supervisord: what each writes is read back by
the other tool's own reader (systemd-analyze verify, plistlib, supervisord's config parser)
and by auto import. Services are defined with --no-start: nothing runs."""

from __future__ import annotations

import configparser
import os
import plistlib
import shlex
import shutil
import subprocess
import sys

import pytest
from helpers import assert_one_error, auto, free_port, read_state, systemd_analyze_verify

# A value that every quoting rule has to get right: blanks, both quotes, %, $, a backslash, and
# a ; and a # after a blank (a comment to an INI reader).
ODD = 'two words "dq" it\'s 100% $HOME \\n ;x #y'
# A command with sh syntax, the same characters, and a ; and a # after a blank.
SHELL = 'echo "at $PWD" 100% ; exec sleep 1002 #end'


@pytest.fixture
def services(tmp_path, capsys):
    """plain (a program found on PATH), shell (sh syntax, an odd workdir), full (every
    option), quoted (env values supervisord cannot hold)."""
    work = tmp_path / "work dir %n $X"
    work.mkdir()
    sleep = shutil.which("sleep")
    assert sleep
    for args in (
        ("plain", "--", "sleep", "1001"),
        ("shell", "--workdir", str(work), "--env", f"ODD={ODD}", "--",
         SHELL),
        ("full", "--port", str(free_port()), "--env", "A=1", "--env", "B=two words",
         "--restart-every", "30d", "--backoff-base", "3", "--backoff-max", "60",
         "--stop-signal", "INT", "--stop-timeout", "4", "--log-keep-days", "7", "--",
         "sleep", "1003"),
        ("quoted", "--env", "Q='single'", "--env", "H=x #y", "--env", "OK=fine", "--", "sleep", "1004"),
    ):
        code, _, err = auto(capsys, "add", args[0], "--no-start", *args[1:])
        assert code == 0, err
    return {"sleep": sleep, "work": work}


def export(capsys, *args: str) -> str:
    code, out, err = auto(capsys, "export", *args)
    assert code == 0, err
    return out


# --- systemd ---------------------------------------------------------------------------------

def test_systemd_units_pass_systemd_analyze_verify(services, tmp_path, capsys):
    out = tmp_path / "units"
    export(capsys, "--format", "systemd", "--output", str(out))
    units = sorted(p.name for p in out.iterdir())
    assert units == ["auto-full.service", "auto-plain.service", "auto-quoted.service",
                     "auto-shell.service"]
    for name in units:
        checked = systemd_analyze_verify(out / name)
        assert checked.returncode == 0, checked.stderr
        # verify exits 0 even when it ignores a bad line: any message about our file fails.
        assert name not in checked.stderr, checked.stderr
    plain = (out / "auto-plain.service").read_text().splitlines()
    assert f'ExecStart="{services["sleep"]}" "1001"' in plain
    assert "Restart=always" in plain and "RestartSec=1" in plain
    assert "KillSignal=SIGTERM" in plain and "TimeoutStopSec=10" in plain
    assert quoted_path(os.environ["PATH"]) in plain
    assert any("only PATH is written" in line for line in plain if line.startswith("#"))
    # No User= is written: the header says where the unit goes and what the system manager needs.
    assert not any(line.startswith("User=") for line in plain)
    assert any("~/.config/systemd/user" in line and "add User=" in line and "root" in line
               for line in plain if line.startswith("#"))
    full = (out / "auto-full.service").read_text().splitlines()
    assert {"RestartSec=3", "KillSignal=SIGINT", "TimeoutStopSec=4", "RuntimeMaxSec=2592000",
            'Environment="A=1"', 'Environment="B=two words"'} <= set(full)
    assert "# Not carried, set here: full: port, backoff_max, log_keep_days." in full
    shell = (out / "auto-shell.service").read_text().splitlines()
    assert 'ExecStart="/bin/sh" "-c" "echo \\"at $$PWD\\" 100%% ; exec sleep 1002 #end"' in shell
    assert "WorkingDirectory=" + str(services["work"]).replace("%", "%%") in shell
    assert 'Environment="ODD=two words \\"dq\\" it\'s 100%% $HOME \\\\n ;x #y"' in shell


def quoted_path(path: str) -> str:
    from auto_core.exports.systemd import quoted

    return "Environment=" + quoted(f"PATH={path}")


def test_the_verify_check_catches_a_unit_that_cannot_run(services, tmp_path, capsys):
    """The check above has teeth: a program that is not there is reported."""
    out = tmp_path / "units"
    export(capsys, "plain", "--format", "systemd", "--output", str(out))
    unit = out / "auto-plain.service"
    unit.write_text(unit.read_text().replace(services["sleep"], str(tmp_path / "no-such-program")))
    checked = systemd_analyze_verify(unit)
    assert checked.returncode != 0 or unit.name in checked.stderr


@pytest.mark.parametrize("fmt", ["systemd", "launchd"])
def test_a_format_of_a_file_per_service_needs_a_folder(services, auto_home, tmp_path, capsys, fmt):
    code, out, err = auto(capsys, "export", "--format", fmt)
    message = assert_one_error(code, err, 2)
    assert "--output DIR" in message and out == ""


# --- launchd ---------------------------------------------------------------------------------

def test_launchd_plists_read_back_with_their_fields(services, tmp_path, capsys):
    out = tmp_path / "agents"
    export(capsys, "--format", "launchd", "--output", str(out))
    assert sorted(p.name for p in out.glob("*.plist")) == [
        "auto.full.plist", "auto.plain.plist", "auto.quoted.plist", "auto.shell.plist"]
    assert (out / "logs").is_dir()
    jobs = {p.name: plistlib.loads(p.read_bytes()) for p in out.glob("*.plist")}
    plain = jobs["auto.plain.plist"]
    assert plain["Label"] == "auto.plain"
    assert plain["ProgramArguments"] == [services["sleep"], "1001"]
    assert plain["KeepAlive"] is True and plain["RunAtLoad"] is True
    assert plain["StandardOutPath"] == plain["StandardErrorPath"] == str(out / "logs" / "plain.log")
    assert plain["WorkingDirectory"] == read_state_workdir(tmp_path, "plain")
    assert plain["ExitTimeOut"] == 10 and plain["ThrottleInterval"] == 1
    assert plain["EnvironmentVariables"] == {"PATH": os.environ["PATH"]}
    assert "only PATH is written" in (out / "auto.plain.plist").read_text()
    shell = jobs["auto.shell.plist"]
    assert shell["ProgramArguments"] == ["/bin/sh", "-c", SHELL]
    assert shell["WorkingDirectory"] == str(services["work"])
    assert shell["EnvironmentVariables"]["ODD"] == ODD
    full = jobs["auto.full.plist"]
    assert {k: full["EnvironmentVariables"][k] for k in ("A", "B")} == {"A": "1", "B": "two words"}
    assert full["ExitTimeOut"] == 4 and full["ThrottleInterval"] == 3
    text = (out / "auto.full.plist").read_text()
    assert "<!-- Not carried, set here: full: port, restart_every, backoff_max, stop_signal, " \
        "log_keep_days. -->" in text


def read_state_workdir(tmp_path, name: str) -> str:
    return read_state(tmp_path / "auto-home")["processes"][name]["workdir"]


# --- supervisord -----------------------------------------------------------------------------

def supervisord_programs(conf, tmp_path) -> dict:
    """``conf`` included from a minimal supervisord.conf and read by supervisord's own parser:
    name -> (argv it would exec, directory, environment, stop signal, stop wait)."""
    pytest.importorskip("supervisor", reason="supervisor is not installed (pip install supervisor)")
    main = tmp_path / "main.conf"
    main.write_text(f"[supervisord]\nlogfile = {tmp_path}/supervisord.log\n\n"
                    f"[include]\nfiles = {conf}\n")
    code = ("import json, sys\n"
            "from supervisor.options import ServerOptions\n"
            "from supervisor.process import Subprocess\n"
            "from supervisor.datatypes import RestartUnconditionally\n"
            "o = ServerOptions()\n"
            "o.realize(args=['-c', sys.argv[1]])\n"
            "print(json.dumps({p.name: [Subprocess(p).get_execv_args(), p.directory, p.environment,"
            " p.stopsignal, p.stopwaitsecs, p.stopasgroup, p.killasgroup, p.autorestart is RestartUnconditionally]"
            " for g in o.process_group_configs for p in g.process_configs}))\n")
    done = subprocess.run([sys.executable, "-c", code, str(main)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    import json

    return json.loads(done.stdout)


def test_supervisord_conf_reads_back_in_supervisord(services, tmp_path, capsys):
    text = export(capsys, "--format", "supervisord")
    parsed = configparser.RawConfigParser()
    parsed.read_string(text)
    assert parsed.sections() == ["program:full", "program:plain", "program:quoted", "program:shell"]
    assert parsed["program:full"]["stopsignal"] == "INT"
    assert parsed["program:full"]["stopasgroup"] == parsed["program:full"]["killasgroup"] == "true"
    for name, keys in (("quoted", "H, Q"), ("shell", "ODD")):
        assert f"; {name}: variables whose value supervisord cannot read back (quotes at an " \
            f"end, both kinds of quote, a newline, a ; or # after a blank): {keys}" in text
    conf = tmp_path / "auto.conf"
    conf.write_text(text)
    programs = supervisord_programs(conf, tmp_path)
    import signal

    plain = programs["plain"]
    assert plain[0] == [services["sleep"], [services["sleep"], "1001"]]
    assert plain[3:] == [int(signal.SIGTERM), 10, True, True, True]
    shell = programs["shell"]
    assert shell[0] == ["/bin/sh", ["/bin/sh", "-c", SHELL]]
    assert shell[1] == str(services["work"])
    # The PATH captured at add is written (supervisord starts programs with its own); the rest
    # of the captured environment is not, and the header says so.
    path = {"PATH": os.environ["PATH"]}
    assert "only PATH is written" in text
    assert plain[2] == path
    assert shell[2] == path  # ODD holds both quotes: named in the header instead
    full = programs["full"]
    assert full[2] == {**path, "A": "1", "B": "two words"} and full[3:5] == [int(signal.SIGINT), 4]
    assert programs["quoted"][2] == {**path, "OK": "fine"}  # Q and H are named in the header


def test_supervisord_conf_into_a_folder_and_back_through_import(services, tmp_path, capsys,
                                                                monkeypatch):
    out = tmp_path / "conf.d"
    code, said, err = auto(capsys, "update", "shell", "--unset-env", "ODD", "--env", 'V=two "dq", 100% $HOME,a=b')
    assert code == 0, err
    code, said, err = auto(capsys, "export", "full", "shell", "--format", "supervisord",
                           "--output", str(out))
    assert code == 0, err
    assert said.splitlines() == [f"wrote {out / 'supervisord.conf'}"]
    before = read_state(tmp_path / "auto-home")["processes"]
    monkeypatch.setenv("AUTO_HOME", str(tmp_path / "other-home"))
    code, said, err = auto(capsys, "import", str(out / "supervisord.conf"), "--no-start")
    assert code == 0, err
    # What the export switches on is auto's own behaviour: nothing is named as not carried.
    assert "not carried" not in err, err
    after = read_state(tmp_path / "other-home")["processes"]
    from auto_core.setupfile import effective

    for name in ("full", "shell"):
        now, then = effective(after[name]), effective(before[name])
        for key in ("workdir", "stop_signal", "stop_timeout"):
            assert now[key] == then[key], (name, key)
        # the captured PATH comes back as the service's own
        assert now["env"] == {"PATH": os.environ["PATH"], **then["env"]}, name
    assert after["full"]["stop_timeout"] == 4
    assert after["full"]["command"] == f"{services['sleep']} 1003"
    assert after["shell"]["command"] == "/bin/sh -c " + shlex.quote(SHELL)


# --- procfile --------------------------------------------------------------------------------

def test_a_name_a_procfile_cannot_hold_is_a_comment_and_the_file_imports_back(
        tmp_path, auto_home, capsys, monkeypatch):
    for name in ("web.2", "web-1"):
        code, _, err = auto(capsys, "add", name, "--no-start", "--", "sleep", "1006")
        assert code == 0, err
    text = export(capsys, "--format", "procfile")
    assert "# web.2: not carried (a Procfile name holds only letters, digits, _ and -): " \
        "sleep 1006" in text.splitlines()
    procfile = tmp_path / "Procfile"
    procfile.write_text(text)
    monkeypatch.setenv("AUTO_HOME", str(tmp_path / "other-home"))
    code, _, err = auto(capsys, "import", str(procfile), "--no-start")
    assert code == 0, err
    assert list(read_state(tmp_path / "other-home")["processes"]) == ["web-1"]


def test_procfile_lines_and_what_it_cannot_hold(services, tmp_path, capsys, monkeypatch):
    text = export(capsys, "--format", "procfile")
    lines = text.splitlines()
    assert lines[0].startswith("# ") and "workdir and env are not part of a Procfile" in lines[1]
    assert "full: workdir, port, env, restart_every" in lines[2]
    assert lines[3:] == ["full: sleep 1003", "plain: sleep 1001", "quoted: sleep 1004",
                         f"shell: {SHELL}"]
    procfile = tmp_path / "Procfile"
    procfile.write_text(text)
    monkeypatch.setenv("AUTO_HOME", str(tmp_path / "other-home"))
    code, out, err = auto(capsys, "import", str(procfile), "--no-start")
    assert code == 0, err
    after = read_state(tmp_path / "other-home")["processes"]
    assert {n: e["command"] for n, e in after.items()} == {
        "plain": "sleep 1001", "shell": SHELL,
        "full": "sleep 1003", "quoted": "sleep 1004"}


# --- what a format cannot carry --------------------------------------------------------------

def test_an_option_added_later_is_named_as_not_carried(monkeypatch):
    """The exporters list any set definition key outside what they carry, so an option that
    a later version adds is reported, not dropped silently."""
    from auto_core import exports, setupfile
    from auto_core.exports import launchd, procfile, supervisord, systemd

    monkeypatch.setattr(setupfile, "DEFINITION_KEYS", (*setupfile.DEFINITION_KEYS, "health_cmd"))
    service = exports.Service("api", {"command": "sleep 1", "health_cmd": "true"},
                              {"PATH": "/usr/bin:/bin"})
    for module in (procfile, supervisord, systemd, launchd):
        text = next(iter(module.render([service]).values()))
        assert "Not carried, set here: api: health_cmd." in text, module


@pytest.mark.parametrize("fmt, name", [("toml", "auto.toml"), ("procfile", "Procfile"),
                                       ("supervisord", "supervisord.conf")])
def test_a_one_file_format_goes_to_stdout_or_into_the_folder(services, tmp_path, capsys, fmt, name):
    printed = export(capsys, "plain", "--format", fmt)
    out = tmp_path / "new" / "folder"
    said = export(capsys, "plain", "--format", fmt, "--output", str(out))
    assert said.splitlines() == [f"wrote {out / name}"]
    assert (out / name).read_text() == printed and "1001" in printed
    assert [p.name for p in out.iterdir()] == [name]  # no temp file left beside it


@pytest.mark.parametrize("fmt", ["systemd", "launchd"])
def test_a_file_per_service_with_no_service_says_so(auto_home, tmp_path, capsys, fmt):
    out = tmp_path / "units"
    said = export(capsys, "--format", fmt, "--output", str(out))
    assert said.splitlines() == ["no processes defined"]
    assert not out.exists()


def test_export_into_a_folder_that_is_a_file_is_one_error(services, tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("")
    code, out, err = auto(capsys, "export", "--format", "systemd", "--output", str(blocker))
    message = assert_one_error(code, err, 2)
    assert message.startswith(f"auto: error: --output {blocker}: cannot write there: "), message
    assert blocker.read_text() == ""


def test_a_workdir_supervisord_would_cut_at_a_comment_leaves_the_program_out(tmp_path, auto_home,
                                                                           capsys):
    work = tmp_path / "w #x"
    work.mkdir()
    for name, flags in (("odd", ("--workdir", str(work))), ("fine", ())):
        code, _, err = auto(capsys, "add", name, "--no-start", *flags, "--", "sleep", "1005")
        assert code == 0, err
    text = export(capsys, "--format", "supervisord")
    assert "; odd: left out: its workdir holds a ; or # after a blank, which supervisord reads " \
        "as a comment" in text
    conf = tmp_path / "auto.conf"
    conf.write_text(text)
    assert list(supervisord_programs(conf, tmp_path)) == ["fine"]


def test_fractions_of_a_second_round_up_where_a_format_takes_whole_seconds(tmp_path, auto_home,
                                                                          capsys):
    """A stop timeout of 2.5 s is not cut to 2: the wait is never shorter than auto's."""
    code, _, err = auto(capsys, "add", "frac", "--no-start", "--stop-timeout", "2.5",
                        "--backoff-base", "2.5", "--", "sleep", "1007")
    assert code == 0, err
    conf = tmp_path / "auto.conf"
    conf.write_text(export(capsys, "--format", "supervisord"))
    assert supervisord_programs(conf, tmp_path)["frac"][4] == 3
    out = tmp_path / "agents"
    export(capsys, "--format", "launchd", "--output", str(out))
    job = plistlib.loads((out / "auto.frac.plist").read_bytes())
    assert job["ExitTimeOut"] == 3 and job["ThrottleInterval"] == 3
