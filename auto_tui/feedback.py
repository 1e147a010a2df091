"""One toast per action: the outcome of a single name, or a batch summed up in one line."""

from __future__ import annotations

import re
from collections import Counter

from auto_core.lifecycle import Outcome

SKIPPED = ("already running", "already stopped")


def _kind(outcome: Outcome) -> str:
    """``started``, ``stopped``, ``already running``, ... or ``failed``."""
    if not outcome.ok:
        return "failed"
    for skipped in SKIPPED:
        if skipped in outcome.message:
            return skipped
    return outcome.message.split(" ", 1)[0]


def _with_detail(outcome: Outcome) -> str:
    # A start that failed at once brings the last lines of its log.
    return "\n".join([outcome.message, *(f"| {line}" for line in outcome.detail)])


def summary(what: str, outcomes: list[Outcome]) -> tuple[str, bool]:
    """The toast's text and whether everything went well. One outcome: its own message;
    several: ``started 5, 3 already running``, then what failed, if anything."""
    if not outcomes:
        return f"{what}: nothing to do", True
    if len(outcomes) == 1:
        return _with_detail(outcomes[0]), outcomes[0].ok
    counts = Counter(_kind(o) for o in outcomes)
    done = [f"{kind} {n}" for kind, n in counts.items() if kind not in (*SKIPPED, "failed")]
    skipped = [f"{counts[kind]} {kind}" for kind in SKIPPED if counts[kind]]
    failed = [o for o in outcomes if not o.ok]
    parts = done + skipped + ([f"{len(failed)} failed"] if failed else [])
    lines = [", ".join(parts)] + [o.message for o in failed[:3]]
    if len(failed) > 3:
        lines.append(f"and {len(failed) - 3} more")
    return "\n".join(lines), not failed


# The core's messages end in advice for the command line; here a key does it, or nothing.
KEYS = {"update": "e edits it", "restart": "r restarts it", "start": "s starts it", "stop": "x stops it"}
_ADVICE_IN_PARENS = re.compile(r"\s*\((use |see )?'?auto ([a-z-]+)[^)\n]*\)")
_ADVICE_CLAUSE = re.compile(r"(?:;|,)\s*'auto [^'\n]*'[^;\n]*")


def in_tui_words(text: str) -> str:
    """``text`` without CLI advice: ``(use 'auto update web')`` becomes ``(e edits it)``,
    advice with no key (``'auto install' starts it at login``) goes. The log lines a failed
    start brings (``| ...``) are the service's own words, kept as they are."""
    def key(match: re.Match) -> str:
        found = KEYS.get(match.group(2)) if match.group(1) != "see " else None  # "see": a help text
        return f" ({found})" if found else ""

    return "\n".join(line if line.startswith("| ") else _ADVICE_CLAUSE.sub("", _ADVICE_IN_PARENS.sub(key, line))
                     for line in text.split("\n"))
