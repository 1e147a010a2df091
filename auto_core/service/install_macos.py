"""macOS: a LaunchAgent in ``~/Library/LaunchAgents`` loaded with ``launchctl``.

Untested on a real Mac in this project's CI: the tests drive this code against a recording fake
``launchctl`` (see docs/platforms.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.sax.saxutils import escape

from auto_core.service.install_common import Ctx, read_text, render

LABEL = "io.github.auto-pm.watch"
TEMPLATE = "watch.plist.template"
# launchctl's exit codes for "no such job": 3 (ESRCH) and 113 ("Could not find specified service").
NOT_LOADED = (3, 113)
_UNSUPPORTED = re.compile(r"unrecognized subcommand|unknown subcommand|usage: launchctl", re.I)


def label(ctx: Ctx) -> str:
    return f"{LABEL}.{ctx.suffix}" if ctx.suffix else LABEL


def service_file(ctx: Ctx) -> Path:
    return ctx.user_home / "Library" / "LaunchAgents" / f"{label(ctx)}.plist"


def installed_files(ctx: Ctx) -> list[Path]:
    """Every auto LaunchAgent of this user, whatever its home."""
    return sorted((ctx.user_home / "Library" / "LaunchAgents").glob(f"{LABEL}*.plist"))


def render_plist(ctx: Ctx) -> str:
    args = "\n".join(f"\t\t<string>{escape(a)}</string>" for a in ctx.watch_argv)
    return render(TEMPLATE, label=escape(label(ctx)), program_arguments=args,
                  path=escape(ctx.path_env), auto_home=escape(str(ctx.home.root)),
                  log=escape(str(ctx.home.watcher_log)))


def _unsupported(result) -> bool:
    """True when this launchctl predates the subcommand (macOS before 10.10)."""
    return result.returncode != 0 and bool(_UNSUPPORTED.search(f"{result.stderr}{result.stdout}"))


def loaded(ctx: Ctx) -> bool | None:
    """Whether launchd has the job; None when launchctl cannot be asked."""
    result = ctx.query(["launchctl", "print", f"gui/{ctx.uid}/{label(ctx)}"])
    if result is not None and _unsupported(result):
        result = ctx.query(["launchctl", "list", label(ctx)])
    if result is None:
        return None
    return result.returncode == 0


def _bootout(ctx: Ctx) -> None:
    result = ctx.run(["launchctl", "bootout", f"gui/{ctx.uid}/{label(ctx)}"])
    if _unsupported(result):
        result = ctx.run(["launchctl", "unload", str(service_file(ctx))])
    ctx.check(result, ok=(0, *NOT_LOADED))


def install(ctx: Ctx) -> None:
    path = service_file(ctx)
    content = render_plist(ctx)
    is_loaded = loaded(ctx)
    ctx.ensure_log_dir()
    if read_text(path) == content and is_loaded:
        # Never bounce a healthy watcher just because install ran again: a new one would only
        # adopt the running services, whose exit status it can then no longer learn.
        ctx.out.info(f"{path} is unchanged and {label(ctx)} is loaded: watcher left running")
        return
    ctx.write(path, content, 0o644)
    if is_loaded is not False:
        # Loaded with an older plist (or unknown): launchd only rereads it on a fresh bootstrap.
        # The watcher exits on SIGTERM and leaves services running (AbandonProcessGroup).
        _bootout(ctx)
    result = ctx.run(["launchctl", "bootstrap", f"gui/{ctx.uid}", str(path)])
    if _unsupported(result):
        result = ctx.run(["launchctl", "load", "-w", str(path)])
    ctx.check(result)


def uninstall(ctx: Ctx) -> None:
    path = service_file(ctx)
    if loaded(ctx) is not False:
        _bootout(ctx)
    ctx.remove(path)


def service_status(ctx: Ctx) -> tuple[str, str | None]:
    """(one-line description, problem or None)."""
    path = service_file(ctx)
    if not path.exists():
        return f"not installed ({path} absent; auto install)", None
    is_loaded = loaded(ctx)
    if is_loaded is None:
        return f"installed at {path}, launchctl unavailable: load state unknown", None
    if not is_loaded:
        return (f"installed at {path}, not loaded",
                f"LaunchAgent {label(ctx)} is not loaded (auto install loads it)")
    return f"installed and loaded ({label(ctx)}, {path})", None
