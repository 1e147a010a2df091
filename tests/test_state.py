"""The state file: seed compatibility, unknown fields kept, locked concurrent writers."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

from helpers import auto, free_port, pid_alive, read_state, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from auto_core.store import state
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
