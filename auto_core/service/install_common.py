"""What the login service's platform parts share: the ``Ctx`` that owns every side effect of
`auto install` (writing files, running launchctl/systemctl, or printing them instead under
``--dry-run``), the templates and their rendering."""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from auto_core.errors import AutoError
from auto_core.store.paths import Home, ensure_dir

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Protocol

    class Output(Protocol):
        """Where the commands print: the CLI's ``_Out`` (``info`` is silenced by -q)."""

        def info(self, message: str, /) -> None: ...
        def data(self, message: str, /) -> None: ...


PLATFORMS = {"darwin": "macos", "linux": "linux"}
COMMAND_TIMEOUT = 60.0


def platform_of(sys_platform: str) -> str | None:
    """``"macos"``/``"linux"`` for a ``sys.platform`` value, None elsewhere."""
    return PLATFORMS.get("linux" if sys_platform.startswith("linux") else sys_platform)


def template(name: str) -> str:
    """A template from the wheel (``auto_core/templates``) or, in a dev checkout, ``launchd/``."""
    try:
        packaged = importlib.resources.files("auto_core") / "templates" / name
        if packaged.is_file():
            return packaged.read_text(encoding="utf-8")
    except (OSError, ModuleNotFoundError):
        pass
    repo = Path(__file__).resolve().parents[2] / "launchd" / name
    try:
        return repo.read_text(encoding="utf-8")
    except OSError:
        raise AutoError(f"template {name} not found in auto_core/templates or {repo.parent}") from None


def render(name: str, **values: str) -> str:
    return Template(template(name)).substitute(values)


@dataclass
class Ctx:
    """Everything an install step needs, and the only place that touches the system."""

    home: Home
    platform: str  # the platform rendered for
    can_query: bool  # False when rendering for another platform: its programs are not here
    dry_run: bool
    out: Output
    python: str = field(default_factory=lambda: os.path.abspath(sys.executable))
    user_home: Path = field(default_factory=Path.home)
    path_env: str = field(default_factory=lambda: os.environ.get("PATH") or os.defpath)

    def __post_init__(self):
        for what, value in (("AUTO_HOME", str(self.home.root)), ("PATH", self.path_env),
                            ("the interpreter path", self.python)):
            if any(ord(c) < 32 or c == "\x7f" for c in value):
                raise AutoError(f"{what} contains a control character; a service file cannot hold it")

    @property
    def default_home(self) -> bool:
        """True for the platformdirs default home (the one used when AUTO_HOME is unset)."""
        import platformdirs

        return Path(platformdirs.user_state_dir("auto")).absolute() == self.home.root

    @property
    def suffix(self) -> str:
        """Empty for the default home; else a short hash so two homes get two services."""
        if self.default_home:
            return ""
        return hashlib.sha256(str(self.home.root).encode()).hexdigest()[:8]

    @property
    def uid(self) -> int:
        return os.getuid()

    @property
    def user(self) -> str:
        import pwd

        try:
            return pwd.getpwuid(os.getuid()).pw_name
        except KeyError:
            return os.environ.get("USER") or str(os.getuid())

    @property
    def watch_argv(self) -> list[str]:
        # -u: the watcher's stdout is a log file; unbuffered lines reach it as they happen.
        return [self.python, "-u", "-m", "auto_core", "watch", "--login"]

    # --- side effects ----------------------------------------------------------------------

    def query(self, argv: list[str]) -> subprocess.CompletedProcess | None:
        """Run a read-only command; None when it cannot run here (missing, other platform)."""
        if not self.can_query:
            return None
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None

    def run(self, argv: list[str]) -> subprocess.CompletedProcess:
        """Run a command that changes something (printed only under --dry-run)."""
        if self.dry_run:
            self.out.data(f"would run: {shlex.join(argv)}")
            return subprocess.CompletedProcess(argv, 0, "", "")
        self.out.info(f"$ {shlex.join(argv)}")
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise AutoError(f"{argv[0]} not found on PATH (needed for: {shlex.join(argv)})") from None
        except subprocess.TimeoutExpired:
            raise AutoError(f"{shlex.join(argv)} did not finish within {COMMAND_TIMEOUT:g} s") from None
        except OSError as exc:
            raise AutoError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None

    @staticmethod
    def check(result: subprocess.CompletedProcess, ok: tuple[int, ...] = (0,)) -> None:
        if result.returncode in ok:
            return
        said = [ln.strip() for ln in (result.stderr or result.stdout or "").splitlines() if ln.strip()]
        detail = f": {said[-1]}" if said else ""
        raise AutoError(f"{shlex.join(result.args)} failed (exit {result.returncode}){detail}")

    def write(self, path: Path, content: str, mode: int) -> bool:
        """Write ``path`` atomically unless it already holds ``content``; True if it changed."""
        if read_text(path) == content:
            return False
        if self.dry_run:
            self.out.data(f"would write {path} (mode {mode:04o}):")
            self.out.data(content.rstrip("\n"))
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(content)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise AutoError(f"cannot write {path}: {exc.strerror or exc}") from None
        self.out.info(f"wrote {path}")
        return True

    def remove(self, path: Path) -> None:
        if not os.path.lexists(path):
            return
        if self.dry_run:
            self.out.data(f"would remove {path}")
            return
        try:
            path.unlink()
        except OSError as exc:
            raise AutoError(f"cannot remove {path}: {exc.strerror or exc}") from None
        self.out.info(f"removed {path}")

    def ensure_log_dir(self) -> None:
        """launchd and systemd create the log file but not its directory."""
        directory = self.home.watcher_log.parent
        if directory.is_dir():
            return
        if self.dry_run:
            self.out.data(f"would create {directory}")
            return
        try:
            ensure_dir(directory)
        except OSError as exc:
            raise AutoError(f"cannot create {directory}: {exc.strerror or exc}") from None


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
