"""Command palette provider: each action once per process, plus Add, Start all and Stop all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider


class _Verbs(Protocol):
    """What this provider needs of the app (no import of the app: it imports this module)."""

    views: dict

    def run_verb(self, verb: str, name: str) -> None: ...

    def run_action(self, action: str) -> object: ...


VERBS = (
    ("Start", "start {}"),
    ("Stop", "stop {}"),
    ("Restart", "restart {}"),
    ("Edit", "edit the definition of {}"),
    ("Remove", "stop and remove {} (asks first)"),
    ("Details", "everything about {}"),
    ("Logs", "show the log of {}"),
)
GLOBAL = (
    ("Add a process", "add", "define a process and start it"),
    ("Start all", "start_all", "start every process"),
    ("Stop all", "stop_all", "stop every process (asks first)"),
)


class ProcessCommands(Provider):
    """Offers each verb for each process the table currently knows."""

    def _commands(self) -> Iterator[tuple[str, Callable[[], object], str]]:
        app = cast(_Verbs, self.app)  # AutoApp.COMMANDS is the only place this provider is used
        for title, action, help_text in GLOBAL:
            yield title, partial(app.run_action, action), help_text
        for name in sorted(getattr(app, "views", {})):
            for verb, help_text in VERBS:
                yield f"{verb}: {name}", partial(app.run_verb, verb.lower(), name), help_text.format(name)

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
