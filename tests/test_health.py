"""Health checks (``--health``): the check's text, bad values refused, and the watcher running
real checks against real servers on 127.0.0.1 and real processes."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest
from helpers import (
    assert_one_error,
    auto,
    free_port,
    pid_alive,
    read_state,
    state_bytes,
    wait_until,
)

from auto_core import healthcheck
from auto_core.errors import UsageError
from auto_core.store import sanitize


def test_check_texts_parse():
    web = healthcheck.parse("http://127.0.0.1:8000/health?deep=1")
    assert (web.kind, web.host, web.port, web.path, web.tls) == ("http", "127.0.0.1", 8000, "/health?deep=1", False)
    assert healthcheck.parse("https://localhost/").port == 443
    assert healthcheck.parse("tcp://127.0.0.1:5432") == healthcheck.Check("tcp", host="127.0.0.1", port=5432)
    assert healthcheck.parse("port").kind == "port"
    assert healthcheck.parse("cmd: pg_isready -q").command == "pg_isready -q"
    assert healthcheck.parse("none") is None and healthcheck.text("none") is None
    for bad in ("ftp://x", "tcp://host", "tcp://h:99999", "http://:80/", "cmd:", "curl x", 3):
        with pytest.raises(UsageError):
            healthcheck.parse(bad)


def test_hand_edited_health_values_are_neutralised():
    entry = {"command": "x", "health": "ftp://x", "health_interval": 0, "health_retries": -1,
             "health_state": "great", "after": ["ok", "../x"], "last_health": {"ok": 1}}
    clean, problems = sanitize.sanitize("web", entry, "/logs", 0.0)
    assert clean == {"command": "x"}
    assert len(problems) == 6
    good = {"command": "x", "health": "port", "health_interval": 0.5, "health_retries": 2,
            "health_state": "healthy", "after": ["db"], "last_health": {"time": 1.0, "ok": True, "detail": "HTTP 200"}}
    assert sanitize.sanitize("web", good, "/logs", 0.0) == (good, [])


@pytest.mark.parametrize("flags", [("--health", "ftp://x"), ("--health-interval", "0"),
                                   ("--health-retries", "-1"), ("--health-timeout", "x"),
                                   ("--health-start-period", "-2"), ("--health", "tcp://h")])
def test_bad_health_values_are_refused_and_change_nothing(capsys, auto_home, tmp_path, flags):
    code, _, err = auto(capsys, "add", "base", "sleep 1000", "--no-start", "--workdir", str(tmp_path))
    assert code == 0, err
    before = state_bytes(auto_home)
    code, _, err = auto(capsys, "add", "web", "sleep 1000", "--workdir", str(tmp_path), *flags)
    assert "invalid health" in assert_one_error(code, err, 2)
    code, _, err = auto(capsys, "update", "base", *flags)
    assert "invalid health" in assert_one_error(code, err, 2)
    assert state_bytes(auto_home) == before


def test_the_port_check_needs_a_port(capsys, auto_home, tmp_path):
    code, _, err = auto(capsys, "add", "web", "sleep 1000", "--workdir", str(tmp_path), "--health", "port")
    assert "web: the health check 'port' needs the service's --port" in assert_one_error(code, err, 2)
    code, _, err = auto(capsys, "add", "web", "sleep 1000", "--workdir", str(tmp_path), "--no-start",
                        "--health", "port", "--port", "8080")
    assert code == 0, err
    before = state_bytes(auto_home)
    code, _, err = auto(capsys, "update", "web", "--port", "off")
    assert "needs the service's --port" in assert_one_error(code, err, 2)
    assert state_bytes(auto_home) == before


def holds(predicate, seconds: float, step: float = 0.05) -> None:
    """Assert ``predicate`` stays true for ``seconds`` (a bounded check that nothing happens)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), "condition stopped holding"
        time.sleep(step)


def _entry(home, name: str) -> dict:
    return read_state(home)["processes"][name]


