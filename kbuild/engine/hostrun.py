"""One host in one phase: facts in one round trip, the diff, one apply script with handlers, then gates."""

from __future__ import annotations

import secrets
import time
from typing import Any, Callable, Iterable, Protocol

from kbuild.engine.facts import FACT_FUNCTIONS, FactError, fact_script, parse_facts, q
from kbuild.engine.plan import Gate, HostOutcome, HostStatus, Plan
from kbuild.engine.report import Event, Reporter
from kbuild.engine.resources import Resource, ResourceError, Service
from kbuild.engine.ssh import Connection
from kbuild.engine.tarstream import tar_stream
from kbuild.errors import KbuildError

# Extra shell helpers for apply scripts. kb_fetch lets a host pull an artifact with whatever it has.
APPLY_FUNCTIONS = r"""
kb_fetch() {
  if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 3 --connect-timeout 20 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then wget -q -T 20 -t 3 -O "$2" "$1"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import sys,urllib.request,shutil; shutil.copyfileobj(urllib.request.urlopen(sys.argv[1], timeout=60), open(sys.argv[2], "wb"))' "$1" "$2"
  else echo "no curl, wget or python3 on the host to download $1" >&2; return 1; fi
}
"""



class RunContext(Protocol):
    """What one host's run needs of the whole run (the Runner provides it; hostrun never imports the runner)."""

    reporter: Reporter
    check: bool
    diff: bool

    def take_deferred(self, host: str) -> list[str]: ...

    def defer(self, host: str, services: list[str]) -> None: ...


