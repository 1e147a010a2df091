"""The one-shot CLI (DESIGN.md §6). ``main(argv) -> int``; errors are one ``auto: error:`` line.

Never imports Textual: ``auto tui`` imports ``auto_tui`` inside its handler.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence

from auto_core import __version__
from auto_core.errors import AutoError, ExitCode, UsageError, warn_stderr
from auto_core.humanize import countdown, duration
from auto_core.paths import Home


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, sized like ``shutil.get_terminal_size`` without importing shutil
    (and through it bz2 and lzma: ~3 ms of every command, as every ``add_argument`` makes one)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        if width is None:
            try:
                width = int(os.environ.get("COLUMNS", "0"))
            except ValueError:
                width = 0
            if width <= 0:
                try:
                    width = os.get_terminal_size(sys.__stdout__.fileno()).columns
                except (AttributeError, ValueError, OSError):
                    width = 80
            width -= 2
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2."""

    command: str | None = None  # the command word being parsed, for a better hint

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401 - argparse API
        # The top-level parser reports a sub-command's leftovers, so ask which command it was.
        if "unrecognized arguments" in message and self.command == "add":
            message += " (quote the command, or put it after --)"
        raise UsageError(message)


class _Out:
    def __init__(self, quiet: bool):
        self.quiet = quiet

    def info(self, message: str) -> None:
        """Progress and confirmations: silenced by -q."""
        if not self.quiet:
            print(message)

    @staticmethod
    def data(message: str = "") -> None:
        """The command's own output: always printed."""
        print(message)

    @staticmethod
    def error(message: str) -> None:
        print(f"auto: error: {message}", file=sys.stderr)


