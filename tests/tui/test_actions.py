"""Pilot tests: every key action against a real AUTO_HOME with real child processes."""

from __future__ import annotations

import os

import pytest
from conftest import cell, cursor_name, header, polled, running, shown, toasts, until
from helpers import pid_alive, read_state

from auto_core.store import watchlock
from auto_tui.app import AutoApp
from auto_tui.details import DetailsScreen
from auto_tui.screens import ConfirmScreen, HelpScreen, ProcessForm

SIZE = (120, 36)


def make_app(home, tmp_path) -> AutoApp:
    return AutoApp(home=home, poll_interval=0.1, cwd=str(tmp_path))


def entry(home, name):
    return read_state(home.root)["processes"].get(name)


def running_pid(home, name):
    e = entry(home, name)
    return e and e.get("pid") if e and not e.get("explicitly_stopped") and pid_alive(e.get("pid") or 0) else None


async def told(pilot, app, prefix: str) -> None:
    """Wait for the toast of an action's success that starts with ``prefix``; fail with the
    error toasts if one comes instead (the lifecycle call's own timeouts are shorter)."""
    def seen():
        return toasts(app, "error") or any(m.startswith(prefix) for m in toasts(app, "information"))

    await until(pilot, seen, timeout=40, message=f"a toast starting with {prefix!r}")
    assert not toasts(app, "error"), toasts(app, "error")


@pytest.mark.slow
async def test_start_stop_restart_keys(home, tmp_path, quiet_api):
    quiet_api.add("web", "sleep 300", start=False)
    app = make_app(home, tmp_path)
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: cell(app, "web", "status") == "stopped", message="web row")
        await pilot.press("s")
        pid = await until(pilot, lambda: running_pid(home, "web"), message="web started")
        await until(pilot, lambda: cell(app, "web", "status") == "running" and cell(app, "web", "pid") == str(pid))
        await told(pilot, app, f"started web (pid {pid})")

        await pilot.press("x")  # a single stop asks nothing
        await until(pilot, lambda: entry(home, "web")["explicitly_stopped"] and not pid_alive(pid), message="stop")
        await until(pilot, lambda: cell(app, "web", "status") == "stopped" and cell(app, "web", "pid") == "-")
        await told(pilot, app, "stopped web (SIGTERM, ")

        await pilot.press("s")
        first = await until(pilot, lambda: running_pid(home, "web"), message="web started again")
        await told(pilot, app, f"started web (pid {first})")
        await pilot.press("r")
        second = await until(pilot, lambda: (p := running_pid(home, "web")) and p != first and p, message="restart")
        assert not pid_alive(first)
        await until(pilot, lambda: cell(app, "web", "pid") == str(second))
        await told(pilot, app, f"restarted web (pid {second})")


@pytest.mark.slow
async def test_add_form_starts_process_and_shows_its_log(home, tmp_path):
    app = make_app(home, tmp_path)
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: polled(app))
        assert app.query_one("#empty").display  # the empty-state hint
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ProcessForm))
        await pilot.press(*"api", "tab", *"echo hello-from-api; sleep 300", "tab", "tab", *"8765", "enter")
        pid = await until(pilot, lambda: entry(home, "api") and running_pid(home, "api"), message="api added")
        e = entry(home, "api")
        assert e["command"] == "echo hello-from-api; sleep 300"
        assert e["workdir"] == str(tmp_path) and e["port"] == 8765
        await until(pilot, lambda: cell(app, "api", "pid") == str(pid))
        assert not app.query_one("#empty").display
        pane = app.query_one("#logpane")
        await until(pilot, lambda: any("hello-from-api" in e.text.plain for e in pane.entries), message="log line")


