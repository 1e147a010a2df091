"""Several processes' logs as one stream: what ``auto log`` prints for no name, several names
or a glob. Each process is read by its own ``follow.LogFollower``; this module decides the order
of their lines and keeps the set of processes current while they are followed.

Order. Log lines carry no time of their own.

- The opening lines (the last N of each current log) are placed by an estimate: a line's time
  is taken between its file's start (the run's start, from the file name; the last roll for a
  rolled file) and the file's last write (its mtime), in proportion to the line's byte offset.
  Lines of one file keep their order, and the last N of them all are kept.
- Lines read while following come in the order they were read (a reader polls every file in
  turn, so lines a tenth of a second apart can come in either order).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from auto_core.logtree import follow, logs

PARTIAL_WAIT = 0.5  # seconds an unterminated line waits for its newline before it is printed
SELECT_EVERY = 0.25  # seconds between looks at which processes are selected
BUDGET = 64 * 1024  # bytes read from one process per turn: memory stays bounded, turns fair

Resolve = Callable[[str], "str | os.PathLike | None"]


@dataclass
class _Source:
    follower: follow.LogFollower
    leaving: bool = False  # no longer selected: read to its end, then dropped
    waiting: float | None = None  # since when an unterminated line waits


class Merged:
    """The logs of the processes ``select`` names, followed together.

    ``resolve(name)`` gives a process's current log; ``resolve_new(name)`` the log of a run
    that began after the followers opened (the recorded one only: an older run's file is not
    new output). ``max_behind``: a process's reader more than that many bytes behind its
    writer skips to the end and says so (``follow.RunReader``). ``open`` gives the opening
    lines; ``poll`` what was written since, as
    ``(name, line)`` pairs, only whole lines (an unterminated one after ``PARTIAL_WAIT``).
    """

    def __init__(self, select: Callable[[], Iterable[str]], resolve: Resolve, resolve_new: Resolve,
                 *, clock: Callable[[], float] = time.monotonic, max_behind: int | None = None):
        self.select = select
        self.max_behind = max_behind
        self.resolve = resolve
        self.resolve_new = resolve_new
        self.clock = clock
        self.more = False  # the last poll stopped at a budget: poll again at once
        self._sources: dict[str, _Source] = {}
        self._next_select = 0.0

    @property
    def names(self) -> list[str]:
        return list(self._sources)

    def open(self, lines: int, *, since: float | None = None, whole: bool = True) -> list[tuple[str, str]]:
        """The last ``lines`` lines overall of the selected processes' current logs, in the
        estimated order (only logs written at or after the wall-clock time ``since``).
        ``whole``: an unterminated last line is left to ``poll`` (following)."""
        placed: list[tuple[float, int, int, str, str]] = []
        for rank, name in enumerate(self.select()):
            path = self.resolve(name)
            if path is None:  # no run yet: all of its first run is new
                self._add(name, from_start=True)
                continue
            source = _Source(follow.LogFollower(_fixed(self.resolve, name, Path(path)), lines, self.max_behind,
                                                whole=whole))
            self._sources[name] = source
            for event in source.follower.poll():
                if event.kind == "open" and event.lines:
                    placed += _place(rank, name, event.path, event.lines, event.offset, since)
        self._next_select = self.clock() + SELECT_EVERY
        placed.sort()
        return [(name, line) for *_, name, line in (placed[-lines:] if lines > 0 else [])]

    def poll(self, budget: int = BUDGET) -> list[tuple[str, str]]:
        now = self.clock()
        if now >= self._next_select:
            self._reselect()
            self._next_select = now + SELECT_EVERY
        out: list[tuple[str, str]] = []
        self.more = False
        for name, source in list(self._sources.items()):
            follower = source.follower
            events = follower.poll(budget)
            for event in events:
                if event.kind == "switch":
                    out.append((name, f"----- new run: {event.path} -----"))
                else:
                    out.extend((name, line) for line in event.lines)
            if events or follower.more:
                source.waiting = None
                self.more = self.more or follower.more
            elif follower.partial:
                if source.waiting is None:
                    source.waiting = now
                elif now - source.waiting >= PARTIAL_WAIT:
                    out.extend((name, line) for line in follower.flush())
                    source.waiting = None
            elif source.leaving:
                follower.close()
                del self._sources[name]
                out.append((name, "----- removed -----"))
        return out

    def close(self) -> None:
        for source in self._sources.values():
            source.follower.close()
        self._sources.clear()

    def _reselect(self) -> None:
        selected = set(self.select())
        for name, source in self._sources.items():
            source.leaving = name not in selected
        for name in sorted(selected - set(self._sources)):
            self._add(name, from_start=True)

    def _add(self, name: str, *, from_start: bool) -> None:
        resolve = _fixed(self.resolve_new, name, None)
        self._sources[name] = _Source(follow.LogFollower(resolve, 0, self.max_behind, from_start=from_start))


def _fixed(resolve: Resolve, name: str, first: Path | None) -> Callable[[], Path | None]:
    """``resolve`` for one name that keeps the last file found when there is none any more (a
    process removed while followed: its last file is read to its end)."""
    last = [first]

    def current() -> Path | None:
        found = resolve(name)
        if found is not None:
            last[0] = Path(found)
        return last[0]

    return current


def _place(rank: int, name: str, path: Path, lines: list[str], end: int,
           since: float | None) -> list[tuple[float, int, int, str, str]]:
    """``lines`` (ending at offset ``end`` of ``path``) with the estimated time of each:
    ``(time, rank, index, name, line)``. None of them when the file was last written before
    ``since``."""
    try:
        stat = os.stat(path)
    except OSError:
        return []
    if since is not None and stat.st_mtime < since:
        return []
    begun = _begun(path, stat.st_mtime)
    size = max(stat.st_size, end, 1)
    span = stat.st_mtime - begun
    placed = []
    offset = end
    for index in range(len(lines) - 1, -1, -1):
        placed.append((begun + span * offset / size, rank, index, name, lines[index]))
        offset -= len(lines[index].encode()) + 1
        offset = max(offset, 0)
    placed.reverse()
    return placed


def _begun(path: Path, mtime: float) -> float:
    """When ``path``'s present content began: its newest rolled part's last write, else the
    run's start from the file name (``mtime`` if neither is known; never after it)."""
    parsed = logs.parse_name(path.name)
    begun = parsed[1].timestamp() if parsed else mtime
    try:
        parts = logs.parts_by_number(path)
    except OSError:
        parts = {}
    for files in parts.values():
        for part in files:
            try:
                begun = max(begun, os.stat(part).st_mtime)
            except OSError:
                pass
    return min(begun, mtime)
