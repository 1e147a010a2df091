"""The TUI is a face: ruff proves it never spawns, signals or touches state on its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

RUFF = [sys.executable, "-m", "ruff"]


def test_the_nested_config_really_bans_spawning_and_signals(tmp_path: Path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "auto_tui").mkdir()
    shutil.copy(ROOT / "auto_tui" / "ruff.toml", tmp_path / "auto_tui" / "ruff.toml")
    (tmp_path / "auto_tui" / "probe.py").write_text(
        "import os\nimport signal\nimport subprocess\n\nfrom auto_core.proc import procgroup, spawn\n\n"
        "os.kill(1, 9)\nos.killpg(1, 9)\n"
        "print(signal, subprocess, procgroup, spawn)\n"
    )
    out = subprocess.run([*RUFF, "check", "--output-format", "concise", "--select", "TID251", "auto_tui"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 1
    banned = {line.split("`")[1] for line in out.stdout.splitlines() if "TID251" in line}
    assert banned == {"signal", "subprocess", "auto_core.proc.procgroup", "auto_core.proc.spawn", "os.kill", "os.killpg"}
