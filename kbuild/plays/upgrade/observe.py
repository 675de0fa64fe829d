"""Look at the running cluster (versions on every host, the etcd leader and cluster version, the Nodes) and plan."""

from __future__ import annotations

from kbuild.engine.session import QueryError
from kbuild.errors import UnreachableError
from kbuild.inventory import Cluster
from kbuild.plays.clusterfacts import etcd_status, etcd_version
from kbuild.plays.clusterfacts import nodes as node_facts
from kbuild.plays.etcd_ops.commands import member_names
from kbuild.plays.phases import Context
from kbuild.plays.upgrade import plan, policy
from kbuild.plays.upgrade.running import HostVersions, Version, cluster_target, detect


PHASE = "upgrade-survey"


def survey(ctx: Context, *, max_unavailable: int = 1, known: dict | None = None) -> plan.UpgradePlan:
    """The plan for bringing every host of ctx.cluster (the target) to its versions, checked against the policy."""
    cluster: Cluster = ctx.cluster
    target = cluster_target(cluster)
    observed = detect(ctx, list(cluster.hosts), known)
    findings: list[policy.PolicyFinding] = []
    leader, cluster_version = _etcd(ctx, cluster, observed, target, findings)
    found_nodes = _nodes(ctx, cluster, observed, findings)
    return plan.build(cluster, observed, target, etcd_leader=leader, nodes=found_nodes,
                      etcd_cluster_version=cluster_version, max_unavailable=max_unavailable,
                      extra_findings=findings)


def _running(observed: dict[str, HostVersions], component: str) -> list[str]:
    return [h for h, hv in observed.items() if (i := hv.get(component)) is not None and i.present and i.active]


def _etcd(ctx: Context, cluster: Cluster, observed: dict[str, HostVersions], target: dict[str, Version],
          findings: list[policy.PolicyFinding]) -> tuple[str | None, Version | None]:
    """The leader and the cluster version, when some member moves to another etcd version.

    etcd upgrades start from a healthy cluster: a member down at its old version refuses the plan. A member
    down at the target version is one an earlier run upgraded and could not start; the plan starts it
    first (behind a check that every other member is healthy), so it does not block the rest."""
    members = {h: i for h, hv in observed.items() if (i := hv.get("etcd")) is not None and i.present}
    if not any(i.version != target["etcd"] for i in members.values()):
        return None, None  # the leader and cluster version only matter to members that change version
    down = sorted(h for h, i in members.items() if not i.active and i.version != target["etcd"])
    if down:
        findings.append(policy.PolicyFinding(policy.REFUSE, "etcd-unhealthy",
                                             f"etcd is not running on {', '.join(down)}: etcd is upgraded only from a "
                                             "healthy cluster; start it (kbuild bootstrap at the current versions) "
                                             "first", policy.ETCD_3_5))
        return None, None
    running = [h for h, i in members.items() if i.active]
    names = member_names(cluster)
    urls = ",".join(url for url, name in names.items() if name in running)
    errors = []
    for name in running:
        try:
            statuses = ctx.session.read(PHASE, name, etcd_status.query(cluster, endpoints=urls))
            cluster_version = ctx.session.read(PHASE, name, etcd_version.QUERY)
        except (QueryError, UnreachableError) as exc:
            errors.append(str(exc))
            continue
        leader = next((m.name for m in etcd_status.named(statuses, names) if m.is_leader), None)
        return leader, cluster_version
    findings.append(policy.PolicyFinding(policy.REFUSE, "etcd-unhealthy",
                                         "etcd does not answer for every running member (" + "; ".join(errors)
                                         + "): etcd is upgraded only from a healthy cluster", policy.ETCD_3_5))
    return None, None


def _nodes(ctx: Context, cluster: Cluster, observed: dict[str, HostVersions],
           findings: list[policy.PolicyFinding]) -> dict[str, node_facts.Node]:
    if not cluster.kubelet_hosts:
        return {}
    apiservers = _running(observed, "kube-apiserver")
    if not apiservers:
        return {}
    try:
        return ctx.session.read(PHASE, apiservers[0], node_facts.QUERY)
    except (QueryError, UnreachableError) as exc:
        findings.append(policy.PolicyFinding(policy.WARN, "nodes-unknown", f"cannot list the Nodes ({exc}): kubelets "
                                       "kbuild does not manage are not checked against the skew policy",
                                       policy.K8S_SKEW))
        return {}