@pytest.mark.slow
def test_http_check_turns_healthy_and_is_shown(capsys, auto_home, tmp_path, watcher):
    w = watcher()
    port = free_port()
    code, out, err = auto(capsys, "add", "web", f"python3 -m http.server {port} --bind 127.0.0.1",
                          "--port", str(port), "--workdir", str(tmp_path),
                          "--health", f"http://127.0.0.1:{port}/", "--health-interval", "0.5")
    assert code == 0, err
    wait_until(lambda: _entry(auto_home, "web").get("health_state") == "healthy", 20,
               message="web to turn healthy")
    entry = _entry(auto_home, "web")
    assert entry["health_run"] == entry["run"]
    assert entry["last_health"]["ok"] is True and entry["last_health"]["detail"].startswith("HTTP 200")
    code, out, _ = auto(capsys, "-q", "ps")
    header, row = out.splitlines()[:2]
    assert header.split()[:6] == ["NAME", "PID", "PORT", "CPU", "MEM", "HEALTH"]
    assert row.split()[:3] == ["web", str(entry["pid"]), str(port)] and row.split()[5] == "healthy"
    assert all(len(line) <= 80 for line in out.splitlines()), out
    code, out, _ = auto(capsys, "ps", "--json")
    shown = json.loads(out)[0]
    assert shown["health"] == "healthy" and shown["last_health"]["ok"] is True
    code, out, _ = auto(capsys, "show", "web")
    shown_rows = [line for line in out.splitlines() if line.startswith("health")]
    assert shown_rows[0].split(None, 1)[1].startswith("healthy; last check ok, HTTP 200 after "), shown_rows
    assert shown_rows[1].endswith(f" http://127.0.0.1:{port}/ every 0.5 s, timeout 3 s, 3 retries"), shown_rows
    assert all(len(line) <= 80 for line in shown_rows), shown_rows
    # A healthy service checked every 0.5 s is not written again while nothing changes.
    state_file = auto_home / "local" / "state.json"
    version = state_file.stat().st_ino, state_file.stat().st_mtime_ns
    checks = len(w.lines(r"health web"))
    holds(lambda: (state_file.stat().st_ino, state_file.stat().st_mtime_ns) == version, 2.0)
    pid = entry["pid"]
    code, out, _ = auto(capsys, "update", "web", "--health", "none")
    assert code == 0
    assert _entry(auto_home, "web")["pid"] == pid and pid_alive(pid)
    assert len(w.lines(r"health web")) == checks
    code, out, _ = auto(capsys, "-q", "ps")
    assert out.splitlines()[1].split()[5] == "-"


@pytest.mark.slow
def test_failing_command_check_restarts_the_service_and_says_why(capsys, auto_home, tmp_path, watcher):
    w = watcher()
    code, _, err = auto(capsys, "add", "sick", "sleep 1000", "--workdir", str(tmp_path),
                        "--health", "cmd:false", "--health-interval", "0.2", "--health-retries", "3",
                        "--backoff-base", "0.2")
    assert code == 0, err
    first = _entry(auto_home, "sick")
    wait_until(lambda: _entry(auto_home, "sick").get("restarts", 0) >= 1, 20,
               message="the unhealthy service to be restarted")
    second = _entry(auto_home, "sick")
    assert second["pid"] != first["pid"]
    wait_until(lambda: not pid_alive(first["pid"]), message="the first run to end")
    with open(first["log_path"]) as fh:
        log = fh.read()
    assert "[auto] health check failed 3 times (exit 1 after " in log and "); restarting" in log
    assert re.search(r"^\[auto\] killed by SIGTERM after [0-9.]+ s; restarting in [0-9.]+ s$", log, re.M), log
    assert second["last_exit"].get("unhealthy") is True and "stopped" not in second["last_exit"]
    code, out, _ = auto(capsys, "show", "sick")
    assert "unhealthy (killed by SIGTERM)" in out and "stopped by user" not in out, out
    w.wait_line(r"^health sick: unhealthy \(exit 1 after ")
    w.wait_line(r"^start sick pid \d+ \(automatic restart\)")