class HostRun:
    """Facts, diff, apply, handlers and gates for one host in one phase."""

    def __init__(self, runner: RunContext, phase: str, name: str, conn: Connection, plan: Plan) -> None:
        self.runner = runner
        self.phase = phase
        self.name = name
        self.conn = conn
        self.plan = plan
        self.marker = f"@@kb-{secrets.token_hex(6)}"  # frames the output of this host's scripts
        self.outcome = HostOutcome(name, HostStatus.OK)
        self.pending_changes: dict[str, list[str]] = {}  # resource key -> why it changes
        _check_unique(name, plan.resources)

    def emit(self, event: str, **kw: Any) -> None:
        self.runner.reporter.emit(Event(event, host=self.name, phase=self.phase, **kw))

    def run(self) -> HostOutcome:
        resources = self.plan.resources
        facts = self.gather(resources) if resources else []
        pending: list[tuple[int, Resource, Any]] = []
        for i, (resource, fact) in enumerate(zip(resources, facts)):
            try:
                changes = resource.changes(fact)
            except ResourceError as exc:
                return self._fail(resource.describe(), str(exc))
            if not changes:
                self.outcome.ok.append(resource.key)
                self.emit("resource", resource=resource.describe(), status="ok")
                continue
            pending.append((i, resource, fact))
            status = "would-change" if self.runner.check else "changed"
            if self.runner.diff:
                text = resource.diff(fact)
                if text:
                    self.outcome.diffs[resource.key] = text
            if self.runner.check:
                self.outcome.changed.append(resource.key)
                self.emit("resource", resource=resource.describe(), status=status, changes=changes)
                if resource.key in self.outcome.diffs:
                    self.emit("diff", resource=resource.describe(), diff=self.outcome.diffs[resource.key])
            else:
                self.pending_changes[resource.key] = changes
        if self.runner.check:
            self.outcome.status = HostStatus.CHANGED if pending else HostStatus.OK
            return self.outcome
        owed = self.runner.take_deferred(self.name)
        due = [s for s in owed if s in self.managed_services]
        self.runner.defer(self.name, [s for s in owed if s not in self.managed_services])
        if pending or due:
            self.apply(pending, due)
            if self.outcome.status == HostStatus.FAILED:
                return self.outcome
            self.outcome.status = HostStatus.CHANGED
        self.wait_for_gates(changed=bool(pending))
        return self.outcome

    # -- facts ----------------------------------------------------------------------------------

    def status(self, text: str) -> None:
        """What this host is doing right now, for a live display; not logged."""
        self.runner.reporter.status(self.name, self.phase, text)

    def gather(self, resources: list[Resource]) -> list[Any]:
        self.status(f"gathering facts for {len(resources)} resources")
        queries = [r.fact_query(with_content=self.runner.diff) for r in resources]
        result = self.conn.run_script(fact_script(queries, self.marker).encode())
        if not result.ok:
            raise KbuildError(f"{self.name}: gathering facts failed (exit {result.rc}): {result.err.strip()}")
        try:
            return parse_facts(result.out, self.marker, queries)
        except FactError as exc:
            raise KbuildError(f"{self.name}: {exc} ({result.err.strip() or 'no error output'})") from None

    # -- apply ----------------------------------------------------------------------------------

    @property
    def managed_services(self) -> set[str]:
        """Services this plan keeps running: the ones whose notifications it can honour now."""
        return {r.name for r in self.plan.resources if isinstance(r, Service) and r.running}

    def apply(self, pending: list[tuple[int, Resource, Any]], owed: list[str]) -> None:
        marker = self.marker
        script = ["set -u", FACT_FUNCTIONS, APPLY_FUNCTIONS]
        payloads: list[tuple[str, Any]] = []
        units_dirty = False
        started_now: set[str] = set()
        notified: list[str] = list(owed)
        for i, resource, fact in pending:
            try:
                action = resource.action(fact)
            except ResourceError as exc:
                self._fail(resource.describe(), str(exc))
                return
            if isinstance(resource, Service):
                if units_dirty:
                    script.append("systemctl daemon-reload")
                    units_dirty = False
                if resource.will_start(fact):
                    started_now.add(resource.name)
            payload_env = ""
            if action.payload is not None:
                payloads.append((f"p{i}", action.payload))
                payload_env = f'KB_PAYLOAD="$KB_WORK/p{i}"; '
            script += [
                f"echo '{marker} begin {i}'",
                f"( set -e; {payload_env}\n{action.script}\n) > \"$KB_WORK/log\" 2>&1; kb_rc=$?",
                f"if [ $kb_rc -ne 0 ]; then echo '{marker} fail {i}'; cat \"$KB_WORK/log\"; exit 1; fi",
                f"echo '{marker} ok {i}'",
            ]
            units_dirty = units_dirty or resource.changes_units
            notified += [s for s in resource.notify if s not in notified]
        if units_dirty:
            script.append("systemctl daemon-reload")
        managed = self.managed_services
        restarts = [s for s in notified if s in managed and s not in started_now]
        later = [s for s in notified if s not in managed]
        for service in restarts:
            script += [
                f"echo '{marker} restart {service}'",
                f"if ! systemctl restart {q(service)} > \"$KB_WORK/log\" 2>&1; then echo '{marker} fail restart'; "
                f"cat \"$KB_WORK/log\"; journalctl -u {q(service)} -n 15 --no-pager -q 2>/dev/null; exit 1; fi",
            ]
        script.append(f"echo '{marker} done'")

        stream = tar_stream([("script", "\n".join(script).encode()), *payloads])
        command = ('KB_WORK=$(mktemp -d /var/tmp/kbuild.XXXXXX) || exit 1; export KB_WORK; '
                   'tar -xf - -C "$KB_WORK" || { rm -rf "$KB_WORK"; exit 1; }; '
                   'sh "$KB_WORK/script"; kb_rc=$?; rm -rf "$KB_WORK"; exit $kb_rc')
        total = sum(p.size for _, p in payloads)
        self.status(f"applying {len(pending)} changes" + (f", sending {total / 1e6:.1f} MB" if total > 1e6 else ""))
        result = self.conn.run(command, stdin=stream, progress=self._upload_progress(len(pending), total))
        self._read_apply_output(result.out, result.err, pending, restarts)
        if self.outcome.status != HostStatus.FAILED:
            self.runner.defer(self.name, later)

    def _upload_progress(self, count: int, total: int) -> Callable[[int], None] | None:
        if total < 1e6:
            return None
        sent = 0
        last = 0.0

        def advance(n: int) -> None:
            nonlocal sent, last
            sent += n
            now = time.monotonic()
            if now - last > 0.2:
                last = now
                self.status(f"applying {count} changes, sent {sent / 1e6:.1f} of {total / 1e6:.1f} MB")

        return advance

    def _read_apply_output(self, out: str, err: str, pending: list[tuple[int, Resource, Any]],
                           restarts: list[str]) -> None:
        marker = self.marker
        by_index = {i: r for i, r, _ in pending}
        current: int | None = None
        failed_output: list[str] = []
        failing: str | None = None
        restarting: str | None = None  # the service whose restart is under way
        restart_failed = False
        for line in out.splitlines():
            if not line.startswith(marker):
                if failing is not None:
                    failed_output.append(line)
                continue
            words = line[len(marker) + 1:].split()
            if words[0] == "begin":
                current = int(words[1])
            elif words[0] == "ok" and current is not None:
                resource = by_index[current]
                self.outcome.changed.append(resource.key)
                self.emit("resource", resource=resource.describe(), status="changed",
                          changes=self.pending_changes.get(resource.key))
                if resource.key in self.outcome.diffs:
                    self.emit("diff", resource=resource.describe(), diff=self.outcome.diffs[resource.key])
            elif words[0] == "fail":
                restart_failed = words[1] == "restart"
                failing = (f"restart of service {restarting or '?'}" if restart_failed
                           else by_index[int(words[1])].describe())
            elif words[0] == "restart":
                current = None
                restarting = words[1]
            elif words[0] == "done":
                self._restarted(restarts)
                return
        if failing is not None:
            if restart_failed and restarting in restarts:
                self._restarted(restarts[:restarts.index(restarting)])  # the ones before it went through
            self._fail(failing, "\n".join(failed_output).strip() or err.strip() or "failed with no output")
        else:
            self._fail("apply", f"the apply script stopped early: {err.strip() or out[-500:].strip() or 'no output'}")

    def _restarted(self, services: list[str]) -> None:
        for service in services:
            self.outcome.restarted.append(service)
            self.emit("handler", resource=f"service {service}", status="restarted")

    def _fail(self, what: str, message: str) -> HostOutcome:
        self.outcome.status = HostStatus.FAILED
        self.outcome.failed = what
        self.outcome.message = message
        self.emit("resource", resource=what, status="failed", message=message)
        return self.outcome

    # -- health gates ---------------------------------------------------------------------------

    def wait_for_gates(self, *, changed: bool) -> None:
        for gate in self.plan.gates:
            if not (changed or gate.always):
                continue
            problem = self._wait(gate)
            if problem is not None:
                self.outcome.status = HostStatus.FAILED
                self.outcome.failed = f"gate {gate.name}"
                self.outcome.message = problem
                self.emit("gate", resource=gate.name, status="failed", message=problem)
                return
            self.emit("gate", resource=gate.name, status="ok")

    def _unit_log(self, gate: Gate, lines: int = 12) -> str:
        """The last lines the gate's unit logged: why a service never became healthy is almost always there."""
        if gate.unit is None:
            return ""
        unit = q(f"{gate.unit}.service")
        result = self.conn.run(f"journalctl -u {unit} -n {lines} --no-pager -o cat 2>&1", timeout=30)
        log = (result.out or "").strip()
        return f"\nlast lines of {gate.unit}'s log (journalctl -u {gate.unit}):\n{log[-2500:]}" if log else ""

    def _wait(self, gate: Gate) -> str | None:
        self.status(f"waiting for {gate.name} (up to {gate.timeout:.0f}s)")
        if gate.command is not None:
            script = (f"kb_end=$(( $(date +%s) + {int(gate.timeout)} ))\n"
                      f"while :; do\n"
                      f"  if kb_out=$( ( {gate.command} ) 2>&1 ); then exit 0; fi\n"
                      f"  if [ \"$(date +%s)\" -ge \"$kb_end\" ]; then printf '%s\\n' \"$kb_out\"; exit 1; fi\n"
                      f"  sleep {gate.interval}\n"
                      f"done")
            result = self.conn.run(script, timeout=gate.timeout + 30)
            if result.ok:
                return None
            detail = (result.out or result.err).strip()[-1500:]
            return f"not healthy after {gate.timeout:.0f}s: {detail or 'no output'}" + self._unit_log(gate)
        assert gate.check is not None
        deadline = time.monotonic() + gate.timeout
        while True:
            try:
                problem = gate.check()
            except Exception as exc:  # noqa: BLE001 - a check failing is data, reported with the gate
                problem = str(exc) or type(exc).__name__
            if problem is None:
                return None
            if time.monotonic() >= deadline:
                return f"not healthy after {gate.timeout:.0f}s: {problem}"
            time.sleep(gate.interval)


def _check_unique(host: str, resources: Iterable[Resource]) -> None:
    seen: set[str] = set()
    for resource in resources:
        if resource.key in seen:
            raise KbuildError(f"{host}: two resources manage {resource.key} (a planning bug in kbuild)")
        seen.add(resource.key)

