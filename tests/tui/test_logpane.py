"""The log pane and its tail loop: opens at the end, follows, switches files, stays safe."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
from conftest import cell, running, shown, until
from helpers import read_state, wait_until

from auto_core.logtree import logs
from auto_tui.app import AutoApp
from auto_tui.logpane import LogPane, LogView
from auto_tui.tail import MAX_BEHIND, Divider, run_merged, run_tail

SIZE = (120, 36)


def pane_text(app) -> list[str]:
    return [e.text.plain for e in app.query_one(LogPane).entries]


def recorder(emit):
    """A tail's two callbacks, each calling ``emit("open" or "lines", its arguments)`` (one
    argument alone, several as a tuple)."""
    def call(kind):
        return lambda *args: emit(kind, args[0] if len(args) == 1 else args)

    return call("open"), call("lines")


def collect_tail(path_box, max_lines=5):
    """Run ``run_tail`` in a thread; return (events, stop, thread)."""
    events: list = []
    stop, ready = threading.Event(), threading.Event()
    ready.set()

    def emit(kind, payload):
        events.append((kind, payload))
        ready.set()  # consumed at once

    thread = threading.Thread(target=run_tail, args=(lambda: path_box[0], stop, ready, *recorder(emit), max_lines, 0.02))
    thread.start()
    return events, stop, thread


@pytest.fixture
def held_tail():
    """``start(tail, source)`` runs ``tail`` (``run_tail`` or ``run_merged``) over ``source`` in
    a thread with a max of 50 lines, and returns ``(events, release)``: its consumer records
    each call in ``events`` and holds the thread in each batch of new lines until
    ``release`` is set (so a writer can run far ahead). The thread is ended afterwards."""
    events: list = []
    stop, ready, release = threading.Event(), threading.Event(), threading.Event()
    ready.set()
    threads: list[threading.Thread] = []

    def emit(kind, payload):
        events.append((kind, payload))
        if kind == "lines":
            release.wait(10)  # the tail thread is held here while the writer runs ahead
        ready.set()

    def start(tail, source):
        thread = threading.Thread(target=tail, args=(source, stop, ready, *recorder(emit), 50, 0.02))
        threads.append(thread)
        thread.start()
        return events, release

    yield start
    release.set()
    stop.set()
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads)


def flood(path: Path) -> None:
    """More than MAX_BEHIND of output at once, then a line ``last``."""
    with open(path, "ab") as fh:
        fh.write(b"".join(b"line %07d %s\n" % (i, b"." * 80) for i in range(MAX_BEHIND // 90 + 10_000)))
        fh.write(b"last\n")


def test_tail_opens_at_the_end_follows_and_switches_files(tmp_path):
    first = tmp_path / "a.log"
    first.write_bytes(b"".join(b"old line %d\n" % i for i in range(10000)))
    box = [first]
    events, stop, thread = collect_tail(box)
    try:
        wait_until(lambda: events, message="open event")
        kind, (path, lines) = events[0]
        assert kind == "open" and path == first
        assert lines == [f"old line {i}" for i in range(9995, 10000)]  # only the last max_lines
        with open(first, "ab") as fh:
            fh.write(b"new \xff\xfe bytes\npartial")
        wait_until(lambda: any(k == "lines" for k, _ in events), message="new line")
        got = [item for k, p in events if k == "lines" for item in p]
        assert got == ["new \ufffd\ufffd bytes"]  # invalid UTF-8 replaced; the partial line waits
        second = tmp_path / "b.log"
        second.write_text("second run\n")
        box[0] = second
        wait_until(lambda: "second run" in [i for k, p in events if k == "lines" for i in p], message="switch")
        got = [item for k, p in events if k == "lines" for item in p]
        assert "partial" in got  # the old file's unterminated tail is flushed first
        divider = next(i for i in got if isinstance(i, Divider))
        assert divider.path == second and "b.log" in divider.text
        assert got.index("partial") < got.index(divider) < got.index("second run")
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_tail_coalesces_while_the_consumer_is_busy(tmp_path):
    log = tmp_path / "busy.log"
    log.write_text("")
    events: list = []
    stop, ready = threading.Event(), threading.Event()
    ready.set()
    thread = threading.Thread(target=run_tail, args=(lambda: log, stop, ready, *recorder(lambda k, p: events.append((k, p))), 50, 0.02))
    thread.start()
    try:
        wait_until(lambda: events, message="open")
        with open(log, "a") as fh:
            fh.write("first\n")
        wait_until(lambda: len(events) == 2, message="first batch")
        with open(log, "a") as fh:  # ready is not set again: the consumer is "busy"
            fh.writelines(f"line {i}\n" for i in range(500))
        ready.set()
        wait_until(lambda: len(events) == 3, message="coalesced batch")
        marker, *lines = events[2][1]
        assert lines == [f"line {i}" for i in range(450, 500)]  # capped to max_lines
        assert isinstance(marker, Divider) and "450 lines not shown" in marker.text
    finally:
        stop.set()
        thread.join(5)


def test_tail_far_behind_the_writer_skips_with_a_divider_that_is_never_dropped(tmp_path, held_tail):
    """The pane's follower skips what lies more than MAX_BEHIND behind the writer, and says so in
    a divider that coalescing keeps (the lines after it are capped as usual)."""
    log = tmp_path / "fast.log"
    log.write_text("")
    events, release = held_tail(run_tail, lambda: log)
    wait_until(lambda: events, message="open")
    with open(log, "ab") as fh:
        fh.write(b"first\n")
    wait_until(lambda: len(events) == 2, message="the first batch, held in emit")
    flood(log)
    release.set()
    wait_until(lambda: "last" in events[-1][1], message="the end of the output")
    items = [item for _, batch in events[2:] for item in batch]
    skips = [i for i in items if isinstance(i, Divider) and i.text.startswith("skipped ")]
    assert len(skips) == 1, items[:3]
    assert re.fullmatch(rf"skipped \d+\.\d MB \([\d,]+ lines\) of output; see {re.escape(str(log))}", skips[0].text)
    assert items.index(skips[0]) == 0 and len([i for i in items if isinstance(i, str)]) <= 50


async def test_pane_colours_strips_escapes_and_switches_on_restart(home, tmp_path, quiet_api):
    script = tmp_path / "colour.sh"
    script.write_text(
        "printf '\\033[31mred alert\\033[0m plain\\n'\n"
        "printf 'title\\033]0;pwned\\007 end\\n'\n"
        "printf 'bell\\007 and \\377 byte\\n'\n"
        "exec sleep 300\n"
    )
    quiet_api.add("paint", f"sh {script}", workdir=str(tmp_path))
    first_log = read_state(home.root)["processes"]["paint"]["log_path"]
    app = AutoApp(home=home, poll_interval=0.1, cwd=str(tmp_path))
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: any("red alert" in t for t in pane_text(app)), message="coloured line")
        pane = app.query_one(LogPane)
        red = next(e.text for e in pane.entries if "red alert" in e.text.plain)
        assert red.plain == "red alert plain"
        # rendered as colour (ANSI red is standard colour 1), not as text
        assert [(sp.start, sp.end, sp.style.color.number) for sp in red.spans] == [(0, 9, 1)]
        assert "title end" in pane_text(app)  # OSC title sequence removed
        assert "bell and \ufffd byte" in pane_text(app)  # control char stripped, bad byte replaced
        assert all("\x1b" not in t and "\x07" not in t for t in pane_text(app))
        assert pane.border_title.endswith(first_log.rsplit("/", 1)[1])

        await pilot.press("r")
        await until(pilot, lambda: read_state(home.root)["processes"]["paint"]["log_path"] != first_log)
        new_log = read_state(home.root)["processes"]["paint"]["log_path"]
        new_name = new_log.rsplit("/", 1)[1]
        await until(pilot, lambda: any(new_name in t and "new run" in t for t in pane_text(app)), message="divider")
        await until(pilot, lambda: pane.border_title.endswith(new_name))


@pytest.mark.slow
async def test_follow_toggle_scroll_pause_and_search(home, tmp_path, quiet_api):
    quiet_api.add("chatty", "for i in $(seq 1 300); do echo line-$i; done; echo needle-one; exec sleep 300",
                  workdir=str(tmp_path))
    app = AutoApp(home=home, poll_interval=0.1, cwd=str(tmp_path))
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: "needle-one" in pane_text(app), message="log lines")
        await until(pilot, lambda: cell(app, "chatty", "status") == "running")
        pane = app.query_one(LogPane)
        view = app.query_one(LogView)
        assert pane.follow
        await until(pilot, lambda: view.max_scroll_y > 0, message="a scrollable pane")
        await pilot.press("f")
        assert not pane.follow and "paused" in pane.border_subtitle
        await pilot.press("f")
        assert pane.follow
        await pilot.press("tab")
        assert app.focused is view
        await pilot.press("pageup")
        await until(pilot, lambda: not pane.follow, message="scrolling up pauses follow")
        await pilot.press("/", *"needle")
        matching = [t for t in pane_text(app) if "needle" in t]  # the needle line (and the header, if kept)
        assert 1 <= len(matching) < len(pane_text(app))
        await until(pilot, lambda: len(view.lines) == len(matching), message="search filters the pane")
        assert "needle-one" in view.lines[-1].text
        await pilot.press("escape")
        await until(pilot, lambda: len(view.lines) > 1, message="search cleared")
        await pilot.press("tab")
        assert app.focused is app.query_one("#table")


async def test_pane_memory_is_capped(home, tmp_path, quiet_api):
    quiet_api.add("flood", "seq 1 5000; exec sleep 300", workdir=str(tmp_path))
    app = AutoApp(home=home, poll_interval=0.1, cwd=str(tmp_path), log_lines=200)
    async with running(app, SIZE) as pilot:
        await until(pilot, lambda: "5000" in pane_text(app), message="last line")
        assert len(app.query_one(LogPane).entries) <= 200
        assert len(app.query_one(LogView).lines) <= 200


@pytest.mark.slow
async def test_brackets_step_through_previous_runs_and_back_to_live(home, tmp_path):
    """`[` shows the previous run's log, `]` the next; back at the newest, it follows live.
    Runs are labelled as the CLI numbers them: `auto log NAME --run -2` is the previous one."""
    from auto_core.lifecycle import Api
    from auto_core.logtree import logs

    api = Api(home)
    api.add("runner", 'echo "run $(date +%s%N)"; exec sleep 300', workdir=str(tmp_path))
    for _ in range(2):
        api.restart(["runner"])
    runs = [r.path for r in logs.runs(home, "runner")]
    assert len(runs) == 3
    firsts = [p.read_text().splitlines()[0] for p in runs]  # each run's own header
    app = AutoApp(home=home, poll_interval=0.1, cwd=str(tmp_path))
    async with running(app, SIZE) as pilot:
        pane = app.query_one(LogPane)
        await until(pilot, lambda: pane.path == runs[2], message="the current run opened")
        await pilot.press("tab")  # the keys belong to the log pane
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: pane.path == runs[1], message="the previous run")
        assert pane_text(app)[0] == firsts[1] and "run -2 of 3" in str(pane.border_title)
        await pilot.press("left_square_bracket", "left_square_bracket")  # the second one stops at the oldest
        await until(pilot, lambda: pane.path == runs[0], message="the oldest run")
        assert pane_text(app)[0] == firsts[0] and "run -3 of 3" in str(pane.border_title)
        await pilot.press("right_square_bracket", "right_square_bracket")
        await until(pilot, lambda: pane.path == runs[2] and pane.run_offset == 0, message="back to the current run")
        assert "run -" not in str(pane.border_title)
        api.restart(["runner"])  # live again: the pane follows the next run's new file
        await until(pilot, lambda: pane.path not in runs and pane.path is not None, message="followed the new run")


async def test_w_wraps_long_lines_and_back(home, tmp_path, quiet_api):
    quiet_api.add("long", "echo start-$(printf 'x%.0s' $(seq 150))-end; exec sleep 300", workdir=str(tmp_path))
    app = AutoApp(home=home, poll_interval=0.1, cwd=str(tmp_path))
    async with running(app, (80, 24)) as pilot:
        view = app.query_one(LogView)
        await until(pilot, lambda: any(t.startswith("start-") for t in pane_text(app)), message="the long line")
        assert "-end" not in shown(view)  # cut at the pane's edge
        await pilot.press("w")
        await until(pilot, lambda: "-end" in shown(view), message="the line wrapped")
        assert "wrapped" in str(app.query_one(LogPane).border_subtitle)
        await pilot.press("w")
        await until(pilot, lambda: "-end" not in shown(view), message="unwrapped again")


def test_merged_tail_opens_in_time_order_follows_and_coalesces(tmp_path):
    """``run_merged`` over the core's ``Merged``: the opening lines of two logs in the order
    they were written, then each new line with its process's name; a busy consumer gets at
    most ``max_lines`` and a marker counting the rest."""
    from auto_core.logtree import merge

    a, b = tmp_path / "a_260921_140000.log", tmp_path / "b_260921_140000.log"
    a.write_text("a-1\na-2\n")
    b.write_text("b-1\n")
    begun = logs.parse_name(a.name)[1].timestamp()
    os.utime(a, (begun + 30, begun + 30))  # a-1 at +15, a-2 at +30
    os.utime(b, (begun + 20, begun + 20))  # b-1 at +20
    files = {"a": a, "b": b}
    merged = merge.Merged(lambda: sorted(files), files.get, files.get)
    events: list = []
    stop, ready = threading.Event(), threading.Event()
    ready.set()
    thread = threading.Thread(target=run_merged, args=(merged, stop, ready, *recorder(lambda k, p: events.append((k, p))), 50, 0.02))
    thread.start()
    try:
        wait_until(lambda: events, message="open")
        assert events[0] == ("open", (["a", "b"], [("a", "a-1"), ("b", "b-1"), ("a", "a-2")]))
        with open(b, "a") as fh:
            fh.write("b-2\n")
        wait_until(lambda: len(events) == 2, message="b's new line")
        with open(a, "a") as fh:  # ready is not set again: the consumer is "busy"
            fh.writelines(f"a-{i}\n" for i in range(3, 503))
        ready.set()
        wait_until(lambda: len(events) >= 3 and ("a", "a-502") in events[-1][1][1], message="a's lines")
        assert events[1] == ("lines", (["a", "b"], [("b", "b-2")]))
        # ready was set once more, so one batch came: the last 50 lines under a marker that
        # counts the 450 before them.
        assert len(events) == 3
        marker, *lines = events[2][1][1]
        assert isinstance(marker, Divider) and "450 lines not shown" in marker.text, marker
        assert lines == [("a", f"a-{i}") for i in range(453, 503)]
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


async def test_L_shows_every_log_merged_in_time_order_and_follows_each(home, tmp_path, quiet_api):
    """`L`: the lines of both processes in the order they were written, each prefixed with its
    process's name in that name's colour; a new line of either shows up; `L` again goes back
    to the highlighted process's log."""
    import time

    from auto_tui.logpane import name_style

    wait_for = 'for i in 1 2 3; do while [ ! -e go-{0}-$i ]; do sleep 0.02; done; echo {0}-line-$i; done; exec sleep 300'
    for name in ("alpha", "beta"):
        quiet_api.add(name, wait_for.format(name), workdir=str(tmp_path))
    logs_of = {name: Path(read_state(home.root)["processes"][name]["log_path"]) for name in ("alpha", "beta")}

    def write(name: str, i: int) -> None:
        (tmp_path / f"go-{name}-{i}").touch()
        wait_until(lambda: f"{name}-line-{i}" in logs_of[name].read_text(), message=f"{name}-line-{i} written")
        written = logs_of[name].stat().st_mtime
        wait_until(lambda: time.time() > written + 0.05, message="the clock past that write")

    # Written before the view opens: beta's line first (alpha sorts first, so a tie would
    # put alpha's first: only the times order them).
    write("beta", 1)
    write("alpha", 1)
    app = AutoApp(home=home, poll_interval=0.1, cwd=str(tmp_path))
    async with running(app, SIZE) as pilot:
        pane = app.query_one(LogPane)
        await until(pilot, lambda: cell(app, "beta", "status") == "running", message="both rows")
        await pilot.press("L")
        await until(pilot, lambda: pane.merged and any("alpha-line-1" in t for t in pane_text(app)),
                    message="the merged view")
        assert "all 2 processes" in str(pane.border_title)
        write("alpha", 2)
        await until(pilot, lambda: "alpha │ alpha-line-2" in pane_text(app), message="alpha's new line")
        write("beta", 2)
        await until(pilot, lambda: "beta  │ beta-line-2" in pane_text(app), message="beta's new line")
        ours = [t for t in pane_text(app) if re.search(r"│ \w+-line-\d$", t)]
        assert ours == ["beta  │ beta-line-1", "alpha │ alpha-line-1", "alpha │ alpha-line-2", "beta  │ beta-line-2"]
        for name in ("alpha", "beta"):
            text = next(e.text for e in pane.entries if e.text.plain.startswith(f"{name} "))
            assert text.spans[0].style == name_style(name) and text.spans[0].end == len("alpha │ ")
        await pilot.press("L")
        await until(pilot, lambda: not pane.merged and pane.path == logs_of["alpha"], message="alpha's log again")
        assert all("│" not in t for t in pane_text(app))