@pytest.mark.slow
async def test_add_form_at_80x24_shows_each_error_by_its_field_then_saves(home, tmp_path):
    """Enter with a bad value keeps the form open with the error under that field, the field
    focused and both in view (the form scrolls at 80x24); fixed, the same Enter saves."""
    app = make_app(home, tmp_path)
    async with running(app, (80, 24)) as pilot:
        await until(pilot, lambda: polled(app))
        await pilot.press("a")
        form = await until(pilot, lambda: isinstance(app.screen, ProcessForm) and app.screen)
        await pilot.press(*"bad name", "tab", *"sleep 300", "tab", "tab", *"80x", "enter")
        await until(pilot, lambda: "invalid name" in shown(form.query_one("#name-error")), message="name error")
        assert app.focused is form.query_one("#name")
        await pilot.press("ctrl+a", "ctrl+k", *"fixed")  # select_on_focus is off: clear it by hand
        await pilot.press("enter")
        port_error = form.query_one("#port-error")
        await until(pilot, lambda: "invalid port" in shown(port_error), message="port error")
        assert app.focused is form.query_one("#port")
        assert not form.query_one("#name-error").display  # the fixed field's error is gone
        dialog = form.query_one("#dialog")
        await until(pilot, lambda: dialog.region.contains_region(port_error.region)
                    and dialog.region.contains_region(form.query_one("#port").region),
                    message="the port field and its error in view")
        assert isinstance(app.screen, ProcessForm)
        assert not (home.state_file.exists() and read_state(home.root)["processes"])
        await pilot.press("backspace", "enter")
        pid = await until(pilot, lambda: entry(home, "fixed") and running_pid(home, "fixed"), message="saved")
        assert entry(home, "fixed")["port"] == 80
        await until(pilot, lambda: cell(app, "fixed", "pid") == str(pid))


async def test_remove_asks_first(home, tmp_path, quiet_api):
    quiet_api.add("gone", "sleep 300")
    pid = entry(home, "gone")["pid"]
    app = make_app(home, tmp_path)
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: cell(app, "gone", "status") == "running")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert entry(home, "gone") and pid_alive(pid)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: entry(home, "gone") is None, message="removed on disk")
        assert not pid_alive(pid)
        await until(pilot, lambda: "gone" not in app.query_one("#table").rows, message="row removed")
        assert app.query_one("#empty").display


async def test_start_all_and_stop_all_with_confirm(home, tmp_path, quiet_api):
    for name in ("a1", "a2", "a3"):
        quiet_api.add(name, "sleep 300", start=False)
    app = make_app(home, tmp_path)
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: app.query_one("#table").row_count == 3)
        await pilot.press("S")
        await until(pilot, lambda: all(running_pid(home, n) for n in ("a1", "a2", "a3")), message="all started")
        pids = [entry(home, n)["pid"] for n in ("a1", "a2", "a3")]
        await until(pilot, lambda: all(cell(app, n, "status") == "running" for n in ("a1", "a2", "a3")))
        await told(pilot, app, "started 3")  # one toast for the batch, summed up
        assert not [t for t in toasts(app) if "a1" in t]
        await pilot.press("X")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: not any(pid_alive(p) for p in pids), message="all stopped")
        assert all(entry(home, n)["explicitly_stopped"] for n in ("a1", "a2", "a3"))
        await until(pilot, lambda: all(cell(app, n, "status") == "stopped" for n in ("a1", "a2", "a3")))
        await told(pilot, app, "stopped 3")
        assert not [t for t in toasts(app) if "a1" in t]


async def test_edit_updates_the_definition(home, tmp_path, quiet_api):
    quiet_api.add("ed", "sleep 300", start=False, port=7001)
    app = make_app(home, tmp_path)
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: cell(app, "ed", "status") == "stopped")
        await pilot.press("e")
        form = await until(pilot, lambda: isinstance(app.screen, ProcessForm) and app.screen)
        assert app.focused is form.query_one("#command")
        await pilot.press("backspace", "1")  # the cursor waits at the end, nothing selected
        form.query_one("#port").value = ""
        await pilot.press("enter")
        await until(pilot, lambda: entry(home, "ed")["command"] == "sleep 301", message="command updated")
        assert entry(home, "ed").get("port") is None
        await until(pilot, lambda: cell(app, "ed", "port") == "-")
        await told(pilot, app, "updated ed; takes effect at its next start")
        assert not [t for t in toasts(app) if t.startswith("updated") and "auto " in t]  # no CLI advice here


