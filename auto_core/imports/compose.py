"""A process-compose file: ``processes.NAME`` with ``command``, ``working_dir``,
``environment`` (``K=V`` texts, the file's own ``environment`` under each process's),
``shutdown`` (``signal``, ``timeout_seconds``) and ``disabled``; ``availability.restart``
other than ``always`` (its default is ``no``) is named in the warning, as auto restarts after
every exit. YAML is read by PyYAML, imported only here."""

from __future__ import annotations

import signal

from auto_core.imports import Imported, fail, ignored, restarts

_CARRIED = ("command", "working_dir", "environment", "shutdown", "disabled", "availability")
_TOP = ("version", "processes", "environment")


def parse(path: str, text: str) -> Imported:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise fail(path, f"not YAML: {problem}", mark.line + 1 if mark else None) from None
    if not isinstance(data, dict) or not isinstance(data.get("processes"), dict):
        raise fail(path, "processes: missing (a process-compose file holds processes: NAME: ...)")
    common = _environment(path, "environment", data.get("environment"))
    left = [f"{key} (top level)" for key in data if key not in _TOP]
    tables: dict = {}
    held: list[str] = []
    policies: dict[str, list[str]] = {}
    for name, process in data["processes"].items():
        if isinstance(name, bool) or not isinstance(name, (str, int)):
            # YAML 1.1 reads yes/no/on/off as booleans; process-compose's reader keeps them names
            raise fail(path, f"processes: a name read as {name!r} (YAML takes yes, no, on, off "
                       "for true or false, ~ for null): quote it")
        name = str(name)
        if not isinstance(process, dict) or not isinstance(process.get("command"), str):
            raise fail(path, f"{name}: command: missing (use a string)")
        table: dict = {"command": process["command"]}
        if "working_dir" in process:
            table["workdir"] = process["working_dir"]
        env = dict(common, **_environment(path, f"{name}: environment", process.get("environment")))
        if env:
            table["env"] = env
        shutdown = process.get("shutdown")
        extra = [k for k in process if k not in _CARRIED]
        if isinstance(shutdown, dict):
            if "signal" in shutdown:
                table["stop_signal"] = _signal(path, name, shutdown["signal"])
            if "timeout_seconds" in shutdown:
                table["stop_timeout"] = shutdown["timeout_seconds"]
            extra += [f"shutdown.{k}" for k in shutdown if k not in ("signal", "timeout_seconds")]
        elif shutdown is not None:
            raise fail(path, f"{name}: shutdown: use a mapping (signal, timeout_seconds)")
        availability = process.get("availability")
        if availability is None:
            availability = {}
        elif not isinstance(availability, dict):
            raise fail(path, f"{name}: availability: use a mapping (restart, ...)")
        # process-compose restarts only when availability.restart says so (default: no)
        policy = str(availability.get("restart", "no, the default"))
        if policy != "always":
            policies.setdefault(policy, []).append(name)
        extra += [f"availability.{k}" for k in availability if k != "restart"]
        if process.get("disabled") is True:
            held.append(name)
        left += ignored(name, extra)
        tables[name] = table
    left += restarts("availability.restart", policies)
    return Imported(tables=tables, held=tuple(held), ignored=tuple(left))


def _environment(path: str, where: str, value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, list) or not all(isinstance(v, str) and "=" in v for v in value):
        raise fail(path, f"{where}: use a list of \"NAME=value\" texts")
    return dict(v.split("=", 1) for v in value)


def _signal(path: str, name: str, value: object) -> object:
    """process-compose names a signal by its number (15); auto by its name (SIGTERM)."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return signal.Signals(value).name
        except ValueError:
            raise fail(path, f"{name}: shutdown.signal: no signal {value}") from None
    return value