def _silent_listener() -> socket.socket:
    """A TCP server that accepts connections (the backlog does) and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    return srv


@pytest.mark.slow
def test_hanging_check_fails_at_its_timeout_and_stalls_no_restart(capsys, auto_home, tmp_path, watcher):
    w = watcher()
    srv = _silent_listener()
    try:
        port = srv.getsockname()[1]
        code, _, err = auto(capsys, "add", "hung", "sleep 1000", "--workdir", str(tmp_path),
                            "--health", f"http://127.0.0.1:{port}/", "--health-timeout", "4",
                            "--health-interval", "0.2", "--health-retries", "1", "--wait", "0")
        assert code == 0, err
        code, _, err = auto(capsys, "add", "crash", "sh -c 'sleep 0.7; exit 3'", "--workdir",
                            str(tmp_path), "--backoff-base", "0", "--wait", "0")
        assert code == 0, err
        m = w.wait_line(r"^health hung: unhealthy \((timed out after [0-9.]+ s)\)", 30)
        took = float(m.group(1).split()[-2])
        assert 3.9 <= took < 6.0, m.group(0)
        # While that check hung, the crashing service was restarted at once each time.
        events = w.events()
        hung_from = next(t for t, msg in events if msg.startswith("start hung pid"))
        hung_to = next(t for t, msg in events if msg.startswith("health hung: unhealthy"))
        latencies = []
        for i, (t, msg) in enumerate(events):
            if msg.startswith("exit crash pid") and hung_from <= t <= hung_to:
                started = next((t2 for t2, m2 in events[i:] if m2.startswith("start crash pid")), None)
                if started is not None:
                    latencies.append((started - t).total_seconds())
        assert len(latencies) >= 2, w.text()
        assert max(latencies) < 0.5, latencies
        wait_until(lambda: (_entry(auto_home, "hung").get("last_exit") or {}).get("unhealthy"), 15,
                   message="the unhealthy service's stop to be recorded")
    finally:
        srv.close()



class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_judging_results_start_period_pace_and_writes(home):
    """The rules of ``Checks`` on given results: failures inside the start period do not
    count, while starting they count once per interval, ``retries`` in a row restart, and the
    state is written only when it (or a result's ok) changes."""
    from auto_core import model
    from auto_core.supervisor import health

    clock = _Clock()
    writes, restarts = [], []
    checks = health.Checks(home, lambda fd: False, clock, clock, writes.append,
                           lambda name, line: restarts.append(line), lambda m: None)
    d = model.definition({"command": "x", "health": "port", "health_interval": 5.0,
                          "health_retries": 2, "health_start_period": 10.0})
    tracker = health.Tracker("run-1", "run-1", healthcheck.parse("port"), d, started=100.0, due=0.0)

    def result(ok: bool, at: float) -> None:
        clock.now = at
        checks._judge(health.Result("web", "run-1", 0, ok, "exit 1 after 0.0 s", at), tracker, at)

    result(False, 101.0)
    result(False, 109.0)  # inside the 10 s start period: not counted
    assert (tracker.state, tracker.failures, len(writes)) == ("starting", 0, 1)  # ok changed: written
    result(False, 111.0)  # counted: 11 s since the start
    result(False, 112.0)  # while starting, once per interval: not yet
    assert (tracker.failures, restarts) == (1, [])
    result(True, 113.0)  # a success: healthy, the count starts over
    assert (tracker.state, tracker.failures, len(writes)) == ("healthy", 0, 2)
    result(True, 118.0)
    assert len(writes) == 2  # nothing changed: no write
    result(False, 123.0)
    assert (tracker.state, tracker.failures, len(writes)) == ("healthy", 1, 3)
    result(False, 128.0)
    assert tracker.state == "unhealthy" and tracker.done
    assert restarts == ["[auto] health check failed 2 times (exit 1 after 0.0 s); restarting"]
    checks.close()


def _threads(pid: int) -> int:
    import os

    return len(os.listdir(f"/proc/{pid}/task"))


def test_no_thread_until_a_service_has_a_check(capsys, auto_home, tmp_path, watcher):
    w = watcher()
    code, _, err = auto(capsys, "add", "plain", "sleep 1000", "--workdir", str(tmp_path))
    assert code == 0, err
    holds(lambda: _threads(w.pid) == 1, 1.0)  # the loop alone
    code, out, err = auto(capsys, "update", "plain", "--health", "cmd:true", "--health-interval", "0.2")
    assert code == 0, err
    assert out.strip() == "updated plain; the health check applies at once", out
    wait_until(lambda: _entry(auto_home, "plain").get("health_state") == "healthy", 15,
               message="the check added to the running service to pass")
    assert _threads(w.pid) > 1
    # A changed check applies at once too, from `starting`.
    code, _, err = auto(capsys, "update", "plain", "--health", "cmd:false", "--health-retries", "1")
    assert code == 0, err
    w.wait_line(r"^health plain: unhealthy \(exit 1 after ", 15)


def _check_children(watcher_pid: int, command: str = "sleep 60") -> list[int]:
    """The watcher's children that are health-check commands (``sh -c 'sleep 60'``)."""
    from helpers import procs_with_argv

    return [p for p in procs_with_argv(["/bin/sh", "-c", command]) if _parent(p) == watcher_pid]


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])
    except OSError:
        return None