@pytest.mark.slow
async def test_details_filter_and_cursor_survive_changes(home, tmp_path, quiet_api):
    for name in ("bravo", "delta"):
        quiet_api.add(name, "sleep 300", start=False, workdir=str(tmp_path), env={"GREETING": "hi"})
    app = make_app(home, tmp_path)
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: app.query_one("#table").row_count == 2)
        await pilot.press("down")
        assert cursor_name(app) == "delta"
        quiet_api.add("alpha", "sleep 300", start=False)  # sorts before the cursor row
        await until(pilot, lambda: app.query_one("#table").row_count == 3, message="alpha appears")
        assert cursor_name(app) == "delta"
        quiet_api.remove("bravo")
        await until(pilot, lambda: app.query_one("#table").row_count == 2, message="bravo goes")
        assert cursor_name(app) == "delta"

        await pilot.press("enter")
        details = await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen)
        body = shown(details.query_one("#details-body"))
        assert "sleep 300" in body and str(tmp_path) in body and "GREETING=hi" in body
        await until(pilot, lambda: "no run has a log yet" in shown(details.query_one("#runs")), message="the runs")
        assert shown(details.query_one("#cpu-now")).strip() == "-"  # never started: no usage
        await until(pilot, lambda: details.query("FooterKey"), message="the details' own footer")
        keys = " ".join(shown(key) for key in details.query("FooterKey"))
        assert "Close" in keys and "Quit" not in keys  # q closes the details here
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DetailsScreen))

        await pilot.press("/", *"alp")
        await until(pilot, lambda: list(app.query_one("#table").rows) == ["alpha"], message="filtered")
        await pilot.press("escape")
        await until(pilot, lambda: app.query_one("#table").row_count == 2, message="filter cleared")


@pytest.mark.slow
async def test_command_palette_stops_a_process(home, tmp_path, quiet_api):
    quiet_api.add("pal", "sleep 300")
    pid = entry(home, "pal")["pid"]
    app = make_app(home, tmp_path)
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: cell(app, "pal", "status") == "running")
        await pilot.press("ctrl+p")
        from textual.command import CommandList

        def listed() -> list[str]:
            options = app.screen.query(CommandList)
            if not options:
                return []
            found = options.first()
            return [str(getattr(found.get_option_at_index(i).prompt, "plain", found.get_option_at_index(i).prompt))
                    for i in range(found.option_count)]

        await until(pilot, lambda: "Stop all" in " ".join(listed()), message="the palette's commands")
        titles = [line.split("\n")[0] for line in listed()]
        for title in ("Add a process", "Start all", "Stop all", "Start: pal", "Stop: pal", "Restart: pal",
                      "Edit: pal", "Remove: pal", "Details: pal", "Logs: pal"):
            assert titles.count(title) == 1, (title, titles)
        assert "Help" in titles and "Keys" not in titles  # the help screen, not Textual's key panel
        await pilot.press(*"stop: pal")
        # The palette searches asynchronously: wait until it lists the command, then pick it.
        await until(pilot, lambda: app.screen.query(CommandList) and app.screen.query_one(CommandList).option_count,
                    message="the palette's match")
        await pilot.press("enter")
        await until(pilot, lambda: not pid_alive(pid) and entry(home, "pal")["explicitly_stopped"], message="stop")


async def test_errors_are_notifications_not_crashes(home, tmp_path, quiet_api):
    quiet_api.add("ghost", "sleep 300", start=False)
    app = make_app(home, tmp_path)
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: cell(app, "ghost", "status") == "stopped")
        quiet_api.remove("ghost")  # vanishes behind the table's back
        app.run_verb("start", "ghost")
        await until(pilot, lambda: any("no process named 'ghost'" in m for m in toasts(app, "error")))

        home.state_bak.unlink(missing_ok=True)
        home.state_file.write_text("{ not json")
        await until(pilot, lambda: any("unreadable" in m for m in toasts(app, "error")), message="state error toast")
        await until(pilot, lambda: "state unreadable" in header(app), message="header")
        await pilot.press("S")  # acting on a corrupt state is refused, not fatal
        await until(pilot, lambda: sum("unreadable" in m for m in toasts(app, "error")) >= 2)
        assert app.is_running
        home.state_file.write_text('{"version": 1, "processes": {}}')
        await until(pilot, lambda: "state unreadable" not in header(app))


