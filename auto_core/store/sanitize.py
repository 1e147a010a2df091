"""Every value of a loaded state entry checked, once, where the state is loaded.

``state.json`` is input like any other: a hand edit, another tool or a disk fault can put any
JSON there (``1e999`` parses as infinity). ``sanitize`` returns the entry with each bad value
neutralised (dropped, so readers use the default, or replaced by a safe value) and one line per
problem; ``state.load`` calls it for every entry, so no later code sees a bad value, and the
next write stores the neutral value. Fields it does not know are kept as they are.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from auto_core import validate

PID_MAX = 4194304  # Linux's highest possible pid (PID_MAX_LIMIT); macOS stays far below
SECONDS_MAX = 1e7  # the largest stop timeout or backoff the CLI accepts
AHEAD_MAX = 1e8  # a scheduled restart further ahead than this (3 years) is not one auto made
TIME_MAX = 1e11  # year 5138: a later time or duration in the file is not one auto wrote
OPS = ("start", "stop", "restart", "remove")  # model.OPS (model is above the store)

_DROP = object()  # the neutral value "no such field": readers use their default


def _number(value: object) -> bool:
    """A finite JSON number (not a boolean): ``x - x`` is 0 unless x is infinite or NaN."""
    kind = type(value)
    return (kind is int or kind is float) and value - value == 0  # type: ignore[operator]


def _in(low: float, high: float, whole: bool = False) -> Callable[[object], bool]:
    """A number from ``low`` to ``high`` (finite bounds: infinity and NaN fail the comparison)."""
    if whole:
        return lambda v: type(v) is int and low <= v <= high
    return lambda v: (type(v) is int or type(v) is float) and low <= v <= high


def _integral(low: float, high: float) -> Callable[[object], bool]:
    """A whole number from ``low`` to ``high``, written as an integer or as a float."""
    return lambda v: (type(v) is int or type(v) is float) and low <= v <= high and v == int(v)


def _text(value: object) -> bool:
    return type(value) is str and "\x00" not in value


def _texts(value: object, absolute: bool = False) -> bool:
    """A list of non-empty texts (absolute paths when ``absolute``)."""
    return type(value) is list and all(
        _text(v) and v and (not absolute or v.startswith("/")) for v in value)


def _request(value: object) -> bool:
    return isinstance(value, dict) and type(value.get("id")) is str and value.get("op") in OPS


def _outcome(value: object) -> bool:
    return isinstance(value, dict) and type(value.get("id")) is str


def _check_parses(value: object) -> bool:
    from auto_core import healthcheck

    return healthcheck.valid(value)


def _started_with(value: object) -> bool:
    """The fingerprints ``model.run_settings`` gives: texts (or null) and the port."""
    return isinstance(value, dict) and all(
        k == "port" and (v is None or type(v) is int) or k != "port" and (v is None or _text(v))
        for k, v in value.items())


_pid = _in(1, PID_MAX, whole=True)
_time = _in(0, TIME_MAX)
_seconds = _in(0, SECONDS_MAX)


def _claim_owner(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and _pid(value[0]) and _time(value[1])


# field -> (check, neutral value, what is wrong; what is done instead)
_RULES: dict[str, tuple[Callable[[object], bool], object, str]] = {
    "workdir": (lambda v: _text(v) and v.startswith("/"),  # type: ignore[attr-defined]
                _DROP, "not an absolute path; using the home directory"),
    "port": (_in(1, 65535, whole=True), None, "not a port from 1 to 65535; ignored"),
    "restart_every": (_in(1, 366 * 86400), _DROP, "not a number of seconds from 1 to 31622400; off"),
    "backoff_base": (_seconds, _DROP, "not a number of seconds from 0 to 1e7; using the default"),
    "backoff_max": (lambda v: _seconds(v) and v > 0,  # type: ignore[operator]
                    _DROP, "not a number of seconds above 0 up to 1e7; using the default"),
    "stop_timeout": (_seconds, _DROP, "not a number of seconds from 0 to 1e7; using the default"),
    "stop_signal": (lambda v: type(v) is str and v in signal.Signals.__members__,
                    _DROP, "not a signal name; using the default"),
    "log_max_bytes": (_integral(1024, 2**50), _DROP, "not a whole number from 1024 to 2**50; using the default"),
    "log_keep_parts": (_integral(0, 1000), _DROP, "not a whole number from 0 to 1000; using the default"),
    "log_keep_days": (_in(1, 36600), _DROP, "not a number of days from 1 to 36600; using the default"),
    "pid": (_pid, None, f"not a process id from 1 to {PID_MAX}; taken as not running"),
    "create_time": (_time, None, "not a finite time; taken as not running"),
    "started_at": (_time, _DROP, "not a finite time; ignored"),
    "last_restart_time": (_time, None, "not a finite time; ignored"),
    "last_periodic_restart": (_time, _DROP, "not a finite time; ignored"),
    "starting_since": (_time, _DROP, "not a finite time; ignored"),
    "starting_by": (_claim_owner, _DROP, "not [pid, start time]; ignored"),
    "restart_attempt": (_in(0, 2**62, whole=True), 0, "not a count; using 0"),
    "restarts": (_in(0, 2**62, whole=True), 0, "not a count; using 0"),
    "run": (_text, _DROP, "not a run id; ignored"),
    "stamp": (_text, _DROP, "not a process stamp; using the start time"),
    "daemon_follow": (lambda v: type(v) is bool, _DROP, "not true or false; following daemons"),
    "restart_on_change": (lambda v: _texts(v, absolute=True), _DROP,
                          "not a list of absolute paths; not watched"),
    "ignore": (_texts, _DROP, "not a list of globs; ignoring the defaults only"),
    "daemon_of": (_pid, _DROP, "not a process id; ignored"),
    "health": (lambda v: _text(v) and _check_parses(v), _DROP, "not a health check; no check"),
    "health_interval": (_in(0.1, SECONDS_MAX), _DROP, "not a number of seconds from 0.1 to 1e7; using the default"),
    "health_timeout": (_in(0.1, SECONDS_MAX), _DROP, "not a number of seconds from 0.1 to 1e7; using the default"),
    "health_retries": (_in(1, 10**6, whole=True), _DROP, "not a whole number from 1 to 1e6; using the default"),
    "health_start_period": (_seconds, _DROP, "not a number of seconds from 0 to 1e7; using the default"),
    "health_state": (lambda v: v in ("starting", "healthy", "unhealthy"), _DROP, "not a health state; ignored"),
    "health_run": (_text, _DROP, "not a run id; ignored"),
    "env_captured": (_text, _DROP, "not a fingerprint; ignored"),
    "started_with": (_started_with, _DROP, "not what auto records at a start; ignored"),
    "last_health": (lambda v: isinstance(v, dict) and _time(v.get("time")) and type(v.get("ok")) is bool
                    and _text(v.get("detail")), _DROP, "not a health result auto wrote; ignored"),
    "after": (lambda v: isinstance(v, list) and all(type(n) is str and validate.NAME_RE.fullmatch(n) for n in v),
              _DROP, "not a list of service names; no order"),
    "request": (_request, _DROP, "not a request auto wrote; ignored"),
    "outcome": (_outcome, _DROP, "not an outcome auto wrote; ignored"),
}

# last_exit's fields (each may be null): field -> (check, what is wrong)
_EXIT_RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "code": (_in(-(2**31), 2**31 - 1, whole=True), "not an exit code"),
    "signal": (_in(1, 255, whole=True), "not a signal number"),
    "pid": (_pid, "not a process id"),
    "at": (_time, "not a finite time"),
    "ran_s": (_time, "not a finite number of seconds"),
    "killed_after": (_time, "not a finite number of seconds"),
    "error": (lambda v: type(v) is str, "not a message"),
    "restart": (lambda v: v in ("periodic", "files changed"), "not a restart auto made"),
}


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a process (it names paths: logs, environment), or None."""
    if validate.NAME_RE.fullmatch(name):
        return None
    return "not a valid process name (1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit)"


