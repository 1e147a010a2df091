"""`auto install` / `uninstall` on Linux through the real CLI, with recording fakes of
systemctl and loginctl on PATH (this machine has no systemd user manager) and HOME redirected."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys

from fakes.harness import Fakes
from helpers import run_cli, systemd_analyze_verify

UNIT_RE = re.compile(r"auto-watch-[0-9a-f]{8}\.service")


def cli(fakes: Fakes, *args: str, **env: str):
    return run_cli(*args, env={**fakes.env(), **env})


def unit_dir(fakes: Fakes):
    return fakes.user_home / ".config" / "systemd" / "user"


def installed_unit(fakes: Fakes):
    units = list(unit_dir(fakes).iterdir())
    assert len(units) == 1 and UNIT_RE.fullmatch(units[0].name), units
    return units[0]


def fresh_answers(fakes: Fakes) -> None:
    fakes.rule("systemctl", "--user", "is-active", rc=3, stdout="inactive\n")
    fakes.rule("systemctl", "--user", "is-enabled", rc=1, stdout="disabled\n")
    fakes.rule("loginctl", "show-user", stdout="Linger=no\n")


def running_answers(fakes: Fakes) -> None:
    fakes.rule("systemctl", "--user", "is-active", stdout="active\n")
    fakes.rule("systemctl", "--user", "is-enabled", stdout="enabled\n")
    fakes.rule("loginctl", "show-user", stdout="Linger=yes\n")


def user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def test_install_writes_unit_and_wrapper_then_enables(fakes, auto_home):
    fresh_answers(fakes)
    r = cli(fakes, "install")
    assert r.returncode == 0, r.stderr
    unit = installed_unit(fakes)
    assert fakes.calls() == [
        ["systemctl", "--user", "is-active", unit.name],
        ["systemctl", "--user", "is-enabled", unit.name],
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", unit.name],
        ["loginctl", "show-user", user(), "-p", "Linger"],
    ]
    assert f"loginctl enable-linger {user()}" in r.stdout
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    text = unit.read_text()
    # A login watcher: it takes over from one a command started on demand.
    assert f'ExecStart="{os.path.abspath(sys.executable)}" "-u" "-m" "auto_core" "watch" "--login"' in text.splitlines()
    for line in ("Restart=always", "KillMode=process", f'Environment="AUTO_HOME={auto_home}"',
                 f'Environment="PATH={fakes.path}"',
                 f"StandardOutput=append:{auto_home}/output/logs/auto/auto.log",
                 f"StandardError=append:{auto_home}/output/logs/auto/auto.log"):
        assert line in text.splitlines(), line
    assert (auto_home / "output" / "logs" / "auto").is_dir()  # systemd creates the file, not the dir

    wrapper = fakes.user_home / "bin" / "auto"
    assert stat.S_IMODE(wrapper.stat().st_mode) == 0o755
    ran = subprocess.run([str(wrapper), "--version"], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0 and ran.stdout.startswith("auto "), ran
    assert "is not on your PATH" in r.stdout  # ~/bin of the temp home is not on PATH


def test_wrapper_hint_absent_when_bin_on_path(fakes):
    fresh_answers(fakes)
    r = cli(fakes, "install", PATH=f"{fakes.path}{os.pathsep}{fakes.user_home / 'bin'}")
    assert r.returncode == 0, r.stderr
    assert "is not on your PATH" not in r.stdout


def test_reinstall_unchanged_and_active_touches_nothing(fakes):
    fresh_answers(fakes)
    assert cli(fakes, "install").returncode == 0
    unit = installed_unit(fakes)
    before = unit.stat()
    fakes.reset()
    running_answers(fakes)
    r = cli(fakes, "install")
    assert r.returncode == 0, r.stderr
    assert fakes.calls() == [  # queries only: no daemon-reload, enable, restart
        ["systemctl", "--user", "is-active", unit.name],
        ["systemctl", "--user", "is-enabled", unit.name],
        ["loginctl", "show-user", user(), "-p", "Linger"],
    ]
    assert unit.stat().st_ino == before.st_ino and unit.stat().st_mtime_ns == before.st_mtime_ns
    assert "watcher left running" in r.stdout
    assert "enable-linger" not in r.stdout  # lingering is on


def test_reinstall_with_changed_unit_restarts_only_the_watcher(fakes):
    fresh_answers(fakes)
    assert cli(fakes, "install").returncode == 0
    fakes.reset()
    running_answers(fakes)
    new_path = f"{fakes.path}{os.pathsep}/opt/new-tool/bin"
    r = cli(fakes, "install", PATH=new_path)
    assert r.returncode == 0, r.stderr
    unit = installed_unit(fakes)
    assert fakes.calls() == [
        ["systemctl", "--user", "is-active", unit.name],
        ["systemctl", "--user", "is-enabled", unit.name],
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", unit.name],
        ["systemctl", "--user", "restart", unit.name],
        ["loginctl", "show-user", user(), "-p", "Linger"],
    ]
    assert f'Environment="PATH={new_path}"' in unit.read_text().splitlines()


def test_uninstall_reverses_install_and_keeps_state_and_logs(fakes, auto_home):
    assert cli(fakes, "add", "--no-start", "svc", "sleep 100").returncode == 0
    fresh_answers(fakes)
    assert cli(fakes, "install").returncode == 0
    unit = installed_unit(fakes)
    state_before = (auto_home / "local" / "state.json").read_bytes()
    fakes.reset()
    running_answers(fakes)
    r = cli(fakes, "uninstall")
    assert r.returncode == 0, r.stderr
    assert fakes.calls() == [
        ["systemctl", "--user", "is-active", unit.name],
        ["systemctl", "--user", "disable", "--now", unit.name],
        ["systemctl", "--user", "daemon-reload"],
    ]
    assert not unit.exists()
    assert not (fakes.user_home / "bin" / "auto").exists()
    assert (auto_home / "local" / "state.json").read_bytes() == state_before
    assert (auto_home / "output" / "logs" / "auto").is_dir()
    # Uninstalling again is harmless and runs nothing.
    fakes.reset()
    running_answers(fakes)
    again = cli(fakes, "uninstall")
    assert again.returncode == 0 and fakes.calls() == [], (again.stderr, fakes.calls())


def test_foreign_wrapper_is_left_alone(fakes):
    wrapper = fakes.user_home / "bin" / "auto"
    wrapper.parent.mkdir()
    wrapper.write_text("#!/bin/sh\necho mine\n")
    fresh_answers(fakes)
    r = cli(fakes, "install")
    assert r.returncode == 0, r.stderr
    assert "was not written by auto; left alone" in r.stderr
    assert cli(fakes, "uninstall").returncode == 0
    assert wrapper.read_text() == "#!/bin/sh\necho mine\n"


def test_systemctl_error_is_one_clear_line(fakes):
    fresh_answers(fakes)
    fakes.rule("systemctl", "--user", "daemon-reload", rc=1,
               stderr="Failed to connect to bus: No medium found\n")
    r = cli(fakes, "install")
    assert r.returncode == 1
    assert r.stderr == ("auto: error: systemctl --user daemon-reload failed (exit 1):"
                        " Failed to connect to bus: No medium found\n")


def test_missing_systemctl_is_a_clear_error(fakes, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    r = cli(fakes, "install", PATH=str(empty))
    assert r.returncode == 1
    assert r.stderr == ("auto: error: systemctl --user cannot be used here (systemctl not found"
                        " on PATH); nothing was installed (run the watcher yourself: auto watch)\n")
    assert list(fakes.user_home.iterdir()) == []


def test_no_user_manager_installs_nothing(fakes):
    """This machine's real answer: no bus. Refuse before writing, so nothing is half-installed."""
    fakes.rule("systemctl", "--user", rc=1, stderr="Failed to connect to bus: No medium found\n")
    r = cli(fakes, "install")
    assert r.returncode == 1
    assert r.stderr == ("auto: error: systemctl --user cannot be used here (Failed to connect to bus:"
                        " No medium found); nothing was installed (run the watcher yourself: auto watch)\n")
    assert list(fakes.user_home.iterdir()) == []
    assert [c[2] for c in fakes.calls()] == ["is-active"]


