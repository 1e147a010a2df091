"""The log pane's tail loop: plain threads, no Textual (unit-testable, benchable).

The reading is auto_core's ``follow.LogFollower``, the same as ``auto log -f``'s: it opens at
the end of the current log, crosses rolls and follows each new run. What is the pane's own is
pacing the UI: lines are coalesced while the UI is busy: at most ``max_lines`` wait (a marker
counts the rest, which stay in the file), and a new batch is only handed over once the
previous one was consumed (``ready``) and not more often than ``min_gap``, so a fast writer
never floods the UI. When the writer is more than ``MAX_BEHIND`` bytes ahead, the follower
skips to the end instead of decoding megabytes nobody will see; its ``[auto] skipped ...``
lines become dividers that coalescing never drops.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from auto_core.logtree.follow import SKIPPED, LogFollower


@dataclass(frozen=True)
class Divider:
    """A marker line the pane draws itself (file switch, output not shown)."""

    text: str
    path: Path | None = None  # set when the pane now follows another file


MAX_BEHIND = 8 << 20  # bytes behind the writer before the follower skips ahead


def run_tail(
    resolve: Callable[[], Path | None],
    stop: threading.Event,
    ready: threading.Event,
    emit: Callable[[str, object], None],
    max_lines: int = 200,
    interval: float = 0.1,
    min_gap: float = 0.1,
    open_lines: int | None = None,
) -> None:
    """Follow ``resolve()``'s file until ``stop`` is set.

    Calls ``emit("open", (path, lines))`` once a file is found (its last ``open_lines``,
    default ``max_lines``), then
    ``emit("lines", [...])`` with ``str`` lines and ``Divider`` markers: at most ``max_lines``
    per batch (a marker counts what a fast writer produced beyond that), at most one batch per
    ``min_gap`` seconds, and only after the consumer set ``ready`` (it must also be set
    initially). So the UI's cost is bounded whatever the writer's speed.
    """
    follower = LogFollower(resolve, open_lines or max_lines, max_behind=MAX_BEHIND)
    pending: deque = deque(maxlen=max_lines)
    notes: list[Divider] = []  # what the follower skipped: always shown
    dropped = 0
    last_emit = 0.0
    try:
        while not stop.is_set():
            events = follower.poll()
            for event in events:
                if event.kind == "open":
                    emit("open", (event.path, event.lines))
                elif event.kind == "lines":
                    lines = event.lines
                    if any(line.startswith(SKIPPED) for line in lines):
                        notes += [Divider(line.removeprefix("[auto] ")) for line in lines if line.startswith(SKIPPED)]
                        lines = [line for line in lines if not line.startswith(SKIPPED)]
                    dropped += max(0, len(pending) + len(lines) - max_lines)
                    pending.extend(lines)
                else:
                    pending.append(Divider(f"new run: {event.path.name}", event.path))
            now = time.monotonic()
            if (pending or notes) and ready.is_set() and now - last_emit >= min_gap:
                ready.clear()
                batch: list[str | Divider] = [*notes]
                if dropped:
                    batch.append(Divider(f"fast output: {dropped} lines not shown here (they are in the file)"))
                batch.extend(pending)
                emit("lines", batch)
                pending.clear()
                notes.clear()
                dropped = 0
                last_emit = now
            # Idle: poll. Busy: a short pause so this thread never starves the UI of the GIL.
            stop.wait(0.01 if events or follower.more else interval)
    finally:
        follower.close()