@pytest.mark.slow
def test_a_hanging_check_does_not_delay_the_watchers_exit(capsys, auto_home, tmp_path, watcher):
    w = watcher()
    code, _, err = auto(capsys, "add", "slow", "sleep 1000", "--workdir", str(tmp_path), "--wait", "0",
                        "--health", "cmd:sleep 60", "--health-timeout", "120", "--health-interval", "0.2")
    assert code == 0, err
    hung = wait_until(lambda: _check_children(w.pid), 15, message="the check command to run")
    began = time.monotonic()
    assert w.signal(15, timeout=10) == 0
    assert time.monotonic() - began < 5
    wait_until(lambda: not any(pid_alive(p) for p in hung), message="the check command to be killed")


HTTPS_SERVER = """
import http.server, ssl, sys
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("cert.pem", "key.pem")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"""


@pytest.mark.slow
def test_https_with_its_own_certificate_and_port_checks_turn_healthy(capsys, auto_home, tmp_path, watcher):
    _certificate(tmp_path)
    (tmp_path / "https_server.py").write_text(HTTPS_SERVER)
    w = watcher()
    tls, plain = free_port(), free_port()
    code, _, err = auto(capsys, "add", "tls", f"python3 https_server.py {tls}", "--workdir", str(tmp_path),
                        "--health", f"https://127.0.0.1:{tls}/", "--health-interval", "0.3")
    assert code == 0, err
    code, _, err = auto(capsys, "add", "plain", f"python3 -m http.server {plain} --bind 127.0.0.1",
                        "--workdir", str(tmp_path), "--port", str(plain), "--health", "port",
                        "--health-interval", "0.3")
    assert code == 0, err
    w.wait_line(r"^health tls: healthy \(HTTP 200 after ", 20)
    w.wait_line(r"^health plain: healthy \(connected after ", 20)


@pytest.mark.slow
def test_a_command_check_leaves_nothing_behind(capsys, auto_home, tmp_path, watcher):
    from helpers import procs_with_argv

    left = ["sleep", "307.25"]  # what each check starts in the background and leaves
    watcher()
    try:
        code, _, err = auto(capsys, "add", "bg", "sleep 1000", "--workdir", str(tmp_path),
                            "--health", f"cmd:{' '.join(left)} & echo x >> {tmp_path}/checks",
                            "--health-interval", "0.2")
        assert code == 0, err
        checks = tmp_path / "checks"
        wait_until(lambda: checks.exists() and len(checks.read_text().split()) >= 6, 20,
                   message="six checks to run")
        # Each check's background process went with it (the latest may be going right now).
        wait_until(lambda: len(procs_with_argv(left)) <= 1, 5,
                   message="the checks' background processes to be killed")
        assert len(procs_with_argv(left)) <= 1
    finally:
        import os
        import signal

        for pid in procs_with_argv(left):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_hanging_checks_hold_only_their_own_services(capsys, auto_home, tmp_path, watcher):
    w = watcher()
    for i in range(5):
        code, _, err = auto(capsys, "add", f"hang{i}", "sleep 1000", "--workdir", str(tmp_path),
                            "--wait", "0", "--health", "cmd:sleep 100", "--health-timeout", "90")
        assert code == 0, err
    wait_until(lambda: len(_check_children(w.pid, "sleep 100")) >= 4, 20,
               message="the hanging checks to run")
    code, _, err = auto(capsys, "add", "quick", "sleep 1000", "--workdir", str(tmp_path), "--wait", "0",
                        "--health", "cmd:true", "--health-interval", "1")
    assert code == 0, err
    code, _, err = auto(capsys, "add", "next", "sleep 1000", "--workdir", str(tmp_path), "--no-start",
                        "--after", "quick")
    assert code == 0, err
    w.wait_line(r"^health quick: healthy \(exit 0 after ", 20)
    code, out, err = auto(capsys, "start-all")
    assert code == 0, err
    assert _entry(auto_home, "next").get("pid")


