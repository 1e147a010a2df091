"""Linux: a systemd user unit started with ``systemctl --user``."""

from __future__ import annotations

import os
from pathlib import Path

from auto_core.errors import AutoError, warn_stderr
from auto_core.service.install_common import Ctx, read_text, render

UNIT = "auto-watch"
TEMPLATE = "watch.service.template"
SYSTEMCTL = ["systemctl", "--user"]


def unit_name(ctx: Ctx) -> str:
    return f"{UNIT}-{ctx.suffix}.service" if ctx.suffix else f"{UNIT}.service"


def _unit_dir(ctx: Ctx) -> Path:
    # systemd --user reads $XDG_CONFIG_HOME/systemd/user, ~/.config when unset or relative.
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else ctx.user_home / ".config"
    return base / "systemd" / "user"


def service_file(ctx: Ctx) -> Path:
    return _unit_dir(ctx) / unit_name(ctx)


def installed_files(ctx: Ctx) -> list[Path]:
    """Every auto unit of this user, whatever its home."""
    return sorted(_unit_dir(ctx).glob(f"{UNIT}*.service"))


def _specifiers(text: str) -> str:
    return text.replace("%", "%%")  # systemd expands %x specifiers in nearly every setting


def _quoted(text: str, exec_line: bool = False) -> str:
    """One double-quoted word for systemd (systemd.syntax(7)); ``$`` expands only in Exec lines."""
    text = _specifiers(text.replace("\\", "\\\\").replace('"', '\\"'))
    return f'"{text.replace("$", "$$") if exec_line else text}"'


def render_unit(ctx: Ctx) -> str:
    log = _specifiers(str(ctx.home.watcher_log))
    return render(
        TEMPLATE,
        description=_specifiers(str(ctx.home.root)),
        exec_start=" ".join(_quoted(a, exec_line=True) for a in ctx.watch_argv),
        env_path=_quoted(f"PATH={ctx.path_env}"),
        env_auto_home=_quoted(f"AUTO_HOME={ctx.home.root}"),
        log=log,
    )


def _ask(ctx: Ctx, verb: str) -> str | None:
    """``systemctl --user is-active|is-enabled`` output; None when systemctl cannot answer."""
    return _probe(ctx, verb)[0]


def _probe(ctx: Ctx, verb: str = "is-active") -> tuple[str | None, str | None]:
    """(answer, why systemctl --user cannot be used here, or None)."""
    result = ctx.query([*SYSTEMCTL, verb, unit_name(ctx)])
    if result is None:
        return None, "systemctl not found on PATH" if ctx.can_query else None
    answer = result.stdout.strip()
    if answer:
        return answer, None
    said = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
    return None, said[-1] if said else f"systemctl exited {result.returncode}"


def install(ctx: Ctx) -> None:
    unit = unit_name(ctx)
    path = service_file(ctx)
    content = render_unit(ctx)
    changed = read_text(path) != content
    state, unusable = _probe(ctx)
    if unusable and not ctx.dry_run:
        # Checked before writing anything: a failed install leaves no half-installed unit.
        raise AutoError(f"systemctl --user cannot be used here ({unusable}); nothing was"
                        " installed (run the watcher yourself: auto watch)")
    ctx.ensure_log_dir()
    active = state == "active"
    enabled = _ask(ctx, "is-enabled") == "enabled"
    if not changed and active and enabled:
        # Never bounce a healthy watcher just because install ran again: a new one would only
        # adopt the running services, whose exit status it can then no longer learn.
        ctx.out.info(f"{path} is unchanged and {unit} is active: watcher left running")
    else:
        if changed:
            ctx.write(path, content, 0o644)
            ctx.check(ctx.run([*SYSTEMCTL, "daemon-reload"]))
        if changed and active:
            # The running watcher has the old definition. KillMode=process: only it restarts.
            ctx.check(ctx.run([*SYSTEMCTL, "enable", unit]))
            ctx.check(ctx.run([*SYSTEMCTL, "restart", unit]))
        else:
            ctx.check(ctx.run([*SYSTEMCTL, "enable", "--now", unit]))
    _linger_hint(ctx)


def _linger_hint(ctx: Ctx) -> None:
    result = ctx.query(["loginctl", "show-user", ctx.user, "-p", "Linger"])
    if result is not None and result.returncode == 0 and result.stdout.strip() == "Linger=no":
        ctx.out.info(f"note: lingering is off, so systemd stops the watcher when {ctx.user} logs out;"
                     f" to keep it running: loginctl enable-linger {ctx.user}")


def uninstall(ctx: Ctx) -> None:
    path = service_file(ctx)
    if not path.exists():
        ctx.out.info(f"no unit at {path}: nothing to disable")
        return
    _, unusable = _probe(ctx)
    if unusable and not ctx.dry_run:
        # No user manager to ask, so none runs this unit: removing the file is all there is.
        warn_stderr(f"systemctl --user cannot be used here ({unusable}); removing the unit file only")
        ctx.remove(path)
        return
    # KillMode=process: stopping the unit stops the watcher only, never the services.
    ctx.check(ctx.run([*SYSTEMCTL, "disable", "--now", unit_name(ctx)]))
    ctx.remove(path)
    ctx.check(ctx.run([*SYSTEMCTL, "daemon-reload"]))


def service_status(ctx: Ctx) -> tuple[str, str | None]:
    """(one-line description, problem or None)."""
    path = service_file(ctx)
    if not path.exists():
        return f"not installed ({path} absent; auto install)", None
    active = _ask(ctx, "is-active")
    if active is None:
        return f"installed at {path}, systemctl --user unavailable: state unknown", None
    if active != "active":
        return (f"installed at {path}, {active}",
                f"unit {unit_name(ctx)} is {active} (systemctl --user status {unit_name(ctx)})")
    return f"installed and active ({unit_name(ctx)}, {path})", None
