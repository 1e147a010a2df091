"""A Procfile (Heroku, foreman, honcho): one ``name: command`` line per service, run in the
file's folder."""

from __future__ import annotations

import re

from auto_core.imports import Imported, fail

_LINE = re.compile(r"([A-Za-z0-9_-]+):[ \t]*(.*)")


def parse(path: str, text: str) -> Imported:
    tables: dict = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        found = _LINE.fullmatch(line.rstrip())
        if not found:
            raise fail(path, f"not a Procfile line (use NAME: COMMAND): {line.strip()[:60]!r}", number)
        name, command = found.groups()
        if not command:
            raise fail(path, f"{name}: no command", number)
        if name in tables:
            raise fail(path, f"{name}: defined twice", number)
        tables[name] = {"command": command}
    return Imported(tables=tables)
