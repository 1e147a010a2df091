"""A Procfile: ``name: command`` lines, run by foreman, honcho or a Heroku-like platform from
the Procfile's folder."""

from __future__ import annotations

import re

from auto_core.exports import Service, header

CARRIED = ("command",)
NOTE = ("workdir and env are not part of a Procfile (its processes run in its folder, "
        "with the variables of a .env file beside it), nor the environment captured when the "
        "service was added; auto's restart rules neither.")
FILE = "Procfile"
# What foreman and honcho take for a process name (auto's may hold a dot too).
_NAME = re.compile(r"[A-Za-z0-9_-]+")


def render(services: list[Service], folder: str | None = None) -> dict[str, str]:
    lines = [f"# {line}" for line in header(services, CARRIED, NOTE)]
    for s in services:
        command = s.definition.command
        if "\n" in command:  # a Procfile line ends at its newline
            lines.append(f"# {s.name}: not carried (its command has several lines)")
        elif not _NAME.fullmatch(s.name):
            lines.append(f"# {s.name}: not carried (a Procfile name holds only letters, digits, "
                         f"_ and -): {command}")
        else:
            lines.append(f"{s.name}: {command}")
    return {FILE: "\n".join(lines) + "\n"}
