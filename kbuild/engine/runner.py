"""The runner: for each host, gather facts (one round trip), diff, apply what differs (one round trip),
restart notified services once, then wait on health gates. Hosts run in parallel, or in serial
batches for rolling steps. Check mode stops after the diff.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from kbuild.engine.facts import q
from kbuild.engine.hostrun import HostRun
from kbuild.engine.plan import Gate, HostOutcome, HostStatus, Plan
from kbuild.engine.report import Event, Reporter
from kbuild.engine.ssh import Connection, ConnectionPool, Result
from kbuild.errors import HostKeyError, KbuildError, UnreachableError

__all__ = ["Gate", "HostOutcome", "HostStatus", "Plan", "Runner"]


class Runner:
    """Applies plans to hosts through a connection pool, reporting every step."""

    def __init__(self, pool: ConnectionPool, reporter: Reporter, *, forks: int = 10, check: bool = False,
                 diff: bool = False, fail_fast: bool = False) -> None:
        self.pool = pool
        self.reporter = reporter
        self.forks = max(1, forks)
        self.check = check
        self.diff = diff
        self.fail_fast = fail_fast
        self.dead: dict[str, HostStatus] = {}  # hosts out of the run (failed or unreachable) and why
        # Restarts owed to services a phase notified but does not manage (its Service comes in a later
        # phase, or none does): carried forward, like Ansible handlers flushed at the end of a play.
        self.deferred: dict[str, list[str]] = {}
        self._deferred_lock = threading.Lock()

    # -- orchestration ------------------------------------------------------------------------

    def apply(self, phase: str, plans: dict[str, Plan], *, serial: int | None = None,
              describe: str | None = None) -> dict[str, HostOutcome]:
        """Run one phase. With `serial`, hosts go in batches of that size and a failed batch stops the rest."""
        self.reporter.emit(Event("phase.start", phase=phase, message=describe))
        outcomes: dict[str, HostOutcome] = {}
        names = list(plans)
        batches = [names[i:i + serial] for i in range(0, len(names), serial)] if serial else [names]
        stop = False
        for batch in batches:
            if stop:
                for name in batch:
                    outcomes[name] = self._skip(phase, name, "an earlier batch failed")
                continue
            outcomes.update(self._run_batch(phase, {n: plans[n] for n in batch}))
            failed = any(o.status in (HostStatus.FAILED, HostStatus.UNREACHABLE) for n, o in outcomes.items()
                         if n in batch)
            stop = failed and (serial is not None or self.fail_fast)
        self.reporter.emit(Event("phase.end", phase=phase,
                                 data={n: o.status.value for n, o in outcomes.items()}))
        return outcomes

    def run_on(self, phase: str, name: str, command: str, *, timeout: float | None = 600) -> Result:
        """One command on one host outside any plan (a query, a kubectl call): a nonzero exit is data for the
        caller; an unreachable host is reported as in `apply`, sits out the rest of the run, and is raised."""
        if name in self.dead:
            raise UnreachableError(f"{name}: {self.dead[name].value} earlier in this run, so {phase} skips it")
        try:
            return self.pool.get(name).run(command, timeout=timeout)
        except (UnreachableError, HostKeyError) as exc:
            self.dead[name] = HostStatus.UNREACHABLE
            self.reporter.emit(Event("host.unreachable", host=name, phase=phase, status="unreachable",
                                     message=str(exc)))
            raise

    def revive(self, name: str, *, reconnect: bool = False) -> None:
        """Let a host that failed or was unreachable take part again; `reconnect` also drops its connection."""
        self.dead.pop(name, None)
        if reconnect:
            self.pool.forget(name)

    def take_deferred(self, host: str) -> list[str]:
        with self._deferred_lock:
            return self.deferred.pop(host, [])

    def defer(self, host: str, services: list[str]) -> None:
        if services:
            with self._deferred_lock:
                owed = self.deferred.setdefault(host, [])
                owed += [s for s in services if s not in owed]

    def flush_handlers(self, phase: str = "handlers") -> dict[str, HostOutcome]:
        """Restart what is still owed a restart (if it runs at all: `try-restart`), once per service."""
        owed = {h: s for h, s in self.deferred.items() if h not in self.dead and s}
        if not owed or self.check:
            return {}

        def restart(conn: Connection) -> str:
            services = self.take_deferred(conn.target.name)
            result = conn.run("systemctl try-restart " + " ".join(q(s) for s in services))
            if not result.ok:
                raise KbuildError(f"restarting {', '.join(services)} failed: {result.err.strip()}")
            for service in services:
                self.reporter.emit(Event("handler", host=conn.target.name, phase=phase,
                                         resource=f"service {service}", status="restarted"))
            return ""

        return self.each(phase, list(owed), restart, describe="restarts owed to services outside their phase")

    def each(self, phase: str, names: list[str], task: Callable[[Connection], str | None], *,
             describe: str | None = None) -> dict[str, HostOutcome]:
        """Run an ad-hoc task on every host in parallel (ping, a command, a status probe).

        The task returns a message for the report or raises KbuildError to fail the host; unreachable
        hosts are reported as such, exactly as in `apply`.
        """
        self.reporter.emit(Event("phase.start", phase=phase, message=describe))
        outcomes: dict[str, HostOutcome] = {}
        with ThreadPoolExecutor(max_workers=min(self.forks, max(1, len(names)))) as pool:
            futures = {name: pool.submit(self._each_host, phase, name, task) for name in names
                       if name not in self.dead}
            for name in names:
                outcomes[name] = futures[name].result() if name in futures else \
                    self._skip(phase, name, f"{self.dead[name].value} earlier in this run")
        self._mark_dead(outcomes)
        self.reporter.emit(Event("phase.end", phase=phase, data={n: o.status.value for n, o in outcomes.items()}))
        return outcomes

    def _each_host(self, phase: str, name: str, task: Callable[[Connection], str | None]) -> HostOutcome:
        def work(conn: Connection) -> HostOutcome:
            message = task(conn)
            if message:
                self.reporter.emit(Event("message", host=name, phase=phase, message=message))
            return HostOutcome(name, HostStatus.OK, message=message)

        return self._guarded(phase, name, work)

    def _run_batch(self, phase: str, plans: dict[str, Plan]) -> dict[str, HostOutcome]:
        outcomes: dict[str, HostOutcome] = {}
        runnable = {}
        for name, plan in plans.items():
            if name in self.dead:
                outcomes[name] = self._skip(phase, name, f"{self.dead[name].value} earlier in this run")
            else:
                runnable[name] = plan
        with ThreadPoolExecutor(max_workers=min(self.forks, max(1, len(runnable)))) as pool:
            futures = {name: pool.submit(self._run_host, phase, name, plan) for name, plan in runnable.items()}
            for name, future in futures.items():
                outcomes[name] = future.result()
        self._mark_dead(outcomes)
        return outcomes

    def _mark_dead(self, outcomes: dict[str, HostOutcome]) -> None:
        """Hosts that failed or were unreachable sit out the rest of the run."""
        for name, outcome in outcomes.items():
            if outcome.status in (HostStatus.FAILED, HostStatus.UNREACHABLE):
                self.dead[name] = outcome.status

    def _skip(self, phase: str, name: str, why: str) -> HostOutcome:
        self.reporter.emit(Event("host.skipped", host=name, phase=phase, status="skipped", message=why))
        return HostOutcome(name, HostStatus.SKIPPED, message=why)

    # -- one host -----------------------------------------------------------------------------

    def _run_host(self, phase: str, name: str, plan: Plan) -> HostOutcome:
        return self._guarded(phase, name, lambda conn: HostRun(self, phase, name, conn, plan).run())

    def _guarded(self, phase: str, name: str, work: Callable[[Connection], HostOutcome]) -> HostOutcome:
        """Connect, do the work, and turn known errors into an unreachable/failed outcome for this host only."""
        started = time.monotonic()
        try:
            outcome = work(self.pool.get(name))
        except (UnreachableError, HostKeyError) as exc:
            outcome = HostOutcome(name, HostStatus.UNREACHABLE, message=str(exc))
            self.reporter.emit(Event("host.unreachable", host=name, phase=phase, status="unreachable",
                                     message=str(exc)))
        except KbuildError as exc:
            outcome = HostOutcome(name, HostStatus.FAILED, message=str(exc))
            self.reporter.emit(Event("host.failed", host=name, phase=phase, status="failed", message=str(exc)))
        outcome.elapsed = time.monotonic() - started
        self.reporter.emit(Event("host.done", host=name, phase=phase, status=outcome.status.value,
                                 elapsed=round(outcome.elapsed, 3),
                                 data={"changed": len(outcome.changed), "ok": len(outcome.ok),
                                       "restarted": outcome.restarted}))
        return outcome
