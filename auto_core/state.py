"""The state file: locked, atomic read-modify-write (DESIGN.md §3).

Readers take no lock: ``state.json`` is only ever replaced by ``os.replace``. Writers hold an
exclusive ``flock`` on ``local/state.lock`` (a file that is never renamed), re-read, change,
write a unique temp file, ``fsync`` it, rename it over ``state.json`` and refresh ``.bak``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import marshal
import os
import time
from collections.abc import Callable, Iterator

from auto_core.errors import StateError
from auto_core.paths import FILE_MODE, Home, ensure_dir
from auto_core.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from pathlib import Path

VERSION = 1


class Loaded(Record):
    data: dict
    source: str  # "main", "bak" or "empty"
    problem: str | None = None  # why state.json was not used, when source == "bak"
    raw: bytes | None = None  # the bytes ``data`` was parsed from (source "main")


def _shape_error(data: object) -> str | None:
    if not isinstance(data, dict):
        return "it is not a JSON object"
    procs = data.get("processes", {})
    if not isinstance(procs, dict):
        return "'processes' is not an object"
    for name, entry in procs.items():
        if not isinstance(entry, dict):
            return f"entry {name!r} is not an object"
        if not isinstance(entry.get("command"), str):
            return f"entry {name!r} has no command"
    return None


def _parse(path: str) -> tuple[dict | None, str | None, bytes | None]:
    """Return (data, None, raw) or (None, reason, None). A missing file is (None, None, None)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return None, None, None
    except IsADirectoryError:
        return None, f"{path} is a directory", None
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}", None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = "it is empty" if not raw.strip() else f"it is not valid JSON ({exc})"
        return None, reason, None
    problem = _shape_error(data)
    if problem:
        return None, problem, None
    data.setdefault("processes", {})
    return data, None, raw


def load(home: Home) -> Loaded:
    """Read the state without locking. Falls back to ``.bak``; raises StateError if neither parses."""
    return load_files(str(home.state_file), str(home.state_bak))


def load_files(state_file: str, bak_file: str) -> Loaded:
    """``load`` given the two files' paths (``paths.state_files``): no ``Home``, no pathlib."""
    data, problem, raw = _parse(state_file)
    if data is not None:
        return Loaded(data, "main", raw=raw)
    if problem is None and not os.path.exists(state_file):
        return Loaded({"version": VERSION, "processes": {}}, "empty")
    bak, _, _ = _parse(bak_file)
    if bak is not None:
        return Loaded(bak, "bak", f"{state_file} is unreadable ({problem}); using {os.path.basename(bak_file)}")
    raise StateError(
        f"state file {state_file} is unreadable ({problem}) and there is no usable backup;"
        " fix or move it away (auto will not overwrite it)"
    )


def _write_atomic(directory: Path, target: Path, payload: bytes, sync: bool = True) -> None:
    tmp = directory / f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# A process's encoded line by the exact value it encodes (``marshal`` bytes: type-strict, so
# True, 1 and 1.0 never share a line). ``marshal`` takes ~1.7 us an entry where ``json`` with
# sorted keys takes ~9: at 200 services a dump of which one entry changed is ~0.6 ms, against ~1.9 ms with every
# entry encoded again (measured in session 3), and a restart's bookkeeping competes less with the new process starting. Holds the lines of
# the last dump only.
_LINES: dict[bytes, str] = {}


def dump(data: dict) -> bytes:
    """The file's canonical bytes: sorted keys, one line per process.

    Each value is encoded without ``indent``, so ``json`` uses its C encoder (``indent=2``, the
    pure-Python encoder, took ~2.5 ms at 200 services before the line cache), and a change is
    detected by comparing these bytes with the file's (no second encoding of the old state).
    """
    global _LINES
    enc = json.dumps
    used: dict[bytes, str] = {}
    lines = []
    for key in sorted(data):
        value = data[key]
        if key == "processes" and isinstance(value, dict) and value:
            body = []
            for name in sorted(value):
                entry = value[name]
                try:
                    exact = marshal.dumps(entry, 2)  # version 2: no back-references, so no
                except ValueError:                    # dependence on reference counts
                    exact = None
                text = _LINES.get(exact) if exact is not None else None
                if text is None:
                    text = enc(entry, sort_keys=True)
                if exact is not None:
                    used[exact] = text
                body.append(f"    {enc(name)}: {text}")
            lines.append('  "processes": {\n' + ",\n".join(body) + "\n  }")
        else:
            lines.append(f"  {enc(key)}: {enc(value, sort_keys=True)}")
    _LINES = used
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode("utf-8")


