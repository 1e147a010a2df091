"""Disk and filesystem faults.

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
from helpers import (
    assert_one_error,
    auto,
    kill_home_processes,
    pid_alive,
    procs_with_env,
    read_state,
    wait_until,
)

SLEEP = "sleep 1000"


def run_limited(home: Path, *argv: str, fsize: int) -> subprocess.CompletedProcess:
    """The real CLI in a process whose files may not grow beyond ``fsize`` bytes."""

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-m", "auto_core", *argv], capture_output=True, text=True,
                          env=dict(os.environ, AUTO_HOME=str(home)), preexec_fn=limit, timeout=60)


def add_padded_services(capsys, home) -> bytes:
    """Six stopped services whose state is well over 1 KiB; that state file's bytes."""
    for i in range(6):
        assert auto(capsys, "add", f"svc{i}", SLEEP, "--no-start", "--env", f"PAD={'x' * 200}")[0] == 0
    return home.state_file.read_bytes()


def test_state_write_beyond_the_file_size_limit_fails_cleanly(capsys, home):
    before = add_padded_services(capsys, home)
    assert len(before) > 2048
    envs = sorted(p.name for p in (home.local / "env").iterdir())

    def unchanged():
        assert home.state_file.read_bytes() == before
        assert home.state_bak.read_bytes() == before
        assert not list(home.local.rglob(".*.tmp")), "a failed write left its temp file"
        assert sorted(p.name for p in (home.local / "env").iterdir()) == envs

    # A change that writes only the state file.
    r = run_limited(home.root, "update", "svc0", "--port", "8080", fsize=1024)
    line = assert_one_error(r.returncode, r.stderr)
    assert "cannot write" in line and "too large" in line.lower()
    unchanged()
    # An add writes the service's environment first (local/env/NAME.json), then the state:
    # whichever write hits the limit first, one clear line and nothing half done.
    r = run_limited(home.root, "add", "one-more", SLEEP, "--no-start", fsize=1024)
    line = assert_one_error(r.returncode, r.stderr)
    env_file = home.local / "env" / "one-more.json"
    assert line == f"auto: error: cannot save the environment of one-more to {env_file}: File too large" \
        or ("cannot write" in line and "too large" in line.lower()), line
    unchanged()
    # Lifted limit: the same commands work and nothing was lost.
    assert auto(capsys, "add", "one-more", SLEEP, "--no-start")[0] == 0
    assert auto(capsys, "update", "svc0", "--port", "8080")[0] == 0
    assert sorted(read_state(home.root)["processes"]) == sorted([f"svc{i}" for i in range(6)] + ["one-more"])
    assert read_state(home.root)["processes"]["svc0"]["port"] == 8080


def test_start_under_the_file_size_limit_spawns_nothing(capsys, home):
    """The start request cannot be written, so nothing is spawned (intent before action)."""
    before = add_padded_services(capsys, home)
    r = run_limited(home.root, "start", "svc0", fsize=1024)
    assert_one_error(r.returncode, r.stderr)
    assert home.state_file.read_bytes() == before
    assert not any(p.is_file() for p in (home.root / "output" / "logs").rglob("*.log")) if \
        (home.root / "output" / "logs").exists() else True


def test_service_whose_log_cannot_grow_dies_of_sigxfsz(capsys, home):
    """RLIMIT_FSIZE in the child: the service is killed by SIGXFSZ at the limit, its log file
    holds the header and stops at the limit (then the watcher's end line, written without the
    limit), and the watcher, its parent, records the signal."""
    cmd = "ulimit -f 2; while :; do echo 0123456789abcdef0123456789abcdef; done"
    assert auto(capsys, "add", "chatty", cmd, "--wait", "0", "--backoff-base", "60")[0] == 0
    pid = read_state(home.root)["processes"]["chatty"]["pid"]
    wait_until(lambda: (read_state(home.root)["processes"]["chatty"].get("last_exit") or {}).get("pid") == pid,
               10, message="chatty to hit the size limit and its end recorded")
    entry = read_state(home.root)["processes"]["chatty"]
    assert not pid_alive(pid)
    assert entry["last_exit"]["signal"] == signal.SIGXFSZ and not entry["last_exit"].get("unknown")
    data = Path(entry["log_path"]).read_bytes()
    assert data.startswith(b"[auto] start chatty pid ")
    assert b"[auto] killed" not in data[:2 * 512]
    assert data[2 * 512:].startswith(b"[auto] killed by SIGXFSZ after "), data[2 * 512:]
    code, out, _ = auto(capsys, "-q", "ps")
    assert code == 0
    assert out.splitlines()[1].split()[:2] == ["chatty", "dead"] and "killed by SIGXFSZ" in out


