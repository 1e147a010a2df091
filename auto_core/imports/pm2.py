"""A pm2 ecosystem file: ``apps[]`` with ``name``, ``script`` and ``args``, ``interpreter``
(else pm2's choice: by the script's extension, else ``node`` unless the script is a binary),
``cwd``, ``env``, ``kill_timeout``, ``watch`` and ``ignore_watch``. ``ecosystem.config.js`` is
a program: ``node`` runs it and prints what it exports as JSON."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess

from auto_core.imports import Imported, fail, ignored

_CARRIED = ("name", "script", "args", "interpreter", "cwd", "env", "kill_timeout", "watch",
            "ignore_watch")
# The interpreter pm2 picks by the script's extension when none is given.
_BY_EXTENSION = {".js": "node", ".cjs": "node", ".mjs": "node", ".py": "python3", ".sh": "bash",
                 ".rb": "ruby", ".php": "php"}
# What the file exports, after a mark: the file may print lines of its own (console.log).
_MARK = "\x1eauto-import-json\x1e"
_NODE_PRINT = ("const e = require(process.argv[1]);"
               f"process.stdout.write('\\n{_MARK}' + JSON.stringify(e) + '\\n')")


def parse(path: str, text: str) -> Imported:
    data = _evaluated(path) if path.endswith((".js", ".cjs")) else _json(path, text)
    apps = data.get("apps") if isinstance(data, dict) else data
    if not isinstance(apps, list):
        raise fail(path, "apps: missing (an ecosystem file holds apps: [{name, script, ...}])")
    folder = os.path.dirname(os.path.abspath(path))
    tables: dict = {}
    # deploy (pm2 deploy's hosts and hooks) and any other top-level key
    left = [f"{key} (top level)" for key in data if key != "apps"] if isinstance(data, dict) else []
    for number, app in enumerate(apps, 1):
        if not isinstance(app, dict) or not isinstance(app.get("script"), str) or not app["script"]:
            raise fail(path, f"apps[{number - 1}]: script: missing (use an object with a script)")
        script = app["script"]
        name = app.get("name") or os.path.splitext(os.path.basename(script))[0]
        if not isinstance(name, str):
            raise fail(path, f"apps[{number - 1}]: name: use a string")
        if name in tables:
            raise fail(path, f"{name}: defined twice")
        table: dict = {"command": _command(path, name, app, script, folder)}
        if "cwd" in app:
            table["workdir"] = app["cwd"]
        if "env" in app:
            env = app["env"]
            if not isinstance(env, dict):
                raise fail(path, f"{name}: env: use an object of NAME: value")
            # pm2 hands numbers and booleans to the program as their text
            table["env"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in env.items()}
        if "kill_timeout" in app:  # milliseconds
            timeout = app["kill_timeout"]
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise fail(path, f"{name}: kill_timeout: use a number of milliseconds")
            table["stop_timeout"] = timeout / 1000
        watched, regexes = _watch(path, name, app)
        table.update(watched)
        left += ignored(name, [k for k in app if k not in _CARRIED])
        left += [f"{name}: ignore_watch {r!r} (a regular expression; ignore takes globs)"
                 for r in regexes]
        tables[name] = table
    return Imported(tables=tables, ignored=tuple(left))


def _watch(path: str, name: str, app: dict) -> tuple[dict, list[str]]:
    """pm2's ``watch`` (true: the app's folder; or paths in it) and ``ignore_watch`` as
    ``restart_on_change`` and ``ignore``, and the regular expressions of ``ignore_watch``
    that are no glob. pm2 (chokidar) takes globs and regular expressions alike: one that
    only escapes or anchors a name (``\\.git``, ``^dist$``) becomes that name's glob."""
    table: dict = {}
    watch, ignore = app.get("watch"), app.get("ignore_watch")
    if watch is not None and watch is not False:
        paths = ["."] if watch is True else [watch] if isinstance(watch, str) else watch
        if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
            raise fail(path, f"{name}: watch: use true or a list of paths")
        cwd = app["cwd"] if isinstance(app.get("cwd"), str) else "."
        table["restart_on_change"] = [os.path.normpath(os.path.join(cwd, p)) for p in paths]
    if ignore is not None:
        globs = [ignore] if isinstance(ignore, str) else ignore
        if not isinstance(globs, list) or not all(isinstance(g, str) and g for g in globs):
            raise fail(path, f"{name}: ignore_watch: use a list of globs")
        taken = [_glob(g) for g in globs]
        if any(t is not None for t in taken):
            table["ignore"] = [t for t in taken if t is not None]
        return table, [g for g, t in zip(globs, taken, strict=True) if t is None]
    return table, []


