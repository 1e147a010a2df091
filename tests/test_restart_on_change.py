"""Restart on change (``--restart-on-change``, ``--ignore``): real files, the real watcher and
real services. A burst of saves is one restart, ignored paths none, a stopped service stays
stopped, clearing the option ends the watching thread, and bad paths change nothing. That
nothing happens is shown by a condition that keeps holding, after the watch is shown alive."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import assert_one_error, auto, holds, read_state, run_cli, state_bytes, wait_until

from auto_core.options import DEFAULT_IGNORE
from auto_core.supervisor.changes import DEBOUNCE, Select, describe, plan
from auto_core.views import describe_exit

LINUX = sys.platform == "linux"


def cli_ok(*args: str) -> subprocess.CompletedProcess:
    result = run_cli(*args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def entry(home: Path, name: str) -> dict:
    return read_state(home)["processes"][name]


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def loaded_watchfiles(pid: int) -> bool:
    """The watcher process has watchfiles' native module mapped (it was imported)."""
    with open(f"/proc/{pid}/maps") as fh:
        return "_rust_notify" in fh.read()


@pytest.fixture
def project(tmp_path) -> Path:
    """A service's workdir with a ``src`` folder to watch."""
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    return root


def add_watched(w, auto_home: Path, project: Path, name: str, seconds: int, *extra: str) -> int:
    """Add ``sleep SECONDS`` watching ``src``; its pid once its watch is up."""
    cli_ok("add", name, "--workdir", str(project), "--restart-on-change", "src", *extra,
           "--", "sleep", str(seconds))
    w.wait_line(rf"^{name}: watching {project / 'src'} for changes")
    return entry(auto_home, name)["pid"]


# --- the rules, without processes ---------------------------------------------------------

def test_ignore_globs_match_any_part_below_the_root_or_the_relative_path():
    keep = Select(["/w/src"], ["/w/conf.toml"], DEFAULT_IGNORE + ("*.tmp", "build/*"))
    assert keep(None, "/w/src/app.py") and keep(None, "/w/src/pkg/mod.py")
    assert keep(None, "/w/conf.toml") and not keep(None, "/w/other.toml")
    for dropped in ("/w/src/app.log", "/w/src/__pycache__/x.pyc", "/w/src/pkg/__pycache__/y.py",
                    "/w/src/.git/HEAD", "/w/src/node_modules/a/b.js", "/w/src/x.tmp",
                    "/w/src/build/out.js", "/w/src/build/deep/out.js"):
        assert not keep(None, dropped), dropped
    # Parts above the watched root are not looked at: a project under ~/.git-work still counts.
    assert Select(["/w/.git/src"], [], DEFAULT_IGNORE)(None, "/w/.git/src/app.py")
    assert keep(None, "/w/src/rebuild/x.py")  # build/* is anchored at the root


def test_a_directory_is_watched_recursively_a_file_through_its_folder_alone(tmp_path):
    (tmp_path / "src").mkdir()
    conf = tmp_path / "conf.toml"
    conf.write_text("")
    root, recursive, keep = plan(str(conf), ())
    assert root == str(tmp_path) and not recursive
    assert keep(None, str(conf)) and not keep(None, str(tmp_path / "other.toml"))
    root, recursive, _ = plan(str(tmp_path / "src"), ())
    assert root == str(tmp_path / "src") and recursive
    assert plan(str(tmp_path / "gone"), ()) is None


def test_describe_names_the_first_change_and_counts_the_rest():
    assert describe({"/p/src/app.py"}, "/p") == "src/app.py"
    assert describe({"/p/src/b.py", "/p/src/a.py", "/q/c.py", "/p/src/d.py"}, "/p") == \
        "src/a.py and 3 more"
    assert describe({"/q/c.py"}, "/p") == "/q/c.py"


# --- with the watcher ------------------------------------------------------------------------

