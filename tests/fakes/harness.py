"""Put the recording fakes first on PATH, script their answers, read back what was run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

FAKES_BIN = Path(__file__).resolve().parent / "bin"


class Fakes:
    """A redirected home directory plus fake launchctl/systemctl/loginctl on PATH.

    Args:
        root: a temp directory; the user's home and the call log go there.
        auto_home: the test's AUTO_HOME.
    """

    def __init__(self, root: Path, auto_home: Path):
        self.user_home = root / "user-home"
        self.user_home.mkdir()
        self.auto_home = auto_home
        self.log = root / "fake-calls.jsonl"
        self.rules: list[dict] = []
        self.path = f"{FAKES_BIN}{os.pathsep}{os.environ.get('PATH', os.defpath)}"

    def rule(self, prog: str, *args: str, rc: int = 0, stdout: str = "", stderr: str = "") -> None:
        """Answer ``prog ARGS...`` (ARGS a prefix) with this exit code and output."""
        self.rules.insert(0, {"prog": prog, "args": list(args), "rc": rc, "stdout": stdout,
                              "stderr": stderr})

    def reset(self) -> None:
        self.rules.clear()
        self.log.unlink(missing_ok=True)

    def env(self) -> dict[str, str]:
        return {"HOME": str(self.user_home), "PATH": self.path, "AUTO_HOME": str(self.auto_home),
                "FAKE_CMD_LOG": str(self.log), "FAKE_CMD_RULES": json.dumps(self.rules),
                "FAKE_PYTHON": sys.executable}

    def apply(self, monkeypatch) -> None:
        """The same environment for in-process calls (reapply after changing rules)."""
        for key, value in self.env().items():
            monkeypatch.setenv(key, value)

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]
