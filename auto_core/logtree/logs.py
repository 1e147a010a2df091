"""Per-run log files: naming, creation, markers, tail and follow.

Layout: ``output/logs/<name>/<YYYY>/<MM>/<name>_<YYMMDD_HHMMSS>[_N].log``, one file per start.
Pure stdlib, no UI: the CLI's ``log -f`` and the TUI's log pane both use ``follow``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from auto_core.record import Record
from auto_core.store.paths import FILE_MODE, Home, ensure_dir

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import threading
    from datetime import datetime
    from typing import BinaryIO, Literal

    # What ``follow`` yields: the file opened or switched to, or new lines.
    FollowEvent = tuple[Literal["open", "switch"], Path] | tuple[Literal["lines"], list[str]]
# datetime (~2.4 ms) is imported where a time is made or parsed: `auto ps` needs neither.
# gzip (and zlib) are imported where a .gz is read: `auto ps` and `start-all` never do.

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# A run's main file, its rolled parts (``.log.K``, K ascending = newer) and their ``.gz`` forms.
_RUN_RE = re.compile(
    r"^(?P<name>.+)_(?P<stamp>\d{6}_\d{6})(?:_(?P<n>\d+))?\.log(?:\.(?P<part>\d+))?(?P<gz>\.gz)?$"
)


def create_run_log(home: Home, name: str, when: datetime | None = None) -> tuple[Path, int]:
    """Create this run's new log file exclusively; return its path and an O_APPEND fd.

    Two starts in the same second get ``_1``, ``_2`` suffixes; an existing file (or a planted
    symlink) is never opened. The directories are made only when the open says they are
    missing (plain strings, no pathlib: `start-all` of 200 pays this 200 times).
    """
    if when is None:
        from datetime import datetime

        when = datetime.now()
    directory = os.path.join(home.root, "output", "logs", name, f"{when:%Y}", f"{when:%m}")
    stem = os.path.join(directory, f"{name}_{when:%y%m%d_%H%M%S}")
    made = False
    n = 0
    while n < 10000:
        path = f"{stem}.log" if n == 0 else f"{stem}_{n}.log"
        try:
            fd = os.open(path, _OPEN_FLAGS | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            n += 1
            continue
        except FileNotFoundError:
            if made:
                raise
            ensure_dir(Path(directory))  # raises NotADirectoryError when a file is in the way
            made = True
            continue
        os.fchmod(fd, FILE_MODE)
        return Path(path), fd
    raise FileExistsError(f"too many log files for {name} in one second")


def append_line(path: str | os.PathLike, text: str) -> bool:
    """Append one ``[auto] ...`` marker line to an existing log; False if it cannot."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return False
    try:
        return write_line(fd, text)
    finally:
        os.close(fd)


def write_line(fd: int, text: str) -> bool:
    """Write one marker line to an open log; False if it cannot (a full disk, a size limit)."""
    try:
        os.write(fd, (text.rstrip("\n") + "\n").encode("utf-8", "replace"))
        return True
    except OSError:
        return False


class Run(Record, frozen=True):
    """One start of a process: its main log file and the parts rolled off it (oldest first).

    ``path`` is the main file (``.log``, or ``.log.gz`` once compressed); ``size`` counts the
    bytes on disk of the main file and every part.
    """

    path: Path
    started: datetime
    size: int
    parts: tuple[Path, ...] = ()

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file of this run in reading order: rolled parts, then the main file."""
        return (*self.parts, self.path) if self.path not in self.parts else self.parts


def is_run_file(filename: str) -> bool:
    """Whether ``filename`` is named like a run's log, a rolled part or their ``.gz`` (cheap)."""
    return _RUN_RE.match(filename) is not None


def parse_name(filename: str) -> tuple[str, datetime, int, int | None, bool] | None:
    """``(name, started, same-second index, part or None, gzipped)`` of a run file name."""
    match = _RUN_RE.match(filename)
    if not match:
        return None
    try:
        from datetime import datetime

        started = datetime.strptime(match.group("stamp"), "%y%m%d_%H%M%S")
    except ValueError:
        return None
    part = match.group("part")
    return (match.group("name"), started, int(match.group("n") or 0),
            int(part) if part is not None else None, bool(match.group("gz")))


def runs(home: Home, name: str) -> list[Run]:
    """Every run of ``name``, oldest first (by the timestamp in the file name).

    A run's plain and ``.gz`` files and its rolled parts are grouped into one ``Run``.
    """
    base = home.process_logs(name)
    if not base.is_dir():
        return []
    grouped: dict[tuple, dict] = {}
    for path in base.glob("*/*/*"):
        parsed = parse_name(path.name)
        if not parsed or parsed[0] != name:
            continue
        _, started, n, part, gz = parsed
        try:
            size = path.stat().st_size
        except OSError:
            continue
        slot = grouped.setdefault((started, n), {"main": None, "parts": {}, "size": 0})
        slot["size"] += size
        if part is None:
            # A plain file wins over a .gz of the same run (a compression that was interrupted).
            if slot["main"] is None or not gz:
                slot["main"] = path
        elif part not in slot["parts"] or not gz:
            slot["parts"][part] = path
    found = []
    for (started, _n), slot in sorted(grouped.items(), key=lambda item: item[0]):
        parts = tuple(slot["parts"][k] for k in sorted(slot["parts"]))
        main = slot["main"] or parts[-1]
        found.append(Run(main, started, slot["size"], parts))
    return found