def test_the_pool_grows_to_its_limit_and_reuses_idle_threads():
    import threading

    from auto_core.supervisor.pool import Pool

    pool = Pool("test")
    release, ran = threading.Event(), []
    try:
        for i in range(3):
            pool.submit(lambda i=i: (ran.append(i), release.wait(30)), limit=2)
        wait_until(lambda: len(ran) == 2, message="two jobs to run at once")
        assert pool.threads == 2  # the limit: the third waits for a thread
        release.set()
        wait_until(lambda: len(ran) == 3 and pool._idle == 2, message="the third job to run")
        done = threading.Event()
        pool.submit(done.set, limit=5)
        assert done.wait(10) and pool.threads == 2  # an idle thread took it
    finally:
        release.set()
        pool.close()
    wait_until(lambda: pool.threads == 0, message="the threads to end")


@pytest.mark.slow
def test_the_pool_grows_past_its_base_only_while_its_threads_are_stuck():
    import threading

    from auto_core.supervisor import pool as pools

    pool = pools.Pool("test")
    release, ran = threading.Event(), []
    try:
        for i in range(40):  # a batch of quick jobs: the base threads take them
            pool.submit(lambda i=i: ran.append(i), limit=40)
        wait_until(lambda: len(ran) == 40, message="the quick jobs to run")
        assert pool.threads <= pools.BASE
        count = pool.threads
        stuck = [i for i in range(pools.BASE + 2)]
        for i in stuck:
            pool.submit(lambda i=i: (ran.append(i), release.wait(30)), limit=40)
        wait_until(lambda: len(ran) == 40 + pools.BASE, message="the base threads to take a job each")
        began = time.monotonic()
        while time.monotonic() - began < pools.STUCK * 3 and len(ran) < 40 + len(stuck):
            pool.grow(40)  # as the watcher's passes do
            time.sleep(0.05)
        assert len(ran) == 40 + len(stuck), (count, pool.threads)
        assert time.monotonic() - began >= pools.STUCK * 0.9  # not before the others were stuck
    finally:
        release.set()
        pool.close()
    wait_until(lambda: pool.threads == 0, message="the threads to end")


@pytest.mark.slow
def test_a_changed_check_starts_over_and_a_removed_one_leaves_no_state(capsys, auto_home, tmp_path, watcher):
    from auto_core import order

    watcher()
    code, _, err = auto(capsys, "add", "svc", "sleep 1000", "--workdir", str(tmp_path),
                        "--health", "cmd:true", "--health-interval", "0.2")
    assert code == 0, err
    wait_until(lambda: _entry(auto_home, "svc").get("health_state") == "healthy", 15,
               message="the first check to pass")
    code, _, err = auto(capsys, "update", "svc", "--health", "cmd:false", "--health-interval", "5",
                        "--health-retries", "5")
    assert code == 0, err
    # Not healthy any more: the new check has not passed (five failures would make it unhealthy).
    wait_until(lambda: _entry(auto_home, "svc").get("health_state") == "starting", 10,
               message="the changed check to start over")
    entry = _entry(auto_home, "svc")
    assert entry["health_run"] == entry["run"] and not order.is_up(entry, True)
    code, out, _ = auto(capsys, "ps", "--json")
    assert json.loads(out)[0]["health"] == "starting"
    wait_until(lambda: (_entry(auto_home, "svc").get("last_health") or {}).get("ok") is False, 10,
               message="the changed check's first failure")
    assert _entry(auto_home, "svc")["health_state"] == "starting"
    code, _, err = auto(capsys, "update", "svc", "--health", "none")
    assert code == 0, err
    wait_until(lambda: "last_health" not in _entry(auto_home, "svc"), 10,
               message="the removed check's state to go")
    code, out, _ = auto(capsys, "ps", "--json")
    shown = json.loads(out)[0]
    assert shown["health"] is None and shown["last_health"] is None


