"""A home that is not the user's own is refused by every command and the watcher (as ssh
refuses a ``~/.ssh`` others can write): its state file names the commands auto runs."""

from __future__ import annotations

import json
import os
import pwd

import pytest
from helpers import procs_with_env, run_cli

MARK = "planted-by-another-user"


def _plant(home):
    local = home / "local"
    local.mkdir(parents=True)
    entry = {"command": "sleep 1000", "workdir": "/", "env": {"PLANTED": MARK},
             "explicitly_stopped": False}
    (local / "state.json").write_text(json.dumps({"version": 1, "processes": {"evil": entry}}))


def _assert_refused(home, why: str):
    before = (home / "local" / "state.json").read_bytes()
    for args in (["ps"], ["start", "evil"], ["add", "x", "sleep 1"], ["watch"]):
        out = run_cli(*args, home=home, timeout=30)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        lines = out.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("auto: error: ") and why in lines[0], (args, out.stderr)
    assert (home / "local" / "state.json").read_bytes() == before
    assert procs_with_env("PLANTED", MARK) == []
    assert not (home / "local" / "watch.lock").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_home_owned_by_another_user_is_refused(tmp_path):
    home = tmp_path / "shared"
    _plant(home)
    nobody = pwd.getpwnam("nobody").pw_uid
    for path in (home, home / "local", home / "local" / "state.json"):
        os.chown(path, nobody, -1)
    _assert_refused(home, f"is owned by uid {nobody}, not by you")


@pytest.mark.parametrize("where", ["home", "local", "state.json"])
def test_a_home_others_can_write_is_refused(tmp_path, where):
    home = tmp_path / "open"
    _plant(home)
    path = {"home": home, "local": home / "local", "state.json": home / "local" / "state.json"}[where]
    os.chmod(path, 0o777 if path.is_dir() else 0o666)
    _assert_refused(home, "is writable by others")
    os.chmod(path, 0o700 if path.is_dir() else 0o600)  # and with that fixed it is used again
    assert run_cli("ps", home=home).returncode == 0
