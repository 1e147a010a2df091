"""TUI fixtures: an async ``until`` (no sleep-and-hope) and table/state readers."""

from __future__ import annotations

import contextlib
import time

import pytest

from auto_core.lifecycle import Api


async def until(pilot, predicate, timeout: float = 10.0, message: str = "condition"):
    """Let the app run until ``predicate()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        await pilot.pause(0.05)


@contextlib.asynccontextmanager
async def running(app, size: tuple[int, int]):
    """``app.run_test``, leaving only once the app's lifecycle calls have returned: a call
    still waiting for the watcher's answer would otherwise outlive the test, and the test's
    cleanup (which ends the watcher) would keep it waiting until its timeout."""
    async with app.run_test(size=size, notifications=True) as pilot:
        yield pilot
        await until(pilot, lambda: not [w for w in app.workers
                                        if w.group in ("actions", "watcher") and not w.is_finished],
                    timeout=30, message="the app's lifecycle calls to return")


def cell(app, name: str, column: str) -> str:
    """The plain text of one table cell ('' if the row is not shown)."""
    table = app.query_one("#table")
    if name not in table.rows:
        return ""
    value = table.get_cell(name, column)
    return getattr(value, "plain", value)


def shown(widget) -> str:
    """What ``widget`` puts on the screen now, as plain lines."""
    return "\n".join(strip.text for strip in widget.render_lines(widget.region.reset_offset))


def toasts(app, severity: str | None = None) -> list[str]:
    """The text of the notifications on the current screen (``severity``: only those), each
    on one line without its border."""
    return [" ".join(line.strip(" ▌▐") for line in shown(t).splitlines()).strip() for t in app.screen.query("Toast")
            if severity is None or t.has_class(f"-{severity}")]


def header(app) -> str:
    return shown(app.query_one("#header"))


def polled(app) -> bool:
    """The first snapshot is on screen (the header names the watcher's state)."""
    return "watcher" in header(app)


def cursor_name(app) -> str | None:
    table = app.query_one("#table")
    if not table.row_count:
        return None
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value


@pytest.fixture
def quiet_api(home) -> Api:
    """An Api for test setup/assertions whose warnings are collected instead of printed."""
    warnings: list[str] = []
    api = Api(home, warn=warnings.append)
    api.warnings = warnings
    return api
