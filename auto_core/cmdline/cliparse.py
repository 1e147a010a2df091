"""The CLI's argparse parser: built only for command lines that need it.

``auto ps`` and the other commands without arguments skip it (``cli._plain_args``): scripts
and status bars run ``auto -q ps`` often, and argparse's imports are a good part of its cost.
"""

from __future__ import annotations

import argparse
import re

from auto_core import __version__
from auto_core.errors import UsageError


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2."""

    command: str | None = None  # the command word being parsed, for a better hint
    commands: list[tuple[str, str]]  # (command, one-line description), in help order

    def error(self, message: str):  # noqa: D401 - argparse API
        # The top-level parser reports a sub-command's leftovers, so ask which command it was.
        if "unrecognized arguments" in message and self.command == "add":
            message += " (quote the command, or put it after --)"
        unknown = re.match(r"argument COMMAND: invalid choice: '(.*?)'", message)
        if unknown:
            import difflib

            word = unknown.group(1)
            close = difflib.get_close_matches(word, [c for c, _ in self.commands], n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else "see 'auto -h'"
            message = f"unknown command '{word}' ({hint})"
        raise UsageError(message)


def build_parser() -> _Parser:
    """The whole CLI: every command, its arguments and help."""
    p = _Parser(prog="auto", description="Keep your local services running.")
    p.commands = []
    p.add_argument("--home", metavar="DIR", help="state and logs root (default: $AUTO_HOME or the user state dir)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but the command's own output")
    p.add_argument("--version", action="version", version=f"auto {__version__}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)
    # The global options work after the command too (`auto ps -q`); SUPPRESS keeps a value
    # given before it when they are not repeated after.
    common = _Parser(add_help=False)
    common.add_argument("--home", metavar="DIR", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)

    def command(name: str, help: str, **kwargs) -> _Parser:
        p.commands.append((name, help))
        examples = EXAMPLES.get(name)
        if examples:
            kwargs.update(epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
                          formatter_class=argparse.RawDescriptionHelpFormatter)
        return sub.add_parser(name, help=help, parents=[common], **kwargs)

    ps = command("ps", help="list processes")
    ps.add_argument("--json", action="store_true",
                    help="machine-readable list (with cpu_percent and rss_bytes)")
    ps.add_argument("--sort", choices=("name", "cpu", "mem", "uptime"), default="name",
                    help="order of the rows (cpu, mem, uptime: largest first; default name)")

    add = command("add", help="define a process and start it")
    add.add_argument("name", help="its name: letters, digits, . _ - (up to 64)")
    add.add_argument("command", nargs="+",
                     help="the command: quoted as one word (run by /bin/sh when it has shell "
                          "syntax, exec'd otherwise), or its words after --")
    _definition_flags(add)
    add.add_argument("--no-start", action="store_true", help="define it but do not start it")
    _wait_flag(add)

    for verb, text in (("start", "start processes"), ("stop", "stop processes (they stay stopped)"),
                       ("restart", "stop and start processes"),
                       ("remove", "stop processes and delete their definitions (logs stay)")):
        sp = command(verb, help=text)
        sp.add_argument("names", nargs="*", metavar="NAME",
                        help="a process name or a quoted glob such as 'web-*' (repeatable)")
        sp.add_argument("--all", action="store_true", help=f"{verb} every process")
        if verb in ("start", "restart"):
            _wait_flag(sp)

    show = command("show", help="show a process's definition and state")
    show.add_argument("name", help="the process")
    show.add_argument("--json", action="store_true", help="machine-readable, with its environment")
    show.add_argument("--show-secrets", action="store_true",
                      help="show the values of variables that look secret (KEY, TOKEN, PASSWORD...)")

    upd = command("update", help="edit a definition (takes effect on next start)",
                  usage="auto update NAME [options] [-- NEW COMMAND ...]",
                  description="A new command goes after -- (its words, as add takes them) "
                              "or, quoted, in --command.")
    upd.add_argument("name", help="the process")
    upd.add_argument("--command", dest="new_command", metavar="C", help="a new command, quoted")
    _definition_flags(upd)
    upd.add_argument("--unset-env", action="append", default=[], metavar="KEY",
                     help="drop a variable set with --env (repeatable)")
    upd.add_argument("--update-env", action="store_true",
                     help="capture the current environment again for the service's next runs")

    log = command("log", help="print or follow the current logs of processes",
                  description="One NAME: its log as written. No NAME, several, or a glob "
                  "('web-*'): the logs merged, each line prefixed with its process's name. "
                  "The opening lines are ordered by an estimate (a line's time is put "
                  "between its run's start and the file's last write, by its position); "
                  "followed lines in the order they were read.")
    log.add_argument("names", nargs="*", metavar="NAME", help="a process name or glob (default: all)")
    log.add_argument("--since", metavar="AGE",
                     help="only logs written in the last AGE (90, 30s, 10m, 2h, 1d)")
    log.add_argument("-f", "--follow", "--tail", action="store_true", help="follow new output (and new runs)")
    log.add_argument("-n", "--lines", type=_line_count, default=None, metavar="N",
                     help="last N lines (0: none, like tail), default 100 (with --run: all)")
    log.add_argument("--path", "--file", action="store_true", help="print the log file's path only")
    log.add_argument("--runs", action="store_true", help="list the runs: start time, size, how each ended")
    log.add_argument("--json", action="store_true", help="with --runs: machine-readable, how each ended in full")
    log.add_argument("--run", type=_run_number, metavar="N",
                     help="print run N: -1 the current or last, -2 the previous...; 1 the oldest")

    logs_cmd = command("logs", help="log maintenance")
    logs_sub = logs_cmd.add_subparsers(dest="logs_cmd", metavar="ACTION", parser_class=_Parser, required=True)
    prune = logs_sub.add_parser("prune", help="apply log retention now: delete old files, compress finished runs")
    prune.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")

    apply = command("apply", help="make the services what a file (auto.toml) defines",
                    description="Adds the file's new services, updates and restarts the "
                    "changed ones, leaves the unchanged ones alone. See 'Your setup as a file' "
                    "in the README for the format.")
    apply.add_argument("file", metavar="FILE", help="the setup file, e.g. auto.toml")
    _plan_flags(apply)
    imp = command("import", help="apply another process manager's file (Procfile, supervisord, pm2, process-compose)",
                  description="Reads a Procfile, a supervisord .conf/.ini ([program:NAME]), a pm2 "
                  "ecosystem.json or ecosystem.config.js (with node) or a process-compose.yaml "
                  "and applies it as 'auto apply' does an auto.toml: the same checks, plan and "
                  "flags. What the file sets and auto does not carry is named in one warning.")
    imp.add_argument("file", metavar="FILE", help="the file; its format is told by its name, else its content")
    _plan_flags(imp)
    export = command("export", help="print definitions as a setup file (auto.toml, or another manager's)",
                     description="toml (for auto apply) and procfile and supervisord print one file, "
                     "or write it into --output DIR; systemd and launchd write a file per service "
                     "into --output DIR. What a format cannot express is listed in a comment at "
                     "the top of each file.")
    export.add_argument("names", nargs="*", metavar="NAME", help="a process name or glob (default: all)")
    export.add_argument("--format", choices=("toml", "procfile", "systemd", "launchd", "supervisord"),
                        default="toml", help="the file format (default toml)")
    export.add_argument("--output", metavar="DIR", help="write the file(s) into this folder (made if missing)")

    _wait_flag(command("start-all", help="start every process that is not running"))
    command("stop-all", help="stop every process")
    _wait_flag(command("restart-all", help="restart every process that is not stopped"))
    watch = command("watch", help="run the watcher in the foreground")
    watch.add_argument("--poll", action="store_true", help=argparse.SUPPRESS)  # force the 1 s poll path
    watch.add_argument("--login", action="store_true",
                       help="run as the login service's watcher (takes over from one started on demand)")
    for verb in ("install", "uninstall"):
        sp = command(verb, help=f"{verb} the login service and ~/bin/auto wrapper")
        sp.add_argument("--dry-run", action="store_true", help="print what would be written and run")
        sp.add_argument("--platform", choices=("macos", "linux"), help="render for this platform")
    command("status", help="check the watcher, login service, state and logs")
    command("tui", help="open the full-screen app")
    return p


def short_usage(parser: _Parser) -> str:
    """What ``auto`` alone prints: the commands, one line each."""
    width = max(len(c) for c, _ in parser.commands)
    lines = ["usage: auto [-q] [--home DIR] COMMAND [ARGS]  (auto COMMAND -h for its options)", "",
             "commands:"]
    lines += [f"  {c:<{width}}  {h}" for c, h in parser.commands]
    return "\n".join(lines)


def _plan_flags(p: argparse.ArgumentParser) -> None:
    """What apply and import share: the plan's flags and --wait."""
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--prune", action="store_true", help="remove the services the file does not define")
    p.add_argument("--no-start", action="store_true", help="define new services but do not start them")
    _wait_flag(p)


