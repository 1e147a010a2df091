"""The whole tree passes ruff, and its root rules keep Textual and Rich out of auto_core."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
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


LINT_IMPORTS = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]


def test_the_layers_hold():
    out = subprocess.run([*LINT_IMPORTS, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 3 kept, 0 broken." in out.stdout, out.stdout


def test_a_face_that_reaches_spawn_or_signal_code_breaks_the_layers(tmp_path: Path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in ("auto_core", "auto_tui"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    lifecycle = tmp_path / "auto_core" / "lifecycle.py"
    lifecycle.write_text(lifecycle.read_text() + "\n\ndef _sneak():\n    from auto_core.proc import procgroup\n\n    return procgroup\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([*LINT_IMPORTS, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "auto_core.lifecycle -> auto_core.proc.procgroup" in out.stdout, out.stdout


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_types_check_on_linux_and_macos(platform: str, tmp_path: Path):
    # macOS cannot run here: the type checker is the closest thing to running its code paths.
    out = subprocess.run([sys.executable, "-m", "mypy", "--platform", platform,
                          "--cache-dir", str(tmp_path / "cache")],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success: no issues found" in out.stdout
