"""CLI handlers for logs: printing, following and browsing runs, pruning.

Kept apart from cli.py so that file stays a thin dispatcher: ``auto log NAME [-n N] [-f]``,
``auto log NAME --path``, ``auto log NAME --runs``, ``auto log NAME --run N``,
``auto log [NAME|GLOB ...] [-n N] [-f] [--since AGE]`` (several logs merged, see
``logtree.merge``) and ``auto logs prune [--dry-run]``.
"""

from __future__ import annotations

import os
import sys

from auto_core import humanize, validate
from auto_core.errors import AutoError, ExitCode, NotFound, UsageError
from auto_core.logtree import logmaint, logs, runends
from auto_core.proc import identity
from auto_core.store import state
from auto_core.store.paths import Home

DEFAULT_LINES = 100
GLOB = "*?["
# honcho's colours: a name always gets the same one (crc32 of the name, not Python's salted hash)
ESC, RESET = "\x1b", "\x1b[0m"
PALETTE = ("36", "33", "32", "35", "31", "34", "96", "93", "92", "95", "91", "94")


def show_log(api, args, out) -> int:
    """``auto log NAME``: the current log's last ``-n`` lines (100), followed with ``-f``;
    no NAME, several or a glob: the logs merged (``show_merged``)."""
    since = _since(args.since)
    names = args.names
    if len(names) != 1 or any(c in names[0] for c in GLOB):
        return show_merged(api, args, out, since)
    args.name = names[0]
    if args.runs or args.run is not None:
        return show_runs(api, args, out)
    lines = DEFAULT_LINES if args.lines is None else args.lines
    path = api.log_path(args.name)
    if since is not None and path and not args.path and _written_before(path, since):
        lines = 0  # nothing of it was written in the window
    if args.follow and not args.path:
        _follow(api, args.name, path, lines, out)  # with no log yet, it waits for the first
        return ExitCode.OK
    if not path:
        raise AutoError(f"{args.name} has no log file yet")
    if args.path:
        out.data(path)
    else:
        for line in logs.iter_tail(path, lines):  # .gz read transparently
            out.data(line)
    return ExitCode.OK


def _follow(api, name: str, path, lines: int, out) -> None:
    """``auto log NAME -f``: every byte from here on, across rolls and restarts, until ^C."""
    import threading  # only `log -f` needs it; `auto ps` stays lean

    from auto_core.logtree import follow

    last = [path]

    def resolve():
        try:
            last[0] = api.log_path(name)  # parses the state only when it changed
        except NotFound:
            pass  # removed while followed: its last file stays
        return last[0]

    stop = threading.Event()
    try:
        for event in follow.follow(resolve, stop, start_lines=lines):
            if event.kind == "switch":
                out.data(f"----- new run: {event.path} -----")
            else:
                sys.stdout.write("".join(line + "\n" for line in event.lines))
            sys.stdout.flush()
    except KeyboardInterrupt:
        stop.set()


def _since(text: str | None) -> float | None:
    """``--since AGE`` as the wall-clock time the window starts at."""
    if text is None:
        return None
    import time

    try:
        age = validate.interval(text)
    except UsageError as exc:
        raise UsageError(f"argument --since: {exc}") from None
    return None if age is None else time.time() - age


def _written_before(path: str, since: float) -> bool:
    try:
        return os.stat(path).st_mtime < since
    except OSError:
        return False


def selection(api, patterns: list[str]) -> list[str]:
    """The defined names ``patterns`` choose (all when there are none), sorted; a name that is
    not defined, or a glob that matches nothing, is an error naming it (``Api.select``)."""
    defined = api.names()
    if not patterns:
        return defined
    chosen = api.select(patterns)
    for name in chosen:
        if name not in defined:
            validate.name(name)
            raise NotFound(name)
    return sorted(chosen)


def _matching(defined: list[str], patterns: list[str]) -> list[str]:
    """The defined names any of ``patterns`` matches (a plain name matches itself)."""
    from fnmatch import fnmatchcase

    if not patterns:
        return defined
    return [name for name in defined if any(fnmatchcase(name, p) for p in patterns)]


