"""Restart on change (``--restart-on-change PATH``): which files a service's run depends on,
watched for it while it runs.

The loop must never block on files, so each watched path gets one thread, running
``watchfiles.watch`` (a blocking generator over inotify, FSEvents or kqueue, through Rust's
``notify``). watchfiles groups a burst of changes until ``DEBOUNCE`` passes with no new path
(``GROUP_MAX`` at most), drops what the ignore globs match (``Select``), and the thread hands
the changed paths over (and, once its watch is up, says so: the ``watching`` line of
``auto.log`` comes after the watch, not before) under a lock and wakes the loop through the
notifier's self-pipe
(``Notifier.wake``, which every back end waits on). The loop takes them (``Changes.take``)
and restarts the service (``watch``).

A thread is started when a service with the option is running, kept across its restarts and
crashes, and stopped (its ``stop_event`` set; it ends within ``DEBOUNCE``, the loop does not
wait for it) when the service is stopped, removed, or its paths or globs change. No service
with the option: no thread, and ``watchfiles`` is never imported (the first thread imports
it, so neither the faces nor a watcher without such services pay for it).
"""

from __future__ import annotations

import fnmatch
import os
import threading
from collections.abc import Callable, Iterable, Mapping

from auto_core import model
from auto_core.options import DEFAULT_IGNORE

# A burst of saves is one restart: changes are grouped until this passes with no newly
# changed path (watchfiles' ``step``).
DEBOUNCE = 0.3
GROUP_MAX = 5.0  # changes that never pause are handed over this often at most
RECHECK = 1.0  # a watched path gone is looked for this often; a watched one checked as often

Spec = tuple[tuple[str, ...], tuple[str, ...]]  # (watched paths, the user's ignore globs)


def spec(entry: dict) -> Spec | None:
    """What ``entry`` asks to be watched, or None."""
    paths = model.texts(entry, "restart_on_change")
    return (paths, model.texts(entry, "ignore")) if paths else None


class Select:
    """watchfiles' ``watch_filter``: True for a change that counts. A watched file counts
    whatever its name; below a watched directory, a glob without ``/`` is matched against
    every part of the path below it (``__pycache__`` drops ``src/__pycache__/x.pyc``,
    ``*.log`` any log file), one with ``/`` against that whole relative path (``build/*``).
    Anything else (a neighbour of a watched file in its folder) does not count."""

    def __init__(self, dirs: Iterable[str], files: Iterable[str], globs: Iterable[str]):
        self.dirs = sorted({d.rstrip("/") or "/" for d in dirs}, key=len, reverse=True)
        self.files = set(files)
        self.parts: list[str] = []
        self.paths: list[str] = []
        for glob in globs:
            while glob.startswith("./"):  # ``./dist`` is ``dist`` below the watched folder
                glob = glob[2:]
            glob = glob.strip("/")
            if glob:
                (self.paths if "/" in glob else self.parts).append(glob)

    def __call__(self, change: object, path: str) -> bool:
        if path in self.files:
            return True
        for root in self.dirs:
            if path == root or path.startswith(root.rstrip("/") + "/"):
                return not self.ignored(path[len(root.rstrip("/")) + 1:])
        return False

    def ignored(self, rel: str) -> bool:
        parts = rel.split("/")
        if any(fnmatch.fnmatchcase(part, glob) for part in parts for glob in self.parts):
            return True
        return any(fnmatch.fnmatchcase(rel, glob) for glob in self.paths)


def plan(path: str, globs: Iterable[str]) -> tuple[str, bool, Select] | None:
    """What to hand watchfiles for one watched ``path``: the folder to watch, whether
    recursively, and the filter; None when it does not exist. A directory is watched with
    everything below it. A file is watched through its folder alone (not recursively: a
    file in ``~`` must not watch all of home): an editor that saves by writing a new file
    and renaming it over the old one would otherwise end the watch at the first save."""
    if os.path.isdir(path):
        # Both forms of each path: FSEvents reports the real path, inotify the one watched.
        return path, True, Select([path, os.path.realpath(path)], (), DEFAULT_IGNORE + tuple(globs))
    if os.path.exists(path):
        return os.path.dirname(path) or "/", False, Select((), [path, os.path.realpath(path)], ())
    return None


def _transient(batch: set) -> set[str]:
    """The paths made and deleted within a batch and gone now: a temporary file (``sed -i``
    renames one over the file it edits), no change of its own."""
    import watchfiles

    made = {p for change, p in batch if change == watchfiles.Change.added}
    return {p for change, p in batch
            if change == watchfiles.Change.deleted and p in made and not os.path.lexists(p)}


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def describe(paths: Iterable[str], workdir: str | None) -> str:
    """``src/app.py and 3 more``: the first changed path (relative to ``workdir`` when under
    it) and how many others."""
    shown = sorted(paths)
    if not shown:
        return "nothing"
    first = shown[0]
    if workdir and first.startswith(workdir.rstrip("/") + "/"):
        first = first[len(workdir.rstrip("/")) + 1:]
    return first + (f" and {len(shown) - 1} more" if len(shown) > 1 else "")


