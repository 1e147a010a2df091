"""Issue 6, scenario 5: disk and filesystem faults.

- a file-size limit (RLIMIT_FSIZE) on the writer: the state write fails cleanly, the old state
  stays whole, no temp file is left behind; a service under the limit dies of SIGXFSZ;
- the log directory (a service's, or ``output/logs`` itself) replaced by a file;
- ``state.json`` replaced by a directory;
- ``local/`` read-only, checked as a non-root user (we run as root, which ignores modes).

The watcher's side of each fault (it keeps running, records the failure) is in
``test_faults_watcher.py``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import auto, pid_alive, read_state, wait_until

SLEEP = "sleep 1000"


def assert_one_error(code: int, err: str, expected: int = 1) -> str:
    assert code == expected, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("auto: error: "), err
    assert "Traceback" not in err
    return lines[0]


def run_limited(home: Path, *argv: str, fsize: int) -> subprocess.CompletedProcess:
    """The real CLI in a process whose files may not grow beyond ``fsize`` bytes."""

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-m", "auto_core", *argv], capture_output=True, text=True,
                          env=dict(os.environ, AUTO_HOME=str(home)), preexec_fn=limit, timeout=60)


def test_state_write_beyond_the_file_size_limit_fails_cleanly(capsys, home):
    for i in range(6):
        assert auto(capsys, "add", f"svc{i}", SLEEP, "--no-start", "--env", f"PAD={'x' * 200}")[0] == 0
    before = home.state_file.read_bytes()
    assert len(before) > 2048
    r = run_limited(home.root, "add", "one-more", SLEEP, "--no-start", fsize=1024)
    line = assert_one_error(r.returncode, r.stderr)
    assert "cannot write" in line and "too large" in line.lower()
    assert home.state_file.read_bytes() == before
    assert home.state_bak.read_bytes() == before
    assert not list(home.local.glob(".*.tmp")), "a failed write left its temp file"
    # Lifted limit: the same command works and nothing was lost.
    assert auto(capsys, "add", "one-more", SLEEP, "--no-start")[0] == 0
    assert sorted(read_state(home.root)["processes"]) == sorted([f"svc{i}" for i in range(6)] + ["one-more"])


def test_start_under_the_file_size_limit_spawns_nothing(capsys, home):
    """The claim cannot be written, so nothing is spawned (intent before action)."""
    for i in range(6):
        assert auto(capsys, "add", f"svc{i}", SLEEP, "--no-start", "--env", f"PAD={'x' * 200}")[0] == 0
    before = home.state_file.read_bytes()
    r = run_limited(home.root, "start", "svc0", fsize=1024)
    assert_one_error(r.returncode, r.stderr)
    assert home.state_file.read_bytes() == before
    assert not any(p.is_file() for p in (home.root / "output" / "logs").rglob("*.log")) if \
        (home.root / "output" / "logs").exists() else True


def test_service_whose_log_cannot_grow_dies_of_sigxfsz(capsys, home):
    """RLIMIT_FSIZE in the child: the service is killed by SIGXFSZ at the limit, its log file
    holds the header and stops at the limit, auto reports it dead."""
    cmd = "ulimit -f 2; while :; do echo 0123456789abcdef0123456789abcdef; done"
    assert auto(capsys, "add", "chatty", cmd)[0] == 0
    pid = read_state(home.root)["processes"]["chatty"]["pid"]
    wait_until(lambda: not pid_alive(pid), 10, message="chatty to hit the size limit")
    log = Path(read_state(home.root)["processes"]["chatty"]["log_path"])
    assert log.stat().st_size == 2 * 512
    assert log.read_text().startswith("[auto] start chatty pid ")
    code, out, _ = auto(capsys, "-q", "ps")
    assert out.splitlines()[1].split()[:2] == ["chatty", "dead"]


@pytest.mark.parametrize("what", ["service-dir", "logs-root", "month-dir"])
def test_log_directory_replaced_by_a_file(capsys, home, what):
    assert auto(capsys, "add", "web", SLEEP, "--no-start")[0] == 0
    logs_root = home.root / "output" / "logs"
    logs_root.mkdir(parents=True, exist_ok=True)
    if what == "service-dir":
        blocker = logs_root / "web"
    elif what == "logs-root":
        shutil.rmtree(logs_root)
        blocker = logs_root
    else:
        import datetime

        now = datetime.datetime.now()
        (logs_root / "web" / f"{now:%Y}").mkdir(parents=True)
        blocker = logs_root / "web" / f"{now:%Y}" / f"{now:%m}"
    blocker.write_text("not a directory\n")

    code, _, err = auto(capsys, "start", "web")
    line = assert_one_error(code, err)
    assert "cannot create the log file for web" in line
    assert blocker.read_text() == "not a directory\n"
    entry = read_state(home.root)["processes"]["web"]
    assert entry.get("starting_since") is None and not entry.get("pid")
    assert "cannot create the log file" in entry["last_exit"]["error"]
    code, out, _ = auto(capsys, "-q", "ps")
    assert code == 0 and out.splitlines()[1].split()[:2] == ["web", "dead"]

    blocker.unlink()
    code, _, err = auto(capsys, "start", "web")
    assert code == 0, err
    assert pid_alive(read_state(home.root)["processes"]["web"]["pid"])


def test_state_file_replaced_by_a_directory(capsys, home):
    assert auto(capsys, "add", "web", SLEEP, "--no-start", "--port", "8123")[0] == 0
    home.state_file.unlink()
    home.state_file.mkdir()
    (home.state_file / "inside").write_text("keep me")

    code, out, err = auto(capsys, "-q", "ps")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["web", "stopped", "8123"]
    assert err.startswith("auto: warning: ") and "is a directory" in err
    assert auto(capsys, "add", "db", SLEEP, "--no-start")[0] == 0
    assert sorted(read_state(home.root)["processes"]) == ["db", "web"]
    kept = list(home.local.glob("state.json.corrupt-*"))
    assert len(kept) == 1 and (kept[0] / "inside").read_text() == "keep me"


def test_state_file_replaced_by_a_directory_without_backup(capsys, home):
    home.state_file.parent.mkdir(parents=True)
    home.state_file.mkdir()
    code, _, err = auto(capsys, "add", "db", SLEEP, "--no-start")
    assert "is a directory" in assert_one_error(code, err)
    assert home.state_file.is_dir() and not home.state_bak.exists()


NOBODY = 65534


@pytest.fixture
def nobody_home():
    """An AUTO_HOME owned by the unprivileged user ``nobody``."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to switch to an unprivileged user")
    base = Path(tempfile.mkdtemp(prefix="auto-nobody-"))
    os.chmod(base, 0o755)
    _readable_copy_of_code(base / "src")
    home = base / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    yield home
    pids = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and f"AUTO_HOME={home}".encode() in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                pids.append(int(entry))
        except OSError:
            pass
    for pid in pids:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except OSError:
            pass
    os.chmod(home / "local", 0o700) if (home / "local").exists() else None
    shutil.rmtree(base, ignore_errors=True)


