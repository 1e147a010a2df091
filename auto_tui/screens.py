"""Modal screens: confirm, add/edit form, details. Each always ends in ``dismiss(value)``."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from auto_core import validate
from auto_core.errors import AutoError
from auto_core.humanize import countdown, duration
from auto_core.model import ProcessView
from auto_core.views import describe_exit
from auto_tui.rows import status_label


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

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class ProcessForm(ModalScreen[dict | None]):
    """Add (empty, workdir = cwd) or edit (prefilled, name fixed) a definition.

    Validates with ``auto_core.validate`` (the CLI's rules) and shows the first error inline;
    dismisses with the cleaned values, or None on escape.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]

    def __init__(self, view: ProcessView | None = None, cwd: str | None = None, blink: bool = True) -> None:
        super().__init__()
        self.editing = view
        self.cwd = cwd or os.getcwd()
        self.blink = blink

    def compose(self) -> ComposeResult:
        v = self.editing
        with Vertical(id="dialog", classes="form"):
            yield Label(f"Edit {v.name}" if v else "Add a process", id="form-title")
            yield Label("Name")
            yield Input(v.name if v else "", id="name", disabled=v is not None, placeholder="web")
            yield Label("Command (run by /bin/sh -c)")
            yield Input(v.command if v else "", id="command", placeholder="python -m http.server 8000")
            yield Label("Working directory")
            yield Input((v.workdir or "") if v else self.cwd, id="workdir")
            yield Label("Port (optional)")
            yield Input(str(v.port) if v and v.port else "", id="port", placeholder="8000")
            yield Static("", id="form-error")
            with Horizontal(id="buttons"):
                yield Button("Save (enter)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        for box in self.query(Input):
            box.cursor_blink = self.blink
        self.query_one("#command" if self.editing else "#name", Input).focus()

    def values(self) -> dict:
        """The validated fields; raises AutoError (one line) on the first bad one."""
        get = lambda key: self.query_one(f"#{key}", Input).value  # noqa: E731
        return {
            "name": validate.name(get("name").strip()),
            "command": validate.command(get("command")),
            "workdir": validate.workdir(get("workdir").strip() or self.cwd),
            "port": validate.port(get("port")),
        }

    def action_save(self) -> None:
        try:
            values = self.values()
        except AutoError as exc:
            self.query_one("#form-error", Static).update(Text(str(exc), style="bold red"))
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


def details_text(view: ProcessView, log_path: str | None, now: float) -> Text:
    """Everything known about one process, as aligned ``key  value`` lines."""
    label, _ = status_label(view)
    last = view.last_exit or {}
    exit_text = describe_exit(view.last_exit)
    if isinstance(last.get("at"), (int, float)):
        exit_text += f" ({duration(max(0.0, now - last['at']))} ago)"
    backoff = f"attempt {view.restart_attempt}, base {view.backoff_base:g}s, max {view.backoff_max:g}s"
    if view.next_restart_in_s is not None:
        backoff += f", next restart in {countdown(view.next_restart_in_s)}"
    rows = [
        ("name", view.name),
        ("status", label),
        ("pid", str(view.pid or "-")),
        ("port", str(view.port or "-")),
        ("uptime", duration(view.uptime_s)),
        ("restarts", str(view.restarts)),
        ("command", view.command),
        ("workdir", view.workdir or "-"),
        ("log", log_path or view.log_path or "-"),
        ("last exit", exit_text),
        ("backoff", backoff),
        ("restart every", duration(view.restart_every) if view.restart_every else "-"),
        ("stop", f"{view.stop_signal}, then SIGKILL after {view.stop_timeout:g}s"),
    ]
    env = view.env or {}
    text = Text()
    for key, value in rows:
        text.append(f"{key:>13}  ", style="bold")
        text.append(f"{value}\n")
    text.append(f"{'env':>13}  ", style="bold")
    if not env:
        text.append("-\n")
    for i, (key, value) in enumerate(sorted(env.items())):
        pad = "" if i == 0 else " " * 15
        text.append(f"{pad}{key}={shlex.quote(value) if value else ''}\n")
    return text


class DetailsScreen(ModalScreen[None]):
    """The full definition and runtime state of one process."""

    BINDINGS = [Binding("escape,enter,q", "close", "Close")]

    def __init__(self, view: ProcessView, log_path: str | None, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.view = view
        self.log_path = log_path
        self.clock = clock

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="details"):
            yield Label(f"Details: {self.view.name}", id="details-title")
            yield Static(details_text(self.view, self.log_path, self.clock()), id="details-body")

    def action_close(self) -> None:
        self.dismiss(None)
