"""Following a process's current log live: the one reader behind `auto log -f` and the TUI's
log pane.

The watcher rolls a run's file in place (``logmaint.roll``): it copies it to ``FILE.K`` (K one
more than the newest part, through ``FILE.K.tmp``), then empties it. A reader that is behind
when that happens finds its unread bytes in the new part at the same offsets, so it reads that
part to its end, then any later parts from their start, then the emptied file from its start:
it never jumps. It skips only output it cannot read (a part deleted by retention before it got
there, a file emptied outside a roll) or, when asked, what lies more than ``max_behind`` bytes
behind the writer; either way one ``[auto] skipped ...`` line says how much and where it is.
Lines are cut as ``logs.LineSplitter`` cuts them, so memory is bounded whatever the writer does.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from auto_core.logtree import logs

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import threading
    from typing import BinaryIO, Literal

# A directory's mtime moves in coarse clock ticks (seconds on some file systems): a listing is
# trusted to stay current while the mtime holds only once the mtime is this much in the past.
SETTLE_NS = 2_000_000_000
TRUNCATE_GRACE = 0.5  # seconds a file emptied without a visible roll waits for the part
RESUME = 64 * 1024  # bytes of the newest output kept when a reader skips ahead
SKIPPED = "[auto] skipped "  # how the line that says output was passed over begins
MARK = 16  # bytes before a reader's place that a file must still hold for the place to stand


@dataclass(frozen=True)
class Rolls:
    """What the directory said about a file's rolls at one moment."""

    stamp: int  # the directory's mtime
    parts: dict[int, list[Path]] = field(default_factory=dict)
    rolling: bool = False  # a roll's temporary copy stands: the file may be emptied any moment

    @property
    def newest(self) -> int:
        return max(self.parts, default=0)


class _Rolls:
    """Watches one file's directory for rolls: one ``stat`` per look, a listing only when the
    directory changed (or changed too recently for its mtime to be trusted)."""

    def __init__(self, path: Path):
        self.path = path
        self._last: Rolls | None = None
        self._settled = False

    def look(self) -> Rolls:
        try:
            stamp = os.stat(self.path.parent).st_mtime_ns
        except OSError:
            return self._last or Rolls(0)
        if self._last is not None and self._settled and stamp == self._last.stamp \
                and not self._last.rolling:
            return self._last
        try:
            parts, copies = logs.roll_files(self.path)
        except OSError:
            return self._last or Rolls(stamp)
        newest = max(parts, default=0)
        # A roll holds a lock on its copy until it is done; a copy nobody holds was left by a
        # roller that died, and the next roll puts it in place (logmaint).
        live = [name for number, name, _ in copies
                if number > newest and _held(self.path.parent / name)]
        self._settled = time.time_ns() - stamp > SETTLE_NS
        self._last = Rolls(stamp, parts, bool(live))
        return self._last


