"""What the benchmarks share: bounded waits, cleanup of every process they start, the marker
program that stamps its own start, and the three managers set up side by side (auto's watcher,
supervisord, PM2). Linux only (/proc).

Every process a bench starts carries ``BENCH_TAG=<tag>`` in its environment (the watcher, the
services, supervisord and PM2 with their children), so the last step of a cleanup kills
whatever still carries the tag, whatever went wrong before it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from procstats import procs_with_env

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
IDLE_ARGV = ["sleep", "100000"]
IDLE_CMD = " ".join(IDLE_ARGV)


# --- waiting and cleaning up -------------------------------------------------------------------


class Timeout(RuntimeError):
    pass


def wait_for(predicate: Callable[[], object], timeout: float, what: str, step: float = 0.005):
    """``predicate()``'s first true value; ``Timeout`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def on_signals_exit() -> None:
    """SIGTERM and SIGHUP (``timeout``, a closed terminal) unwind like Ctrl-C does, so every
    ``finally`` and ``Cleanup`` stops what it started."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))


def new_tag(label: str) -> str:
    return f"{label}-{os.getpid()}-{os.urandom(3).hex()}"


def kill_tagged(tag: str, timeout: float = 10.0, key: str = "BENCH_TAG") -> int:
    """SIGKILL every process (but this one) whose environment has ``key=tag``, until none is
    left or ``timeout`` passes. Returns how many were found the first time."""
    first = None
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for p in procs_with_env(key, tag) if p != os.getpid()]
        if first is None:
            first = len(pids)
        if not pids or time.monotonic() > deadline:
            return first
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def live_children(pid: int) -> int:
    """How many live (non-zombie) children ``pid`` has, over all its threads."""
    count = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                count += sum(1 for child in fh.read().split() if pid_alive(int(child)))
        except OSError:
            pass
    return count


def end_process(pid: int, grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """``sig``, then SIGKILL if ``pid`` is still there after ``grace`` s; waits until it is gone
    (reaps it when it is our child)."""
    def gone() -> bool:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return True
        except ChildProcessError:
            pass
        return not pid_alive(pid)

    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        gone()
        return
    try:
        wait_for(gone, grace, f"pid {pid} to exit", step=0.01)
    except Timeout:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_for(gone, 10, f"pid {pid} to die after SIGKILL", step=0.01)


class Cleanup:
    """A stack of undo steps run in reverse order on leaving the ``with`` block, whether it
    ends normally, by an exception, Ctrl-C or SIGTERM (see ``on_signals_exit``). A failing
    step is reported and the others still run; Ctrl-C is ignored while they run."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], object]]] = []

    def push(self, what: str, step: Callable[[], object]) -> None:
        self._steps.append((what, step))

    def __enter__(self) -> Cleanup:
        return self

    def __exit__(self, *exc) -> None:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while self._steps:
                what, step = self._steps.pop()
                try:
                    step()
                except BaseException as err:  # noqa: BLE001 - every step must get its turn
                    print(f"cleanup: {what} failed: {err!r}", file=sys.stderr)
        finally:
            signal.signal(signal.SIGINT, previous)


# --- the marker: a program that stamps its own start -------------------------------------------

MARKER_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
/* First action: the wall clock, then one append of "SECONDS.NANOS PID\n" to argv[1]; then
   nothing until a signal ends it, or, given a second argument, exit 1 (a service that crashes
   at once). */
int main(int argc, char **argv) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char line[64];
    int n = snprintf(line, sizeof line, "%lld.%09ld %d\n", (long long)ts.tv_sec, ts.tv_nsec, (int)getpid());
    int fd = argc > 1 ? open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
    if (fd < 0 || write(fd, line, n) != n) return 2;
    close(fd);
    if (argc > 2) return 1;
    for (;;) pause();
}
"""

MARKER_SH = '#!/bin/bash\necho "$EPOCHREALTIME $$" >> "$1"\n[ -n "$2" ] && exit 1\nexec sleep 100000\n'


def build_marker(directory: Path) -> tuple[Path, str]:
    """The marker executable (C, static when the toolchain allows; a bash script using
    ``$EPOCHREALTIME`` without a C compiler) and a word saying which."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        src = directory / "marker.c"
        src.write_text(MARKER_C)
        exe = directory / "marker"
        for extra in (["-static"], []):
            r = subprocess.run([cc, "-O2", *extra, "-o", str(exe), str(src)], capture_output=True)
            if r.returncode == 0:
                return exe, "C, static" if extra else "C"
    exe = directory / "marker.sh"
    exe.write_text(MARKER_SH)
    exe.chmod(0o755)
    return exe, "bash"


