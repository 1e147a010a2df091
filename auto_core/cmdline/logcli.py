"""CLI handlers for logs: printing, following and browsing runs, pruning.

Kept apart from cli.py so that file stays a thin dispatcher: ``auto log NAME [-n N] [-f]``,
``auto log NAME --path``, ``auto log NAME --runs``, ``auto log NAME --run N`` and
``auto logs prune [--dry-run]``.
"""

from __future__ import annotations

import sys

from auto_core import humanize, validate
from auto_core.errors import AutoError, ExitCode, NotFound, UsageError
from auto_core.logtree import logmaint, logs
from auto_core.proc import identity
from auto_core.store import state
from auto_core.store.paths import Home

DEFAULT_LINES = 100


def show_log(api, args, out) -> int:
    """``auto log NAME``: the current log's last ``-n`` lines (100), followed with ``-f``."""
    if args.runs or args.run is not None:
        return show_runs(api, args, out)
    lines = DEFAULT_LINES if args.lines is None else args.lines
    path = api.log_path(args.name)
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
        for i, run in enumerate(all_runs):
            number = i - len(all_runs)
            current = recorded is not None and str(run.path) == recorded
            ended: str | None
            if current and alive:
                ended = "running"
            else:
                ended = logs.run_end(run)
                if ended is None and current and last_exit:
                    ended = describe_exit(last_exit)
            rows.append([str(number), f"{run.started:%Y-%m-%d %H:%M:%S}", humanize.size(run.size),
                         str(len(run.parts)), ended or "-", str(run.path)])

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
