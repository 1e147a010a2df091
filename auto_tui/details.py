"""The details screen: one process's definition and runtime state, its CPU and memory over the
current run's last few minutes (sparklines of the samples the table's refresh takes anyway) and
its recent runs (when each began, how long it lasted, how it ended)."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from auto_core import humanize
from auto_core.humanize import countdown, duration
from auto_core.logtree import logs, runends
from auto_core.model import RUNNING, ProcessView
from auto_core.views import describe_exit
from auto_tui.facts import SPAN
from auto_tui.rows import is_up, status_label
from auto_tui.screens import footer
from auto_tui.spark import ZeroSparkline

STRIP = 30  # runs in the strip of blocks
LISTED = 5  # runs described in words
RUNS_EVERY = 30  # seconds between reads of the runs while nothing else changes


def health_rows(view: ProcessView, not_up: list[str], now: float) -> list[tuple[str, str]]:
    """The check, its state and its last result; what it starts after and which of those are
    not up (``not_up``). Nothing for a service without either."""
    rows = []
    if view.health_check:
        rows.append(("health", f"{view.health or 'not running'}: {view.health_check}"))
        last = view.last_health or {}
        at = last.get("time")
        if isinstance(at, (int, float)) and not isinstance(at, bool):
            rows.append(("last check", f"{'ok' if last.get('ok') else 'failed'} {duration(max(0.0, now - at))} ago"
                                       + (f": {last['detail']}" if last.get("detail") else "")))
    if view.after:
        rows.append(("after", ", ".join(view.after) + (f"; not up: {', '.join(not_up)}" if not_up else "; all up")))
    return rows


def details_table(view: ProcessView, log_path: str | None, now: float,
                  not_up: list[str] | None = None) -> Table:
    """Everything known about one process as ``key  value`` rows; a long value (a path, a
    command) wraps under itself, never under the keys. ``not_up``: the services it comes
    after that are not up."""
    label, _ = status_label(view, now)
    last = view.last_exit or {}
    exit_text = describe_exit(view.last_exit)
    if isinstance(last.get("at"), (int, float)):
        exit_text += f" ({duration(max(0.0, now - last['at']))} ago)"
    backoff = f"attempt {view.restart_attempt}, base {view.backoff_base:g}s, max {view.backoff_max:g}s"
    if view.next_restart_in_s is not None:
        backoff += f", next restart in {countdown(view.next_restart_in_s)}"
    env = view.env or {}
    rows = [
        ("name", view.name),
        ("status", label),
        *([("changed", f"{', '.join(view.changed)} since it started: a restart (r) applies "
                       f"{'it' if len(view.changed) == 1 else 'them'}")]
          if view.changed and view.status == RUNNING else []),
        ("pid", str(view.pid or "-")),
        ("port", str(view.port or "-")),
        ("uptime", duration(view.uptime_s)),
        ("restarts", str(view.restarts)),
        *health_rows(view, not_up or [], now),
        ("command", view.command),
        ("workdir", view.workdir or "-"),
        ("log", log_path or view.log_path or "-"),
        ("last exit", exit_text),
        ("backoff", backoff),
        ("restart every", duration(view.restart_every) if view.restart_every else "-"),
        ("stop", f"{view.stop_signal}, then SIGKILL after {view.stop_timeout:g}s"),
        ("env", "\n".join(f"{k}={shlex.quote(v) if v else ''}" for k, v in sorted(env.items())) or "-"),
    ]
    table = Table.grid(padding=(0, 2))
    table.add_column(justify="right", style="bold", no_wrap=True, min_width=KEY_WIDTH)
    table.add_column(overflow="fold")  # a path with no spaces still breaks at the edge
    for key, value in rows:
        table.add_row(key, value)
    return table


KEY_WIDTH = len("restart every")  # the widest key: the sections below line up with it


@dataclass(frozen=True)
class RunLine:
    """One run as the details view shows it."""

    number: int  # as `auto log NAME --run N` numbers runs: -1 is the current or last
    began: float  # seconds ago
    lasted: float | None
    ended: str  # as `auto log NAME --runs` says it: running, exit 1, SIGKILL, stopped (stop) ...


def recent_runs(runs: list[logs.Run], view: ProcessView, now: float, count: int = STRIP) -> list[RunLine]:
    """The last ``count`` of ``runs`` (oldest first), newest first. The newest is the current
    or last run: each start makes a new file."""
    alive = view.status == RUNNING
    last_exit = describe_exit(view.last_exit) if view.last_exit else None
    lines = []
    for index in range(len(runs) - 1, max(-1, len(runs) - 1 - count), -1):
        run = runs[index]
        current = index == len(runs) - 1
        how = runends.how_ended(run, current=current, alive=alive, last_exit=last_exit)
        lines.append(RunLine(index - len(runs), max(0.0, now - run.started.timestamp()),
                             runends.lasted(run, running=current and alive, now=now),
                             runends.short_end(how, run)))
    return lines


def end_style(ended: str) -> str:
    """Green: running; dim: ended on purpose (a stop, a restart, exit 0); yellow: unknown;
    red: it failed (an exit code, a signal, not started)."""
    if ended == "running":
        return "green"
    if ended.endswith(("(stop)", "(restart)")) or ended in ("exit 0", "stopped"):
        return "dim"
    if ended in ("-", "unknown"):
        return "yellow"
    return "bold red"


def runs_text(lines: list[RunLine], listed: int = LISTED) -> Text:
    """A strip of blocks, one per run (oldest left, coloured by how it ended), then the newest
    ``listed`` runs in words."""
    if not lines:
        return Text("no run has a log yet", style="dim")
    text = Text()
    for line in reversed(lines):
        text.append("█", style=end_style(line.ended))
    text.append(f"  last {len(lines)} run{'' if len(lines) == 1 else 's'}, newest right\n", style="dim")
    for line in lines[:listed]:
        lasted = "-" if line.lasted is None else duration(line.lasted)
        text.append(f"{line.number:>4}  began {duration(line.began)} ago, lasted {lasted}: ")
        text.append(line.ended, style=end_style(line.ended))
        text.append("\n")
    text.rstrip()
    return text


def usage_text(points: list[float], now_text: Callable[[float], str]) -> str:
    if len(points) < 2:  # one point is no line yet: the sparkline stays blank too
        return "no samples yet"
    return f"{now_text(points[-1])} (max {now_text(max(points))})"


class DetailsScreen(ModalScreen[None]):
    """The full definition and runtime state of one process; ``update`` brings it up to date
    (the app calls it with each refresh)."""

    # r restarts it here too: the "changed" row says a restart applies the new definition.
    BINDINGS = [Binding("escape,enter,q", "close", "Close"), Binding("r", "restart", "Restart")]

    class RunsRead(Message):
        def __init__(self, text: Text) -> None:
            super().__init__()
            self.text = text

    def __init__(self, view: ProcessView, log_path: str | None, clock: Callable[[], float] = time.time,
                 runs_of: Callable[[str], list[logs.Run]] | None = None,
                 usage: tuple[list[float], list[float]] = ([], []),
                 others: Callable[[], Mapping[str, ProcessView]] = dict,
                 run_verb: Callable[[str, str], None] | None = None) -> None:
        super().__init__()
        self.view = view
        self.others = others  # every process's view now: what it starts after, up or not
        self.log_path = log_path
        self.clock = clock
        self.runs_of = runs_of
        self.usage = usage
        self.run_verb = run_verb  # the app's: the keys' and the command palette's way to act
        self._runs_key: tuple | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="details"):
            yield Label(f"Details: {self.view.name}", id="details-title")
            yield Static(id="details-body")
            # A run's own: each run starts a new history, and a stopped one has none.
            yield Label(f"CPU and memory, this run (at most the last {duration(SPAN)})", classes="section")
            for key, label in (("cpu", "cpu %"), ("mem", "memory")):
                with Horizontal(classes="usage"):
                    yield Static(label, classes="key")
                    yield ZeroSparkline([], id=f"{key}-spark")
                    yield Static("", id=f"{key}-now", classes="now")
            yield Label("Runs", classes="section")
            yield Static("reading the logs...", id="runs")
        yield footer()

    def on_mount(self) -> None:
        self.update(self.view, self.usage)

    def update(self, view: ProcessView, usage: tuple[list[float], list[float]]) -> None:
        """Show ``view`` and the CPU % and memory points ``usage``; read the runs again when
        a run began or ended, and every ``RUNS_EVERY`` seconds (the current run's time)."""
        self.view, self.usage = view, usage
        try:
            views = self.others()
            not_up = [n for n in view.after if n not in views or not is_up(views[n])]
            body = details_table(view, self.log_path, self.clock(), not_up)
            self.query_one("#details-body", Static).update(body)
            alive = view.status == RUNNING
            cpu, mem = usage if alive else ([], [])  # not the last run's samples: it is over
            self.query_one("#cpu-spark", ZeroSparkline).data = cpu
            self.query_one("#mem-spark", ZeroSparkline).data = mem
            self.query_one("#cpu-now", Static).update(usage_text(cpu, lambda v: f"{v:.1f}") if alive else "-")
            self.query_one("#mem-now", Static).update(usage_text(mem, lambda v: humanize.size(int(v))) if alive else "-")
        except NoMatches:
            return  # closing
        key = (view.log_path, view.status, view.restarts, view.pid, int(self.clock() // RUNS_EVERY))
        if key != self._runs_key and self.runs_of is not None:
            self._runs_key = key
            self._read_runs(view)
        elif self.runs_of is None:
            self.query_one("#runs", Static).update(runs_text([]))

    @work(thread=True, exclusive=True, group="details-runs", exit_on_error=False)
    def _read_runs(self, view: ProcessView) -> None:
        runs_of = self.runs_of
        try:
            runs = runs_of(view.name) if runs_of is not None else []
            lines = recent_runs(runs, view, self.clock())
        except Exception as exc:  # a vanished file, a removed process: say so in the view
            self.post_message(self.RunsRead(Text(f"cannot read the runs: {exc}", style="red")))
            return
        self.post_message(self.RunsRead(runs_text(lines)))

    @on(RunsRead)
    def _runs_read(self, message: RunsRead) -> None:
        self.query_one("#runs", Static).update(message.text)

    def action_restart(self) -> None:
        if self.run_verb is not None:
            self.run_verb("restart", self.view.name)

    def action_close(self) -> None:
        self.dismiss(None)
