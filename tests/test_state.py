"""The state file: seed compatibility, unknown fields kept, locked concurrent writers."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import auto, free_port, pid_alive, read_state, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from auto_core.store import sanitize, state
from auto_core.store.paths import Home


def seed_state(workdir: str, port: int, pid: int) -> dict:
    """A state file as the original tool wrote it (no version, no env, no create_time), which
    must load unchanged (docs/architecture.md, state.json), made runnable here."""
    return {
        "processes": {
            "myapp": {
                "command": "sleep 1000",
                "workdir": workdir,
                "port": port,
                "pid": pid,
                "explicitly_stopped": False,
                "restart_attempt": 0,
                "last_restart_time": None,
                "log_path": "/path/to/auto/output/logs/myapp/2024/01/myapp_240115_143022.log",
            }
        }
    }


def test_seed_era_state_loads_shows_dead_and_starts(auto_home, capsys, tmp_path):
    local = auto_home / "local"
    local.mkdir(parents=True)
    port = free_port()
    # The pid of a live process (ours, even): without create_time it is still not "running".
    seed = seed_state(str(tmp_path), port, os.getpid())
    seed["processes"]["myapp"]["custom_field"] = {"kept": True}
    seed["dashboard"] = "unknown top-level field"
    (local / "state.json").write_text(json.dumps(seed, indent=2))

    code, out, err = auto(capsys, "-q", "ps")
    assert code == 0, err
    assert out.splitlines()[1].split()[:3] == ["myapp", "dead", str(port)]
    code, out, _ = auto(capsys, "ps", "--json")
    assert json.loads(out)[0]["status"] == "dead"

    code, out, err = auto(capsys, "start", "myapp")
    assert code == 0, err
    data = read_state(auto_home)
    entry = data["processes"]["myapp"]
    assert pid_alive(entry["pid"]) and entry["pid"] != os.getpid()
    assert isinstance(entry["create_time"], float)
    assert entry["custom_field"] == {"kept": True}
    assert data["dashboard"] == "unknown top-level field"
    assert data["version"] == 1
    code, out, _ = auto(capsys, "-q", "ps")
    assert out.splitlines()[1].split()[:2] == ["myapp", str(entry["pid"])]
    assert pid_alive(os.getpid())  # the pid in the seed entry was never signalled


def test_unknown_fields_survive_every_mutation(auto_home, capsys):
    assert auto(capsys, "add", "svc", "sleep 1000", "--no-start")[0] == 0
    path = auto_home / "local" / "state.json"
    data = json.loads(path.read_text())
    data["processes"]["svc"]["future_field"] = [1, 2]
    data["extra"] = {"a": 1}
    path.write_text(json.dumps(data))
    for argv in (["start", "svc"], ["update", "svc", "--env", "A=1"], ["restart", "svc"], ["stop", "svc"],
                 ["add", "other", "true", "--no-start"]):
        assert auto(capsys, *argv)[0] == 0, argv
        data = read_state(auto_home)
        assert data["processes"]["svc"]["future_field"] == [1, 2], argv
        assert data["extra"] == {"a": 1}, argv


def test_files_are_private_and_backup_is_refreshed(auto_home, capsys):
    assert auto(capsys, "add", "svc", "sleep 1000", "--no-start")[0] == 0
    local = auto_home / "local"
    for name in ("state.json", "state.json.bak", "state.lock"):
        assert stat.S_IMODE((local / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(local.stat().st_mode) == 0o700
    assert (local / "state.json.bak").read_bytes() == (local / "state.json").read_bytes()
    assert auto(capsys, "add", "two", "sleep 1000", "--no-start")[0] == 0
    assert "two" in json.loads((local / "state.json.bak").read_text())["processes"]
    # The captured environments are private too: one file per service under env/.
    env_dir = local / "env"
    assert stat.S_IMODE(env_dir.stat().st_mode) == 0o700
    assert sorted(p.name for p in env_dir.iterdir()) == ["svc.json", "two.json"]
    for path in env_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    # no temp files left behind
    assert sorted(p.name for p in local.iterdir()) == ["env", "state.json", "state.json.bak", "state.lock"]


def test_a_failed_transaction_changes_nothing(auto_home):
    home = Home(auto_home)
    with state.transaction(home) as data:
        data["processes"]["a"] = {"command": "true"}
    before = (home.state_file).read_bytes()
    try:
        with state.transaction(home) as data:
            data["processes"]["b"] = {"command": "true"}
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert home.state_file.read_bytes() == before


def test_transaction_without_change_does_not_rewrite(auto_home):
    home = Home(auto_home)
    with state.transaction(home) as data:
        data["processes"]["a"] = {"command": "true"}
    ino = home.state_file.stat().st_ino
    with state.transaction(home):
        pass
    assert home.state_file.stat().st_ino == ino


WORKER = textwrap.dedent('''
    import sys
    from auto_core.cmdline import cli
    w = int(sys.argv[1])
    calls = 0
    def run(*argv):
        global calls
        calls += 1
        code = cli.main(["-q", *argv])
        if code != 0:
            raise SystemExit(f"worker {w}: {argv} exited {code}")
    for i in range(10):
        if i == 0:
            run("add", f"w{w}-{i}", "sleep 1000")           # one real start per worker
        else:
            run("add", f"w{w}-{i}", f"sleep {i}", "--no-start")
    for i in range(10):
        run("update", f"w{w}-{i}", "--env", f"WORKER={w}", "--port", str(20000 + w * 100 + i))
    for i in range(5):
        run("remove", f"w{w}-{i * 2 + 1}")
    assert calls == 25
''')


@pytest.mark.slow
def test_concurrent_cli_writers_lose_nothing(auto_home, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, AUTO_HOME=str(auto_home))
    workers = [subprocess.Popen([sys.executable, str(script), str(w)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for w in range(8)]
    for proc in workers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    data = read_state(auto_home)
    expected = {f"w{w}-{i}" for w in range(8) for i in range(0, 10, 2)}
    assert set(data["processes"]) == expected
    for name, entry in data["processes"].items():
        w, i = (int(x) for x in name[1:].split("-"))
        assert entry["env"]["WORKER"] == str(w)
        assert entry["port"] == 20000 + w * 100 + i
        assert entry["command"] == ("sleep 1000" if i == 0 else f"sleep {i}")
    running = [n for n, e in data["processes"].items() if e["pid"]]
    assert sorted(running) == sorted(f"w{w}-0" for w in range(8))
    assert all(pid_alive(data["processes"][n]["pid"]) for n in running)
    assert json.loads((auto_home / "local" / "state.json.bak").read_text()) == data
    ps = run_cli("-q", "ps", home=auto_home)
    assert ps.returncode == 0 and len(ps.stdout.splitlines()) == 1 + len(expected)


def test_state_file_is_sorted_json_with_one_line_per_process(auto_home):
    home = Home(auto_home)
    with state.transaction(home) as data:
        data["processes"]["b"] = {"command": "sleep 1", "env": {"K": "v é"}, "port": None}
        data["processes"]["a"] = {"command": "true", "unknown": [1, {"y": 2, "x": 3}]}
        data["extra"] = {"z": 1, "a": 2}
    text = home.state_file.read_text()
    assert json.loads(text) == {"version": 1, "extra": {"z": 1, "a": 2}, "processes": {
        "a": {"command": "true", "unknown": [1, {"y": 2, "x": 3}]},
        "b": {"command": "sleep 1", "env": {"K": "v é"}, "port": None}}}
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}" and len(lines) == 8
    assert lines[2] == '  "processes": {'
    assert lines[3] == '    "a": {"command": "true", "unknown": [1, {"x": 3, "y": 2}]},'
    assert lines[4].startswith('    "b": {"command": "sleep 1", "env": {"K": "v \\u00e9"}')
    # A hand-formatted file with the same content is read as is and normalised by the next write.
    home.state_file.write_text(json.dumps(json.loads(text), indent=4))
    with state.transaction(home):
        pass
    assert home.state_file.read_text() == text


def test_dump_keeps_equal_values_of_different_types_apart():
    """1, 1.0 and True are equal in Python but not in the file: each dump writes what is there."""
    texts = []
    for value in (1, 1, 1.0, True, 1, {"k": [1, "a"]}, {"k": [1, "a"]}, {"k": [True, "a"]}):
        out = state.dump({"processes": {"p": {"command": "x", "v": value}}}).decode()
        texts.append(json.loads(out)["processes"]["p"]["v"])
        assert type(texts[-1]) is type(value) and texts[-1] == value
    assert texts[3] is True and texts[7] == {"k": [True, "a"]} and texts[7]["k"][0] is True


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


def _typed(value):
    """``value`` with every scalar tagged by its type: 1, 1.0 and True compare unequal."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


