"""Log maintenance: size cap by copy-then-truncate, retention, compression.

The watcher builds one ``Maintainer`` and calls ``tick(live, watcher_log)`` every loop. A tick
is cheap when nothing is due: a clock read and two comparisons. Work is spread out, so no
tick holds up the watcher's restarts:

- a size check (one ``os.stat`` per live log and the watcher's own log) finds the files past
  their ``log_max_bytes``. It comes every ``size_interval`` seconds, sooner when a log grows
  fast enough to reach its limit before that (at the rate it grew since the previous check),
  but never more often than ``min_size_interval``;
- a roll copies the whole file, so it runs in a worker thread, one file at a time: the tick
  only starts it and later collects its events;
- a retention pass starts at most every ``pass_interval`` (1 h) or when the local date
  changes; it walks the log tree as a resumable generator, ``scan_batch`` directory entries per
  tick, deletes at most ``delete_batch`` files per tick and gzips at most ``compress_budget``
  bytes per tick (one file is compressed across several ticks when it is large).

A roll of ``FILE`` (services write it with O_APPEND, so after a truncate they go on writing
at its start) into its next part ``FILE.K``:

1. create ``FILE.K.tmp`` and lock it (flock: one roll of a file at a time, across processes);
2. copy ``FILE`` into it up to the size seen, then what was written meanwhile, again and
   again until a size check finds nothing new; a round that copied more than 64 KiB is
   fsynced before the next size check;
3. truncate ``FILE`` right after that size check;
4. fsync the copy (the last small rounds) and rename ``FILE.K.tmp`` to ``FILE.K``.

Every byte written before the last size check is in the copy before the truncate (on disk,
but for the last small rounds: a power cut right after the truncate could lose those). What
a writer appends between that size check and the truncate, two adjacent system calls
(microseconds; longer only if the thread waits for the interpreter lock between them), is
lost: no copy-then-truncate can close that gap without the writer's help, since a truncate
keeps nothing of what was written before it. A writer that outruns the copy for 1000 rounds
makes the roll give up (an error event); the next roll goes on from the copy. The part
appears only once ``FILE`` is emptied, so a follower that sees a new part finds its unread
bytes there; while the roll is unfinished, ``FILE.K.tmp`` says so.

A roll killed at any step leaves ``FILE.K.tmp``; the next roll of ``FILE`` or the next
retention pass (a watcher's first tick starts one) finishes it (``recover``). A copy that is
still the start of ``FILE`` was made before the truncate: the roll goes on from where the copy
ends. Any other copy was complete when ``FILE`` was truncated: it is renamed into its place.
Retention never deletes such a copy. "Still the start" compares the copy's first and last
64 KiB with ``FILE`` at the same offsets. After a truncate, ``FILE`` can match there only by
repeating the same bytes exactly, and only a roll killed between its truncate and its rename
could then be misjudged (the restarted file's first bytes taken for the copy's).

Never touched, since a roll or delete there would lose lines still being written or the log
a service's entry points to: a file a live service writes (``live``, verified by identity by
the caller), every ``log_path`` recorded in the state file, and the watcher's own ``auto.log``.
Compression re-checks the source before replacing it and gives up if it changed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from auto_core.errors import AutoError
from auto_core.logtree import logs
from auto_core.proc import identity
from auto_core.store import state
from auto_core.store.paths import FILE_MODE, Home

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 50 * MiB
DEFAULT_KEEP_PARTS = 5
DEFAULT_KEEP_DAYS = 30.0
COMPRESS_AFTER = 86400.0  # finished files older than one day are gzipped
DAY = 86400.0
WATCHER_DIR = "auto"  # output/logs/auto holds the watcher's own auto.log and its parts
_TMP = ".tmp"
_UNREAD = object()  # the state file has not been read yet


@dataclass(frozen=True)
class Settings:
    """Per-process log limits (optional state entry fields, else the defaults)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    keep_parts: int = DEFAULT_KEEP_PARTS
    keep_days: float = DEFAULT_KEEP_DAYS


DEFAULTS = Settings()


