"""How each run of a process ended and how long it lasted: ``auto log NAME --runs`` and the
TUI's details show the same words."""

from __future__ import annotations

import os
import re

from auto_core.logtree import logs


def how_ended(run: logs.Run, *, current: bool, alive: bool, last_exit: str | None) -> str | None:
    """How ``run`` ended, in a sentence: ``running`` for the live current run, else the marker
    the watcher wrote at its end, else (the current run) its recorded ``last_exit``."""
    if current and alive:
        return "running"
    ended = logs.run_end(run)
    if ended is None and current and last_exit:
        return last_exit
    return ended


def short_end(ended: str | None, run: logs.Run) -> str:
    """``how_ended`` in a word or two (``exit 3``, ``SIGKILL``, ``stopped``)."""
    if ended is None:
        return "-"
    why = ""
    if not ended.startswith(("running", "corrupt", "unreadable")):
        try:
            tail = logs.tail_lines(run.path, 8)[0]
        except OSError:
            tail = []
        if "[auto] stopped by user" in tail:
            why = " (stop)"
        elif "[auto] restarting" in tail or "[auto] periodic restart" in tail:
            why = " (restart)"
    code = re.match(r"(?:exited with code|exit code) (-?\d+)", ended)
    signal = re.match(r"killed by (SIG\w+)", ended)
    if code:
        short = f"exit {code.group(1)}"
    elif signal:
        short = signal.group(1)
    elif "exit status unknown" in ended or ended == "ended":
        short = "unknown"
    elif ended.startswith("cannot start"):
        short = "not started"
    else:
        short = ended.split(" (")[0].split(";")[0]
    return short + why


def lasted(run: logs.Run, *, running: bool, now: float) -> float | None:
    """Seconds from ``run``'s start to its last write (to ``now`` while it runs); None when
    its files are gone."""
    started = run.started.timestamp()
    if running:
        return max(0.0, now - started)
    try:
        last = max(os.stat(path).st_mtime for path in run.files)
    except OSError:
        return None
    return max(0.0, last - started)