@pytest.mark.parametrize("what", ["service-dir", "logs-root", "month-dir"])
def test_log_directory_replaced_by_a_file(capsys, home, what):
    # A long backoff: the watcher's own retries do not race the second start below.
    assert auto(capsys, "add", "web", SLEEP, "--no-start", "--backoff-base", "60")[0] == 0
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
    notices = [line for line in err.splitlines() if line.startswith("auto: started the watcher (pid ")]
    assert len(notices) == 1, err
    if what == "logs-root":  # the watcher's own log is under the blocker too: said once, started anyway
        lost = (f"auto: cannot open the watcher's log {home.watcher_log}: Not a directory;"
                " its output is lost")
        assert lost in err.splitlines(), err
        notices.append(lost)
    line = assert_one_error(code, "\n".join(x for x in err.splitlines() if x not in notices))
    assert line == f"auto: error: cannot create the log file for web under {logs_root / 'web'}: Not a directory"
    assert blocker.read_text() == "not a directory\n"
    entry = read_state(home.root)["processes"]["web"]
    assert "request" not in entry and not entry.get("pid")
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
    kill_home_processes(home)
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


def _others_can_run(path: str) -> bool:
    """Whether a user other than the owner may exec ``path``: it and every directory above
    it have the 'others' execute bit."""
    p = Path(path)
    return all(os.stat(d).st_mode & 0o001 for d in [p, *p.parents])


def _nobody_python() -> str:
    """An interpreter (3.11+) that ``nobody`` can exec itself: a face run as nobody starts the
    watcher with its own ``sys.executable``, so the one behind the venv is no use when it sits
    under a directory only root may enter (``/root/.pyenv``)."""
    for candidate in (sys.executable, shutil.which("python3") or "", "/usr/bin/python3"):
        if not candidate:
            continue
        python = os.path.realpath(candidate)  # the base interpreter, outside the venv
        if not os.path.exists(python) or not _others_can_run(python):
            continue
        check = subprocess.run([python, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"])
        if check.returncode == 0:
            return python
    pytest.skip("no Python 3.11+ that an unprivileged user can run")


def run_as_nobody(home: Path, *argv: str) -> subprocess.CompletedProcess:
    src = home.parent / "src"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AUTO_HOME": str(home), "HOME": str(home),
           "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"}
    # setpriv rather than Popen(user=...): it drops every capability too.
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.run([*drop, _nobody_python(), "-s", "-m", "auto_core", *argv], capture_output=True,
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
    """Found before anything is spawned: the start reports it in one line and no process of
    the service runs (the watcher retries only after its backoff)."""
    workdir = nobody_home.parent / "wd"
    workdir.mkdir(mode=0o755)
    r = run_as_nobody(nobody_home, "add", "web", SLEEP, "--no-start", "--workdir", str(workdir))
    assert r.returncode == 0, r.stderr
    os.chmod(workdir, 0o700)  # root's now: nobody cannot enter it
    r = run_as_nobody(nobody_home, "start", "web")
    lines = [x for x in r.stderr.splitlines() if not x.startswith("auto: started the watcher (pid ")]
    line = assert_one_error(r.returncode, "\n".join(lines))
    assert line == f"auto: error: cannot start web: workdir {workdir} cannot be entered (permission denied)", line
    entry = json.loads((nobody_home / "local" / "state.json").read_text())["processes"]["web"]
    assert entry["pid"] is None and "cannot be entered" in entry["last_exit"]["error"]
    assert set(procs_with_env("AUTO_HOME", str(nobody_home))) & set(procs_with_env("AUTO_SERVICE", "web")) == set()
