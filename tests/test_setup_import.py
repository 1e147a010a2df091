"""auto import: a Procfile, a supervisord conf, a pm2 ecosystem file (JSON, or JS through
node) and a process-compose.yaml, each a real file applied through the real CLI into a
temporary AUTO_HOME (conftest stops every process afterwards)."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from helpers import assert_one_error, auto, read_state, state_bytes

from auto_core.proc import identity


def write(path, text: str):
    path.write_text(text)
    return path


def entries(home) -> dict[str, dict]:
    return read_state(home)["processes"]


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("auto: warning:")]


def imported(capsys, path, *flags: str) -> tuple[str, str]:
    code, out, err = auto(capsys, "import", str(path), *flags)
    assert code == 0, err
    return out, err


def test_a_procfile_starts_each_line_in_the_files_folder(tmp_path, auto_home, capsys):
    path = write(tmp_path / "Procfile", "# the app\nweb: sleep 2001\n\nworker:   sleep 2002 && true\n")
    out, err = imported(capsys, path)
    assert out.splitlines()[:2] == ["+ web (add)", "+ worker (add)"]
    assert warnings(err) == [f"auto: warning: {path}: not carried over: PORT (foreman, honcho "
                             "and heroku local set one per process; auto assigns no ports)"]
    procs = entries(auto_home)
    assert procs["web"]["command"] == "sleep 2001"
    assert procs["worker"]["command"] == "sleep 2002 && true"
    assert procs["web"]["workdir"] == procs["worker"]["workdir"] == str(tmp_path)
    assert identity.runs(procs["web"]) and identity.runs(procs["worker"])
    # Imported again: the same plan as apply's, nothing touched.
    before = state_bytes(auto_home)
    out, _ = imported(capsys, path)
    assert out.splitlines() == ["= web (unchanged)", "= worker (unchanged)"]
    assert state_bytes(auto_home) == before


def test_a_procfile_takes_the_env_file_beside_it(tmp_path, auto_home, capsys):
    """foreman and honcho load .env from the Procfile's folder into every process."""
    write(tmp_path / ".env", "# app settings\nexport GREETING=hello\nQUOTED='two words'\n")
    path = write(tmp_path / "Procfile", "web: sleep 2019\n")
    imported(capsys, path, "--no-start")
    assert entries(auto_home)["web"]["env"] == {"GREETING": "hello", "QUOTED": "two words"}
    other = tmp_path / "other"
    other.mkdir()
    alone = write(other / "Procfile", "alone: sleep 2020\n")
    imported(capsys, alone, "--no-start")
    assert entries(auto_home)["alone"]["env"] == {}


SUPERVISORD = """\
[supervisord]
logfile = /tmp/supervisord.log
environment = SHARED="all",C=theirs

[program:api]
command = /bin/sh -c "exec sleep 2003"  ; a word with blanks: supervisord splits by quotes
directory = %(here)s/srv
environment = A="1,2",B='x y',C=plain,WHERE="%(program_name)s"
stopsignal = INT
stopwaitsecs = 3
autorestart = true
user = nobody
numprocs = 1

[program:later]
command = /bin/sleep 2004
autostart = false
priority = 5

[eventlistener:mem]
command = memmon
"""


def test_a_supervisord_conf_carries_its_programs_and_names_what_it_drops(tmp_path, auto_home, capsys):
    (tmp_path / "srv").mkdir()
    path = write(tmp_path / "supervisord.conf", SUPERVISORD)
    out, err = imported(capsys, path)
    assert warnings(err) == [f"auto: warning: {path}: not carried over: api: user, numprocs; "
                             "later: priority; [eventlistener:mem]; autorestart unexpected, the "
                             "default (later): auto restarts after every exit"]
    assert out.splitlines()[:2] == ["+ api (add)", "+ later (add, not started)"]
    procs = entries(auto_home)
    api = procs["api"]
    assert api["command"] == "/bin/sh -c 'exec sleep 2003'"
    assert api["workdir"] == str(tmp_path / "srv")
    assert api["env"] == {"SHARED": "all", "C": "plain", "A": "1,2", "B": "x y", "WHERE": "api"}
    assert api["stop_signal"] == "SIGINT" and api["stop_timeout"] == 3
    assert identity.runs(api)
    assert procs["later"]["explicitly_stopped"] is True and procs["later"]["pid"] is None
    assert procs["later"]["env"] == {"SHARED": "all", "C": "theirs"}


