"""The details screen's CPU and memory lines: what a few samples draw and say."""

from __future__ import annotations

from pathlib import Path

from conftest import cell, running, shown, until
from textual.app import App

import auto_tui
from auto_core.model import ProcessView
from auto_tui.details import DetailsScreen
from auto_tui.spark import bars

SIZE = (80, 24)


def view(status: str = "running") -> ProcessView:
    running = status == "running"
    return ProcessView(name="api", status=status, pid=4242 if running else None, port=None, command="x",
                       workdir="/", uptime_s=5.0 if running else None, restarts=0, next_restart_in_s=None,
                       log_path=None, last_exit=None)


class Host(App):
    """Only the details screen, with the app's stylesheet."""

    CSS_PATH = str(Path(auto_tui.__file__).with_name("app.tcss"))

    def __init__(self, details: DetailsScreen) -> None:
        super().__init__()
        self.details = details

    def on_mount(self) -> None:
        self.push_screen(self.details)


def test_bars_are_measured_from_zero_and_need_two_points():
    memory = [b for b, _ in bars([3.1 * 2**20, 3.3 * 2**20], 6)]
    assert set(memory) <= {"▇", "█"} and len(memory) == 6  # a small change stays a calm line
    assert [b for b, _ in bars([0.0, 0.0, 0.0], 3)] == ["▁"] * 3
    assert [b for b, _ in bars([0.0, 10.0], 4)] == ["▁", "▁", "█", "█"]  # stretched to the width
    assert bars([50.0], 10) == [] and bars([], 10) == []


async def test_one_sample_draws_no_bar_and_says_no_samples_yet():
    """The first sample of a run (a service that crashes at once has no other) is no line."""
    host = Host(DetailsScreen(view(), None, usage=([0.0], [3.1 * 2**20])))
    async with host.run_test(size=SIZE) as pilot:
        details = await until(pilot, lambda: isinstance(host.screen, DetailsScreen) and host.screen)
        for key in ("cpu", "mem"):
            await until(pilot, lambda k=key: "no samples yet" in shown(details.query_one(f"#{k}-now")),
                        message=f"{key}: no samples yet")
            spark = details.query_one(f"#{key}-spark")
            assert spark.size.width > 10 and shown(spark).strip() == "", shown(spark)


async def test_the_samples_are_this_run_s_and_a_stopped_service_shows_none(home, tmp_path, quiet_api):
    """While it runs, its samples since it started; once stopped, "-" (not the last run's values)."""
    from auto_tui.app import AutoApp
    from auto_tui.facts import History

    quiet_api.add("idle", "sleep 300", workdir=str(tmp_path))
    app = AutoApp(home=home, poll_interval=0.1, cwd=str(tmp_path), history=History(step=0))
    async with running(app, (120, 36)) as pilot:
        await until(pilot, lambda: cell(app, "idle", "status") == "running")
        await pilot.press("enter")
        details = await until(pilot, lambda: isinstance(app.screen, DetailsScreen) and app.screen)
        assert "CPU and memory, this run" in shown(details.query_one(".section"))
        await until(pilot, lambda: shown(details.query_one("#mem-now")).strip().endswith(")"),
                    message="the memory of the running service")
        assert shown(details.query_one("#mem-spark")).strip()
        quiet_api.stop(["idle"])
        for key in ("cpu", "mem"):
            await until(pilot, lambda k=key: shown(details.query_one(f"#{k}-now")).strip() == "-",
                        message=f"{key}: - once stopped")
            assert shown(details.query_one(f"#{key}-spark")).strip() == ""
