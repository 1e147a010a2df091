"""The log pane's tail loops: plain threads, no Textual (unit-testable, benchable).

The reading is auto_core's: ``follow.LogFollower`` for one process (as ``auto log NAME -f``),
``merge.Merged`` for every process at once (as ``auto log -f``). Both open at the end of the
current logs, cross rolls and follow each new run. What is the pane's own is pacing the UI:
lines are coalesced while the UI is busy: at most ``max_lines`` wait (a marker counts the rest,
which stay in the files), and a new batch is only handed over once the previous one was
consumed (``ready``) and not more often than ``min_gap``, so a fast writer never floods the
UI. When a writer is more than ``MAX_BEHIND`` bytes ahead of a process's follower, it skips
to the end instead of decoding megabytes nobody will see; its ``[auto] skipped ...`` lines
become dividers that coalescing never drops.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from auto_core.logtree.follow import SKIPPED, LogFollower


@dataclass(frozen=True)
class Divider:
    """A marker line the pane draws itself (file switch, output not shown)."""

    text: str
    path: Path | None = None  # set when the pane now follows another file


MAX_BEHIND = 8 << 20  # bytes behind the writer before the follower skips ahead


class _Coalescer:
    """Lines waiting for the UI: at most ``max_lines`` (the oldest go, counted), handed over
    when the consumer is ``ready`` and ``min_gap`` passed since the last batch."""

    def __init__(self, max_lines: int, min_gap: float) -> None:
        self.max_lines = max_lines
        self.min_gap = min_gap
        self.pending: deque = deque(maxlen=max_lines)
        self.notes: list[Divider] = []  # always shown
        self.dropped = 0
        self.last = 0.0

    def add(self, items: list) -> None:
        self.dropped += max(0, len(self.pending) + len(items) - self.max_lines)
        self.pending.extend(items)

    def take(self, ready: threading.Event) -> list | None:
        """The batch to hand over now, or None (nothing waits, the consumer is busy, too soon)."""
        now = time.monotonic()
        if not (self.pending or self.notes) or not ready.is_set() or now - self.last < self.min_gap:
            return None
        ready.clear()
        batch: list = [*self.notes]
        if self.dropped:
            batch.append(Divider(f"fast output: {self.dropped} lines not shown here (they are in the file)"))
        batch.extend(self.pending)
        self.pending.clear()
        self.notes.clear()
        self.dropped = 0
        self.last = now
        return batch


def run_tail(
    resolve: Callable[[], Path | None],
    stop: threading.Event,
    ready: threading.Event,
    opened: Callable[[Path, list[str]], None],
    arrived: Callable[[list[str | Divider]], None],
    max_lines: int = 200,
    interval: float = 0.1,
    min_gap: float = 0.1,
    open_lines: int | None = None,
) -> None:
    """Follow ``resolve()``'s file until ``stop`` is set.

    Calls ``opened(path, lines)`` once a file is found (its last ``open_lines``, default
    ``max_lines``), then
    ``arrived([...])`` with ``str`` lines and ``Divider`` markers: at most ``max_lines``
    per batch (a marker counts what a fast writer produced beyond that), at most one batch per
    ``min_gap`` seconds, and only after the consumer set ``ready`` (it must also be set
    initially). So the UI's cost is bounded whatever the writer's speed.
    """
    follower = LogFollower(resolve, open_lines or max_lines, max_behind=MAX_BEHIND)
    waiting = _Coalescer(max_lines, min_gap)
    try:
        while not stop.is_set():
            events = follower.poll()
            for event in events:
                if event.kind == "open":
                    opened(event.path, event.lines)
                elif event.kind == "lines":
                    lines = event.lines
                    if any(line.startswith(SKIPPED) for line in lines):
                        waiting.notes += [Divider(line.removeprefix("[auto] ")) for line in lines
                                          if line.startswith(SKIPPED)]
                        lines = [line for line in lines if not line.startswith(SKIPPED)]
                    waiting.add(lines)
                else:
                    waiting.add([Divider(f"new run: {event.path.name}", event.path)])
            batch = waiting.take(ready)
            if batch is not None:
                arrived(batch)
            # Idle: poll. Busy: a short pause so this thread never starves the UI of the GIL.
            stop.wait(0.01 if events or follower.more else interval)
    finally:
        follower.close()


class Merger(Protocol):
    """What ``run_merged`` needs of ``auto_core.logtree.merge.Merged``."""

    more: bool

    @property
    def names(self) -> list[str]: ...

    def open(self, lines: int, *, since: float | None = None, whole: bool = True) -> list[tuple[str, str]]: ...

    def poll(self) -> list[tuple[str, str]]: ...

    def close(self) -> None: ...


def run_merged(
    merged: Merger,
    stop: threading.Event,
    ready: threading.Event,
    opened: Callable[[list[str], list[tuple[str, str]]], None],
    arrived: Callable[[list[str], list[tuple[str, str] | Divider]], None],
    max_lines: int = 200,
    interval: float = 0.1,
    min_gap: float = 0.1,
    open_lines: int | None = None,
) -> None:
    """Follow every process ``merged`` selects until ``stop`` is set, paced as ``run_tail``.

    Calls ``opened(names, pairs)`` with the last ``open_lines`` lines of them all in time
    order, then ``arrived(names, items)``: ``(name, line)`` pairs and ``Divider`` markers (a
    process's ``[auto] skipped ...`` becomes one, named). ``names`` are the processes followed
    at that moment.
    """
    waiting = _Coalescer(max_lines, min_gap)
    try:
        opening = merged.open(open_lines or max_lines)
        opened(merged.names, opening)
        while not stop.is_set():
            pairs = merged.poll()
            if any(line.startswith(SKIPPED) for _, line in pairs):
                waiting.notes += [Divider(f"{name}: {line.removeprefix('[auto] ')}") for name, line in pairs
                                  if line.startswith(SKIPPED)]
                pairs = [pair for pair in pairs if not pair[1].startswith(SKIPPED)]
            waiting.add(pairs)
            batch = waiting.take(ready)
            if batch is not None:
                arrived(merged.names, batch)
            stop.wait(0.01 if pairs or merged.more else interval)
    finally:
        merged.close()
