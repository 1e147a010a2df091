"""``auto export --format``: the services' definitions written for another process manager
(``procfile``, ``systemd``, ``launchd``, ``supervisord``; ``toml`` is ``setupfile.export``).

Each format is one module with ``CARRIED`` (the definition keys it can express), ``NOTE``
(what it always does differently), ``render(services, folder) -> {file name: text}`` and,
when it needs them, ``FOLDERS`` made beside its files. A
definition key a format does not carry (``uncarried``: any set key outside ``CARRIED``, so an
option added later is named too) is listed in a comment at the top of what it writes, never
silently dropped.
"""

from __future__ import annotations

import os
import shutil
from types import ModuleType

from auto_core import model
from auto_core.proc import shellwords
from auto_core.record import Record

FORMATS = ("toml", "procfile", "systemd", "launchd", "supervisord")
# Formats that write a file per service: only into a folder (--output).
PER_SERVICE = ("systemd", "launchd")
SHELL = "/bin/sh"


class Service(Record, frozen=True):
    """One service to export: its state entry and the environment its runs get (the one
    captured at ``add`` with its own ``env`` on top), which decides where its program is."""

    name: str
    entry: dict
    environment: dict

    @property
    def definition(self) -> model.Definition:
        return model.definition(self.entry)

    @property
    def path(self) -> str:
        return self.environment.get("PATH") or os.defpath

    @property
    def variables(self) -> dict[str, str]:
        """The variables written for the service: its own ``env`` over the PATH captured at
        ``add`` (a target starts services with a minimal PATH). The rest of the captured
        environment is not written: each format's NOTE says so."""
        env = dict(self.definition.env)
        if "PATH" not in env and "PATH" in self.environment:
            env = {"PATH": self.environment["PATH"], **env}
        return env


# Said in the NOTE of each format that writes variables.
CAPTURED = ("of the environment captured when the service was added only PATH is written "
            "(HOME, LANG and the rest come from the other manager)")


def argv(service: Service) -> list[str]:
    """The words to exec for ``service``: its program's absolute path and arguments when the
    command is that plain and the program is found on its PATH, else ``/bin/sh -c COMMAND``
    (as auto runs it)."""
    d = service.definition
    words = shellwords.simple_argv(d.command)
    if words:
        program = words[0]
        if "/" in program:
            found: str | None = os.path.join(d.workdir or os.getcwd(), program)
            found = os.path.normpath(found) if found and os.access(found, os.X_OK) else None
        else:
            found = shutil.which(program, path=service.path)
        if found:
            return [os.path.abspath(found), *words[1:]]
    return [SHELL, "-c", d.command]


def uncarried(service: Service, carried: tuple[str, ...]) -> list[str]:
    """The keys of ``service``'s definition that are set and that a format cannot express."""
    from auto_core.setupfile import DEFINITION_KEYS

    return [k for k in DEFINITION_KEYS
            if k not in carried and service.entry.get(k) not in (None, {}, [], "")]


def header(services: list[Service], carried: tuple[str, ...], note: str) -> list[str]:
    """The comment lines (without their comment mark) that say what was not carried."""
    lines = ["Written by auto export from the definitions in auto's state."]
    if note:
        lines.append(f"Not carried, always: {note}")
    left = [f"{s.name}: {', '.join(keys)}" for s in services if (keys := uncarried(s, carried))]
    if left:
        lines.append(f"Not carried, set here: {'; '.join(left)}.")
    return lines


def seconds(value: float) -> str:
    """A number of seconds as written in a config: ``10``, ``2.5``."""
    return str(int(value)) if value == int(value) else f"{value:.3f}".rstrip("0").rstrip(".")


def module(fmt: str) -> ModuleType:
    """The module of format ``fmt`` (not ``toml``)."""
    import importlib

    return importlib.import_module(f"auto_core.exports.{fmt}")


def render(fmt: str, services: list[Service], folder: str | None = None) -> dict[str, str]:
    """``services`` in format ``fmt``: file name -> text. ``folder``: where the files go
    (absolute), when they are written to one."""
    return module(fmt).render(services, folder)


def write(folder: str, files: dict[str, str], fmt: str) -> list[str]:
    """Write ``files`` into ``folder`` (made if missing, with the format's ``FOLDERS``), each
    replaced whole; the paths."""
    from pathlib import Path

    from auto_core.store.atomic import write_atomic

    directory = Path(folder)
    written = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for sub in getattr(module(fmt), "FOLDERS", ()) if fmt != "toml" else ():
            (directory / sub).mkdir(exist_ok=True)
        for name, text in files.items():
            write_atomic(directory, directory / name, text.encode("utf-8"))
            written.append(str(directory / name))
    except OSError as err:
        from auto_core.errors import UsageError

        raise UsageError(f"--output {folder}: cannot write there: {err.strerror or err}") from None
    return written