def test_a_pm2_ecosystem_json(tmp_path, auto_home, capsys):
    app = tmp_path / "app"
    app.mkdir()
    write(app / "worker.py", "import os, time\ntime.sleep(int(os.environ['SECONDS_LEFT']))\n")
    path = write(tmp_path / "ecosystem.json", """{"apps": [
      {"name": "worker", "script": "worker.py", "interpreter": "%s", "cwd": "app",
       "env": {"SECONDS_LEFT": 2005, "DEBUG": true}, "kill_timeout": 2500, "instances": 2},
      {"script": "sleep", "args": ["2006"]},
      {"name": "str-args", "script": "sleep", "args": "2007 "}
    ]}""" % sys.executable)
    out, err = imported(capsys, path)
    assert warnings(err) == [f"auto: warning: {path}: not carried over: worker: instances"]
    assert out.splitlines()[:3] == ["+ worker (add)", "+ sleep (add)", "+ str-args (add)"]
    procs = entries(auto_home)
    worker = procs["worker"]
    assert worker["command"] == f"{sys.executable} worker.py"
    assert worker["workdir"] == str(app)
    assert worker["env"] == {"SECONDS_LEFT": "2005", "DEBUG": "true"}
    assert worker["stop_timeout"] == 2.5
    assert procs["sleep"]["command"] == "sleep 2006"
    assert procs["str-args"]["command"] == "sleep 2007"
    assert all(identity.runs(procs[n]) for n in ("worker", "sleep", "str-args"))


def test_pm2_runs_a_script_without_a_known_extension_with_node_unless_it_is_a_binary(
        tmp_path, auto_home, capsys, monkeypatch):
    """pm2 picks 'none' only for a binary; ./bin/www (a node script) runs as 'node ./bin/www'."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write(bin_dir / "www", "#!/usr/bin/env node\nrequire('../app')\n").chmod(0o755)
    tools = tmp_path / "tools"  # a node of our own: the check needs one on PATH, nothing runs
    tools.mkdir()
    write(tools / "node", "#!/bin/sh\nexit 0\n").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    path = write(tmp_path / "ecosystem.json", """{"apps": [
      {"name": "www", "script": "./bin/www"},
      {"name": "bin", "script": "sleep", "args": "2021"},
      {"name": "own", "script": "bin/www", "interpreter": "none"}
    ]}""")
    imported(capsys, path, "--no-start")
    procs = entries(auto_home)
    assert procs["www"]["command"] == "node ./bin/www"
    assert procs["bin"]["command"] == "sleep 2021"
    assert procs["own"]["command"] == "bin/www"


def test_a_pm2_ecosystem_config_js_is_read_by_node(tmp_path, auto_home, capsys):
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    path = write(tmp_path / "ecosystem.config.js",
                 "const port = 3000 + 1;\n"
                 "console.log('loading the config', {port});\n"  # printed: not the exports
                 "module.exports = { apps: [{ name: 'web', script: 'sleep', args: String(2000 + 8),"
                 " env: { PORT: port } }],\n"
                 "  deploy: { production: { host: 'example.org' } } };\n")
    out, err = imported(capsys, path, "--no-start")
    assert warnings(err) == [f"auto: warning: {path}: not carried over: deploy (top level)"]
    assert out.splitlines()[0] == "+ web (add)"
    web = entries(auto_home)["web"]
    assert web["command"] == "sleep 2008" and web["env"] == {"PORT": "3001"}


def test_a_js_ecosystem_without_node_is_one_error(tmp_path, auto_home, capsys, monkeypatch):
    path = write(tmp_path / "ecosystem.config.js", "module.exports = {apps: []}\n")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, out, err = auto(capsys, "import", str(path))
    message = assert_one_error(code, err, 2)
    assert message.startswith(f"auto: error: {path}: ") and "needs node" in message
    assert out == "" and state_bytes(auto_home) is None


COMPOSE = """\
version: "0.5"
environment:
  - "SHARED=all"
log_location: /tmp/pc.log
processes:
  db:
    command: "sleep 2009"
    working_dir: data
    environment:
      - "SHARED=mine"
      - "URL=postgres://x?a=b"
    shutdown:
      signal: 2
      timeout_seconds: 7
    depends_on:
      other: {condition: process_started}
  idle:
    command: "sleep 2010"
    disabled: true
