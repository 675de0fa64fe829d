"""The etcd cluster as a whole: every member's health and status, the member list, and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field

from kbuild.engine.session import QueryError
from kbuild.errors import UnreachableError
from kbuild.inventory import Cluster
from kbuild.plays.clusterfacts import etcd_members
from kbuild.plays.clusterfacts.etcd_members import Member
from kbuild.plays.etcd_ops.commands import all_endpoints, peer_url
from kbuild.plays.etcd_ops.probe import HostProbe, probe_hosts, why_missing
from kbuild.plays.phases import Context


@dataclass
class EtcdClusterStatus:
    probes: dict[str, HostProbe | None]  # by inventory name; None: unreachable
    cluster_id: str = ""
    members: tuple[Member, ...] = ()
    member_list_error: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems


def membership_problems(cluster: Cluster, members: tuple[Member, ...]) -> list[str]:
    """How etcd's member list differs from the inventory's etcd hosts (names and peer URLs)."""
    problems = []
    by_name = {m.name: m for m in members if m.name}
    for host in cluster.etcd_hosts:
        member = by_name.get(host.name)
        if member is None:
            unstarted = [m for m in members if not m.name and peer_url(host) in m.peer_urls]
            state = "added but never started" if unstarted else "not a member of the etcd cluster"
            problems.append(f"{host.name}: {state}")
        elif member.peer_urls != (peer_url(host),):
            urls = ", ".join(member.peer_urls)
            problems.append(f"{host.name}: peer URLs {urls}, the inventory says {peer_url(host)}")
        elif member.learner:
            problems.append(f"{host.name}: still a learner (not voting)")
    known = {h.name for h in cluster.etcd_hosts}
    for member in members:
        if member.name and member.name not in known:
            urls = ", ".join(member.peer_urls)
            problems.append(f"member {member.name} ({member.id}, {urls}) is not in the inventory")
    return problems


def status_problems(cluster: Cluster, probes: dict[str, HostProbe | None]) -> list[str]:
    problems = []
    for name, probe in probes.items():
        if probe is None:
            problems.append(f"{name}: {why_missing(probes, name)}")
        elif not probe.healthy:
            problems.append(f"{name}: not healthy: {probe.health_error or 'no answer'}")
    statuses = [p.status for p in probes.values() if p is not None and p.status is not None]
    if len({s.cluster_id for s in statuses}) > 1:
        ids = ", ".join(f"{n}={p.status.cluster_id}" for n, p in probes.items() if p and p.status)
        problems.append(f"members disagree on the cluster ID ({ids}): split brain or a half-done restore")
    leaders = {s.leader_id for s in statuses if s.leader_id != "0"}
    if statuses and not leaders:
        problems.append("no leader")
    elif len(leaders) > 1:
        problems.append(f"members see different leaders ({', '.join(sorted(leaders))})")
    return problems


def cluster_status(ctx: Context) -> EtcdClusterStatus:
    """Probe every selected etcd host, then ask one healthy member for the member list."""
    cluster: Cluster = ctx.cluster
    hosts = ctx.selected(cluster.etcd_hosts)
    report = EtcdClusterStatus(probe_hosts(ctx, hosts, phase="etcd-status", describe="health and status per member"))
    report.problems = status_problems(cluster, report.probes)
    asked = next((n for n, p in report.probes.items() if p is not None and p.healthy), None)
    asked = asked or next((n for n, p in report.probes.items() if p is not None), None)
    if asked is None:
        report.member_list_error = "no etcd host reachable"
        return report
    try:
        listing = ctx.session.read("etcd-members", asked, etcd_members.query(cluster, endpoints=all_endpoints(cluster)))
        report.cluster_id, report.members = listing.cluster_id, listing.members
        ctx.say(f"{len(listing.members)} member(s), cluster ID {listing.cluster_id}", phase="etcd-members")
    except (QueryError, UnreachableError) as exc:
        report.member_list_error = f"member list via {exc}"
    if report.member_list_error:
        report.problems.append(report.member_list_error)
    else:
        report.problems += membership_problems(cluster, report.members)
    return report