def _glob(text: str) -> str | None:
    """``ignore_watch`` text as a glob, or None for a regular expression that is none."""
    if not any(c in text for c in "\\^$"):
        return text  # a glob, as pm2's own examples write them
    glob = text.removeprefix("^").removesuffix("$").replace(".*", "*")
    glob = glob.replace("\\.", ".").replace("\\/", "/")
    return None if any(c in glob for c in "\\^$()|+{}") else glob


def _command(path: str, name: str, app: dict, script: str, folder: str) -> str:
    interpreter = app.get("interpreter")
    if interpreter is not None and not isinstance(interpreter, str):
        raise fail(path, f"{name}: interpreter: use a string")
    cwd = app.get("cwd")
    where = os.path.join(folder, os.path.expanduser(cwd if isinstance(cwd, str) else "."))
    beside = os.path.join(where, script)
    # pm2 runs a file beside it before one on PATH
    found = beside if os.path.isfile(beside) else shutil.which(script) if "/" not in script else None
    if interpreter is None:
        interpreter = _BY_EXTENSION.get(os.path.splitext(script)[1].lower())
    if interpreter is None:
        # pm2: a binary runs as it is, any other file with node; one not found is left to the
        # program check, which names it
        interpreter = "node" if found and not _binary(found) else "none"
    words = [script]
    if interpreter != "none":
        words = [interpreter, script]
    elif "/" not in script and found == beside:
        words = ["./" + script]
    command = shlex.join(words)
    args = app.get("args")
    if isinstance(args, list) and all(isinstance(a, str) for a in args):
        command += " " + shlex.join(args) if args else ""
    elif isinstance(args, str):
        command += f" {args.strip()}" if args.strip() else ""
    elif args is not None:
        raise fail(path, f"{name}: args: use a string or a list of strings")
    return command


def _binary(path: str) -> bool:
    """pm2's test of a file: a NUL byte in its first 512 bytes, or more than a tenth of
    them control characters."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if b"\0" in head:
        return True
    odd = sum(1 for b in head if b < 7 or 14 < b < 32)
    return bool(head) and odd * 10 > len(head)


def _json(path: str, text: str) -> object:
    try:
        return json.loads(text)
    except ValueError as err:
        line = getattr(err, "lineno", None)
        message = getattr(err, "msg", str(err))
        raise fail(path, f"not JSON: {message}", line) from None


def _evaluated(path: str) -> object:
    node = shutil.which("node")
    if node is None:
        raise fail(path, "reading a .js ecosystem file needs node, which is not on PATH "
                   "(or write it as ecosystem.json)")
    try:
        done = subprocess.run([node, "-e", _NODE_PRINT, os.path.abspath(path)],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise fail(path, f"node could not read it: {err}") from None
    if done.returncode != 0:
        said = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
        # node prints the file's line, a caret, then "SyntaxError: ..." and a stack
        why = next((ln for ln in said if re.match(r"\w*Error\b", ln)),
                   said[-1] if said else f"exit {done.returncode}")
        raise fail(path, f"node could not read it: {why}")
    _, mark, exported = done.stdout.rpartition(_MARK)
    try:
        if not mark:
            raise ValueError
        return json.loads(exported)
    except ValueError:
        raise fail(path, "node printed no JSON for it (does it set module.exports?)") from None
