"""Input rules shared by the CLI and the TUI forms. Each raises UsageError with one line."""

from __future__ import annotations

import os
import re

from auto_core.errors import UsageError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A number as people type it: ASCII digits, an optional fraction. float() and int() also take
# other scripts' digits ('３'), underscores ('1_0'), signs, 'inf' and 'nan'.
PLAIN_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def name(value: str) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise UsageError(
            f"invalid name {value!r}: use 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit"
        )
    return value


def command(value: str) -> str:
    if not value or not value.strip():
        raise UsageError("the command is empty")
    if "\x00" in value:
        raise UsageError("the command contains a NUL byte")
    return value


def port(value: str | int | None) -> int | None:
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in ("off", "none", ""):
        return None
    if not re.fullmatch(r"[0-9]{1,5}", text):  # int() would take '８０８０', '80_80', '+80'
        raise UsageError(f"invalid port {value!r}: use a number from 1 to 65535")
    number = int(text)
    if not 1 <= number <= 65535:
        raise UsageError(f"invalid port {number}: use a number from 1 to 65535")
    return number


def workdir(value: str | os.PathLike) -> str:
    # Imported here: the state's loader uses this module, and `auto ps` does without pathlib.
    from pathlib import Path

    text = os.fspath(value)
    if not text or "\x00" in text:
        raise UsageError(f"invalid workdir {text!r}")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    path = Path(os.path.normpath(path))
    if not path.exists():
        raise UsageError(f"workdir {str(path)!r} does not exist")
    if not path.is_dir():
        raise UsageError(f"workdir {str(path)!r} is not a directory")
    return str(path)


def env_pair(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep:
        raise UsageError(f"invalid --env {value!r}: use KEY=VALUE")
    if not ENV_KEY_RE.fullmatch(key):
        raise UsageError(f"invalid environment variable name {key!r}")
    if "\x00" in val:
        raise UsageError(f"environment value for {key} contains a NUL byte")
    return key, val


def interval(value: str | float | int | None) -> float | None:
    """Parse ``90``, ``30s``, ``30m``, ``2h``, ``1d`` (or ``off``) into seconds."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("off", "none", ""):
        return None
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)", text)
    if not match:
        raise UsageError(f"invalid interval {value!r}: use e.g. 90, 30s, 30m, 2h, 1d or off")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not 1 <= seconds <= 366 * 86400:
        raise UsageError(f"invalid interval {value!r}: use 1 s to 366 d")
    return seconds


def seconds(value: str | float | int, what: str, minimum: float = 0.0) -> float:
    if isinstance(value, str) and not PLAIN_NUMBER.fullmatch(value.strip()):
        raise UsageError(f"invalid {what} {value!r}: use a number of seconds")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"invalid {what} {value!r}: use a number of seconds") from None
    if not (number >= minimum) or number > 10**7:
        raise UsageError(f"invalid {what} {value!r}: use a number of seconds >= {minimum:g}")
    return number


def signal_name(value: str) -> str:
    import signal

    text = str(value).strip().upper()
    if not text.startswith("SIG"):
        text = "SIG" + text
    if text not in signal.Signals.__members__:
        raise UsageError(f"invalid signal {value!r}")
    return text
