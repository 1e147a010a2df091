"""CLI handlers for setup files: ``auto apply FILE``, ``auto import FILE`` (another process
manager's file, converted) and ``auto export [--format F] [--output DIR]``.

Kept apart from cli.py so that file stays a thin dispatcher. ``apply`` and ``import`` share
everything after reading: the plan, its lines, ``lifecycle.Api.apply`` and the report.
"""

from __future__ import annotations

import os
import sys

from auto_core.errors import ExitCode, NotFound, UsageError, warn_stderr
from auto_core.store import state

_MARKS = {"add": "+", "change": "~", "same": "=", "remove": "-", "keep": "="}


def _plan_line(step) -> str:
    what = {"add": "add" if step.start else "add, not started", "same": "unchanged",
            "remove": "remove, --prune", "keep": "not in the file; kept without --prune"}.get(step.action)
    if step.action == "change":
        what = f"{', '.join(step.changed)} changed"
    return f"{_MARKS[step.action]} {step.name} ({what})"


def apply(api, args, out, wait: dict) -> int:
    """``auto apply FILE``: an ``auto.toml``."""
    from auto_core import setupfile
    from auto_core.lifecycle import check_program

    return _carry_out(api, args, out, wait, setupfile.load(args.file, check_program), ())


def import_file(api, args, out, wait: dict) -> int:
    """``auto import FILE``: a Procfile, supervisord conf, pm2 ecosystem or process-compose
    file, checked and applied as ``auto apply`` does an ``auto.toml``."""
    from auto_core import imports
    from auto_core.lifecycle import check_program

    wanted, imported = imports.load(args.file, check_program)
    if imported.ignored:
        warn_stderr(f"{args.file}: not carried over: {'; '.join(imported.ignored)}")
    return _carry_out(api, args, out, wait, wanted, imported.held)


def _carry_out(api, args, out, wait: dict, wanted: dict, held) -> int:
    """Plan, then (unless --dry-run) apply: one line per service for each."""
    from auto_core import setupfile

    steps = setupfile.plan(wanted, state.processes(api.load()), args.prune, held)
    for step in steps:
        out.data(_plan_line(step))
    if args.dry_run or all(s.action in ("same", "keep") for s in steps):
        return ExitCode.OK
    done = api.apply(steps, start=not args.no_start, **wait)
    out.info("applied:")
    code = ExitCode.OK
    for step in steps:
        outcome = done.get(step.name)
        line = {"add": "added", "change": f"{', '.join(step.changed)} changed",
                "same": "unchanged", "remove": "removed, --prune", "keep": "kept"}[step.action]
        if outcome is not None and outcome.ok:
            line += {"add": "; started", "change": "; restarted"}.get(step.action, "")
            if outcome.pid and step.action != "remove":
                line += f", pid {outcome.pid}"
        if outcome is not None and not outcome.ok:
            code = ExitCode.FAILURE
            out.error(f"{_MARKS[step.action]} {step.name} ({line}): {outcome.message}")
            for detail in outcome.detail:
                print(f"  | {detail}", file=sys.stderr)
        else:
            out.info(f"{_MARKS[step.action]} {step.name} ({line})")
    return code


def export(api, args, out) -> int:
    """``auto export``: one file (to stdout, or into --output DIR) or a file per service
    (into --output DIR only)."""
    from auto_core import exports, setupfile

    fmt, folder = args.format, args.output
    if fmt in exports.PER_SERVICE and not folder:
        raise UsageError(f"--format {fmt} writes a file per service: give a folder with --output DIR")
    names = api.select(args.names) if args.names else api.names()
    procs = state.processes(api.load())
    for name in names:
        if name not in procs:
            raise NotFound(name)
    if not names and fmt in exports.PER_SERVICE:  # no file to write: say so, as start-all does
        out.info("no processes defined")
        return ExitCode.OK
    if fmt == "toml":
        files = {"auto.toml": setupfile.export(procs, names)}
    else:
        services = [exports.Service(name, procs[name], api.environment(name)) for name in names]
        files = exports.render(fmt, services, os.path.abspath(folder) if folder else None)
    if not folder:
        (text,) = files.values()
        sys.stdout.write(text)
        return ExitCode.OK
    for path in exports.write(folder, files, fmt):
        out.info(f"wrote {path}")
    return ExitCode.OK
