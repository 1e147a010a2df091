"""A service's health check as its user writes it (``--health CHECK``), parsed without doing
anything: the CLI and ``auto.toml`` validate with it, the watcher (``supervisor/health.py``)
runs what it describes.

- ``http://HOST:PORT/PATH``, ``https://...``: a GET, healthy on a 2xx or 3xx answer;
- ``tcp://HOST:PORT``: a connection that succeeds;
- ``port``: a connection to the service's recorded port on 127.0.0.1;
- ``cmd:COMMAND``: a command run in the service's workdir and environment, healthy on exit 0.
"""

from __future__ import annotations

from auto_core.errors import UsageError
from auto_core.record import Record

HTTP, TCP, PORT, CMD = "http", "tcp", "port", "cmd"
OFF = ("none", "off", "")

DEFAULT_INTERVAL = 10.0
DEFAULT_TIMEOUT = 3.0
DEFAULT_RETRIES = 3
DEFAULT_START_PERIOD = 0.0

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
STATES = (STARTING, HEALTHY, UNHEALTHY)


class Check(Record, frozen=True):
    """``kind``: http, tcp, port or cmd. ``host``/``port``/``path``/``tls`` for http and tcp,
    ``command`` for cmd."""

    kind: str
    host: str = ""
    port: int = 0
    path: str = "/"
    tls: bool = False
    command: str = ""


def _hint(value: str) -> str:
    return (f"invalid health check {value!r}: use http://HOST:PORT/PATH, https://..., "
            "tcp://HOST:PORT, port, cmd:COMMAND or none")


def parse(value: object) -> Check | None:
    """The check ``value`` describes (None: ``none``, no check), or UsageError with one line."""
    if not isinstance(value, str):
        raise UsageError(f"invalid health check {value!r}: use a string")
    text = value.strip()
    if text.lower() in OFF:
        return None
    if "\x00" in text or "\n" in text:
        raise UsageError(_hint(value))
    if text == PORT:
        return Check(PORT)
    if text.startswith("cmd:"):
        command = text[4:].strip()
        if not command:
            raise UsageError(f"invalid health check {value!r}: the command after cmd: is empty")
        return Check(CMD, command=command)
    from urllib.parse import urlsplit

    scheme, sep, _ = text.partition("://")
    if not sep or scheme.lower() not in ("http", "https", "tcp"):
        raise UsageError(_hint(value))
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise UsageError(f"invalid health check {value!r}: bad port") from None
    host = parts.hostname or ""
    if not host:
        raise UsageError(f"invalid health check {value!r}: no host")
    scheme = parts.scheme.lower()
    if scheme == "tcp":
        if port is None or parts.path not in ("", "/") or parts.query:
            raise UsageError(f"invalid health check {value!r}: use tcp://HOST:PORT")
        return Check(TCP, host=host, port=port)
    tls = scheme == "https"
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Check(HTTP, host=host, port=port or (443 if tls else 80), path=path, tls=tls)


def text(value: object) -> str | None:
    """The check as stored: the text given, stripped, or None for ``none``."""
    return None if parse(value) is None else str(value).strip()


def valid(value: object) -> bool:
    """A stored check that parses (``store/sanitize``)."""
    try:
        return parse(value) is not None
    except UsageError:
        return False
