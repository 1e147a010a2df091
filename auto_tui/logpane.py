"""The log pane: the highlighted process's current log, or every process's merged (``L``),
followed live.

The tail runs in a thread worker (``tail.run_tail``, ``tail.run_merged``); lines arrive in
batches as messages (``Opened``, ``NewLines``, ...) with their ``rich.text.Text`` already built
off the UI thread.
Colours (SGR) are rendered; every other escape and control character is stripped first
(``logs.sanitize``), so nothing raw reaches the terminal.
"""

from __future__ import annotations

import threading
import zlib
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, RichLog

from auto_core.logtree import logs
from auto_tui.tail import Divider, Merger, run_merged, run_tail

OPEN_LINES = 100  # shown when a log is opened: a few screens' worth, cheap to render
# `auto log`'s colours for process names (SGR codes), in its order: a process has the same
# colour in both. As Rich colours: 31 to 36 are standard colours 1 to 6, 91 to 96 bright 9 to 14.
PALETTE = ("36", "33", "32", "35", "31", "34", "96", "93", "92", "95", "91", "94")
NAME_STYLES = tuple(f"bold color({int(c) - 30 if int(c) < 90 else int(c) - 82})" for c in PALETTE)


class Entry(NamedTuple):
    """A line of the pane."""

    lowered: str  # its plain text, lower-cased, for the search
    text: Text  # as drawn
    indent: int = 0  # a wrapped line's continuations start here (the all-services view's text column)


def render_line(item: str | Divider) -> Entry:
    if isinstance(item, Divider):
        text = Text(f"──── {item.text} ────", style="bold magenta")
    else:
        text = Text.from_ansi(logs.sanitize(item, keep_sgr=True), end="")
        text.expand_tabs()
    return Entry(text.plain.lower(), text)


def name_style(name: str) -> str:
    """The stable colour of ``name``'s prefix in the all-services view (``auto log``'s)."""
    return NAME_STYLES[zlib.crc32(name.encode()) % len(NAME_STYLES)]


# The widest the all-services view's name column gets: a name may have 64 characters, which
# would leave an 80-column pane no room for the line. Longer names are cut with "…".
NAME_WIDTH = 16


def name_width(names: list[str]) -> int:
    """The name column's width for ``names``: the longest, at most ``NAME_WIDTH``."""
    return min(NAME_WIDTH, max(map(len, names), default=0))


def render_pair(item: tuple[str, str] | Divider, width: int) -> Entry:
    """A line of the all-services view: ``name | line``, the name padded or cut to ``width``
    and in its own colour (the search still finds the whole name)."""
    if isinstance(item, Divider):
        return render_line(item)
    name, line = item
    line_entry = render_line(line)
    shown = name if len(name) <= width else name[: max(0, width - 1)] + "…"
    prefix = f"{shown:<{width}} │ "
    return Entry(f"{name} │ ".lower() + line_entry.lowered,
                 Text.assemble((prefix, name_style(name)), line_entry.text), len(prefix))