def current_log(home: Home, name: str, recorded: str | None) -> Path | None:
    """The recorded log of the current/last run, else the newest file of that process."""
    # Only a string: os.path.isfile(7) would test file descriptor 7 (a hand-edited state file).
    if isinstance(recorded, str) and recorded and os.path.isfile(recorded):
        return Path(recorded)
    all_runs = runs(home, name)
    return all_runs[-1].path if all_runs else None


# --- reading ---------------------------------------------------------------------------------

_ANSI_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    r"|\x1b[PX^_][^\x1b]*\x1b\\"  # DCS/SOS/PM/APC
    r"|\x1b[@-Z\\-_]"  # other two-byte escapes
)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def sanitize(line: str, keep_sgr: bool = False) -> str:
    """Strip terminal escapes and control characters (tabs survive).

    With ``keep_sgr`` colour/style sequences (``ESC[...m``) are kept for an ANSI renderer.
    """
    if keep_sgr:
        line = _ANSI_RE.sub(lambda m: m.group(0) if re.fullmatch(r"\x1b\[[0-9;]*m", m.group(0)) else "", line)
        return re.sub(r"[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]", "", line)
    return _CONTROL_RE.sub("", _ANSI_RE.sub("", line))


def decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


class CorruptLog(OSError):
    """A compressed log that cannot be decompressed (reported, never fatal)."""


def is_gz(path: str | os.PathLike) -> bool:
    return str(path).endswith(".gz")


def iter_raw_lines(path: str | os.PathLike) -> Iterator[bytes]:
    """Every line of one file (``.gz`` or plain) as bytes; raises ``CorruptLog`` on a bad ``.gz``."""
    if not is_gz(path):
        with open(path, "rb") as fh:
            yield from fh
        return
    import gzip
    import zlib

    try:
        with gzip.open(path, "rb") as fh:
            yield from fh
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise CorruptLog(f"corrupt compressed log {path}: {exc}") from exc


def iter_run_lines(run: Run) -> Iterator[bytes]:
    """Every line of a run across its rolled parts and main file, in order."""
    for path in run.files:
        yield from iter_raw_lines(path)


def tail_run(run: Run, n: int) -> list[str]:
    """The last ``n`` lines of a run, reaching into older parts when the main file is short."""
    collected: list[str] = []
    for path in reversed(run.files):
        need = n - len(collected)
        if need <= 0:
            break
        lines, _ = tail_lines(path, need)
        collected = lines + collected
    return collected[-n:] if n > 0 else []


_END_MARKERS = ("[auto] exit", "[auto] killed", "[auto] stopped", "[auto] restarting", "[auto] cannot start")


def run_end(run: Run, lines: int = 8) -> str | None:
    """How a run ended, from the last ``[auto]`` marker near its end (None if there is none)."""
    try:
        tail = tail_lines(run.path, lines)[0]
    except CorruptLog:
        return "corrupt .gz"
    except OSError:
        return "unreadable"
    for line in reversed(tail):
        if line.startswith(_END_MARKERS):
            return line[len("[auto] "):]
    return None


def tail_lines(path: str | os.PathLike, n: int, block: int = 65536) -> tuple[list[str], int]:
    """The last ``n`` lines of ``path`` (read backwards from the end) and the end offset.

    Never reads more than the blocks that hold those lines, whatever the file's size. A ``.gz``
    file (a finished run, it no longer grows) is decompressed as a stream; its end offset is
    its size on disk, so a ``LineReader`` from there finds nothing new.
    """
    if is_gz(path):
        from collections import deque

        kept = deque(iter_raw_lines(path), maxlen=max(n, 0))
        return [decode(line).rstrip("\n").rstrip("\r") for line in kept], os.path.getsize(path)
    with open(path, "rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        if n <= 0:
            return [], end
        pos = end
        chunks: list[bytes] = []
        newlines = 0
        while pos > 0 and newlines <= n:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step)
            chunks.append(chunk)
            newlines += chunk.count(b"\n")
        data = b"".join(reversed(chunks))
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if pos > 0 and len(lines) > n:
        lines = lines[-n:]
    return [decode(line).rstrip("\r") for line in lines[-n:]], end


def parts_by_number(path: Path) -> dict[int, list[Path]]:
    """The parts rolled off ``path`` (``<file>.K``, ``<file>.K.gz``) by number K; raises
    OSError when its directory cannot be read."""
    prefix = path.name + "."
    found: dict[int, list[Path]] = {}
    with os.scandir(path.parent) as it:
        for entry in it:
            if entry.name.startswith(prefix):
                number = entry.name[len(prefix):].removesuffix(".gz")
                if number.isdigit():  # not a ``.tmp`` of an interrupted roll or compression
                    found.setdefault(int(number), []).append(Path(entry.path))
    return found


