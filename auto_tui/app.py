"""``auto tui``: the process table, lifecycle keys and the live log pane.

Layering: the app only talks to ``auto_core.lifecycle.Api`` (or any object with the same
``snapshot()``/``log_path()``/``home`` surface, for snapshot tests). Everything that can block
(state reads, lifecycle calls that wait for a stop, psutil sampling, log reads) runs in thread
workers; the UI thread only applies keyed diffs and renders.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Self, cast

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.events import Resize
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.widget import MountError
from textual.widgets import DataTable, Footer, Input, Static

from auto_core.errors import AutoError
from auto_core.lifecycle import Api, Outcome
from auto_core.logtree import logs, merge
from auto_core.model import ProcessView
from auto_core.store.paths import Home
from auto_tui.details import DetailsScreen
from auto_tui.facts import History, Sampler
from auto_tui.feedback import in_tui_words, summary
from auto_tui.logpane import LogPane, LogView
from auto_tui.rows import COLUMN_KEYS, COLUMNS, cells, content_widths, fit
from auto_tui.screens import ConfirmScreen, HelpScreen, ProcessForm
from auto_tui.tail import MAX_BEHIND

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel
    from textual.screen import Screen


def _process_commands():
    # Imported on first use of the palette: textual.command costs ~35 ms of start-up.
    from auto_tui.commands import ProcessCommands

    return ProcessCommands


NEEDS_SELECTION = {"start", "stop", "restart", "edit", "remove", "details"}
EMPTY_HINT = "No processes yet: press [b]a[/b] to add a process."


class SnapshotReady(Message):
    """One poll's result, built in the worker thread."""

    def __init__(self, views: dict[str, ProcessView], rows: dict[str, tuple], watcher: int | None,
                 error: str | None, widths: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.views = views
        self.rows = rows
        self.widths = widths or content_widths(rows.values())  # the cells' widths, per column
        self.watcher = watcher
        self.error = error


class Notice(Message):
    """A notification requested from a worker thread."""

    def __init__(self, text: str, severity: SeverityLevel = "information") -> None:
        super().__init__()
        self.text = text
        self.severity = severity


class ProcessTable(DataTable):
    BINDINGS = [
        Binding("enter", "app.details", "Details", show=False),
        Binding("/", "app.filter", "Filter", show=False),
    ]

    _one_refresh = False  # inside update_cells: the refreshes update_cell asks for wait

    class Resized(Message):
        """The table has a new size: its columns fit it again."""

    def on_resize(self, event: Resize) -> None:
        self.post_message(self.Resized())

    def update_cells(self, changes: list[tuple[str, str, object]]) -> None:
        """``update_cell`` for each ``(row, column, value)``, then one refresh. Each
        ``update_cell`` asks for a whole-widget refresh, which costs more than the update
        itself (cache clears, dirty regions: most of a 500-row tick in which every uptime
        changes); those requests are held here and made once at the end."""
        self._one_refresh = True
        try:
            for row, column, value in changes:
                self.update_cell(row, column, value)
        finally:
            self._one_refresh = False
            if changes:
                self.refresh()

    def refresh(self, *regions: Region, repaint: bool = True, layout: bool = False,
                recompose: bool = False) -> Self:
        if self._one_refresh and not (regions or layout or recompose):
            return self
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)


