"""``auto.toml``: every service's definition in one file, read by ``auto apply`` and written
by ``auto export``.

A file holds ``[services.NAME]`` tables whose keys are ``command`` (required) and the
definition options (``options.OPTIONS``), checked by the same rules as ``auto add``. ``workdir``
(default: the file's folder), ``env_file`` and ``restart_on_change`` are relative to the
file's folder; ``~`` expands. Any error is one line naming the file, the line and the key,
and nothing is applied.

``plan`` compares the file's definitions with the state's: each service is added, changed
(the keys that differ), unchanged, removed (``--prune``) or kept (not in the file).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping

from auto_core import model, options, validate
from auto_core.errors import AutoError, UsageError
from auto_core.record import Factory, Record

FILE_KEYS = ("command", *options.BY_KEY)
# What a definition is in a state entry: these keys, the rest is the watcher's.
DEFINITION_KEYS = ("command", "workdir", "port", "env", *options.ENTRY_KEYS)

# The order keys are read in: env_file's variables first, env's own over them.
_ORDER = ("command", "workdir", "env_file", *(k for k in options.BY_KEY if k not in ("workdir", "env_file")))

ADD, CHANGE, SAME, REMOVE, KEEP = "add", "change", "same", "remove", "keep"


class Step(Record, frozen=True):
    """What ``apply`` does to one service: ``fields`` is its definition from the file (for
    add and change), ``changed`` the keys that differ from the state's. ``start`` False: an
    added service stays stopped (an imported file's ``autostart=false``)."""

    name: str
    action: str
    fields: dict = Factory(factory=dict)
    changed: tuple = ()
    start: bool = True


class FileError(UsageError):
    """An error in the file, already worded as ``FILE:LINE: KEY: message``."""


# --- reading -------------------------------------------------------------------------------

def load(path: str, check_program: Callable[[str, str, dict, str], None] | None = None) -> dict[str, dict]:
    """The services of the file at ``path``, in its order: name -> definition fields as a
    state entry holds them. ``check_program(name, command, env, workdir)`` refuses a program
    that cannot be found (``lifecycle.check_program``)."""
    import tomllib

    text = read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if found:
            message = f"{path}:{found.group(1)}: {message[:found.start()]} (column {found.group(2)})"
        else:
            message = f"{path}: {message}"
        raise FileError(message) from None
    where = _Locator(path, text)
    for key in data:
        if key != "services":
            raise where.error(None, key, "unknown table (the file holds [services.NAME] tables)")
    services = data.get("services", {})
    if not isinstance(services, dict):
        raise where.error(None, "services", "use [services.NAME] tables")
    return definitions(path, services, check_program, where)


def read_text(path: str) -> str:
    """The text of the file at ``path``, UTF-8 with or without a byte order mark (editors on
    Windows write one); an error is one line naming the file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None


def definitions(path: str, tables: Mapping[str, object],
                check_program: Callable[[str, str, dict, str], None] | None = None,
                where: _Locator | None = None,
                lines: Mapping[tuple[str, str | None], int] | None = None) -> dict[str, dict]:
    """``tables`` (name -> ``[services.NAME]`` table, as a file in another format converts
    to) checked by the rules of ``auto.toml`` and turned into definitions; paths are relative
    to ``path``'s folder. Errors name ``path`` and the line, when ``where`` can find it or
    ``lines`` has it: (name, key) -> line, (name, None) the service's own."""
    folder = os.path.dirname(os.path.abspath(path))
    where = where or _Locator(path, "", lines)
    return {name: _service(where, folder, name, table, check_program)
            for name, table in tables.items()}


def _service(where: _Locator, folder: str, name: str, table: object,
             check_program: Callable[[str, str, dict, str], None] | None) -> dict:
    try:
        validate.name(name)
    except UsageError as err:
        raise where.error(name, None, str(err)) from None
    if not isinstance(table, dict):
        raise where.error(name, None, f"use a table: [services.{name}]")
    for key in table:
        if key not in FILE_KEYS:
            import difflib

            close = difflib.get_close_matches(key, FILE_KEYS, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else "see 'auto add -h' for the options"
            raise where.error(name, key, f"unknown key ({hint})")
    if "command" not in table:
        raise where.error(name, "command", f"missing in [services.{name}]")
    fields: dict = {}
    for key in _ORDER:
        if key not in table and key != "workdir":
            continue
        try:
            if key == "command":
                value = table[key]
                if not isinstance(value, str):
                    raise UsageError(f"invalid command {value!r}: use a string")
                fields["command"] = validate.command(value)
            elif key == "workdir":
                fields["workdir"] = _path_check(options.BY_KEY[key], folder, table.get(key, "."))
            elif key == "env_file":
                fields["env"] = dict(_path_check(options.BY_KEY[key], folder, table[key]))  # type: ignore[call-overload]
            elif key == "env":
                fields["env"] = dict(fields.get("env", {}), **options.BY_KEY[key].check(table[key]))  # type: ignore[arg-type]
            else:
                value = table[key]
                if key in options.PATH_KEYS:  # relative to the file's folder, as env_file
                    value = options.under(folder, value)
                checked = options.BY_KEY[key].check(value)
                if checked is not None:
                    fields[key] = checked
        except UsageError as err:
            raise where.error(name, key, str(err)) from None
    fields.setdefault("env", {})
    fields.setdefault("port", None)
    if check_program is not None:
        from auto_core.store import environ

        try:
            check_program(name, fields["command"], dict(environ.capture(), **fields["env"]),
                          fields["workdir"])
        except AutoError as err:  # a program that is not there
            raise where.error(name, "command", str(err)) from None
    return fields


def _path_check(option: options.Option, folder: str, value: object) -> object:
    """``option.check`` of a path relative to the file's folder (``~`` expands)."""
    if isinstance(value, str) and value:
        value = os.path.join(folder, os.path.expanduser(value))
    return option.check(value)


class _Locator:
    """Finds the line of a service's table or of a key in it, by scanning the file's text:
    tomllib gives values, not where they were written."""

    def __init__(self, path: str, text: str,
                 known: Mapping[tuple[str, str | None], int] | None = None):
        self.path = path
        self.lines = text.splitlines()
        self.known = known or {}  # a file of another format: the lines its reader found

    def error(self, name: str | None, key: str | None, message: str) -> FileError:
        line = self.line(name, key)
        if line is None and name is not None:
            line = self.known.get((name, key)) or self.known.get((name, None))
        at = f"{self.path}:{line}" if line else self.path
        if not self.lines and name is not None:  # a file of another format: name the service
            message = message.removeprefix(f"{name}: ")  # once
            return FileError(f"{at}: {name}: {key + ': ' if key else ''}{message}")
        what = key if key is not None else f"services.{name}"
        return FileError(f"{at}: {what}: {message}")

    def line(self, name: str | None, key: str | None) -> int | None:
        if name is None:
            return self._find(r"\s*\[?\s*" + _key(key or "") + r"\s*[\].=]", 0, len(self.lines))
        header = r"\s*\[\s*services\s*\.\s*" + _key(name)
        start = self._find(header + r"\s*\]", 0, len(self.lines))
        if start is None:  # an inline table, or dotted keys: `api = {...}`, `services.api.port`
            return self._find(r"\s*(?:services\s*\.\s*)?" + _key(name) + r"\s*[=.]", 0, len(self.lines))
        if key is None:
            return start
        sub = self._find(header + r"\s*\.\s*" + _key(key) + r"\s*\]", start, len(self.lines))
        end = next((i for i in range(start, len(self.lines))
                    if self.lines[i].lstrip().startswith("[")), len(self.lines))
        return self._find(r"\s*" + _key(key) + r"\s*[=.]", start, end) or sub or start

    def _find(self, pattern: str, start: int, end: int) -> int | None:
        """The 1-based number of the first line in [start, end) (0-based ``start`` counts
        from the line after a 1-based ``start``) that matches ``pattern``."""
        rx = re.compile(pattern)
        return next((i + 1 for i in range(start, end) if rx.match(self.lines[i])), None)


def _key(word: str) -> str:
    """A TOML key as written: bare or quoted."""
    w = re.escape(word)
    return f"(?:{w}|\"{w}\"|'{w}')"


# --- comparing -----------------------------------------------------------------------------

def effective(entry: Mapping) -> dict:
    """A definition with every default filled in: two entries define the same service when
    these are equal (an option left out and one set to its default are the same)."""
    from auto_core.logtree import logmaint

    d = model.definition(dict(entry))
    logs = logmaint.settings(entry)
    return {
        "command": d.command, "workdir": d.workdir, "port": d.port, "env": d.env,
        "restart_every": d.restart_every, "backoff_base": d.backoff_base,
        "backoff_max": d.backoff_max, "stop_signal": d.stop_signal,
        "stop_timeout": d.stop_timeout, "daemon_follow": d.daemon_follow,
        "log_max_bytes": logs.max_bytes, "log_keep_parts": logs.keep_parts,
        "log_keep_days": logs.keep_days,
        "restart_on_change": d.restart_on_change, "ignore": d.ignore,
        "health": d.health, "health_interval": d.health_interval, "health_timeout": d.health_timeout,
        "health_retries": d.health_retries, "health_start_period": d.health_start_period,
        "after": sorted(d.after),
    }


def plan(wanted: Mapping[str, dict], procs: Mapping[str, dict], prune: bool,
         held: Iterable[str] = ()) -> list[Step]:
    """What ``apply`` does: the file's services in its order, then the others by name.
    ``held``: services the file says not to start when added."""
    held = set(held)
    steps = []
    for name, fields in wanted.items():
        if name not in procs:
            steps.append(Step(name, ADD, fields, start=name not in held))
            continue
        now, then = effective(fields), effective(procs[name])
        changed = tuple(k for k in now if now[k] != then[k])
        steps.append(Step(name, CHANGE if changed else SAME, fields, changed))
    steps += [Step(name, REMOVE if prune else KEEP) for name in sorted(procs) if name not in wanted]
    _check_order(wanted, procs, prune)
    return steps


def _check_order(wanted: Mapping[str, dict], procs: Mapping[str, dict], prune: bool) -> None:
    """The start order of the services as they will be: no unknown name, no cycle."""
    from auto_core import order

    for name, fields in wanted.items():
        if fields.get("health") == "port" and not fields.get("port"):
            raise UsageError(f"{name}: the health check 'port' needs the service's port")
    kept = {} if prune else {n: order.after_of(e) for n, e in procs.items()}
    problem = order.check(dict(kept, **{n: order.after_of(f) for n, f in wanted.items()}), list(wanted))
    if problem is not None:
        raise UsageError(problem)


def define(entry: dict, fields: Mapping) -> None:
    """Make ``entry``'s definition exactly ``fields``: an option the file leaves out goes
    back to its default."""
    for key in DEFINITION_KEYS:
        if key in fields:
            entry[key] = fields[key]
        else:
            entry.pop(key, None)


# --- writing -------------------------------------------------------------------------------

def export(procs: Mapping[str, dict], names: Iterable[str]) -> str:
    """``[services.NAME]`` tables of ``names``' definitions as stored: paths absolute, the
    service's own ``env`` (not the environment captured at ``add``)."""
    import tomli_w

    services = {}
    for name in names:
        entry = procs[name]
        table: dict = {"command": entry.get("command", "")}
        for key in DEFINITION_KEYS[1:]:
            value = entry.get(key)
            if value is not None and value != {} and value != []:
                table[key] = value
        services[name] = table
    return tomli_w.dumps({"services": services})