def _held(path: Path) -> bool:
    """Someone holds the roll lock (flock) of the copy ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing drops the probe's own lock at once
    return False


def _open_part(paths: list[Path], offset: int, mark: bytes) -> tuple[BinaryIO, Path] | None:
    """A rolled part opened at ``offset`` (the plain file while it is being compressed), or None
    when it is gone, cannot be read, or does not hold ``mark`` right before ``offset``."""
    for path in sorted(paths, key=lambda p: logs.is_gz(p)):
        try:
            fh = logs.open_log(path)
        except OSError:
            continue
        try:
            fh.seek(offset - len(mark))
            if fh.read(len(mark)) == mark:
                return fh, path
        except Exception:  # noqa: BLE001 - a corrupt .gz fails here in several ways
            pass
        fh.close()
    return None


def _bytes_before(source: BinaryIO | str | os.PathLike, offset: int) -> bytes:
    """The ``MARK`` bytes before ``offset`` (fewer near the start; b"" if unreadable)."""
    start = max(0, offset - MARK)
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as fh:
                return os.pread(fh.fileno(), offset - start, start)
        return os.pread(source.fileno(), offset - start, start)
    except OSError:
        return b""


class RunReader:
    """Reads one run's log as it grows, from ``offset``, across its rolls.

    ``read`` returns the new complete lines, at most about ``budget`` bytes' worth; ``flush``
    the unterminated last one. After a ``read``, ``idle`` says it reached the end of everything
    written (not a pause for a roll under way), ``more`` that it stopped at its budget, and
    ``partial`` that the start of a line waits for its newline.
    """

    def __init__(self, path: str | os.PathLike, offset: int = 0, max_behind: int | None = None,
                 *, seen: int | None = None, rolls: _Rolls | None = None, mark: bytes | None = None):
        self.path = Path(path)
        self.max_behind = max_behind
        self.idle = self.more = self.partial = False
        self._rolls = rolls or _Rolls(self.path)
        # Rolls up to part ``_seen`` happened before our place in the live file.
        self._seen = self._rolls.look().newest if seen is None else seen
        self._split = logs.LineSplitter()
        self._offset = offset  # in the part being read, else in the live file
        # The last bytes before _offset: a file emptied and written again, or a part that is not
        # the continuation (numbers reused when no part is kept), does not hold them there.
        self._mark = b"" if offset == 0 else mark
        self._part: tuple[int, BinaryIO, Path] | None = None
        self._live: BinaryIO | None = None
        self._size = offset  # the live file's size when last looked at
        self._emptied: float | None = None  # when the live file was first seen shorter than our offset
        self._finished = logs.is_gz(path)  # a compressed run no longer grows

    @classmethod
    def at_end(cls, path: str | os.PathLike, n: int, max_behind: int | None = None,
               *, whole: bool = False) -> tuple[RunReader, list[str]]:
        """A reader from the end of ``path`` and the last ``n`` lines before it. ``whole``: the
        end of the last complete line instead, so an unterminated last line is left to the
        reader, which gives it whole once its newline is written."""
        path = Path(path)
        rolls = _Rolls(path)
        for _ in range(50):
            before = rolls.look()
            lines, end = _whole_tail(path, n) if whole and not logs.is_gz(path) \
                else logs.tail_lines(path, n)
            mark = b"" if logs.is_gz(path) else _bytes_before(path, end)
            # A roll under way may empty the file between the tail and the look: try again.
            if not before.rolling and rolls.look() == before:
                break
            time.sleep(0.01)
        return cls(path, end, max_behind, seen=before.newest, rolls=rolls, mark=mark), lines

    def close(self) -> None:
        self._close_part()
        if self._live is not None:
            self._live.close()
            self._live = None

    @property
    def offset(self) -> int:
        """Where the reader is in the file it reads (a rolled part, else the live file)."""
        return self._offset

    def flush(self) -> list[str]:
        self.partial = False
        return self._split.flush()

    def read(self, budget: int = logs.CHUNK) -> list[str]:
        out: list[str] = []
        self.idle, self.more = self._finished, False
        if self._finished:
            return out
        if self.max_behind is not None:
            self._keep_up(out)
        for _ in range(1000):  # each step reads or moves on; the bound only guards a livelock
            if budget <= 0:
                self.more = True
                break
            got = self._read_part(budget, out) if self._part else self._read_live(budget, out)
            if got is None:
                break
            budget -= got
        return out

    # --- the live file ----------------------------------------------------------------------

    def _open_live(self) -> BinaryIO | None:
        if self._live is None:
            try:
                self._live = open(self.path, "rb")  # noqa: SIM115 - kept open while followed
            except OSError:
                return None
            if self._mark is None:
                self._mark = _bytes_before(self._live, self._offset)
        return self._live

    def _read_live(self, budget: int, out: list[str]) -> int | None:
        """Bytes taken from the live file (0: look again), None to stop for now."""
        fh = self._open_live()
        if fh is None:
            self.idle = True
            return None
        rolls = self._rolls.look()
        if rolls.newest > self._seen:
            self._enter_parts(rolls, out)
            return 0
        # Parts deleted from below (by age) restart the numbering at the newest left + 1.
        self._seen = rolls.newest
        if rolls.rolling:
            return None  # the copy is being made: its part shows where our bytes went
        size = os.fstat(fh.fileno()).st_size
        if size < self._offset:
            return self._emptied_outside_a_roll(out)
        self._emptied = None
        self._size = size
        if size == self._offset:
            self.idle = True
            return None
        mark = self._mark or b""
        data = os.pread(fh.fileno(), min(budget, logs.CHUNK, size - self._offset) + len(mark),
                        self._offset - len(mark))
        if not data.startswith(mark):
            return self._emptied_outside_a_roll(out)  # emptied and written again since we looked
        if self._rolls.look() != rolls:
            # A roll began meanwhile: these bytes may already be the emptied file's. The part
            # holds the ones we want at the same offsets.
            return 0
        return self._take(data[len(mark):], out)

    def _take(self, data: bytes, out: list[str]) -> int:
        out.extend(self._split.feed(data))
        self.partial = not data.endswith(b"\n")
        self._offset += len(data)
        self._mark = ((self._mark or b"") + data)[-MARK:]
        return len(data)

    def _emptied_outside_a_roll(self, out: list[str]) -> int | None:
        """The file is shorter than our place and no roll shows: wait a little for the part,
        then read the file again from its start and say what was lost."""
        now = time.monotonic()
        if self._emptied is None:
            self._emptied = now
        if now - self._emptied < TRUNCATE_GRACE:
            return None
        self._emptied = None
        out.extend(self.flush())
        lost = self._size - self._offset
        known = f"at least {logs.amount(lost)} of output" if lost > 0 else "output"
        out.append(f"{SKIPPED}{known}; {self.path.name} was emptied and no rolled part kept it")
        self._offset = self._size = 0
        self._mark = b""
        return 0

    # --- rolled parts -----------------------------------------------------------------------

    def _enter_parts(self, rolls: Rolls, out: list[str]) -> None:
        """The live file was rolled since our place: its bytes up to the roll are in the next
        part at the same offsets; read on there."""
        later = sorted(n for n in rolls.parts if n > self._seen)
        first = self._seen + 1
        lost, self._size = self._size - self._offset, 0  # the live size counts again on our return
        if later[0] == first:
            opened = _open_part(rolls.parts[first], self._offset, self._mark or b"")
            if opened is not None:
                self._part = (first, *opened)
                return
            missing, after = first, later[1:]
        else:
            missing, after = later[0] - 1, later
        # The part that held our place is gone: say what we know of it.
        self._gone(first, missing, lost, out)
        self._offset, self._mark = 0, b""
        if after:
            self._open_next(after[0], out)
        else:
            self._seen = missing

    def _read_part(self, budget: int, out: list[str]) -> int | None:
        assert self._part is not None
        number, fh, path = self._part
        try:
            data = fh.read(min(budget, logs.CHUNK))
        except Exception:  # noqa: BLE001 - a corrupt .gz: the rest of this part is lost
            data = b""
            self._gone(number, number, 0, out, why="could not be read to its end")
        if data:
            return self._take(data, out)
        self._close_part()
        later = sorted(n for n in self._rolls.look().parts if n > number)
        self._offset, self._mark = 0, b""
        if later:
            if later[0] != number + 1:
                self._gone(number + 1, later[0] - 1, 0, out)
            self._open_next(later[0], out)
        else:
            self._seen = number  # on to the live file, emptied by this part's roll
        return 0

    def _open_next(self, number: int, out: list[str]) -> None:
        """Read part ``number`` from its start (or move past it, saying so, if it is gone)."""
        opened = _open_part(self._rolls.look().parts.get(number, []), 0, b"")
        if opened is None:
            self._gone(number, number, 0, out)
            self._seen = number  # _read_live goes on with any later part
            return
        self._part = (number, *opened)

    def _close_part(self) -> None:
        if self._part is not None:
            self._part[1].close()
            self._part = None

    def _gone(self, first: int, last: int, lost: int, out: list[str], why: str = "") -> None:
        """Say that parts ``first`` to ``last`` were passed over (``lost``: bytes known to be in
        them, 0 if unknown)."""
        out.extend(self.flush())
        if first >= last:
            names = f"{self.path.name}.{first}"
            exists = any(os.path.exists(f"{self.path}.{first}{gz}") for gz in ("", ".gz"))
            why = why or ("could not be read" if exists else "was deleted before it could be read")
        else:
            names = f"{self.path.name}.{first} to .{last}"
            why = why or "were deleted before they could be read"
        known = f"at least {logs.amount(lost)} of output" if lost > 0 else "output"
        out.append(f"{SKIPPED}{known}; {names} {why}")

    # --- falling behind ---------------------------------------------------------------------

    def _keep_up(self, out: list[str]) -> None:
        """More than ``max_behind`` bytes behind the writer: skip to the start of a line near
        the end of the live file, and say how much was skipped and where it begins."""
        assert self.max_behind is not None
        fh = self._open_live()
        if fh is None:
            return
        rolls = self._rolls.look()
        if rolls.rolling:
            return
        size = os.fstat(fh.fileno()).st_size
        spans = self._unread(rolls, size)
        if sum(stop - start for _, start, stop in spans) <= self.max_behind:
            return
        live, start, _ = spans[-1]
        resume = max(start, _line_start(fh, max(0, size - RESUME), size))
        spans[-1] = (live, start, resume)
        if self._rolls.look() != rolls:
            return  # a roll began meanwhile: look again on the next read
        where = spans[0][0]
        skipped, lines = self._split.drop(), 0
        self.partial = False
        for path, start, stop in spans:
            got = _count(fh if path == self.path else path, start, stop)
            skipped += got[0]
            lines += got[1]
        self._close_part()
        self._seen = rolls.newest
        self._offset, self._size, self._mark = resume, size, _bytes_before(fh, resume)
        out.append(f"{SKIPPED}{logs.amount(skipped)} ({lines:,} lines) of output; see {where}")

    def _unread(self, rolls: Rolls, size: int) -> list[tuple[Path, int, int]]:
        """What is left to read, as ``(file, start, end)``: the part that holds our place, any
        later parts, the live file."""
        if self._part is not None:
            number, fh, path = self._part
            # A .gz part's size on disk stands in for its length: an estimate, only for the bound.
            spans = [(path, self._offset, max(self._offset, os.fstat(fh.fileno()).st_size))]
        elif rolls.newest > self._seen:  # rolled since we last read: our place is in the part
            number, spans = self._seen, []
        else:
            return [(self.path, self._offset, size)]
        for n in sorted(k for k in rolls.parts if k > number):
            part = min(rolls.parts[n], key=logs.is_gz)
            start = self._offset if not spans and n == number + 1 else 0
            try:
                spans.append((part, start, max(start, os.stat(part).st_size)))
            except OSError:
                continue
        return [*spans, (self.path, 0, size)]


def _whole_tail(path: Path, n: int) -> tuple[list[str], int]:
    """``logs.tail_lines`` that ends after the last newline: the last ``n`` complete lines."""
    lines, end = logs.tail_lines(path, n + 1)
    with open(path, "rb") as fh:
        cut = _last_line_end(fh, end)
    if cut < end:
        lines = lines[:-1]  # the unterminated last line
    return lines[-n:] if n > 0 else [], cut


def _last_line_end(fh: BinaryIO, end: int) -> int:
    """The offset just after the last newline before ``end`` (0 if there is none)."""
    pos = end
    while pos > 0:
        step = min(logs.CHUNK, pos)
        chunk = os.pread(fh.fileno(), step, pos - step)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return pos - step + i + 1
        pos -= step
    return 0


def _line_start(fh: BinaryIO, pos: int, end: int) -> int:
    """The first line start at or after ``pos`` (``end`` if none before it)."""
    if pos == 0:
        return 0
    while pos < end:
        chunk = os.pread(fh.fileno(), min(logs.CHUNK, end - pos), pos - 1)
        i = chunk.find(b"\n")
        if i >= 0:
            return pos + i
        pos += len(chunk)
    return end


def _count(source: BinaryIO | Path, start: int, stop: int) -> tuple[int, int]:
    """(bytes, lines) of a file between two offsets (decompressed for a ``.gz``); what cannot be
    read counts its bytes on disk and no lines."""
    if isinstance(source, Path):
        if logs.is_gz(source):
            try:
                got = _count_stream(logs.iter_chunks(source), start)
            except OSError:
                return stop - start, 0
            return got
        try:
            with open(source, "rb") as fh:
                return _count(fh, start, stop)
        except OSError:
            return stop - start, 0
    lines = 0
    pos = start
    while pos < stop:
        chunk = os.pread(source.fileno(), min(logs.CHUNK, stop - pos), pos)
        if not chunk:
            break
        lines += chunk.count(b"\n")
        pos += len(chunk)
    return stop - start, lines


def _count_stream(chunks: Iterator[bytes], start: int) -> tuple[int, int]:
    total = lines = 0
    for chunk in chunks:
        skip = max(0, start - total)
        total += len(chunk)
        lines += chunk.count(b"\n", skip)
    return max(0, total - start), lines


# --- following a process across its runs ------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """``open``: the file first followed and its last lines; ``lines``: new lines of ``path``;
    ``switch``: the process started a new run and ``path`` is followed from now on.
    ``offset``: where in ``path`` an ``open`` event's lines end."""

    kind: Literal["open", "lines", "switch"]
    path: Path
    lines: list[str] = field(default_factory=list)
    offset: int = 0


