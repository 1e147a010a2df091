"""Immutable views that cross the core/face boundary, and entry defaults."""

from __future__ import annotations

import signal

from auto_core import backoff
from auto_core import healthcheck as hc
from auto_core.record import Factory, Record

DEFAULT_STOP_TIMEOUT = 10.0
DEFAULT_STOP_SIGNAL = "SIGTERM"
CLAIM_TTL = 60.0  # a start claim older than this belongs to a dead starter

RUNNING, STOPPED, DEAD = "running", "stopped", "dead"


def stop_timeout(entry: dict) -> float:
    value = entry.get("stop_timeout")
    return float(value) if isinstance(value, (int, float)) and value >= 0 else DEFAULT_STOP_TIMEOUT


def stop_signal(entry: dict) -> str:
    value = entry.get("stop_signal")
    # A hand-edited or foreign state file may name a signal this platform lacks.
    return value if isinstance(value, str) and value in signal.Signals.__members__ else DEFAULT_STOP_SIGNAL


# Tolerant readers for fields a hand-edited or foreign state file may hold with the
# wrong type: a bad value reads as the default instead of crashing every face.


def count(entry: dict, key: str) -> int:
    """A non-negative integer field (``restarts``, ``restart_attempt``), else 0."""
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return 0
    return max(0, int(min(value, 2**62)))


def env(entry: dict) -> dict[str, str]:
    """The ``env`` mapping with string keys and values; anything else reads as empty."""
    value = entry.get("env")
    if not isinstance(value, dict):
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items() if v is not None}


def last_exit(entry: dict) -> dict | None:
    value = entry.get("last_exit")
    return value if isinstance(value, dict) else None


def restart_every(entry: dict) -> float | None:
    value = entry.get("restart_every")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        return None
    return float(value)


def workdir(entry: dict) -> str | None:
    value = entry.get("workdir")
    return value if isinstance(value, str) and value else None


def texts(entry: dict, key: str) -> tuple[str, ...]:
    """A list of strings (``restart_on_change``, ``ignore``) as a tuple; anything else reads
    as empty."""
    value = entry.get(key)
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str) and v)


def backoff_max(entry: dict) -> float:
    value = entry.get("backoff_max")
    return float(value) if isinstance(value, (int, float)) and value > 0 else backoff.DEFAULT_MAX


def backoff_base(entry: dict) -> float:
    value = entry.get("backoff_base")
    return float(value) if isinstance(value, (int, float)) and value >= 0 else backoff.DEFAULT_BASE


def claim_fresh(entry: dict, now: float) -> bool:
    """A start claim that still counts: younger than CLAIM_TTL and, when its owner is
    recorded (``starting_by`` = [pid, create time]), that owner still alive. A starter that
    was SIGKILLed between claim and spawn does not block the service for a minute."""
    since = entry.get("starting_since")
    if isinstance(since, bool) or not isinstance(since, (int, float)) or not 0 <= now - since < CLAIM_TTL:
        return False
    owner = entry.get("starting_by")
    if isinstance(owner, list) and len(owner) == 2:
        from auto_core.proc import identity  # lazy: model stays import-light

        return identity.is_ours(owner[0], owner[1])
    return True


class Definition(Record, frozen=True):
    """A service as its user defined it (``auto add``'s options): what the watcher runs it by
    and what the faces show. Built from a state entry by ``definition``, whose readers turn a
    value a hand edit broke into its default, so the code that takes a Definition needs no
    checks of its own. The rest of an entry (pid, counters, requests) is the watcher's."""

    command: str
    workdir: str | None
    env: dict
    port: int | None
    restart_every: float | None
    backoff_base: float
    backoff_max: float
    stop_signal: str
    stop_timeout: float
    daemon_follow: bool
    restart_on_change: tuple[str, ...] = ()  # absolute paths: a change restarts a running run
    ignore: tuple[str, ...] = ()  # the user's globs, besides the watcher's defaults
    health: str | None = None  # the check's text (``healthcheck.parse``)
    health_interval: float = hc.DEFAULT_INTERVAL
    health_timeout: float = hc.DEFAULT_TIMEOUT
    health_retries: int = hc.DEFAULT_RETRIES
    health_start_period: float = hc.DEFAULT_START_PERIOD
    after: tuple = ()  # names of the services it starts after

    @property
    def stop_signum(self) -> int:
        return int(signal.Signals[self.stop_signal])


def definition(entry: dict) -> Definition:
    command, port = entry.get("command"), entry.get("port")
    return Definition(
        command=command if isinstance(command, str) else "",
        workdir=workdir(entry),
        env=env(entry),
        port=port if isinstance(port, int) and not isinstance(port, bool) else None,
        restart_every=restart_every(entry),
        backoff_base=backoff_base(entry),
        backoff_max=backoff_max(entry),
        stop_signal=stop_signal(entry),
        stop_timeout=stop_timeout(entry),
        daemon_follow=entry.get("daemon_follow") is not False,
        restart_on_change=texts(entry, "restart_on_change"),
        ignore=texts(entry, "ignore"),
        **_health_fields(entry),
    )


def _positive(entry: dict, key: str, default: float, minimum: float = 0.0) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        return default
    return float(value)


