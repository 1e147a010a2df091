"""What `ps`, `show` and the TUI display: a process's live status from its state entry.

Read-only and small on purpose: `auto ps` imports this, ``state``, ``model`` and ``identity``,
not the lifecycle API with its spawning, logs and ports (~5.5 ms more of imports).
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from auto_core import model, order
from auto_core.model import ProcessView
from auto_core.proc import identity
from auto_core.store import state


def view(name: str, entry: dict, now: float, waiting_for: list[str] | None = None) -> ProcessView:
    pid, ct = entry.get("pid"), entry.get("create_time")
    alive = identity.runs(entry)
    if alive:
        status = model.RUNNING
    elif entry.get("explicitly_stopped"):
        status = model.STOPPED
    else:
        status = model.DEAD
    next_in = None
    due = entry.get("next_restart_at")
    if status == model.DEAD and isinstance(due, (int, float)):
        next_in = max(0.0, due - now)
    d = model.definition(entry)
    req = model.request(entry)
    since = req.get("at") if req is not None else None
    return ProcessView(
        name=name,
        status=status,
        pid=pid if alive else None,
        port=d.port,
        command=d.command,
        workdir=d.workdir,
        uptime_s=max(0.0, now - ct) if alive and ct is not None else None,  # alive: ct is a number
        restarts=model.count(entry, "restarts"),
        next_restart_in_s=next_in,
        log_path=entry.get("log_path"),
        last_exit=model.last_exit(entry),
        env=d.env,
        restart_attempt=model.count(entry, "restart_attempt"),
        restart_every=d.restart_every,
        backoff_max=d.backoff_max,
        backoff_base=d.backoff_base,
        stop_timeout=d.stop_timeout,
        stop_signal=d.stop_signal,
        create_time=ct if alive else None,
        starting=model.claim_fresh(entry, now) and not alive,
        daemon_follow=d.daemon_follow,
        restart_on_change=d.restart_on_change,
        ignore=d.ignore,
        pending=req["op"] if req is not None else None,
        pending_since=float(since) if isinstance(since, (int, float)) and not isinstance(since, bool) else None,
        health_check=d.health,
        health=health_state(entry, d.health) if alive else None,
        last_health=entry.get("last_health") if d.health and isinstance(entry.get("last_health"), dict) else None,
        after=list(d.after),
        changed=model.changed_since(entry) if alive else [],
        waiting_for=list(waiting_for or ()),
    )


def health_state(entry: dict, check: str | None) -> str | None:
    """starting, healthy or unhealthy for the current run (None: no check). The watcher
    records the state with the run it belongs to; a newer run is starting until it writes."""
    if check is None:
        return None
    found = entry.get("health_state")
    if entry.get("health_run") != entry.get("run") or found not in ("healthy", "unhealthy"):
        return "starting"
    return str(found)


def snapshot(data: dict, now: float) -> list[ProcessView]:
    """Every process of a loaded state, sorted by name, with its live status."""
    procs = state.processes(data)
    found = {name: view(name, procs[name], now) for name in sorted(procs)}
    for name, v in found.items():
        if v.after and v.status != model.RUNNING:
            waiting = held_for(name, procs, lambda n: found[n].status == model.RUNNING, now)
            if waiting:
                found[name] = view(name, procs[name], now, waiting)
    return list(found.values())


def held_for(name: str, procs: dict, running: Callable[[str], bool], now: float) -> list[str]:
    """The services a start of ``name`` waits for, as the watcher holds it (``Watcher._held``):
    a start of start-all or apply (``ordered``), or the watcher's own start of a dead service
    once its backoff is over."""
    entry = procs[name]
    req = model.request(entry)
    if running(name):
        return []
    if req is None:
        due = entry.get("next_restart_at")
        if entry.get("explicitly_stopped") or (isinstance(due, (int, float)) and due > now):
            return []
    elif req["op"] != model.START or not req.get("ordered"):
        return []
    return order.waiting_for(name, entry, procs, running)


def waiting_text(names: list[str], procs: dict, now: float) -> str:
    """``db (starting: Connection refused after 0.0 s), cache (dead)``: what each is at."""
    parts = []
    for name in names:
        entry = procs.get(name) or {}
        v = view(name, entry, now)
        what = v.status
        if v.status == model.RUNNING and v.health:
            what = v.health
            last = v.last_health
            if isinstance(last, dict) and not last.get("ok") and last.get("detail"):
                what += f": {last['detail']}"
        parts.append(f"{name} ({what})")
    return ", ".join(parts)


def json_ready(value: object) -> object:
    """``value`` with every non-finite number (which JSON cannot hold) as null."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def json_text(value: object) -> str:
    """What ``ps --json`` and ``show --json`` print: strict JSON (no ``Infinity``, no ``NaN``)."""
    import json

    return json.dumps(json_ready(value), indent=2, allow_nan=False)


def describe_exit(last_exit: dict | None) -> str:
    if not last_exit:
        return "-"
    killed = last_exit.get("killed_after")
    killed_after = isinstance(killed, (int, float)) and not isinstance(killed, bool)
    if last_exit.get("stopped"):
        return f"stopped by user (SIGKILL after {killed:g} s)" if killed_after else "stopped by user"
    if last_exit.get("restart") in ("periodic", "files changed"):  # the watcher's own restart
        what = "periodic restart" if last_exit["restart"] == "periodic" else "restarted: files changed"
        return f"{what} (SIGKILL after {killed:g} s)" if killed_after else what
    if last_exit.get("unhealthy"):  # stopped by the watcher for failed health checks
        if killed_after:
            return f"unhealthy (SIGKILL after {killed:g} s)"
        return f"unhealthy ({describe_exit({k: v for k, v in last_exit.items() if k != 'unhealthy'})})"
    if last_exit.get("error"):
        return str(last_exit["error"])
    if last_exit.get("signal"):
        try:
            return f"killed by {signal.Signals(last_exit['signal']).name}"
        except ValueError:
            return f"killed by signal {last_exit['signal']}"
    if last_exit.get("code") is not None:
        return f"exit code {last_exit['code']}"
    return "exit status unknown"
