"""Turn ``ProcessView`` + ``Facts`` into table cells (plain data, built off the UI thread)."""

from __future__ import annotations

from rich.text import Text

from auto_core import humanize
from auto_core.humanize import countdown, duration
from auto_core.model import DEAD, RUNNING, STOPPED, ProcessView
from auto_tui.facts import Facts

COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("name", "NAME", 18),
    ("status", "STATUS", 18),
    ("pid", "PID", 8),
    ("port", "PORT", 6),
    ("uptime", "UPTIME", 9),
    ("restarts", "RESTARTS", 8),
    ("cpu", "CPU %", 6),
    ("mem", "MEM", 8),
)
COLUMN_KEYS = tuple(key for key, _, _ in COLUMNS)

STYLES = {RUNNING: "bold green", STOPPED: "dim", DEAD: "bold red", "waiting": "yellow", "starting": "yellow"}


def status_label(view: ProcessView) -> tuple[str, str]:
    """The status text and its style key (``waiting`` = dead with a restart scheduled)."""
    if view.status == RUNNING:
        return "running", RUNNING
    if view.starting:
        return "starting", "starting"
    if view.status == DEAD and view.next_restart_in_s is not None:
        return f"restart in {countdown(view.next_restart_in_s)}", "waiting"
    return view.status, view.status


def cells(view: ProcessView, facts: Facts | None) -> tuple:
    """One row's cells in ``COLUMN_KEYS`` order. Equal inputs give equal tuples (cheap diffs)."""
    label, style = status_label(view)
    cpu = "-" if facts is None or facts.cpu is None else f"{facts.cpu:.1f}"
    mem = humanize.size(facts.rss) if facts is not None else "-"
    return (
        view.name,
        Text(label, style=STYLES.get(style, "")),
        str(view.pid) if view.pid else "-",
        str(view.port) if view.port else "-",
        duration(view.uptime_s),
        str(view.restarts),
        cpu,
        mem,
    )
