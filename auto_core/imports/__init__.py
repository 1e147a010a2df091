"""``auto import``: the setup file of another process manager read as ``auto.toml``'s
``[services.NAME]`` tables, which then take the same checks (``setupfile.definitions``) and
the same plan as ``auto apply``.

A format (``procfile``, ``supervisord``, ``pm2``, ``compose``) is one module with
``parse(path, text) -> Imported``; which one reads a file is decided by its name, else by its
content. What a format has and auto does not take is named in ``Imported.ignored``, for one
warning line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from auto_core.errors import UsageError
from auto_core.record import Factory, Record

FORMATS = ("procfile", "supervisord", "pm2", "compose")


class Imported(Record, frozen=True):
    """A converted file: ``tables`` name -> table with ``auto.toml``'s keys, in the file's
    order; ``held`` the services it says not to start; ``ignored`` what it sets that auto does
    not carry, as ``"NAME: key, key"`` (or ``"[section]"``) texts; ``lines`` where each
    service and key was written, for errors, when the format's reader can tell."""

    tables: dict = Factory(factory=dict)
    held: tuple = ()
    ignored: tuple = ()
    lines: dict = Factory(factory=dict)  # (name, key or None) -> line, where the reader knows


def detect(path: str, text: str) -> str:
    """The format of the file at ``path``: by its name, else by what its text looks like."""
    base = os.path.basename(path).lower()
    if base == "procfile" or base.startswith("procfile."):
        return "procfile"
    if base.endswith((".conf", ".ini")):
        return "supervisord"
    if base.startswith("ecosystem") and base.endswith((".json", ".js", ".cjs")):
        return "pm2"
    if base.endswith((".yaml", ".yml")):
        return "compose"
    head = text.lstrip()
    if head.startswith(("{", "[{")) and '"apps"' in text:
        return "pm2"
    if re.search(r"^\s*\[program:", text, re.M):
        return "supervisord"
    if re.search(r"^processes\s*:", text, re.M):
        return "compose"
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines and all(re.match(r"[A-Za-z0-9_-]+:\s*\S", ln) for ln in lines):
        return "procfile"
    raise UsageError(f"{path}: cannot tell its format (name it Procfile, *.conf for supervisord, "
                     "ecosystem.json or ecosystem.config.js for pm2, process-compose.yaml)")


def read(path: str) -> Imported:
    """The file at ``path`` converted; any error is one line naming the file."""
    from auto_core.setupfile import read_text

    text = read_text(path)
    kind = detect(path, text)
    if kind == "procfile":
        from auto_core.imports import procfile as module
    elif kind == "supervisord":
        from auto_core.imports import supervisord as module  # type: ignore[no-redef]
    elif kind == "pm2":
        from auto_core.imports import pm2 as module  # type: ignore[no-redef]
    else:
        from auto_core.imports import compose as module  # type: ignore[no-redef]
    imported = module.parse(path, text)
    if not imported.tables:
        raise UsageError(f"{path}: defines no service")
    return imported


def load(path: str, check_program: Callable[[str, str, dict, str], None] | None = None
         ) -> tuple[dict[str, dict], Imported]:
    """The definitions of the file at ``path`` checked as ``auto apply`` checks a file's, and
    what was read."""
    from auto_core import setupfile

    imported = read(path)
    return setupfile.definitions(path, imported.tables, check_program,
                                 lines=imported.lines), imported


def fail(path: str, message: str, line: int | None = None) -> UsageError:
    """An error in the file, worded as ``setupfile``'s are: ``FILE[:LINE]: message``."""
    from auto_core.setupfile import FileError

    return FileError(f"{path}:{line}: {message}" if line else f"{path}: {message}")


def ignored(name: str, keys: list[str]) -> list[str]:
    return [f"{name}: {', '.join(keys)}"] if keys else []


def restarts(key: str, policies: dict[str, list[str]]) -> list[str]:
    """The ``ignored`` texts of services whose restart policy (``key``: value -> names) is
    not auto's: auto restarts a service after every exit."""
    return [f"{key} {policy} ({', '.join(names)}): auto restarts after every exit"
            for policy, names in policies.items()]
