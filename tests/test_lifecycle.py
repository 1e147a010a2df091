"""Stop semantics: intent first, whole group, TERM then KILL, idempotent."""

from __future__ import annotations

import json
import os
import re
import signal
import time

from helpers import auto, group_members, pid_alive, ppid, read_state, wait_until

TERM_RECORDER = r'''
import json, os, signal, sys, time
out = sys.argv[1]

def on_term(signum, frame):
    path = os.path.join(os.environ["AUTO_HOME"], "local", "state.json")
    with open(path) as fh:
        entry = json.load(fh)["processes"]["svc"]
    with open(out + ".tmp", "w") as fh:
        json.dump({"explicitly_stopped": entry.get("explicitly_stopped")}, fh)
    os.replace(out + ".tmp", out)
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
open(out + ".ready", "w").close()
while True:
    time.sleep(1)
'''


def test_stop_records_explicitly_stopped_before_signalling(auto_home, capsys, tmp_path):
    script = tmp_path / "recorder.py"
    script.write_text(TERM_RECORDER)
    seen = tmp_path / "seen.json"
    assert auto(capsys, "add", "svc", f"exec python3 {script} {seen}")[0] == 0
    wait_until(lambda: os.path.exists(f"{seen}.ready"), message="the TERM handler to be installed")
    code, out, err = auto(capsys, "stop", "svc")
    assert code == 0, err
    assert json.loads(seen.read_text()) == {"explicitly_stopped": True}
    assert read_state(auto_home)["processes"]["svc"]["explicitly_stopped"] is True


def test_stop_kills_the_whole_process_tree(auto_home, capsys):
    cmd = """sh -c 'python3 -c "import time; time.sleep(1000)" & sleep 1000'"""
    assert auto(capsys, "add", "tree", cmd)[0] == 0
    pid = read_state(auto_home)["processes"]["tree"]["pid"]
    want = [b"-c", b"import time; time.sleep(1000)"]  # argv[0] may be a pyenv shim's full path

    def tree():
        m = group_members(pid)
        has_python = any(argv[1:] == want for argv in m.values())
        return m if has_python and [b"sleep", b"1000"] in m.values() else None

    members = wait_until(tree, message="the python grandchild and the sleep")
    assert len(members) >= 3
    code, out, err = auto(capsys, "stop", "tree")
    assert code == 0, err
    assert not group_members(pid)
    assert not [p for p in members if pid_alive(p)], "a member of the tree survived stop"


def test_stop_kills_a_term_ignoring_service_after_the_timeout(auto_home, capsys):
    assert auto(capsys, "add", "stubborn", "trap '' TERM; sleep 1000", "--stop-timeout", "1")[0] == 0
    pid = read_state(auto_home)["processes"]["stubborn"]["pid"]
    wait_until(lambda: [b"sleep", b"1000"] in group_members(pid).values(), message="the sleep to start")
    members = list(group_members(pid))
    started = time.monotonic()
    code, out, err = auto(capsys, "stop", "stubborn")
    took = time.monotonic() - started
    assert code == 0, err
    assert took >= 0.9, "SIGKILL came before the stop timeout"
    assert took < 8
    assert not [p for p in members if pid_alive(p)]
    assert read_state(auto_home)["processes"]["stubborn"]["stop_timeout"] == 1.0


