"""Errors the lifecycle API raises; every face shows them as one line."""

import sys
from enum import IntEnum


def warn_stderr(message: str) -> None:
    """A warning as every face prints it: one ``auto: warning:`` line on stderr."""
    print(f"auto: warning: {message}", file=sys.stderr)


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2


class AutoError(Exception):
    """A failure the user can act on. ``str(err)`` is the one-line message."""

    exit_code = ExitCode.FAILURE


class UsageError(AutoError):
    """Bad input: a name, port, flag or value that is not allowed."""

    exit_code = ExitCode.USAGE


class NotFound(AutoError):
    def __init__(self, name: str):
        super().__init__(f"no process named {name!r} (see 'auto ps')")
        self.name = name


def no_space(exc: BaseException) -> bool:
    """The disk (or the user's quota) is full, as ``exc`` or its cause says."""
    import errno

    return any(isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)
               for e in (exc, exc.__cause__))


class StateError(AutoError):
    """The state file cannot be read or written safely."""
