"""Restart delays: ``min(base * 2**attempt, cap)``, exponent bounded."""

from __future__ import annotations

import zlib

DEFAULT_BASE = 1.0
DEFAULT_MAX = 7200.0
RESET_AFTER = 60.0  # seconds of continuous uptime that clear the counter
MAX_EXPONENT = 62  # 2**62 s is far past any cap; stops overflow for huge stored counters


def delay(attempt: object, base: float = DEFAULT_BASE, cap: float = DEFAULT_MAX) -> float:
    try:
        # Any stored value (JSON: a number, a string, null, garbage): int() of a wrong type
        # raises TypeError, handled below, so no narrower type is wanted here.
        n = int(attempt)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        n = 0
    n = min(max(n, 0), MAX_EXPONENT)
    return float(min(base * (2**n), cap))


def jitter(name: str, seconds: float) -> float:
    """A small per-name offset (up to 5 % of the delay, none for short delays), so services
    that crashed together do not all restart in the same instant."""
    if seconds < 4:
        return 0.0
    fraction = (zlib.crc32(name.encode()) % 1000) / 1000.0
    return seconds * 0.05 * fraction
