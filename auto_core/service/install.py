"""`auto install` / `auto uninstall` / `auto status`: the login service that runs the watcher.

The platform parts (what file, which commands) live in ``install_macos`` and ``install_linux``;
both take the ``Ctx`` built here, which owns every side effect: writing files, running
launchctl/systemctl, and printing them instead under ``--dry-run``.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

from auto_core.errors import AutoError, StateError, warn_stderr
from auto_core.proc import identity
from auto_core.service.install_common import Ctx, platform_of, read_text
from auto_core.store import state, watchlock
from auto_core.store.paths import Home

WRAPPER_MARK = "# auto wrapper written by `auto install`"

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Protocol

    from auto_core.service.install_common import Output

    class PlatformModule(Protocol):
        """What ``install_linux`` and ``install_macos`` provide."""

        def install(self, ctx: Ctx, /) -> None: ...
        def uninstall(self, ctx: Ctx, /) -> None: ...
        def installed_files(self, ctx: Ctx, /) -> list[Path]: ...
        def service_file(self, ctx: Ctx, /) -> Path: ...
        def service_status(self, ctx: Ctx, /) -> tuple[str, str | None]: ...

def _module(platform: str) -> PlatformModule:
    if platform == "macos":
        from auto_core.service import install_macos

        return install_macos
    from auto_core.service import install_linux

    return install_linux


def _context(home: Home, dry_run: bool, platform: str | None, out: Output,
             sys_platform: str) -> Ctx:
    host = platform_of(sys_platform)
    target = platform or host
    if target is None:
        raise AutoError(f"login services are supported on macOS and Linux, not {sys_platform}"
                        " (use --platform macos|linux --dry-run to render one)")
    if target != host and not dry_run:
        raise AutoError(f"--platform {target} is not this machine ({host or sys_platform});"
                        " add --dry-run to render for it")
    return Ctx(home=home, platform=target, can_query=target == host, dry_run=dry_run, out=out)


# --- ~/bin/auto wrapper ----------------------------------------------------------------------

def wrapper_path(ctx: Ctx) -> Path:
    return ctx.user_home / "bin" / "auto"


def wrapper_text(ctx: Ctx) -> str:
    return (f"#!/bin/sh\n{WRAPPER_MARK}; `auto uninstall` removes it.\n"
            f'exec {shlex.quote(ctx.python)} -m auto_core "$@"\n')


def wrapper_is_ours(path: Path) -> bool:
    if path.is_symlink():
        return False
    text = read_text(path)
    return text is not None and text.startswith(f"#!/bin/sh\n{WRAPPER_MARK}")


def _install_wrapper(ctx: Ctx) -> None:
    path = wrapper_path(ctx)
    if os.path.lexists(path) and not wrapper_is_ours(path):
        warn_stderr(f"{path} exists and was not written by auto; left alone")
        return
    ctx.write(path, wrapper_text(ctx), 0o755)
    bin_dir = os.path.normpath(path.parent)
    on_path = {os.path.normpath(os.path.expanduser(p)) for p in ctx.path_env.split(os.pathsep) if p}
    if bin_dir not in on_path:
        ctx.out.info(f'hint: {bin_dir} is not on your PATH; add  export PATH="$HOME/bin:$PATH"'
                     "  to your shell profile to run auto from anywhere")


def _uninstall_wrapper(ctx: Ctx, mod: PlatformModule) -> None:
    path = wrapper_path(ctx)
    if not wrapper_is_ours(path):
        return
    others = [p for p in mod.installed_files(ctx) if p != mod.service_file(ctx)]
    if others:
        ctx.out.info(f"kept {path}: still used by {others[0]}")
        return
    ctx.remove(path)


# --- entry points ------------------------------------------------------------------------------

def main(cmd: str, home: Home, dry_run: bool = False, platform: str | None = None, *,
         out: Output, sys_platform: str = sys.platform) -> int:
    """Install or uninstall the login service and the wrapper.

    Args:
        cmd: ``"install"`` or ``"uninstall"``.
        platform: render for ``"macos"``/``"linux"``; None means this machine.
        sys_platform: this machine's ``sys.platform`` (tests exercise the macOS path on Linux).
    """
    ctx = _context(home, dry_run, platform, out, sys_platform)
    mod = _module(ctx.platform)
    if cmd == "install":
        mod.install(ctx)
        _install_wrapper(ctx)
        if not dry_run:
            out.info(f"installed: the watcher for {home.root} starts at login; check with: auto status")
    elif cmd == "uninstall":
        mod.uninstall(ctx)
        _uninstall_wrapper(ctx, mod)
        if not dry_run:
            out.info(f"uninstalled; state and logs are left in {home.root}")
    else:
        raise AutoError(f"unknown command {cmd!r}")
    return 0


def status(home: Home, out: Output, *, sys_platform: str = sys.platform) -> int:
    """Print the watcher, login service, state and logs; 0 if all is well, 1 otherwise."""
    problems: list[str] = []
    info = watchlock.holder_info(home)
    pid = info[0] if info else None
    if info:
        kind = "started at login" if info[1] == watchlock.LOGIN else "started on demand"
        out.data(f"watcher:  running, {kind} ({_describe_pid(info[0])})")
    else:
        out.data("watcher:  not running")
        problems.append("no watcher is running, so nothing restarts dead services"
                        " (auto install, or auto watch)")

    host = platform_of(sys_platform)
    if host is None:
        out.data(f"service:  not supported on {sys_platform}")
    else:
        ctx = Ctx(home=home, platform=host, can_query=True, dry_run=True, out=out)
        text, problem = _module(host).service_status(ctx)
        out.data(f"service:  {text}")
        if problem:
            problems.append(problem)

    problems += _state_report(home, out, watcher_running=bool(pid))
    out.data(f"logs:     {home.logs} (watcher: {home.watcher_log})")
    for problem in problems:
        out.data(f"problem:  {problem}")
    if not problems:
        out.data("ok")
    return 1 if problems else 0


def _describe_pid(pid: int) -> str:
    if pid < 0:
        return "pid unknown"
    created = identity.create_time(pid)
    if created is None:
        return f"pid {pid}"
    return f"pid {pid}, since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(created))}"


def _state_report(home: Home, out: Output, watcher_running: bool) -> list[str]:
    from auto_core import views
    from auto_core.model import DEAD

    try:
        loaded = state.load(home)
    except StateError as exc:
        out.data(f"state:    {home.state_file} (unreadable)")
        return [str(exc)]
    procs = state.processes(loaded.data)
    out.data(f"state:    {home.state_file} ({len(procs)} process{'es' if len(procs) != 1 else ''})")
    problems = [loaded.problem] if loaded.problem else []
    if not watcher_running:
        stale = [v.name for v in views.snapshot(loaded.data, time.time()) if v.status == DEAD and not v.starting]
        if stale:
            problems.append(f"stale: {', '.join(stale)} dead and not stopped, and no watcher"
                            " restarts them (auto start NAME, or run the watcher)")
    return problems
