"""supervisord: ``[program:NAME]`` sections in one file, to be included from supervisord's own
configuration (``[include] files = ...``). Written by configparser; every value is quoted
for supervisord's reading of it (``%`` expansions, ``KEY="value"`` environments, a command
split into words without a shell, a ``;`` or ``#`` after a blank read as a comment even inside
quotes). A variable that cannot be written so is left out, and a program whose folder cannot,
and each is named in the header."""

from __future__ import annotations

import configparser
import io
import math
import re
import shlex

from auto_core.exports import CAPTURED, Service, argv, header

CARRIED = ("command", "workdir", "env", "stop_signal", "stop_timeout")
NOTE = ("supervisord restarts at once after a run that lasted startsecs, and retries a quicker "
        "failure startretries times before giving up (auto keeps retrying with a doubling "
        f"delay); its own logs and rotation replace auto's; {CAPTURED}.")
FILE = "supervisord.conf"
# supervisord's config reader takes a ; or # after a blank (or opening a value) as the start of
# a comment, inside quotes too.
_COMMENT = re.compile(r"(^|\s)([;#])")


def _percent(text: str) -> str:
    return text.replace("%", "%%")  # supervisord expands %(name)s in these values


def env_value(value: str) -> str | None:
    """``value`` quoted so that supervisord's environment reader gives it back, or None when
    it cannot: that reader strips quotes at either end and knows no escapes, and a ; or #
    after a blank would start a comment."""
    if "\n" in value or _COMMENT.search(value) or (value and (value[0] in "'\"" or value[-1] in "'\"")):
        return None
    if '"' not in value:
        return '"' + _percent(value) + '"'
    if "'" not in value:
        return "'" + _percent(value) + "'"
    return None


def command(words: list[str]) -> str:
    """``words`` as supervisord's command: it splits them by sh's quoting rules and execs
    them. A ; or # after a blank gets an empty quote ('') in front, so it no longer follows
    a blank and the word is the same."""
    return _percent(_COMMENT.sub(r"\1''\2", shlex.join(words)))


def section(service: Service) -> tuple[dict[str, str], list[str]]:
    """The program's keys, and the variables that could not be written."""
    d = service.definition
    keys = {"command": command(argv(service))}
    if d.workdir:
        keys["directory"] = _percent(d.workdir)
    pairs, dropped = [], []
    for key, value in service.variables.items():
        written = env_value(value)
        if written is None:
            dropped.append(key)
        else:
            pairs.append(f"{key}={written}")
    if pairs:
        keys["environment"] = ",".join(pairs)
    keys.update(autostart="true", autorestart="true", stopsignal=d.stop_signal.removeprefix("SIG"),
                stopwaitsecs=str(math.ceil(d.stop_timeout)), stopasgroup="true", killasgroup="true",
                redirect_stderr="true")
    return keys, dropped


def render(services: list[Service], folder: str | None = None) -> dict[str, str]:
    config = configparser.RawConfigParser(interpolation=None)
    config.optionxform = str  # type: ignore[assignment,method-assign]
    notes = header(services, CARRIED, NOTE)
    for s in services:
        if _COMMENT.search(s.definition.workdir or ""):
            notes.append(f"{s.name}: left out: its workdir holds a ; or # after a blank, which "
                         "supervisord reads as a comment")
            continue
        keys, dropped = section(s)
        if dropped:
            notes.append(f"{s.name}: variables whose value supervisord cannot read back "
                         f"(quotes at an end, both kinds of quote, a newline, a ; or # after a blank): "
                         f"{', '.join(dropped)}")
        config[f"program:{s.name}"] = keys
    out = io.StringIO()
    config.write(out)
    comments = "".join(f"; {line}\n" for line in notes)
    return {FILE: comments + "\n" + out.getvalue().rstrip("\n") + "\n"}