def sanitize(name: str, entry: dict, logs_root: str, now: float) -> tuple[dict, list[str]]:
    """``(clean entry, problems)``: ``entry`` itself when nothing is wrong, else a copy with
    each bad value neutralised; each problem reads ``FIELD: what is wrong; what is done``.
    A null is never a problem (every reader takes it as unset). ``logs_root``: this home's
    ``output/logs``: a ``log_path`` must be in this service's directory there; ``now``: what a
    bad ``next_restart_at`` becomes."""
    fixes = []
    for key, value in entry.items():
        if value is None:
            continue
        rule = _RULES.get(key)
        if rule is not None:
            if not rule[0](value):
                fixes.append((key, rule[1], rule[2]))
            continue
        special = _SPECIAL.get(key)
        if special is not None:
            found = special(value, name, logs_root, now)
            if found is not None:
                fixes.append((key, *found))
    if not fixes:
        return entry, []
    clean = dict(entry)
    for key, value, _ in fixes:
        if value is _DROP:
            del clean[key]
        else:
            clean[key] = value
    return clean, [f"{key}: {why}" for key, _, why in fixes]


Found = tuple[object, str] | None  # (neutral value, what is wrong; what is done), or no problem


def _next_restart_at(value: object, name: str, logs_root: str, now: float) -> Found:
    if not _number(value):
        return now, "not a finite number; using now"
    if value > now + AHEAD_MAX:  # type: ignore[operator]
        return now, f"more than {AHEAD_MAX:g} s ahead; using now"
    return None