async def test_a_service_started_by_the_tui_is_the_watchers_child_and_its_exit_recorded(home, tmp_path, quiet_api):
    """The TUI brings a watcher up and asks it to start: the service's parent is the watcher
    (not the TUI), which reaps it, records its exit code and schedules its restart."""
    go = tmp_path / "go"
    quiet_api.add("blip", f"while [ ! -e '{go}' ]; do sleep 0.02; done; exit 3", start=False,
                  backoff_base=60)
    app = make_app(home, tmp_path)
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: cell(app, "blip", "status") == "stopped")
        watcher = await until(pilot, lambda: (w := watchlock.holder(home)) and w > 0 and w,
                              message="the watcher brought up (and its pid in the lock file)")
        await until(pilot, lambda: any(m.startswith(f"started the watcher (pid {watcher})") for m in toasts(app)),
                    message="the TUI to say it started the watcher")
        await pilot.press("s")
        pid = await until(pilot, lambda: running_pid(home, "blip"), message="blip started")
        assert ppid(pid) == watcher != os.getpid()
        go.touch()
        last = await until(pilot, lambda: (e := entry(home, "blip").get("last_exit")) and e.get("pid") == pid and e,
                           message="last_exit recorded")
        assert (last["code"], last["signal"], last["pid"]) == (3, None, pid) and not last.get("unknown")
        assert ppid(pid) is None  # reaped: not even a zombie is left
        # Dead, with the watcher's restart scheduled after the (long) backoff.
        await until(pilot, lambda: cell(app, "blip", "status").startswith("restart in "),
                    message="shown waiting for its restart")


def ppid(pid: int) -> int | None:
    """The parent of ``pid``, or None once it is gone (a zombie counts as there)."""
    try:
        raw = open(f"/proc/{pid}/stat", "rb").read()
    except OSError:
        return None
    return int(raw[raw.rfind(b")") + 2:].split()[1])


@pytest.mark.slow
async def test_mouse_click_selects_a_row_and_help_toggles(home, tmp_path, quiet_api):
    for name in ("m1", "m2", "m3"):
        quiet_api.add(name, "sleep 300", start=False, workdir=str(tmp_path))
    app = make_app(home, tmp_path)
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: app.query_one("#table").row_count == 3)
        assert cursor_name(app) == "m1"
        await pilot.click("#table", offset=(2, 3))  # header is row 0 of the widget: m3 is line 3
        await until(pilot, lambda: cursor_name(app) == "m3", message="click selects m3")
        await until(pilot, lambda: app.query_one("#logpane").name_shown == "m3", message="pane follows the row")
        await pilot.press("question_mark")
        help_screen = await until(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen, message="help")
        text = shown(help_screen.query_one("#help-body"))
        for heading in ("Process", "Log", "View", "How auto works"):
            assert heading in text
        assert "exponential backoff" in text and "stays stopped" in text
        await pilot.press("question_mark")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), message="help closed")


@pytest.mark.slow
async def test_a_slow_stop_shows_stopping_with_its_countdown_then_stopped(home, tmp_path, quiet_api):
    """A service that ignores SIGTERM: while the watcher waits out its stop timeout the row
    says ``stopping Ns`` (the seconds left before SIGKILL), then ``stopped``; one toast."""
    ready = tmp_path / "ready"
    quiet_api.add("stubborn", f"trap '' TERM; touch '{ready}'; while :; do sleep 0.05; done",
                  workdir=str(tmp_path), stop_timeout=3)
    app = make_app(home, tmp_path)
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: cell(app, "stubborn", "status") == "running" and ready.exists())
        pid = entry(home, "stubborn")["pid"]
        await pilot.press("x")
        label = await until(pilot, lambda: (c := cell(app, "stubborn", "status")).startswith("stopping ") and c,
                            message="the stopping row")
        assert label in ("stopping 1s", "stopping 2s", "stopping 3s"), label
        assert pid_alive(pid)
        await until(pilot, lambda: cell(app, "stubborn", "status") == "stopped", message="stopped after SIGKILL")
        assert not pid_alive(pid)
        await told(pilot, app, "stopped stubborn (SIGKILL after 3 s)")
        assert len([t for t in toasts(app) if "stubborn" in t]) == 1


