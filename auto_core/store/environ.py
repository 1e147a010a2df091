"""The environment a service runs with.

A service should start the same way whether the caller, the watcher (started at login, with
almost no variables) or a restart much later launches it. So the environment is captured once,
when the service is defined, kept on disk, and every run gets that capture overlaid by the
service's own ``--env`` / ``--env-file`` values. Variables that describe the caller's terminal
session rather than the service (an ssh agent, a tmux pane, a display) are left out of the
capture: a service outlives the session they point to.

The capture lives in one JSON file per service beside ``state.json`` rather than inside it:
an environment is a few kilobytes, and the state file is read and rewritten far more often.
"""

from __future__ import annotations

import os

from auto_core.errors import AutoError, UsageError
from auto_core.store.atomic import fsync_dir, write_atomic
from auto_core.store.paths import ensure_dir

# Annotations only: this module is imported on the start path, so nothing more is loaded for them.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from auto_core.store.paths import Home

SESSION_ONLY: frozenset[str] = frozenset({
    # the terminal and its emulator
    "TERM_SESSION_ID", "TERM_PROGRAM", "TERM_PROGRAM_VERSION", "ITERM_SESSION_ID",
    "WINDOWID", "COLUMNS", "LINES",
    # an ssh login and its agent: the socket goes away when the login does
    "SSH_AUTH_SOCK", "SSH_AGENT_PID", "SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY",
    # terminal multiplexers (tmux, screen)
    "TMUX", "TMUX_PANE", "STY", "WINDOW",
    # the graphical and login session
    "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "XDG_SESSION_ID", "XDG_VTNR", "XDG_SESSION_TYPE",
    # the shell's own bookkeeping: its directory, nesting depth and last command
    "PWD", "OLDPWD", "SHLVL", "_",
    # auto's marks for one run: a service started from inside another must not inherit them
    "AUTO_SERVICE", "AUTO_RUN", "AUTO_CLAIM",
})

# A variable whose name contains one of these is shown masked. Matching on parts of the name
# also masks some harmless ones (KEYBOARD_LAYOUT); showing a password would be worse.
SECRET_MARKERS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASS")
MASK = "********"

ENV_DIR = "env"


