"""`kbuild status`: every component's unit, health endpoint and version per host; etcd members; nodes.

One read-only probe per host (a fact script, parsed by a pure function), plus one etcd query and
one node query on the first healthy member / control plane.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from kbuild import components as table
from kbuild import layout
from kbuild.engine.session import QueryError
from kbuild.engine.ssh import Connection
from kbuild.errors import UnreachableError
from kbuild.inventory import Cluster, Host
from kbuild.plays.clusterfacts import etcd_status
from kbuild.plays.clusterfacts import nodes as node_facts
from kbuild.plays.clusterfacts.etcd_status import EndpointStatus
from kbuild.plays.clusterfacts.nodes import Node
from kbuild.plays.clusterfacts.version import version_word
from kbuild.plays.components import health_checks
from kbuild.plays.control_plane import kubectl
from kbuild.plays.etcd import etcdctl
from kbuild.plays.etcd_ops.commands import member_names
from kbuild.plays.phases import Context
from kbuild.render import units_for

PHASE = "status"

def health_command(cluster: Cluster, unit: str) -> str | None:
    """A read-only shell test that succeeds when the component answers every health check its gates wait for;
    etcd's is the member's own (its gate asks the whole cluster, which a member's status is not)."""
    if unit == "etcd":
        return etcdctl(cluster, "endpoint", "health")
    checks = health_checks(cluster, unit)
    return " && ".join(check.command for check in checks) if checks else None


def version_command(unit: str) -> str | None:
    row = table.BY_NAME.get(unit)  # kbuild's own units (the pod routes) have no version
    if row is None or row.version_command is None:
        return None
    return f"{layout.binary_path(unit)} {row.version_command}"


def probe_script(cluster: Cluster, host: Host) -> str:
    lines = []
    for unit in units_for(host, cluster):
        lines.append(f'echo "unit {unit} $(systemctl is-active {unit} 2>/dev/null || true)"')
        version = version_command(unit)
        if version:
            lines.append(f'echo "version {unit} $({version} 2>/dev/null | tr -s " " | head -c 200)"')
        health = health_command(cluster, unit)
        if health:
            lines.append(f'if out=$( ( {health} ) 2>&1 ); then echo "health {unit} ok"; '
                         f'else echo "health {unit} fail $(printf %s "$out" | tr "\\n" " " | head -c 300)"; fi')
    return "\n".join(lines)


@dataclass
class ComponentStatus:
    unit: str
    active: str = "unknown"
    version: str = ""
    healthy: bool | None = None  # None: the component has no health check
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.active == "active" and self.healthy is not False


@dataclass
class HostReport:
    host: str
    reachable: bool = True
    error: str = ""
    components: list[ComponentStatus] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reachable and all(c.ok for c in self.components)


def parse_probe(host: str, output: str) -> HostReport:
    components: dict[str, ComponentStatus] = {}
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        unit, _, value = rest.partition(" ")
        if not unit:
            continue
        component = components.setdefault(unit, ComponentStatus(unit))
        if kind == "unit":
            component.active = value.strip() or "inactive"
        elif kind == "version":
            component.version = version_word(value.strip())
        elif kind == "health":
            verdict, _, detail = value.partition(" ")
            component.healthy = verdict == "ok"
            component.detail = detail.strip()
    return HostReport(host, components=list(components.values()))


@dataclass
class AddonStatus:
    name: str  # the addon, e.g. coredns
    desired: int  # replicas asked for
    available: int  # replicas available (ready for minReadySeconds)
    error: str = ""
    waiting: str = ""  # why its pods cannot run yet and that is expected (no worker in the inventory)

    @property
    def ok(self) -> bool:
        if self.waiting:
            return not self.error
        return not self.error and self.available >= min(self.desired, 1) and self.desired > 0


@dataclass
class ClusterStatus:
    hosts: list[HostReport]
    etcd_members: list[EndpointStatus] = field(default_factory=list)  # named after their hosts
    etcd_error: str = ""
    nodes: list[Node] = field(default_factory=list)
    nodes_error: str = ""
    expected_nodes: list[str] = field(default_factory=list)
    addons: list[AddonStatus] = field(default_factory=list)
    no_pod_network: bool = False  # cluster.cni: none, so NotReady nodes wait for the user's CNI

    @property
    def problems(self) -> list[str]:
        found: list[str] = []
        for host in self.hosts:
            if not host.reachable:
                found.append(f"{host.host}: unreachable ({host.error})")
            for c in host.components:
                if not c.ok:
                    why = c.detail if c.healthy is False else f"unit {c.active}"
                    found.append(f"{host.host}: {c.unit} unhealthy: {why}")
        if self.etcd_error:
            found.append(f"etcd: {self.etcd_error}")
        elif self.etcd_members and sum(m.is_leader for m in self.etcd_members) != 1:
            found.append("etcd: no leader")
        if self.nodes_error:
            found.append(f"nodes: {self.nodes_error}")
        registered = {n.name: n for n in self.nodes}
        for name in self.expected_nodes:
            if name not in registered:
                found.append(f"node {name}: not registered")
            elif not registered[name].ready:
                hint = (" (cluster.cni is none: the node waits for the pod network you install)"
                        if self.no_pod_network else "")
                found.append(f"node {name}: not Ready{hint}")
        for addon in self.addons:
            if not addon.ok:
                found.append(f"addon {addon.name}: {addon.error or f'{addon.available} of {addon.desired} replicas available'}")
        return found

    def as_json(self) -> dict:
        return {
            "healthy": not self.problems,
            "problems": self.problems,
            "hosts": [{"host": h.host, "reachable": h.reachable, "error": h.error or None,
                       "components": [vars(c) | {"ok": c.ok} for c in h.components]} for h in self.hosts],
            "etcd": {"members": [{"name": m.name, "endpoint": m.endpoint, "leader": m.is_leader,
                                  "raft_index": m.raft_index, "db_size": m.db_size, "version": m.version}
                                 for m in self.etcd_members], "error": self.etcd_error or None},
            "nodes": {"registered": [{"name": n.name, "ready": n.ready, "version": n.kubelet_version,
                                      "unschedulable": n.unschedulable} for n in self.nodes],
                      "expected": self.expected_nodes,
                      "error": self.nodes_error or None},
            "addons": [vars(a) | {"ok": a.ok} for a in self.addons],
        }


def collect(ctx: Context) -> ClusterStatus:
    """Probe every selected host in parallel, then ask etcd and the API about the cluster as a whole."""
    cluster: Cluster = ctx.cluster
    hosts = {h.name: h for h in ctx.session.hosts}
    results: dict[str, HostReport] = {}

    def probe(conn: Connection) -> str:
        host = hosts[conn.target.name]
        result = conn.run(probe_script(cluster, host))
        results[host.name] = parse_probe(host.name, result.out)
        bad = [c.unit for c in results[host.name].components if not c.ok]
        return f"unhealthy: {', '.join(bad)}" if bad else "all components healthy"

    outcomes = ctx.session.each(PHASE, list(hosts), probe, describe="units, health endpoints, versions")
    statuses = [results.get(name) or HostReport(name, reachable=False, error=(o.message or o.status.value))
                for name, o in outcomes.items()]
    report = ClusterStatus(statuses, expected_nodes=[h.name for h in cluster.kubelet_hosts if h.name in hosts],
                           no_pod_network=cluster.settings.cni == "none")
    healthy = {s.host for s in statuses if s.reachable}
    _etcd_members(ctx, cluster, report, healthy)
    _nodes(ctx, cluster, report, healthy)
    _addons(ctx, cluster, report, healthy)
    return report


def _etcd_members(ctx: Context, cluster: Cluster, report: ClusterStatus, reachable: set[str]) -> None:
    member = next((h for h in cluster.etcd_hosts if h.name in reachable), None)
    if member is None:
        report.etcd_error = "no etcd member reachable"
        return
    try:
        statuses = ctx.session.read(PHASE, member.name, etcd_status.query(cluster, every_member=True))
    except (QueryError, UnreachableError) as exc:
        report.etcd_error = str(exc)
        return
    report.etcd_members = etcd_status.named(statuses, member_names(cluster))


def _nodes(ctx: Context, cluster: Cluster, report: ClusterStatus, reachable: set[str]) -> None:
    if not report.expected_nodes:
        return
    control = next((h for h in cluster.control_plane_hosts if h.name in reachable), None)
    if control is None:
        report.nodes_error = "no control plane reachable to list nodes"
        return
    try:
        report.nodes = list(ctx.session.read(PHASE, control.name, node_facts.QUERY).values())
    except (QueryError, UnreachableError) as exc:
        report.nodes_error = str(exc)


def _addons(ctx: Context, cluster: Cluster, report: ClusterStatus, reachable: set[str]) -> None:
    if not cluster.settings.addons.coredns.enabled:
        return
    control = next((h for h in cluster.control_plane_hosts if h.name in reachable), None)
    if control is None:
        report.addons.append(AddonStatus("coredns", cluster.settings.addons.coredns.replicas, 0,
                                         "no control plane reachable to ask"))
        return
    try:
        result = ctx.session.run(PHASE, control.name, kubectl("get", "deployment", "coredns", "-n", "kube-system",
                                                              "-o", "json"), timeout=60)
    except UnreachableError as exc:
        report.addons.append(AddonStatus("coredns", cluster.settings.addons.coredns.replicas, 0, str(exc)))
        return
    wanted = cluster.settings.addons.coredns.replicas
    if not result.ok:
        addon = AddonStatus("coredns", wanted, 0, result.err.strip() or "its Deployment is missing")
    else:
        try:
            addon = parse_deployment("coredns", result.out)
        except (ValueError, TypeError, AttributeError) as exc:  # as for etcd and the nodes: a problem, not a crash
            addon = AddonStatus("coredns", wanted, 0, f"unexpected kubectl output: {exc}")
    if not cluster.kubelet_hosts:
        addon.waiting = "no worker to run on"
    report.addons.append(addon)


def parse_deployment(name: str, output: str) -> AddonStatus:
    """`kubectl get deployment -o json` -> replicas asked for and available."""
    data = json.loads(output)
    return AddonStatus(name, int(data.get("spec", {}).get("replicas", 1)),
                       int(data.get("status", {}).get("availableReplicas", 0)))
