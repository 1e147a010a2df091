"""The log pane's tail loop: plain threads and files, no Textual (unit-testable, benchable).

Opens at the end of the current log (``logs.tail_lines`` seeks from the end), then reads new
complete lines with ``logs.LineReader``. Lines are coalesced while the UI is busy: at most
``max_lines`` wait (a marker counts the rest, which stay in the file), and a new batch is only
handed over once the previous one was consumed (``ready``) and not more often than
``min_gap``, so a fast writer never floods the UI. When the writer is far ahead, it jumps to
the end instead of decoding megabytes nobody will see.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from auto_core.logtree import logs


@dataclass(frozen=True)
class Divider:
    """A marker line the pane draws itself (file switch, skipped output)."""

    text: str
    path: Path | None = None  # set when the pane now follows another file


SKIP_AHEAD = 4 << 20  # bytes behind the writer before jumping to the end


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
    path: Path | None = None
    while path is None and not stop.is_set():
        path = resolve()
        if path is None:
            stop.wait(interval * 3)
    if path is None:
        return
    try:
        lines, end = logs.tail_lines(path, open_lines or max_lines)
    except OSError:
        lines, end = [], 0
    emit("open", (path, lines))
    reader = logs.LineReader(path, end)
    pending: deque = deque(maxlen=max_lines)
    dropped = 0
    last_emit = 0.0
    try:
        while not stop.is_set():
            got = reader.read()
            if got:
                dropped += max(0, len(pending) + len(got) - max_lines)
                pending.extend(got)
                size = _size(path)
                if size - reader.offset > SKIP_AHEAD:
                    dropped += len(pending)
                    reader.close()
                    lines, end = logs.tail_lines(path, max_lines)
                    reader = logs.LineReader(path, end)
                    pending.clear()
                    pending.extend(lines)
                    dropped = max(dropped, 1)
            else:
                new = resolve()
                if new is not None and new != path:
                    rest = reader.read() + reader.flush_partial()
                    dropped += max(0, len(pending) + len(rest) - max_lines)
                    pending.extend(rest)
                    reader.close()
                    path = new
                    pending.append(Divider(f"new run: {path.name}", path))
                    reader = logs.LineReader(path, 0)
                    continue
            now = time.monotonic()
            if pending and ready.is_set() and now - last_emit >= min_gap:
                ready.clear()
                batch = list(pending)
                if dropped:
                    batch.insert(0, Divider(f"fast output: {dropped} lines not shown here (they are in the file)"))
                emit("lines", batch)
                pending.clear()
                dropped = 0
                last_emit = now
            # Idle: poll. Busy: a short pause so this thread never starves the UI of the GIL.
            stop.wait(interval if not got else 0.01)
    finally:
        reader.close()


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