def test_a_result_for_a_check_since_changed_is_dropped(home):
    """A check in flight when ``update`` changes it: its result is not judged by the new
    check's rules, and the new check waits for it rather than running beside it."""
    from auto_core.supervisor import health

    writes, submitted = [], []
    checks = health.Checks(home, lambda fd: False, time.monotonic, time.time, writes.append,
                           lambda name, line: None, lambda m: None)
    submit = checks._submit
    checks._submit = lambda name, tracker: (submitted.append(tracker.check.command), submit(name, tracker))
    entry = {"command": "x", "health": "cmd:sleep 0.5", "health_interval": 5.0, "run": "run-1"}
    runs = {"web": ("run-1", time.time() - 10, None)}
    try:
        checks.tick({"web": entry}, runs)
        assert submitted == ["sleep 0.5"]
        changed = dict(entry, health="cmd:false", health_retries=5)
        checks.tick({"web": changed}, runs)
        assert submitted == ["sleep 0.5"]  # the first is still in flight
        assert checks.trackers["web"].check.command == "false"
        wait_until(lambda: checks._results.qsize() == 1, 10, message="the first check's result")
        checks.tick({"web": changed}, runs)
        tracker = checks.trackers["web"]
        assert (tracker.state, tracker.last_ok) == ("starting", None)  # the success was not its own
        assert submitted == ["sleep 0.5", "false"]
        wait_until(lambda: checks._results.qsize() == 1, 10, message="the new check's result")
        checks.tick({"web": changed}, runs)
        assert (tracker.state, tracker.last_ok, tracker.failures) == ("starting", False, 1)
    finally:
        checks.close()


def _trickling_server(stop, tls=None):
    """A server that answers with a status line, then a header byte every 0.2 s, for ever
    (over TLS with the ``tls`` server context)."""
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.2)

    def serve() -> None:
        conns = []
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.settimeout(5)
                if tls is not None:
                    conn = tls.wrap_socket(conn, server_side=True)
                conns.append(conn)
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            except OSError:
                pass
            for conn in conns:
                try:
                    conn.sendall(b"a")
                except OSError:
                    pass
        for conn in conns:
            conn.close()
        srv.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return srv.getsockname()[1], thread


def _certificate(folder) -> tuple[str, str]:
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (it makes the test's certificate)")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "cert.pem"],
                   cwd=folder, check=True, capture_output=True, timeout=60)
    return str(folder / "cert.pem"), str(folder / "key.pem")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_http_check_is_bounded_as_a_whole_by_its_timeout(tmp_path, scheme):
    import ssl
    import threading

    from auto_core import model
    from auto_core.supervisor import health

    tls = None
    if scheme == "https":
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(*_certificate(tmp_path))
    stop = threading.Event()
    port, thread = _trickling_server(stop, tls)
    probing = threading.Thread()
    try:
        d = model.definition({"command": "x"})
        found: list = []
        check = healthcheck.parse(f"{scheme}://127.0.0.1:{port}/")
        probing = threading.Thread(target=lambda: found.append(health.probe(check, d, None, 1.0)), daemon=True)
        probing.start()
        wait_until(lambda: found, 5, message="the check to end at its timeout")
        ok, detail = found[0]
        assert not ok and re.fullmatch(r"timed out after 1\.[0-9] s", detail), detail
    finally:
        stop.set()  # the server closes its connections: a check still reading ends
        thread.join(10)
        if probing.ident is not None:
            probing.join(10)


