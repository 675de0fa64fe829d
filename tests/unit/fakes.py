"""The one stand-in for the engine session in unit tests: the real Session and Runner over scripted hosts.

Hosts answer commands through a function instead of SSH, so every play still goes through the runner's
own code (events, unreachable handling, hosts out of the run); only the transport is fake. A test that
wants plans recorded rather than applied gives `runner=PlanRecorder`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from kbuild.engine.plan import HostOutcome, HostStatus, Plan
from kbuild.engine.report import Event, Reporter
from kbuild.engine.runner import Runner
from kbuild.engine.session import Session
from kbuild.engine.ssh import Connection, ConnectionPool, Result, SSHTarget, Stats
from kbuild.errors import UnreachableError
from kbuild.inventory import Host

# (host name, command) -> what the host prints on stdout (exit 0), or a whole Result.
Answer = Callable[[str, str], "str | Result"]


def silent(host: str, command: str) -> str:
    return ""


class ScriptedHost(Connection):
    """A connection whose commands are answered by a function; it records every command it is given."""

    def __init__(self, target: SSHTarget, answer: Answer, log: list[tuple[str, str]],
                 inputs: dict[str, bytes]) -> None:
        self.target = target
        self.stats = Stats()
        self._answer = answer
        self._log = log
        self._inputs = inputs

    def run(self, command: str, *, stdin: Any = None, timeout: float | None = 600, stdout_sink: Any = None,
            progress: Any = None) -> Result:
        self._log.append((self.target.name, command))
        if stdin is not None:
            self._inputs[self.target.name] = stdin if isinstance(stdin, bytes) else stdin.read()
        got = self._answer(self.target.name, command)
        return got if isinstance(got, Result) else Result(0, got.encode(), b"")

    def run_script(self, script: bytes, *, timeout: float | None = 600) -> Result:
        return self.run("sh -s", stdin=script, timeout=timeout)

    def close(self) -> None:
        pass


class EventLog:
    """A reporter sink keeping every event, for assertions."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


class PlanRecorder(Runner):
    """A runner that records the plans it is given instead of applying them: every host comes back ok.
    `on_apply(phase, plans)`, when set, is called first (to change the scripted world, or to fail)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.applied: list[tuple[str, dict[str, Plan]]] = []
        self.on_apply: Callable[[str, dict[str, Plan]], None] | None = None

    def apply(self, phase: str, plans: dict[str, Plan], *, serial: int | None = None,
              describe: str | None = None) -> dict[str, HostOutcome]:
        if self.on_apply is not None:
            self.on_apply(phase, plans)
        self.applied.append((phase, plans))
        return {h: HostOutcome(h, HostStatus.OK) for h in plans}


class FakeSession(Session[Host]):
    """The engine session over scripted hosts: `commands` holds (host, command) in the order they ran,
    `inputs` the last stdin each host was sent, `events` every event reported; hosts in `unreachable`
    cannot be connected to (the pool remembers a failed connection until the host is revived with reconnect). `runner` makes the runner from (pool, reporter, options): Runner by default."""

    def __init__(self, hosts: Iterable[Host], answer: Answer = silent, *, runner: Callable[..., Runner] = Runner,
                 unreachable: Iterable[str] = (), check: bool = False, **runner_options: Any) -> None:
        hosts = list(hosts)
        self.commands: list[tuple[str, str]] = []
        self.inputs: dict[str, bytes] = {}
        self.log = EventLog()
        self.unreachable = set(unreachable)  # may change during a test: a host going down, or coming back

        def connect(target: SSHTarget, stats: Stats) -> Connection:
            if target.name in self.unreachable:
                raise UnreachableError(f"{target.name}: connection refused (scripted)")
            return ScriptedHost(target, answer, self.commands, self.inputs)

        targets = {h.name: SSHTarget(h.name, str(h.address)) for h in hosts}
        pool = ConnectionPool(targets, Path("/nonexistent/known_hosts"), connector=connect)
        super().__init__(hosts, runner(pool, Reporter([self.log]), check=check, **runner_options))

    @property
    def events(self) -> list[Event]:
        return self.log.events

    @property
    def messages(self) -> list[str]:
        return [e.message for e in self.events if e.message]

    def commands_on(self, host: str) -> list[str]:
        return [c for h, c in self.commands if h == host]
