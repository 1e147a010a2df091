"""Immutable views that cross the core/face boundary, and entry defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from auto_core import backoff

DEFAULT_STOP_TIMEOUT = 10.0
DEFAULT_STOP_SIGNAL = "SIGTERM"
CLAIM_TTL = 60.0  # a start claim older than this belongs to a dead starter

RUNNING, STOPPED, DEAD = "running", "stopped", "dead"


def stop_timeout(entry: dict) -> float:
    value = entry.get("stop_timeout")
    return float(value) if isinstance(value, (int, float)) and value >= 0 else DEFAULT_STOP_TIMEOUT


def stop_signal(entry: dict) -> str:
    value = entry.get("stop_signal")
    return value if isinstance(value, str) and value else DEFAULT_STOP_SIGNAL


def backoff_max(entry: dict) -> float:
    value = entry.get("backoff_max")
    return float(value) if isinstance(value, (int, float)) and value > 0 else backoff.DEFAULT_MAX


def backoff_base(entry: dict) -> float:
    value = entry.get("backoff_base")
    return float(value) if isinstance(value, (int, float)) and value >= 0 else backoff.DEFAULT_BASE


def claim_fresh(entry: dict, now: float) -> bool:
    since = entry.get("starting_since")
    return isinstance(since, (int, float)) and 0 <= now - since < CLAIM_TTL


@dataclass(frozen=True)
class ProcessView:
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
    env: dict = field(default_factory=dict)
    restart_attempt: int = 0
    restart_every: float | None = None
    backoff_max: float = backoff.DEFAULT_MAX
    backoff_base: float = backoff.DEFAULT_BASE
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    stop_signal: str = DEFAULT_STOP_SIGNAL
    create_time: float | None = None
    starting: bool = False

    def to_json(self) -> dict:
        return asdict(self)
