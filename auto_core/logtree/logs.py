"""Per-run log files: naming, creation, markers, and reading them with bounded memory.

Layout: ``output/logs/<name>/<YYYY>/<MM>/<name>_<YYMMDD_HHMMSS>[_N].log``, one file per start.
Pure stdlib, no UI. Following a live log is ``follow.py``'s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from auto_core.record import Record
from auto_core.store.paths import FILE_MODE, Home, ensure_dir

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from datetime import datetime
    from typing import BinaryIO
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


LINE_CAP = 64 * 1024  # bytes of one line shown; the rest is counted, never held
CHUNK = 1 << 20  # bytes read at a time


def amount(n: int) -> str:
    """``512 bytes``, ``12.3 kB``, ``1.7 MB``, ``2.0 GB`` (decimal units), for the reader's markers."""
    if n < 1000:
        return f"{n} byte{'' if n == 1 else 's'}"
    value = float(n)
    for unit in ("kB", "MB", "GB"):
        value /= 1000
        if value < 999.95 or unit == "GB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


class LineSplitter:
    """Splits a byte stream into text lines, each at most ``cap`` bytes long.

    A longer line keeps its first ``cap`` bytes (cut on a character boundary) followed by
    ``[auto] line cut: N more``; the rest is counted as it passes and never held, so a reader's
    memory does not depend on the length of a line. Invalid UTF-8 becomes U+FFFD.
    """

    def __init__(self, cap: int = LINE_CAP):
        self.cap = cap
        self._head = b""  # the start of the unterminated line, at most cap bytes
        self._cut = 0  # bytes of that line dropped past the head

    def feed(self, data: bytes) -> list[str]:
        """The lines ``data`` completes; an unterminated last line waits for the next call."""
        pieces = data.split(b"\n")
        rest = pieces.pop()
        out: list[str] = []
        if pieces:
            self._grow(pieces[0])
            out.append(self._take())
            more = pieces[1:]
            if more and max(map(len, more)) <= self.cap:
                out.extend([decode(piece).rstrip("\r") for piece in more])
            else:
                for piece in more:
                    self._grow(piece)
                    out.append(self._take())
        self._grow(rest)
        return out

    def flush(self) -> list[str]:
        """The unterminated last line, if there is one (the file ended without a newline)."""
        return [self._take()] if self._head or self._cut else []

    def drop(self) -> int:
        """Forget the unterminated line; return how many bytes of it were read."""
        dropped = len(self._head) + self._cut
        self._head, self._cut = b"", 0
        return dropped

    def _grow(self, piece: bytes) -> None:
        if self._cut:
            self._cut += len(piece)
            return
        head = self._head + piece if self._head else piece
        if len(head) > self.cap:
            keep = self.cap
            # Never cut inside a character: back off over UTF-8 continuation bytes.
            while keep > self.cap - 3 and head[keep] & 0xC0 == 0x80:
                keep -= 1
            self._cut = len(head) - keep
            head = head[:keep]
        self._head = head

    def _take(self) -> str:
        head, cut = self._head, self._cut
        self._head, self._cut = b"", 0
        if cut:
            return f"{decode(head)} [auto] line cut: {amount(cut)} more"
        return decode(head).rstrip("\r")


def open_log(path: str | os.PathLike) -> BinaryIO:
    """One log file opened for reading, a ``.gz`` decompressed as it is read."""
    if not is_gz(path):
        return open(path, "rb")
    import gzip

    return gzip.open(path, "rb")  # type: ignore[return-value]  # a GzipFile reads as a BinaryIO


def _gz_errors() -> tuple[type[BaseException], ...]:
    import gzip
    import zlib

    return (gzip.BadGzipFile, EOFError, zlib.error)


def iter_chunks(path: str | os.PathLike, size: int = CHUNK) -> Iterator[bytes]:
    """The bytes of one file (``.gz`` decompressed), ``size`` at a time; raises ``CorruptLog`` on
    a bad ``.gz``."""
    errors = _gz_errors() if is_gz(path) else ()
    with open_log(path) as fh:
        while True:
            try:
                chunk = fh.read(size)
            except errors as exc:
                raise CorruptLog(f"corrupt compressed log {path}: {exc}") from exc
            if not chunk:
                return
            yield chunk