def test_closing_one_watchers_checks_leaves_anothers_running(home):
    """Two ``Checks`` in one process (a test, an embedding): one's ``close`` kills its own
    command checks in flight, not the other's."""
    import os

    from auto_core.supervisor import health

    def checks() -> health.Checks:
        return health.Checks(home, lambda fd: False, time.monotonic, time.time, lambda change: None,
                             lambda name, line: None, lambda m: None)

    mine, other = checks(), checks()
    try:
        entry = {"command": "x", "health": "cmd:sleep 61", "health_timeout": 120.0, "run": "run-1"}
        mine.tick({"web": entry}, {"web": ("run-1", time.time() - 10, None)})
        found = wait_until(lambda: [p for p in _check_children(os.getpid(), "sleep 61")], 10,
                           message="the check command to run")
        other.close()
        holds(lambda: all(pid_alive(p) for p in found), 0.5)
    finally:
        other.close()
        mine.close()
    wait_until(lambda: not any(pid_alive(p) for p in found), message="the check to be killed")


@pytest.mark.slow
def test_a_changed_port_workdir_or_env_waits_for_the_next_run(capsys, auto_home, tmp_path, watcher):
    """``update`` of the port, workdir or env takes effect at the next start: the running run
    keeps being checked on the port, in the workdir and with the env it was started with."""
    w = watcher()
    first, second = free_port(), free_port()
    other = tmp_path / "other"
    other.mkdir()
    (tmp_path / "mark").write_text("")
    code, _, err = auto(capsys, "add", "db", f"python3 -m http.server {first} --bind 127.0.0.1",
                        "--port", str(first), "--workdir", str(tmp_path), "--health", "port",
                        "--health-interval", "0.3", "--health-retries", "2")
    assert code == 0, err
    code, _, err = auto(capsys, "add", "job", "sleep 1000", "--workdir", str(tmp_path),
                        "--env", "MARK=a", "--health", 'cmd:test "$MARK" = a && test -e mark',
                        "--health-interval", "0.3", "--health-retries", "2")
    assert code == 0, err
    w.wait_line(r"^health db: healthy \(connected after ", 20)
    w.wait_line(r"^health job: healthy \(exit 0 after ", 20)
    runs = {name: _entry(auto_home, name)["run"] for name in ("db", "job")}
    code, out, err = auto(capsys, "update", "db", "--port", str(second))
    assert code == 0 and "next start" in out + err, (out, err)
    code, _, err = auto(capsys, "update", "job", "--env", "MARK=b", "--workdir", str(other))
    assert code == 0, err
    # Checked on P2, in ``other`` or with MARK=b, each would fail twice within a second.
    holds(lambda: all(_entry(auto_home, n)["run"] == runs[n]
                      and _entry(auto_home, n).get("health_state") == "healthy" for n in runs), 3.0)
    assert not w.lines(r"unhealthy"), w.text()


@pytest.mark.slow
def test_a_stop_during_an_unhealthy_restart_is_answered_by_that_stop(capsys, auto_home, tmp_path, watcher):
    """The run ignores SIGTERM: the unhealthy restart's stop takes the stop timeout, and a stop
    asked for meanwhile says how the run ended, and no run starts after it."""
    w = watcher()
    code, _, err = auto(capsys, "add", "bad", "sh -c 'trap \"\" TERM; exec sleep 3121'", "--workdir",
                        str(tmp_path), "--health", "cmd:false", "--health-retries", "1",
                        "--health-interval", "1", "--stop-timeout", "3", "--backoff-base", "0.2")
    assert code == 0, err
    pid = _entry(auto_home, "bad")["pid"]
    w.wait_line(rf"^stop bad \(pids {pid}\): sent SIGTERM", 20)
    code, out, err = auto(capsys, "stop", "bad")
    assert code == 0, err
    assert out.strip() == "stopped bad (SIGKILL after 3 s)", (out, err)
    assert not pid_alive(pid)
    entry = _entry(auto_home, "bad")
    assert entry["explicitly_stopped"] is True and "request" not in entry
    assert entry["last_exit"]["killed_after"] == 3
    holds(lambda: len(w.lines(r"^start bad ")) == 1 and "next_restart_at" not in _entry(auto_home, "bad"), 1.0)