@given(runs=st.lists(st.dictionaries(st.text(), st.dictionaries(st.text(), _json_values, max_size=4),
                                     max_size=4), min_size=1, max_size=4),
       extra=st.dictionaries(st.text().filter(lambda k: k != "processes"), _json_values, max_size=2))
@settings(max_examples=200, deadline=None)
def test_dump_round_trips_every_value(runs, extra):
    """Successive dumps always encode what is there, types included."""
    for procs in runs:
        data = dict(extra, processes=procs)
        assert _typed(json.loads(state.dump(data))) == _typed(data)


# --- every loaded value checked (store/sanitize.py) ---------------------------------------

NOW = 1_800_000_000.0
LOGS = "/home/u/.local/state/auto/output/logs"  # a default home: a dot directory on the way
ABSENT = object()


def good_entry() -> dict:
    """An entry as auto writes it for a service that ran, crashed and runs again."""
    return {
        "command": "uvicorn main:app", "workdir": "/srv/app", "port": 8000, "env": {"LOG": "debug"},
        "explicitly_stopped": False, "restart_attempt": 1, "restarts": 3, "last_restart_time": NOW - 5,
        "pid": 4242, "create_time": NOW - 4.5, "started_at": NOW - 5, "run": "a1b2c3d4e5f6",
        "log_path": f"{LOGS}/api/2027/01/api_270115_080000.log", "restart_every": 3600.0,
        "backoff_base": 0.5, "backoff_max": 300.0, "stop_signal": "SIGINT", "stop_timeout": 5.0,
        "log_max_bytes": 1048576, "log_keep_parts": 3, "log_keep_days": 7.0,
        "last_exit": {"code": 1, "signal": None, "at": NOW - 6, "pid": 4200, "ran_s": 12.5},
        "request": {"id": "0a1b2c3d4e5f", "op": "restart", "at": NOW, "by": 77},
        "outcome": {"id": "ffeeddccbbaa", "ok": True, "message": "started api (pid 4242)", "pid": 4242},
        "next_restart_at": None, "last_periodic_restart": NOW - 100, "future_field": {"kept": [1, 2]},
    }


