"""The bridge pod network's host side: routes to every node's pod CIDR (live, and the unit that sets them at boot),
and the CNI files kbuild once wrote and no longer wants."""

from __future__ import annotations

from kbuild import layout
from kbuild.engine.facts import q
from kbuild.engine.resources import Absent, Command, Resource, Route, Service
from kbuild.engine.shell import command
from kbuild.inventory import Cluster, Host
from kbuild.render import gets_pod_routes, pod_routes, pod_routes_role


def route_resources(cluster: Cluster, host: Host, role: str) -> list[Resource]:
    """The pod routes unit and each route, set live, when the phase `role` is the one that owns them on this host;
    none when the pod network is the user's (cluster.cni: none)."""
    if cluster.settings.cni != "bridge" or not gets_pod_routes(host) or role != pod_routes_role(host):
        return []
    resources: list[Resource] = [Service("kbuild-pod-routes")]
    wanted = []
    for route in pod_routes(cluster, host):
        wanted.append(f"{route.cidr} {route.via}")
        # A Route, not a guarded command: the host's table is read once for all peers, not twice per peer.
        resources.append(Route(str(route.cidr), str(route.via), name=f"route {route.cidr} via {route.node}"))
    # Routes into the pod network that no node of the inventory explains any more (a node removed, or
    # renumbered): gone, so its old block never shadows a new node's.
    family = f"-{cluster.settings.pod_cidr.version}"
    stale = (f"{command('ip', family, 'route', 'show', 'root', cluster.settings.pod_cidr)} | "
             "awk '$2 == \"via\" {print $1 \" \" $3}' | "
             + (f"grep -vxF {' '.join(f'-e {q(w)}' for w in wanted)}" if wanted else "cat"))
    resources.append(Command("stale pod routes removed",
                             f"{stale} | while read -r c v; do ip {family} route del \"$c\" via \"$v\"; done",
                             unless=f"test -z \"$({stale})\""))
    return resources


def retired_files(cluster: Cluster) -> list[Resource]:
    """CNI configs an older kbuild wrote: a stale 10-bridge.conf sorts before 10-bridge.conflist and would be the
    one containerd loads (no portmap, so no hostPort)."""
    if cluster.settings.cni != "bridge":
        return []
    return [Absent(str(path)) for path in layout.CNI_RETIRED_CONFS]