"""


def test_a_process_compose_file(tmp_path, auto_home, capsys):
    (tmp_path / "data").mkdir()
    path = write(tmp_path / "process-compose.yaml", COMPOSE)
    out, err = imported(capsys, path)
    assert warnings(err) == [f"auto: warning: {path}: not carried over: log_location (top level); "
                             "db: depends_on; availability.restart no, the default (db, idle): "
                             "auto restarts after every exit"]
    assert out.splitlines()[:2] == ["+ db (add)", "+ idle (add, not started)"]
    procs = entries(auto_home)
    db = procs["db"]
    assert db["command"] == "sleep 2009" and db["workdir"] == str(tmp_path / "data")
    assert db["env"] == {"SHARED": "mine", "URL": "postgres://x?a=b"}
    assert db["stop_signal"] == "SIGINT" and db["stop_timeout"] == 7
    assert identity.runs(db)
    assert procs["idle"]["env"] == {"SHARED": "all"} and procs["idle"]["pid"] is None


@pytest.mark.parametrize("name, text, said", [
    ("supervisord.conf", "[program:a]\ncommand = sleep 1\n",
     "autorestart unexpected, the default (a): auto restarts after every exit"),
    ("supervisord.conf", "[program:a]\ncommand = sleep 1\nautorestart = false\n"
     "[program:b]\ncommand = sleep 1\nautorestart = false\n",
     "autorestart false (a, b): auto restarts after every exit"),
    ("supervisord.conf", "[program:a]\ncommand = sleep 1\nautorestart = true\n", None),
    ("process-compose.yaml", "processes:\n  a:\n    command: sleep 1\n",
     "availability.restart no, the default (a): auto restarts after every exit"),
    ("process-compose.yaml", "processes:\n  a:\n    command: sleep 1\n    availability:\n"
     "      restart: on_failure\n      max_restarts: 3\n",
     "a: availability.max_restarts; availability.restart on_failure (a): auto restarts after "
     "every exit"),
    ("process-compose.yaml", "processes:\n  a:\n    command: sleep 1\n    availability:\n"
     "      restart: always\n", None),
])
def test_a_restart_policy_other_than_always_is_named(tmp_path, auto_home, capsys, name, text, said):
    """supervisord restarts by default only after an unexpected exit, process-compose not at
    all; auto after every exit."""
    path = write(tmp_path / name, text)
    _, err = imported(capsys, path, "--dry-run")
    assert warnings(err) == ([f"auto: warning: {path}: not carried over: {said}"] if said else [])


def test_the_format_is_told_by_content_when_the_name_says_nothing(tmp_path, auto_home, capsys):
    for name, text, command in (
        ("procs.txt", "a: sleep 2011\n", "sleep 2011"),
        ("programs", "[program:a]\ncommand = sleep 2012\n", "sleep 2012"),
        ("pm2-apps", '{"apps": [{"name": "a", "script": "sleep", "args": "2013"}]}', "sleep 2013"),
        ("pc", "processes:\n  a:\n    command: sleep 2014\n", "sleep 2014"),
    ):
        path = write(tmp_path / name, text)
        out, _ = imported(capsys, path, "--dry-run")
        assert out.splitlines() == ["+ a (add)"], name
        imported(capsys, path, "--no-start")
        assert entries(auto_home)["a"]["command"] == command, name
        assert auto(capsys, "remove", "a")[0] == 0


@pytest.mark.parametrize("verb, name, text", [
    ("import", "Procfile", "a: sleep 1\n"),
    ("import", "supervisord.conf", "[program:a]\ncommand = sleep 1\n"),
    ("import", "ecosystem.json", '{"apps": [{"name": "a", "script": "sleep", "args": "1"}]}'),
    ("import", "process-compose.yaml", "processes:\n  a:\n    command: sleep 1\n"),
    ("apply", "auto.toml", '[services.a]\ncommand = "sleep 1"\n'),
])
def test_a_file_with_a_byte_order_mark_reads(tmp_path, auto_home, capsys, verb, name, text):
    """Editors on Windows start UTF-8 files with a BOM."""
    path = tmp_path / name
    path.write_text("\ufeff" + text, encoding="utf-8")
    code, out, err = auto(capsys, verb, str(path), "--dry-run")
    assert code == 0, err
    assert out.splitlines() == ["+ a (add)"]


def test_dry_run_and_prune_work_as_in_apply(tmp_path, auto_home, capsys):
    first = write(tmp_path / "Procfile", "a: sleep 2015\nb: sleep 2016\n")
    imported(capsys, first, "--no-start")
    before = state_bytes(auto_home)
    second = write(tmp_path / "Procfile.next", "a: sleep 2017\n")
    out, _ = imported(capsys, second, "--dry-run", "--prune")
    assert out.splitlines() == ["~ a (command changed)", "- b (remove, --prune)"]
    assert state_bytes(auto_home) == before
    imported(capsys, second, "--prune")
    assert set(entries(auto_home)) == {"a"} and entries(auto_home)["a"]["command"] == "sleep 2017"


@pytest.mark.parametrize("name, text, says", [
    ("Procfile", "web sleep 1\n", ":1: not a Procfile line"),
    ("Procfile", "bad.name: sleep 1\n", ":1: not a Procfile line"),
    ("Procfile", "web: no-such-program-here\n", "Procfile: web: command: program 'no-such"),
    ("Procfile", "# nothing\n", "defines no service"),
    ("supervisord.conf", "[program:a]\ndirectory = /tmp\n", ":1: [program:a] command: missing"),
    ("supervisord.conf", "[program:]\ncommand = sleep 1\n", ":1: [program:] no program name"),
    ("supervisord.conf", "[program:a]\ncommand = sleep 1\nenvironment = A=1,B\n",
     ":3: [program:a] environment: use KEY="),
    ("supervisord.conf", "[program:a]\ncommand = sleep 1\ncommand = sleep 2\n",
     ":3: [program:a] command: given twice"),
    ("supervisord.conf", "[program:a]\ncommand = sleep 1\nstopsignal = NOPE\n",
     ":3: a: stop_signal: invalid signal"),
    ("supervisord.conf", "[program:a]\ncommand = sleep 1\n\n[program:b]\ncommand = sleep 1\n"
     "stopwaitsecs = -1\n", ":6: b: stop_timeout: "),
    ("supervisord.conf", "[program:a]\ncommand = sleep 1\ndirectory = %(nope)s\n",
     ":3: [program:a] directory: unknown expansion %(nope)s"),
    ("ecosystem.json", '{"apps": [{"name": "a", "script": "sleep"', "1: not JSON"),
    ("ecosystem.json", '{"apps": [{"name": "a"}]}', "apps[0]: script: missing"),
    ("ecosystem.json", '{"apps": [{"name": "a b", "script": "sleep"}]}', "a b: invalid name"),
    ("ecosystem.config.js", "throw new Error('broken config')\n", "node could not read it: Error: broken config"),
    ("process-compose.yaml", "processes:\n  a:\n    command: [sleep\n", "not YAML"),
    ("process-compose.yaml", "version: 1\n", "processes: missing"),
    ("process-compose.yaml", "processes:\n  a:\n    command: sleep 1\n    environment: {A: 1}\n",
     "a: environment: use a list"),
    ("process-compose.yaml", "processes:\n  a:\n    command: sleep 1\n    working_dir: nope\n",
     "a: workdir: workdir"),
    ("process-compose.yaml", "processes:\n  a:\n    command: sleep 1\n    availability: always\n",
     "a: availability: use a mapping"),
    ("process-compose.yaml", "processes:\n  on:\n    command: sleep 1\n",
     "processes: a name read as True (YAML takes yes, no, on, off for true or false"),
    ("notes.txt", "just some text\n", "cannot tell its format"),
])
def test_a_bad_file_is_one_error_line_naming_it_and_changes_nothing(tmp_path, auto_home, capsys,
                                                                     name, text, says):
    if name.endswith(".js") and shutil.which("node") is None:
        pytest.skip("node is not installed")
    # A state with a service in it, defined only: the refusal happens before anything would
    # be started, so no process or watcher is needed to see that nothing changed.
    imported(capsys, write(tmp_path / "Procfile.ok", "kept: sleep 2018\n"), "--no-start")
    before = state_bytes(auto_home)
    path = write(tmp_path / name, text)
    code, out, err = auto(capsys, "import", str(path))
    message = assert_one_error(code, err, 2)
    assert message.startswith(f"auto: error: {path}"), message
    assert says in message, message
    assert out == "" and state_bytes(auto_home) == before


def test_a_bad_file_leaves_a_running_service_running(tmp_path, auto_home, capsys):
    """One case with a process: the refusal does not touch what runs."""
    imported(capsys, write(tmp_path / "Procfile.ok", "kept: sleep 2022\n"))
    pid = entries(auto_home)["kept"]["pid"]
    before = state_bytes(auto_home)
    path = write(tmp_path / "Procfile", "kept: sleep 2023\nbad line\n")
    code, _, err = auto(capsys, "import", str(path), "--prune")
    assert_one_error(code, err, 2)
    assert state_bytes(auto_home) == before
    kept = entries(auto_home)["kept"]
    assert kept["pid"] == pid and identity.runs(kept)
