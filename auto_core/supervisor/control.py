"""The watcher's control channel: a datagram socket in ``local/`` that takes a request
without writing the state file.

Faces ask the watcher through the state file (``lifecycle``); this channel is the fallback
for when that file cannot be written, the disk being full: a stop must still reach a service
that is filling the disk. The watcher carries out what comes here as if it had been written
(``Watcher._control``) and writes it with everything else once space returns.

The socket lives in ``local/``, which only its owner can enter (``paths.check_private``), so
no one else can send to it; sending needs no disk space. A socket path longer than the
system's limit (about 100 bytes) leaves the channel off, as does a platform without Unix
sockets.
"""

from __future__ import annotations

import json
import os

from auto_core.store.paths import FILE_MODE, Home

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import socket

NAME = "control.sock"
MAX_MESSAGE = 65536


def path(home: Home) -> str:
    return str(home.local / NAME)


class Listener:
    """The watcher's end: ``fd`` to wait on, ``receive()`` the requests sent since."""

    def __init__(self, home: Home):
        self.path = path(home)
        self.sock: socket.socket | None = None
        import socket  # here: every one-shot command imports this module, few use a socket

        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except (OSError, AttributeError):
            return
        try:
            try:
                os.unlink(self.path)  # a socket left by a watcher that was killed
            except FileNotFoundError:
                pass
            sock.bind(self.path)
            os.chmod(self.path, FILE_MODE)  # as every file of the home, whatever the umask
            sock.setblocking(False)
        except OSError:
            sock.close()
            return
        self.sock = sock

    @property
    def fd(self) -> int | None:
        return self.sock.fileno() if self.sock is not None else None

    def receive(self) -> list[dict]:
        found: list[dict] = []
        while self.sock is not None:
            try:
                raw = self.sock.recv(MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if isinstance(message, dict):
                found.append(message)
        return found

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            try:
                os.unlink(self.path)
            except OSError:
                pass


def send(home: Home, message: dict) -> bool:
    """Send ``message`` to the home's watcher; False if no watcher listens."""
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(json.dumps(message).encode(), path(home))
    except (OSError, AttributeError):
        return False
    return True