def _health_fields(entry: dict) -> dict:
    """The health check and start order (store/sanitize has checked their values)."""
    check, retries, after = entry.get("health"), entry.get("health_retries"), entry.get("after")
    return {
        "health": check if isinstance(check, str) and check else None,
        "health_interval": _positive(entry, "health_interval", hc.DEFAULT_INTERVAL, 0.1),
        "health_timeout": _positive(entry, "health_timeout", hc.DEFAULT_TIMEOUT, 0.1),
        "health_retries": retries if isinstance(retries, int) and not isinstance(retries, bool)
        and retries >= 1 else hc.DEFAULT_RETRIES,
        "health_start_period": _positive(entry, "health_start_period", hc.DEFAULT_START_PERIOD),
        "after": tuple(n for n in after if isinstance(n, str)) if isinstance(after, list) else (),
    }


RUN_SETTINGS = ("command", "workdir", "port", "env", "captured")  # what a run keeps until its next start
_SAID = {"captured": "captured environment"}


def digest(value: object) -> str:
    """A short fingerprint of a JSON value: what the state keeps of a run's settings, so no
    second copy of a command or an environment (which may hold secrets) outlives a change."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def run_settings(d: Definition, captured: dict | None = None) -> dict:
    """What a run is started with and keeps until its next start, as fingerprints (the port as
    it is). The watcher records it at each spawn (the entry's ``started_with``), so the faces
    can tell when the definition was changed since (``changed_since``). ``captured``: the
    environment captured at ``add`` or ``update --update-env`` that the run got."""
    return {"command": digest(d.command), "workdir": digest(d.workdir), "port": d.port,
            "env": digest(d.env), "captured": None if captured is None else digest(captured)}


def changed_since(entry: dict) -> list[str]:
    """What a restart would change: the settings of the definition now that differ from those
    the run started with, as the faces say them (``port 8124``, ``no port``, ``command``,
    ``workdir``, ``env``, ``captured environment``). Empty when nothing differs or nothing was
    recorded."""
    then = entry.get("started_with")
    if not isinstance(then, dict):
        return []
    now = run_settings(definition(entry))
    now["captured"] = entry.get("env_captured")  # its fingerprint, kept by add and update
    changed = []
    for key in RUN_SETTINGS:
        if key == "captured" and (now[key] is None or then.get(key) is None):
            continue  # recorded before fingerprints were kept: unknown, not changed
        if then.get(key) != now[key]:
            if key == "port":
                changed.append(f"port {now['port']}" if now["port"] is not None else "no port")
            else:
                changed.append(_SAID.get(key, key))
    return changed


class ProcessView(Record, frozen=True):
    name: str
    status: str
    pid: int | None
    port: int | None
    command: str
    workdir: str | None
    uptime_s: float | None
    restarts: int
    next_restart_in_s: float | None
    log_path: str | None
    last_exit: dict | None
    env: dict = Factory(factory=dict)
    restart_attempt: int = 0
    restart_every: float | None = None
    backoff_max: float = backoff.DEFAULT_MAX
    backoff_base: float = backoff.DEFAULT_BASE
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    stop_signal: str = DEFAULT_STOP_SIGNAL
    create_time: float | None = None
    starting: bool = False
    daemon_follow: bool = True
    restart_on_change: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    # A request the watcher has not answered yet (start, stop, restart, remove) and when it
    # was made: a face shows "stopping" (and the seconds left before SIGKILL: the request's
    # time plus stop_timeout) or "starting" from these.
    pending: str | None = None
    pending_since: float | None = None
    # The health check's text, its state (starting, healthy, unhealthy; None: no check or
    # not running) and the last result the watcher recorded ({time, ok, detail}).
    health_check: str | None = None
    health: str | None = None
    last_health: dict | None = None
    after: list = Factory(factory=list)  # a list: the view is JSON as it is
    # The definition changed since the running run started (``changed_since``): what a restart
    # would apply, e.g. ["port 8124"].
    changed: list = Factory(factory=list)
    # The services a start of it waits for (``--after``), as the watcher holds it: a start of
    # start-all or apply, or the watcher's own start of a dead service. Empty otherwise.
    waiting_for: list = Factory(factory=list)

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.to_dict().items()}


# --- requests: how a face asks the watcher to act ------------------------------------------
# A face writes ``request`` = {"id", "op", ...} into the entry under the state lock; the
# watcher carries it out and, in the transaction that records what it did, removes the request
# and writes ``outcome`` = {"id", "ok", "message", "pid"} with the same id.

START, STOP, RESTART, REMOVE = "start", "stop", "restart", "remove"
OPS = (START, STOP, RESTART, REMOVE)


def request(entry: dict) -> dict | None:
    """The pending request, when it is well formed."""
    value = entry.get("request")
    if isinstance(value, dict) and isinstance(value.get("id"), str) and value.get("op") in OPS:
        return value
    return None


def outcome(entry: dict, request_id: str) -> dict | None:
    """The watcher's answer to request ``request_id``, once written."""
    value = entry.get("outcome")
    if isinstance(value, dict) and value.get("id") == request_id:
        return value
    return None
