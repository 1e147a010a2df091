"""The one-shot CLI. ``main(argv) -> int``; errors are one ``auto: error:`` line.

Never imports Textual: ``auto tui`` imports ``auto_tui`` inside its handler.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from types import SimpleNamespace  # loaded at start-up anyway (enum imports it)

from auto_core.errors import AutoError, ExitCode, UsageError, warn_stderr
from auto_core.humanize import countdown, duration, table
from auto_core.proc import limits
from auto_core.store import paths

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from argparse import Namespace  # argparse is imported only when a command line needs it


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


def _globals(argv: Sequence[str]) -> tuple[str | None, bool, int | None]:
    """(``--home`` value, ``-q`` given, index of the command word) from the global options
    before it; no index when they end there or are not plain (``--home`` then an option)."""
    home, quiet, i = None, False, 0
    while i < len(argv):
        token = argv[i]
        if token in ("-q", "--quiet"):
            quiet = True
        elif token == "--home":
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                return home, quiet, None
            i += 1
            home = argv[i]
        elif token.startswith("--home="):
            home = token[len("--home="):]
        else:
            return home, quiet, i
        i += 1
    return home, quiet, None


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` if it is a known command and no global help is asked for."""
    i = _globals(argv)[2]
    return argv[i] if i is not None and argv[i] in HANDLERS else None


# Commands whose every form is a bare word with on/off flags, and those flags.
_PLAIN = {"ps": ("--json",), "stop-all": (), "status": (), "tui": (), "watch": ("--poll", "--login")}
_PLAIN_DEFAULTS = {"ps": {"sort": "name"}}  # what argparse would add for options not given


def _plain_args(argv: Sequence[str]) -> SimpleNamespace | None:
    """The parsed arguments of a command line argparse need not see: global options, then one
    of ``_PLAIN``'s commands with only its own flags, spelled out. None for anything else
    (``-h``, abbreviations, ``--``, an unknown flag): argparse parses it and words the error."""
    home, quiet, i = _globals(argv)
    if i is None or argv[i] not in _PLAIN:
        return None
    flags = _PLAIN[argv[i]]
    given = argv[i + 1:]
    if any(flag not in flags for flag in given):
        return None
    return SimpleNamespace(home=home, quiet=quiet, cmd=argv[i], **_PLAIN_DEFAULTS.get(argv[i], {}),
                           **{f[2:].replace("-", "_"): f in given for f in flags})


# --- formatting ----------------------------------------------------------------------------

def ps_rows(views, used: dict[int, tuple[float, int]] | None = None) -> list[list[str]]:
    """The table of ``auto ps``. NAME PID PORT come first, as scripts parse them (``awk``)."""
    from auto_core.humanize import size
    from auto_core.views import describe_exit

    used = used or {}
    # NEXT is the countdown to the next restart (a shorter header keeps 80 columns).
    rows = [["NAME", "PID", "PORT", "CPU", "MEM", "HEALTH", "UPTIME", "RESTARTS", "NEXT", "LAST EXIT"]]
    for v in views:
        pid = str(v.pid) if v.status == "running" else v.status
        nxt = f"waiting ({','.join(v.waiting_for)})" if v.waiting_for else \
            "starting" if v.starting else countdown(v.next_restart_in_s) if v.next_restart_in_s is not None else "-"
        cpu, rss = _usage(v, used)
        rows.append([v.name, pid, str(v.port) if v.port else "-",
                     f"{cpu:.1f}%" if cpu is not None else "-", size(rss) if rss is not None else "-",
                     v.health or "-",
                     duration(v.uptime_s), str(v.restarts), nxt,
                     describe_exit(v.last_exit) if v.status != "running" else "-"])
    return rows


def _usage(v, used: dict[int, tuple[float, int]]) -> tuple[float | None, int | None]:
    """(CPU %, resident bytes) of a running service's process group: CPU time over uptime,
    as ps(1) counts %CPU, so one cheap sample does."""
    found = used.get(v.pid) if v.pid else None
    if found is None:
        return None, None
    cpu_s, rss = found
    return (100.0 * cpu_s / v.uptime_s if v.uptime_s else 0.0), rss