class Marks:
    """The lines a marker appended to its file: (wall time, pid), read incrementally."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: list[tuple[float, int]] = []
        self._offset = 0

    def poll(self) -> int:
        """Read what was appended; return how many lines there are."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return 0
        end = data.rfind(b"\n") + 1
        for raw in data[:end].split(b"\n")[:-1]:
            t, pid = raw.split()
            self.lines.append((float(t), int(pid)))
        self._offset += end
        return len(self.lines)

    def wait_more(self, count: int, timeout: float, what: str, step: float = 0.002) -> tuple[float, int]:
        """The line after the first ``count`` ones, once written."""
        wait_for(lambda: self.poll() > count, timeout, what, step=step)
        return self.lines[count]

    @property
    def last(self) -> tuple[float, int] | None:
        return self.lines[-1] if self.lines else None


class Calibrator:
    """The marker's own exec-to-mark cost: seconds from just before a direct spawn of it
    (posix_spawn in a new session, as auto's watcher spawns a plain command) to the mark it
    writes, to subtract from a manager's kill-to-mark latency. Sampled beside the measurement
    it corrects, so it follows the machine's load."""

    def __init__(self, marker: Path, tmp: Path):
        self.marker = marker
        self.marks = Marks(tmp / f"calibration-{os.urandom(3).hex()}.marks")
        self.samples: list[float] = []

    def sample(self) -> float:
        count = self.marks.poll()
        t0 = time.time()
        pid = os.posix_spawn(str(self.marker), [str(self.marker), str(self.marks.path)], os.environ, setsid=True)
        try:
            t, _ = self.marks.wait_more(count, 10, "the calibration mark")
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        self.samples.append(t - t0)
        return t - t0


def calibrate(marker: Path, tmp: Path, reps: int = 21) -> list[float]:
    """``reps`` samples of the marker's exec-to-mark cost (``Calibrator``), in seconds."""
    calibrator = Calibrator(marker, tmp)
    for _ in range(reps):
        calibrator.sample()
    return calibrator.samples


# --- auto --------------------------------------------------------------------------------------


def clean_env(tag: str, **extra: str) -> dict[str, str]:
    """This environment without auto's marks, plus ``BENCH_TAG``; an editable checkout does
    not recompile auto_core on every call (``PYTHONDONTWRITEBYTECODE`` dropped)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("AUTO_HOME", "AUTO_SERVICE", "AUTO_RUN", "AUTO_CLAIM", "PYTHONDONTWRITEBYTECODE")}
    env.update(BENCH_TAG=tag, **extra)
    return env


def define_auto(home_root: Path, services: list[tuple[str, str, dict]], tag: str, workdir: Path) -> None:
    """Define ``services`` (name, command, ``Api.add`` options) without starting them, each
    carrying ``BENCH_TAG``. Many services with one command and options are defined by
    ``Api.add`` of the first and copies of its entry (and captured environment) in one state
    write: 2,000 ``add`` calls rewrite a growing state file 2,000 times (~45 s)."""
    import copy

    from auto_core.lifecycle import Api
    from auto_core.store import environ, state
    from auto_core.store.paths import Home

    home = Home(home_root)
    api = Api(home, warn=lambda m: print(f"auto warning: {m}", file=sys.stderr))
    groups: dict[tuple, list[str]] = {}
    for name, command, options in services:
        key = (command, json.dumps(options, sort_keys=True))
        if key not in groups:
            api.add(name, command, workdir=str(workdir), start=False, env={"BENCH_TAG": tag}, **options)
            groups[key] = [name]
        else:
            groups[key].append(name)
    copies = {first: rest for first, *rest in groups.values() if rest}
    if not copies:
        return
    with state.transaction(home) as data:
        procs = state.processes(data)
        for first, rest in copies.items():
            for name in rest:
                procs[name] = copy.deepcopy(procs[first])
    for first, rest in copies.items():
        captured = environ.load(home, first)
        for name in rest:
            environ.save(home, name, captured or {})


class AutoWatcher:
    """``auto watch`` on a home, started by the bench (not on demand), its output in a file."""

    def __init__(self, home_root: Path, tag: str, out: Path):
        from auto_core.store.paths import Home

        self.home = Home(home_root)
        self.tag = tag
        self.out_path = out
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> int:
        from auto_core.store import watchlock

        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "auto_core", "--home", str(self.home.root), "watch"],
                env=clean_env(self.tag), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        proc = self.proc

        def up():
            if proc.poll() is not None:
                raise RuntimeError(f"the watcher exited ({proc.returncode}):\n{self.output()[-2000:]}")
            return watchlock.holder(self.home) == proc.pid

        wait_for(up, timeout, "the watcher to take its lock")
        return proc.pid

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        try:
            return self.out_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM (services keep running: the caller kills them), SIGKILL after 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            end_process(self.proc.pid)
        self.proc = None


def end_any_watcher(home_root: Path) -> None:
    """Stop whichever watcher holds the home's lock (one started on demand by a command)."""
    from auto_core.store import watchlock
    from auto_core.store.paths import Home

    home = Home(home_root)
    pid = watchlock.holder(home)
    if pid and pid > 1:
        end_process(pid)
        wait_for(lambda: watchlock.holder(home) is None, 10, "the watch lock to be free")