def test_a_good_entry_is_returned_as_is():
    entry = good_entry()
    clean, problems = sanitize.sanitize("api", entry, LOGS, NOW)
    assert clean is entry and problems == []


INF, NAN = float("inf"), float("nan")
BAD = [
    ("next_restart_at", INF, NOW, "not a finite number; using now"),
    ("next_restart_at", NAN, NOW, "not a finite number; using now"),
    ("next_restart_at", "soon", NOW, "not a finite number; using now"),
    ("next_restart_at", NOW + 2e8, NOW, "more than 1e+08 s ahead; using now"),
    ("pid", 2**64, None, "not a process id from 1 to 4194304; taken as not running"),
    ("pid", 0, None, "not a process id from 1 to 4194304; taken as not running"),
    ("pid", -1, None, "not a process id from 1 to 4194304; taken as not running"),
    ("pid", True, None, "not a process id from 1 to 4194304; taken as not running"),
    ("pid", 4242.0, None, "not a process id from 1 to 4194304; taken as not running"),
    ("create_time", INF, None, "not a finite time; taken as not running"),
    ("log_max_bytes", INF, ABSENT, "not a whole number from 1024 to 2**50; using the default"),
    ("log_max_bytes", 10, ABSENT, "not a whole number from 1024 to 2**50; using the default"),
    ("log_max_bytes", "50M", ABSENT, "not a whole number from 1024 to 2**50; using the default"),
    ("log_keep_parts", 2.5, ABSENT, "not a whole number from 0 to 1000; using the default"),
    ("log_keep_days", NAN, ABSENT, "not a number of days from 1 to 36600; using the default"),
    ("log_path", "/etc/passwd", None, f"not a file in {LOGS}/api/; ignored (nothing outside it is read, written or rolled)"),
    ("log_path", f"{LOGS}/web/2027/01/web.log", None, f"not a file in {LOGS}/api/; ignored (nothing outside it is read, written or rolled)"),
    ("log_path", f"{LOGS}/api/../web/w.log", None, f"not a file in {LOGS}/api/; ignored (nothing outside it is read, written or rolled)"),
    ("log_path", f"{LOGS}/api//x.log", None, f"not a file in {LOGS}/api/; ignored (nothing outside it is read, written or rolled)"),
    ("log_path", f"{LOGS}/api/", None, f"not a file in {LOGS}/api/; ignored (nothing outside it is read, written or rolled)"),
    ("log_path", f"{LOGS}/auto/auto.log", None, f"not a file in {LOGS}/api/; ignored (nothing outside it is read, written or rolled)"),
    ("log_path", 7, None, "not a path; ignored"),
    ("stop_timeout", INF, ABSENT, "not a number of seconds from 0 to 1e7; using the default"),
    ("backoff_base", -1, ABSENT, "not a number of seconds from 0 to 1e7; using the default"),
    ("backoff_max", 0, ABSENT, "not a number of seconds above 0 up to 1e7; using the default"),
    ("restart_every", 0.5, ABSENT, "not a number of seconds from 1 to 31622400; off"),
    ("stop_signal", "SIGNOPE", ABSENT, "not a signal name; using the default"),
    ("port", 70000, None, "not a port from 1 to 65535; ignored"),
    ("port", "http", None, "not a port from 1 to 65535; ignored"),
    ("restarts", -1, 0, "not a count; using 0"),
    ("restart_attempt", INF, 0, "not a count; using 0"),
    ("workdir", "relative/dir", ABSENT, "not an absolute path; using the home directory"),
    ("explicitly_stopped", "yes", True, "not true or false; using true"),
    ("explicitly_stopped", 0, False, "not true or false; using false"),
    ("env", ["A=1"], ABSENT, "not an object of variables; ignored"),
    ("env", {"A": 1, "B": "x", "C=D": "y"}, {"B": "x"}, "'A', 'C=D': not a NAME=text variable; left out"),
    ("last_exit", "boom", ABSENT, "not an object; ignored"),
    ("last_exit", {"code": INF, "at": 1.0, "signal": 2**70}, {"at": 1.0},
     "code: not an exit code; signal: not a signal number; ignored"),
    ("request", {"id": "x", "op": "explode"}, ABSENT, "not a request auto wrote; ignored"),
    ("outcome", [1], ABSENT, "not an outcome auto wrote; ignored"),
    ("starting_by", [1], ABSENT, "not [pid, start time]; ignored"),
    ("run", 5, ABSENT, "not a run id; ignored"),
    ("daemon_follow", "no", ABSENT, "not true or false; following daemons"),
    ("daemon_of", -3, ABSENT, "not a process id; ignored"),
    ("started_with", {"env": "x", "port": "80"}, ABSENT, "not what auto records at a start; ignored"),
    ("started_with", ["command"], ABSENT, "not what auto records at a start; ignored"),
    ("env_captured", 7, ABSENT, "not a fingerprint; ignored"),
    ("last_exit", {"at": 1.0, "restart": "because"}, {"at": 1.0}, "restart: not a restart auto made; ignored"),
]


