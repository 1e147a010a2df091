"""The macOS path of `auto install` / `uninstall`, exercised on Linux.

launchctl does not exist here, so a recording fake stands in for it (tests/fakes/). The host
platform is injected through ``install.main(..., sys_platform="darwin")``; everything else is
real: the files written under a redirected HOME and the fake's subprocess calls.
"""

from __future__ import annotations

import os
import plistlib
import re
import sys

import pytest
from fakes.harness import Fakes

from auto_core.errors import AutoError
from auto_core.service import install, install_common
from auto_core.store.paths import Home

LABEL_RE = re.compile(r"io\.github\.auto-pm\.watch\.[0-9a-f]{8}")


class Out:
    """Collects what the command prints (the CLI's _Out has the same three methods)."""

    def __init__(self):
        self.lines: list[str] = []

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    data = info

    def error(self, msg: str) -> None:
        self.lines.append(f"error: {msg}")

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def fakes(fakes, monkeypatch):
    """The shared fakes (conftest.py), applied to this process: install runs in it here."""
    fakes.apply(monkeypatch)
    return fakes


def mac(cmd: str, fakes: Fakes, monkeypatch, dry_run: bool = False, home: Home | None = None) -> Out:
    fakes.apply(monkeypatch)  # rules may have changed since the fixture ran
    out = Out()
    rc = install.main(cmd, home or Home(fakes.auto_home), dry_run=dry_run, platform=None, out=out,
                      sys_platform="darwin")
    assert rc == 0
    return out


def agents(fakes: Fakes):
    return fakes.user_home / "Library" / "LaunchAgents"


def installed_plist(fakes: Fakes):
    files = list(agents(fakes).iterdir())
    assert len(files) == 1 and LABEL_RE.fullmatch(files[0].stem), files
    return files[0]


def not_loaded(fakes: Fakes) -> None:
    fakes.rule("launchctl", "print", rc=113, stderr="Could not find service in domain for port\n")


def test_install_writes_plist_and_bootstraps(fakes, monkeypatch, auto_home):
    not_loaded(fakes)
    mac("install", fakes, monkeypatch)
    plist = installed_plist(fakes)
    label, uid = plist.stem, os.getuid()
    assert fakes.calls() == [
        ["launchctl", "print", f"gui/{uid}/{label}"],
        ["launchctl", "bootstrap", f"gui/{uid}", str(plist)],
    ]
    data = plistlib.loads(plist.read_bytes())
    python = os.path.abspath(sys.executable)
    assert data["Label"] == label
    # A login watcher: it takes over from one a command started on demand.
    assert data["ProgramArguments"] == [python, "-u", "-m", "auto_core", "watch", "--login"]
    assert os.path.isabs(python) and os.access(python, os.X_OK)
    assert data["RunAtLoad"] is True and data["KeepAlive"] is True
    assert data["ProcessType"] in ("Background", "Interactive")
    assert data["AbandonProcessGroup"] is True
    assert data["EnvironmentVariables"] == {"PATH": fakes.path, "AUTO_HOME": str(auto_home)}
    log = str(auto_home / "output" / "logs" / "auto" / "auto.log")
    assert data["StandardOutPath"] == data["StandardErrorPath"] == log
    assert all(os.path.isabs(p) for p in (data["StandardOutPath"], data["EnvironmentVariables"]["AUTO_HOME"]))
    assert (auto_home / "output" / "logs" / "auto").is_dir()  # launchd does not create it
    assert (fakes.user_home / "bin" / "auto").read_text().startswith("#!/bin/sh\n# auto wrapper")


def test_plist_escapes_xml_in_paths(fakes, monkeypatch, tmp_path):
    odd = tmp_path / "a&b <c> 'd' \"e\""
    mac("install", fakes, monkeypatch, home=Home(odd))
    data = plistlib.loads(installed_plist(fakes).read_bytes())
    assert data["EnvironmentVariables"]["AUTO_HOME"] == str(odd)
    assert data["StandardOutPath"] == str(odd / "output" / "logs" / "auto" / "auto.log")


def test_reinstall_unchanged_and_loaded_runs_only_print(fakes, monkeypatch):
    not_loaded(fakes)
    mac("install", fakes, monkeypatch)
    plist = installed_plist(fakes)
    before = plist.stat()
    fakes.reset()  # no rule: `launchctl print` exits 0, the job is loaded
    out = mac("install", fakes, monkeypatch)
    assert fakes.calls() == [["launchctl", "print", f"gui/{os.getuid()}/{plist.stem}"]]
    assert plist.stat().st_ino == before.st_ino and plist.stat().st_mtime_ns == before.st_mtime_ns
    assert "watcher left running" in out.text


def test_reinstall_changed_and_loaded_boots_out_then_in(fakes, monkeypatch):
    not_loaded(fakes)
    mac("install", fakes, monkeypatch)
    plist = installed_plist(fakes)
    fakes.reset()
    fakes.path += f"{os.pathsep}/opt/new-tool/bin"
    mac("install", fakes, monkeypatch)
    uid, label = os.getuid(), plist.stem
    assert fakes.calls() == [
        ["launchctl", "print", f"gui/{uid}/{label}"],
        ["launchctl", "bootout", f"gui/{uid}/{label}"],
        ["launchctl", "bootstrap", f"gui/{uid}", str(plist)],
    ]
    assert plistlib.loads(plist.read_bytes())["EnvironmentVariables"]["PATH"] == fakes.path


