"""Health and start order in the TUI: real services, real checks, a real watcher."""

from __future__ import annotations

import asyncio

import pytest
from conftest import cell, running, shown, until
from helpers import free_port, pid_alive, read_state

from auto_tui.app import AutoApp
from auto_tui.details import DetailsScreen

SIZE = (120, 36)


def health_state(home, name) -> str | None:
    e = read_state(home.root)["processes"].get(name) or {}
    return e.get("health_state") if e.get("health_run") == e.get("run") else None


@pytest.mark.slow
async def test_rows_show_healthy_starting_unhealthy_and_held(home, tmp_path, quiet_api):
    port = free_port()
    # Healthy: a real HTTP server answering its check.
    quiet_api.add("web", f"python3 -m http.server {port} --bind 127.0.0.1", port=port,
                  health=f"http://127.0.0.1:{port}/", start=False)
    # Starting for good: its check never passes, and failures before the first success
    # reach no verdict while retries are many.
    quiet_api.add("slow", "sleep 300", health="cmd:false", health_retries=1000, start=False)
    # Held: it comes after slow, which never comes up.
    quiet_api.add("late", "sleep 300", after="slow", start=False)
    # Unhealthy: one failure is the verdict; it ignores its stop signal, so it stays running
    # (and unhealthy) for its stop timeout before the watcher kills it.
    quiet_api.add("sick", "trap '' TERM; sleep 300", health="cmd:false", health_retries=1,
                  health_interval=0.5, stop_timeout=60, start=False)
    app = AutoApp(home=home, poll_interval=0.1, cwd=str(tmp_path))
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: cell(app, "web", "status") == "stopped", message="the rows")
        await pilot.press("S")  # start all: ordered, as the watcher holds late
        await until(pilot, lambda: health_state(home, "web") == "healthy", timeout=30, message="web healthy")
        await until(pilot, lambda: cell(app, "web", "status") == "running", message="web's row: running")
        await until(pilot, lambda: health_state(home, "sick") == "unhealthy", timeout=30, message="sick unhealthy")
        await until(pilot, lambda: cell(app, "sick", "status") == "unhealthy", message="sick's row: unhealthy")
        assert cell(app, "slow", "status") == "starting" and cell(app, "slow", "pid") != "-"
        assert health_state(home, "slow") in (None, "starting")  # no verdict yet
        await until(pilot, lambda: cell(app, "late", "status") == "waiting for slow", message="late held")
        late = read_state(home.root)["processes"]["late"]
        assert not (late.get("pid") and pid_alive(late["pid"]))  # held, not started

        await pilot.press("down", "enter")  # sick: the second row (late, sick, slow, web)
        details = await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen)
        body = details.query_one("#details-body")
        await until(pilot, lambda: "last check  failed" in shown(body), message="the last check in the details",
                    timeout=10)
        text = shown(body)
        assert "health  unhealthy: cmd:false" in text
        assert "exit 1" in text  # the check's own words
        # A newer request answers start-all's wait for late (else it waits for slow).
        await asyncio.to_thread(quiet_api.stop, ["late"])