async def test_w_starts_a_watcher_when_none_runs(home, tmp_path, quiet_api):
    import signal

    quiet_api.add("idle", "sleep 300", start=False)
    app = make_app(home, tmp_path)
    async with running(app, SIZE) as pilot:
        first = await until(pilot, lambda: watchlock.holder(home), message="the watcher the app brought up")
        # The header said "not running" before that watcher came up: wait for it to say so.
        await until(pilot, lambda: f"watcher running (pid {first})" in header(app), message="the header")
        os.kill(first, signal.SIGTERM)  # it exits and leaves the services alone
        await until(pilot, lambda: watchlock.holder(home) is None, message="the watcher gone")
        await until(pilot, lambda: "watcher not running: W starts it" in header(app), message="the warning")
        await pilot.press("W")
        watcher = await until(pilot, lambda: (w := watchlock.holder(home)) and w != first and w, message="a watcher")
        await until(pilot, lambda: f"watcher running (pid {watcher})" in header(app), message="the header")
        await told(pilot, app, f"started the watcher (pid {watcher})")
        await pilot.press("W")
        await told(pilot, app, f"the watcher is already running (pid {watcher})")


@pytest.mark.slow
async def test_details_draws_a_running_service_s_samples_and_its_runs(home, tmp_path, quiet_api):
    """The sparklines are fed by the table's own refresh (a busy service's CPU shows); the runs
    say how each ended, as `auto log NAME --runs` does."""
    from textual.widgets import Sparkline

    from auto_tui.facts import History

    quiet_api.add("busy", "python3 -c 'while True: pass'", workdir=str(tmp_path))
    quiet_api.restart(["busy"])
    app = AutoApp(home=home, poll_interval=0.1, cwd=str(tmp_path), history=History(step=0))
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: cell(app, "busy", "status") == "running")
        await pilot.press("enter")
        details = await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen)
        spark = details.query_one("#cpu-spark", Sparkline)
        await until(pilot, lambda: len(spark.data or []) >= 3 and max(spark.data or [0]) > 20,
                    message="the busy loop's CPU in the sparkline")
        assert len(details.query_one("#mem-spark", Sparkline).data or []) >= 3
        await until(pilot, lambda: "SIGTERM (restart)" in shown(details.query_one("#runs")), message="the runs")
        runs = shown(details.query_one("#runs"))
        assert "last 2 runs" in runs and "-1  began" in runs and "running" in runs


@pytest.mark.slow
async def test_a_row_marks_a_definition_changed_since_its_run_started_and_r_applies_it(home, tmp_path, quiet_api):
    from helpers import free_port

    first, second = free_port(), free_port()
    quiet_api.add("web", "sleep 300", workdir=str(tmp_path), port=first)
    app = make_app(home, tmp_path)
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: cell(app, "web", "status") == "running")
        quiet_api.update("web", port=second)
        await until(pilot, lambda: cell(app, "web", "status") == "running *", message="the marker")
        await pilot.press("enter")
        details = await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen)
        body = shown(details.query_one("#details-body"))
        assert f"port {second} since it started: a restart (r) applies it" in " ".join(body.split())
        await pilot.press("r")  # as it says, right there
        await until(pilot, lambda: entry(home, "web")["started_with"]["port"] == second, message="the restart")
        await until(pilot, lambda: "since it started" not in shown(details.query_one("#details-body")),
                    message="the changed row gone from the details")
        assert app.screen is details
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DetailsScreen))
        await until(pilot, lambda: cell(app, "web", "status") == "running", message="the marker gone")