def test_unchanged_but_not_loaded_bootstraps_without_bootout(fakes, monkeypatch):
    not_loaded(fakes)
    mac("install", fakes, monkeypatch)
    plist = installed_plist(fakes)
    fakes.log.unlink()
    mac("install", fakes, monkeypatch)
    assert [c[1] for c in fakes.calls()] == ["print", "bootstrap"]
    assert plist.exists()


def test_old_launchctl_falls_back_to_list_and_load(fakes, monkeypatch):
    for sub in ("print", "bootstrap"):
        fakes.rule("launchctl", sub, rc=64, stderr=f"Unrecognized subcommand: {sub}\n")
    fakes.rule("launchctl", "list", rc=1, stderr="Could not find service\n")
    mac("install", fakes, monkeypatch)
    plist = installed_plist(fakes)
    assert fakes.calls() == [
        ["launchctl", "print", f"gui/{os.getuid()}/{plist.stem}"],
        ["launchctl", "list", plist.stem],
        ["launchctl", "bootstrap", f"gui/{os.getuid()}", str(plist)],
        ["launchctl", "load", "-w", str(plist)],
    ]


def test_uninstall_boots_out_and_removes_files(fakes, monkeypatch, auto_home):
    not_loaded(fakes)
    mac("install", fakes, monkeypatch)
    plist = installed_plist(fakes)
    (auto_home / "output" / "logs" / "auto" / "auto.log").write_text("kept\n")
    fakes.reset()  # loaded
    mac("uninstall", fakes, monkeypatch)
    assert fakes.calls() == [
        ["launchctl", "print", f"gui/{os.getuid()}/{plist.stem}"],
        ["launchctl", "bootout", f"gui/{os.getuid()}/{plist.stem}"],
    ]
    assert not plist.exists() and not (fakes.user_home / "bin" / "auto").exists()
    assert (auto_home / "output" / "logs" / "auto" / "auto.log").read_text() == "kept\n"


def test_uninstall_keeps_wrapper_while_another_home_is_installed(fakes, monkeypatch, tmp_path):
    not_loaded(fakes)
    other = Home(tmp_path / "other-home")
    mac("install", fakes, monkeypatch)
    mac("install", fakes, monkeypatch, home=other)
    assert len(list(agents(fakes).iterdir())) == 2  # two homes, two distinct labels
    mac("uninstall", fakes, monkeypatch)
    assert (fakes.user_home / "bin" / "auto").exists()
    mac("uninstall", fakes, monkeypatch, home=other)
    assert list(agents(fakes).iterdir()) == [] and not (fakes.user_home / "bin" / "auto").exists()


def test_bootstrap_failure_is_one_line_error(fakes, monkeypatch):
    not_loaded(fakes)
    fakes.rule("launchctl", "bootstrap", rc=5, stderr="Bootstrap failed: 5: Input/output error\n")
    fakes.apply(monkeypatch)
    with pytest.raises(AutoError) as err:
        install.main("install", Home(fakes.auto_home), out=Out(), sys_platform="darwin")
    msg = str(err.value)
    assert "\n" not in msg
    assert re.fullmatch(r"launchctl bootstrap gui/\d+ \S+\.plist failed \(exit 5\): "
                        r"Bootstrap failed: 5: Input/output error", msg), msg


def test_bootout_not_loaded_race_is_tolerated(fakes, monkeypatch):
    """print said loaded, but the job went away before bootout: exit 3 is fine."""
    fakes.rule("launchctl", "bootout", rc=3, stderr="Boot-out failed: 3: No such process\n")
    mac("install", fakes, monkeypatch)
    assert [c[1] for c in fakes.calls()] == ["print", "bootout", "bootstrap"]


def test_default_home_uses_plain_label_and_unit_name(fakes, monkeypatch):
    import platformdirs

    from auto_core.service import install_linux, install_macos

    default = Home.resolve(platformdirs.user_state_dir("auto"))
    assert str(default.root).startswith(str(fakes.user_home))  # follows HOME
    ctx = install.Ctx(home=default, platform="macos", can_query=False, dry_run=True, out=Out())
    assert install_macos.label(ctx) == "io.github.auto-pm.watch"
    assert install_linux.unit_name(ctx) == "auto-watch.service"
    other = install.Ctx(home=Home(fakes.auto_home), platform="macos", can_query=False,
                        dry_run=True, out=Out())
    assert LABEL_RE.fullmatch(install_macos.label(other))
    assert re.fullmatch(r"auto-watch-[0-9a-f]{8}\.service", install_linux.unit_name(other))


def test_templates_found_in_dev_checkout():
    text = install_common.template("watch.plist.template")
    assert "${program_arguments}" in text


def test_status_asks_launchctl(fakes, monkeypatch):
    not_loaded(fakes)
    mac("install", fakes, monkeypatch)
    label = installed_plist(fakes).stem
    fakes.reset()  # loaded
    fakes.apply(monkeypatch)
    out = Out()
    install.status(Home(fakes.auto_home), out, sys_platform="darwin")
    assert f"service:  installed and loaded ({label}, " in out.text
    assert "problem:  LaunchAgent" not in out.text
    not_loaded(fakes)
    fakes.apply(monkeypatch)
    out = Out()
    assert install.status(Home(fakes.auto_home), out, sys_platform="darwin") == 1
    assert f"problem:  LaunchAgent {label} is not loaded (auto install loads it)" in out.lines
    assert ["launchctl", "print", f"gui/{os.getuid()}/{label}"] in fakes.calls()
