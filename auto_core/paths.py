"""Where auto keeps its files (DESIGN.md §2). Directories 0700, files 0600."""

from __future__ import annotations

import os
from pathlib import Path

from auto_core.record import Record

DIR_MODE = 0o700
FILE_MODE = 0o600


def default_home() -> Path:
    env = os.environ.get("AUTO_HOME")
    if env:
        return Path(env).expanduser().absolute()
    import platformdirs  # imported here: only needed without AUTO_HOME

    return Path(platformdirs.user_state_dir("auto")).absolute()


class Home(Record, frozen=True):
    root: Path

    @classmethod
    def resolve(cls, root: str | os.PathLike | None = None) -> "Home":
        return cls(Path(root).expanduser().absolute() if root else default_home())

    @property
    def local(self) -> Path:
        return self.root / "local"

    @property
    def state_file(self) -> Path:
        return self.local / "state.json"

    @property
    def state_bak(self) -> Path:
        return self.local / "state.json.bak"

    @property
    def state_lock(self) -> Path:
        return self.local / "state.lock"

    @property
    def watch_lock(self) -> Path:
        return self.local / "watch.lock"

    @property
    def logs(self) -> Path:
        return self.root / "output" / "logs"

    @property
    def watcher_log(self) -> Path:
        return self.logs / "auto" / "auto.log"

    def process_logs(self, name: str) -> Path:
        return self.logs / name


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 whatever the umask."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            pass
        os.chmod(d, DIR_MODE)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a directory")
    return path
