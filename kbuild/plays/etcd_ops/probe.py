"""One read-only probe per host for etcd operations: member health and status, data directory, tools,
free space, services. The script is generated and its output parsed by pure functions."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from kbuild import components as table
from kbuild import layout
from kbuild.engine.facts import q
from kbuild.engine.runner import HostStatus
from kbuild.engine.ssh import Connection
from kbuild.errors import KbuildError
from kbuild.inventory import Cluster, Host
from kbuild.plays.phases import Context
from kbuild.plays.clusterfacts import etcd_status
from kbuild.plays.clusterfacts.etcd_status import EndpointStatus
from kbuild.plays.etcd_ops.commands import ctl

MARK = "@@kb-etcd"
CONTROL_PLANE_SERVICES = table.role_services(table.CONTROL_PLANE)


@dataclass(frozen=True)
class HostProbe:
    name: str
    is_etcd: bool
    healthy: bool = False
    health_error: str = ""
    status: EndpointStatus | None = None
    data_dir: str = "absent"  # member | empty | absent | other (a file, say)
    mountpoint: bool = False
    tools: frozenset[str] = frozenset()
    free_kb: int | None = None  # in the data directory's parent filesystem
    active: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def describe(self) -> str:
        if not self.is_etcd:
            return "control plane: " + ", ".join(f"{s} {self.active.get(s, '?')}" for s in CONTROL_PLANE_SERVICES)
        state = "healthy" if self.healthy else f"NOT healthy ({self.health_error or 'no answer'})"
        if self.status is not None:
            role = "leader" if self.status.is_leader else "follower"
            state += f", {role}, etcd {self.status.version}, revision {self.status.revision}"
        return state


def probe_script(cluster: Cluster, host: Host) -> str:
    data_dir = cluster.etcd.data_dir
    lines = ["set +e"]
    if host.is_etcd:
        lines += [
            f"echo '{MARK} health'",
            f"{ctl(cluster, 'endpoint', 'health')} 2>&1; echo \"rc $?\"",
            f"echo '{MARK} status'",
            f"{etcd_status.command(cluster)} 2>/dev/null",
            f"echo '{MARK} facts'",
            (f"if [ -d {q(data_dir + '/member')} ]; then echo 'data member'; "
             f"elif [ -d {q(data_dir)} ] && [ -z \"$(ls -A {q(data_dir)})\" ]; then echo 'data empty'; "
             f"elif [ -e {q(data_dir)} ]; then echo 'data other'; else echo 'data absent'; fi"),
            f"if mountpoint -q {q(data_dir)} 2>/dev/null; then echo 'mountpoint yes'; else echo 'mountpoint no'; fi",
            f"for t in etcdctl etcdutl; do [ -x {layout.BIN_DIR}/$t ] && echo \"tool $t\"; done",
            (f"echo \"free $(df -Pk {q(posixpath.dirname(data_dir.rstrip('/')) or '/')} 2>/dev/null | "
             "awk 'NR==2 {print $4}')\""),
        ]
    else:
        lines.append(f"echo '{MARK} facts'")
    roles = (table.ETCD, table.CONTROL_PLANE)
    for service in (s for role in roles if table.host_has_role(host, role) for s in table.role_services(role)):
        lines.append(f"echo \"active {service} $(systemctl is-active {service} 2>/dev/null || true)\"")
    return "\n".join(lines)


def sections(text: str) -> dict[str, str]:
    """Output split at `MARK name` lines: name -> the lines after it (stripped)."""
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith(MARK + " "):
            current = line[len(MARK) + 1:].strip()
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return {k: "\n".join(v).strip() for k, v in found.items()}


def parse_probe(host: Host, text: str) -> HostProbe:
    parts = sections(text)
    healthy, error, status = False, "", None
    if host.is_etcd:
        health = parts.get("health", "").splitlines()
        healthy = bool(health) and health[-1].strip() == "rc 0"
        if not healthy:
            error = " ".join(line.strip() for line in health[:-1] if line.strip() and not line.startswith("{"))[-300:]
        try:
            found = etcd_status.parse(parts.get("status", ""))
            status = found[0] if found else None
        except (ValueError, KeyError, TypeError):
            status = None
    facts: dict[str, str] = {}
    active: dict[str, str] = {}
    tools: set[str] = set()
    for line in parts.get("facts", "").splitlines():
        key, _, value = line.strip().partition(" ")
        if key == "active":
            service, _, state = value.partition(" ")
            active[service] = state.strip() or "unknown"
        elif key == "tool":
            tools.add(value.strip())
        elif key:
            facts[key] = value.strip()
    free = facts.get("free", "")
    return HostProbe(host.name, host.is_etcd, healthy, error, status, facts.get("data", "absent"),
                     facts.get("mountpoint") == "yes", frozenset(tools), int(free) if free.isdigit() else None, active)


class Probes(dict[str, "HostProbe | None"]):
    """Each host's probe by name; None where there is none, and `missing` says why (what the engine saw)."""

    def __init__(self) -> None:
        super().__init__()
        self.missing: dict[str, str] = {}
        self.unreachable: set[str] = set()  # hosts that could not be connected to (as opposed to a failed probe)


def why_missing(probes: dict[str, HostProbe | None], name: str) -> str:
    """Why a host has no probe: "unreachable (connection refused)", "probe failed (...)"; plain "unreachable"
    when only the absence is known."""
    return probes.missing.get(name, "unreachable") if isinstance(probes, Probes) else "unreachable"


def unreachable_hosts(probes: dict[str, HostProbe | None]) -> set[str]:
    """The hosts that could not be reached at all (exit 4), as opposed to answering with a failed probe."""
    if isinstance(probes, Probes):
        return set(probes.unreachable)
    return {name for name, probe in probes.items() if probe is None}


def probe_hosts(ctx: Context, hosts: list[Host], *, phase: str = "etcd-probe",
                describe: str = "etcd members and control planes, read only") -> Probes:
    """Probe `hosts` in parallel; a host without a probe (unreachable, or its probe failed) maps to None, and
    the result's `missing` says which and why."""
    results = Probes()
    by_name = {h.name: h for h in hosts}

    def task(conn: Connection) -> str:
        host = by_name[conn.target.name]
        result = conn.run(probe_script(ctx.cluster, host), timeout=120)
        if MARK not in result.out:
            raise KbuildError(f"the probe printed nothing usable (exit {result.rc}): {result.err.strip()[:300]}")
        probe = parse_probe(host, result.out)
        results[host.name] = probe
        return probe.describe()

    outcomes = ctx.session.each(phase, list(by_name), task, describe=describe)
    for name, outcome in outcomes.items():
        if outcome.status in (HostStatus.FAILED, HostStatus.UNREACHABLE, HostStatus.SKIPPED):
            results[name] = None
            detail = " ".join((outcome.message or "").split())[:200]
            what = {HostStatus.UNREACHABLE: "unreachable", HostStatus.FAILED: "probe failed",
                    HostStatus.SKIPPED: "not probed"}[outcome.status]
            results.missing[name] = f"{what} ({detail})" if detail else what
            if outcome.status is HostStatus.UNREACHABLE:
                results.unreachable.add(name)
    return results