def state_processes(home_root: Path) -> dict:
    with open(home_root / "local" / "state.json") as fh:
        return json.load(fh).get("processes", {})


class StateReader:
    """``state.json``'s processes, parsed again only when the file was replaced."""

    def __init__(self, home_root: Path):
        self.path = str(home_root / "local" / "state.json")
        self._sig: tuple | None = None
        self._procs: dict = {}

    def processes(self) -> dict:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        if sig != self._sig:
            with open(self.path) as fh:
                self._procs = json.load(fh).get("processes", {})
            self._sig = sig
        return self._procs


# --- supervisord -------------------------------------------------------------------------------


def supervisord_exe() -> str | None:
    return shutil.which("supervisord", path=str(BIN)) or shutil.which("supervisord")


class Supervisord:
    """supervisord in the foreground on a config of its own (a unix socket for supervisorctl),
    every program exec'd directly (no ``sh -c``), output to one log file per program."""

    def __init__(self, base: Path, tag: str, programs: list[tuple[str, str]], *, autostart: bool = True,
                 startsecs: int = 0, autorestart: bool = True):
        self.base = base
        self.tag = tag
        base.mkdir(parents=True, exist_ok=True)
        self.conf = base / "supervisord.conf"
        sock = base / "s.sock"
        lines = [
            "[unix_http_server]", f"file={sock}", "",
            "[supervisord]", "nodaemon=true", f"logfile={base}/supervisord.log", f"pidfile={base}/sv.pid",
            f"childlogdir={base}", "loglevel=warn", f"minfds={max(1024, 8 * len(programs) + 256)}", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{sock}", "",
        ]
        for name, command in programs:
            lines += [
                f"[program:{name}]", f"command={command}", f"directory={base}",
                f"autostart={'true' if autostart else 'false'}",
                f"autorestart={'true' if autorestart else 'false'}", f"startsecs={startsecs}",
                "startretries=1000000", "stopasgroup=true", "killasgroup=true",
                f"stdout_logfile={base}/{name}.log", "redirect_stderr=true",
                f'environment=BENCH_TAG="{tag}",BENCH_SVC="{name}"', "",
            ]
        self.conf.write_text("\n".join(lines))
        self.proc: subprocess.Popen | None = None
        self.ctl = [str(BIN / "supervisorctl"), "-c", str(self.conf)]

    def start(self) -> int:
        exe = supervisord_exe()
        assert exe, "supervisord not found"
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], env=clean_env(self.tag), cwd=self.base,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        return self.proc.pid

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def ctl_run(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run([*self.ctl, *args], env=clean_env(self.tag), capture_output=True, text=True,
                              check=check, timeout=600)

    def running(self) -> int:
        return sum(1 for line in self.ctl_run("status").stdout.splitlines() if " RUNNING " in line)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            end_process(self.proc.pid, grace=60)  # SIGTERM: it stops every program first
        self.proc = None


# --- PM2 ---------------------------------------------------------------------------------------


class Pm2:
    """A PM2 daemon of our own: ``PM2_HOME`` in a temp dir, ended by ``pm2 kill`` there (a PM2
    another user runs under ``~/.pm2`` is never touched)."""

    def __init__(self, exe: str, home: Path, tag: str):
        self.exe = exe
        self.home = home
        self.tag = tag
        home.mkdir(parents=True, exist_ok=True)
        self.env = clean_env(tag, PM2_HOME=str(home))

    def run(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
        return subprocess.run([self.exe, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def start_apps(self, apps: list[dict], timeout: float) -> None:
        """``apps``: name, script (an executable exec'd directly), args; each restarts at once
        (``restart_delay 0``), always (``autorestart``), however often (``max_restarts``,
        ``min_uptime 0``)."""
        for app in apps:
            app.update(interpreter="none", autorestart=True, restart_delay=0, max_restarts=10**9,
                       min_uptime=0, cwd=str(self.home), env={"BENCH_TAG": self.tag, "BENCH_SVC": app["name"]})
        eco = self.home / "ecosystem.json"
        eco.write_text(json.dumps({"apps": apps}))
        r = self.run("start", str(eco), timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"pm2 start failed ({r.returncode}): {(r.stderr or r.stdout)[-2000:]}")

    @property
    def pid(self) -> int:
        return int((self.home / "pm2.pid").read_text())

    def kill(self) -> None:
        if not (self.home / "pm2.pid").exists():
            return
        try:
            daemon = self.pid
        except (OSError, ValueError):
            daemon = None
        try:
            self.run("kill", timeout=300)
        except subprocess.TimeoutExpired:
            pass
        if daemon and pid_alive(daemon):
            end_process(daemon, grace=5, sig=signal.SIGKILL)