class AutoApp(App[int]):
    """The full-screen app.

    Args:
        api: the lifecycle API (default: ``Api(home)``); snapshot tests pass a fixed data source.
        home: used when ``api`` is None.
        poll_interval: seconds between snapshots.
        clock: wall clock for relative times in the details view.
        sampler: CPU/memory sampler (default: psutil).
        history: keeps the last minutes of the samples, for the details view.
        log_lines: the log pane's line cap.
        cwd: default workdir of the add form.
    """

    CSS_PATH = "app.tcss"
    TITLE = "auto"
    COMMANDS = App.COMMANDS | {_process_commands}
    # The footer shows the process keys, ? and q: at 80 columns, more would push ? and q
    # out of sight. The help screen lists every key.
    BINDINGS = [
        Binding("s", "start", "Start"),
        Binding("x", "stop", "Stop"),
        Binding("r", "restart", "Restart"),
        Binding("a", "add", "Add"),
        Binding("e", "edit", "Edit"),
        Binding("d", "remove", "Remove"),
        Binding("S", "start_all", "Start all", show=False),
        Binding("X", "stop_all", "Stop all", show=False),
        Binding("W", "start_watcher", "Start the watcher", show=False),
        Binding("f", "toggle_follow", "Follow", show=False),
        Binding("w", "toggle_wrap", "Wrap", show=False),
        Binding("L", "toggle_all_logs", "All logs", show=False),
        Binding("tab", "switch_focus", "Focus", show=False, priority=True),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    selected: reactive[str | None] = reactive(None, bindings=True)

    def __init__(
        self,
        api: Api | None = None,
        *,
        home: Home | None = None,
        poll_interval: float = 0.5,
        clock: Callable[[], float] = time.time,
        sampler: Sampler | None = None,
        history: History | None = None,
        log_lines: int = 1000,
        cwd: str | None = None,
    ) -> None:
        super().__init__()
        self.api = api if api is not None else Api(
            home, warn=self._warn, say=lambda text: self._warn(text, "information"))
        self.poll_interval = poll_interval
        self.clock = clock
        self.sampler = sampler or Sampler()
        self.history = history or History()
        self.log_lines = log_lines
        self.cwd = cwd or os.getcwd()
        self.views: dict[str, ProcessView] = {}
        self.rows: dict[str, tuple] = {}
        self.name_filter = ""
        self._shown: dict[str, tuple] = {}
        self._content: tuple[int, ...] = content_widths(())  # column content widths, grow-only
        self._latest: tuple[int, ...] = self._content  # of the last snapshot
        self._widths: tuple[int, ...] = ()  # the table's columns now
        self._wake = threading.Event()
        self._consumed = threading.Event()
        self._stopping = threading.Event()
        self._last_warning: tuple[str, float] = ("", 0.0)
        self._pane: LogPane | None = None
        self._polled = False  # a snapshot was applied

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("auto", id="header")
        yield Input(placeholder="filter by name (enter keeps it, escape clears)", id="table-filter")
        yield ProcessTable(id="table", cursor_type="row", zebra_stripes=True)
        yield Static(EMPTY_HINT, id="empty")
        self._pane = LogPane(self._resolve_log, max_lines=self.log_lines, runs_of=self._runs_of,
                             merger=self._merger, id="logpane")
        yield self._pane

    def _mount_footer(self) -> None:
        # The Footer (a widget per key) costs ~90 ms before the first frame: mount it just after.
        try:
            self.screen.mount(Footer(compact=True))
        except MountError:
            return  # quitting before the first frame settled
        # A Footer mounted late shows nothing until the bindings change: tell it they did.
        self.call_after_refresh(self.refresh_bindings)

    def on_mount(self) -> None:
        self._set_columns(self._content)
        self.query_one("#table-filter").display = False
        self.query_one("#log-search").display = False
        self.query_one("#empty").display = False
        self.query_one(LogPane).show(None)
        self.query_one(ProcessTable).focus()
        self._bring_watcher()
        self._poll()
        self.call_after_refresh(self._mount_footer)

    @work(thread=True, group="watcher", exit_on_error=False)
    def _bring_watcher(self) -> None:
        """The watcher is what keeps services alive and carries out the keys' actions: start
        one when none runs, as every CLI command that needs one does."""
        ensure = getattr(self.api, "ensure_watcher", None)
        if ensure is None:
            return
        try:
            ensure()
        except Exception as exc:  # shown, never fatal: the table still works without it
            self.post_message(Notice(f"cannot start the watcher: {exc}", "error"))
        self.refresh_now()

    def on_unmount(self) -> None:
        self._shutdown_workers()

    def _shutdown_workers(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._consumed.set()
        if self._pane is not None:
            self._pane.stop()

    # --- polling ---------------------------------------------------------------------------

    @work(thread=True, group="snapshot", exit_on_error=False)
    def _poll(self) -> None:
        """Fetch, hand over, wait for the UI to apply it, sleep: polls never overlap."""
        while not self._stopping.is_set():
            message = self._fetch()
            self._consumed.clear()
            self.post_message(message)
            # Bounded waits: a message posted while the app closes is never consumed.
            while not self._consumed.wait(0.2):
                if self._stopping.is_set():
                    return
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def _fetch(self) -> SnapshotReady:
        error = None
        views: dict[str, ProcessView] | None = None
        try:
            views = {v.name: v for v in self.api.snapshot()}
        except AutoError as exc:
            error = str(exc)
        except Exception as exc:  # anything else is shown, never fatal
            error = f"cannot read the state: {exc}"
        try:
            watcher = self.api.watcher()
        except Exception:
            watcher = None
        if views is None:
            return SnapshotReady(self.views, self.rows, watcher, error)
        try:
            facts = self.sampler.sample({v.pid: v.create_time for v in views.values() if v.pid})
        except Exception:
            facts = {}
        now = self.clock()
        rows = {name: cells(v, facts.get(v.pid) if v.pid else None, now)
                for name, v in views.items()}
        self.history.add({name: (v.pid, v.create_time, facts[v.pid]) for name, v in views.items()
                          if v.pid and v.pid in facts})
        self.history.keep(set(views))
        return SnapshotReady(views, rows, watcher, error)

    def refresh_now(self) -> None:
        """Ask the poller for a snapshot now (after an action)."""
        self._wake.set()

    @on(SnapshotReady)
    def _on_snapshot(self, message: SnapshotReady) -> None:
        try:
            self.views, self.rows = message.views, message.rows
            self._polled = True
            self._latest = message.widths
            self._apply()
            self._set_header(message.watcher, message.error)
            details = self.screen
            if isinstance(details, DetailsScreen) and details.view.name in self.views:
                name = details.view.name
                details.update(self.views[name], self.history.series(name))
            if message.error:
                self._warn(message.error, "error")
        except NoMatches:
            pass  # the screen is already gone: the app is closing
        finally:
            self._consumed.set()

    def _set_header(self, watcher: int | None, error: str | None) -> None:
        running = sum(1 for v in self.views.values() if v.status == "running")
        # Most important first: a narrow terminal cuts the home path, not the watcher state.
        text = Text.assemble((" auto ", "bold reverse"), " ")
        if watcher:
            text.append("watcher running" + (f" (pid {watcher})" if watcher > 0 else ""))
        else:
            text.append("watcher not running", style=f"bold {self.current_theme.warning or 'yellow'}")
            text.append(": W starts it")
        text.append(f"  ·  {running}/{len(self.views)} running")
        if error:
            text.append("  ·  ")
            text.append("state unreadable", style="bold red")
        text.append(f"  ·  {self.api.home.root}")
        self.query_one("#header", Static).update(text)

    def _apply(self) -> None:
        """Keyed diff of ``self.rows`` into the table; keeps the cursor on its process."""
        table = self.query_one(ProcessTable)
        needle = self.name_filter.lower()
        wanted = {n: c for n, c in self.rows.items() if needle in n.lower()}
        # The row under the cursor now: a key that moved it may not have been reported yet.
        keep = self.selected
        if table.row_count:
            keep = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        added = False
        content = tuple(map(max, self._content, self._latest))
        with self.batch_update():
            if self._fit(content) != self._widths:
                self._content = content
                self._set_columns(content)  # empties the table: the loop below fills it again
            for name in [n for n in self._shown if n not in wanted]:
                table.remove_row(name)
                del self._shown[name]
            changes: list[tuple[str, str, object]] = []
            for name, row in wanted.items():
                old = self._shown.get(name)
                if old is None:
                    table.add_row(*row, key=name)
                    added = True
                elif old != row:
                    changes.extend((name, column, after) for column, before, after
                                   in zip(COLUMN_KEYS, old, row, strict=True) if before != after)
                self._shown[name] = row
            table.update_cells(changes)
            if added:
                table.sort("name")
            if keep in self._shown:
                index = table.get_row_index(keep)
                if index != table.cursor_row:
                    table.move_cursor(row=index, animate=False, scroll=False)
        empty = self.query_one("#empty", Static)
        if not self.rows:
            empty.update(EMPTY_HINT)
        elif not wanted:
            empty.update(f"No process matches {self.name_filter!r} (escape clears the filter).")
        # The table stays (header only) so focus never jumps when the last row goes.
        empty.display = not wanted
        self._sync_selection()

    def _fit(self, content: tuple[int, ...]) -> tuple[int, ...]:
        """Column widths for the table's width now: each as wide as its content, NAME also
        takes the slack (one cell is kept for the scrollbar that more rows bring)."""
        table = self.query_one(ProcessTable)
        if not table.size.width:
            return content  # not laid out yet
        return fit(content, table.size.width - 1, 2 * table.cell_padding)

    def _set_columns(self, content: tuple[int, ...]) -> None:
        """(Re)create the columns at the widths ``content`` fits to; the rows go with them.
        Only when a width changes: a wider cell than ever before, a resize."""
        table = self.query_one(ProcessTable)
        widths = self._fit(content)
        table.clear(columns=True)
        for (key, label), width in zip(COLUMNS, widths, strict=True):
            table.add_column(label, key=key, width=width)
        self._widths = widths
        self._shown.clear()

    @on(ProcessTable.Resized)
    def _refit(self) -> None:
        # Content widths start again from what is shown now (they only grow in between).
        self._content = self._latest
        try:
            self._apply()
        except NoMatches:
            pass  # closing

    def _sync_selection(self) -> None:
        table = self.query_one(ProcessTable)
        name = None
        if table.row_count:
            name = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if name != self.selected:
            self.selected = name
        self.query_one(LogPane).show(name)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._sync_selection()

    def _runs_of(self, name: str) -> list[logs.Run]:
        return self.api.runs(name)

    def _merger(self) -> merge.Merged:
        """Every process's log as one stream, as ``auto log -f`` follows them: the processes
        are those of the last snapshot, so one added or removed joins or leaves the view."""

        def recorded(name: str) -> str | None:
            # A run that began after the view opened: its recorded file, not an older one.
            view = self.views.get(name)
            path = view.log_path if view is not None else None
            return path if path and os.path.isfile(path) else None

        return merge.Merged(lambda: list(self.views), self._resolve_log, recorded, max_behind=MAX_BEHIND)

    def _resolve_log(self, name: str):
        from pathlib import Path

        try:
            path = self.api.log_path(name)
        except (AutoError, OSError):
            return None
        return Path(path) if path else None

    # --- notifications from any thread -----------------------------------------------------

    def _warn(self, text: str, severity: SeverityLevel = "warning") -> None:
        # The Api warns on every read of a broken state file: say it once, not twice a second.
        last, when = self._last_warning
        now = time.monotonic()
        if text == last and now - when < 60:
            return
        self._last_warning = (text, now)
        self.post_message(Notice(text, severity))

    @on(Notice)
    def _on_notice(self, message: Notice) -> None:
        # markup=False: a message quotes commands and log lines, whose brackets are not markup.
        self.notify(in_tui_words(message.text), severity=message.severity, markup=False,
                    timeout=6 if message.severity != "error" else 10)

    # --- lifecycle actions -----------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("switch_focus", "help", "quit"):
            return True
        if len(self.screen_stack) > 1:
            return False  # a modal is open: its own keys only
        if action in NEEDS_SELECTION and not self.selected:
            return None
        return True

    @work(thread=True, group="actions", exit_on_error=False)
    def _act(self, what: str, call: Callable[[], object],
             say: Callable[[object], str | None] | None = None) -> None:
        """Run a blocking lifecycle call; its result or its error becomes one toast
        (``say`` may word a result itself; "" when another toast already said it)."""
        try:
            result = call()
        except AutoError as exc:
            self.post_message(Notice(str(exc), "error"))
        except OSError as exc:
            self.post_message(Notice(f"{what}: {exc.strerror or exc}", "error"))
        except Exception as exc:
            self.post_message(Notice(f"{what} failed: {exc}", "error"))
        else:
            text = say(result) if say is not None else None
            if text:
                self.post_message(Notice(text))
            elif text is None:
                outcomes = result if isinstance(result, list) else [result]
                text, ok = summary(what, [o for o in outcomes if isinstance(o, Outcome)])
                self.post_message(Notice(text, "information" if ok else "error"))
        finally:
            self.refresh_now()

    def run_verb(self, verb: str, name: str) -> None:
        """Used by keys and the command palette: one process's ``start``, ``stop``,
        ``restart``, ``edit``, ``remove``, ``details`` or ``logs``. The row shows the request
        under way (starting, stopping); the toast comes with the result."""
        if verb in ("logs", "edit", "remove", "details"):
            self._select(name)
            if verb == "logs":
                self.query_one(LogView).focus()
            else:
                getattr(self, f"action_{verb}")()
            return
        calls: dict[str, Callable[[list[str]], object]] = {
            "start": self.api.start, "stop": self.api.stop, "restart": self.api.restart}
        self._act(f"{verb} {name}", partial(calls[verb], [name]))

    def _select(self, name: str) -> None:
        table = self.query_one(ProcessTable)
        if name in self._shown:
            table.move_cursor(row=table.get_row_index(name), animate=False)
            self._sync_selection()

    def action_start(self) -> None:
        if self.selected:
            self.run_verb("start", self.selected)

    def action_stop(self) -> None:
        if self.selected:
            self.run_verb("stop", self.selected)

    def action_restart(self) -> None:
        if self.selected:
            self.run_verb("restart", self.selected)

    def action_start_all(self) -> None:
        self._act("start all", self.api.start_all)

    def action_stop_all(self) -> None:
        def answered(ok: bool | None) -> None:
            if ok:
                self._act("stop all", self.api.stop_all)

        self.push_screen(ConfirmScreen(f"Stop all {len(self.views)} processes?"), answered)

    def action_start_watcher(self) -> None:
        ensure = getattr(self.api, "ensure_watcher", None)
        if ensure is None:
            return

        def start() -> tuple[int | None, int | None]:
            return self.api.watcher(), ensure()

        def say(result: object) -> str:
            # A watcher it started, the Api announces ("started the watcher ...") itself.
            before, pid = cast("tuple[int | None, int | None]", result)
            return f"the watcher is already running (pid {pid})" if before else ""

        self._act("start the watcher", start, say)

    def action_remove(self) -> None:
        name = self.selected
        if not name:
            return

        def answered(ok: bool | None) -> None:
            if ok:
                self._act(f"remove {name}", partial(self.api.remove, name))

        self.push_screen(ConfirmScreen(f"Stop and remove {name}? (its logs are kept)"), answered)

    def action_add(self) -> None:
        def done(values: dict | None) -> None:
            if values:
                self._act(f"add {values['name']}", partial(
                    self.api.add, values["name"], values["command"],
                    workdir=values["workdir"], port=values["port"],
                ))

        self.push_screen(ProcessForm(cwd=self.cwd, blink=not self.is_headless), done)

    def action_edit(self) -> None:
        view = self.views.get(self.selected or "")
        if view is None:
            return

        def done(values: dict | None) -> None:
            if not values:
                return
            changes: dict = {}
            if values["command"] != view.command:
                changes["command"] = values["command"]
            if values["workdir"] != view.workdir:
                changes["workdir"] = values["workdir"]
            if values["port"] != view.port:
                changes["port"] = values["port"] if values["port"] is not None else "off"
            if not changes:
                self.notify(f"{view.name}: nothing changed")
                return

            def say(outcome: object) -> str:
                # The Api's message advises a CLI command; here it is a key.
                current = self.views.get(view.name)
                running = current is not None and current.status == "running"
                return f"updated {view.name}; takes effect at its next start" + (" (r restarts it)" if running else "")

            self._act(f"update {view.name}", partial(self.api.update, view.name, **changes), say)

        self.push_screen(ProcessForm(view, cwd=self.cwd, blink=not self.is_headless), done)

    def action_details(self) -> None:
        view = self.views.get(self.selected or "")
        if view is not None:
            pane = self.query_one(LogPane)
            shown = str(pane.path) if pane.path and pane.name_shown == view.name else None
            self.push_screen(DetailsScreen(view, shown, self.clock, runs_of=self._runs_of,
                                           usage=self.history.series(view.name), others=lambda: self.views,
                                           run_verb=self.run_verb))

    # --- view actions ----------------------------------------------------------------------

    def action_toggle_follow(self) -> None:
        pane = self.query_one(LogPane)
        pane.follow = not pane.follow

    def action_switch_focus(self) -> None:
        if len(self.screen_stack) > 1:
            self.screen.focus_next()  # inside a modal, tab moves between its fields
            return
        table = self.query_one(ProcessTable)
        if self.focused is table:
            self.query_one(LogView).focus()
        else:
            table.focus()

    def action_toggle_all_logs(self) -> None:
        if not self._polled:
            return  # the processes are not known yet: all of each log would look new
        pane = self.query_one(LogPane)
        pane.show_merged(not pane.merged)

    def action_toggle_wrap(self) -> None:
        pane = self.query_one(LogPane)
        pane.wrap = not pane.wrap

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # Textual's "Keys" panel lists bindings only: the help screen replaces it.
        for command in super().get_system_commands(screen):
            if command.title != "Keys":
                yield command
        yield SystemCommand("Help", "every key, and how auto keeps services alive", self.action_help)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_filter(self) -> None:
        box = self.query_one("#table-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#table-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.name_filter = event.value.strip()
        self._apply()

    @on(Input.Submitted, "#table-filter")
    def _filter_done(self) -> None:
        box = self.query_one("#table-filter", Input)
        box.display = bool(box.value)
        self.query_one(ProcessTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#table-filter", Input)
        if box.display or self.name_filter:
            box.value = ""
            box.display = False
            self.name_filter = ""
            self._apply()
            self.query_one(ProcessTable).focus()

    async def action_quit(self) -> None:
        self._shutdown_workers()
        self.exit(0)


def run(home: Home) -> int:
    """Entry point of ``auto tui``: open the app on ``home``; services keep running on quit."""
    app = AutoApp(home=home)
    app.run()
    return app.return_code or 0
