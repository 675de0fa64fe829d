"""The bridge pod network's host side: routes to every node's pod CIDR (live, and the unit that sets them at boot),
and the CNI files kbuild once wrote and no longer wants."""

from __future__ import annotations

from kbuild import layout
from kbuild.engine.resources import Absent, Resource, Route, RoutesPruned, Service
from kbuild.inventory import Cluster, Host
from kbuild.render import gets_pod_routes, pod_routes, pod_routes_role


def route_resources(cluster: Cluster, host: Host, role: str) -> list[Resource]:
    """The pod routes unit and each route, set live, when the phase `role` is the one that owns them on this host;
    none when the pod network is the user's (cluster.cni: none)."""
    if cluster.settings.cni != "bridge" or not gets_pod_routes(host) or role != pod_routes_role(host):
        return []
    resources: list[Resource] = [Service("kbuild-pod-routes")]
    routes = pod_routes(cluster, host)
    # Routes, not guarded commands: the host's table is read once for all peers, not twice per peer.
    resources += [Route(str(r.cidr), str(r.via), name=f"route {r.cidr} via {r.node}") for r in routes]
    # Routes into the pod network that no node of the inventory explains any more (a node removed, or
    # renumbered): gone, so its old block never shadows a new node's.
    resources.append(RoutesPruned("stale pod routes removed", str(cluster.settings.pod_cidr),
                                  tuple((str(r.cidr), str(r.via)) for r in routes)))
    return resources


def retired_files(cluster: Cluster) -> list[Resource]:
    """CNI configs an older kbuild wrote: a stale 10-bridge.conf sorts before 10-bridge.conflist and would be the
    one containerd loads (no portmap, so no hostPort)."""
    if cluster.settings.cni != "bridge":
        return []
    return [Absent(str(path)) for path in layout.CNI_RETIRED_CONFS]