@pytest.mark.slow
def test_a_burst_of_saves_is_one_restart_not_counted_as_a_crash(auto_home, watcher, project):
    w = watcher()
    first = add_watched(w, auto_home, project, "dev", 3101)
    last, gaps = time.monotonic(), []
    for i in range(20):  # 20 saves of 4 files, 5 ms apart
        (project / "src" / f"m{i % 4}.py").write_text(f"x = {i}\n")
        now = time.monotonic()
        gaps.append(now - last)
        last = now
        time.sleep(0.005)
    wrote = time.monotonic()
    # One burst as long as no save came DEBOUNCE after the one before (however long all took).
    assert max(gaps[1:]) < DEBOUNCE, f"a save came {max(gaps[1:]):.2f} s after the one before"
    second = int(w.wait_line(r"start dev pid (\d+) \(files changed\)", timeout=15).group(1))
    restarted = time.monotonic() - wrote
    wait_until(lambda: entry(auto_home, "dev").get("pid") == second, message="the restart recorded")
    assert second != first and not os.path.exists(f"/proc/{first}")
    holds(lambda: len(w.lines(r"^dev: files changed")) == 1
          and entry(auto_home, "dev")["pid"] == second, 1.5)
    line = w.lines(r"^dev: files changed")[0]
    assert line == "dev: files changed (src/m0.py and 3 more); restarting", line
    e = entry(auto_home, "dev")
    assert e["restarts"] == 0 and e["restart_attempt"] == 0 and "next_restart_at" not in e
    assert e["last_exit"]["restart"] == "files changed" and "stopped" not in e["last_exit"]
    assert describe_exit(e["last_exit"]) == "restarted: files changed"  # not "stopped by user"
    old_log = next(p for p in auto_home.joinpath("output", "logs", "dev").rglob("*.log")
                   if f" pid {first} at " in p.read_text())
    assert "[auto] files changed (src/m0.py and 3 more); restarting\n" in old_log.read_text()
    print(f"restarted {restarted:.2f} s after the last of 20 saves")


