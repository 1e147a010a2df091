"""The state file: locked, atomic read-modify-write (docs/architecture.md, Files).

Readers take no lock: ``state.json`` is only ever replaced by ``os.replace``. Writers hold an
exclusive ``flock`` on ``local/state.lock`` (a file that is never renamed), re-read, change,
write a unique temp file, ``fsync`` it, rename it over ``state.json`` and refresh ``.bak``.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator

from auto_core.errors import StateError, warn_stderr
from auto_core.record import Record
from auto_core.store import locks, sanitize
from auto_core.store.atomic import fsync_dir, write_atomic
from auto_core.store.paths import Home, check_private, ensure_dir

VERSION = 1


class Loaded(Record):
    data: dict
    source: str  # "main", "bak" or "empty"
    problem: str | None = None  # why state.json was not used, when source == "bak"
    raw: bytes | None = None  # the bytes ``data`` was parsed from (source "main")
    # One line per bad value found (``sanitize``), each neutralised in ``data``.
    warnings: tuple[str, ...] = ()
    # Entries whose name cannot be a process's: not in ``data``, written back unchanged.
    aside: dict | None = None


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
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError: a JSON error, or an integer of more than 4300 digits.
        why = exc if isinstance(exc, (UnicodeDecodeError, json.JSONDecodeError)) else "too large or too deep"
        reason = "it is empty" if not raw.strip() else f"it is not valid JSON ({why})"
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
    """``load`` given the two files' paths (``paths.state_files``): no ``Home``, no pathlib.
    Every entry is checked (``sanitize``): ``warnings`` says what was neutralised."""
    check_private(state_file)
    data, problem, raw = _parse(state_file)
    if data is not None:
        return Loaded(data, "main", raw=raw, **_clean(data, state_file))
    if problem is None and not os.path.exists(state_file):
        return Loaded({"version": VERSION, "processes": {}}, "empty")
    bak, _, _ = _parse(bak_file)
    if bak is not None:
        return Loaded(bak, "bak", f"{state_file} is unreadable ({problem}); using {os.path.basename(bak_file)}",
                      **_clean(bak, bak_file))
    raise StateError(
        f"state file {state_file} is unreadable ({problem}) and there is no usable backup;"
        " fix or move it away (auto will not overwrite it)"
    )


def _clean(data: dict, path: str) -> dict:
    """Neutralise every bad value of ``data``'s entries in place (``sanitize``); set aside the
    entries whose name cannot be a process's. ``Loaded``'s ``warnings`` and ``aside``."""
    # Home.logs of the home this file is in (as strings: `auto ps` does without pathlib).
    logs_root = os.path.join(os.path.dirname(os.path.dirname(path)), "output", "logs")
    label = os.path.basename(path)
    now = time.time()
    procs = processes(data)
    warnings: list[str] = []
    aside: dict = {}
    for name in list(procs):
        why = sanitize.name_problem(name)
        if why:
            aside[name] = procs.pop(name)
            warnings.append(f"{label}: {name!r}: {why}; ignored (kept in the file)")
            continue
        clean, problems = sanitize.sanitize(name, procs[name], logs_root, now)
        if problems:
            procs[name] = clean
            warnings.extend(f"{label}: {name}: {problem}" for problem in problems)
    return {"warnings": tuple(warnings), "aside": aside or None}


def _with_aside(data: dict, aside: dict | None) -> dict:
    """``data`` as it is written: with the entries set aside at load (a copy when there are any)."""
    if not aside:
        return data
    procs = dict(processes(data))
    for name, entry in aside.items():
        procs.setdefault(name, entry)
    return dict(data, processes=procs)


def dump(data: dict) -> bytes:
    """The file's canonical bytes: sorted keys, one line per process (easy to grep and diff;
    any valid JSON layout is read). A change is detected by comparing these bytes with the
    file's, so nothing is written when nothing changed."""
    enc = json.dumps
    lines = []
    for key in sorted(data):
        value = data[key]
        if key == "processes" and isinstance(value, dict) and value:
            body = [f"    {enc(name)}: {enc(value[name], sort_keys=True)}" for name in sorted(value)]
            lines.append('  "processes": {\n' + ",\n".join(body) + "\n  }")
        else:
            lines.append(f"  {enc(key)}: {enc(value, sort_keys=True)}")
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
    try:
        write_atomic(home.local, home.state_file, payload)
    except OSError as exc:
        raise StateError(f"cannot write {home.state_file}: {exc.strerror or exc}") from exc
    # Written: what follows only makes it durable or backs it up, and must not report the
    # write as failed (a caller would do it again on top of the file that holds it).
    with contextlib.suppress(OSError):
        fsync_dir(home.local)
    with contextlib.suppress(OSError):
        write_atomic(home.local, home.state_bak, payload, sync=False)


def signature(path: str) -> tuple[int, int, int] | None:
    """What tells one version of the file from another: every write renames a new file in."""
    try:
        st = os.stat(path)
    except OSError:  # missing, or a file where local/ belongs: the parse will say what
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


LOCK_WAIT = 60.0  # a writer gives up (one error line) after waiting this long for the lock
LOCK_NOTICE = 2.0  # a writer waiting this long says once who holds the lock


class Busy(StateError):
    """Another process holds the state lock (``transaction(blocking=False)``)."""


