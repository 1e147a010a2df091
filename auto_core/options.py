"""The definition options, listed once: what ``auto add``/``auto update`` take as flags and
``auto.toml`` takes as keys (``setupfile``), each with its help text and the rule that checks
its value. The CLI's flags and the file's keys are built from this list, so they cannot drift
apart.

Each ``check`` takes a value as the user gave it (a flag's text, or a TOML string, number or
boolean) and returns what the state entry stores, or raises ``UsageError`` with one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from auto_core import validate
from auto_core.errors import UsageError


class Option:
    """One definition option. ``kind``: ``value`` (one value), ``repeat`` (``--env K=V``,
    a table in the file), ``switch`` (``--daemon-follow``/``--no-daemon-follow``, a boolean)."""

    __slots__ = ("key", "help", "metavar", "kind", "check")

    def __init__(self, key: str, help: str, metavar: str | None,
                 check: Callable[[object], object], kind: str = "value"):
        self.key, self.help, self.metavar, self.check, self.kind = key, help, metavar, check, kind

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    def __repr__(self) -> str:
        return f"Option({self.key!r})"


def _interval(value: object) -> float | None:
    return validate.interval(value)  # type: ignore[arg-type]


def _seconds(what: str, minimum: float) -> Callable[[object], float]:
    return lambda value: validate.seconds(value, what, minimum)  # type: ignore[arg-type]


def _log(key: str) -> Callable[[object], int | float]:
    def check(value: object) -> int | float:
        from auto_core.logtree import logmaint  # only when a log option is given

        return logmaint.parse_option(key, value)

    return check


def _switch(value: object) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"invalid value {value!r}: use true or false")
    return value


def _env(value: object) -> dict[str, str]:
    """``K=V`` texts (the flag, repeated) or a mapping (the file's table)."""
    if isinstance(value, dict):
        pairs = []
        for key, val in value.items():
            if not isinstance(val, str):
                raise UsageError(f"invalid value of {key}, {val!r}: use a string (in quotes)")
            pairs.append(f"{key}={val}")
    elif isinstance(value, (list, tuple)):
        pairs = list(value)
    else:
        raise UsageError(f"invalid env {value!r}: use a table of NAME = \"value\"")
    return dict(validate.env_pair(p) for p in pairs)


def _env_file(value: object) -> dict[str, str]:
    from auto_core.store import environ

    if not isinstance(value, str):
        raise UsageError(f"invalid env file {value!r}: use a path")
    return environ.read_env_file(value)


def _text(check: Callable) -> Callable[[object], object]:
    """A check for a value that is text or a number: a boolean, list or table is refused
    (``float(True)`` would read as 1)."""

    def checked(value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise UsageError(f"invalid value {value!r}: use a string or a number")
        return check(value)

    return checked


def _health(value: object) -> str | None:
    from auto_core import healthcheck

    return healthcheck.text(value)


def _count(what: str, minimum: int) -> Callable[[object], int]:
    def check(value: object) -> int:
        text = str(value).strip()
        if isinstance(value, bool) or not text.isascii() or not text.isdigit() or int(text) < minimum \
                or int(text) > 10**6:
            raise UsageError(f"invalid {what} {value!r}: use a whole number >= {minimum}")
        return int(text)

    return check


def _after(value: object) -> list[str]:
    """``NAME[,NAME...]`` (the flag) or a list of names (the file); ``none`` or empty: none."""
    if isinstance(value, str):
        words = [] if value.strip().lower() in ("none", "off") else value.split(",")
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        words = list(value)
    else:
        raise UsageError(f"invalid after {value!r}: use a list of service names")
    names = [w.strip() for w in words if w.strip()]
    for name in names:
        validate.name(name)
    return list(dict.fromkeys(names))


def _workdir(value: object) -> str:
    if not isinstance(value, str):
        raise UsageError(f"invalid workdir {value!r}: use a path")
    return validate.workdir(value)


# Always ignored: version control, caches and virtualenvs, editors' swap, backup and lock files
# (watchfiles' ``DefaultFilter`` lists, as globs), and logs.
DEFAULT_IGNORE = (".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", ".tox", ".idea",
                  ".mypy_cache", ".pytest_cache", ".hypothesis", "*.py[cod]", "*.sw?", "*~",
                  ".#*", ".DS_Store", "flycheck_*", "*.___jb_???___", "*.log")
CLEAR = ("none", "off")  # a repeatable option given only this clears it (update)


def _items(value: object, what: str) -> list[str] | None:
    """The texts of a repeatable option (the flag's, or a TOML list; one string is a list of
    one); None when it clears the option."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise UsageError(f"invalid {what} {value!r}: use a list of strings")
    if len(items) == 1 and items[0].strip().lower() in CLEAR:
        return None
    for item in items:
        if not item or "\x00" in item:
            raise UsageError(f"invalid {what} {item!r}")
    return list(dict.fromkeys(items)) or None


def _watch_paths(value: object) -> list[str] | None:
    """Existing paths, made absolute (a relative one is taken from the current directory:
    ``under`` has joined it to the workdir or the file's folder first)."""
    items = _items(value, "path")
    if items is None:
        return None
    found = []
    for item in items:
        path = os.path.normpath(os.path.abspath(os.path.expanduser(item)))
        if not os.path.exists(path):
            raise UsageError(f"cannot watch {path!r}: it does not exist")
        found.append(path)
    return list(dict.fromkeys(found))


def _globs(value: object) -> list[str] | None:
    return _items(value, "glob")


def under(base: str, value: object) -> object:
    """A path option's value with its relative paths joined to ``base`` (``~`` expands); a
    value that clears the option, or a malformed one (refused by the check), as it is."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) and v for v in items):
        return value
    if len(items) == 1 and items[0].strip().lower() in CLEAR:
        return value
    return [os.path.join(base, os.path.expanduser(v)) for v in items]


OPTIONS: tuple[Option, ...] = (
    Option("workdir", "where it runs (default: the current directory; ~ expands)", "DIR", _workdir),
    Option("port", "1-65535 (update: 'off' clears it)", "P", _text(validate.port)),
    Option("env", "a variable for the service (repeatable); it overrides the captured environment",
           "K=V", _env, kind="repeat"),
    Option("env_file", "variables from a dotenv file (comments, 'export ', quotes)", "FILE", _env_file),
    Option("restart_every", "periodic restart, e.g. 30m, 2h (update: 'off')", "I", _text(_interval)),
    Option("backoff_max", "cap of the restart delay in seconds (default 7200)", "S",
           _text(_seconds("backoff max", 1))),
    Option("backoff_base", "first restart delay in seconds (default 1)", "S",
           _text(_seconds("backoff base", 0))),
    Option("stop_timeout", "seconds between the stop signal and SIGKILL (default 10)", "S",
           _text(_seconds("stop timeout", 0))),
    Option("stop_signal", "signal sent first on stop (default SIGTERM)", "SIG",
           _text(validate.signal_name)),
    Option("daemon_follow", "when the program exits 0 leaving a process of its own running (it "
           "daemonized itself), follow that process instead of restarting (default on)", None,
           _switch, kind="switch"),
    Option("log_max_bytes", "roll the run's log past this size, e.g. 50M (default 50M)", "SIZE",
           _text(_log("log_max_bytes"))),
    Option("log_keep_parts", "rolled parts kept per run (default 5)", "N", _text(_log("log_keep_parts"))),
    Option("log_keep_days", "delete log files older than D days (default 30)", "D",
           _text(_log("log_keep_days"))),
    Option("restart_on_change", "restart when a file under PATH changes (repeatable; a directory "
           "is watched recursively; relative to the workdir; update: 'none' clears)", "PATH",
           _watch_paths, kind="repeat"),
    Option("ignore", f"changes to ignore (repeatable), besides {' '.join(DEFAULT_IGNORE)}, "
           "e.g. '*.tmp' or 'build/*' (update: 'none' clears)", "GLOB", _globs,
           kind="repeat"),
    Option("health", "health check: http://HOST:PORT/PATH, https://..., tcp://HOST:PORT, port "
           "(the service's port on 127.0.0.1) or cmd:COMMAND; 'none' clears it", "CHECK", _health),
    Option("health_interval", "seconds between health checks (default 10)", "S",
           _text(_seconds("health interval", 0.1))),
    Option("health_timeout", "seconds a health check may take (default 3)", "S",
           _text(_seconds("health timeout", 0.1))),
    Option("health_retries", "failed checks in a row that make it unhealthy and restart it "
           "(default 3)", "N", _text(_count("health retries", 1))),
    Option("health_start_period", "seconds after a start when failed checks do not count "
           "(default 0)", "S", _text(_seconds("health start period", 0))),
    Option("after", "start only once these services are up (healthy, or running when they have "
           "no check): NAME[,NAME...]; 'none' clears it", "NAMES", _after),
)
# Options whose values are paths taken from the service's workdir (the CLI) or the file's
# folder (auto.toml) when relative (``under``).
PATH_KEYS = ("restart_on_change",)

BY_KEY = {o.key: o for o in OPTIONS}
# The options stored in the entry under their own key, as ``check`` returns them; the rest
# (workdir, port, env, env_file) are the definition's core, handled by add and update.
ENTRY_KEYS = tuple(o.key for o in OPTIONS if o.key not in ("workdir", "port", "env", "env_file"))