def show_merged(api, args, out, since: float | None) -> int:
    """``auto log [NAME|GLOB ...]``: the current logs of the chosen processes as one stream,
    each line prefixed with its process's name; ``-f`` follows them, and the processes the
    patterns select as they come and go."""
    from auto_core.logtree import merge

    if args.runs or args.run is not None or args.path:
        raise UsageError("--runs, --run and --path take one process name")
    patterns = list(args.names)
    lines = DEFAULT_LINES if args.lines is None else args.lines
    selection(api, patterns)  # a bad name or a glob that matches nothing fails before any output

    def resolve(name: str) -> str | None:
        try:
            return api.log_path(name)
        except NotFound:
            return None  # removed: the follower keeps its last file

    def resolve_new(name: str) -> str | None:
        try:
            recorded = api.entry(name).get("log_path")
        except NotFound:
            return None
        return recorded if isinstance(recorded, str) and os.path.isfile(recorded) else None

    merged = merge.Merged(lambda: _matching(api.names(), patterns), resolve, resolve_new)
    printer = _Printer(_colour(), sys.stdout)
    try:
        opening = merged.open(lines, since=since, whole=args.follow)
        printer.write(merged.names, opening)
        if not args.follow:
            return ExitCode.OK
        import threading

        stop = threading.Event()
        while not stop.is_set():
            batch = merged.poll()
            printer.write(merged.names, batch)
            if not batch and not merged.more:
                stop.wait(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        merged.close()
    return ExitCode.OK


def _colour() -> bool:
    """Colour on a terminal, unless NO_COLOR is set (to anything but empty: no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


class _Printer:
    """Writes ``(name, line)`` pairs as ``name | line``, the names padded to the longest."""

    def __init__(self, colour: bool, stream):
        self.colour = colour
        self.stream = stream
        self._prefixes: dict[str, str] = {}
        self._width = 0

    def write(self, names: list[str], batch: list[tuple[str, str]]) -> None:
        if not batch:
            return
        width = max(map(len, [*names, *(name for name, _ in batch)]))
        if width != self._width:
            self._width, self._prefixes = width, {}
        prefixes = self._prefixes
        reset = RESET if self.colour else ""
        text = []
        for name, line in batch:
            prefix = prefixes.get(name)
            if prefix is None:
                prefix = prefixes[name] = self._prefix(name)
            # A colour the service left on would run into the next line's prefix.
            text.append(f"{prefix}{line}{reset if reset and ESC in line else ''}\n")
        self.stream.write("".join(text))
        self.stream.flush()

    def _prefix(self, name: str) -> str:
        padded = f"{name:<{self._width}} | "
        if not self.colour:
            return padded
        import zlib

        code = PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]
        return f"{ESC}[{code}m{padded}{RESET}"


def pick(all_runs: list[logs.Run], number: int) -> logs.Run:
    """Run ``number``: negative from the newest (-1 = current/last), positive from the oldest (1)."""
    if number == 0:
        raise UsageError("--run counts from -1 (the current or last run) back, or from 1 (the oldest)")
    index = number if number < 0 else number - 1
    if not -len(all_runs) <= index < len(all_runs):
        raise AutoError(f"there is no run {number} (there {'is' if len(all_runs) == 1 else 'are'} {len(all_runs)})")
    return all_runs[index]


def show_runs(api, args, out) -> int:
    """``auto log NAME --runs`` (a table) or ``auto log NAME --run N`` (that run's text)."""
    from auto_core.views import describe_exit

    validate.name(args.name)
    entry = state.processes(api.load()).get(args.name)
    all_runs = logs.runs(api.home, args.name)
    if not all_runs:
        if entry is None:
            raise AutoError(f"no process named {args.name!r} and no logs of one (see 'auto ps')")
        raise AutoError(f"{args.name} has no log file yet")
    recorded = entry.get("log_path") if entry else None
    last_exit = entry.get("last_exit") if entry else None
    alive = identity.runs(entry) if entry else False

    if args.runs:
        rows = [["RUN", "STARTED", "SIZE", "PARTS", "ENDED", "FILE"]]
        found = []
        base = api.home.process_logs(args.name)
        for i, run in enumerate(all_runs):
            number = i - len(all_runs)
            current = recorded is not None and str(run.path) == recorded
            ended = runends.how_ended(run, current=current, alive=alive,
                                      last_exit=describe_exit(last_exit) if last_exit else None)
            short = runends.short_end(ended, run)
            found.append({"run": number, "started": run.started.isoformat(), "size": run.size,
                          "parts": len(run.parts), "ended": short, "how": ended, "path": str(run.path)})
            try:
                shown = str(run.path.relative_to(base))
            except ValueError:
                shown = str(run.path)
            rows.append([str(number), f"{run.started:%Y-%m-%d %H:%M:%S}", humanize.size(run.size),
                         str(len(run.parts)), short, shown])
        if getattr(args, "json", False):
            from auto_core.views import json_text

            out.data(json_text(found))
        else:
            out.data(humanize.table(rows))
        return ExitCode.OK

    run = pick(all_runs, args.run)
    try:
        if args.lines is not None:
            for line in logs.tail_run(run, args.lines):
                out.data(line)
        else:
            import codecs

            # The whole run as it is, a chunk at a time: the same text as line by line, with
            # no line ever held whole.
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            for chunk in logs.iter_run_chunks(run):
                sys.stdout.write(decoder.decode(chunk))
            sys.stdout.write(decoder.decode(b"", final=True))
            sys.stdout.flush()
    except logs.CorruptLog as exc:
        sys.stdout.flush()
        raise AutoError(str(exc)) from exc
    return ExitCode.OK


def prune(home: Home, args, out) -> int:
    """``auto logs prune [--dry-run]``: the retention pass now, one line per file touched."""
    events = logmaint.Maintainer(home).prune(dry_run=args.dry_run)
    code = ExitCode.OK
    for event in events:
        if event.error:
            out.error(f"{event.path}: {event.detail}")
            code = ExitCode.FAILURE
        else:
            out.data(f"{event.kind} {event.path}" + (f" ({event.detail})" if event.detail else ""))
    if not events:
        out.info("nothing to prune")
    return code