@pytest.mark.parametrize(("field", "bad", "neutral", "why"), BAD,
                         ids=[f"{b[0]}={b[1]!r}"[:40] for b in BAD])
def test_each_bad_value_is_neutralised_alone(field, bad, neutral, why):
    entry = good_entry()
    entry[field] = bad
    original = dict(entry)
    clean, problems = sanitize.sanitize("api", entry, LOGS, NOW)
    assert problems == [f"{field}: {why}"]
    if neutral is ABSENT:
        assert field not in clean
    else:
        assert clean[field] == neutral and type(clean[field]) is type(neutral)
    assert {k: v for k, v in clean.items() if k != field} == {k: v for k, v in original.items() if k != field}
    assert entry == original  # the loaded entry is not changed in place
    assert sanitize.sanitize("api", clean, LOGS, NOW) == (clean, [])


def test_a_null_is_never_a_problem():
    entry = {key: None for key in good_entry()}
    entry["command"] = "true"
    assert sanitize.sanitize("api", entry, LOGS, NOW) == (entry, [])


_any_value = st.one_of(
    _json_values, st.sampled_from([INF, -INF, NAN, 2**64, -(2**64), 10**30, 1e300, "", "\x00", True]),
    st.dictionaries(st.sampled_from(["code", "signal", "pid", "at", "ran_s", "killed_after", "error",
                                     "stopped", "id", "op", "ok", "message"]), _json_values, max_size=5),
)