def iter_run_chunks(run: Run) -> Iterator[bytes]:
    """The bytes of a run across its rolled parts and main file, in order."""
    for path in run.files:
        yield from iter_chunks(path)


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


def tail_lines(path: str | os.PathLike, n: int) -> tuple[list[str], int]:
    """The last ``n`` lines of ``path`` and the end offset they were read up to.

    A plain file is read backwards from its end, and only as far as those lines reach; a
    ``.gz`` file (a finished run, it no longer grows) is decompressed as a stream, and its end
    offset is its size on disk, so a follower from there finds nothing new. Lines are cut as
    ``LineSplitter`` cuts them, so memory stays flat whatever the lines' length.
    """
    if is_gz(path):
        if n <= 0:
            return [], os.path.getsize(path)
        from collections import deque

        kept: deque[str] = deque(maxlen=n)
        split = LineSplitter()
        for chunk in iter_chunks(path):
            kept.extend(split.feed(chunk))
        kept.extend(split.flush())
        return list(kept), os.path.getsize(path)
    with open(path, "rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        if n <= 0:
            return [], end
        return list(_lines_between(fh, _tail_start(fh, end, n), end)), end


def iter_tail(path: str | os.PathLike, n: int) -> Iterator[str]:
    """The last ``n`` lines of ``path`` one at a time (what ``auto log NAME -n N`` prints:
    nothing is held but the line at hand, whatever ``n``)."""
    if n <= 0:
        return
    if is_gz(path):
        yield from tail_lines(path, n)[0]
        return
    with open(path, "rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        yield from _lines_between(fh, _tail_start(fh, end, n), end)


def _tail_start(fh: BinaryIO, end: int, n: int, block: int = 65536) -> int:
    """The offset where the last ``n`` lines before ``end`` begin: newlines are counted
    backwards, one block at a time, and nothing is kept."""
    limit = end
    if end:
        fh.seek(end - 1)
        if fh.read(1) == b"\n":
            limit -= 1  # the last line's own newline does not start another line
    found = 0
    pos = limit
    while pos > 0:
        step = min(block, pos)
        pos -= step
        fh.seek(pos)
        chunk = fh.read(step)
        i = len(chunk)
        while True:
            i = chunk.rfind(b"\n", 0, i)
            if i < 0:
                break
            found += 1
            if found == n:
                return pos + i + 1
    return 0


def _lines_between(fh: BinaryIO, start: int, end: int) -> Iterator[str]:
    split = LineSplitter()
    fh.seek(start)
    left = end - start
    while left > 0:
        data = fh.read(min(CHUNK, left))
        if not data:
            break
        left -= len(data)
        yield from split.feed(data)
    yield from split.flush()


def roll_files(path: Path) -> tuple[dict[int, list[Path]], list[tuple[int, str, int]]]:
    """The parts rolled off ``path`` (``<file>.K``, ``<file>.K.gz``) by number K, and the
    ``(K, name, inode)`` of each roll's temporary copy (``<file>.K.tmp``: a roll under way, or
    one that was interrupted); raises OSError when the directory cannot be read."""
    prefix = path.name + "."
    found: dict[int, list[Path]] = {}
    copies: list[tuple[int, str, int]] = []
    with os.scandir(path.parent) as it:
        for entry in it:
            if not entry.name.startswith(prefix):
                continue
            rest = entry.name[len(prefix):]
            number = rest.removesuffix(".gz")
            if _is_number(number):
                found.setdefault(int(number), []).append(Path(entry.path))
            elif rest.endswith(".tmp") and _is_number(rest[:-4]):
                copies.append((int(rest[:-4]), entry.name, entry.inode()))
    return found, copies


def parts_by_number(path: Path) -> dict[int, list[Path]]:
    """The parts rolled off ``path`` (``<file>.K``, ``<file>.K.gz``) by number K; raises
    OSError when its directory cannot be read."""
    return roll_files(path)[0]


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()  # "３".isdigit() too, and int() would take it