@pytest.mark.slow
async def test_L_cuts_a_long_name_so_the_lines_stay_in_view(home, tmp_path, quiet_api):
    """A name may have 64 characters: the name column stops at 16 (cut with "…"), so an
    80-column pane still shows the lines; the search finds the whole name."""
    long = "nightly-report-export-" + "x" * 42
    assert len(long) == 64
    for name in (long, "web"):
        quiet_api.add(name, f"echo {name[:3]}-said-hello; exec sleep 300", workdir=str(tmp_path))
    app = AutoApp(home=home, poll_interval=0.1, cwd=str(tmp_path))
    async with running(app, (80, 24)) as pilot:
        pane, view = app.query_one(LogPane), app.query_one(LogView)
        await until(pilot, lambda: cell(app, "web", "status") == "running", message="both rows")
        await pilot.press("L")
        await until(pilot, lambda: pane.merged and f"{long[:15]}… │ nig-said-hello" in shown(view)
                    and f"{'web':<16} │ web-said-hello" in shown(view), message="both lines in view")
        await pilot.press("tab", "/", *long[-20:])  # past the cut
        await until(pilot, lambda: "nig-said-hello" in shown(view) and "web-said-hello" not in shown(view),
                    message="the search by the whole name")


async def test_L_with_w_indents_a_wrapped_line_under_its_text(home, tmp_path, quiet_api):
    """Wrapped in the all-services view, a line's continuations start under its text, so the
    name column stays clear; unwrapped, the line runs past the edge as before."""
    # The line ends in "x-42", which its command (in the run's header line) does not have.
    quiet_api.add("web", "echo start-$(printf 'x%.0s' $(seq 150))-$((40 + 2)); exec sleep 300", workdir=str(tmp_path))
    app = AutoApp(home=home, poll_interval=0.1, cwd=str(tmp_path))
    async with running(app, (80, 24)) as pilot:
        pane, view = app.query_one(LogPane), app.query_one(LogView)
        await until(pilot, lambda: cell(app, "web", "status") == "running", message="the row")
        await pilot.press("L")
        await until(pilot, lambda: pane.merged and "web │ start-x" in shown(view), message="the merged view")
        assert "x-42" not in shown(view)
        await pilot.press("w")
        await until(pilot, lambda: "x-42" in shown(view), message="the line wrapped")
        lines = shown(view).splitlines()
        last = next(i for i, line in enumerate(lines) if "x-42" in line)
        first = max(i for i, line in enumerate(lines[:last]) if line.startswith("web │"))
        assert lines[first].startswith("web │ start-x"), lines[first : last + 1]
        for line in lines[first + 1 : last + 1]:
            assert re.match(r" {6}x", line), lines[first : last + 1]  # under "start-", after "web │ "


