"""Starting one run of a service, for the watcher: its log file, its environment, its spawn.

Only the watcher calls this (faces ask the watcher; see docs/architecture.md). A run gets:

- a new dated log file, whose first line is the ``[auto] start`` header;
- the environment captured when the service was defined (``environ``), overlaid by its own
  variables, plus three marks: ``AUTO_HOME``, ``AUTO_SERVICE`` and ``AUTO_RUN`` (unique to the
  run), by which a watcher that starts later finds a run that was spawned but never recorded;
- a spawn in its own session (``spawn.Spawner``), the watcher being its parent, so the run's
  exit status is known.

``launch`` never raises for the service's own faults (a missing workdir, a full disk): it
returns the reason, which the watcher records as the run's failure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from auto_core import model
from auto_core.logtree import logs
from auto_core.proc import identity, spawn
from auto_core.store import environ
from auto_core.store.paths import Home


@dataclass
class Launched:
    """A run that started: what the watcher records and watches."""

    pid: int
    child: spawn.Child
    log_path: str
    started_at: float
    create_time: float
    run_id: str
    stamp: str | None  # identity.stamp: exact
    started_with: dict | None = None  # model.run_settings of the definition it was started by


def new_run_id() -> str:
    return os.urandom(6).hex()


class Launcher:
    """Spawns runs for one home. Keeps each service's captured environment in memory while
    its file is unchanged, so a restart reads no file but its own log's directory."""

    def __init__(self, home: Home):
        self.home = home
        self._captured: dict[str, tuple[tuple | None, dict[str, str] | None]] = {}
        self._fallback = environ.capture()  # for services defined before capture existed

    def captured(self, name: str) -> dict[str, str] | None:
        path = environ.env_path(self.home, name)
        try:
            st = os.stat(path)
            key: tuple | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        cached = self._captured.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        value = environ.load(self.home, name) if key is not None else None
        self._captured[name] = (key, value)
        return value

    def env(self, name: str, definition: model.Definition, run_id: str) -> dict[str, str]:
        env = environ.service_env(self.captured(name), definition.env, self._fallback)
        env.update(AUTO_HOME=str(self.home.root), AUTO_SERVICE=name, AUTO_RUN=run_id)
        return env

    def launch(self, name: str, definition: model.Definition) -> Launched | str:
        """Start a run of ``name`` as defined; the reason when it cannot start."""
        when = datetime.now()
        try:
            path, fd = logs.create_run_log(self.home, name, when)
        except OSError as exc:
            return (f"cannot create the log file for {name} under "
                    f"{self.home.process_logs(name)}: {exc.strerror or exc}")
        try:
            run_id = new_run_id()
            workdir = definition.workdir or os.path.expanduser("~")
            try:
                with spawn.Spawner(inherit=False) as spawner:
                    spawned = spawner.spawn(name, definition.command, workdir,
                                            self.env(name, definition, run_id), fd, when,
                                            log_path=str(path))
            except spawn.SpawnError as exc:
                logs.write_line(fd, f"[auto] cannot start {name}: {exc.strerror}")
                return f"cannot start {name}: {exc.strerror}"
            except OSError as exc:  # the watcher's own lack (of descriptors, of memory)
                logs.write_line(fd, f"[auto] cannot start {name}: {exc.strerror or exc}")
                return f"cannot start {name}: {exc.strerror or exc}"
        finally:
            os.close(fd)
        started_at = when.timestamp()
        return Launched(spawned.pid, spawned.child, str(path), started_at,
                        spawn.created(spawned.pid), run_id, identity.stamp(spawned.pid, zombie_ok=True),
                        model.run_settings(definition, self.captured(name)))