def test_uninstall_without_user_manager_removes_the_file(fakes):
    fresh_answers(fakes)
    assert cli(fakes, "install").returncode == 0
    unit = installed_unit(fakes)
    fakes.reset()
    fakes.rule("systemctl", "--user", rc=1, stderr="Failed to connect to bus: No medium found\n")
    r = cli(fakes, "uninstall")
    assert r.returncode == 0, r.stderr
    assert "removing the unit file only" in r.stderr
    assert not unit.exists() and not (fakes.user_home / "bin" / "auto").exists()
    assert [c[2] for c in fakes.calls()] == ["is-active"]


def test_dry_run_prints_the_plan_and_changes_nothing(fakes, auto_home):
    fresh_answers(fakes)
    r = cli(fakes, "install", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert list(fakes.user_home.iterdir()) == []
    assert not auto_home.exists()
    assert re.search(r"would write \S+/\.config/systemd/user/auto-watch-[0-9a-f]{8}\.service", r.stdout)
    assert "KillMode=process" in r.stdout
    assert re.search(r"would run: systemctl --user enable --now auto-watch-[0-9a-f]{8}\.service", r.stdout)
    assert "would write" in r.stdout and "bin/auto (mode 0755)" in r.stdout
    assert {c[1] if c[0] == "systemctl" else c[0] for c in fakes.calls()} <= {"--user", "loginctl"}
    assert all(c[2] in ("is-active", "is-enabled") for c in fakes.calls() if c[0] == "systemctl")


def test_dry_run_uninstall_changes_nothing(fakes):
    fresh_answers(fakes)
    assert cli(fakes, "install").returncode == 0
    unit = installed_unit(fakes)
    fakes.reset()
    running_answers(fakes)
    r = cli(fakes, "uninstall", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert f"would run: systemctl --user disable --now {unit.name}" in r.stdout
    assert f"would remove {unit}" in r.stdout
    assert unit.exists() and (fakes.user_home / "bin" / "auto").exists()
    assert fakes.calls() == [["systemctl", "--user", "is-active", unit.name]]  # a query only


def test_other_platform_without_dry_run_is_refused(fakes):
    r = cli(fakes, "install", "--platform", "macos")
    assert r.returncode == 1
    assert r.stderr == ("auto: error: --platform macos is not this machine (linux);"
                        " add --dry-run to render for it\n")
    assert list(fakes.user_home.iterdir()) == [] and fakes.calls() == []


def test_dry_run_for_macos_renders_the_plist_on_linux(fakes):
    r = cli(fakes, "install", "--dry-run", "--platform", "macos")
    assert r.returncode == 0, r.stderr
    assert re.search(r"would write \S+/Library/LaunchAgents/io\.github\.auto-pm\.watch\.[0-9a-f]{8}\.plist", r.stdout)
    assert "<key>AbandonProcessGroup</key>" in r.stdout
    assert "would run: launchctl bootstrap gui/" in r.stdout
    assert fakes.calls() == []  # launchctl is never asked on a machine that is not a Mac
    assert list(fakes.user_home.iterdir()) == []


def test_rendered_unit_passes_systemd_analyze_verify(fakes, tmp_path, monkeypatch):
    # A home with a space, %, $ and quotes exercises the quoting of every setting.
    odd_home = tmp_path / 'odd home %n $USER "q"'
    monkeypatch.setenv("AUTO_HOME", str(odd_home))
    fresh_answers(fakes)
    r = cli(fakes, "install", AUTO_HOME=str(odd_home))
    assert r.returncode == 0, r.stderr
    unit = installed_unit(fakes)
    checked = systemd_analyze_verify(unit)
    assert checked.returncode == 0, checked.stderr
    # verify exits 0 even when it ignores a bad line: any message about our file is a failure.
    assert unit.name not in checked.stderr, checked.stderr
    assert 'Environment="AUTO_HOME=' + str(odd_home).replace("%", "%%").replace('"', '\\"') + '"' \
        in unit.read_text().splitlines()


def test_verify_check_would_catch_a_bad_unit(fakes, tmp_path):
    """The assertion above has teeth: a broken setting shows up on stderr."""
    fresh_answers(fakes)
    assert cli(fakes, "install").returncode == 0
    unit = installed_unit(fakes)
    broken = tmp_path / unit.name
    broken.write_text(unit.read_text().replace("KillMode=process", "KillMode=bogus"))
    checked = systemd_analyze_verify(broken)
    assert unit.name in checked.stderr


def unit_words(text: str, key: str) -> list[list[str]]:
    """The values of ``key=`` lines split the way systemd does for our quoting subset."""
    import shlex

    return [[w.replace("%%", "%").replace("$$", "$") for w in shlex.split(line[len(key) + 1:])]
            for line in text.splitlines() if line.startswith(f"{key}=")]


def test_unit_exec_start_really_runs_the_watcher(fakes, auto_home, watcher):
    """Run ExecStart with the unit's Environment= exactly as systemd would: it takes the lock."""
    from auto_core.store import watchlock
    from auto_core.store.paths import Home

    fresh_answers(fakes)
    assert cli(fakes, "install").returncode == 0
    text = installed_unit(fakes).read_text()
    (argv,) = unit_words(text, "ExecStart")
    env = dict(w.split("=", 1) for (w,) in unit_words(text, "Environment"))
    assert set(env) == {"PATH", "AUTO_HOME"}
    log = auto_home / "output" / "logs" / "auto" / "auto.log"
    w = watcher(out=log, argv=argv, env=env, cwd="/")  # returns once it says it started
    assert watchlock.holder(Home(auto_home)) == w.pid


def test_missing_loginctl_is_tolerated(fakes, tmp_path):
    only_systemctl = tmp_path / "only-systemctl"
    only_systemctl.mkdir()
    stub = only_systemctl / "systemctl"
    stub.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fakes.path.split(os.pathsep)[0]}/../fakecmd.py"'
                    ' systemctl "$@"\n')
    stub.chmod(0o755)
    fresh_answers(fakes)
    r = cli(fakes, "install", PATH=str(only_systemctl))
    assert r.returncode == 0, r.stderr
    assert [c[0] for c in fakes.calls()] == ["systemctl"] * 4
    assert "linger" not in r.stdout and r.stderr == ""


def test_refused_install_creates_no_log_dir(fakes, auto_home):
    fakes.rule("systemctl", "--user", rc=1, stderr="Failed to connect to bus: No medium found\n")
    assert cli(fakes, "install").returncode == 1
    assert not auto_home.exists()
