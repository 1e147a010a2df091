"""Start order (``--after``): names and cycles refused, ``remove`` warns, and real services
started by ``start-all`` only once the ones they come after are up (healthy, or running
without a check), independent ones at once; a single ``start`` is not held."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import assert_one_error, auto, free_port, read_state, run_cli, state_bytes, wait_until

from auto_core import order


def test_order_check_names_unknown_services_and_cycles():
    assert order.check({"db": (), "app": ("db",), "worker": ("db", "app")}) is None
    assert order.check({"app": ("db",)}) == "app: after db: no such process"
    assert order.check({"a": ("b",), "b": ("c",), "c": ("a",)}) == "start order has a cycle: a -> b -> c -> a"
    assert order.check({"a": ("a",)}) == "start order has a cycle: a -> a"
    # A name removed since is skipped unless the list being changed is the one naming it.
    assert order.check({"app": ("gone",), "web": ()}, ["web"]) is None
    assert order.dependents({"db": (), "app": ("db",), "w": ("db",)}, "db") == ["app", "w"]


def _add(capsys, tmp_path, name: str, *flags: str) -> tuple[int, str, str]:
    return auto(capsys, "add", name, "sleep 1000", "--workdir", str(tmp_path), "--no-start", *flags)


def test_unknown_names_and_cycles_are_refused_and_change_nothing(capsys, auto_home, tmp_path):
    assert _add(capsys, tmp_path, "db")[0] == 0
    assert _add(capsys, tmp_path, "app", "--after", "db")[0] == 0
    before = state_bytes(auto_home)
    code, _, err = _add(capsys, tmp_path, "worker", "--after", "db,queue")
    assert "worker: after queue: no such process" in assert_one_error(code, err, 2)
    code, _, err = auto(capsys, "update", "db", "--after", "app")
    assert "cycle: app -> db -> app" in assert_one_error(code, err, 2)
    code, _, err = auto(capsys, "update", "app", "--after", "app")
    assert "cycle: app -> app" in assert_one_error(code, err, 2)
    code, _, err = _add(capsys, tmp_path, "x", "--after", "bad/name")
    assert_one_error(code, err, 2)
    assert state_bytes(auto_home) == before
    assert not (auto_home / "local" / "env" / "worker.json").exists()
    # The same rules for a file: a cycle between two of its services refuses the whole file.
    setup = tmp_path / "auto.toml"
    setup.write_text('[services.a]\ncommand = "sleep 1000"\nafter = ["b"]\n'
                     '[services.b]\ncommand = "sleep 1000"\nafter = ["a"]\n')
    code, _, err = auto(capsys, "apply", str(setup), "--no-start")
    assert "cycle: a -> b -> a" in assert_one_error(code, err, 2)
    assert state_bytes(auto_home) == before
    # `after = []` and `--after none` clear it.
    code, _, err = auto(capsys, "update", "app", "--after", "none")
    assert code == 0, err
    assert read_state(auto_home)["processes"]["app"]["after"] == []


def test_remove_warns_of_the_services_that_come_after(capsys, auto_home, tmp_path):
    for name, flags in (("db", ()), ("app", ("--after", "db")), ("worker", ("--after", "db,app"))):
        assert _add(capsys, tmp_path, name, *flags)[0] == 0
    code, out, err = auto(capsys, "remove", "db")
    assert code == 0, err
    assert "auto: warning: app, worker come after db; they start without it now" in err
    assert "db" not in read_state(auto_home)["processes"]
    code, _, err = auto(capsys, "update", "worker", "--port", "9")  # a stale name blocks nothing
    assert code == 0, err


def test_a_single_start_is_not_held_and_says_what_is_not_up(capsys, auto_home, tmp_path, watcher):
    watcher()
    assert _add(capsys, tmp_path, "db")[0] == 0
    assert _add(capsys, tmp_path, "app", "--after", "db")[0] == 0
    code, out, err = auto(capsys, "start", "app", "--wait", "0")
    assert code == 0, err
    assert "started app (pid" in out and "not up yet: db" in out
    procs = read_state(auto_home)["processes"]
    assert procs["db"]["pid"] is None and procs["db"]["explicitly_stopped"] is True


@pytest.mark.slow
@pytest.mark.parametrize("how", [("start", "--all"), ("start", "all"), ("start", "db", "app")])
def test_several_started_at_once_start_in_order(auto_home, tmp_path, watcher, how):
    """``start --all``, pm2's ``start all`` and a start of several names hold a start as
    start-all does: app waits until db's check passes."""
    w = watcher()
    ready = tmp_path / "ready"
    assert run_cli("add", "db", "sleep 1000", "--workdir", str(tmp_path), "--no-start", "--health",
                   f"cmd:test -e {ready}", "--health-interval", "0.2", "--health-retries", "1000").returncode == 0
    assert run_cli("add", "app", "sleep 1000", "--workdir", str(tmp_path), "--no-start",
                   "--after", "db").returncode == 0
    with subprocess.Popen([sys.executable, "-m", "auto_core", *how, "--wait", "0"], text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as started:
        try:
            w.wait_line(r"^hold app: waiting for db to be up")
            wait_until(lambda: read_state(auto_home)["processes"]["db"]["pid"], message="db's start recorded")
            assert read_state(auto_home)["processes"]["app"]["pid"] is None
            ready.touch()
            out, err = started.communicate(timeout=30)
        finally:
            if started.poll() is None:
                started.kill()
    assert started.returncode == 0, err
    procs = read_state(auto_home)["processes"]
    assert procs["app"]["started_at"] >= procs["db"]["last_health"]["time"]
    assert "2 started" in out


@pytest.mark.slow
def test_start_all_starts_each_service_after_the_ones_it_comes_after(capsys, auto_home, tmp_path, watcher):
    w = watcher()
    port = free_port()
    # db listens 1.5 s after its start; its check sees it within 0.2 s (the failures before
    # fall in its start period).
    db = f"sh -c 'sleep 1.5; exec python3 -m http.server {port} --bind 127.0.0.1'"
    assert auto(capsys, "add", "db", db, "--workdir", str(tmp_path), "--no-start", "--port", str(port),
                "--health", f"tcp://127.0.0.1:{port}", "--health-interval", "0.2",
                "--health-start-period", "10")[0] == 0
    assert _add(capsys, tmp_path, "app", "--after", "db")[0] == 0
    assert _add(capsys, tmp_path, "worker", "--after", "app,db")[0] == 0
    assert _add(capsys, tmp_path, "solo")[0] == 0
    code, out, err = auto(capsys, "start-all", "--wait", "0")
    assert code == 0, err
    assert "4 started" in out
    procs = read_state(auto_home)["processes"]
    healthy_at = procs["db"]["last_health"]["time"]
    assert procs["db"]["health_state"] == "healthy"
    assert procs["app"]["started_at"] >= healthy_at
    assert procs["worker"]["started_at"] >= procs["app"]["started_at"]
    assert procs["app"]["started_at"] - procs["db"]["started_at"] >= 1.4
    assert procs["solo"]["started_at"] - procs["db"]["started_at"] < 1.0  # not held
    w.wait_line(r"^hold app: waiting for db to be up")
    assert not w.lines(r"^hold solo")


@pytest.mark.slow
def test_the_watcher_at_login_starts_in_order(capsys, auto_home, tmp_path, watcher):
    """Services that ended while no watcher ran start again in order when a watcher starts."""
    assert _add(capsys, tmp_path, "db", "--health", "cmd:test -e ready", "--health-interval", "0.2",
                "--health-start-period", "60", "--backoff-base", "0.1")[0] == 0
    assert _add(capsys, tmp_path, "app", "--after", "db", "--backoff-base", "0.1")[0] == 0
    from auto_core.store import state
    from auto_core.store.paths import Home

    with state.transaction(Home(auto_home)) as data:  # as a shutdown leaves them: wanted, dead
        for entry in state.processes(data).values():
            entry.update(explicitly_stopped=False, pid=12345678 % 4194304, create_time=1.0)
    w = watcher()
    w.wait_line(r"^hold app: waiting for db to be up", 15)
    w.wait_line(r"^start db pid", 15)
    assert not w.lines(r"^start app pid")
    (tmp_path / "ready").write_text("")
    w.wait_line(r"^health db: healthy", 15)
    w.wait_line(r"^start app pid", 15)
    procs = read_state(auto_home)["processes"]
    wait_until(lambda: read_state(auto_home)["processes"]["app"].get("started_at", 0)
               >= procs["db"]["last_health"]["time"], message="app's start recorded")


def test_apply_starts_in_order(capsys, auto_home, tmp_path, watcher):
    w = watcher()
    setup = tmp_path / "auto.toml"
    setup.write_text('[services.app]\ncommand = "sleep 1000"\nafter = ["db"]\n'
                     '[services.db]\ncommand = "sleep 1000"\nhealth = "cmd:true"\nhealth_interval = 0.3\n')
    code, out, err = auto(capsys, "apply", str(setup), "--wait", "0")
    assert code == 0, err
    assert "+ app (added; started, pid" in out
    procs = read_state(auto_home)["processes"]
    assert procs["db"]["health_state"] == "healthy"
    assert procs["app"]["started_at"] >= procs["db"]["last_health"]["time"]
    w.wait_line(r"^hold app: waiting for db to be up")
    code, out, err = auto(capsys, "export")
    assert 'after = [\n    "db",\n]' in out or 'after = ["db"]' in out
    assert 'health = "cmd:true"' in out and "health_interval = 0.3" in out


@pytest.mark.slow
def test_a_held_start_shows_what_it_waits_for(capsys, auto_home, tmp_path, watcher, monkeypatch):
    import json

    from auto_core import lifecycle

    w = watcher()
    assert _add(capsys, tmp_path, "db", "--health", "cmd:false", "--health-interval", "0.2",
                "--health-retries", "1000")[0] == 0
    assert _add(capsys, tmp_path, "app", "--after", "db")[0] == 0
    monkeypatch.setattr(lifecycle, "ORDER_WAIT", 0.0)  # the face gives up soon (5 s, not 65)
    code, out, err = auto(capsys, "start-all", "--wait", "0")
    assert code == 1
    assert "did not start app in time: it waits for db (starting: exit 1 after " in out + err, out + err
    w.wait_line(r"^hold app: waiting for db to be up")
    code, out, _ = auto(capsys, "-q", "ps")
    row = next(line.split("  ") for line in out.splitlines() if line.startswith("app "))
    assert "waiting (db)" in [cell.strip() for cell in row if cell.strip()], out
    code, out, _ = auto(capsys, "ps", "--json")
    app = next(v for v in json.loads(out) if v["name"] == "app")
    assert (app["after"], app["waiting_for"]) == (["db"], ["db"])
    code, out, _ = auto(capsys, "show", "app")
    assert "; waiting for db (starting: exit 1 after " in out, out
    # Once db is up, nothing waits any more.
    code, _, err = auto(capsys, "update", "db", "--health", "cmd:true")
    assert code == 0, err
    w.wait_line(r"^start app pid", 15)

    def app_view() -> dict:
        return next(v for v in json.loads(auto(capsys, "ps", "--json")[1]) if v["name"] == "app")

    wait_until(lambda: app_view()["status"] == "running", 10, message="app's start recorded")
    assert app_view()["waiting_for"] == []


def test_faces_see_a_start_held_as_the_watcher_holds_it():
    from auto_core import views

    now = 1000.0
    db = {"command": "x", "health": "cmd:true", "run": "r1", "health_run": "r1", "health_state": "starting"}

    def held(**app) -> list[str]:
        procs = {"db": db, "app": dict({"command": "x", "after": ["db"]}, **app)}
        return views.held_for("app", procs, lambda n: n == "db", now)

    assert held() == ["db"]  # dead, wanted: the watcher's own start waits
    assert held(next_restart_at=now + 5) == []  # its backoff first: a countdown, not a hold
    assert held(next_restart_at=now - 1) == ["db"]
    assert held(explicitly_stopped=True) == []
    start = {"id": "a", "op": "start", "at": now}
    assert held(explicitly_stopped=True, request=dict(start, ordered=True)) == ["db"]
    assert held(explicitly_stopped=True, request=start) == []  # a single start is not held
    db["health_state"] = "healthy"
    assert held() == []
