"""The process table's own method, on fixed data (no poll changes the rows meanwhile)."""

from __future__ import annotations

import pytest
from conftest import polled, shown, until
from test_snapshots import VIEWS, make_app
from textual.widgets.data_table import CellDoesNotExist

from auto_tui.app import ProcessTable


async def test_update_cells_shows_every_new_value_with_one_refresh_also_when_a_cell_is_unknown():
    """``update_cells`` holds the refreshes of its ``update_cell`` calls and makes one: the new
    values are what the screen shows, also after an unknown cell stopped it."""
    app = make_app(VIEWS, {})
    async with app.run_test(size=(120, 35)) as pilot:
        await until(pilot, lambda: polled(app))
        table = app.query_one(ProcessTable)
        with app.batch_update():
            table.update_cells([("db", "status", "zzupdat"), ("db", "port", "7999")])
        await pilot.pause()
        assert "zzupdat" in shown(table) and "7999" in shown(table)
        with pytest.raises(CellDoesNotExist):
            table.update_cells([("db", "status", "yysecon"), ("ghost", "status", "no")])
        await pilot.pause()
        assert "yysecon" in shown(table)


async def test_columns_fit_80_columns_and_name_takes_the_slack_after_a_resize():
    app = make_app(VIEWS, {})
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: polled(app))
        table = app.query_one(ProcessTable)
        # As tall as its rows (and its header): the log pane gets the rest.
        await until(pilot, lambda: table.region.height == 1 + len(VIEWS), message="the table's height")

        def head() -> str:
            return shown(table).splitlines()[0].rstrip()

        # Every column is in view and the last one ends at the right edge (less the scrollbar's
        # cell and the cell padding): NAME took what the others leave.
        await until(pilot, lambda: head().endswith("MEM") and len(head()) > 70, message="columns fit 80")
        assert head().split() == ["NAME", "STATUS", "PID", "PORT", "UPTIME", "RESTARTS", "CPU", "%", "MEM"]
        narrow = head().index("STATUS")
        await pilot.resize_terminal(120, 35)
        await until(pilot, lambda: head().index("STATUS") == narrow + 40, message="NAME 40 cells wider")
        assert head().endswith("MEM")


async def test_many_rows_take_at_most_half_the_screen():
    from test_snapshots import view

    app = make_app(VIEWS + [view(f"extra{i:02d}", "stopped") for i in range(30)], {})
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: polled(app) and app.query_one(ProcessTable).row_count == len(VIEWS) + 30)
        await until(pilot, lambda: app.screen.query("FooterKey"), message="the footer")
        await pilot.pause()
        assert app.query_one(ProcessTable).region.height == 11  # half of 23 lines (the footer has one)
        assert app.query_one("#logpane").region.height >= 10
