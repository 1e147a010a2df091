"""A Procfile (Heroku, foreman, honcho): one ``name: command`` line per service, run in the
file's folder with the variables of the ``.env`` file beside it, as those tools do. They also
give each process a ``PORT`` (5000, 5100...); auto assigns no ports, which the warning says."""

from __future__ import annotations

import os
import re

from auto_core.imports import Imported, fail

_LINE = re.compile(r"([A-Za-z0-9_-]+):[ \t]*(.*)")
ENV_FILE = ".env"
PORT = "PORT (foreman, honcho and heroku local set one per process; auto assigns no ports)"


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
    if os.path.isfile(os.path.join(os.path.dirname(os.path.abspath(path)), ENV_FILE)):
        for table in tables.values():
            table["env_file"] = ENV_FILE  # relative to the Procfile's folder
    return Imported(tables=tables, ignored=(PORT,))
