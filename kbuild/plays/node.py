"""The node phase, on every host that runs a kubelet: kernel settings, containerd, runc, CNI, kubelet, kube-proxy."""

from __future__ import annotations

from kbuild import layout
from kbuild.engine.facts import q
from kbuild.engine.resources import Command, Directory, KernelModule, Service, Sysctl
from kbuild.engine.shell import command
from kbuild.engine.runner import Gate, Plan
from kbuild.inventory import Cluster, Host
from kbuild.plays.components import health_checks
from kbuild.plays.desired import (
    HostInputs,
    artifact_resources,
    image_resources,
    parents_of,
    pki_resources,
    rendered_resources,
)
from kbuild.render import node_pod_cidr

NODE_TIMEOUT = 120.0

# overlay for containerd's snapshotter; br_netfilter so bridged pod traffic passes iptables (Services).
# A module built into the kernel, or loaded by a container host, shows only through its feature.
MODULES = (KernelModule("overlay", probe="grep -qw overlay /proc/filesystems"),
           KernelModule("br_netfilter", probe="test -d /proc/sys/net/bridge"))
SYSCTLS = (Sysctl("net.ipv4.ip_forward", "1"),
           Sysctl("net.bridge.bridge-nf-call-iptables", "1"),
           Sysctl("net.bridge.bridge-nf-call-ip6tables", "1"))
SERVICES = ("kubelet", "kube-proxy")  # after containerd and the images it must hold


def gates(cluster: Cluster) -> list[Gate]:
    return [Gate(check.name, command=check.command, timeout=NODE_TIMEOUT, unit=component)
            for component in ("containerd", *SERVICES) for check in health_checks(cluster, component)]


def plan(cluster: Cluster, inputs: HostInputs) -> Plan:
    files = artifact_resources(inputs, "node") + pki_resources(inputs, "node") + rendered_resources(inputs, "node")
    dirs = [Directory(str(d)) for d in (layout.CNI_CONF_DIR, layout.CNI_BIN_DIR, layout.KUBE_PROXY_DIR)]
    dirs.append(Directory(str(layout.KUBELET_DIR), mode=0o700))
    return Plan([*MODULES, *SYSCTLS, *_dedupe(dirs + parents_of(files)), *files, Service("containerd"),
                 *image_resources(inputs), *(Service(name) for name in SERVICES), *_pod_routes_unit(cluster),
                 *pod_routes(cluster, inputs.host)],
                gates=gates(cluster))


def pod_routes(cluster: Cluster, host: Host) -> list[Command]:
    """Each other node's pod CIDR via that node, set live (the pod-routes unit sets the same at boot); none
    when the pod network is the user's (cluster.cni: none)."""
    routes = []
    if cluster.settings.cni != "bridge":
        return routes
    wanted = []
    for other in cluster.kubelet_hosts:
        if other.name == host.name:
            continue
        cidr, via = node_pod_cidr(cluster, other), other.address
        wanted.append(f"{cidr} {via}")
        routes.append(Command(f"route {cidr} via {other.name}", command("ip", "route", "replace", cidr, "via", via),
                              unless=f"{command('ip', 'route', 'show', cidr)} | {command('grep', '-qF', f'via {via} ')}"))
    # Routes into the pod network that no node of the inventory explains any more (a node removed, or
    # renumbered): gone, so its old block never shadows a new node's.
    family = f"-{cluster.settings.pod_cidr.version}"
    stale = (f"{command('ip', family, 'route', 'show', 'root', cluster.settings.pod_cidr)} | "
             "awk '$2 == \"via\" {print $1 \" \" $3}' | "
             + (f"grep -vxF {' '.join(f'-e {q(w)}' for w in wanted)}" if wanted else "cat"))
    routes.append(Command("stale pod routes removed", f"{stale} | while read -r c v; do ip {family} route del \"$c\" via \"$v\"; done",
                          unless=f"test -z \"$({stale})\""))
    return routes


def _pod_routes_unit(cluster: Cluster) -> list[Service]:
    return [Service("kbuild-pod-routes")] if cluster.settings.cni == "bridge" else []


def _dedupe(resources: list) -> list:
    seen: set[str] = set()
    unique = []
    for resource in resources:
        if resource.key not in seen:
            seen.add(resource.key)
            unique.append(resource)
    return unique
