"""Toasts in the TUI: in its own words (keys, not CLI commands) and clear of a dialog's buttons."""

from __future__ import annotations

import pytest
from conftest import polled, running, toasts, until
from textual.widgets import Button

from auto_core.store import watchlock
from auto_tui.app import AutoApp
from auto_tui.feedback import in_tui_words
from auto_tui.screens import ProcessForm


@pytest.mark.slow
async def test_the_watcher_toast_at_80x24_leaves_the_add_forms_buttons_clear(home, tmp_path, quiet_api):
    quiet_api.add("web", "sleep 300", start=False)
    app = AutoApp(home=home, poll_interval=0.1, cwd=str(tmp_path))
    async with running(app, (80, 24)) as pilot:
        await until(pilot, lambda: polled(app))
        await pilot.press("a")
        form = await until(pilot, lambda: isinstance(app.screen, ProcessForm) and app.screen, message="the form")
        watcher = await until(pilot, lambda: watchlock.holder(home), message="the watcher the app brought up")
        # Its whole text: no "'auto install' starts it at login" in a TUI.
        await until(pilot, lambda: f"started the watcher (pid {watcher})" in toasts(app), message="the toast")
        await pilot.press(*"web", "tab", *"sleep 300", "tab", "tab", "tab")  # on Save, scrolled into view
        save = form.query_one("#save", Button)
        dialog = form.query_one("#dialog")
        await until(pilot, lambda: app.focused is save and dialog.region.contains_region(save.region),
                    message="Save in view")
        toast_regions = [t.region for t in form.query("Toast")]
        assert toast_regions, "the toast is gone before the check"
        for button in form.query(Button):
            assert not any(r.overlaps(button.region) for r in toast_regions), (button.id, toast_regions)
        await pilot.press("enter")  # web exists: the error names the key that edits it
        await until(pilot, lambda: toasts(app, "error"), message="the error toast")
        assert toasts(app, "error") == ["a process named 'web' already exists (e edits it)"]


def test_cli_advice_becomes_a_key_or_goes():
    assert in_tui_words("started the watcher (pid 812); 'auto install' starts it at login") == \
        "started the watcher (pid 812)"
    assert in_tui_words("updated web; takes effect on next start (auto restart web)") == \
        "updated web; takes effect on next start (r restarts it)"
    assert in_tui_words("nothing to update: give at least one option (see 'auto update -h')") == \
        "nothing to update: give at least one option"
    assert in_tui_words("no process matches 'w*' (see 'auto ps')") == "no process matches 'w*'"
    # A failed start's log lines are the service's own words.
    assert in_tui_words("web exited at once\n| usage: auto start NAME (see 'auto ps')") == \
        "web exited at once\n| usage: auto start NAME (see 'auto ps')"