def wrapped(entry: Entry) -> RenderableType:
    """``entry`` as drawn with wrapping on: its continuations under its text, not under its
    name (a grid of the prefix and the text: Rich's Text has no hanging indent)."""
    if not entry.indent:
        return entry.text
    grid = Table.grid()
    grid.add_column(width=entry.indent, no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row(entry.text[: entry.indent], entry.text[entry.indent :])
    return grid


class TailMessage(Message):
    """From a tail worker; ``generation`` tells a stale one (of a log no longer shown)."""

    def __init__(self, generation: int) -> None:
        super().__init__()
        self.generation = generation


class Opened(TailMessage):
    """A log opened at its end (``path`` None: the all-services view)."""

    def __init__(self, generation: int, path: Path | None, entries: list[Entry]) -> None:
        super().__init__(generation)
        self.path = path
        self.entries = entries


class RunShown(TailMessage):
    """An earlier run's last lines (``offset`` -1: the previous run, of ``total`` runs)."""

    def __init__(self, generation: int, offset: int, total: int, path: Path, entries: list[Entry]) -> None:
        super().__init__(generation)
        self.offset = offset
        self.total = total
        self.path = path
        self.entries = entries


class NewLines(TailMessage):
    """Lines written since the last batch; ``switched``: the file followed from now on."""

    def __init__(self, generation: int, entries: list[Entry], switched: Path | None = None) -> None:
        super().__init__(generation)
        self.entries = entries
        self.switched = switched


class BackToLive(TailMessage):
    """No earlier run to show: follow the current one again."""


class TailFailed(TailMessage):
    """The log could not be read; ``text`` says why."""

    def __init__(self, generation: int, text: str) -> None:
        super().__init__(generation)
        self.text = text


class LogView(RichLog):
    """A RichLog that tells its pane when the user scrolls up (which pauses follow)."""

    class ScrolledUp(Message):
        pass

    def _pause(self) -> None:
        if self.max_scroll_y > 0:
            self.post_message(self.ScrolledUp())

    def on_mouse_scroll_up(self) -> None:
        self._pause()

    def action_scroll_up(self) -> None:
        self._pause()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self._pause()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self._pause()
        super().action_scroll_home()


class LogPane(Vertical, can_focus=False):
    """Follows one process's log, or every process's merged (``merged``); ``follow`` and the
    line filter are its own state."""

    # Not in the footer (which keeps room for ? and q at 80 columns): the help screen lists them.
    BINDINGS = [
        Binding("/", "search", "Search log", show=False),
        Binding("left_square_bracket", "step_run(-1)", "Older run", key_display="[", show=False),
        Binding("right_square_bracket", "step_run(1)", "Newer run", key_display="]", show=False),
        Binding("escape", "clear_search", "Clear search", show=False),
    ]

    follow: reactive[bool] = reactive(True)
    wrap: reactive[bool] = reactive(False)  # long lines wrap instead of scrolling sideways

    def __init__(self, resolver: Callable[[str], Path | None], max_lines: int = 1000,
                 batch_lines: int = 200, runs_of: Callable[[str], list[logs.Run]] | None = None,
                 merger: Callable[[], Merger] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.resolver = resolver
        self.runs_of = runs_of  # the process's runs, oldest first (for [ and ])
        self.merger = merger  # a new merge of every process's log (the all-services view)
        self.merged = False  # the all-services view is shown
        self.merged_count = 0  # the logs it follows
        self.run_offset = 0  # 0: the current run, followed live; -1: the previous run; ...
        self.run_total = 0
        self.max_lines = max_lines  # what the pane keeps
        self.batch_lines = min(batch_lines, max_lines)  # opened with, and rendered per batch
        self.entries: deque[Entry] = deque(maxlen=max_lines)
        self.name_shown: str | None = None  # the highlighted process (kept while merged)
        self.path: Path | None = None
        self.query_text = ""
        self._generation = 0
        self._finished = False
        self._halt = threading.Event()
        self._drained = threading.Event()

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search the log (enter keeps it, escape clears)", id="log-search")
        yield LogView(max_lines=self.max_lines, id="log", wrap=False, min_width=20)

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    # --- which log -----------------------------------------------------------------------

    def _restart(self) -> tuple[int, threading.Event, threading.Event]:
        """Stop the tail worker and empty the pane: the next worker's generation and events."""
        self.run_offset = 0
        self._halt.set()
        self._halt = threading.Event()
        self._drained = threading.Event()
        self._drained.set()
        self._generation += 1
        self.entries.clear()
        self.view.clear()
        self.path = None
        self._set_title()
        return self._generation, self._halt, self._drained

    def show(self, name: str | None, force: bool = False) -> None:
        """Follow ``name``'s log (None: nothing); restarts the tail worker. While the
        all-services view is shown, ``name`` is only remembered."""
        if (name == self.name_shown and not force) or self._finished:
            return
        self.name_shown = name
        if self.merged:
            self._set_title()
            return
        generation, halt, drained = self._restart()
        if name is not None:
            self._tail(name, generation, halt, drained)

    def show_merged(self, merged: bool) -> None:
        """Show every process's log, merged (or back to the highlighted one's)."""
        if self._finished or self.merger is None or merged == self.merged:
            return
        self.merged = merged
        if not merged:
            self.show(self.name_shown, force=True)
            return
        self.merged_count = 0
        generation, halt, drained = self._restart()
        self._tail_merged(generation, halt, drained)

    def action_step_run(self, delta: int) -> None:
        self.step_run(delta)

    def step_run(self, delta: int) -> None:
        """Show an older (``delta`` < 0) or newer run; back at the current run, follow it live."""
        name = self.name_shown
        if name is None or self._finished or self.runs_of is None or self.merged:
            return
        offset = min(0, self.run_offset + delta)
        if offset == self.run_offset:
            return
        if offset == 0:
            self.show(name, force=True)
            return
        self._halt.set()  # the live tail stops while an earlier run is shown
        self._generation += 1
        self._load_run(name, offset, self._generation)

    @work(thread=True, group="tail", exit_on_error=False)
    def _load_run(self, name: str, offset: int, generation: int) -> None:
        runs_of = self.runs_of
        if runs_of is None:  # step_run, the only caller, checked it
            return
        try:
            runs = runs_of(name)
            offset = max(offset, 1 - len(runs))  # no further back than the oldest run
            run = runs[len(runs) - 1 + offset] if runs else None
            lines = logs.tail_run(run, self.max_lines) if run is not None and offset < 0 else None
        except Exception as exc:  # a corrupt .gz or a vanished file: say so, keep going
            self.post_message(TailFailed(generation, f"log of {name}: {exc}"))
            return
        if run is None or lines is None:  # no run: no lines either
            self.post_message(BackToLive(generation))
            return
        entries = [render_line(line) for line in lines]
        self.post_message(RunShown(generation, offset, len(runs), run.path, entries))

    def stop(self) -> None:
        """End the tail thread for good (the app is closing)."""
        self._finished = True
        self._halt.set()

    @work(thread=True, group="tail", exit_on_error=False)
    def _tail(self, name: str, generation: int, stop: threading.Event, ready: threading.Event) -> None:
        def opened(path: Path, lines: list[str]) -> None:
            self.post_message(Opened(generation, path, [render_line(line) for line in lines]))

        def arrived(items: list[str | Divider]) -> None:
            switched = [i.path for i in items if isinstance(i, Divider) and i.path]
            self.post_message(NewLines(generation, [render_line(item) for item in items],
                                       switched[-1] if switched else None))

        try:
            run_tail(lambda: self.resolver(name), stop, ready, opened, arrived, self.batch_lines,
                     open_lines=OPEN_LINES)
        except Exception as exc:  # a tail problem must not take the app down
            self.post_message(TailFailed(generation, f"log of {name}: {exc}"))

    @work(thread=True, group="tail", exit_on_error=False)
    def _tail_merged(self, generation: int, stop: threading.Event, ready: threading.Event) -> None:
        width = 0  # of the name column: grows with the longest name seen, up to NAME_WIDTH

        def render(names: list[str], items: list[tuple[str, str] | Divider]) -> list[Entry]:
            nonlocal width
            width = max(width, name_width([*names, *(item[0] for item in items if not isinstance(item, Divider))]))
            self.merged_count = len(names)
            return [render_pair(item, width) for item in items]

        def opened(names: list[str], pairs: list[tuple[str, str]]) -> None:
            self.post_message(Opened(generation, None, render(names, list(pairs))))

        def arrived(names: list[str], items: list[tuple[str, str] | Divider]) -> None:
            self.post_message(NewLines(generation, render(names, items)))

        try:
            merger = self.merger
            if merger is not None:  # show_merged, the only caller, checked it
                run_merged(merger(), stop, ready, opened, arrived, self.batch_lines, open_lines=OPEN_LINES)
        except Exception as exc:  # a tail problem must not take the app down
            self.post_message(TailFailed(generation, f"logs: {exc}"))

    def _current(self, message: TailMessage) -> bool:
        """``message`` is for the log shown now; if so, its worker may send the next batch
        (this handler renders it before any later message is handled)."""
        message.stop()
        if message.generation != self._generation or self._finished:
            return False
        self._drained.set()
        return True

    @on(Opened)
    def _opened(self, message: Opened) -> None:
        if self._current(message):
            self._replace(message.path, message.entries)

    @on(RunShown)
    def _run_shown(self, message: RunShown) -> None:
        if self._current(message):
            self.run_offset, self.run_total = message.offset, message.total
            self._replace(message.path, message.entries)

    @on(NewLines)
    def _new_lines(self, message: NewLines) -> None:
        if self._current(message):
            self._write(message.entries)
            if message.switched is not None:
                self.path = message.switched
            self._set_title()

    @on(BackToLive)
    def _back_to_live(self, message: BackToLive) -> None:
        if self._current(message):
            self.show(self.name_shown, force=True)

    @on(TailFailed)
    def _failed(self, message: TailFailed) -> None:
        if self._current(message):
            self.app.notify(message.text, severity="error", markup=False)

    def _replace(self, path: Path | None, entries: list[Entry]) -> None:
        self.path = path
        self.entries.clear()
        self.view.clear()
        self._set_title()
        self._write(entries)

    def _write(self, entries: list[Entry]) -> None:
        self.entries.extend(entries)
        # Only the last max_lines can stay in the widget: skip rendering the rest.
        for entry in entries[-self.max_lines :]:
            if self._matches(entry.lowered):
                self.view.write(self._drawn(entry), scroll_end=self.follow)

    # --- follow and search ---------------------------------------------------------------

    def _set_title(self) -> None:
        if self.merged:
            self.border_title = f"log: all {self.merged_count} processes (L: the highlighted one)"
        elif self.name_shown is None:
            self.border_title = "log"
        else:
            file = self.path.name if self.path else "no log yet"
            self.border_title = f"log: {self.name_shown} · {file}"
        if self.name_shown is not None and self.run_offset < 0 and not self.merged:
            # Numbered as `auto log NAME --run N` numbers them: -1 is the current run.
            self.border_title += f" · run {self.run_offset - 1} of {self.run_total} ([ older, ] newer)"
        flags = [] if self.follow else ["paused (f follows)"]
        if self.wrap:
            flags.append("wrapped (w)")
        if self.query_text:
            flags.append(f"search: {self.query_text}")
        self.border_subtitle = " · ".join(flags)
    def watch_follow(self, follow: bool) -> None:
        self.view.auto_scroll = follow
        if follow:
            self.view.scroll_end(animate=False)
        self._set_title()

    def watch_wrap(self, wrap: bool) -> None:
        self.view.wrap = wrap
        self._refilter()  # lines already written are laid out again

    @on(LogView.ScrolledUp)
    def _scrolled_up(self) -> None:
        self.follow = False

    def _drawn(self, entry: Entry) -> RenderableType:
        # Unwrapped, the Text itself: RichLog lets only a Text run past the pane's edge.
        return wrapped(entry) if self.wrap else entry.text

    def _matches(self, lowered: str) -> bool:
        return not self.query_text or self.query_text.lower() in lowered

    def _refilter(self) -> None:
        self.view.clear()
        for entry in self.entries:
            if self._matches(entry.lowered):
                self.view.write(self._drawn(entry), scroll_end=False)
        if self.follow:
            self.view.scroll_end(animate=False)
        self._set_title()

    def action_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#log-search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value
        self._refilter()

    @on(Input.Submitted, "#log-search")
    def _search_done(self) -> None:
        box = self.query_one("#log-search", Input)
        if not box.value:
            box.display = False
        self.view.focus()

    def action_clear_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.value = ""
        box.display = False
        self.query_text = ""
        self._refilter()
        self.view.focus()