@given(fields=st.dictionaries(st.sampled_from(sorted(good_entry())), _any_value, max_size=8))
@settings(max_examples=300, deadline=None)
def test_whatever_an_entry_holds_every_reader_copes_with_the_clean_one(fields):
    """Any JSON in any known field: the clean entry is stable, and what ps, show and the
    watcher's readers make of it never raises and is strict JSON."""
    from auto_core import model, views
    from auto_core.cmdline.cli import ps_rows
    from auto_core.logtree import logmaint

    entry = dict(good_entry(), **fields)
    clean, _ = sanitize.sanitize("api", entry, LOGS, NOW)
    assert sanitize.sanitize("api", clean, LOGS, NOW) == (clean, [])
    view = views.view("api", clean, NOW)
    json.loads(views.json_text(view.to_json()), parse_constant=lambda c: pytest.fail(c))
    ps_rows([view])
    views.describe_exit(view.last_exit)
    logmaint.settings(clean)
    model.request(clean)
    for key in ("restart_attempt", "restarts"):
        assert model.count(clean, key) < 2**63


def test_sanitize_knows_the_request_ops():
    from auto_core import model

    assert sanitize.OPS == model.OPS


def _write_state(home: Home, procs: dict, raw: str | None = None) -> None:
    home.local.mkdir(parents=True, exist_ok=True)
    home.state_file.write_text(raw if raw is not None else json.dumps({"version": 1, "processes": procs}))
    os.chmod(home.state_file, 0o600)


def test_a_load_reports_each_bad_value_and_the_first_write_stores_the_fix(auto_home):
    home = Home(auto_home)
    _write_state(home, {}, raw='{"version": 1, "processes": {'
                 '"api": {"command": "true", "next_restart_at": 1e999, "pid": 18446744073709551616},'
                 '"web": {"command": "true", "port": 8080, "log_max_bytes": 1e999}}}')
    loaded = state.load(home)
    assert loaded.warnings == (
        "state.json: api: next_restart_at: not a finite number; using now",
        "state.json: api: pid: not a process id from 1 to 4194304; taken as not running",
        "state.json: web: log_max_bytes: not a whole number from 1024 to 2**50; using the default",
    )
    assert loaded.data["processes"]["web"] == {"command": "true", "port": 8080}
    assert "1e999" in home.state_file.read_text()  # a load writes nothing

    said: list[str] = []
    file = state.StateFile(home, said.append)
    file.read()
    with file.transaction() as data:  # the same problems, found again: not said again
        data["processes"]["web"]["port"] = 8081
    assert said == list(loaded.warnings)
    after = read_state(auto_home)["processes"]
    assert after["api"]["pid"] is None and after["api"]["next_restart_at"] <= time.time()
    assert after["web"] == {"command": "true", "port": 8081}
    assert state.load(home).warnings == ()


def test_an_entry_whose_name_cannot_be_a_process_is_set_aside_and_kept(auto_home):
    home = Home(auto_home)
    evil = {"command": "touch /tmp/should-not-run", "log_path": "/etc/passwd"}
    _write_state(home, {"../../evil": evil, "ok": {"command": "true"}})
    loaded = state.load(home)
    assert list(loaded.data["processes"]) == ["ok"]
    assert loaded.warnings == ("state.json: '../../evil': not a valid process name (1-64 of A-Z a-z 0-9 . _ - "
                               "starting with a letter or digit); ignored (kept in the file)",)
    with state.transaction(home) as data:
        assert "../../evil" not in data["processes"]
        data["processes"]["new"] = {"command": "true"}
    assert read_state(auto_home)["processes"] == {"../../evil": evil, "ok": {"command": "true"},
                                                   "new": {"command": "true"}}


@pytest.mark.parametrize("raw", ['{"processes": {"a": {"command": "x", "pid": ' + "1" * 5000 + "}}}",
                                 "[" * 100000 + "]" * 100000],
                         ids=["5000-digit-int", "nested-100000-deep"])
def test_json_that_python_cannot_hold_is_unreadable_not_a_crash(auto_home, capsys, raw):
    home = Home(auto_home)
    _write_state(home, {}, raw=raw)
    with pytest.raises(state.StateError, match="not valid JSON"):
        state.load(home)
    code, _, err = auto(capsys, "ps")
    assert code == 1 and err.startswith("auto: error: ") and len(err.splitlines()) == 1


def test_json_ready_turns_non_finite_numbers_into_null():
    from auto_core import views

    value = {"a": [1.5, INF, {"b": NAN, "c": -INF}], "d": (2, "x"), "e": True}
    assert views.json_ready(value) == {"a": [1.5, None, {"b": None, "c": None}], "d": [2, "x"], "e": True}
    assert json.loads(views.json_text(value)) == views.json_ready(value)
