"""The log pane's tail loop: plain threads and files, no Textual (unit-testable, benchable).

Opens at the end of the current log (``logs.tail_lines`` seeks from the end), then reads new
complete lines with ``logs.LineReader``. Lines are coalesced while the UI is busy: at most
``max_lines`` wait (older ones would scroll out of the pane anyway), and a new batch is only
handed over once the previous one was consumed (``ready``), so a fast writer never floods
the UI's message queue. When the writer is far ahead, it jumps to the end instead of decoding
megabytes nobody will see.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from auto_core import logs


@dataclass(frozen=True)
class Divider:
    """A marker line the pane draws itself (file switch, skipped output)."""

    text: str
    path: Path | None = None  # set when the pane now follows another file


SKIP_AHEAD = 8 << 20  # bytes behind the writer before jumping to the end


def run_tail(
    resolve: Callable[[], Path | None],
    stop: threading.Event,
    ready: threading.Event,
    emit: Callable[[str, object], None],
    max_lines: int = 1000,
    interval: float = 0.1,
) -> None:
    """Follow ``resolve()``'s file until ``stop`` is set.

    Calls ``emit("open", (path, lines))`` once a file is found, then ``emit("lines", [...])``
    with ``str`` lines and ``Divider`` markers. ``ready`` must be set by the consumer after
    each batch (and initially).
    """
    path: Path | None = None
    while path is None and not stop.is_set():
        path = resolve()
        if path is None:
            stop.wait(interval * 3)
    if path is None:
        return
    try:
        lines, end = logs.tail_lines(path, max_lines)
    except OSError:
        lines, end = [], 0
    emit("open", (path, lines))
    reader = logs.LineReader(path, end)
    pending: deque = deque(maxlen=max_lines)
    try:
        while not stop.is_set():
            got = reader.read()
            if got:
                pending.extend(got)
                size = _size(path)
                if size - reader.offset > SKIP_AHEAD:
                    skipped = size - reader.offset
                    reader.close()
                    lines, end = logs.tail_lines(path, max_lines)
                    reader = logs.LineReader(path, end)
                    pending.clear()
                    pending.append(Divider(f"skipped {skipped >> 20} MiB of fast output"))
                    pending.extend(lines)
            else:
                new = resolve()
                if new is not None and new != path:
                    pending.extend(reader.read() + reader.flush_partial())
                    reader.close()
                    path = new
                    pending.append(Divider(f"new run: {path.name}", path))
                    reader = logs.LineReader(path, 0)
                    continue
            if pending and ready.is_set():
                ready.clear()
                emit("lines", list(pending))
                pending.clear()
            if not got:
                stop.wait(interval)
    finally:
        reader.close()


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
