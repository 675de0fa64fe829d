"""The engine session of one command: the chosen hosts, the runner and the reporter, and the only ways
plays reach a host outside a plan (a command, a query), so events and unreachable handling always apply."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Generic, Mapping, Protocol, Sequence, TypeVar

from kbuild.engine.plan import HostOutcome, HostStatus, Plan
from kbuild.engine.report import Reporter
from kbuild.engine.runner import Runner
from kbuild.engine.ssh import Connection, Result
from kbuild.errors import ExitCode, KbuildError

T = TypeVar("T")


class Named(Protocol):
    """What the engine needs of a host: its name (the inventory's Host has much more)."""

    @property
    def name(self) -> str: ...


H = TypeVar("H", bound=Named)


class QueryError(KbuildError):
    """A query's command failed or printed what its parser cannot read: one line naming the host and the query."""


@dataclass(frozen=True)
class Query(Generic[T]):
    """A read-only command and the parser of its output: one fact about a host, gathered through the session.

    `parse` raises ValueError (with a message saying what it found) on output it cannot read."""

    what: str  # for messages: "etcd endpoint status"
    command: str
    parse: Callable[[str], T]
    timeout: float | None = 60.0

    def read(self, host: str, result: Result) -> T:
        """The parsed fact, or a QueryError naming `host`, the query and what came back."""
        if not result.ok:
            # The end of what the tool said is its error (etcdctl logs retries before it).
            said = one_line(result.err or result.out)[-300:] or "no output"
            raise QueryError(f"{host}: {self.what} failed (exit {result.rc}): {said}")
        try:
            return self.parse(result.out)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise QueryError(f"{host}: unexpected {self.what} output: {one_line(str(exc))[:400]}") from None


def one_line(text: str) -> str:
    """A host's output quoted in a one-line message: its lines joined, runs of blanks as one."""
    return " ".join(text.split())


@dataclass
class Session(Generic[H]):
    """Hosts, runner and reporter of one command. Plays use this API, never the runner's internals."""

    hosts: list[H]
    runner: Runner

    @property
    def reporter(self) -> Reporter:
        return self.runner.reporter

    @property
    def host_names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def selected(self, hosts: Sequence[H]) -> list[H]:
        """The subset of `hosts` this session works on (what --limit kept), in their order."""
        chosen = set(self.host_names)
        return [h for h in hosts if h.name in chosen]

    # -- running things -------------------------------------------------------------------------

    def apply(self, phase: str, plans: dict[str, Plan], *, serial: int | None = None,
              describe: str | None = None) -> dict[str, HostOutcome]:
        return self.runner.apply(phase, plans, serial=serial, describe=describe)

    def each(self, phase: str, names: list[str], task: Callable[[Connection], str | None], *,
             describe: str | None = None) -> dict[str, HostOutcome]:
        return self.runner.each(phase, names, task, describe=describe)

    def defer(self, host: str, services: list[str]) -> None:
        """Owe `services` on `host` a restart, done where a later plan manages them (or by flush_handlers)."""
        self.runner.defer(host, services)

    def flush_handlers(self, phase: str = "handlers") -> dict[str, HostOutcome]:
        return self.runner.flush_handlers(phase)

    def run(self, phase: str, name: str, command: str, *, timeout: float | None = 600) -> Result:
        """One command on one host outside any plan. A nonzero exit is the caller's to judge; an unreachable
        host is reported and sits out the rest of the run, and the UnreachableError is raised."""
        return self.runner.run_on(phase, name, command, timeout=timeout)

    def read(self, phase: str, name: str, query: Query[T]) -> T:
        """One fact from one host: its command run there, its output parsed (QueryError when it cannot be)."""
        return query.read(name, self.run(phase, name, query.command, timeout=query.timeout))

    def gather(self, phase: str, queries: Mapping[str, Query[T]], *, describe: str | None = None,
               summary: Callable[[T], str] | None = None) -> tuple[dict[str, T], dict[str, HostOutcome]]:
        """A fact from each host in parallel (host name -> its query); a host whose query fails is failed in
        the outcomes, one that cannot be reached is unreachable. Returns the facts read and every outcome."""
        found: dict[str, T] = {}

        def task(conn: Connection) -> str | None:
            name = conn.target.name
            query = queries[name]
            found[name] = query.read(name, conn.run(query.command, timeout=query.timeout))
            return summary(found[name]) if summary else None

        outcomes = self.each(phase, list(queries), task, describe=describe)
        return found, outcomes

    # -- hosts out of the run ---------------------------------------------------------------------

    @property
    def dead(self) -> Mapping[str, HostStatus]:
        """Hosts that failed or were unreachable earlier in this run, and which of the two (read only)."""
        return MappingProxyType(self.runner.dead)

    def is_up(self, name: str) -> bool:
        return name not in self.runner.dead

    def revive(self, name: str, *, reconnect: bool = False) -> None:
        """Let a host that failed take part again (a failure the caller handles, e.g. by rolling back);
        `reconnect` also drops its connection, so the next use connects afresh (after a reboot, say)."""
        self.runner.revive(name, reconnect=reconnect)

    def exit_code(self) -> ExitCode:
        statuses = set(self.runner.dead.values())
        if HostStatus.UNREACHABLE in statuses:
            return ExitCode.UNREACHABLE
        if HostStatus.FAILED in statuses:
            return ExitCode.FAILED
        return ExitCode.OK
