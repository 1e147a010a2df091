"""Table cells, column fitting and toast wording: plain functions, no app."""

from __future__ import annotations

from auto_core.lifecycle import Outcome
from auto_core.model import ProcessView
from auto_tui.feedback import summary
from auto_tui.rows import STYLES, cells, content_widths, fit, status_label

NOW = 1_790_000_000.0


def view(status="running", name="api", **extra) -> ProcessView:
    running = status == "running"
    return ProcessView(name=name, status=status, pid=4242 if running else None, port=None, command="x",
                       workdir="/", uptime_s=5.0 if running else None, restarts=0,
                       next_restart_in_s=extra.pop("next_restart_in_s", None), log_path=None, last_exit=None, **extra)


def test_a_pending_stop_shows_stopping_with_the_seconds_left_before_sigkill():
    for op in ("stop", "restart", "remove"):
        label, style = status_label(view(pending=op, pending_since=NOW - 3.2, stop_timeout=10.0), NOW)
        assert (label, style) == ("stopping 7s", "stopping")
    assert status_label(view(pending="stop", pending_since=NOW - 30, stop_timeout=10.0), NOW)[0] == "stopping 0s"
    assert status_label(view(pending="stop"), NOW)[0] == "stopping"  # no time recorded


def test_a_pending_start_shows_starting_and_nothing_pending_shows_the_status():
    assert status_label(view("stopped", pending="start", pending_since=NOW), NOW)[0] == "starting"
    assert status_label(view("dead", pending="restart", pending_since=NOW), NOW)[0] == "starting"
    assert status_label(view("running", pending="start", pending_since=NOW), NOW)[0] == "running"
    assert status_label(view("stopped"), NOW)[0] == "stopped"
    assert status_label(view("dead", next_restart_in_s=3.5), NOW)[0] == "restart in 4s"


def test_columns_fit_their_content_and_name_takes_the_slack():
    rows = [cells(view(), None, NOW), cells(view("dead", next_restart_in_s=16), None, NOW)]
    content = content_widths(rows)
    assert content == (4, 14, 4, 4, 6, 8, 5, 3)  # labels or cells, whichever is wider
    widths = fit(content, 79, 2)
    assert widths[1:] == content[1:] and sum(widths) + 2 * len(widths) == 79
    assert fit(content, 40, 2)[0] == 4  # too narrow: NAME keeps its content, the table scrolls


def test_one_toast_per_action_and_a_batch_summed_up():
    started = [Outcome(f"s{i}", True, f"started s{i} (pid {i})", i) for i in range(5)]
    skipped = [Outcome(f"r{i}", True, f"r{i} is already running (pid {i})", i) for i in range(3)]
    assert summary("start all", started + skipped) == ("started 5, 3 already running", True)
    assert summary("start api", started[:1]) == ("started s0 (pid 0)", True)
    failed = Outcome("cron", False, "cron exited with code 1", None, ("boom",))
    assert summary("start cron", [failed]) == ("cron exited with code 1\n| boom", False)
    assert summary("start all", [*started[:2], failed]) == ("started 2, 1 failed\ncron exited with code 1", False)
    assert summary("stop all", []) == ("stop all: nothing to do", True)


def test_a_running_service_with_a_check_reads_running_only_once_healthy():
    check = {"health_check": "port"}
    assert status_label(view(health="healthy", **check), NOW) == ("running", "running")
    assert status_label(view(health="starting", **check), NOW) == ("starting", "starting")
    label, style = status_label(view(health="unhealthy", **check), NOW)
    assert label == "unhealthy" and STYLES[style] == STYLES["dead"]  # the error colour
    # A stop under way says so whatever the check said.
    assert status_label(view(health="unhealthy", pending="stop", **check), NOW)[0] == "stopping"


def test_a_held_start_names_what_it_waits_for_as_the_core_tells_it():
    """The rule (which starts are held, for what) is the core's (``views.snapshot``): the row
    shows the view's ``waiting_for``, first name and how many more."""
    web = view("stopped", "web", pending="start", after=["db", "queue"], waiting_for=["db", "queue"])
    assert status_label(web, NOW) == ("waiting for db +1", "held")
    web = view("stopped", "web", pending="start", after=["db", "queue"], waiting_for=["queue"])
    assert status_label(web, NOW)[0] == "waiting for queue"
    assert status_label(view("stopped", "web", pending="start", after=["db"]), NOW) == ("starting", "starting")
