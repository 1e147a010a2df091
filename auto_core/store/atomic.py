"""Replacing a file atomically: a unique temp file beside it, written, fsynced, renamed over it.
A crash or a full disk leaves the old file or the new one, never half of either."""

from __future__ import annotations

import contextlib
import os

from auto_core.store.paths import FILE_MODE

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (`auto ps` reads state)
if TYPE_CHECKING:
    from pathlib import Path


def write_atomic(directory: Path, target: Path, payload: bytes, sync: bool = True) -> None:
    """Replace ``target`` (in ``directory``) by ``payload``, mode 0600 whatever the umask."""
    tmp = directory / f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        try:
            os.fchmod(fd, FILE_MODE)  # O_CREAT's mode is narrowed by the umask, never widened
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable; a failure loses nothing that was there before."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