class _Watch:
    """One service's threads: one per watched path (a file inside a watched directory is
    seen through it), so that a directory is watched recursively and a file's folder not."""

    def __init__(self, name: str, what: Spec, deliver: Callable[..., None]):
        self.name, self.spec, self._deliver = name, what, deliver
        self.stop_event = threading.Event()
        paths = what[0]
        own = [p for p in paths
               if not any(d != p and p.startswith(d.rstrip("/") + "/") for d in paths)]
        self.threads = [threading.Thread(target=self._run, args=(path,), daemon=True,
                                         name=f"auto-changes-{name}") for path in own]
        # Said once every thread's watch is up (or its path looked for): a change made
        # after the line is seen.
        self.coming = len(self.threads)
        self.up_line = (f"watching {', '.join(paths)} for changes "
                        f"(ignoring {' '.join(DEFAULT_IGNORE + what[1])})")
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()

    def _run(self, path: str) -> None:
        """Watch ``path`` until stopped. Gone (deleted, or replaced: ``rm -rf src; mkdir
        src``), it is said once and looked for every ``RECHECK``; back, it counts as changed
        and is watched again. inotify would otherwise keep watching nothing."""
        globs = self.spec[1]
        try:
            import watchfiles  # here: nothing else loads it (see the module's docstring)

            missing: str | None = None  # said gone or not found, not back yet
            watched = up = False
            while not self.stop_event.is_set():
                planned = plan(path, globs)
                if planned is None:
                    if missing is None:
                        missing = "gone" if watched else "not found"
                        self._deliver(self, None, f"{path}: {missing}; watching for it to "
                                                  f"appear (looked for every {RECHECK:g} s)",
                                      up=not up)
                        up = True
                    self.stop_event.wait(RECHECK)
                    continue
                if missing is not None:
                    self._deliver(self, {path}, f"{path}: back; watching it again")
                    missing = None
                root, recursive, select = planned
                ident = _identity(root)
                ends = {path, root, os.path.realpath(path), os.path.realpath(root)}
                watched = True
                for batch in watchfiles.watch(
                        root, watch_filter=select, recursive=recursive,
                        step=int(DEBOUNCE * 1000), debounce=int(GROUP_MAX * 1000),
                        rust_timeout=int(RECHECK * 1000), yield_on_timeout=True,
                        stop_event=self.stop_event, raise_interrupt=False):
                    if self.stop_event.is_set():
                        return
                    if not up:  # the first yield (at the latest after RECHECK): the watch is up
                        up = True
                        self._deliver(self, None, None, up=True)
                    changed = {p for _, p in batch} - _transient(batch)
                    if changed:
                        self._deliver(self, changed, None)
                    # The watched path or folder deleted, even if already made anew (its
                    # inode number is often the old one's): watched again, or looked for.
                    if any(change == watchfiles.Change.deleted and p in ends for change, p in batch) \
                            or _identity(root) != ident or os.path.isdir(path) != recursive \
                            or not os.path.exists(path):
                        break
                else:
                    return
        except Exception as exc:  # a thread's failure is said by the loop, not raised
            if not self.stop_event.is_set():
                self._deliver(self, None, f"watching failed ({type(exc).__name__}: {exc}); "
                                          "not watching", up=not up)


class Changes:
    """Every watched service's thread, and what they found that the loop has not taken."""

    def __init__(self, wake: Callable[[], None]):
        self._wake = wake
        self._lock = threading.Lock()
        self._watches: dict[str, _Watch] = {}
        self._found: dict[str, set[str]] = {}
        self._said: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self._watches)

    def sync(self, entries: Mapping[str, dict], running: Callable[[str], bool]) -> list[str]:
        """Start a thread for each service with the option that runs, keep it while the
        service is not stopped, end it when the service is stopped, removed or its paths or
        globs changed. Returns what to log."""
        wanted: dict[str, Spec] = {}
        for name, entry in entries.items():
            if "restart_on_change" not in entry or entry.get("explicitly_stopped"):
                continue
            what = spec(entry)
            if what is not None and (name in self._watches or running(name)):
                wanted[name] = what
        said = []
        with self._lock:
            for name in [n for n, w in self._watches.items() if wanted.get(n) != w.spec]:
                self._watches.pop(name).stop()
                self._found.pop(name, None)
                said.append(f"{name}: not watching for changes any more")
            for name, what in wanted.items():
                if name not in self._watches:
                    self._watches[name] = _Watch(name, what, self._deliver)
        return said

    def take(self) -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
        """The changed paths by service since the last call, and the threads' lines to log
        (after the service's name)."""
        if not self._watches and not self._said:
            return {}, []
        with self._lock:
            found, self._found = self._found, {}
            said, self._said = self._said, []
        return found, said

    def close(self) -> None:
        """Stop every thread; once this returns none wakes the loop (whose notifier closes
        next: a late wake would write to a closed, or reused, descriptor)."""
        with self._lock:
            for w in self._watches.values():
                w.stop()
            self._watches.clear()

    def _deliver(self, watch: _Watch, paths: set[str] | None, message: str | None,
                 up: bool = False) -> None:
        """From a thread: keep what it found and what it says, and that its watch is up
        (unless it was stopped or replaced meanwhile); wake the loop, under the lock that
        ``close`` takes."""
        with self._lock:
            if self._watches.get(watch.name) is not watch:
                return
            if paths:
                self._found.setdefault(watch.name, set()).update(paths)
            if message:
                self._said.append((watch.name, f"restart on change: {message}"))
            if up:
                watch.coming -= 1
                if watch.coming == 0:
                    self._said.append((watch.name, watch.up_line))
            self._wake()
