"""Command palette provider: "Start/Stop/Restart/Logs: <name>" for every process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider


class _Verbs(Protocol):
    """What this provider needs of the app (no import of the app: it imports this module)."""

    views: dict

    def run_verb(self, verb: str, name: str) -> None: ...

VERBS = ("Start", "Stop", "Restart", "Logs")


class ProcessCommands(Provider):
    """Offers each verb for each process the table currently knows."""

    def _commands(self) -> Iterator[tuple[str, Callable[[], None], str]]:
        app = cast(_Verbs, self.app)  # AutoApp.COMMANDS is the only place this provider is used
        for name in sorted(getattr(app, "views", {})):
            for verb in VERBS:
                help_text = f"show the log of {name}" if verb == "Logs" else f"{verb.lower()} {name}"
                yield f"{verb}: {name}", partial(app.run_verb, verb.lower(), name), help_text

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