def lock_holder(home: Home, path: str | None = None) -> str:
    """Who holds the state lock (``path``: the part of it waited for, ``local/`` by default):
    ``pid 123 (auto start-all, stopped)``."""
    pid = locks.holder_pid(path or str(home.local))
    if pid is None and not os.path.exists(locks.PROC_LOCKS):
        pid = locks.opener_pid(str(home.state_lock))  # opened only by the holder of local/
    return locks.describe(pid)


@contextlib.contextmanager
def locked(home: Home, *, blocking: bool = True, notice: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the exclusive state lock. Not reentrant: keep transactions leaf-level.

    The lock is ``local/`` itself, then ``local/state.lock`` (``locks``: deleting the file
    cannot let two writers in). Waiting longer than LOCK_NOTICE sends ``notice`` one line
    naming the holder (stderr by default); after LOCK_WAIT it raises StateError. With
    ``blocking=False`` it raises ``Busy`` at once when another process holds the lock."""
    check_private(str(home.state_file))
    wait = LOCK_WAIT if blocking else 0.0
    say = notice or warn_stderr

    fds: list[int] = []
    try:
        try:
            ensure_dir(home.local)
            for path, directory in ((str(home.local), True), (str(home.state_lock), False)):
                def waiting(path: str = path) -> None:
                    say(f"waiting for the state lock held by {lock_holder(home, path)}")

                fd = locks.take(path, wait=wait, directory=directory, on_wait=(LOCK_NOTICE, waiting))
                if fd is None:
                    if not blocking:  # the watcher's try: no time spent on who holds it
                        raise Busy("the state lock is held by another process")
                    raise StateError(f"the state lock is still held by {lock_holder(home, path)}"
                                     f" after {LOCK_WAIT:g} s; nothing was changed")
                fds.append(fd)
        except OSError as exc:
            raise StateError(f"cannot open the state lock {home.state_lock}: {exc.strerror or exc}") from exc
        yield
    finally:
        for fd in reversed(fds):
            os.close(fd)  # closing releases the flock


def transaction(home: Home, warn: Callable[[str], None] | None = None, *, blocking: bool = True):
    """Lock, re-read, yield the state dict to change in place, then save it if it changed.
    An exception inside the block discards the change. (``StateFile.transaction``.)"""
    return StateFile(home, warn).transaction(blocking=blocking)


class StateFile:
    """One home's ``state.json`` as this process last read or wrote it.

    The one cache of the file: ``read`` parses it again only when it was replaced (every
    write renames a new file in, so a ``stat`` tells), so the watcher's loop, a face waiting
    for an outcome and the TUI's refresh pay a ``stat``, not a parse, while nothing changes.
    """

    def __init__(self, home: Home, warn: Callable[[str], None] | None = None):
        self.home = home
        self.path = str(home.state_file)
        self.warn = warn
        self.data: dict | None = None
        self.sig: tuple[int, int, int] | None = None
        self._lock = threading.Lock()  # the TUI reads from its poller and its action threads
        self._said: frozenset[str] = frozenset()  # the bad values of the last load, said once

    def _report(self, loaded: Loaded) -> None:
        """Warn of what ``loaded`` fell back on or neutralised; a bad value found again by the
        next load (a command reads, then writes) is not said again."""
        if self.warn is None:
            return
        if loaded.problem:
            self.warn(loaded.problem)
        for line in loaded.warnings:
            if line not in self._said:
                self.warn(line)
        self._said = frozenset(loaded.warnings)

    def changed(self) -> bool:
        """Whether the file is not the version last read or written (or none was)."""
        return self.data is None or self.sig is None or signature(self.path) != self.sig

    def read(self) -> dict:
        """The state (shared: change it only inside ``transaction``). Raises StateError."""
        with self._lock:
            sig = signature(self.path)
            if self.data is None or sig is None or sig != self.sig:
                loaded = load(self.home)
                self._report(loaded)
                self.data, self.sig = loaded.data, sig
            return self.data

    def processes(self) -> dict[str, dict]:
        return processes(self.read())

    @contextlib.contextmanager
    def transaction(self, *, blocking: bool = True) -> Iterator[dict]:
        """Lock, re-read, yield the state to change in place, then save it if it changed.
        ``blocking=False``: raise ``Busy`` before yielding when another process holds the
        lock, instead of waiting for it (the watcher's loop must never block on it)."""
        with locked(self.home, blocking=blocking, notice=self.warn):
            loaded = load(self.home)
            self._report(loaded)
            data = loaded.data
            if loaded.source == "bak":  # always written: the broken file is moved aside
                yield data
                data["version"] = VERSION
                save(self.home, _with_aside(data, loaded.aside), loaded.source)
            else:
                # What the file holds now, in canonical bytes (read, not re-encoded, for "main").
                before = loaded.raw if loaded.source == "main" else dump(data)
                yield data
                data["version"] = VERSION
                whole = _with_aside(data, loaded.aside)
                payload = dump(whole)
                if payload != before:  # a neutralised bad value is a change: the fix is stored
                    save(self.home, whole, loaded.source, payload)
            with self._lock:  # under the state lock: the version this write made
                self.data, self.sig = data, signature(self.path)


def processes(data: dict) -> dict[str, dict]:
    return data.setdefault("processes", {})
