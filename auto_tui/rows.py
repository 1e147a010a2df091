"""Turn ``ProcessView`` + ``Facts`` into table cells (plain data, built off the UI thread)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.cells import cell_len
from rich.text import Text

from auto_core import humanize
from auto_core.humanize import countdown, duration
from auto_core.model import DEAD, RUNNING, STOPPED, ProcessView
from auto_tui.facts import Facts

COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "NAME"),
    ("status", "STATUS"),
    ("pid", "PID"),
    ("port", "PORT"),
    ("uptime", "UPTIME"),
    ("restarts", "RESTARTS"),
    ("cpu", "CPU %"),
    ("mem", "MEM"),
)
COLUMN_KEYS = tuple(key for key, _ in COLUMNS)

STYLES = {RUNNING: "bold green", STOPPED: "dim", DEAD: "bold red", "waiting": "yellow", "starting": "yellow",
          "stopping": "yellow", "unhealthy": "bold red", "held": "yellow"}
STOPS = ("stop", "restart", "remove")  # requests that end the running run first
CHANGED = " *"  # after the status: the definition changed since the run started (r applies it)


def is_up(view: ProcessView) -> bool:
    """Up for what comes after it, as the watcher counts it: running, and healthy when it
    has a check."""
    return view.status == RUNNING and (view.health_check is None or view.health == "healthy")


def status_label(view: ProcessView, now: float) -> tuple[str, str]:
    """The status text and its style key (``waiting`` = dead with a restart scheduled;
    ``stopping``/``starting`` = a request the watcher has not answered yet; ``held`` = a
    start waiting for the services it comes after, ``view.waiting_for``, as the core tells
    it). A running service with a
    health check is ``starting`` until the check first passes and ``unhealthy`` once it
    fails; healthy, it is ``running`` like one without a check."""
    if view.status == RUNNING:
        if view.pending in STOPS:
            if view.pending_since is None:
                return "stopping", "stopping"
            # The seconds left before the watcher escalates to SIGKILL.
            left = max(0.0, view.pending_since + view.stop_timeout - now)
            return f"stopping {countdown(left)}", "stopping"
        if view.health in ("starting", "unhealthy"):
            return view.health, view.health
        return "running", RUNNING
    waiting = view.waiting_for
    if waiting:
        more = f" +{len(waiting) - 1}" if len(waiting) > 1 else ""
        return f"waiting for {waiting[0]}{more}", "held"
    if view.starting or view.pending in ("start", "restart"):
        return "starting", "starting"
    if view.status == DEAD and view.next_restart_in_s is not None:
        return f"restart in {countdown(view.next_restart_in_s)}", "waiting"
    return view.status, view.status


def cells(view: ProcessView, facts: Facts | None, now: float) -> tuple:
    """One row's cells in ``COLUMN_KEYS`` order. Equal inputs give equal tuples (cheap diffs)."""
    label, style = status_label(view, now)
    cpu = "-" if facts is None or facts.cpu is None else f"{facts.cpu:.1f}"
    mem = humanize.size(facts.rss) if facts is not None else "-"
    status = Text(label, style=STYLES.get(style, ""))
    if view.changed and view.status == RUNNING:
        status.append(CHANGED, style="bold yellow")
    return (
        view.name,
        status,
        str(view.pid) if view.pid else "-",
        str(view.port) if view.port else "-",
        duration(view.uptime_s),
        str(view.restarts),
        cpu,
        mem,
    )


def content_widths(rows: Iterable[tuple]) -> tuple[int, ...]:
    """Each column's width: its widest cell or its label."""
    widths = [cell_len(label) for _, label in COLUMNS]
    for row in rows:
        for i, value in enumerate(row):
            width = value.cell_len if isinstance(value, Text) else cell_len(value)
            if width > widths[i]:
                widths[i] = width
    return tuple(widths)


def fit(content: tuple[int, ...], available: int, padding: int) -> tuple[int, ...]:
    """Column widths for a table ``available`` cells wide: every column as wide as its
    content, NAME (the first) also takes what is left over."""
    rest = sum(content[1:]) + padding * len(content)
    return (max(content[0], available - rest), *content[1:])
