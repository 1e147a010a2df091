"""supervisord: ``[program:NAME]`` sections in one file, to be included from supervisord's own
configuration (``[include] files = ...``). Written by configparser; every value is quoted
for supervisord's reading of it (``%`` expansions, ``KEY="value"`` environments, a command
split into words without a shell)."""

from __future__ import annotations

import configparser
import io
import shlex

from auto_core.exports import Service, argv, header

CARRIED = ("command", "workdir", "env", "stop_signal", "stop_timeout")
NOTE = ("supervisord restarts at once after a run that lasted startsecs, and retries a quicker "
        "failure startretries times before giving up (auto keeps retrying with a doubling "
        "delay); its own logs and rotation replace auto's.")
FILE = "supervisord.conf"


def _percent(text: str) -> str:
    return text.replace("%", "%%")  # supervisord expands %(name)s in these values


def env_value(value: str) -> str | None:
    """``value`` quoted so that supervisord's environment reader gives it back, or None when
    it cannot: that reader strips quotes at either end and knows no escapes."""
    if "\n" in value or (value and (value[0] in "'\"" or value[-1] in "'\"")):
        return None
    if '"' not in value:
        return '"' + _percent(value) + '"'
    if "'" not in value:
        return "'" + _percent(value) + "'"
    return None


def section(service: Service) -> tuple[dict[str, str], list[str]]:
    """The program's keys, and the variables that could not be written."""
    d = service.definition
    # supervisord splits the command into words itself and execs them: quote each for that.
    keys = {"command": _percent(shlex.join(argv(service)))}
    if d.workdir:
        keys["directory"] = _percent(d.workdir)
    pairs, dropped = [], []
    for key, value in d.env.items():
        written = env_value(value)
        if written is None:
            dropped.append(key)
        else:
            pairs.append(f"{key}={written}")
    if pairs:
        keys["environment"] = ",".join(pairs)
    keys.update(autostart="true", autorestart="true", stopsignal=d.stop_signal.removeprefix("SIG"),
                stopwaitsecs=str(round(d.stop_timeout)), stopasgroup="true", killasgroup="true",
                redirect_stderr="true")
    return keys, dropped


def render(services: list[Service]) -> dict[str, str]:
    config = configparser.RawConfigParser(interpolation=None)
    config.optionxform = str  # type: ignore[assignment,method-assign]
    notes = header(services, CARRIED, NOTE)
    for s in services:
        keys, dropped = section(s)
        if dropped:
            notes.append(f"{s.name}: variables whose value supervisord cannot read back "
                         f"(quotes at an end, both kinds of quote, a newline): {', '.join(dropped)}")
        config[f"program:{s.name}"] = keys
    out = io.StringIO()
    config.write(out)
    comments = "".join(f"; {line}\n" for line in notes)
    return {FILE: comments + "\n" + out.getvalue().rstrip("\n") + "\n"}