def settings(entry: Mapping | None) -> Settings:
    """The log settings of one state entry; bad or missing values fall back to the defaults."""
    entry = entry or {}

    def number(key, default, low):
        value = entry.get(key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= low
        return value if ok else default

    return Settings(
        max_bytes=int(number("log_max_bytes", DEFAULT_MAX_BYTES, 1024)),
        keep_parts=int(number("log_keep_parts", DEFAULT_KEEP_PARTS, 0)),
        keep_days=float(number("log_keep_days", DEFAULT_KEEP_DAYS, 1)),
    )


@dataclass(frozen=True)
class Event:
    """One thing maintenance did (or, in a dry run, would do), or an error it met."""

    kind: str  # "rolled", "recovered", "deleted", "compressed", "skipped", "error" (dry run: "would delete"...)
    path: str
    detail: str = ""

    @property
    def error(self) -> bool:
        return self.kind == "error"

    def __str__(self) -> str:
        return f"log {self.kind} {self.path}" + (f": {self.detail}" if self.detail else "")


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


# --- rolling -----------------------------------------------------------------------------------

CHUNK = 4 * MiB  # bytes per read and write of a roll's copy
_CHECK = 64 * 1024  # bytes compared at each end of a leftover copy (``_holds_prefix``)
_SYNC_ABOVE = 64 * 1024  # a round of the copy that copied more is fsynced before the next
_ROUNDS = 1000  # rounds of the copy before a roll gives up on a writer faster than it
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _no_step(name: str) -> None:
    pass


def _create(path: Path) -> int:
    """A new file for writing; a stale one (an interrupted compression) is replaced, never followed."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC, FILE_MODE)


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()  # int() would take "３" too


def _tmp(part: Path) -> Path:
    return part.with_name(part.name + _TMP)


def _leftovers(path: Path) -> dict[int, Path]:
    """The copies interrupted rolls of ``path`` left (``<file>.K.tmp``), by K."""
    prefix = path.name + "."
    found = {}
    with os.scandir(path.parent) as it:
        for entry in it:
            number = entry.name[len(prefix):].removesuffix(_TMP)
            if entry.name.startswith(prefix) and entry.name.endswith(_TMP) and _is_number(number):
                found[int(number)] = Path(entry.path)
    return found


def _lock(tmp: Path, create: bool = False) -> int:
    """``tmp`` opened and locked (flock) for this roll alone; released when closed, or when the
    process dies. Raises BlockingIOError while another roll holds it."""
    flags = os.O_RDWR | os.O_NOFOLLOW | _CLOEXEC | (os.O_CREAT | os.O_EXCL if create else 0)
    fd = os.open(tmp, flags, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BlockingIOError(errno.EAGAIN, "another roll of this log is under way") from None
    except OSError:
        os.close(fd)
        raise
    return fd


def _copy(src: int, dst: int, start: int, end: int, step: Callable[[str], None]) -> int:
    """Append ``src``'s bytes from ``start`` to ``end`` to ``dst``; returns the offset reached."""
    offset = start
    while offset < end:
        data = os.pread(src, min(CHUNK, end - offset), offset)
        if not data:  # it shrank under us
            break
        view = memoryview(data)
        while view:
            view = view[os.write(dst, view):]
        offset += len(data)
        step("copied")
    return offset


def _holds_prefix(fd: int, path: Path) -> bool:
    """Whether the leftover copy ``fd`` is still the start of ``path`` (which then was not
    truncated). Compares the first and the last ``_CHECK`` bytes of the copy: a log that
    restarted after a truncate differs there (only output that repeats byte for byte could
    match; see the module docstring)."""
    length = os.fstat(fd).st_size
    try:
        src = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | _CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if os.fstat(src).st_size < length:
            return False
        for offset in (0, max(0, length - _CHECK)):
            size = min(_CHECK, length - offset)
            if os.pread(fd, size, offset) != os.pread(src, size, offset):
                return False
        return True
    finally:
        os.close(src)


def _move(path: Path, fd: int, part: Path, step: Callable[[str], None]) -> None:
    """Copy ``path`` into the locked copy ``fd`` past what it holds, truncate ``path`` once a
    size check finds nothing new, then rename the copy to ``part``. See the module docstring."""
    src = os.open(path, os.O_RDWR | os.O_NOFOLLOW | _CLOEXEC)
    try:
        copied = os.lseek(fd, 0, os.SEEK_END)
        for _ in range(_ROUNDS):
            size = os.fstat(src).st_size
            if size == copied:
                os.ftruncate(src, 0)  # right after the size check that found nothing new
                break
            if size < copied:
                raise OSError(errno.EAGAIN, "the log was truncated by someone else during its roll")
            start, copied = copied, _copy(src, fd, copied, size, step)
            if copied - start > _SYNC_ABOVE:
                os.fsync(fd)
                step("synced")
        else:
            raise OSError(errno.EAGAIN, "the log grows faster than it can be copied; the next roll goes on")
    finally:
        os.close(src)
    step("truncated")
    os.fsync(fd)
    os.rename(_tmp(part), part)
    step("renamed")


def _place(path: Path, tmp: Path, part: Path) -> Path:
    """Put a copy whose live file was truncated in its place; returns where it went."""
    if os.path.lexists(part) or os.path.lexists(f"{part}.gz"):  # never over another part
        part = path.with_name(f"{path.name}.{max(logs.parts_by_number(path)) + 1}")
    os.rename(tmp, part)
    return part


def recover(path: str | os.PathLike, on_step: Callable[[str], None] | None = None) -> list[tuple[Path, bool]]:
    """Finish what interrupted rolls of ``path`` left; returns ``(part, finished)`` for each.

    A leftover copy ``path.K.tmp`` that is still the start of ``path`` was made before the
    truncate: the roll is finished (the rest copied, ``path`` truncated, the copy renamed to
    ``path.K``; ``finished`` True). Otherwise ``path`` was truncated after the copy was
    complete: the copy is put in its place as ``path.K``. Nothing is deleted.
    Raises BlockingIOError while another process's roll of ``path`` is under way.
    """
    path = Path(path)
    step = on_step or _no_step
    done = []
    for number, tmp in sorted(_leftovers(path).items()):
        part = path.with_name(f"{path.name}.{number}")
        try:
            fd = _lock(tmp)
        except FileNotFoundError:
            continue  # finished meanwhile by the roll that made it
        try:
            if _holds_prefix(fd, path):
                _move(path, fd, part, step)
                done.append((part, True))
            else:
                done.append((_place(path, tmp, part), False))
        finally:
            os.close(fd)
    return done


def _cap(path: Path, keep_parts: int) -> list[Path]:
    """Delete the parts of ``path`` beyond ``keep_parts``, oldest first; returns them."""
    existing = logs.parts_by_number(path)
    removed: list[Path] = []
    for old in sorted(existing)[: max(0, len(existing) - keep_parts)]:
        for victim in existing[old]:
            with contextlib.suppress(FileNotFoundError):
                victim.unlink()
                removed.append(victim)
    return removed


def roll(path: str | os.PathLike, keep_parts: int = DEFAULT_KEEP_PARTS,
         on_step: Callable[[str], None] | None = None) -> tuple[Path, list[Path]]:
    """Move ``path``'s bytes into its next part ``path.K``, truncate it in place, and delete
    the parts beyond ``keep_parts``, oldest first. Returns the part and the deleted parts.

    Blocks for the whole copy (the Maintainer runs it in a worker thread). ``recover`` comes
    first: the copy an interrupted roll left makes this one fail (FileExistsError), never
    overwritten. ``on_step(name)`` is called after each step: "created", "copied" (each
    chunk), "synced" (a round), "truncated", "renamed"; tests end the process there. On an
    error (OSError) ``path`` is truncated only if its bytes are in the copy.
    """
    path = Path(path)
    step = on_step or _no_step
    number = max(logs.parts_by_number(path), default=0) + 1
    part = path.with_name(f"{path.name}.{number}")
    fd = _lock(_tmp(part), create=True)
    try:
        step("created")
        _move(path, fd, part, step)
    finally:
        os.close(fd)
    return part, _cap(path, keep_parts)


def _maintain(path: Path, keep_parts: int, size: int | None) -> list[Event]:
    """One job of the worker thread: recover interrupted rolls of ``path``, then roll it when
    ``size`` (its size at the check) is given. Never raises: a failure is an error event."""
    events = []
    try:
        recovered = recover(path)
        events += [Event("recovered", str(path), f"an interrupted roll, {'finished' if whole else 'put in place'}: "
                         f"{part.name}") for part, whole in recovered]
        removed: list[Path] = []
        if size is not None and not any(whole for _, whole in recovered):
            part, removed = roll(path, keep_parts)
            events.append(Event("rolled", str(path), f"{size} bytes to {part.name}"))
        elif recovered:
            removed = _cap(path, keep_parts)
        events += [Event("deleted", str(p), f"more than {keep_parts} parts") for p in removed]
    except OSError as exc:
        events.append(Event("error", str(path), f"cannot roll the log: {_why(exc)}"))
    except Exception as exc:  # noqa: BLE001 - reported by the caller, never lost in a thread
        events.append(Event("error", str(path), f"cannot roll the log: {exc!r}"))
    return events


class _Job:
    """``_maintain`` of one file in a worker thread, so a large copy never holds up the
    caller. The thread touches nothing but the file system and its own ``events``."""

    def __init__(self, path: Path, keep_parts: int, size: int | None):
        self.path = path
        self.events: list[Event] = []
        self._thread = threading.Thread(target=self._run, args=(keep_parts, size), name="auto-log-roll", daemon=True)
        self._thread.start()

    def _run(self, keep_parts: int, size: int | None) -> None:
        self.events = _maintain(self.path, keep_parts, size)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()


# --- compression -------------------------------------------------------------------------------

class _Compression:
    """Gzips one file a budget of bytes at a time; the source goes only when the .gz is whole."""

    CHUNK = 256 * 1024

    def __init__(self, path: Path):
        self.path = path
        self.target = path.with_name(path.name + ".gz")
        self.tmp = path.with_name(path.name + ".gz" + _TMP)
        st = os.stat(path, follow_symlinks=False)
        self.key = (st.st_ino, st.st_size, st.st_mtime_ns)
        self.mtime = (st.st_atime_ns, st.st_mtime_ns)
        self.src = open(path, "rb")  # noqa: SIM115 - kept open across ticks
        try:
            fd = _create(self.tmp)
        except OSError:
            self.src.close()
            raise
        self.dst = os.fdopen(fd, "wb")
        self.zip = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: gzip container

    def step(self, budget: int) -> int:
        """Compress up to ``budget`` bytes; return the bytes read (0 once finished)."""
        done = 0
        while done < budget:
            chunk = self.src.read(self.CHUNK)
            if not chunk:
                return done
            self.dst.write(self.zip.compress(chunk))
            done += len(chunk)
        return done

    def finish(self) -> str | None:
        """Close and swap the .gz in; return why it gave up, or None on success."""
        self.dst.write(self.zip.flush())
        self.dst.flush()
        os.fsync(self.dst.fileno())
        self.close()
        st = os.stat(self.path, follow_symlinks=False)
        if (st.st_ino, st.st_size, st.st_mtime_ns) != self.key:
            os.unlink(self.tmp)
            return "it changed while being compressed (someone still writes it)"
        os.utime(self.tmp, ns=self.mtime)  # keep its age: retention counts from the last write
        os.replace(self.tmp, self.target)
        os.unlink(self.path)
        return None

    def close(self) -> None:
        for fh in (self.src, self.dst):
            with contextlib.suppress(OSError):
                fh.close()

    def abort(self) -> None:
        self.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


# --- the maintainer ----------------------------------------------------------------------------

class Maintainer:
    """Rolls, compresses and deletes log files a little at a time, from the watcher loop.

    Args:
        home: the AUTO_HOME whose ``output/logs`` is maintained.
        clock: wall clock (epoch seconds); tests inject one to cross midnight.
        size_interval: longest time between size checks of the live logs; a log growing
            fast enough to reach its limit sooner is checked sooner (never more often than
            ``min_size_interval``).
        pass_interval: seconds between retention passes (a date change also starts one).
        scan_batch: directory entries examined per tick during a pass.
        delete_batch: files deleted per tick.
        compress_budget: bytes gzipped per tick.
        watcher_settings: limits for the watcher's own auto.log (default: the defaults).
    """

    def __init__(
        self,
        home: Home,
        clock: Callable[[], float] = time.time,
        *,
        size_interval: float = 5.0,
        min_size_interval: float = 1.0,
        pass_interval: float = 3600.0,
        scan_batch: int = 2000,
        delete_batch: int = 200,
        compress_budget: int = 8 * MiB,
        watcher_settings: Settings | None = None,
    ):
        self.home = home
        self.clock = clock
        self.size_interval = size_interval
        self.min_size_interval = min_size_interval
        self.pass_interval = pass_interval
        self.scan_batch = scan_batch
        self.delete_batch = delete_batch
        self.compress_budget = compress_budget
        self.watcher_settings = watcher_settings or Settings()
        self._next_size_check = 0.0
        self._check_every = size_interval  # the current interval between size checks
        self._seen: dict[str, tuple[float, int, float]] = {}  # path -> (time, size, bytes/s) last checked
        self._waiting: dict[Path, tuple[int, int | None]] = {}  # roll jobs to run: path -> (keep_parts, size)
        self._job: _Job | None = None
        self._last_pass: float | None = None
        self._last_pass_day: date | None = None
        self._walk: Iterator[tuple[str, os.DirEntry | _Problem]] | None = None
        self._compress_queue: list[Path] = []
        self._compressing: _Compression | None = None
        self._settings: dict[str, Settings] = {}
        self._recorded: set[str] = set()
        self._emptied: set[str] = set()  # directories a deletion of this pass may have emptied
        self._state_ok = False
        self._state_key: object = _UNREAD
        self._offered: tuple[object, dict] | None = None  # see offer_state
        self._reported: dict[str, str] = {}  # path -> last error, so a stuck error is said once
        self.pass_started_at: float | None = None
        self.passes_done = 0

    # --- the watcher's entry point --------------------------------------------------------------

    def tick(self, live: Mapping[str, str | os.PathLike | None], watcher_log: str | os.PathLike | None = None) -> list[Event]:
        """Do whatever maintenance is due now; never raises for a file-system problem.

        Args:
            live: name -> log path of every service that is alive by identity.
            watcher_log: the file the watcher's own output goes to (capped like a service's).
        """
        now = self.clock()
        events: list[Event] = []
        try:
            if now >= self._next_size_check:
                self._next_size_check = now + self.size_interval
                self._refresh_state()
                self._check_sizes(now, live, watcher_log, events)
            if not self._in_pass:
                if self._pass_due(now):
                    self._begin_pass(now)
            if self._in_pass:
                self._advance(now, live, watcher_log, events)
            self._run_jobs(events)
        except Exception as exc:  # noqa: BLE001 - the watcher loop must go on
            self._abandon_pass()
            self._report(events, str(self.home.logs), f"log maintenance failed, retried later: {exc!r}")
        return events

    def _abandon_pass(self) -> None:
        self._walk = None
        self._compress_queue.clear()
        if self._compressing is not None:
            self._compressing.abort()
            self._compressing = None

    def _pass_due(self, now: float) -> bool:
        if self._last_pass is None:
            return True
        return now - self._last_pass >= self.pass_interval or date.fromtimestamp(now) != self._last_pass_day

    def _begin_pass(self, now: float) -> None:
        self._last_pass = now
        self._last_pass_day = date.fromtimestamp(now)
        self.pass_started_at = now
        self._refresh_state()  # a pass starts from the current state file
        if self._state_ok:
            self._walk = self._entries()

    # --- state: per-process settings and recorded log paths ---------------------------------------

    def _refresh_state(self) -> None:
        """Re-read the state file only when it changed (a stat first: the parse is what costs)."""
        key = state.signature(str(self.home.state_file))
        if key == self._state_key:
            return
        if key is not None and self._offered is not None and self._offered[0] == key:
            procs = self._offered[1]
        else:
            try:
                procs = state.processes(state.load(self.home).data)
            except AutoError:
                # Unreadable: keep the last settings (the watcher reports the state file itself);
                # a pass does not start without knowing every recorded log path.
                self._state_ok = False
                return
        self._use_state(procs, key)

    def offer_state(self, procs: Mapping[str, Mapping], key: object) -> None:
        """The processes of the state file's version ``key`` (its ``state.signature``), as the
        watcher just parsed them: used instead of parsing the file again if it is still that
        version when the state is next needed. Cheap: the watcher offers after every change."""
        self._offered = (key, dict(procs))

    def _use_state(self, procs: Mapping[str, Mapping], key: object) -> None:
        self._state_ok = True
        self._state_key = key
        self._settings = {name: settings(entry) for name, entry in procs.items()}
        self._recorded = {str(e["log_path"]) for e in procs.values() if isinstance(e.get("log_path"), str)}

    @property
    def _in_pass(self) -> bool:
        """A retention pass is under way (walking, or compressing what it found)."""
        return self._walk is not None or bool(self._compress_queue) or self._compressing is not None

    @property
    def busy(self) -> bool:
        """Work is under way or due within seconds: the caller should tick again soon (the
        watcher within a second). A retention pass, a roll (or one waiting), or a log that
        grows fast enough to be checked more often than ``size_interval``."""
        return self._in_pass or self.rolling or self._check_every < self.size_interval

    @property
    def rolling(self) -> bool:
        """A roll (or the recovery of an interrupted one) is under way or waiting."""
        return self._job is not None or bool(self._waiting)

    def settings_for(self, name: str) -> Settings:
        return self._settings.get(name, DEFAULTS)

    def _report(self, events: list[Event], path: str, detail: str) -> None:
        if self._reported.get(path) != detail:
            self._reported[path] = detail
            events.append(Event("error", path, detail))

    # --- size cap ----------------------------------------------------------------------------------

    def _check_sizes(self, now: float, live, watcher_log, events: list[Event]) -> None:
        """Queue a roll of every log past its limit; the next check comes when the fastest
        growing log would reach its limit at the rate it grew since the last check."""
        # A stat per live log is all an idle watcher does every size_interval: this loop is
        # its idle cost, so it allocates nothing per log that it does not keep.
        targets = [(name, path) for name, path in live.items() if path]
        if watcher_log:
            targets.append((None, watcher_log))
        seen: dict[str, tuple[float, int, float]] = {}
        soonest = self.size_interval
        per_name = self._settings
        for name, path in targets:
            path = str(path)
            limits = per_name.get(name, DEFAULTS) if name else self.watcher_settings
            try:
                size = os.stat(path).st_size
            except FileNotFoundError:
                continue  # not created yet, or the run just ended
            except OSError as exc:
                self._report(events, path, f"cannot check the log size: {_why(exc)}")
                continue
            then, before, rate = self._seen.get(path, (now, size, 0.0))
            if now > then:  # smaller than before: rolled since, and all it holds is newer
                rate = (size - before if size >= before else size) / (now - then)
            seen[path] = (now, size, rate)
            if rate > 0:
                soonest = min(soonest, (limits.max_bytes - size) / rate)
            if size <= limits.max_bytes:
                if self._reported:
                    self._reported.pop(path, None)
            else:
                self._want(Path(path), limits.keep_parts, size)
        self._seen = seen
        self._check_every = min(self.size_interval, max(self.min_size_interval, soonest))
        self._next_size_check = now + self._check_every

    def _want(self, path: Path, keep_parts: int, size: int | None) -> None:
        """Queue a job for ``path``: a roll (``size`` given) or only the recovery of an
        interrupted roll. Nothing when its job is running: that job does both."""
        if self._job is not None and self._job.path == path:
            return
        queued = self._waiting.get(path)
        if size is None and queued is not None:
            size = queued[1]  # a roll was asked for already
        self._waiting[path] = (keep_parts, size)

    def _run_jobs(self, events: list[Event]) -> None:
        """Collect the finished job's events; start the next job (one at a time)."""
        job = self._job
        if job is not None and job.done:
            self._job = None
            for event in job.events:
                if event.error:
                    self._report(events, event.path, event.detail)
                else:
                    self._reported.pop(event.path, None)
                    events.append(event)
        if self._job is None and self._waiting:
            path = next(iter(self._waiting))
            keep_parts, size = self._waiting.pop(path)
            self._job = _Job(path, keep_parts, size)

    # --- retention pass -----------------------------------------------------------------------------

    def _entries(self) -> Iterator[tuple[str, os.DirEntry | _Problem]]:
        """Every file under output/logs as ``(process name, entry)``; problems come as ``_Problem``.

        A generator, so a pass resumes where the previous tick stopped.
        """
        root = self.home.logs
        if not os.path.lexists(root):
            return
        names, problems = _subdirs(root)
        for problem in problems:
            yield "", problem
        for base in names:
            name = base.name
            if name == WATCHER_DIR:
                yield from _files(name, base)
                continue
            years, problems = _subdirs(base)
            for problem in problems:
                yield name, problem
            for year in years:
                months, problems = _subdirs(year)
                for problem in problems:
                    yield name, problem
                for month in months:
                    yield from _files(name, month)

    def _advance(self, now: float, live, watcher_log, events: list[Event]) -> None:
        live_paths = {str(p) for p in live.values() if p}
        if watcher_log:
            live_paths.add(str(watcher_log))
        deleted = 0
        scanned = 0
        while self._walk is not None and scanned < self.scan_batch and deleted < self.delete_batch:
            try:
                name, entry = next(self._walk)
            except StopIteration:
                self._walk = None
            except OSError as exc:  # an unexpected fault in the walk: end this pass, keep going
                self._walk = None
                self._report(events, str(self.home.logs), f"log maintenance stopped this pass: {_why(exc)}")
            if self._walk is None:
                break
            scanned += 1
            if isinstance(entry, _Problem):
                self._report(events, entry.path, entry.detail)
                continue
            action = self._decide(name, entry, now, live_paths)
            if action == "delete":
                try:
                    os.unlink(entry.path)
                    deleted += 1
                    self._emptied.add(os.path.dirname(entry.path))
                    events.append(Event("deleted", entry.path, f"older than {self._keep_days(name):g} days"))
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    self._report(events, entry.path, f"cannot delete: {_why(exc)}")
            elif action == "compress":
                self._compress_queue.append(Path(entry.path))
            elif action == "recover":
                limits = self.watcher_settings if name == WATCHER_DIR else self.settings_for(name)
                live_file = entry.path.removesuffix(_TMP).rpartition(".")[0]  # FILE of FILE.K.tmp
                self._want(Path(live_file), limits.keep_parts, None)
        self._compress(live_paths, events)
        if not self._in_pass:
            self._remove_empty_dirs(now)
            self.passes_done += 1

    def _remove_empty_dirs(self, now: float) -> None:
        """Drop month (then year) directories that retention emptied, except the current
        month's: a start may be creating its log there right now."""
        current = time.strftime("%Y/%m", time.localtime(now))
        for month in sorted(self._emptied):
            parts = Path(month).parts
            if len(parts) < 2 or f"{parts[-2]}/{parts[-1]}" >= current or Path(month).parent.parent.parent != self.home.logs:
                continue
            with contextlib.suppress(OSError):
                os.rmdir(month)  # fails, harmlessly, unless empty
                if parts[-2] < current[:4]:
                    os.rmdir(os.path.dirname(month))
        self._emptied.clear()

    def _keep_days(self, name: str) -> float:
        return self.settings_for(name).keep_days if name != WATCHER_DIR else self.watcher_settings.keep_days

    def _decide(self, name: str, entry: os.DirEntry, now: float, live_paths: set[str]) -> str | None:
        """"delete", "compress", "recover" or None for one directory entry."""
        file_name = entry.name
        if name == WATCHER_DIR:
            # Only the watcher's rolled parts (auto.log.K[.gz]); auto.log itself is live.
            stem = file_name.removesuffix(_TMP).removesuffix(".gz")
            if not (stem.startswith("auto.log.") and stem[len("auto.log."):].isdigit()):
                return None
        elif not logs.is_run_file(file_name.removesuffix(_TMP)):
            return None
        path = entry.path
        if path in live_paths or path in self._recorded:
            return None
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            return None
        if not entry.is_file(follow_symlinks=False):
            return None
        age = now - st.st_mtime
        if file_name.endswith(_TMP):
            if _is_number(file_name.removesuffix(_TMP).rpartition(".")[2]):
                return "recover"  # an interrupted roll's copy (``<file>.K.tmp``): never deleted
            # An interrupted compression's: its source stays whole until the .gz replaces it.
            return "delete" if age > DAY and not self._busy(path) else None
        if age > self._keep_days(name) * DAY:
            return "delete"
        if age > COMPRESS_AFTER and not file_name.endswith(".gz"):
            return "compress"
        return None

    def _busy(self, path: str) -> bool:
        return self._compressing is not None and str(self._compressing.tmp) == path

    def _compress(self, live_paths: set[str], events: list[Event]) -> None:
        budget = self.compress_budget
        while budget > 0:
            if self._compressing is None:
                if not self._compress_queue:
                    return
                path = self._compress_queue.pop(0)
                if str(path) in live_paths or str(path) in self._recorded:
                    continue  # it became live since the walk saw it
                try:
                    self._compressing = _Compression(path)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    self._report(events, str(path), f"cannot compress: {_why(exc)}")
                    continue
            job = self._compressing
            try:
                read = job.step(budget)
                budget -= max(read, 1)
                if read and budget <= 0:
                    return  # more next tick
                why = job.finish()
            except OSError as exc:
                job.abort()
                self._compressing = None
                self._report(events, str(job.path), f"cannot compress: {_why(exc)}")
                continue
            self._compressing = None
            if why:
                events.append(Event("skipped", str(job.path), why))
            else:
                events.append(Event("compressed", str(job.path), f"to {job.target.name}"))

    # --- prune: one whole pass now (``auto logs prune``) -------------------------------------------

    def prune(self, live: Mapping[str, str | os.PathLike | None] | None = None,
              watcher_log: str | os.PathLike | None = None, dry_run: bool = False) -> list[Event]:
        """Apply retention to the whole tree now and return what was (or would be) done.

        ``live`` defaults to every service that the state file names and that is alive by
        identity; the recorded log path of every process is protected in any case.
        """
        key = state.signature(str(self.home.state_file))
        procs = state.processes(state.load(self.home).data)  # a StateError says what is wrong
        self._use_state(procs, key)
        if live is None:
            live = live_logs(procs)
        watcher_log = watcher_log or self.home.watcher_log
        now = self.clock()
        live_paths = {str(p) for p in live.values() if p} | {str(watcher_log)}
        events: list[Event] = []
        if dry_run:
            for name, entry in self._entries():
                if isinstance(entry, _Problem):
                    events.append(Event("error", entry.path, entry.detail))
                    continue
                action = self._decide(name, entry, now, live_paths)
                if action:
                    events.append(Event(f"would {action}", entry.path))
            return events
        saved = (self.scan_batch, self.delete_batch, self.compress_budget, self._reported)
        self.scan_batch = self.delete_batch = self.compress_budget = 1 << 62
        self._reported = {}
        try:
            self._walk = self._entries()
            while self._in_pass:
                self._advance(now, live, watcher_log, events)
            while self._waiting:  # interrupted rolls the pass found: recovered now, here
                path, (keep_parts, size) = self._waiting.popitem()
                events += _maintain(path, keep_parts, size)
        finally:
            self.scan_batch, self.delete_batch, self.compress_budget, self._reported = saved
        return events


@dataclass(frozen=True)
class _Problem:
    """A directory the walk could not read, passed through the entry stream."""

    path: str
    detail: str


def _subdirs(path: Path) -> tuple[list[Path], list[_Problem]]:
    """The subdirectories of a level of the log tree, and what is wrong with that level."""
    try:
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        return [], [_Problem(str(path), f"cannot read the log directory: {_why(exc)}")]
    dirs, problems = [], []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            dirs.append(Path(entry.path))
        elif not entry.name.endswith(_TMP):
            problems.append(_Problem(entry.path, "a file where a log directory belongs; logs cannot be kept here"))
    return dirs, problems


def _files(name: str, path: Path) -> Iterator[tuple[str, os.DirEntry | _Problem]]:
    try:
        with os.scandir(path) as it:
            entries = list(it)
    except OSError as exc:
        yield name, _Problem(str(path), f"cannot read the log directory: {_why(exc)}")
        return
    for entry in entries:
        yield name, entry


def live_logs(procs: Mapping[str, Mapping]) -> dict[str, str]:
    """name -> recorded log path of every process alive by identity (for callers without a watcher)."""
    return {
        name: entry["log_path"]
        for name, entry in procs.items()
        if isinstance(entry.get("log_path"), str) and identity.runs(entry)
    }


# --- per-process options (``auto add/update --log-max-bytes/--log-keep-parts/--log-keep-days``) ---

_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": MiB, "mb": MiB, "mib": MiB,
               "g": 1024 * MiB, "gb": 1024 * MiB, "gib": 1024 * MiB}


def parse_option(key: str, value: object) -> int | float:
    """Validate one log option for the state entry; raises ``UsageError`` with one line."""
    import re

    from auto_core.errors import UsageError

    text = str(value).strip().lower()
    if key == "log_max_bytes":
        match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)", text)
        if not match or match.group(2) not in _SIZE_UNITS:
            raise UsageError(f"invalid log max bytes {value!r}: use e.g. 50M, 200K, 1G or a number of bytes")
        number = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
        if not 1024 <= number <= 1 << 50:
            raise UsageError(f"invalid log max bytes {value!r}: use at least 1K")
        return number
    if key == "log_keep_parts":
        if not re.fullmatch(r"[0-9]{1,4}", text) or int(text) > 1000:
            raise UsageError(f"invalid log keep parts {value!r}: use a whole number from 0 to 1000")
        return int(text)
    if key == "log_keep_days":
        days_text = text.removesuffix("d")
        days = float(days_text) if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", days_text) else -1.0
        if not 1 <= days <= 36600:
            raise UsageError(f"invalid log keep days {value!r}: use a number of days >= 1")
        return days
    raise KeyError(key)
