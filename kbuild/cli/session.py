"""Options shared by commands that touch hosts, and the engine session they run in."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from kbuild.cli.common import new_console
from kbuild.connect import open_pool, select_hosts
from kbuild.engine.report import ConsoleSink, Event, JsonLinesSink, Reporter, open_run_log
from kbuild.engine.runner import Runner
from kbuild.engine.session import Session as EngineSession
from kbuild.errors import ExitCode
from kbuild.inventory import Cluster, Host
from kbuild.state import ensure_dir

CheckOption = Annotated[bool, typer.Option("--check", help="Change nothing; report what would change.")]
DiffOption = Annotated[bool, typer.Option("--diff", help="Show unified diffs of changed files (secrets redacted).")]
ForksOption = Annotated[int, typer.Option("--forks", "-f", min=1, max=500, help="Hosts worked on in parallel.")]
LimitOption = Annotated[Optional[str], typer.Option(
    "--limit", "-l", help="Only these hosts: names, globs (worker-*) or roles (role:etcd), comma-separated.")]
JsonEventsOption = Annotated[bool, typer.Option("--json", help="Print one JSON object per event line on stdout.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Also show what is already in place.")]
FailFastOption = Annotated[bool, typer.Option("--fail-fast", help="Stop all hosts as soon as one fails.")]


@dataclass
class RunOptions:
    check: bool = False
    diff: bool = False
    forks: int = 10
    limit: str | None = None
    json: bool = False
    verbose: bool = False
    fail_fast: bool = False
    quiet: bool = False  # the command prints its own result: events go to the run log only


@dataclass
class Session(EngineSession[Host]):
    """The engine's session, plus what a command prints about: its cluster and the run log."""

    cluster: Cluster
    log_path: Path


@contextmanager
def engine_session(cluster: Cluster, options: RunOptions, command: str) -> Iterator[Session]:
    """Connections, reporting and the run log for one command; prints the recap at the end."""
    hosts = select_hosts(cluster, options.limit)
    ensure_dir(cluster.state_dir)
    log_sink, log_path = open_run_log(cluster.state_dir / "logs", command)
    console = new_console(stderr=True)
    sinks: list = [log_sink]
    if not options.quiet:
        sinks.append(JsonLinesSink(sys.stdout) if options.json else ConsoleSink(console, verbose=options.verbose))
    reporter = Reporter(sinks)
    pool = open_pool(cluster, hosts)
    runner = Runner(pool, reporter, forks=options.forks, check=options.check, diff=options.diff,
                    fail_fast=options.fail_fast)
    session = Session(hosts=hosts, runner=runner, cluster=cluster, log_path=log_path)
    try:
        yield session
    finally:
        pool.close()
        stats = pool.stats
        reporter.emit(Event("run.end", data={"connections": stats.connections, "round_trips": stats.round_trips,
                                             "bytes_sent": stats.bytes_sent, "exit_code": int(session.exit_code())}))
        if not (options.json or options.quiet):
            if reporter.tally:
                console.print(reporter.recap_table())
            console.print(f"log: {log_path}", highlight=False)
        reporter.close()


def finish(session: Session) -> None:
    """Exit with the code the run earned: 4 if a host was unreachable, 1 if one failed."""
    code = session.exit_code()
    if code is not ExitCode.OK:
        raise typer.Exit(int(code))
