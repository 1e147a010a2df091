"""launchd agents: ``auto.NAME.plist`` per service, for ``~/Library/LaunchAgents``: kept alive
and started at load, the output in ``logs/NAME.log`` beside the plists."""

from __future__ import annotations

import math
import os
import plistlib

from auto_core.exports import CAPTURED, Service, argv, header

CARRIED = ("command", "workdir", "env", "backoff_base", "stop_timeout")
NOTE = ("launchd starts a job again no sooner than ThrottleInterval (the backoff base, rounded "
        "up to whole seconds) after its last start, without auto's doubling delay; it stops "
        f"with SIGTERM whatever the stop signal; the log is one file without rotation; {CAPTURED}.")
LOGS = "logs"
FOLDERS = (LOGS,)  # launchd opens the log files but makes no folder for them


def label(name: str) -> str:
    return f"auto.{name}"


def job(service: Service, logs: str) -> dict:
    d = service.definition
    env = service.variables
    plist: dict = {"Label": label(service.name), "ProgramArguments": argv(service),
                   "KeepAlive": True, "RunAtLoad": True,
                   "StandardOutPath": f"{logs}/{service.name}.log",
                   "StandardErrorPath": f"{logs}/{service.name}.log",
                   "ExitTimeOut": max(1, math.ceil(d.stop_timeout)),
                   "ThrottleInterval": max(1, math.ceil(d.backoff_base))}
    if d.workdir:
        plist["WorkingDirectory"] = d.workdir
    if env:
        plist["EnvironmentVariables"] = env
    return plist


def render_plist(service: Service, logs: str) -> str:
    text = plistlib.dumps(job(service, logs), sort_keys=False).decode("utf-8")
    # An XML comment may not hold "--".
    notes = [f"<!-- {line.replace('--', '- -')} -->" for line in header([service], CARRIED, NOTE)]
    head, _, body = text.partition("<plist")
    return head + "\n".join(notes) + "\n<plist" + body


def render(services: list[Service], folder: str | None = None) -> dict[str, str]:
    """``folder``: where the plists go (absolute); the logs go into its ``logs``."""
    logs = os.path.join(folder or os.getcwd(), LOGS)
    return {f"{label(s.name)}.plist": render_plist(s, logs) for s in services}