def _readable_copy_of_code(src: Path) -> None:
    """The checkout (and its venv) may sit under a directory only root can enter (CI clones
    into a mktemp dir): give ``nobody`` its own world-readable copy of the code it runs."""
    import platformdirs
    import psutil

    import auto_core

    for module in (auto_core, psutil, platformdirs):
        shutil.copytree(Path(module.__file__).parent, src / module.__name__,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for path in [src, *src.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def run_as_nobody(home: Path, *argv: str) -> subprocess.CompletedProcess:
    src = home.parent / "src"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AUTO_HOME": str(home), "HOME": str(home),
           "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"}
    # setpriv rather than Popen(user=...): the interpreter lives under /root, which Popen's
    # own setuid path cannot exec on this machine; setpriv drops every capability too.
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    python = os.path.realpath(sys.executable)  # the base interpreter, outside the venv
    return subprocess.run([*drop, python, "-s", "-m", "auto_core", *argv], capture_output=True,
                          text=True, env=env, cwd=str(src), timeout=60)


def test_read_only_local_dir_for_a_non_root_user(nobody_home):
    r = run_as_nobody(nobody_home, "add", "web", SLEEP, "--no-start", "--workdir", "/")
    assert r.returncode == 0, r.stderr
    local = nobody_home / "local"
    assert (local / "state.json").stat().st_uid == NOBODY  # really written as non-root
    before = (local / "state.json").read_bytes()
    os.chmod(local, 0o500)

    r = run_as_nobody(nobody_home, "-q", "ps")
    assert r.returncode == 0 and r.stdout.splitlines()[1].split()[:2] == ["web", "stopped"], r.stderr
    for argv in (["add", "db", SLEEP, "--no-start", "--workdir", "/"], ["start", "web"],
                 ["update", "web", "--port", "8080"], ["remove", "web"]):
        r = run_as_nobody(nobody_home, *argv)
        line = assert_one_error(r.returncode, r.stderr)
        assert "permission denied" in line.lower(), line
        assert (local / "state.json").read_bytes() == before
    # start failed before spawning: no process of this home exists
    assert not (nobody_home / "output").exists() or not list((nobody_home / "output").rglob("*.log"))
    assert json.loads(before)["processes"]["web"]["explicitly_stopped"] is True


def test_a_workdir_the_user_cannot_enter_is_an_error_at_start_not_a_crash_loop(nobody_home):
    workdir = nobody_home.parent / "wd"
    workdir.mkdir(mode=0o755)
    r = run_as_nobody(nobody_home, "add", "web", SLEEP, "--no-start", "--workdir", str(workdir))
    assert r.returncode == 0, r.stderr
    os.chmod(workdir, 0o700)  # root's now: nobody cannot enter it
    r = run_as_nobody(nobody_home, "start", "web")
    line = assert_one_error(r.returncode, r.stderr)
    assert f"workdir {workdir} cannot be entered" in line, line
    entry = json.loads((nobody_home / "local" / "state.json").read_text())["processes"]["web"]
    assert entry["pid"] is None and "cannot be entered" in entry["last_exit"]["error"]
