"""A supervisord configuration: each ``[program:NAME]`` section's ``command``, ``directory``,
``environment`` (over ``[supervisord]``'s), ``stopsignal``, ``stopwaitsecs`` and
``autostart``, read by supervisord's rules (``%(here)s``-style expansions, ``KEY="value",...``
environments, a command split into words without a shell). ``autorestart``, ``stopasgroup``,
``killasgroup`` and ``redirect_stderr`` switched on are what auto does anyway; any other
restart policy, supervisord's default ``unexpected`` included, is named in the warning."""

from __future__ import annotations

import configparser
import functools
import os
import platform
import re
import shlex

from auto_core.imports import Imported, fail, ignored, restarts

_CARRIED = ("command", "directory", "environment", "stopsignal", "stopwaitsecs", "autostart",
            "autorestart")
# supervisord's own sections: they configure it, not a program.
_OWN = ("supervisord", "supervisorctl", "unix_http_server", "inet_http_server")
_TRUE = ("true", "yes", "on", "1")
# Switched on, these are what auto does anyway: it signals the program's process group and
# writes stderr into the one log with stdout.
_OURS = ("stopasgroup", "killasgroup", "redirect_stderr")
_FALSE = ("false", "no", "off", "0")
# supervisord's key -> auto.toml's, for the line of an error in its value.
_KEYS = {"command": "command", "directory": "workdir", "environment": "env",
         "stopsignal": "stop_signal", "stopwaitsecs": "stop_timeout"}


class _Where:
    """Errors in a section's key, with the line: configparser gives values, not lines."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.lines = text.splitlines()

    def fail(self, section: str, key: str | None, message: str) -> Exception:
        return fail(self.path, f"[{section}] {key + ': ' if key else ''}{message}",
                    self.line(section, key))

    def line(self, section: str, key: str | None) -> int | None:
        head = re.compile(r"\s*\[\s*" + re.escape(section) + r"\s*\]")
        start = next((i for i, ln in enumerate(self.lines) if head.match(ln)), None)
        if start is None or key is None:
            return None if start is None else start + 1
        option = re.compile(re.escape(key) + r"\s*[=:]", re.I)
        for i in range(start + 1, len(self.lines)):
            if self.lines[i].lstrip().startswith("["):
                break
            if option.match(self.lines[i]):
                return i + 1
        return start + 1


def parse(path: str, text: str) -> Imported:
    where = _Where(path, text)
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=True)
    try:
        parser.read_string(text, source=path)
    except configparser.Error as err:
        raise _syntax(path, err) from None
    here = os.path.dirname(os.path.abspath(path))
    machine = {"here": here, "host_node_name": platform.node(),
               **{f"ENV_{k}": v for k, v in os.environ.items()}}
    # [supervisord]'s environment is every program's, under the program's own.
    common: dict[str, str] = {}
    if parser.has_option("supervisord", "environment"):
        common = _environment(where, "supervisord", _expand(
            where, "supervisord", dict(parser.items("supervisord")), machine, "environment"))
    tables: dict = {}
    held: list[str] = []
    left: list[str] = []
    policies: dict[str, list[str]] = {}
    lines: dict[tuple[str, str | None], int] = {}
    for section in parser.sections():
        kind, _, name = section.partition(":")
        if kind != "program":
            if kind not in _OWN and kind != "rpcinterface":
                left.append(f"[{section}]")
            continue
        if not name:
            raise where.fail(section, None, "no program name after program:")
        values = dict(parser.items(section))
        names = dict(machine, program_name=name, group_name=name, process_num=0, numprocs=1)
        value = functools.partial(_expand, where, section, values, names)

        if "command" not in values:
            raise where.fail(section, None, "command: missing")
        try:
            words = shlex.split(value("command"))
        except ValueError as err:
            raise where.fail(section, "command", str(err)) from None
        # supervisord execs the words itself; auto runs a command through sh, so each word is
        # quoted for sh to give the same words back.
        table: dict = {"command": shlex.join(words)}
        if "directory" in values:
            table["workdir"] = value("directory")
        env = dict(common)
        if "environment" in values:
            env.update(_environment(where, section, value("environment")))
        if env:
            table["env"] = env
        if "stopsignal" in values:
            signame = value("stopsignal").upper()
            table["stop_signal"] = signame if signame.startswith("SIG") else "SIG" + signame
        if "stopwaitsecs" in values:
            table["stop_timeout"] = value("stopwaitsecs")
        if "autostart" in values:
            start = value("autostart").lower()
            if start not in _TRUE + _FALSE:
                raise where.fail(section, "autostart", f"invalid value {start!r}: use true or false")
            if start in _FALSE:
                held.append(name)
        # supervisord's default restarts only after an exit with a code not in exitcodes
        policy = values.get("autorestart", "unexpected, the default").lower()
        if policy not in _TRUE:
            policies.setdefault(policy, []).append(name)
        lines[(name, None)] = where.line(section, None) or 0
        lines.update({(name, ours): where.line(section, theirs) or 0
                      for theirs, ours in _KEYS.items() if theirs in values})
        left += ignored(name, [k for k in values if k not in _CARRIED
                               and not (k in _OURS and values[k].lower() in _TRUE)])
        tables[name] = table
    left += restarts("autorestart", policies)
    return Imported(tables=tables, held=tuple(held), ignored=tuple(left), lines=lines)


def _syntax(path: str, err: configparser.Error) -> Exception:
    if isinstance(err, configparser.MissingSectionHeaderError):
        return fail(path, f"no [section] before {err.line.strip()[:60]!r}", err.lineno)
    if isinstance(err, configparser.DuplicateSectionError):
        return fail(path, f"[{err.section}] is there twice", err.lineno)
    if isinstance(err, configparser.DuplicateOptionError):
        return fail(path, f"[{err.section}] {err.option}: given twice", err.lineno)
    if isinstance(err, configparser.ParsingError) and err.errors:
        line, text = err.errors[0]
        return fail(path, f"not a key = value line: {str(text)[:60]}", line)
    return fail(path, str(err).splitlines()[0])


def _expand(where: _Where, section: str, values: dict, names: dict, key: str) -> str:
    """Key ``key``'s value with ``%(here)s``, ``%(ENV_HOME)s``... expanded as supervisord
    does; ``%%`` is one ``%``."""
    try:
        return values[key] % names
    except KeyError as err:
        raise where.fail(section, key, f"unknown expansion %({err.args[0]})s") from None
    except (ValueError, TypeError) as err:
        raise where.fail(section, key, f"{err} (write a % as %%)") from None


def _environment(where: _Where, section: str, text: str) -> dict[str, str]:
    """``KEY="value",KEY2=value2`` as supervisord reads it: non-POSIX shlex words, each value's
    surrounding quotes stripped."""
    lexer = shlex.shlex(text)
    lexer.wordchars += "/.+-():"
    try:
        tokens = list(lexer)
    except ValueError as err:
        raise where.fail(section, "environment", str(err)) from None
    env: dict[str, str] = {}
    for i in range(0, len(tokens), 4):
        triple = tokens[i:i + 3]
        if len(triple) != 3 or triple[1] != "=" or (i + 3 < len(tokens) and tokens[i + 3] != ","):
            raise where.fail(section, "environment", "use KEY=\"value\",KEY2=\"value\"")
        env[triple[0]] = triple[2].strip("'\"")
    return env
