"""Short human-readable quantities shared by the CLI and the TUI."""

from __future__ import annotations

import math


def duration(seconds: float | None) -> str:
    """``42s``, ``5m03s``, ``2h07m``, ``3d04h``; ``-`` for None."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def countdown(seconds: float | None) -> str:
    """A time left, rounded up: 0.4 s to go reads ``1s``, never ``0s`` while still waiting."""
    if seconds is None:
        return "-"
    return duration(math.ceil(seconds))