def _newest_part(path: Path) -> tuple[int, Path | None]:
    """(K, file) of the newest part rolled off ``path`` (the plain file while it is being
    compressed); (0, None) when there is none."""
    try:
        found = parts_by_number(path)
    except OSError:
        return 0, None
    if not found:
        return 0, None
    number = max(found)
    return number, min(found[number], key=lambda p: p.name.endswith(".gz"))


class LineReader:
    """Reads complete new lines from a growing file, from a given offset.

    Keeps a partial last line buffered; detects truncation and starts again from 0.
    """

    def __init__(self, path: str | os.PathLike, offset: int = 0, max_read: int = 1 << 20):
        self.path = Path(path)
        self.offset = offset
        self.max_read = max_read
        self._partial = b""
        self._fh: BinaryIO | None = None
        self._ino: int | None = None
        self._last_part = 0  # the newest rolled part when we opened or last saw a roll
        self._dir_stamp: int | None = None

    def close(self) -> None:
        if self._fh:
            self._fh.close()
            self._fh = None

    def _open(self) -> BinaryIO | None:
        """The open file (opened now if it was not), or None if it cannot be opened."""
        if self._fh is None:
            try:
                self._fh = open(self.path, "rb")
            except OSError:
                return None
            self._ino = os.fstat(self._fh.fileno()).st_ino
            with contextlib.suppress(OSError):
                self._dir_stamp = os.stat(self.path.parent).st_mtime_ns
            self._last_part = _newest_part(self.path)[0]
        return self._fh

    def read(self) -> list[str]:
        fh = self._open()
        if fh is None:
            return []
        size = os.fstat(fh.fileno()).st_size
        carry = b""
        newest = self._new_part()
        if size < self.offset or newest is not None:  # truncated (rolled by copy-then-truncate)
            # What was written after our last read went into the newest rolled part.
            carry = self._rolled_rest(newest or _newest_part(self.path))
            if not carry:
                self._partial = b""
            self.offset = 0
        if size == self.offset and not carry:
            return []
        data = b""
        if size > self.offset:
            fh.seek(self.offset)
            data = fh.read(min(size - self.offset, self.max_read))
            self.offset += len(data)
        data = self._partial + carry + data
        parts = data.split(b"\n")
        self._partial = parts.pop()
        if len(self._partial) > self.max_read:  # a huge line without newline: flush it
            parts.append(self._partial)
            self._partial = b""
        return [decode(p).rstrip("\r") for p in parts]

    def _new_part(self) -> tuple[int, Path | None] | None:
        """The newest rolled part if one was rolled off since we last looked (the file may have
        been truncated and have grown past our offset again), else None. One stat of the
        directory per read; its listing only when the directory changed."""
        try:
            stamp = os.stat(self.path.parent).st_mtime_ns
        except OSError:
            return None
        if stamp == self._dir_stamp:
            return None
        self._dir_stamp = stamp
        newest = _newest_part(self.path)
        return newest if newest[0] > self._last_part else None

    def _rolled_rest(self, newest: tuple[int, Path | None]) -> bytes:
        """The bytes of the newest rolled part past our offset (b"" if there is no such part)."""
        seen, (self._last_part, part) = self._last_part, newest
        # Only the one roll since we last looked holds exactly the bytes we missed.
        if part is None or is_gz(part) or self._last_part != seen + 1:
            return b""
        try:
            with open(part, "rb") as fh:
                if os.fstat(fh.fileno()).st_size < self.offset:
                    return b""
                fh.seek(self.offset)
                return fh.read(self.max_read)
        except OSError:
            return b""

    def flush_partial(self) -> list[str]:
        if self._partial:
            line, self._partial = decode(self._partial), b""
            return [line]
        return []


def follow(
    resolve: Callable[[], Path | None],
    stop: threading.Event,
    start_lines: int = 10,
    interval: float = 0.1,
) -> Iterator[FollowEvent]:
    """Yield ``("open", path)``, ``("lines", [..])`` and ``("switch", path)`` events.

    ``resolve`` names the current log file; it is asked again when the file is idle, so a
    restart (a new dated file) is followed. Ends when ``stop`` is set.
    """
    path = None
    reader: LineReader | None = None
    while not stop.is_set():
        if reader is None:
            path = resolve()
            if path is None:
                stop.wait(interval)
                continue
            try:
                lines, end = tail_lines(path, start_lines)
            except OSError:
                stop.wait(interval)
                continue
            yield ("open", path)
            if lines:
                yield ("lines", lines)
            reader = LineReader(path, end)
        lines = reader.read()
        if lines:
            yield ("lines", lines)
            continue
        new = resolve()
        if new is not None and new != path:
            rest = reader.read() + reader.flush_partial()
            if rest:
                yield ("lines", rest)
            reader.close()
            path = new
            yield ("switch", path)
            reader = LineReader(path, 0)
            continue
        stop.wait(interval)
    if reader:
        reader.close()
