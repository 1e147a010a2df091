"""Modal screens: confirm, add/edit form, help (details: ``details.py``). Each ends in ``dismiss(value)`` and
shows its own keys in its own footer (the app's footer behind it would list keys that do
something else here)."""

from __future__ import annotations

import os
from collections.abc import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static

from auto_core import validate
from auto_core.errors import AutoError
from auto_core.model import ProcessView


def footer() -> Footer:
    return Footer(compact=True, show_command_palette=False)


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no question; ``y``/``n``/``escape`` or the buttons."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="confirm"):
            yield Label(self.question, id="question")
            with Horizontal(id="buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")
        yield footer()

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class FieldError(AutoError):
    """A bad value in one field of the form."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


COMMAND_HINT = "Run as it is, or by /bin/sh -c if it uses shell syntax ($ ; | && > * ...)."


class ProcessForm(ModalScreen[dict | None]):
    """Add (empty, workdir = cwd) or edit (prefilled, name fixed) a definition.

    Validates with ``auto_core.validate`` (the CLI's rules); a bad value gets its error right
    under its field, which takes the focus (the form scrolls to keep both in view). Dismisses
    with the cleaned values, or None on escape.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]
    FIELDS = ("name", "command", "workdir", "port")

    def __init__(self, view: ProcessView | None = None, cwd: str | None = None, blink: bool = True) -> None:
        super().__init__()
        self.editing = view
        self.cwd = cwd or os.getcwd()
        self.blink = blink

    def compose(self) -> ComposeResult:
        v = self.editing
        with VerticalScroll(id="dialog", classes="form"):
            yield Label(f"Edit {v.name}" if v else "Add a process", id="form-title")
            yield Label("Name")
            yield Input(v.name if v else "", id="name", disabled=v is not None, placeholder="web",
                        select_on_focus=False)
            yield Static("", id="name-error", classes="field-error")
            yield Label("Command")
            yield Input(v.command if v else "", id="command", placeholder="python3 -m http.server 8000",
                        select_on_focus=False)
            yield Static(COMMAND_HINT, classes="hint")
            yield Static("", id="command-error", classes="field-error")
            yield Label("Working directory")
            yield Input((v.workdir or "") if v else self.cwd, id="workdir", select_on_focus=False)
            yield Static("", id="workdir-error", classes="field-error")
            yield Label("Port (optional)")
            yield Input(str(v.port) if v and v.port else "", id="port", placeholder="8000", select_on_focus=False)
            yield Static("", id="port-error", classes="field-error")
            with Horizontal(id="buttons"):
                yield Button("Save (enter)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")
        yield footer()

    def on_mount(self) -> None:
        for box in self.query(Input):
            box.cursor_blink = self.blink
        for error in self.query(".field-error"):
            error.display = False
        first = self.query_one("#command" if self.editing else "#name", Input)
        first.focus()
        first.cursor_position = len(first.value)  # editing goes on at the end, nothing selected

    def values(self) -> dict:
        """The validated fields; raises FieldError (one line, naming the field) on the first bad one."""
        get = lambda key: self.query_one(f"#{key}", Input).value  # noqa: E731
        checks: dict[str, Callable[[], object]] = {
            "name": lambda: validate.name(get("name").strip()),
            "command": lambda: validate.command(get("command")),
            "workdir": lambda: validate.workdir(get("workdir").strip() or self.cwd),
            "port": lambda: validate.port(get("port")),
        }
        values = {}
        for field, check in checks.items():
            try:
                values[field] = check()
            except AutoError as exc:
                raise FieldError(field, str(exc)) from None
        return values

    def action_save(self) -> None:
        for error in self.query(".field-error"):
            error.display = False
        try:
            values = self.values()
        except FieldError as exc:
            error = self.query_one(f"#{exc.field}-error", Static)
            error.update(Text(str(exc), style="bold red"))
            error.display = True
            self.query_one(f"#{exc.field}", Input).focus()
            # After the layout that makes room for it: the field and its error in view.
            self.call_after_refresh(error.scroll_visible, animate=False)
            return
        self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)


KEYS = (
    ("Process", (
        ("s", "start"), ("x", "stop"), ("r", "restart"), ("a", "add a process"), ("e", "edit"),
        ("d", "remove (asks first; logs are kept)"), ("S", "start all"), ("X", "stop all (asks first)"),
        ("enter", "details"), ("/", "filter the table by name (escape clears)"),
        ("W", "start the watcher"),
        ("*", "after a status: changed since it started; r applies it"),
    )),
    ("Log", (
        ("f", "follow on or off (scrolling up pauses it)"), ("w", "wrap long lines on or off"),
        ("/", "search the log (with the log focused)"), ("[ ]", "older and newer run"),
        ("L", "every process's log, merged (again: the highlighted one's)"),
    )),
    ("View", (
        ("tab", "table or log"), ("ctrl+p", "command palette: every action by name"),
        ("?", "this help"), ("q", "quit (services keep running)"),
    )),
)

HOW_IT_WORKS = (
    "The watcher (auto watch) keeps your services alive: it is the one process that starts and "
    "stops them, and the keys here ask it. A service that crashes is restarted after 1 s, then "
    "2 s, 4 s, ... (exponential backoff, up to its maximum). A service you stopped stays stopped "
    "until you start it. Quitting this app leaves the watcher and every service running."
)


def help_text() -> Text:
    text = Text()
    for group, keys in KEYS:
        text.append(f"{group}\n", style="bold underline")
        for key, what in keys:
            text.append(f"  {key:>7}", style="bold")
            text.append(f"  {what}\n")
        text.append("\n")
    text.append("How auto works\n", style="bold underline")
    text.append(HOW_IT_WORKS)
    return text


class HelpScreen(ModalScreen[None]):
    """Every key, grouped, and what auto does with your services."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="help"):
            yield Label("auto: keys", id="help-title")
            yield Static(help_text(), id="help-body")
        yield footer()

    def action_close(self) -> None:
        self.dismiss(None)
