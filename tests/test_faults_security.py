"""File modes, names, symlinks and shell injection.

- state and log files are 0600 and directories 0700 whatever the umask of the caller;
- no name can place a file outside ``output/logs/<name>/``;
- a symlink planted at a log file's path is never followed;
- name, port, workdir and env values never reach a shell string: only the user's own command
  is run by ``/bin/sh -c``.
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers import auto, pid_alive, read_state, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auto_core import validate
from auto_core.errors import UsageError
from auto_core.lifecycle import Api
from auto_core.logtree import logs


def run_with_umask(home: Path, umask: int, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "auto_core", *argv], capture_output=True, text=True,
                          env=dict(os.environ, AUTO_HOME=str(home)), timeout=60,
                          preexec_fn=lambda: os.umask(umask))


def modes_under(root: Path) -> dict[str, int]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o002, 0o077, 0o277])
@pytest.mark.slow
def test_modes_whatever_the_umask(home, umask):
    for argv in (["add", "web", "sleep 1000", "--workdir", "/"], ["stop", "web"], ["start", "web"],
                 ["restart", "web"], ["update", "web", "--port", "8080"], ["stop", "web"]):
        r = run_with_umask(home.root, umask, *argv)
        assert r.returncode == 0, (argv, r.stderr)
    found = modes_under(home.root)
    assert any(p.endswith(".log") for p in found) and "local/state.json" in found
    assert "local/state.json.bak" in found and "local/state.lock" in found
    wrong = {p: oct(m) for p, m in found.items()
             if m != (0o700 if (home.root / p).is_dir() else 0o600)}
    assert wrong == {}, f"umask {oct(umask)}: wrong modes {wrong}"


@given(name=st.one_of(
    st.text(min_size=0, max_size=80),
    st.text(alphabet="./-_ \\\n\x00aZ09~$`'\"*?", min_size=1, max_size=12),
    st.sampled_from(["..", ".", "../x", "a/b", "/abs", "a/../../b", "~root", "-rf", "a" * 65,
                     "x\x00y", "a\nb", " a", "é", "..a", "a..", "a..b"]),
))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_name_places_a_file_outside_its_log_dir(home, name):
    try:
        validate.name(name)
    except UsageError:
        return  # refused names never reach the file system
    path, fd = logs.create_run_log(home, name, datetime(2026, 1, 2, 3, 4, 5))
    os.close(fd)
    base = (home.root / "output" / "logs" / name).resolve()
    assert path.resolve().parent.parent.parent == base
    assert base.parent == (home.root / "output" / "logs").resolve()
    path.unlink()


@pytest.mark.parametrize("name", ["../../evil", "a/b", "..", ".", "/etc", "-n", "a b", "$(id)", "x" * 65])
def test_bad_names_are_refused_and_create_nothing(capsys, home, tmp_path, name):
    code, _, err = auto(capsys, "add", "--workdir", "/", "--", name, "true")
    assert code == 2 and err.startswith("auto: error: invalid name") and len(err.splitlines()) == 1
    assert not (home.root / "output").exists()
    assert not list(tmp_path.glob("evil*")) and not (home.root.parent / "evil").exists()


def test_odd_but_valid_names_log_inside_their_dir(capsys, home):
    for name in ("a..b", "x" * 64, "A.-_9", "0"):
        assert auto(capsys, "add", name, "sleep 1000", "--workdir", "/", "--wait", "0")[0] == 0
        log = Path(read_state(home.root)["processes"][name]["log_path"])
        assert log.resolve().is_relative_to((home.root / "output" / "logs" / name).resolve())


def test_planted_symlink_at_the_log_path_is_not_followed(home, tmp_path):
    """Symlinks planted for every file name the next few seconds could produce: the start
    writes a fresh regular file and the symlink targets stay untouched."""
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    now = datetime.now()
    planted = []
    for delta in range(0, 8):
        when = now + timedelta(seconds=delta)
        directory = home.root / "output" / "logs" / "web" / f"{when:%Y}" / f"{when:%m}"
        directory.mkdir(parents=True, exist_ok=True)
        link = directory / f"web_{when:%y%m%d_%H%M%S}.log"
        link.symlink_to(target)
        planted.append(link)
    api = Api(home)
    out = api.add("web", "echo hello-from-web; sleep 1000", workdir="/")
    assert out.ok, out.message
    log = Path(api.entry("web")["log_path"])
    assert not log.is_symlink() and log.is_file() and log not in planted
    wait_until(lambda: "\nhello-from-web" in log.read_text(), 10, message="service output")
    assert target.read_text() == "precious\n"

    # The stop marker is appended with O_NOFOLLOW too: swap the live log for a symlink.
    log.unlink()
    log.symlink_to(target)
    assert api.stop(["web"])[0].ok
    assert target.read_text() == "precious\n"


def test_create_run_log_never_opens_an_existing_path(home, tmp_path):
    when = datetime(2026, 3, 4, 5, 6, 7)
    target = tmp_path / "victim"
    target.write_text("x")
    first = home.root / "output/logs/svc/2026/03/svc_260304_050607.log"
    first.parent.mkdir(parents=True)
    first.symlink_to(target)
    (first.parent / "svc_260304_050607_1.log").symlink_to(tmp_path / "dangling")
    path, fd = logs.create_run_log(home, "svc", when)
    os.write(fd, b"data")
    os.close(fd)
    assert path.name == "svc_260304_050607_2.log" and not path.is_symlink()
    assert target.read_text() == "x" and not (tmp_path / "dangling").exists()


def test_workdir_and_env_values_never_reach_a_shell(home, tmp_path):
    token = secrets.token_hex(6)
    pwned = [Path(f"/tmp/pwned-{token}-{i}") for i in range(4)]
    # A workdir whose path would run a command if it were ever spliced into a shell string.
    workdir = Path(str(tmp_path) + f"/w'\"$(touch {pwned[0]})`touch {pwned[1]}`;x")
    workdir.mkdir(parents=True)
    evil_env = f"$(touch {pwned[2]})'\"; touch {pwned[3]}; echo \""
    api = Api(home)
    try:
        out = api.add("inj", 'printf "PWD=%s\\nEVIL=%s\\n" "$PWD" "$EVIL"; sleep 1000',
                      workdir=str(workdir), env={"EVIL": evil_env}, port=None)
        assert out.ok, out.message
        log = Path(api.entry("inj")["log_path"])
        # (the header line quotes the command, which contains "EVIL=%s": wait for the output)
        wait_until(lambda: "\nEVIL=" in log.read_text(), 10, message="service output")
        text = log.read_text()
        assert f"PWD={workdir}\n" in text and f"EVIL={evil_env}\n" in text
        for verb in (api.restart, api.stop, api.start):
            assert verb(["inj"])[0].ok
        assert api.update("inj", port="8099").ok
        assert api.remove("inj").ok
        assert not [p for p in pwned if p.exists()], "a workdir or env value was executed"
    finally:
        for p in pwned:
            p.unlink(missing_ok=True)


def test_the_header_shows_the_command_without_running_it_twice(home, tmp_path):
    """The log header quotes the user's command via printf %s: a command that counts its own
    runs ran exactly once, and name/time never get evaluated."""
    counter = tmp_path / "runs"
    api = Api(home)
    cmd = f"echo run >> '{counter}'; sleep 1000"
    assert api.add("once", cmd, workdir="/").ok
    log = Path(api.entry("once")["log_path"])
    wait_until(lambda: counter.exists(), 10, message="the command to run")
    time.sleep(0.2)  # a second (wrong) evaluation would have happened by now
    assert counter.read_text() == "run\n"
    assert log.read_text().splitlines()[0].endswith(f": {cmd}")
    assert pid_alive(api.entry("once")["pid"])


@pytest.mark.parametrize("umask", [0o000, 0o277])
def test_watcher_files_modes_whatever_the_umask(home, watcher, umask):
    """The watcher's own files (watch.lock, the state it writes, the run logs and their
    directories it creates for the services it spawns) follow the same rule."""
    r = run_with_umask(home.root, 0o022, "add", "web", "sleep 1000", "--workdir", "/", "--no-start")
    assert r.returncode == 0, r.stderr
    w = watcher(umask=umask)
    r = run_with_umask(home.root, umask, "start", "web", "--wait", "0")  # the watcher spawns and writes
    assert r.returncode == 0, r.stderr
    assert "started the watcher" not in r.stderr  # the one started here did it
    w.wait_line(r"^start web pid ")
    assert any(p.endswith(".log") and p.startswith("output/logs/web/") for p in modes_under(home.root))
    found = modes_under(home.root)
    assert "local/watch.lock" in found
    wrong = {p: oct(m) for p, m in found.items() if m != (0o700 if (home.root / p).is_dir() else 0o600)}
    assert wrong == {}, f"umask {oct(umask)}: wrong modes {wrong}"