def save(home: Home, data: dict, loaded_from: str = "main", payload: bytes | None = None) -> None:
    """Write ``data`` (``payload``: its ``dump``, if already made); hold the lock (see ``transaction``)."""
    data["version"] = VERSION
    payload = payload or dump(data)
    if loaded_from == "bak" and home.state_file.exists():
        # Keep the broken file for the user instead of overwriting it.
        stamp = time.strftime("%Y%m%d-%H%M%S")
        broken = home.local / f"state.json.corrupt-{stamp}-{os.urandom(2).hex()}"
        try:
            os.rename(home.state_file, broken)
        except OSError as exc:
            raise StateError(f"cannot move aside the unreadable {home.state_file}: {exc.strerror}") from exc
    global _last_saved
    _last_saved = None
    try:
        _write_atomic(home.local, home.state_file, payload)
        _fsync_dir(home.local)
        sig = signature(str(home.state_file))  # the lock is held: nobody replaced it since
        _write_atomic(home.local, home.state_bak, payload, sync=False)
    except OSError as exc:
        raise StateError(f"cannot write {home.state_file}: {exc.strerror or exc}") from exc
    _last_saved = (str(home.state_file), sig, data)


_last_saved: tuple[str, tuple[int, int, int] | None, dict] | None = None


def signature(path: str) -> tuple[int, int, int] | None:
    """What tells one version of the file from another: every write renames a new file in."""
    try:
        st = os.stat(path)
    except OSError:  # missing, or a file where local/ belongs: the parse will say what
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def saved(path: str, sig: tuple[int, int, int] | None) -> dict | None:
    """The data this process last wrote to ``path``, if the file is still that version: the
    watcher then takes what it just wrote instead of parsing it again (~1 ms at 200
    services, right after each restart's spawn). Shared: read it, never change it."""
    last = _last_saved
    if last is not None and sig is not None and last[0] == path and last[1] == sig:
        return last[2]
    return None


@contextlib.contextmanager
def locked(home: Home) -> Iterator[None]:
    """Hold the exclusive state lock. Not reentrant: keep transactions leaf-level."""
    try:
        ensure_dir(home.local)
        fd = os.open(home.state_lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # O_CREAT's mode is masked by the umask (issue 6, §8)
    except OSError as exc:
        raise StateError(f"cannot open the state lock {home.state_lock}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


class Peek:
    """Single entries of ``state.json``, read without parsing the whole file: the one line
    ``    "NAME": {...},`` that ``dump`` writes per process (a 200-service file parses in ~1 ms;
    one line in ~0.01). ``entry`` is None when the file is not in that form: ask ``load``."""

    def __init__(self, home: Home):
        self.home = home
        self.raw: bytes | None = None
        self._first = -1  # where the "processes" object starts in ``raw``

    def _read(self) -> bytes | None:
        """The file, read on the first ``entry`` (a caller that asks nothing reads nothing)."""
        if self.raw is None:
            try:
                self.raw = self.home.state_file.read_bytes()
            except OSError:
                return None
            self._first = self.raw.find(b'\n  "processes": {\n')
        return self.raw

    def entry(self, name: str) -> dict | None:
        raw = self._read()
        if raw is None or self._first < 0:
            return None
        # In dump's layout only a process starts a line with four spaces and a quote (every
        # other value is one line at two), so the first match is the entry. In another layout
        # a match is a line that does not parse, or a value whose claim will not match, and
        # the caller checks again on the parsed file anyway.
        key = b"\n    " + json.dumps(name).encode() + b": {"
        at = raw.find(key, self._first)
        if at < 0:
            return None
        start = at + len(key) - 1
        line = raw[start:raw.find(b"\n", start)].rstrip(b",")
        try:
            value = json.loads(line)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


@contextlib.contextmanager
def transaction(
    home: Home, warn: Callable[[str], None] | None = None, early: Callable[[Peek], None] | None = None,
) -> Iterator[dict]:
    """Lock, re-read, yield the state dict to change in place, then save it if it changed.

    An exception inside the block discards the change. ``early`` runs under the lock before
    the file is parsed (the watcher's restart spawns there, off the parse's time).
    """
    with locked(home):
        if early is not None:
            early(Peek(home))
        loaded = load(home)
        if loaded.problem and warn:
            warn(loaded.problem)
        if loaded.source == "bak":  # always written: the broken file is moved aside
            yield loaded.data
            save(home, loaded.data, loaded.source)
            return
        # What the file holds now, in canonical bytes (read, not re-encoded, for "main").
        before = loaded.raw if loaded.source == "main" else dump(loaded.data)
        yield loaded.data
        loaded.data["version"] = VERSION
        payload = dump(loaded.data)
        if payload != before:
            save(home, loaded.data, loaded.source, payload)


def processes(data: dict) -> dict[str, dict]:
    return data.setdefault("processes", {})