def capture(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` (this process's environment by default) without ``SESSION_ONLY``."""
    if environ is None:
        environ = os.environ
    return {key: value for key, value in environ.items() if key not in SESSION_ONLY}


def _shown(path: str) -> str:
    # Error messages are one line: a path with a newline or other control character is quoted.
    return path if path.isprintable() else repr(path)


def read_env_file(path: str | os.PathLike) -> dict[str, str]:
    """The variables of a dotenv file, in the file's order (a repeated key: the last wins).

    Comments, an ``export`` prefix and single or double quotes work as in python-dotenv;
    ``${VAR}`` is kept as written, not expanded: the value a service gets should not depend on
    the environment of whoever ran ``auto`` at that moment. Anything dotenv would skip or
    leave unset is an error naming the file and line, so a typo cannot silently drop a variable.
    """
    import io

    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    from auto_core.validate import ENV_KEY_RE

    shown = _shown(os.fspath(path))
    # Read here rather than handing dotenv the path: for a missing file or a directory it
    # returns an empty mapping, and the service would start without its variables.
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise UsageError(f"cannot read env file {shown}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise UsageError(f"cannot read env file {shown}: it is not UTF-8 text") from None

    # dotenv_values skips a line it cannot parse, with only a logging warning. parse_stream
    # marks that line with ``error`` and tells where it starts. It is not in dotenv's
    # documented API, but it is a public name of a public module and the parser that
    # dotenv_values itself runs, so both see the same statements. Checked before dotenv_values
    # runs, so its warning is never logged for a file that is refused anyway.
    for binding in parse_stream(io.StringIO(text)):
        where = f"env file {shown}, line {_first_line(binding.original)}"
        if binding.error:
            statement = (binding.original.string.strip().splitlines() or [""])[0][:60]
            raise UsageError(f"{where}: cannot parse {statement!r}")
        key, value = binding.key, binding.value
        if key is None:  # a comment or blank lines
            continue
        if not ENV_KEY_RE.fullmatch(key):
            raise UsageError(f"{where}: invalid environment variable name {key!r}")
        if value is None:
            raise UsageError(f"{where}: {key} has no value (write {key}= for an empty one)")
        if "\x00" in value:
            raise UsageError(f"{where}: the value of {key} contains a NUL byte")
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    # Every value was checked above (none is None); the filter says so to type checkers.
    return {key: value for key, value in values.items() if value is not None}


def _first_line(original) -> int:
    # dotenv counts a statement from the blank lines before it; the user looks for its text.
    string = original.string
    lead = string[: len(string) - len(string.lstrip())]
    return original.line + lead.count("\n") + lead.count("\r") - lead.count("\r\n")


def is_secret(key: str) -> bool:
    upper = key.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def masked(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` fit to show on a screen or in a log: secret values replaced by ``MASK``."""
    return {key: MASK if is_secret(key) else value for key, value in env.items()}


def service_env(
    captured: Mapping[str, str] | None, own: Mapping[str, str], fallback: Mapping[str, str]
) -> dict[str, str]:
    """The environment one run of a service gets.

    ``captured`` is what was captured when the service was defined; ``None`` for a service
    defined before captures were kept, which gets ``fallback`` (the environment of the process
    starting it) instead. Either way without ``SESSION_ONLY``: a capture file edited by hand
    must not bring a run mark back. ``own`` (the service's ``--env`` / ``--env-file``) wins over
    both and may set anything, a session variable included, since the user asked for it.
    """
    env = capture(fallback if captured is None else captured)
    env.update(own)
    # Python buffers stdout when it is not a terminal, and a service's stdout is its log file:
    # without this a Python service's lines show up in blocks, late, or not at all if it is
    # killed. A value the user set, even PYTHONUNBUFFERED=0, is theirs to keep.
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def env_path(home: Home, name: str) -> Path:
    """Where the environment captured for service ``name`` is kept."""
    # The name becomes a file name: check it here, so that no caller can make "../state"
    # address (or delete) a file outside this directory.
    from auto_core.validate import name as valid_name

    return home.local / ENV_DIR / f"{valid_name(name)}.json"


def save(home: Home, name: str, env: Mapping[str, str]) -> None:
    """Keep ``env`` as service ``name``'s environment, replacing any earlier one.

    Written to a temp file and renamed over the old one: a crash or a full disk leaves the old
    file or the new one, never half of either. Mode 0600 in a 0700 directory, as secrets are
    likely among the variables.
    """
    import json

    path = env_path(home, name)
    # ensure_ascii: os.environ keeps bytes that are not UTF-8 as lone surrogates, which only
    # an ASCII encoding with \\u escapes can write (and json.loads gives back unchanged).
    payload = (json.dumps(dict(env), sort_keys=True) + "\n").encode("ascii")
    try:
        directory = ensure_dir(path.parent)
        write_atomic(directory, path, payload)
        fsync_dir(directory)
    except OSError as err:
        raise AutoError(
            f"cannot save the environment of {name} to {_shown(str(path))}: {err.strerror or err}"
        ) from None


def load(home: Home, name: str) -> dict[str, str] | None:
    """Service ``name``'s captured environment, or ``None`` if there is none usable.

    A file that cannot be read or is not a JSON object of strings counts as none: the caller
    then starts the service with its fallback environment rather than not at all.
    """
    import json

    try:
        with open(env_path(home, name), "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):  # ValueError: bad JSON or bad UTF-8
        return None
    if not isinstance(data, dict):
        return None
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in data.items()):
        return None
    return data


def delete(home: Home, name: str) -> None:
    """Forget service ``name``'s captured environment; having none is fine."""
    path = env_path(home, name)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise AutoError(
            f"cannot remove the environment of {name} at {_shown(str(path))}: {err.strerror or err}"
        ) from None