def _wait_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", type=_seconds, default=None, metavar="SECONDS",
                   help="report a service that exits within this many seconds of its start as failed"
                        " (default 0.5; 0 returns at once)")


def _seconds(text: str) -> float:
    from auto_core import validate

    if not text.isascii():  # float() would read "１" or "٣" as digits
        raise UsageError(f"invalid wait {text!r}: use a number of seconds")
    return validate.seconds(text, "wait", 0)


def _digits(text: str) -> bool:
    """Plain ASCII digits only: int() also reads "３" (full width) or "٣" (Arabic-Indic)."""
    return text.isascii() and text.isdigit()


def _line_count(text: str) -> int:
    if text.startswith("-") and _digits(text[1:]):
        raise argparse.ArgumentTypeError(f"the number of lines cannot be negative: {text}")
    if not _digits(text):
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r} (use a number of lines, 0 or more)")
    return int(text)


def _run_number(text: str) -> int:
    if not _digits(text.removeprefix("-")):
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r} (use -1 for the current run, 1 for the oldest)")
    return int(text)


EXAMPLES = {
    "ps": ["auto ps", "auto -q ps | awk '{print $1, $2}'", "auto ps --sort cpu --json"],
    "add": ['auto add api "uvicorn main:app --port 8000" --port 8000',
            "auto add worker --env QUEUE=jobs -- python3 worker.py",
            "auto add site --workdir ~/site --restart-every 1d --no-start -- npm start",
            "auto add web --port 8000 --health http://127.0.0.1:8000/health --after db -- uvicorn main:app"],
    "start": ["auto start api", "auto start 'web-*' db", "auto start --all"],
    "stop": ["auto stop api", "auto stop 'web-*'", "auto stop --all"],
    "restart": ["auto restart api --wait 2", "auto restart 'web-*'"],
    "remove": ["auto remove api", "auto remove 'tmp-*'"],
    "show": ["auto show api", "auto show api --json"],
    "update": ["auto update api --port 8001", "auto update api -- uvicorn main:app --port 8001",
               "auto update api --env LOG_LEVEL=debug --unset-env OLD"],
    "log": ["auto log api", "auto log api -f", "auto log", "auto log 'web-*' -f -n 0",
            "auto log api --runs", "auto log api --run -2"],
    "logs": ["auto logs prune --dry-run"],
    "apply": ["auto apply auto.toml --dry-run", "auto apply auto.toml", "auto apply auto.toml --prune"],
    "import": ["auto import Procfile --dry-run", "auto import supervisord.conf",
               "auto import ecosystem.config.js --prune"],
    "export": ["auto export > auto.toml", "auto export 'web-*'",
               "auto export --format systemd --output ~/.config/systemd/user",
               "auto export --format supervisord > conf.d/auto.conf"],
    "restart-all": ["auto restart-all"],
    "install": ["auto install --dry-run", "auto install"],
}


def _definition_flags(p: argparse.ArgumentParser) -> None:
    """The definition options (``options.OPTIONS``, shared with ``auto.toml``'s keys)."""
    from auto_core import options

    for o in options.OPTIONS:
        if o.kind == "switch":
            p.add_argument(o.flag, action=argparse.BooleanOptionalAction, default=None, help=o.help)
        elif o.kind == "repeat":
            p.add_argument(o.flag, action="append", default=[], metavar=o.metavar, help=o.help)
        else:
            p.add_argument(o.flag, metavar=o.metavar, help=o.help)
