"""Short human-readable text shared by the CLI and the TUI: quantities, tables."""

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


def size(n: int | None) -> str:
    """``512B``, ``12K``, ``3.4M``, ``1.2G`` (binary units); ``-`` for None."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "K", "M"):
        if value < 1024:
            return f"{value:.0f}{unit}" if unit in ("B", "K") else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}G"


def table(rows: list[list[str]]) -> str:
    """Rows as columns separated by at least two spaces (what scripts parse in `auto -q ps`)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)).rstrip() for r in rows]
    return "\n".join(lines)
