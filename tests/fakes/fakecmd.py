"""Recording fake of launchctl / systemctl / loginctl (tests only: they are missing or cannot
work on this machine, which has no launchd and no systemd user manager).

Invoked by the shell stubs in ``bin/`` as ``fakecmd.py PROG ARGS...``. It appends
``[PROG, *ARGS]`` as one JSON line to the file named by ``FAKE_CMD_LOG`` and answers with the
first rule in ``FAKE_CMD_RULES`` (a JSON list) whose ``prog`` matches and whose ``args`` is a
prefix of ARGS: ``{"prog": "systemctl", "args": ["--user", "is-active"], "rc": 3,
"stdout": "inactive\\n", "stderr": ""}``. No matching rule: exit 0, no output.
"""

import json
import os
import sys

prog, args = sys.argv[1], sys.argv[2:]
log = os.environ.get("FAKE_CMD_LOG")
if log:
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps([prog, *args]) + "\n")
for rule in json.loads(os.environ.get("FAKE_CMD_RULES") or "[]"):
    want = rule.get("args", [])
    if rule["prog"] == prog and args[: len(want)] == want:
        sys.stdout.write(rule.get("stdout", ""))
        sys.stderr.write(rule.get("stderr", ""))
        sys.exit(rule.get("rc", 0))
sys.exit(0)
