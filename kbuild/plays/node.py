"""The node phase, on every host that runs a kubelet: kernel settings, containerd, runc, CNI, kubelet, kube-proxy."""

from __future__ import annotations

from kbuild import components as table
from kbuild import layout
from kbuild.engine.resources import Directory, KernelModule, Service, Sysctl
from kbuild.engine.runner import Gate, Plan
from kbuild.inventory import Cluster
from kbuild.plays import pod_network
from kbuild.plays.components import health_checks
from kbuild.plays.desired import (
    HostInputs,
    artifact_resources,
    image_resources,
    parents_of,
    pki_resources,
    rendered_resources,
)

NODE_TIMEOUT = 120.0

# overlay for containerd's snapshotter; br_netfilter so bridged pod traffic passes iptables (Services).
# A module built into the kernel, or loaded by a container host, shows only through its feature.
MODULES = (KernelModule("overlay", probe="grep -qw overlay /proc/filesystems"),
           KernelModule("br_netfilter", probe="test -d /proc/sys/net/bridge"))
SYSCTLS = (Sysctl("net.ipv4.ip_forward", "1"),
           Sysctl("net.bridge.bridge-nf-call-iptables", "1"),
           Sysctl("net.bridge.bridge-nf-call-ip6tables", "1"))
# The runtime starts first, the kubelet and kube-proxy after the images containerd must hold.
RUNTIME, *SERVICES = table.role_services(table.NODE)


def gates(cluster: Cluster) -> list[Gate]:
    return [Gate(check.name, command=check.command, timeout=NODE_TIMEOUT, unit=component)
            for component in (RUNTIME, *SERVICES) for check in health_checks(cluster, component)]


def plan(cluster: Cluster, inputs: HostInputs) -> Plan:
    files = artifact_resources(inputs, "node") + pki_resources(inputs, "node") + rendered_resources(inputs, "node")
    dirs = [Directory(str(d)) for d in (layout.CNI_CONF_DIR, layout.CNI_BIN_DIR, layout.KUBE_PROXY_DIR)]
    dirs.append(Directory(str(layout.KUBELET_DIR), mode=0o700))
    return Plan([*MODULES, *SYSCTLS, *_dedupe(dirs + parents_of(files)), *files, Service(RUNTIME),
                 *pod_network.retired_files(cluster), *image_resources(inputs),
                 *(Service(name) for name in SERVICES), *pod_network.route_resources(cluster, inputs.host, "node")],
                gates=gates(cluster))


def _dedupe(resources: list) -> list:
    seen: set[str] = set()
    unique = []
    for resource in resources:
        if resource.key not in seen:
            seen.add(resource.key)
            unique.append(resource)
    return unique
