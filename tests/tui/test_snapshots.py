"""SVG snapshots of every screen, from a fixed data source (the only stand-in allowed here).

Deterministic: fixed views, fixed CPU/memory facts, a fixed clock, a fixed terminal size,
no blinking cursors (headless), and a huge poll interval so nothing changes mid-capture.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import polled, shown, until

from auto_core.logtree.logs import Run, parse_name
from auto_core.model import ProcessView
from auto_core.store.paths import Home
from auto_tui.app import AutoApp
from auto_tui.details import DetailsScreen
from auto_tui.facts import Facts, History
from auto_tui.screens import ConfirmScreen, HelpScreen, ProcessForm

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 35), id="120x35")]
NOW = 1_790_000_000.0
FAKE_HOME = Home(Path("/home/dev/.local/state/auto"))


def view(name, status, pid=None, port=None, uptime=None, restarts=0, next_in=None, **extra) -> ProcessView:
    return ProcessView(
        name=name, status=status, pid=pid, port=port, command=extra.pop("command", f"./run-{name}"),
        workdir=extra.pop("workdir", f"/home/dev/{name}"), uptime_s=uptime, restarts=restarts,
        next_restart_in_s=next_in, log_path=extra.pop("log_path", None), last_exit=extra.pop("last_exit", None),
        env=extra.pop("env", {"PATH": "/usr/local/bin:/usr/bin:/bin"}), create_time=NOW - uptime if uptime else None,
        **extra,
    )


VIEWS = [
    view("api", "running", 4242, 8000, 3 * 3600 + 7 * 60, restarts=1, command="uvicorn main:app --port 8000"),
    view("cron", "dead", last_exit={"code": 1, "signal": None, "at": NOW - 42}, restarts=2),
    view("db", "stopped", port=5432, last_exit={"code": None, "signal": 15, "at": NOW - 600}),
    view("queue", "dead", restarts=5, next_in=16.0, restart_attempt=4,
         last_exit={"code": 2, "signal": None, "at": NOW - 15}),
    # Its port was changed while it ran: a restart applies it.
    view("web", "running", 4250, 3001, 95, command="npm run dev", env={"PATH": "/usr/bin:/bin", "NODE_ENV": "dev"},
         changed=["port 3001"]),
    view("mail", "running", 4277, 2525, 640, pending="stop", pending_since=NOW - 3.2, stop_timeout=10.0,
         command="/home/dev/mail/venv/bin/python3 -m aiosmtpd -n -l 127.0.0.1:2525 --class LoggingHandler",
         workdir="/home/dev/projects/customer-portal/services/mail-relay/current"),
    view("worker", "running", 4301, None, 2 * 86400 + 5 * 3600),
]
FACTS = {4277: Facts(1.5, 48 * 2**20), 4242: Facts(12.5, 85 * 2**20), 4250: Facts(0.4, 210 * 2**20), 4301: Facts(97.0, 1_610 * 2**20)}

API_LOG = (
    "[auto] start api pid 4242 at 2026-09-21T14:02:11: uvicorn main:app --port 8000\n"
    "\x1b[32mINFO\x1b[0m:     Started server process [\x1b[36m4242\x1b[0m]\n"
    "\x1b[32mINFO\x1b[0m:     Waiting for application startup.\n"
    "\x1b[33mWARNING\x1b[0m:  config file \x1b[1mlocal.toml\x1b[0m not found, using defaults\n"
    "\x1b[32mINFO\x1b[0m:     Uvicorn running on \x1b[1mhttp://127.0.0.1:8000\x1b[0m (Press CTRL+C to quit)\n"
    "\x1b[31mERROR\x1b[0m:    GET /health -> 500 \x1b]0;ignored title\x07(database is starting)\n"
    "\x1b[32mINFO\x1b[0m:     GET /health -> 200\n"
)


class FixedSource:
    """Same read surface as ``auto_core.lifecycle.Api`` (snapshot, log_path, watcher, home),
    fixed data."""

    def __init__(self, views, logs: dict[str, Path], watcher: int | None = 4100):
        self.views = list(views)
        self.logs = logs
        self.home = FAKE_HOME
        self._watcher = watcher
        self.run_records: dict[str, list[Run]] = {}

    def watcher(self):
        return self._watcher

    def snapshot(self):
        return list(self.views)

    def log_path(self, name):
        path = self.logs.get(name)
        return str(path) if path else None

    def runs(self, name):
        return list(self.run_records.get(name, ()))


class FixedSampler:
    def sample(self, wanted):
        return {pid: FACTS[pid] for pid in wanted if pid in FACTS}


@pytest.fixture
def logs(tmp_path) -> dict[str, Path]:
    api_log = tmp_path / "api_260921_140211.log"
    api_log.write_bytes(API_LOG.encode())
    web_log = tmp_path / "web_260921_174530.log"
    web_log.write_text("[auto] start web pid 4250 at 2026-09-21T17:45:30: npm run dev\n> vite\nready in 312 ms\n")
    # Last written at fixed times: the all-processes view orders lines by them (web's run
    # began while api's was writing, and api wrote last).
    for path, seconds in ((api_log, 4 * 3600), (web_log, 600)):
        begun = parse_name(path.name)[1].timestamp()
        os.utime(path, (begun + seconds, begun + seconds))
    return {"api": api_log, "web": web_log}


def make_app(views, logs, watcher: int | None = 4100) -> AutoApp:
    return AutoApp(api=FixedSource(views, logs, watcher), poll_interval=3600, clock=lambda: NOW,
                   sampler=FixedSampler(), cwd="/tmp")  # the form checks that it exists


def settled(want_log: bool = True):
    async def run_before(pilot):
        app = pilot.app

        def ready():
            footer_keys = app.screen.query("FooterKey")  # the Footer is mounted after the first frame
            return polled(app) and footer_keys and (not want_log or app.query_one("#logpane").entries)

        await until(pilot, ready, message="the first snapshot, the footer and the log lines")

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_main_screen_every_status_and_coloured_log(snap_compare, logs, size):
    assert snap_compare(make_app(VIEWS, logs), run_before=settled(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_log_pane_focused_and_paused(snap_compare, logs, size):
    async def run_before(pilot):
        await settled()(pilot)
        await pilot.press("down", "down", "down", "down", "down")  # web
        await until(pilot, lambda: any("vite" in e.text.plain for e in pilot.app.query_one("#logpane").entries),
                    message="web's log in the pane")
        await pilot.press("tab", "f")

    assert snap_compare(make_app(VIEWS, logs), run_before=run_before, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_every_log_merged_with_coloured_names(snap_compare, logs, size):
    async def run_before(pilot):
        await settled()(pilot)
        await pilot.press("L")
        pane = pilot.app.query_one("#logpane")
        await until(pilot, lambda: pane.merged and any(e.text.plain.startswith("web ") for e in pane.entries),
                    message="both logs in the merged view")

    assert snap_compare(make_app(VIEWS, logs), run_before=run_before, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.slow
def test_add_form_with_a_bad_port(snap_compare, logs, size):
    async def run_before(pilot):
        await settled()(pilot)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(pilot.app.screen, ProcessForm), message="the add form")
        await pilot.press(*"web", "tab", *"python3 -m http.server 8000", "tab", "tab", *"80x", "enter")
        error = pilot.app.screen.query_one("#port-error")
        await until(pilot, lambda: "invalid port" in shown(error), message="the error under the port")

    assert snap_compare(make_app(VIEWS, logs), run_before=run_before, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_remove_confirm_dialog(snap_compare, logs, size):
    async def run_before(pilot):
        await settled()(pilot)
        await pilot.press("down", "down")  # db
        await pilot.press("d")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen), message="the confirm dialog")

    assert snap_compare(make_app(VIEWS, logs), run_before=run_before, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_details_of_a_stopping_process_with_a_long_command_and_workdir(snap_compare, logs, size):
    async def run_before(pilot):
        await settled()(pilot)
        await pilot.press("down", "down", "down")  # mail: stopping
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, DetailsScreen), message="the details view")

    assert snap_compare(make_app(VIEWS, logs), run_before=run_before, terminal_size=size)


# worker's CPU % and memory over the last samples: a spike, then calm (one point per sample).
USAGE = [(12.0 + 30.0 * (i in range(18, 24)) + (i % 5), (60 + i) * 2**20) for i in range(40)]
# worker's runs: (seconds before NOW it began, seconds it lasted, its last lines)
WORKER_RUNS = [
    (2 * 86400 + 9 * 3600, 30, "[auto] exited with code 1 after 30 s; restarting in 1 s"),
    (2 * 86400 + 8 * 3600, 2, "[auto] killed by SIGKILL after 2 s; restarting in 2 s"),
    (2 * 86400 + 7 * 3600, 300, "[auto] stopped by user\n[auto] killed by SIGTERM after 300 s"),
    (2 * 86400 + 6 * 3600, 90, "[auto] restarting\n[auto] killed by SIGTERM after 90 s"),
    (2 * 86400 + 5 * 3600, None, "tick"),  # the current run (worker's uptime)
]


class ScriptedSampler(FixedSampler):
    """``FACTS``, except for worker: ``USAGE``, one sample per poll, then none (so the history
    the details view draws is exactly ``USAGE``)."""

    def __init__(self):
        self.script = iter(USAGE)

    def sample(self, wanted):
        found = super().sample(wanted)
        step = next(self.script, None)
        if step is None:
            found.pop(4301, None)
        else:
            found[4301] = Facts(*step)
        return found


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.slow
def test_details_with_usage_sparklines_and_recent_runs(snap_compare, logs, tmp_path, size):
    from datetime import datetime

    source = FixedSource(VIEWS, logs)
    for ago, lasted, end in WORKER_RUNS:
        # Named in local time as the watcher names them: "N ago" reads the same in any zone.
        path = tmp_path / f"worker_{datetime.fromtimestamp(NOW - ago):%y%m%d_%H%M%S}.log"
        path.write_text(f"[auto] start worker\n{end}\n")
        if lasted is not None:
            os.utime(path, (NOW - ago + lasted, NOW - ago + lasted))
        source.run_records.setdefault("worker", []).append(
            Run(path, datetime.fromtimestamp(NOW - ago), path.stat().st_size))
    app = AutoApp(api=source, poll_interval=3600, clock=lambda: NOW, sampler=ScriptedSampler(),
                  history=History(points=len(USAGE), step=0), cwd="/tmp")

    async def run_before(pilot):
        await settled()(pilot)
        for count in range(2, len(USAGE) + 1):  # one poll per sample, as refreshes would take them
            app.refresh_now()
            await until(pilot, lambda n=count: len(app.history.series("worker")[0]) == n, message=f"sample {count}")
        await pilot.press(*["down"] * 6, "enter")  # worker: the last row
        details = await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen)
        await until(pilot, lambda: "exit 1" in shown(details.query_one("#runs")), message="the runs")
        details.query_one("#dialog").scroll_end(animate=False)  # at 80x24 they are below the definition

    assert snap_compare(app, run_before=run_before, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_help_screen(snap_compare, logs, size):
    async def run_before(pilot):
        await settled()(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), message="the help screen")

    assert snap_compare(make_app(VIEWS, logs), run_before=run_before, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_empty_state_without_a_watcher(snap_compare, size):
    assert snap_compare(make_app([], {}, watcher=None), run_before=settled(want_log=False), terminal_size=size)


# Health checks and start order: healthy (reads running), starting, unhealthy, and a start held
# until what it comes after is up.
HEALTH_VIEWS = [
    view("api", "running", 4242, 8000, 3 * 3600 + 7 * 60, command="uvicorn main:app --port 8000",
         health_check="http://127.0.0.1:8000/health", health="healthy", after=["db"],
         last_health={"time": NOW - 4, "ok": True, "detail": "HTTP 200 after 0.01 s"}),
    view("db", "running", 4250, 5432, 12, command="postgres -D data", health_check="port", health="starting",
         last_health={"time": NOW - 1, "ok": False, "detail": "connection refused"}),
    view("mail", "running", 4277, 2525, 640, command="python3 -m aiosmtpd -n", health_check="tcp://127.0.0.1:2525",
         health="unhealthy", restarts=3,
         last_health={"time": NOW - 2, "ok": False, "detail": "timed out after 3 s"}),
    view("worker", "dead", pending="start", pending_since=NOW - 5, after=["db", "mail"], health_check="cmd:./ping",
         waiting_for=["db", "mail"]),  # as views.snapshot tells it: db starting, mail unhealthy
]


@pytest.mark.parametrize("size", SIZES)
def test_main_screen_health_states_and_a_held_start(snap_compare, logs, size):
    assert snap_compare(make_app(HEALTH_VIEWS, logs), run_before=settled(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_details_with_health_and_start_order(snap_compare, size):
    async def run_before(pilot):
        await settled(want_log=False)(pilot)
        await pilot.press("enter")  # api: healthy, after db (starting)
        await until(pilot, lambda: isinstance(pilot.app.screen, DetailsScreen), message="the details view")

    # No logs: the log path would name the test's temporary directory.
    assert snap_compare(make_app(HEALTH_VIEWS, {}), run_before=run_before, terminal_size=size)