class _Ignored:
    """Stands in for the sub-parser of a command that is not being run: every call is a no-op."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: self


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` if it is a known command and no global help is asked for."""
    tokens = iter(argv)
    for token in tokens:
        if token == "--home":
            next(tokens, None)
        elif token.startswith("--home=") or token in ("-q", "--quiet"):
            continue
        else:
            return token if token in HANDLERS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or with ``only`` just that command's sub-parser.

    Building all 17 sub-parsers costs about 7 ms, a sixth of `auto ps` (docs/benchmarks.md).
    """
    p = _Parser(prog="auto", description="Keep your local services running.")
    p.add_argument("--home", metavar="DIR", help="state and logs root (default: $AUTO_HOME or the user state dir)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but the command's own output")
    p.add_argument("--version", action="version", version=f"auto {__version__}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)
    if only is not None:
        add_parser = sub.add_parser
        sub.add_parser = lambda name, **kw: add_parser(name, **kw) if name == only else _Ignored()

    ps = sub.add_parser("ps", help="list processes")
    ps.add_argument("--json", action="store_true", help="machine-readable list")

    add = sub.add_parser("add", help="define a process and start it")
    add.add_argument("name")
    add.add_argument("command", nargs="+", help="shell command (quote it, or put it after --)")
    _definition_flags(add)
    add.add_argument("--no-start", action="store_true", help="define it but do not start it")

    for verb, text in (("start", "start processes"), ("stop", "stop processes (they stay stopped)"),
                       ("restart", "stop and start processes")):
        sp = sub.add_parser(verb, help=text)
        sp.add_argument("names", nargs="+", metavar="NAME")

    show = sub.add_parser("show", help="show a process's definition and state")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")

    upd = sub.add_parser("update", help="edit a definition (takes effect on next start)")
    upd.add_argument("name")
    upd.add_argument("--command", dest="new_command", metavar="C")
    _definition_flags(upd)
    upd.add_argument("--unset-env", action="append", default=[], metavar="KEY")

    rm = sub.add_parser("remove", help="stop and delete a definition (logs stay)")
    rm.add_argument("name")

    log = sub.add_parser("log", help="print or follow a process's current log")
    log.add_argument("name")
    log.add_argument("-f", "--follow", "--tail", action="store_true", help="follow new output (and new runs)")
    log.add_argument("-n", "--lines", type=int, default=None, metavar="N",
                     help="last N lines (0: all), default 100 (with --run: all)")
    log.add_argument("--path", "--file", action="store_true", help="print the log file's path only")
    log.add_argument("--runs", action="store_true", help="list the runs: start time, size, how each ended")
    log.add_argument("--run", type=int, metavar="N",
                     help="print run N: -1 the current or last, -2 the previous...; 1 the oldest")

    logs_cmd = sub.add_parser("logs", help="log maintenance")
    logs_sub = logs_cmd.add_subparsers(dest="logs_cmd", metavar="ACTION", parser_class=_Parser, required=True)
    prune = logs_sub.add_parser("prune", help="apply log retention now: delete old files, compress finished runs")
    prune.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")

    sub.add_parser("start-all", help="start every process that is not running")
    sub.add_parser("stop-all", help="stop every process")
    watch = sub.add_parser("watch", help="run the watcher in the foreground")
    watch.add_argument("--poll", action="store_true", help=argparse.SUPPRESS)  # force the 1 s poll path
    for verb in ("install", "uninstall"):
        sp = sub.add_parser(verb, help=f"{verb} the login service and ~/bin/auto wrapper")
        sp.add_argument("--dry-run", action="store_true", help="print what would be written and run")
        sp.add_argument("--platform", choices=("macos", "linux"), help="render for this platform")
    sub.add_parser("status", help="check the watcher, login service, state and logs")
    sub.add_parser("tui", help="open the full-screen app")
    return p


def _definition_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", metavar="DIR")
    p.add_argument("--port", metavar="P", help="1-65535 (update: 'off' clears it)")
    p.add_argument("--env", action="append", default=[], metavar="K=V")
    p.add_argument("--restart-every", metavar="I", help="periodic restart, e.g. 30m, 2h (update: 'off')")
    p.add_argument("--backoff-max", metavar="S", help="cap of the restart delay in seconds (default 7200)")
    p.add_argument("--backoff-base", metavar="S", help="first restart delay in seconds (default 1)")
    p.add_argument("--stop-timeout", metavar="S", help="seconds between the stop signal and SIGKILL (default 10)")
    p.add_argument("--stop-signal", metavar="SIG", help="signal sent first on stop (default SIGTERM)")
    p.add_argument("--log-max-bytes", metavar="SIZE", help="roll the run's log past this size, e.g. 50M (default 50M)")
    p.add_argument("--log-keep-parts", metavar="N", help="rolled parts kept per run (default 5)")
    p.add_argument("--log-keep-days", metavar="D", help="delete log files older than D days (default 30)")


# --- formatting ----------------------------------------------------------------------------

def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)).rstrip() for r in rows]
    return "\n".join(lines)


def ps_rows(views) -> list[list[str]]:
    from auto_core.views import describe_exit

    rows = [["NAME", "PID", "PORT", "UPTIME", "RESTARTS", "NEXT RESTART", "LAST EXIT"]]
    for v in views:
        pid = str(v.pid) if v.status == "running" else v.status
        nxt = "starting" if v.starting else countdown(v.next_restart_in_s) if v.next_restart_in_s is not None else "-"
        rows.append([v.name, pid, str(v.port) if v.port else "-", duration(v.uptime_s),
                     str(v.restarts), nxt, describe_exit(v.last_exit) if v.status != "running" else "-"])
    return rows


def _env_pairs(values: Sequence[str]) -> dict[str, str]:
    from auto_core import validate

    return dict(validate.env_pair(v) for v in values)


def _command_text(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else shlex.join(words)


# --- handlers ------------------------------------------------------------------------------

def _api(args):
    from auto_core.lifecycle import Api

    return Api(Home.resolve(args.home))


def _report(out: _Out, outcomes) -> int:
    code = ExitCode.OK
    for o in outcomes:
        if o.ok:
            out.info(o.message)
        else:
            out.error(o.message)
            code = ExitCode.FAILURE
    return code


def cmd_ps(args, out: _Out) -> int:
    import time

    from auto_core import state
    from auto_core.views import snapshot  # not the lifecycle API: `ps` only reads (~4 ms less)

    loaded = state.load(Home.resolve(args.home))
    if loaded.problem:
        warn_stderr(loaded.problem)
    views = snapshot(loaded.data, time.time())
    if args.json:
        fields = ("name", "status", "pid", "port", "command", "workdir", "uptime_s", "restarts",
                  "next_restart_in_s", "log_path", "last_exit", "restart_attempt", "restart_every")
        out.data(json.dumps([{f: getattr(v, f) for f in fields} for v in views], indent=2))
    elif views:
        out.data(table(ps_rows(views)))
    else:
        out.data(table(ps_rows([])))
        out.info("(no processes yet: auto add NAME \"COMMAND\")")
    return ExitCode.OK


def _options(args) -> dict:
    return {
        "restart_every": args.restart_every,
        "backoff_max": args.backoff_max,
        "backoff_base": args.backoff_base,
        "stop_timeout": args.stop_timeout,
        "stop_signal": args.stop_signal,
        "log_max_bytes": args.log_max_bytes,
        "log_keep_parts": args.log_keep_parts,
        "log_keep_days": args.log_keep_days,
    }


def cmd_add(args, out: _Out) -> int:
    result = _api(args).add(
        args.name,
        _command_text(args.command),
        workdir=args.workdir,
        port=args.port,
        env=_env_pairs(args.env),
        start=not args.no_start,
        **_options(args),
    )
    return _report(out, [result])


def cmd_update(args, out: _Out) -> int:
    result = _api(args).update(
        args.name,
        command=args.new_command,
        workdir=args.workdir,
        port=args.port,
        env=_env_pairs(args.env),
        unset_env=args.unset_env,
        **_options(args),
    )
    return _report(out, [result])


def cmd_lifecycle(args, out: _Out) -> int:
    api = _api(args)
    method = {"start": api.start, "stop": api.stop, "restart": api.restart}[args.cmd]
    return _report(out, method(dict.fromkeys(args.names)))


def cmd_all(args, out: _Out) -> int:
    api = _api(args)
    outcomes = api.start_all() if args.cmd == "start-all" else api.stop_all()
    if not outcomes:
        out.info("no processes defined")
    return _report(out, outcomes)


def cmd_remove(args, out: _Out) -> int:
    return _report(out, [_api(args).remove(args.name)])


def cmd_show(args, out: _Out) -> int:
    from auto_core import logs
    from auto_core.views import describe_exit

    api = _api(args)
    v = api.view(args.name)
    if args.json:
        out.data(json.dumps(v.to_json(), indent=2))
        return ExitCode.OK
    status = v.status
    if v.status == "running":
        status += f" (pid {v.pid}, up {duration(v.uptime_s)})"
    elif v.next_restart_in_s is not None:
        status += f" (restart in {countdown(v.next_restart_in_s)})"
    env = " ".join(f"{k}={shlex.quote(val)}" for k, val in sorted(v.env.items()) if k != "PATH") or "-"
    rows = [
        ("name", v.name),
        ("command", v.command),
        ("status", status),
        ("workdir", v.workdir or "-"),
        ("port", str(v.port) if v.port else "-"),
        ("env", env),
        ("PATH", v.env.get("PATH", "-")),
        ("log", str(logs.current_log(api.home, v.name, v.log_path) or "-")),
        ("last exit", describe_exit(v.last_exit)),
        ("restarts", f"{v.restarts} (backoff attempt {v.restart_attempt}, max {duration(v.backoff_max)})"),
        ("restart every", duration(v.restart_every) if v.restart_every else "-"),
        ("stop", f"{v.stop_signal}, then SIGKILL after {v.stop_timeout:g} s"),
    ]
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        out.data(f"{key + ':':<{width}} {value}")
    return ExitCode.OK


def cmd_log(args, out: _Out) -> int:
    from auto_core import logs, state

    if args.runs or args.run is not None:
        from auto_core import logcli

        return logcli.show_runs(_api(args), args, out)
    if args.lines is None:
        args.lines = 100
    api = _api(args)
    path = api.log_path(args.name)
    if args.path:
        if not path:
            raise AutoError(f"{args.name} has no log file yet")
        out.data(path)
        return ExitCode.OK
    if not args.follow:
        if not path:
            raise AutoError(f"{args.name} has no log file yet")
        lines, _ = logs.tail_lines(path, args.lines) if args.lines > 0 else (None, 0)
        if lines is None:
            for raw in logs.iter_raw_lines(path):  # .gz read transparently
                sys.stdout.write(logs.decode(raw))
        else:
            for line in lines:
                out.data(line)
        return ExitCode.OK

    stat_key: list = [None, None]

    def resolve():
        # stat before parse: re-read the state only when state.json changed.
        key = state.signature(str(api.home.state_file))
        if key != stat_key[0]:
            stat_key[0] = key
            entry = state.processes(state.load(api.home).data).get(args.name)
            recorded = entry.get("log_path") if entry else None
            found = logs.current_log(api.home, args.name, recorded)
            stat_key[1] = found
        return stat_key[1]

    import threading  # only `log -f` needs it; `auto ps` stays lean

    stop = threading.Event()
    try:
        for kind, payload in logs.follow(resolve, stop, start_lines=args.lines):
            if kind == "lines":
                sys.stdout.write("".join(line + "\n" for line in payload))
                sys.stdout.flush()
            elif kind == "switch":
                out.data(f"----- new run: {payload} -----")
                sys.stdout.flush()
    except KeyboardInterrupt:
        stop.set()
    return ExitCode.OK


def cmd_logs(args, out: _Out) -> int:
    from auto_core import logcli

    return logcli.prune(Home.resolve(args.home), args, out)


def cmd_watch(args, out: _Out) -> int:
    from auto_core import watch

    return watch.main(Home.resolve(args.home), poll_only=args.poll)


def cmd_install(args, out: _Out) -> int:
    from auto_core import install

    return install.main(args.cmd, Home.resolve(args.home), dry_run=args.dry_run,
                        platform=args.platform, out=out)


def cmd_status(args, out: _Out) -> int:
    from auto_core import install

    return install.status(Home.resolve(args.home), out=out)


def cmd_tui(args, out: _Out) -> int:
    from auto_tui.app import run  # lazy: only `auto tui` pays for Textual

    return run(Home.resolve(args.home))


HANDLERS = {
    "ps": cmd_ps, "add": cmd_add, "update": cmd_update, "start": cmd_lifecycle,
    "stop": cmd_lifecycle, "restart": cmd_lifecycle, "start-all": cmd_all, "stop-all": cmd_all,
    "remove": cmd_remove, "show": cmd_show, "log": cmd_log, "watch": cmd_watch,
    "install": cmd_install, "uninstall": cmd_install, "status": cmd_status, "tui": cmd_tui,
    "logs": cmd_logs,
}


def _tolerant_streams() -> None:
    """Never die of an unencodable character: an ASCII locale, or argv bytes that are not
    UTF-8 (kept as surrogates), would otherwise turn a print into a traceback (issue 6)."""
    for stream in (sys.stdout, sys.stderr):
        errors = getattr(stream, "errors", None)
        utf8 = (getattr(stream, "encoding", None) or "").lower().replace("-", "") == "utf8"
        # surrogateescape round-trips undecodable argv bytes, but only a UTF-8 stream can
        # then encode everything else.
        if (errors == "strict" or (errors == "surrogateescape" and not utf8)) and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass


def main(argv: Sequence[str] | None = None) -> int:
    _tolerant_streams()
    command = _command_of(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command)
    parser.command = command
    out = _Out(quiet=False)
    try:
        args = parser.parse_args(argv)
        out.quiet = args.quiet
        if args.cmd is None:
            parser.print_help()
            raise UsageError("no command given (see 'auto -h')")  # the one error line, exit 2
        return int(HANDLERS[args.cmd](args, out))
    except AutoError as exc:
        out.error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `auto ps | head`: the reader went away; say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK
    except OSError as exc:
        out.error(f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}")
        return ExitCode.FAILURE


def entry() -> None:
    sys.exit(main())