def test_a_name_has_the_same_colour_as_in_auto_log():
    from auto_core.cmdline import logcli
    from auto_tui import logpane

    assert logpane.PALETTE == logcli.PALETTE
    assert logpane.name_style("api") == "bold color(11)"  # SGR 93 (bright yellow), as auto log


def test_merged_tail_far_behind_one_writer_skips_with_a_named_divider(tmp_path, held_tail):
    """In the all-processes view too, a process's follower skips what lies more than MAX_BEHIND
    behind its writer; the divider names the process and coalescing keeps it."""
    from auto_core.logtree import merge

    files = {"fast": tmp_path / "fast.log", "slow": tmp_path / "slow.log"}
    for path in files.values():
        path.write_text("")
    merged = merge.Merged(lambda: sorted(files), files.get, files.get, max_behind=MAX_BEHIND)
    events, release = held_tail(run_merged, merged)
    wait_until(lambda: events, message="open")
    with open(files["slow"], "ab") as fh:
        fh.write(b"slow one\n")
    wait_until(lambda: len(events) == 2, message="the first batch, held in emit")
    flood(files["fast"])
    release.set()
    wait_until(lambda: ("fast", "last") in events[-1][1][1], message="the end of the output")
    items = [item for _, (_, batch) in events[2:] for item in batch]
    skips = [i for i in items if isinstance(i, Divider) and "skipped" in i.text]
    assert len(skips) == 1 and skips[0].text.startswith("fast: skipped "), items[:3]
    assert items.index(skips[0]) == 0 and len([i for i in items if isinstance(i, tuple)]) <= 50