@pytest.mark.slow
def test_ignored_paths_do_not_restart(auto_home, watcher, project):
    w = watcher()
    pid = add_watched(w, auto_home, project, "dev", 3102, "--ignore", "*.tmp", "--ignore", "./dist")
    src = project / "src"
    (src / "__pycache__").mkdir()
    (src / "node_modules" / "pkg").mkdir(parents=True)
    # What editors and tools write beside the code: vim's swap file on opening, a backup,
    # emacs' lock, a virtualenv and test caches below the watched folder.
    for junk in (".app.py.swp", "app.py~", ".#app.py", ".venv/lib/x.py", ".pytest_cache/v/x",
                 ".mypy_cache/x.json", "dist/bundle.js"):
        (src / junk).parent.mkdir(parents=True, exist_ok=True)
        (src / junk).write_text("x\n")
    (src / "app.log").write_text("log line\n")
    (src / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (src / "node_modules" / "pkg" / "index.js").write_text("1\n")
    (src / "scratch.tmp").write_text("tmp\n")
    (project / "outside.py").write_text("not watched\n")
    holds(lambda: not w.lines(r"^dev: files changed") and entry(auto_home, "dev")["pid"] == pid, 1.5)
    # The watch was alive all along: a change it keeps restarts the service.
    (src / "app.py").write_text("print('changed')\n")
    w.wait_line(r"^dev: files changed \(src/app\.py\); restarting", timeout=15)


@pytest.mark.slow
def test_a_file_saved_by_rename_stays_watched(auto_home, watcher, project):
    """Editors save by writing a new file and renaming it over the old one: the second save
    restarts too, and a neighbour in the same folder does not."""
    w = watcher()
    conf = project / "conf.toml"
    conf.write_text("a = 1\n")
    cli_ok("add", "dev", "--workdir", str(project), "--restart-on-change", "conf.toml",
           "--", "sleep", "3111")
    w.wait_line(rf"^dev: watching {conf} for changes")
    for n in (1, 2):
        (project / "conf.toml.new").write_text(f"a = {n + 1}\n")
        os.replace(project / "conf.toml.new", conf)
        w.wait_line(r"^dev: files changed \(conf\.toml\); restarting", count=n, timeout=15)
        w.wait_line(r"^start dev pid \d+ \(files changed\)", count=n)
    (project / "neighbour.txt").write_text("x\n")
    holds(lambda: len(w.lines(r"^dev: files changed")) == 2, 1.5)


@pytest.mark.slow
def test_a_path_gone_before_the_start_is_said_once_and_the_service_runs(auto_home, watcher,
                                                                       project):
    w = watcher()
    cli_ok("add", "dev", "--no-start", "--workdir", str(project), "--restart-on-change", "src",
           "--", "sleep", "3112")
    (project / "src" / "app.py").unlink()
    (project / "src").rmdir()
    cli_ok("start", "dev")
    w.wait_line(rf"^dev: restart on change: {project / 'src'}: not found; watching for it to appear")
    holds(lambda: len(w.lines(r"^start dev ")) == 1 and len(w.lines(r"not found")) == 1, 1.0)
    # Created, it counts as a change and is watched from then on.
    (project / "src").mkdir()
    w.wait_line(rf"^dev: restart on change: {project / 'src'}: back; watching it again", timeout=15)
    w.wait_line(r"^start dev pid \d+ \(files changed\)", timeout=15)
    (project / "src" / "app.py").write_text("print('new')\n")
    w.wait_line(r"^dev: files changed \(src/app\.py\); restarting", timeout=15)


def inotify_watches(pid: int) -> int:
    """How many inotify watches the process holds (``/proc/PID/fdinfo``)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                count += sum(line.startswith("inotify wd:") for line in fh)
        except OSError:
            pass
    return count


@pytest.mark.slow
def test_a_deleted_and_recreated_folder_is_watched_again(auto_home, watcher, project):
    w = watcher()
    add_watched(w, auto_home, project, "dev", 3116)
    restarts = r"^start dev pid \d+ \(files changed\)"
    subprocess.run(["rm", "-rf", str(project / "src")], check=True)
    w.wait_line(rf"^dev: restart on change: {project / 'src'}: gone; watching for it to appear",
                timeout=15)
    w.wait_line(restarts, timeout=15)  # for the deletion
    (project / "src").mkdir()
    w.wait_line(rf"^dev: restart on change: {project / 'src'}: back; watching it again", timeout=15)
    w.wait_line(restarts, count=2, timeout=15)  # for the folder back
    (project / "src" / "app.py").write_text("print('edited')\n")
    w.wait_line(r"^dev: files changed \(src/app\.py\); restarting", timeout=15)
    w.wait_line(restarts, count=3, timeout=15)
    # Replaced within one burst (as ``git checkout`` may do), the new folder is watched too.
    subprocess.run(["rm", "-rf", str(project / "src")], check=True)
    (project / "src").mkdir()
    w.wait_line(restarts, count=4, timeout=15)
    (project / "src" / "app.py").write_text("print('again')\n")
    w.wait_line(r"^dev: files changed \(src/app\.py\); restarting", count=2, timeout=15)


@pytest.mark.skipif(not LINUX, reason="counts inotify watches in /proc")
@pytest.mark.slow
def test_a_watched_file_does_not_watch_its_folders_subfolders(auto_home, watcher, project):
    for i in range(60):
        (project / "node_modules" / f"pkg{i}").mkdir(parents=True)
    (project / "conf.toml").write_text("a = 1\n")
    w = watcher()
    cli_ok("add", "dev", "--workdir", str(project), "--restart-on-change", "src",
           "--restart-on-change", "conf.toml", "--", "sleep", "3117")
    w.wait_line(rf"^dev: watching {project / 'src'}, {project / 'conf.toml'} for changes")
    (project / "conf.toml").write_text("a = 2\n")
    w.wait_line(r"^dev: files changed \(conf\.toml\); restarting", timeout=15)
    # src and the project folder itself (the watcher's own state folder takes one more).
    assert inotify_watches(w.pid) < 10, inotify_watches(w.pid)


@pytest.mark.slow
def test_a_stopped_service_stays_stopped_on_change(auto_home, watcher, project):
    w = watcher()
    add_watched(w, auto_home, project, "dev", 3103)
    cli_ok("stop", "dev")
    w.wait_line(r"^dev: not watching for changes any more")
    if LINUX:
        wait_until(lambda: threads(w.pid) == 1, message="the watching thread gone")
    (project / "src" / "app.py").write_text("print('changed')\n")
    holds(lambda: not w.lines(r"^dev: files changed") and len(w.lines(r"^start dev ")) == 1
          and entry(auto_home, "dev").get("explicitly_stopped") is True, 1.5)
    # Started again, it is watched again.
    cli_ok("start", "dev")
    w.wait_line(rf"^dev: watching {project / 'src'} for changes", count=2)
    (project / "src" / "app.py").write_text("print('again')\n")
    w.wait_line(r"^dev: files changed \(src/app\.py\); restarting", timeout=15)


@pytest.mark.slow
def test_clearing_the_option_stops_watching(auto_home, watcher, project, capsys):
    w = watcher()
    pid = add_watched(w, auto_home, project, "dev", 3104)
    code, out, _ = auto(capsys, "show", "dev")
    assert re.search(rf"^on change: +restart; watching {re.escape(str(project / 'src'))} "
                     rf"\(ignoring {re.escape(' '.join(DEFAULT_IGNORE))}\)$", out, re.M), out
    updated = cli_ok("update", "dev", "--restart-on-change", "none")
    assert updated.stdout == "updated dev; the files watched change at once\n", updated.stdout
    w.wait_line(r"^dev: not watching for changes any more")
    if LINUX:
        wait_until(lambda: threads(w.pid) == 1, message="the watching thread gone")
    assert "restart_on_change" not in entry(auto_home, "dev") or \
        entry(auto_home, "dev")["restart_on_change"] is None
    (project / "src" / "app.py").write_text("print('changed')\n")
    holds(lambda: not w.lines(r"^dev: files changed") and entry(auto_home, "dev")["pid"] == pid, 1.5)
    code, out, _ = auto(capsys, "show", "dev")
    assert code == 0 and "on change" not in out


@pytest.mark.skipif(not LINUX, reason="reads /proc")
@pytest.mark.slow
def test_watchfiles_is_loaded_only_for_a_service_that_asks(auto_home, watcher, project):
    ps = subprocess.run([sys.executable, "-X", "importtime", "-m", "auto_core", "ps"],
                        capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert ps.returncode == 0 and "auto_core.views" in ps.stderr
    assert "watchfiles" not in ps.stderr
    w = watcher()
    cli_ok("add", "plain", "--workdir", str(project), "--", "sleep", "3105")
    w.wait_line(r"^start plain pid \d+")
    (project / "src" / "app.py").write_text("print('changed')\n")
    holds(lambda: threads(w.pid) == 1 and not loaded_watchfiles(w.pid), 1.0)
    cli_ok("update", "plain", "--restart-on-change", "src")
    w.wait_line(rf"^plain: watching {project / 'src'} for changes")
    wait_until(lambda: loaded_watchfiles(w.pid) and threads(w.pid) > 1, message="the thread up")
    cli_ok("remove", "plain")
    w.wait_line(r"^plain: not watching for changes any more")
    wait_until(lambda: threads(w.pid) == 1, message="the watching thread gone")


# --- definitions -----------------------------------------------------------------------------

def test_paths_resolve_against_the_workdir_and_show_json_lists_them(auto_home, project, capsys,
                                                                    tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = auto(capsys, "add", "dev", "--no-start", "--workdir", str(project),
                        "--restart-on-change", "src", "--restart-on-change", str(project / "src" / "app.py"),
                        "--ignore", "*.tmp", "--", "sleep", "3106")
    assert code == 0, err
    e = entry(auto_home, "dev")
    assert e["restart_on_change"] == [str(project / "src"), str(project / "src" / "app.py")]
    assert e["ignore"] == ["*.tmp"]
    code, out, _ = auto(capsys, "show", "dev", "--json")
    shown = json.loads(out)
    assert shown["restart_on_change"] == e["restart_on_change"] and shown["ignore"] == ["*.tmp"]
    code, out, err = auto(capsys, "update", "dev", "--ignore", "none")
    assert code == 0, err
    assert entry(auto_home, "dev").get("ignore") is None


def test_auto_toml_paths_are_relative_to_its_folder_and_export_round_trips(auto_home, project,
                                                                           capsys, tmp_path,
                                                                           monkeypatch):
    path = project / "auto.toml"
    path.write_text('[services.dev]\ncommand = "sleep 3107"\nworkdir = "src"\n'
                    'restart_on_change = ["src", "src/app.py"]\nignore = ["*.tmp"]\n')
    monkeypatch.chdir(tmp_path)
    code, _, err = auto(capsys, "apply", str(path), "--no-start")
    assert code == 0, err
    e = entry(auto_home, "dev")
    assert e["restart_on_change"] == [str(project / "src"), str(project / "src" / "app.py")]
    code, exported, _ = auto(capsys, "export")
    assert 'restart_on_change = [\n    "' + str(project / "src") + '",' in exported
    code, out, _ = auto(capsys, "apply", str(path))
    assert code == 0 and out.splitlines() == ["= dev (unchanged)"], out
    path.write_text('[services.dev]\ncommand = "sleep 3107"\nworkdir = "src"\n'
                    'restart_on_change = ["src"]\n')
    code, out, _ = auto(capsys, "apply", str(path), "--dry-run")
    assert code == 0 and "restart_on_change" in out and "ignore" in out, out


def test_a_pm2_ecosystem_watch_becomes_restart_on_change(auto_home, project, capsys):
    path = project / "ecosystem.json"
    path.write_text(json.dumps({"apps": [
        {"name": "api", "script": "sleep", "args": "3113", "watch": ["src"], "cwd": "src/..",
         "ignore_watch": ["*.tmp"]},
        {"name": "all", "script": "sleep", "args": "3114", "watch": True},
        {"name": "none", "script": "sleep", "args": "3115", "watch": False}]}))
    code, out, err = auto(capsys, "import", str(path), "--no-start")
    assert code == 0 and "not carried" not in err, err
    procs = read_state(auto_home)["processes"]
    assert procs["api"]["restart_on_change"] == [str(project / "src")]
    assert procs["api"]["ignore"] == ["*.tmp"]
    assert procs["all"]["restart_on_change"] == [str(project)]
    assert "restart_on_change" not in procs["none"]
    # pm2 takes regular expressions too: one naming a name becomes its glob, others are named.
    path.write_text(json.dumps({"apps": [
        {"name": "re", "script": "sleep", "args": "3121", "watch": ["src"],
         "ignore_watch": ["\\.git", "^dist$", ".*\\.bak$", "[\\/\\\\]\\./"]}]}))
    code, out, err = auto(capsys, "import", str(path), "--no-start")
    assert code == 0, err
    assert read_state(auto_home)["processes"]["re"]["ignore"] == [".git", "dist", "*.bak"]
    assert "not carried" in err and "ignore_watch '[\\\\/\\\\\\\\]\\\\./' (a regular expression" in err, err
    path.write_text(json.dumps({"apps": [{"name": "api", "script": "sleep", "watch": ["gone"]}]}))
    code, out, err = auto(capsys, "import", str(path), "--no-start")
    line = assert_one_error(code, err, 2)
    assert "restart_on_change: cannot watch" in line and "gone" in line, line


def test_bad_values_are_one_line_exit_2_and_change_nothing(auto_home, project, capsys, tmp_path):
    code, _, err = auto(capsys, "add", "dev", "--no-start", "--workdir", str(project),
                        "--restart-on-change", "src", "--", "sleep", "3108")
    assert code == 0, err
    before = state_bytes(auto_home)
    missing = project / "nope"
    for args in (("add", "other", "--no-start", "--workdir", str(project),
                  "--restart-on-change", "nope", "--", "sleep", "3109"),
                 ("update", "dev", "--restart-on-change", "nope"),
                 ("update", "dev", "--restart-on-change", "src", "--restart-on-change", "nope"),
                 ("update", "dev", "--ignore", "")):
        code, out, err = auto(capsys, *args)
        line = assert_one_error(code, err, 2)
        if "nope" in args:
            assert line == f"auto: error: cannot watch {str(missing)!r}: it does not exist", line
        assert out == "" and state_bytes(auto_home) == before, args
    bad = tmp_path / "bad.toml"
    bad.write_text('[services.dev]\ncommand = "sleep 3108"\nrestart_on_change = ["nope"]\n')
    code, out, err = auto(capsys, "apply", str(bad))
    line = assert_one_error(code, err, 2)
    assert line.startswith(f"auto: error: {bad}:3: restart_on_change: cannot watch "), line
    bad.write_text('[services.dev]\ncommand = "sleep 3108"\nrestart_on_change = [1]\n')
    code, out, err = auto(capsys, "apply", str(bad))
    line = assert_one_error(code, err, 2)
    assert f"{bad}:3: restart_on_change: invalid path" in line, line
    assert state_bytes(auto_home) == before


def test_a_hand_edited_bad_value_is_dropped_on_load(auto_home, project, capsys):
    code, _, err = auto(capsys, "add", "dev", "--no-start", "--workdir", str(project),
                        "--restart-on-change", "src", "--", "sleep", "3110")
    assert code == 0, err
    data = read_state(auto_home)
    data["processes"]["dev"]["restart_on_change"] = ["relative/src", 3]
    data["processes"]["dev"]["ignore"] = "*.tmp"
    (auto_home / "local" / "state.json").write_text(json.dumps(data))
    code, out, err = auto(capsys, "show", "dev", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["restart_on_change"] == [] and shown["ignore"] == []
    assert "restart_on_change: not a list of absolute paths; not watched" in err


@pytest.mark.slow
def test_a_service_writing_into_its_watched_folder_is_warned_of_and_backed_off(auto_home, watcher,
                                                                               project):
    w = watcher()
    cli_ok("add", "dev", "--workdir", str(project), "--restart-on-change", ".",
           "--", "sh", "-c", "date > out.txt; exec sleep 3118")
    # The first run may write before its watch is up: a save starts the loop for sure.
    w.wait_line(rf"^dev: watching {project} for changes")
    (project / "src" / "app.py").write_text("print('changed')\n")
    loop = (r"^warning: dev: 6 restarts for changed files within 10 s \(last: files changed "
            r"\(out\.txt\)\); does it write into a folder it watches\?")
    w.wait_line(loop, timeout=30)
    w.wait_line(r"^schedule dev: restarts for changes in a loop; restarting in [\d.]+ s", timeout=15)
    w.wait_line(r"^start dev pid \d+ \(automatic restart\)", timeout=15)
    wait_until(lambda: entry(auto_home, "dev").get("restarts", 0) >= 1, message="counted as a crash")
    # Each further loop waits longer (the backoff grows), and the warning is said once.
    w.wait_line(r"^start dev pid \d+ \(automatic restart\)", count=2, timeout=30)
    wait_until(lambda: entry(auto_home, "dev").get("restart_attempt", 0) >= 2,
               message="the backoff counter grows")
    w.wait_line(r"^start dev pid \d+ \(automatic restart\)", count=3, timeout=30)
    assert len(w.lines(loop)) == 1 and not w.lines(r"^start dev pid \d+ \(files changed\)")[5:]
    cli_ok("stop", "dev")


@pytest.mark.slow
def test_a_stop_during_a_restart_for_changes_is_answered_by_that_stop(auto_home, watcher, project):
    """The run ignores SIGTERM: the restart's stop takes the stop timeout, and a stop asked
    for meanwhile says how the run ended, and no run starts after it."""
    w = watcher()
    cli_ok("add", "dev", "--workdir", str(project), "--restart-on-change", "src",
           "--stop-timeout", "3", "--", "sh", "-c", "trap '' TERM; exec sleep 3119")
    w.wait_line(rf"^dev: watching {project / 'src'} for changes")
    pid = entry(auto_home, "dev")["pid"]
    (project / "src" / "app.py").write_text("print('changed')\n")
    w.wait_line(rf"^stop dev \(pids {pid}\): sent SIGTERM", timeout=15)
    stop = run_cli("stop", "dev")
    assert stop.returncode == 0, stop.stderr
    assert stop.stdout.strip() == "stopped dev (SIGKILL after 3 s)", stop.stdout
    assert not os.path.exists(f"/proc/{pid}") or LINUX is False
    e = entry(auto_home, "dev")
    assert e["explicitly_stopped"] is True and "request" not in e
    holds(lambda: len(w.lines(r"^start dev ")) == 1, 1.0)


def test_close_waits_for_a_wake_under_way(tmp_path):
    """A thread waking the loop while the watcher closes must not write to the notifier's
    closed (or reused) descriptor: close() returns only once no wake can come."""
    import threading

    from auto_core.supervisor.changes import Changes

    waking, release = threading.Event(), threading.Event()

    def wake() -> None:
        waking.set()
        release.wait(30)

    found = Changes(wake)
    found.sync({"dev": {"restart_on_change": [str(tmp_path)]}}, lambda name: True)
    watch = found._watches["dev"]
    deliver = threading.Thread(target=found._deliver, args=(watch, {str(tmp_path / "a")}, None))
    deliver.start()
    try:
        assert waking.wait(30)
        closing = threading.Thread(target=found.close)
        closing.start()
        holds(lambda: closing.is_alive(), 0.5)
    finally:
        release.set()
        deliver.join(30)
    closing.join(30)
    assert not closing.is_alive()
    waking.clear()
    found._deliver(watch, {str(tmp_path / "b")}, None)  # after close: no wake
    assert not waking.is_set()


@pytest.mark.slow
def test_a_new_watcher_watches_the_services_it_adopts(auto_home, watcher, project):
    first = watcher()
    pid = add_watched(first, auto_home, project, "dev", 3120)
    first.signal(signal.SIGTERM)  # the service lives on; the next watcher adopts it
    assert os.path.exists(f"/proc/{pid}") or not LINUX
    second = watcher()
    second.wait_line(rf"^dev: watching {project / 'src'} for changes")
    assert entry(auto_home, "dev")["pid"] == pid
    (project / "src" / "app.py").write_text("print('changed')\n")
    second.wait_line(r"^dev: files changed \(src/app\.py\); restarting", timeout=15)
    second.wait_line(r"^start dev pid \d+ \(files changed\)", timeout=15)


@pytest.mark.slow
def test_an_edit_through_a_temporary_file_names_only_the_file(auto_home, watcher, project):
    """``sed -i`` writes a temporary file beside the one it edits and renames it over it:
    the temporary file, gone at once, is no change of its own."""
    w = watcher()
    add_watched(w, auto_home, project, "dev", 3122)
    subprocess.run(["sed", "-i", "s/hi/ho/", str(project / "src" / "app.py")], check=True)
    w.wait_line(r"^dev: files changed", timeout=15)
    assert w.lines(r"^dev: files changed") == ["dev: files changed (src/app.py); restarting"]
