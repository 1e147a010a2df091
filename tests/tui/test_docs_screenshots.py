"""The README's screenshots are the main screen's snapshots (tests/tui/test_snapshots.py) as
they are: a change of the screen that updates the snapshots must update them too."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).with_name("__snapshots__") / "test_snapshots"


@pytest.mark.parametrize(("doc", "size"), [("tui.svg", "120x35"), ("tui-80x24.svg", "80x24")])
def test_readme_screenshot_is_the_main_screen_snapshot(doc, size):
    snapshot = SNAPSHOTS / f"test_main_screen_every_status_and_coloured_log[{size}].svg"
    assert (ROOT / "docs" / doc).read_bytes() == snapshot.read_bytes(), (
        f"docs/{doc} is out of date: cp '{snapshot.relative_to(ROOT)}' docs/{doc}")
