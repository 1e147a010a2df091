"""Where auto keeps its files (docs/architecture.md, Files). Directories 0700, files 0600."""

from __future__ import annotations

import os

from auto_core.errors import AutoError
from auto_core.record import Record

# pathlib is imported where a Home is made: `auto ps` reads with plain strings (~3.5 ms less).
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from pathlib import Path

class HomeNotPrivate(AutoError):
    """The home, ``local/`` or ``state.json`` belongs to someone else or is writable by others."""


DIR_MODE = 0o700
FILE_MODE = 0o600
LOCAL_DIR = "local"  # state, its lock and backup, the watcher's lock
STATE_NAME = "state.json"
BAK_NAME = "state.json.bak"


def home_dir(root: str | os.PathLike | None = None) -> str:
    """The auto home as an absolute path: ``root``, else ``$AUTO_HOME``, else the user state dir."""
    if root is None or root == "":
        root = os.environ.get("AUTO_HOME") or None
        if root is None:
            import platformdirs  # imported here: only needed without AUTO_HOME

            root = platformdirs.user_state_dir("auto")
    root = os.path.expanduser(os.fspath(root))
    if not os.path.isabs(root):
        root = os.path.join(os.getcwd(), root)
    # As Path(root).absolute(): empty and "." parts dropped, ".." kept (a symlink may precede it).
    return "/" + "/".join(part for part in root.split("/") if part and part != ".")


def state_files(root: str) -> tuple[str, str]:
    """``state.json`` and its ``.bak`` under the home ``root`` (what ``Home`` names, as strings)."""
    local = os.path.join(root, LOCAL_DIR)
    return os.path.join(local, STATE_NAME), os.path.join(local, BAK_NAME)


class Home(Record, frozen=True):
    root: Path

    @classmethod
    def resolve(cls, root: str | os.PathLike | None = None) -> "Home":
        from pathlib import Path

        return cls(Path(home_dir(root)))

    @property
    def local(self) -> Path:
        return self.root / LOCAL_DIR

    @property
    def state_file(self) -> Path:
        return self.local / STATE_NAME

    @property
    def state_bak(self) -> Path:
        return self.local / BAK_NAME

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


def check_private(state_file: str) -> None:
    """Refuse a home that is not the user's own, as ssh refuses such a ``~/.ssh``: the home,
    its ``local/`` and ``state.json`` (those that exist) must be owned by this user and not
    writable by group or others. A state file someone else can write names the commands the
    watcher runs. Raises HomeNotPrivate with one line naming the path."""
    local = os.path.dirname(state_file)
    me = os.geteuid()
    for path in (os.path.dirname(local), local, state_file):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        except OSError:
            continue  # unreadable: the read that follows says why
        if st.st_uid != me:
            raise HomeNotPrivate(f"{path} is owned by uid {st.st_uid}, not by you (uid {me});"
                                 " auto will not use it")
        if st.st_mode & 0o022:
            raise HomeNotPrivate(f"{path} is writable by others (mode {st.st_mode & 0o777:o});"
                                 f" auto will not use it (chmod go-w {path})")