def _env_pairs(values: Sequence[str]) -> dict[str, str]:
    from auto_core import validate

    return dict(validate.env_pair(v) for v in values)


def _command_text(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else shlex.join(words)


# --- handlers ------------------------------------------------------------------------------

def _api(args):
    from auto_core.lifecycle import Api

    return Api(paths.Home.resolve(args.home))


_DONE = {"start": "started", "stop": "stopped", "restart": "restarted", "remove": "removed"}


def _report(out: _Out, outcomes, verb: str | None = None) -> int:
    """One line per service; for more than one, a summary (``3 started, 1 already running,
    1 failed``). Exit 1 if any failed: the others were done all the same."""
    code = ExitCode.OK
    counts: dict[str, int] = {}
    for o in outcomes:
        if o.ok:
            out.info(o.message)
            kind = "already " + o.message.rsplit("already ", 1)[1].split(" (")[0] \
                if " is already " in o.message else _DONE.get(verb or "", "done")
        else:
            out.error(o.message)
            for line in o.detail:  # the failed run's last log lines, under its error
                print(f"  | {line}", file=sys.stderr)
            code = ExitCode.FAILURE
            kind = "failed"
        counts[kind] = counts.get(kind, 0) + 1
    if len(outcomes) > 1:
        out.info(", ".join(f"{n} {kind}" for kind, n in counts.items()))
    return code


def _wait(args) -> dict:
    wait = getattr(args, "wait", None)
    return {} if wait is None else {"wait": wait}


def cmd_ps(args, out: _Out) -> int:
    # Not the lifecycle API: `ps` only reads (~5.5 ms less).
    import time

    from auto_core.store import state
    from auto_core.views import json_text, snapshot

    loaded = state.load_files(*paths.state_files(paths.home_dir(args.home)))
    for line in (loaded.problem, *loaded.warnings):
        if line:
            warn_stderr(line)
    views = snapshot(loaded.data, time.time())
    running = {v.pid for v in views if v.pid}
    if running:
        from auto_core.proc import usage

        used = usage.group_usage(running)
    else:
        used = {}
    order = getattr(args, "sort", "name")
    if order != "name":
        key = {"cpu": lambda v: _usage(v, used)[0] or 0.0, "mem": lambda v: _usage(v, used)[1] or 0,
               "uptime": lambda v: v.uptime_s or 0.0}[order]
        views = sorted(views, key=key, reverse=True)
    if args.json:
        fields = ("name", "status", "pid", "port", "command", "workdir", "uptime_s", "restarts",
                  "next_restart_in_s", "log_path", "last_exit", "restart_attempt", "restart_every",
                  "health", "last_health", "after", "waiting_for")
        rows = []
        for v in views:
            cpu, rss = _usage(v, used)
            rows.append(dict({f: getattr(v, f) for f in fields},
                             cpu_percent=round(cpu, 2) if cpu is not None else None, rss_bytes=rss))
        out.data(json_text(rows))
    elif views:
        out.data(table(ps_rows(views, used)))
    else:
        out.data(table(ps_rows([])))
        out.info("(no processes yet: auto add NAME \"COMMAND\")")
    return ExitCode.OK


def _options(args) -> dict:
    """The definition options stored as given (``options.ENTRY_KEYS``), by their flags."""
    from auto_core import options

    return {key: getattr(args, key) for key in options.ENTRY_KEYS}


def cmd_add(args, out: _Out) -> int:
    result = _api(args).add(
        args.name,
        _command_text(args.command),
        workdir=args.workdir,
        port=args.port,
        env=_env_pairs(args.env),
        env_file=args.env_file,
        start=not args.no_start,
        **_wait(args),
        **_options(args),
    )
    return _report(out, [result])


def cmd_update(args, out: _Out) -> int:
    words = getattr(args, "command_words", None)
    if words is not None and args.new_command is not None:
        raise UsageError("give the new command after -- or with --command, not both")
    if words == []:
        raise UsageError("no command after --")
    result = _api(args).update(
        args.name,
        command=_command_text(words) if words else args.new_command,
        workdir=args.workdir,
        port=args.port,
        env=_env_pairs(args.env),
        env_file=args.env_file,
        unset_env=args.unset_env,
        update_env=args.update_env,
        **_options(args),
    )
    return _report(out, [result])


def cmd_lifecycle(args, out: _Out) -> int:
    """start, stop, restart, remove: of names, globs or --all."""
    api = _api(args)
    if args.names == ["all"] and "all" not in api.names():
        args.all, args.names = True, []  # pm2's spelling of --all, unless a service is named so
    if args.all == bool(args.names):
        raise UsageError(f"give names or globs, or --all (see 'auto {args.cmd} -h')")
    names = api.names() if args.all else api.select(args.names)
    if not names:
        out.info("no processes defined")
        return ExitCode.OK
    if args.cmd == "stop":
        outcomes = api.stop(names)
    elif args.cmd == "remove":
        outcomes = api.remove_many(names)
    elif args.cmd == "start" and args.all:
        outcomes = api.start_all(**_wait(args))  # the same as start-all: in order, no program check
    else:
        outcomes = (api.start if args.cmd == "start" else api.restart)(names, **_wait(args))
    return _report(out, outcomes, args.cmd)


def cmd_all(args, out: _Out) -> int:
    api = _api(args)
    if args.cmd == "start-all":
        outcomes = api.start_all(**_wait(args))
    elif args.cmd == "restart-all":
        outcomes = api.restart_all(**_wait(args))
    else:
        outcomes = api.stop_all()
    if not outcomes:
        out.info("no processes defined" if args.cmd != "restart-all" else "no process to restart")
    return _report(out, outcomes, args.cmd.removesuffix("-all"))


def cmd_show(args, out: _Out) -> int:
    from auto_core.logtree import logs
    from auto_core.store import environ
    from auto_core.views import describe_exit, json_text

    api = _api(args)
    v = api.view(args.name)
    full_env = api.environment(args.name)
    shown = full_env if getattr(args, "show_secrets", False) else environ.masked(full_env)
    if args.json:
        out.data(json_text(dict(v.to_json(), environment=shown)))
        return ExitCode.OK
    status = v.status
    if v.status == "running":
        status += f" (pid {v.pid}, up {duration(v.uptime_s)})"
    elif v.next_restart_in_s is not None:
        status += f" (restart in {countdown(v.next_restart_in_s)})"
    if v.waiting_for:
        from auto_core import views
        from auto_core.store import state

        procs = state.processes(api.load())
        status += f"; waiting for {views.waiting_text(v.waiting_for, procs, api.clock())}"
    own = environ.masked(v.env) if not getattr(args, "show_secrets", False) else v.env
    env = " ".join(f"{k}={shlex.quote(val)}" for k, val in sorted(own.items()) if k != "PATH") or "-"
    rows = [
        ("name", v.name),
        ("command", v.command),
        ("status", status),
        ("workdir", v.workdir or "-"),
        ("port", str(v.port) if v.port else "-"),
        ("env", env),
        ("PATH", full_env.get("PATH", "-")),
        ("log", str(logs.current_log(api.home, v.name, v.log_path) or "-")),
        ("last exit", describe_exit(v.last_exit)),
        ("restarts", f"{v.restarts} (backoff attempt {v.restart_attempt}, max {duration(v.backoff_max)})"),
        ("restart every", duration(v.restart_every) if v.restart_every else "-"),
        ("stop", f"{v.stop_signal}, then SIGKILL after {v.stop_timeout:g} s"),
    ]
    if v.changed:
        rows.append(("changed", f"{', '.join(v.changed)} since it started; 'auto restart {v.name}' applies it"))
    if v.restart_on_change:
        from auto_core.options import DEFAULT_IGNORE

        rows.append(("on change", "restart; watching " + ", ".join(v.restart_on_change)
                     + " (ignoring " + " ".join(DEFAULT_IGNORE + v.ignore) + ")"))
    if v.health_check:
        from auto_core import model

        rows.extend(_health_rows(v, model.definition(api.entry(args.name))))
    if v.after:
        rows.append(("after", ", ".join(v.after)))
    if not v.daemon_follow:
        rows.append(("daemons", "not followed: a run that exits 0 is restarted (--no-daemon-follow)"))
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        out.data(f"{key + ':':<{width}} {value}")
    out.data("environment:")
    for key in sorted(shown):
        out.data(f"  {key}={shown[key]}")
    return ExitCode.OK


def _health_rows(v, d) -> list[tuple[str, str]]:
    """``health: healthy; last check ok, HTTP 200 after 0.0 s, 12:00:01`` and ``health check:
    http://... every 10 s, timeout 3 s, 3 retries``: two rows, so each fits a terminal."""
    import time

    state = v.health or "not running"
    last = v.last_health
    if isinstance(last, dict) and isinstance(last.get("time"), (int, float)):
        when = time.strftime("%H:%M:%S", time.localtime(last["time"]))
        state += f"; last check {'ok' if last.get('ok') else 'failed'}, {last.get('detail')}, {when}"
    check = f"{d.health} every {d.health_interval:g} s, timeout {d.health_timeout:g} s, {d.health_retries} retries"
    if d.health_start_period:
        check += f", start period {d.health_start_period:g} s"
    return [("health", state), ("health check", check)]


def cmd_log(args, out: _Out) -> int:
    from auto_core.cmdline import logcli

    return logcli.show_log(_api(args), args, out)


def cmd_logs(args, out: _Out) -> int:
    from auto_core.cmdline import logcli

    return logcli.prune(paths.Home.resolve(args.home), args, out)


def cmd_watch(args, out: _Out) -> int:
    from auto_core.supervisor import watch

    return watch.main(paths.Home.resolve(args.home), poll_only=args.poll,
                      login=getattr(args, "login", False))


def cmd_install(args, out: _Out) -> int:
    from auto_core.service import install

    return install.main(args.cmd, paths.Home.resolve(args.home), dry_run=args.dry_run,
                        platform=args.platform, out=out)


def cmd_status(args, out: _Out) -> int:
    from auto_core.service import install

    return install.status(paths.Home.resolve(args.home), out=out)


def cmd_tui(args, out: _Out) -> int:
    from auto_tui.app import run  # lazy: only `auto tui` pays for Textual

    return run(paths.Home.resolve(args.home))


def cmd_apply(args, out: _Out) -> int:
    from auto_core.cmdline import setupcli

    return setupcli.apply(_api(args), args, out, _wait(args))


def cmd_import(args, out: _Out) -> int:
    from auto_core.cmdline import setupcli

    return setupcli.import_file(_api(args), args, out, _wait(args))


def cmd_export(args, out: _Out) -> int:
    from auto_core.cmdline import setupcli

    return setupcli.export(_api(args), args, out)


HANDLERS = {
    "ps": cmd_ps, "add": cmd_add, "update": cmd_update, "start": cmd_lifecycle,
    "stop": cmd_lifecycle, "restart": cmd_lifecycle, "start-all": cmd_all, "stop-all": cmd_all,
    "restart-all": cmd_all, "remove": cmd_lifecycle, "show": cmd_show, "log": cmd_log, "watch": cmd_watch,
    "install": cmd_install, "uninstall": cmd_install, "status": cmd_status, "tui": cmd_tui,
    "logs": cmd_logs, "apply": cmd_apply, "import": cmd_import, "export": cmd_export,
}


def _tolerant_streams() -> None:
    """Never die of an unencodable character: an ASCII locale, or argv bytes that are not
    UTF-8 (kept as surrogates), would otherwise turn a print into a traceback."""
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
    limits.raise_nofile()
    argv = sys.argv[1:] if argv is None else list(argv)
    out = _Out(quiet=False)
    try:
        args: SimpleNamespace | Namespace | None = _plain_args(argv)
        if args is None:
            from auto_core.cmdline.cliparse import build_parser

            command = _command_of(argv)
            words = None
            if command == "update" and "--" in argv:  # `update NAME [options] -- NEW COMMAND`
                cut = argv.index("--")
                argv, words = argv[:cut], argv[cut + 1:]
            parser = build_parser()
            parser.command = command
            args = parser.parse_args(argv)
            if words is not None:
                args.command_words = words
            if args.cmd is None:  # `auto` alone: what there is to do, as a usage mistake
                from auto_core.cmdline.cliparse import short_usage

                print(short_usage(parser), file=sys.stderr)
                return ExitCode.USAGE
        out.quiet = args.quiet
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