def _log_path(value: object, name: str, logs_root: str, now: float) -> Found:
    if not _text(value):
        return None, "not a path; ignored"
    own = f"{logs_root}/{name}/"
    path: str = value  # type: ignore[assignment]
    # Lexical, so no file is looked at: after the directory, nothing like "..", "." or "//"
    # may lead out of it (a run's directories and files never start with a dot).
    rest = "/" + path[len(own):]
    if not path.startswith(own) or "/." in rest or "//" in rest or rest == "/":
        return None, f"not a file in {own}; ignored (nothing outside it is read, written or rolled)"
    return None


def _explicitly_stopped(value: object, name: str, logs_root: str, now: float) -> Found:
    if type(value) is bool:
        return None
    return bool(value), f"not true or false; using {'true' if value else 'false'}"


def _env(value: object, name: str, logs_root: str, now: float) -> Found:
    if not isinstance(value, dict):
        return _DROP, "not an object of variables; ignored"
    bad = [k for k, v in value.items() if not (_text(k) and k and "=" not in k and _text(v))]
    if not bad:
        return None
    kept = {k: v for k, v in value.items() if k not in bad}
    listed = ", ".join(repr(k) for k in bad[:3]) + (", ..." if len(bad) > 3 else "")
    return kept, f"{listed}: not a NAME=text variable; left out"


def _last_exit(value: object, name: str, logs_root: str, now: float) -> Found:
    if not isinstance(value, dict):
        return _DROP, "not an object; ignored"
    bad = []
    for key, item in value.items():
        rule = _EXIT_RULES.get(key)
        if rule is not None and item is not None and not rule[0](item):
            bad.append((key, rule[1]))
    if not bad:
        return None
    wrong = {key for key, _ in bad}
    kept = {k: v for k, v in value.items() if k not in wrong}
    return kept, "; ".join(f"{key}: {why}" for key, why in bad) + "; ignored"


_SPECIAL: dict[str, Callable[[object, str, str, float], Found]] = {
    "next_restart_at": _next_restart_at,
    "log_path": _log_path,
    "explicitly_stopped": _explicitly_stopped,
    "env": _env,
    "last_exit": _last_exit,
}
