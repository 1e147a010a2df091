"""CLI handlers for browsing previous runs and pruning logs.

Kept apart from cli.py so that file stays a thin dispatcher: ``auto log NAME --runs``,
``auto log NAME --run N`` and ``auto logs prune [--dry-run]``.
"""

from __future__ import annotations

import sys

from auto_core import humanize, validate
from auto_core.errors import AutoError, ExitCode, UsageError
from auto_core.logtree import logmaint, logs
from auto_core.proc import identity
from auto_core.store import state
from auto_core.store.paths import Home


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
    alive = identity.is_ours(entry.get("pid"), entry.get("create_time")) if entry else False

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
    lines = args.lines or 0
    try:
        if lines > 0:
            for line in logs.tail_run(run, lines):
                out.data(line)
        else:
            for raw in logs.iter_run_lines(run):
                sys.stdout.write(logs.decode(raw))
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