def test_default_stop_policy_is_term_then_kill_after_10s(auto_home, capsys):
    assert auto(capsys, "add", "svc", "sleep 1000", "--no-start")[0] == 0
    code, out, _ = auto(capsys, "show", "svc", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["stop_timeout"] == 10.0
    assert shown["stop_signal"] == "SIGTERM"
    code, out, _ = auto(capsys, "show", "svc")
    assert "SIGTERM, then SIGKILL after 10 s" in out


def test_stop_signal_override_is_sent_first(auto_home, capsys, tmp_path):
    flag = tmp_path / "got-int"
    cmd = f"trap 'touch {flag}; exit 0' INT; trap '' TERM; while :; do sleep 0.1; done"
    assert auto(capsys, "add", "svc", cmd, "--stop-signal", "INT", "--stop-timeout", "5")[0] == 0
    pid = read_state(auto_home)["processes"]["svc"]["pid"]
    wait_until(lambda: group_members(pid), message="service up")
    started = time.monotonic()
    assert auto(capsys, "stop", "svc")[0] == 0
    assert flag.exists()
    assert time.monotonic() - started < 4, "the service stopped on SIGINT, not after the timeout"


def test_stopping_a_dead_process_still_records_the_stop(auto_home, capsys):
    # --wait 0: it exits at once on purpose; the long backoff keeps it dead until the stop.
    assert auto(capsys, "add", "brief", "exit 0", "--wait", "0", "--backoff-base", "600")[0] == 0
    pid = read_state(auto_home)["processes"]["brief"]["pid"]
    wait_until(lambda: (read_state(auto_home)["processes"]["brief"].get("last_exit") or {}).get("pid") == pid,
               message="the watcher to record the exit")
    assert read_state(auto_home)["processes"]["brief"]["next_restart_at"] is not None
    code, out, _ = auto(capsys, "-q", "ps")
    assert out.splitlines()[1].split()[1] == "dead"
    code, out, err = auto(capsys, "stop", "brief")
    assert code == 0, err
    assert out.strip() == "brief is already stopped"
    entry = read_state(auto_home)["processes"]["brief"]
    assert entry["explicitly_stopped"] is True
    assert "next_restart_at" not in entry  # the pending restart is cancelled
    code, out, _ = auto(capsys, "-q", "ps")
    assert out.splitlines()[1].split()[1] == "stopped"
    # and again: idempotent
    assert auto(capsys, "stop", "brief")[0] == 0


def test_stop_marks_stopped_and_appends_marker_to_log(auto_home, capsys):
    assert auto(capsys, "add", "svc", "sleep 1000")[0] == 0
    entry = read_state(auto_home)["processes"]["svc"]
    code, out, err = auto(capsys, "stop", "svc")
    assert code == 0, err
    assert re.fullmatch(r"stopped svc \(SIGTERM, \d+\.\d s\)", out.strip()), out
    assert not pid_alive(entry["pid"])
    with open(entry["log_path"]) as fh:
        lines = fh.read().splitlines()
    # The marker is written before the signal, the end line once the group is gone.
    assert lines[-2] == "[auto] stopped by user"
    assert re.fullmatch(r"\[auto\] killed by SIGTERM after \d+(\.\d)? s", lines[-1]), lines[-1]
    last = read_state(auto_home)["processes"]["svc"]["last_exit"]
    assert last["stopped"] is True and last["pid"] == entry["pid"] and last["signal"] == signal.SIGTERM


def test_start_all_and_stop_all(auto_home, capsys):
    for name in ("a", "b", "c"):
        assert auto(capsys, "add", name, "sleep 1000", "--no-start")[0] == 0
    assert auto(capsys, "start", "a")[0] == 0
    a_pid = read_state(auto_home)["processes"]["a"]["pid"]
    code, out, err = auto(capsys, "start-all")
    assert code == 0, err
    procs = read_state(auto_home)["processes"]
    assert procs["a"]["pid"] == a_pid, "start-all must not restart a running process"
    pids = [procs[n]["pid"] for n in "abc"]
    assert all(pid_alive(p) for p in pids)
    code, out, err = auto(capsys, "stop-all")
    assert code == 0, err
    assert not any(pid_alive(p) for p in pids)
    assert all(e["explicitly_stopped"] for e in read_state(auto_home)["processes"].values())


def test_process_view_is_an_immutable_value(auto_home, capsys):
    from auto_core.lifecycle import Api, Outcome
    from auto_core.record import FrozenInstanceError
    from auto_core.store.paths import Home

    assert auto(capsys, "add", "svc", "sleep 1000", "--no-start")[0] == 0
    api = Api(Home(auto_home))
    a, b = api.view("svc", now=1.0), api.view("svc", now=1.0)
    assert a == b and a is not b  # (not hashable: it holds dicts, like a frozen dataclass)
    assert a.env is not b.env, "a per-instance default must not be shared"
    try:
        a.status = "running"
        raise AssertionError("ProcessView must be frozen")
    except FrozenInstanceError:
        pass
    as_json = a.to_json()
    assert as_json["name"] == "svc" and as_json["status"] == "stopped" and as_json["stop_timeout"] == 10.0
    assert json.loads(json.dumps(as_json)) == as_json
    assert Outcome("x", True, "m") == Outcome(name="x", ok=True, message="m", pid=None, detail=())
    assert repr(Outcome("x", True, "m")) == "Outcome(name='x', ok=True, message='m', pid=None, detail=())"
    o = Outcome("x", False, "m", 5, ("a line",))
    assert o.detail == ("a line",) and Outcome("y", True, "m").detail == ()
    assert Home(auto_home) == Home.resolve(str(auto_home)) and len({Home(auto_home), Home(auto_home)}) == 1


def test_the_watcher_records_the_exit_code_of_a_service_the_api_started(api, home, tmp_path):
    go = tmp_path / "go"
    command = f"while [ ! -e {go} ]; do sleep 0.05; done; exit 3"
    started = api.add("quick", command, workdir=str(tmp_path), wait=0, backoff_base=600)
    assert started.ok, started.message
    pid = started.pid
    assert pid == read_state(home.root)["processes"]["quick"]["pid"]
    watcher = api.watcher()
    assert watcher is not None and watcher != os.getpid()
    assert ppid(pid) == watcher, "the watcher, not the face, is the service's parent"
    go.touch()
    wait_until(lambda: (read_state(home.root)["processes"]["quick"].get("last_exit") or {}).get("pid") == pid,
               message="the watcher to record the exit")
    last = read_state(home.root)["processes"]["quick"]["last_exit"]
    assert (last["code"], last["signal"], "unknown" in last, "stopped" in last) == (3, None, False, False)
    with open(read_state(home.root)["processes"]["quick"]["log_path"]) as fh:
        assert re.fullmatch(r"\[auto\] exited with code 3 after \d+(\.\d)? s; restarting in \d+(\.\d)? s",
                            fh.read().splitlines()[-1])


def test_a_running_service_tells_what_a_restart_would_change(api, tmp_path, capsys):
    """The watcher records what a run started with; the view names what the definition
    changed since (a face shows it), until a restart applies it."""
    from helpers import free_port

    first, second = free_port(), free_port()
    api.add("svc", "sleep 300", workdir=str(tmp_path), port=first)
    assert read_state(api.home.root)["processes"]["svc"]["started_with"]["port"] == first
    assert api.view("svc").changed == []
    api.update("svc", port=second, env={"MODE": "fast"})
    assert api.view("svc").changed == [f"port {second}", "env"]
    code, out, err = auto(capsys, "show", "svc")
    assert code == 0, err
    assert re.search(rf"^changed: +port {second}, env since it started; 'auto restart svc' applies it$", out, re.M)
    api.update("svc", port="off", unset_env=["MODE"])
    assert api.view("svc").changed == ["no port"]
    api.update("svc", command="sleep 301")
    assert api.view("svc").changed == ["command", "no port"]
    api.restart(["svc"])
    assert api.view("svc").status == "running" and api.view("svc").changed == []
    api.stop(["svc"])
    api.update("svc", command="sleep 302")
    assert api.view("svc").changed == []  # not running: the next start takes it anyway


def test_a_new_capture_of_the_environment_is_named_and_no_old_secret_is_kept(api, tmp_path, monkeypatch):
    api.add("svc", "sleep 300", workdir=str(tmp_path), env={"TOKEN": "s3cret-one"})
    monkeypatch.setenv("AUTO_TEST_CAPTURE", "again")
    api.update("svc", update_env=True)
    assert api.view("svc").changed == ["captured environment"]
    api.update("svc", env={"TOKEN": "s3cret-two"})
    assert api.view("svc").changed == ["env", "captured environment"]
    # What the run started with is kept as fingerprints: the old token is nowhere in the state.
    assert b"s3cret-one" not in (api.home.local / "state.json").read_bytes()
    api.restart(["svc"])
    assert api.view("svc").changed == []
