"""The open-file limit: raised at start, because a process manager's descriptors grow with
its services (a pidfd per running service in the watcher, a log file per spawn) while the
default soft limits are small (256 on macOS, 1024 under systemd).

The soft limit goes up to the hard limit, capped at ``NOFILE_TARGET``: enough for thousands
of services, and not the million some Linux hard limits allow, which slows programs that
close every possible descriptor at start. Services inherit the raised limit.
"""

from __future__ import annotations

import resource

NOFILE_TARGET = 65536


def raise_nofile() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE as far as allowed; returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE_TARGET if hard == resource.RLIM_INFINITY else min(hard, NOFILE_TARGET)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft, hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):  # macOS refuses more than kern.maxfilesperproc
        return soft, hard
    return want, hard
