"""systemd units: ``auto-NAME.service`` per service, for ``systemctl --user`` (the system
manager needs a ``User=`` added, which the header says). ``Restart=always`` after ``RestartSec`` (the backoff base), the stop signal and
timeout, ``RuntimeMaxSec`` for a periodic restart; the output goes to the journal."""

from __future__ import annotations

from auto_core.exports import CAPTURED, Service, argv, header, seconds

CARRIED = ("command", "workdir", "env", "backoff_base", "stop_signal", "stop_timeout",
           "restart_every")
NOTE = ("systemd waits RestartSec before every restart (auto doubles the delay after each "
        "quick crash, up to backoff_max); the output goes to the journal, so auto's log "
        f"rotation does not apply; {CAPTURED}.")


# The unit names no user: under the system manager it would run as root.
USE = ("A user unit: copy it into ~/.config/systemd/user and use systemctl --user. For the "
       "system manager (/etc/systemd/system) add User= and Group= under [Service], or it runs "
       "as root.")


def unit_name(name: str) -> str:
    return f"auto-{name}.service"  # names are [A-Za-z0-9._-]: valid in a unit name as they are


def quoted(text: str, exec_line: bool = False) -> str:
    """One double-quoted word by systemd.syntax(7): C escapes, ``%`` doubled (specifiers) and,
    in an Exec line, ``$`` doubled (variable expansion)."""
    out = []
    for ch in text:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif ch == "%":
            out.append("%%")
        elif ch == "$" and exec_line:
            out.append("$$")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _comment(text: str) -> str:
    return "# " + text.replace("\n", " ")


def render_unit(service: Service) -> str:
    d = service.definition
    lines = [_comment(line) for line in header([service], CARRIED, NOTE)]
    lines.append(_comment(USE))
    lines += ["[Unit]", f"Description=auto service {service.name}", "",
              "[Service]", "Type=simple",
              "ExecStart=" + " ".join(quoted(word, exec_line=True) for word in argv(service))]
    if d.workdir:
        lines.append("WorkingDirectory=" + d.workdir.replace("%", "%%"))
    lines += [f"Environment={quoted(f'{key}={value}')}" for key, value in service.variables.items()]
    lines += ["Restart=always", f"RestartSec={seconds(d.backoff_base)}",
              f"KillSignal={d.stop_signal}", f"TimeoutStopSec={seconds(d.stop_timeout)}"]
    if d.restart_every:
        lines.append("# restart_every: the run ends after this long and Restart=always starts it again")
        lines.append(f"RuntimeMaxSec={seconds(d.restart_every)}")
    lines += ["", "[Install]", "WantedBy=default.target", ""]
    return "\n".join(lines)


def render(services: list[Service], folder: str | None = None) -> dict[str, str]:
    return {unit_name(s.name): render_unit(s) for s in services}
