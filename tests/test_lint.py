"""The whole tree passes ruff, and its root rules keep Textual and Rich out of auto_core."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

RUFF = [sys.executable, "-m", "ruff"]


def test_the_tree_passes_ruff():
    out = subprocess.run([*RUFF, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_auto_core_may_not_import_the_ui_toolkit(tmp_path: Path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "auto_core").mkdir()
    (tmp_path / "auto_core" / "probe.py").write_text(
        "import rich\nimport textual\n\nfrom auto_tui import app\n\nprint(rich, textual, app)\n"
    )
    out = subprocess.run([*RUFF, "check", "--output-format", "concise", "--select", "TID", "auto_core"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 1
    codes = {(line.split()[1], line.split("`")[1]) for line in out.stdout.splitlines() if "`" in line}
    assert {("TID251", "rich"), ("TID251", "textual"), ("TID253", "textual"), ("TID253", "auto_tui")} <= codes, out.stdout
