"""Who listens on a TCP port. Only listeners count: a connection still open on the port (or in
TIME_WAIT) does not keep a new server from binding it."""

from __future__ import annotations

import os

from auto_core.record import Record


class Listener(Record, frozen=True):
    pid: int | None
    pgid: int | None


def listeners(port: int) -> list[Listener]:
    """Processes holding a LISTEN socket on ``port`` (any address). Empty when free."""
    import psutil

    found: list[Listener] = []
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError, OSError):
        return [Listener(None, None)] if not is_free(port) else []
    for conn in conns:
        if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.laddr.port != port:
            continue
        pgid = None
        if conn.pid:
            try:
                pgid = os.getpgid(conn.pid)
            except OSError:
                pgid = None
        found.append(Listener(conn.pid, pgid))
    return found


def is_free(port: int) -> bool:
    """True if nothing accepts connections on localhost:``port``."""
    import socket  # here, not at module level: `auto ps` never needs it

    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.2)
                if sock.connect_ex((addr, port)) == 0:
                    return False
        except OSError:
            continue
    return True