class LogFollower:
    """The current log of one process (named by ``resolve``), followed across rolls and into
    each new run. ``poll`` returns what happened since the last call (nothing when idle).

    The first file found opens at its last ``start_lines`` lines, or at its start with
    ``from_start`` (a process that appeared while followed: all of its output is new).
    ``whole``: the opening lines end with the last complete one (see ``RunReader.at_end``).
    """

    def __init__(self, resolve: Callable[[], str | os.PathLike | None], start_lines: int = 10,
                 max_behind: int | None = None, *, from_start: bool = False, whole: bool = False):
        self.resolve = resolve
        self.start_lines = start_lines
        self.max_behind = max_behind
        self.from_start = from_start
        self.whole = whole
        self.path: Path | None = None
        self._reader: RunReader | None = None

    @property
    def more(self) -> bool:
        """The last ``poll`` stopped at its budget: poll again at once."""
        return self._reader is not None and self._reader.more

    @property
    def partial(self) -> bool:
        """The start of a line waits for its newline (``flush`` gives it now)."""
        return self._reader is not None and self._reader.partial

    def flush(self) -> list[str]:
        """The unterminated line read so far; what follows it comes as a line of its own."""
        return self._reader.flush() if self._reader is not None else []

    def poll(self, budget: int = logs.CHUNK) -> list[Event]:
        if self._reader is None or self.path is None:
            found = self.resolve()
            if found is None:
                return []
            path = Path(found)
            lines: list[str] = []
            try:
                if self.from_start:
                    self._reader = RunReader(path, 0, self.max_behind)
                else:
                    self._reader, lines = RunReader.at_end(path, self.start_lines, self.max_behind,
                                                           whole=self.whole)
            except OSError:
                return []
            self.path = path
            return [Event("open", path, lines, self._reader.offset)]
        lines = self._reader.read(budget)
        if lines:
            return [Event("lines", self.path, lines)]
        if not self._reader.idle:
            return []
        found = self.resolve()
        if found is None or Path(found) == self.path:
            return []
        new = Path(found)
        # The old run is read to its end (its last words come before the new run starts).
        events = []
        rest = self._reader.flush()
        if rest:
            events.append(Event("lines", self.path, rest))
        self._reader.close()
        self.path = new
        self._reader = RunReader(new, 0, self.max_behind)
        events.append(Event("switch", new))
        return events

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def follow(resolve: Callable[[], str | os.PathLike | None], stop: threading.Event, start_lines: int = 10,
           interval: float = 0.1, max_behind: int | None = None) -> Iterator[Event]:
    """``LogFollower``'s events until ``stop`` is set, polling every ``interval`` when idle."""
    follower = LogFollower(resolve, start_lines, max_behind)
    try:
        while not stop.is_set():
            events = follower.poll()
            yield from events
            if not events and not follower.more:
                stop.wait(interval)
    finally:
        follower.close()
