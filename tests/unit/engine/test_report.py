"""Reporting: console lines, live per-host progress on terminals, JSON lines, the recap tally."""

from __future__ import annotations

import io
import json

from rich.console import Console

from kbuild.engine.report import ConsoleSink, Event, JsonLinesSink, Reporter


def test_console_escapes_text_from_hosts_and_shows_live_progress_on_a_terminal():
    out = io.StringIO()
    sink = ConsoleSink(Console(file=out, force_terminal=True, width=120, highlight=False))
    reporter = Reporter([sink])
    reporter.emit(Event("phase.start", phase="nodes"))
    reporter.status("w1", "nodes", "applying 3 changes, sent 1.0 of 4.0 MB")
    assert sink._live is not None  # a live display while a host works
    reporter.emit(Event("preflight", host="w1", phase="preflight", status="error", resource="modules",
                        message="kernel module [bold]x[/bold] missing"))
    reporter.emit(Event("host.done", host="w1", phase="nodes", status="ok"))
    assert sink._live is None  # gone once no host is working
    reporter.close()
    text = out.getvalue()
    assert "[modules]" in text and "[bold]x[/bold]" in text  # shown literally, not as markup


def test_no_live_display_without_a_terminal():
    out = io.StringIO()
    sink = ConsoleSink(Console(file=out, force_terminal=False))
    Reporter([sink]).status("w1", "nodes", "working")
    assert sink._live is None and out.getvalue() == ""


def test_json_lines_and_tally():
    out = io.StringIO()
    reporter = Reporter([JsonLinesSink(out)])
    reporter.emit(Event("resource", host="h", phase="p", resource="file:/x", status="changed", changes=["content"]))
    reporter.emit(Event("resource", host="h", phase="p", resource="file:/y", status="ok"))
    reporter.emit(Event("handler", host="h", phase="p", resource="service a", status="restarted"))
    reporter.status("h", "p", "not an event")  # progress never reaches the log
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in lines] == ["resource", "resource", "handler"]
    assert "diff" not in lines[0]  # empty fields are left out
    tally = reporter.tally["h"]
    assert (tally.ok, tally.changed, tally.restarted, tally.failed) == (1, 1, 1, 0)
