"""Run events and where they go: a live console view, JSON lines, and the run log file."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.text import Text
from rich.table import Table


@dataclass
class Event:
    """One thing that happened. `event` names it: run.start, phase.start, resource, handler, gate,
    host.unreachable, host.failed, host.done, phase.end, run.end, message."""

    event: str
    host: str | None = None
    phase: str | None = None
    resource: str | None = None
    status: str | None = None  # ok | changed | would-change | failed | unreachable | skipped | restarted
    changes: list[str] | None = None
    message: str | None = None
    diff: str | None = None
    elapsed: float | None = None
    data: dict[str, Any] | None = None
    time: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, default=str)


class Sink(Protocol):
    def emit(self, event: Event) -> None: ...

    def close(self) -> None: ...


class JsonLinesSink:
    """One JSON object per line: for machines (`--json`) and for the run log."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        with self._lock:
            self.stream.write(event.to_json() + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.stream not in (sys.stdout, sys.stderr):
            self.stream.close()


class ConsoleSink:
    """Human output: a line per change or failure as it happens, prefixed by phase and host; diffs
    when asked; quiet about what is already right unless verbose."""

    STYLES = {"changed": "yellow", "would-change": "yellow", "failed": "bold red", "unreachable": "bold red",
              "ok": "green", "restarted": "cyan", "skipped": "dim"}

    def __init__(self, console: Console | None = None, *, verbose: bool = False) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.verbose = verbose
        self._lock = threading.RLock()
        self._live: Live | None = None
        self._doing: dict[str, str] = {}  # host -> what it is doing now, shown live on a terminal

    def emit(self, event: Event) -> None:
        with self._lock:
            self._emit(event)
            if event.event in ("host.done", "phase.end") and self._live is not None:
                if event.event == "phase.end":
                    self._doing.clear()
                else:
                    self._doing.pop(event.host or "", None)
                self._refresh()

    def status(self, host: str, phase: str | None, text: str) -> None:
        if not self.console.is_terminal:
            return
        with self._lock:
            self._doing[host] = f"[{phase}] {text}" if phase else text
            self._refresh()

    def _refresh(self) -> None:
        if not self._doing:
            if self._live is not None:
                self._live.stop()
                self._live = None
            return
        lines = Table.grid(padding=(0, 1))
        for host in sorted(self._doing):
            lines.add_row(Spinner("dots"), Text(host, style="bold"), Text(self._doing[host]))
        if self._live is None:
            self._live = Live(lines, console=self.console, transient=True, refresh_per_second=8)
            self._live.start()
        else:
            self._live.update(lines)

    def _emit(self, e: Event) -> None:
        # Everything that comes from hosts or inventories is escaped: "[modules]" is text, not a style.
        tag = escape(f"[{e.phase}] ") if e.phase else ""
        host = escape(e.host or "")
        what = escape(e.resource or "")
        style = self.STYLES.get(e.status or "", "")
        status = f"[{style}]{e.status}[/]" if style else escape(e.status or "")
        if e.event == "phase.start":
            self.console.print(f"==> [bold]{escape(e.phase or '')}[/bold]" + (f": {escape(e.message)}" if e.message else ""))
        elif e.event == "resource" and (e.status != "ok" or self.verbose):
            changes = escape(f" ({', '.join(e.changes)})") if e.changes else ""
            self.console.print(f"{tag}{host}: {status} {what}{changes}")
            if e.message and e.status == "failed":
                self.console.print(f"    {e.message}", markup=False, style="red")
        elif e.event == "diff" and e.diff:
            self.console.print(e.diff.rstrip("\n"), markup=False, highlight=False)
        elif e.event in ("handler", "gate") and (e.status != "ok" or self.verbose or e.event == "handler"):
            self.console.print(f"{tag}{host}: {status} {what}" + (f": {escape(e.message)}" if e.message else ""))
        elif e.event == "preflight":
            level = "bold red" if e.status == "error" else "yellow"
            self.console.print(f"{tag}{host}: [{level}]{e.status}[/] {escape(f'[{what}]')} {escape(e.message or '')}")
        elif e.event == "timings" and e.data:
            self.console.print("phase timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in e.data.items()),
                               markup=False)
        elif e.event in ("host.unreachable", "host.failed"):
            self.console.print(f"{tag}{host}: {status} {escape(e.message or '')}")
        elif e.event == "message":
            self.console.print(f"{e.phase and f'[{e.phase}] ' or ''}{e.host + ': ' if e.host else ''}{e.message}",
                               markup=False)

    def close(self) -> None:
        with self._lock:
            self._doing.clear()
            self._refresh()


@dataclass
class HostTally:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    restarted: int = 0


class Reporter:
    """Fans events out to sinks and keeps the per-host tally for the recap."""

    def __init__(self, sinks: list[Sink] | None = None) -> None:
        self.sinks: list[Sink] = list(sinks or [])
        self.tally: dict[str, HostTally] = defaultdict(HostTally)
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        with self._lock:
            if event.host:
                self._count(event.host, event)
        for sink in self.sinks:
            sink.emit(event)

    def _count(self, host: str, e: Event) -> None:
        t = self.tally[host]
        if e.event == "resource":
            if e.status == "ok":
                t.ok += 1
            elif e.status in ("changed", "would-change"):
                t.changed += 1
            elif e.status == "failed":
                t.failed += 1
        elif e.event == "handler" and e.status == "restarted":
            t.restarted += 1
        elif e.event == "gate" and e.status == "failed":
            t.failed += 1
        elif e.event == "host.unreachable":
            t.unreachable = 1
        elif e.event == "host.failed" and t.failed == 0:
            t.failed = 1
        elif e.event == "host.skipped":
            t.skipped += 1

    def status(self, host: str, phase: str | None, text: str) -> None:
        """Transient progress of one host (for live displays only; not an event, never logged)."""
        for sink in self.sinks:
            show = getattr(sink, "status", None)
            if show is not None:
                show(host, phase, text)

    def message(self, text: str, *, host: str | None = None, phase: str | None = None) -> None:
        self.emit(Event("message", host=host, phase=phase, message=text))

    def recap_table(self) -> Table:
        table = Table("host", "ok", "changed", "restarted", "failed", "unreachable", "skipped", title="recap")
        for host in sorted(self.tally):
            t = self.tally[host]
            table.add_row(host, str(t.ok), str(t.changed), str(t.restarted), str(t.failed), str(t.unreachable),
                          str(t.skipped))
        return table

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def open_run_log(log_dir: Path, command: str) -> tuple[JsonLinesSink, Path]:
    """A JSON-lines log of the whole run in the state directory, for after-the-fact questions."""
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = log_dir / f"{stamp}-{command}.jsonl"
    return JsonLinesSink(path.open("a", encoding="utf-8")), path
